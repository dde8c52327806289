//! The glue of every async runtime, written once: `faktory-tokio` and `faktory-async-std` are
//! `faktory_async`'s `Client`, `Worker` and handler types on a runtime, so the harness traits are
//! implemented for those types once, generic over the runtime, and a runtime's harness only says
//! how to block on, spawn and sleep.

use std::sync::Arc;

use faktory_async::{CancellationToken, Job, JobContext, Next, Runtime};
use faktory_proto::api::Error;
use faktory_proto::worker::{Outcome, StopReport};

use crate::harness::{
    ClientSpec, Greeting, Harness, JobCtx, Registration, Shutdown, Signup, Step, Stop, WorkerApi,
    WorkerSpec, placeholder_job, run_steps_async, run_steps_blocking, typed_steps_async,
    typed_steps_blocking,
};

crate::rt::client_api!(generic [R: Runtime] faktory_async::Client<R>; .await);

impl<R: Runtime> WorkerApi for faktory_async::Worker<R> {
    fn run(self) -> impl std::future::Future<Output = StopReport> + Send + 'static {
        faktory_async::Worker::run(self)
    }

    fn run_job(&self, job: Job) -> impl std::future::Future<Output = (Outcome, Vec<Job>)> + Send {
        let run = faktory_async::Worker::run_job(self, job);
        async move {
            let run = run.await;
            (run.outcome, run.pushed)
        }
    }
}

impl Stop for CancellationToken {
    fn stop(&self) {
        self.cancel();
    }

    fn is_stopped(&self) -> bool {
        self.is_cancelled()
    }
}

impl JobCtx for JobContext {
    fn jid(&self) -> &str {
        faktory_proto::api::JobMeta::jid(self)
    }

    fn jobtype(&self) -> &str {
        faktory_proto::api::JobMeta::jobtype(self)
    }

    fn is_cancelled(&self) -> bool {
        JobContext::is_cancelled(self)
    }

    fn cancelled(&self) -> impl std::future::Future<Output = ()> + Send {
        self.cancellation().cancelled()
    }

    fn greeting(&self) -> Option<String> {
        self.state::<Greeting>().ok().map(|g| g.0.clone())
    }

    fn batch_id(&self) -> Option<String> {
        faktory_proto::api::JobMeta::batch_id(self).map(str::to_owned)
    }

    fn push(
        &self,
        job: Job,
    ) -> impl std::future::Future<Output = Result<String, faktory_proto::worker::PushError>> + Send
    {
        JobContext::push(self, job)
    }
}

fn root_store(cert: Vec<u8>) -> faktory_async::TlsConfig {
    let mut roots = faktory_async::rustls::RootCertStore::empty();
    roots.add(cert.into()).expect("a valid certificate");
    faktory_async::TlsConfig::RootStore(roots)
}

/// A `ClientBuilder` on `runtime` with the spec's URL, wid, request timeout and TLS roots (the
/// caller connects, or hands over the spec's stream).
pub(crate) fn client_builder<R: Runtime>(
    spec: &ClientSpec,
    runtime: R,
) -> Result<faktory_async::ClientBuilder<R>, Error> {
    let mut builder = faktory_async::ClientBuilder::with_runtime(runtime);
    if let Some(url) = &spec.url {
        builder = builder.url(url)?;
    }
    if let Some(wid) = &spec.wid {
        builder = builder.wid(wid);
    }
    if let Some(timeout) = spec.request_timeout {
        builder = builder.request_timeout(timeout);
    }
    if let Some(timeout) = spec.connect_timeout {
        builder = builder.connect_timeout(timeout);
    }
    if let Some(cert) = &spec.tls_root {
        builder = builder.tls(root_store(cert.clone()));
    }
    for layer in spec.middleware.clone() {
        builder = builder.middleware(move |job: &mut Job| layer.apply(job));
    }
    for (jobtype, defaults) in spec.job_defaults.clone() {
        builder = builder.job_defaults(jobtype, defaults);
    }
    Ok(builder)
}

