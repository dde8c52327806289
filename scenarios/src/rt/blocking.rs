//! faktory-blocking: the scenario future is driven by a plain `block_on` on the test thread; the
//! harness's futures make the blocking calls when polled; spawned futures run on threads of their
//! own; workers stop through a `ShutdownHandle`.

use std::future::Future;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use faktory_blocking::{Client, Job, JobContext, Next, ShutdownHandle, Worker};
use faktory_proto::api::Error;
use faktory_proto::worker::Outcome;
use futures_lite::future;

use crate::harness::{
    ClientSpec, Greeting, Harness, JobCtx, Registration, Shutdown, Signup, Step, Stop, Task,
    UserStream, WorkerApi, WorkerSpec, placeholder_job, run_steps_blocking, typed_steps_blocking,
};

crate::rt::client_api!(faktory_blocking::Client;);

impl WorkerApi for Worker {
    async fn run(self) -> faktory_proto::worker::StopReport {
        Worker::run(self)
    }

    async fn run_job(&self, job: Job) -> (Outcome, Vec<Job>) {
        let run = Worker::run_job(self, job);
        (run.outcome, run.pushed)
    }
}

impl Stop for ShutdownHandle {
    fn stop(&self) {
        self.shutdown();
    }

    fn is_stopped(&self) -> bool {
        self.is_shutdown()
    }
}

/// The worker's handle as its handlers see it: set once the worker is built (a
/// `Shutdown::WorkerHandle` worker's handle exists only then).
#[derive(Clone, Default)]
struct LateStop(Arc<OnceLock<ShutdownHandle>>);

impl Stop for LateStop {
    fn stop(&self) {
        self.0.get().expect("the worker was built").shutdown();
    }

    fn is_stopped(&self) -> bool {
        self.0.get().is_some_and(ShutdownHandle::is_shutdown)
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

    async fn cancelled(&self) {
        self.cancellation().wait();
    }

    fn wait_cancelled(&self) {
        self.cancellation().wait();
    }

    fn greeting(&self) -> Option<String> {
        self.state::<Greeting>().ok().map(|g| g.0.clone())
    }

    fn batch_id(&self) -> Option<String> {
        faktory_proto::api::JobMeta::batch_id(self).map(str::to_owned)
    }

    async fn push(&self, job: Job) -> Result<String, faktory_proto::worker::PushError> {
        JobContext::push(self, job)
    }
}

/// The faktory-blocking harness.
#[derive(Debug)]
pub struct Blocking;

impl Harness for Blocking {
    const NAME: &'static str = "blocking";
    const HANDLERS_OUTLIVE_THE_WORKER: bool = true;

    type Client = Client;
    type Worker = Worker;
    type Stop = ShutdownHandle;
    type JobContext = JobContext;
    type Token = faktory_blocking::CancellationToken;

    fn block_on<F: Future>(scenario: F) -> F::Output {
        future::block_on(scenario)
    }

    fn spawn<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> Task<T> {
        Task::new(f, |f| {
            let thread = std::thread::spawn(move || future::block_on(f));
            async move {
                match thread.join() {
                    Ok(out) => out,
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
        })
    }

    async fn sleep(d: Duration) {
        std::thread::sleep(d);
    }

    async fn connect_to(url: &str) -> Result<Self::Client, Error> {
        Client::connect_to(url)
    }

    async fn connect(spec: ClientSpec) -> Result<Self::Client, Error> {
        let mut builder = Client::builder();
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
        if let Some(cert) = spec.tls_root {
            builder = builder.tls(root_store(cert));
        }
        for layer in spec.middleware {
            builder = builder.middleware(move |job: &mut Job| layer.apply(job));
        }
        for (jobtype, defaults) in spec.job_defaults {
            builder = builder.job_defaults(jobtype, defaults);
        }
        match spec.stream {
            None => builder.connect(),
            Some((addr, UserStream::Tcp)) => {
                builder.connect_with_stream(TcpStream::connect(addr).expect("TCP connect"))
            }
            Some((addr, UserStream::Opaque)) => {
                builder.connect_with_stream(Opaque(TcpStream::connect(addr).expect("TCP connect")))
            }
        }
    }

    fn worker(spec: WorkerSpec) -> Result<(Self::Worker, Self::Stop), Error> {
        let late = LateStop::default();
        let mut builder = Worker::builder()
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
            let stop = late.clone();
            builder = match handler.registration() {
                Registration::Plain => builder.register(jobtype, move |job: Job| {
                    run_steps_blocking::<JobContext>(&steps, &job, None, &stop)
                }),
                Registration::WithContext => {
                    builder.register_with_context(jobtype, move |job: Job, ctx: JobContext| {
                        run_steps_blocking(&steps, &job, Some(&ctx), &stop)
                    })
                }
                Registration::Blocking => {
                    builder.register_blocking(jobtype, move |job: Job, ctx: JobContext| {
                        run_steps_blocking(&steps, &job, Some(&ctx), &stop)
                    })
                }
                Registration::BoxedArgsError => builder.register(jobtype, |job: Job| {
                    let (_n,): (u64,) = job.args_as()?;
                    Ok::<(), faktory_blocking::BoxError>(())
                }),
                Registration::IoError => builder.register(jobtype, |_job: Job| {
                    Err::<(), std::io::Error>(std::io::Error::other("disk full"))
                }),
                Registration::TypedTuple => {
                    builder.register(jobtype, move |(text, n): (String, u64)| {
                        let job = placeholder_job::<JobContext>(None);
                        let desc = format!("{text} {n}");
                        typed_steps_blocking::<JobContext>(&steps, &job, &desc, None, &stop)?;
                        Ok(())
                    })
                }
                Registration::TypedStruct => {
                    builder.register(jobtype, move |s: Signup, ctx: JobContext| {
                        let job = placeholder_job(Some(&ctx));
                        let desc = format!("{} x{}", s.name, s.count);
                        typed_steps_blocking(&steps, &job, &desc, Some(&ctx), &stop)?;
                        Ok(())
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
                if let Some(result) = layer.before(&mut job) {
                    return result;
                }
                let discard = job.custom_value("discard").is_some();
                let result = next.run(job, ctx);
                layer.after(result, discard)
            });
        }
        if let Some(text) = spec.greeting {
            builder = builder.state(Greeting(text));
        }
        if spec.shutdown == Shutdown::Signal {
            builder = builder.shutdown_signal(ShutdownHandle::new());
        }
        let worker = builder.build()?;
        // The handle given as the signal, or (`WorkerHandle`, `ServerOnly`) the worker's own.
        let stop = worker.shutdown_handle();
        let _ = late.0.set(stop.clone());
        Ok((worker, stop))
    }
}

fn root_store(cert: Vec<u8>) -> faktory_blocking::TlsConfig {
    let mut roots = faktory_blocking::rustls::RootCertStore::empty();
    roots.add(cert.into()).expect("a valid certificate");
    faktory_blocking::TlsConfig::RootStore(roots)
}

/// A stream the client cannot split: it is read on the I/O thread, only while replies are due.
struct Opaque(TcpStream);

impl Read for Opaque {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Opaque {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