/// A worker on `runtime` with the spec's settings and handlers (async steps on `H`'s timer,
/// blocking steps for `register_blocking`), its shutdown signal wired to the returned token.
pub(crate) fn worker<H: Harness, R: Runtime>(
    spec: WorkerSpec,
    runtime: R,
) -> Result<(faktory_async::Worker<R>, CancellationToken), Error> {
    let stop = CancellationToken::new();
    let mut builder = faktory_async::WorkerBuilder::with_runtime(runtime)
        .url(&spec.url)?
        .queues(spec.queues)
        .heartbeat_interval(spec.heartbeat)
        .grace_period(spec.grace_period);
    if let Some(wid) = spec.wid {
        builder = builder.wid(wid);
    }
    if let Some(n) = spec.concurrency {
        builder = builder.concurrency(n);
    }
    if let Some(cert) = spec.tls_root {
        builder = builder.tls(root_store(cert));
    }
    for (jobtype, handler) in spec.handlers {
        let steps: Arc<[Step]> = handler.steps().into();
        let stop = stop.clone();
        builder = match handler.registration() {
            Registration::Plain => builder.register(jobtype, move |job: Job| {
                let (steps, stop) = (Arc::clone(&steps), stop.clone());
                async move { run_steps_async::<H, JobContext>(&steps, &job, None, &stop).await }
            }),
            Registration::WithContext => {
                builder.register_with_context(jobtype, move |job: Job, ctx: JobContext| {
                    let (steps, stop) = (Arc::clone(&steps), stop.clone());
                    async move {
                        run_steps_async::<H, JobContext>(&steps, &job, Some(&ctx), &stop).await
                    }
                })
            }
            Registration::Blocking => {
                builder.register_blocking(jobtype, move |job: Job, ctx: JobContext| {
                    run_steps_blocking(&steps, &job, Some(&ctx), &stop)
                })
            }
            Registration::BoxedArgsError => builder.register(jobtype, |job: Job| async move {
                let (_n,): (u64,) = job.args_as()?;
                Ok::<(), faktory_async::BoxError>(())
            }),
            Registration::IoError => builder.register(jobtype, |_job: Job| async move {
                Err::<(), std::io::Error>(std::io::Error::other("disk full"))
            }),
            Registration::TypedTuple => {
                builder.register(jobtype, move |(text, n): (String, u64)| {
                    let (steps, stop) = (Arc::clone(&steps), stop.clone());
                    async move {
                        let job = placeholder_job::<JobContext>(None);
                        let desc = format!("{text} {n}");
                        typed_steps_async::<H, JobContext>(&steps, &job, &desc, None, &stop)
                            .await?;
                        Ok(())
                    }
                })
            }
            Registration::TypedStruct => {
                builder.register(jobtype, move |s: Signup, ctx: JobContext| {
                    let (steps, stop) = (Arc::clone(&steps), stop.clone());
                    async move {
                        let job = placeholder_job(Some(&ctx));
                        let desc = format!("{} x{}", s.name, s.count);
                        typed_steps_async::<H, _>(&steps, &job, &desc, Some(&ctx), &stop).await?;
                        Ok(())
                    }
                })
            }
            Registration::TypedTupleBlocking => builder.register_blocking(
                jobtype,
                move |(text, n): (String, u64), ctx: JobContext| {
                    let job = placeholder_job(Some(&ctx));
                    let desc = format!("{text} {n}");
                    typed_steps_blocking(&steps, &job, &desc, Some(&ctx), &stop)?;
                    Ok(())
                },
            ),
        };
    }
    for layer in spec.middleware {
        builder = builder.middleware(move |mut job: Job, ctx: JobContext, next: Next| {
            let layer = layer.clone();
            async move {
                if let Some(result) = layer.before(&mut job) {
                    return result;
                }
                let discard = job.custom_value("discard").is_some();
                let result = next.run(job, ctx).await;
                layer.after(result, discard)
            }
        });
    }
    if let Some(text) = spec.greeting {
        builder = builder.state(Greeting(text));
    }
    // The async APIs have no worker-owned handle: the token is the signal too.
    if spec.shutdown != Shutdown::ServerOnly {
        builder = builder.shutdown_signal(stop.clone().cancelled_owned());
    }
    Ok((builder.build()?, stop))
}
