//! The harness: what a scenario may ask of a runtime. Each runtime implements [`Harness`] in a
//! small module of `crate::rt`; scenarios use nothing else.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use faktory_proto::Job;
use faktory_proto::api::Error;
use faktory_proto::api::HandlerError;
use faktory_proto::command::{Fail, MutateFilter, MutateOp, MutateTarget, WorkerState};
use faktory_proto::info::{Info, QueueLatency};
use faktory_proto::job::JobDefaults;
use faktory_proto::worker::{Outcome, StopReport};
use serde::{Deserialize, Serialize};

use crate::support::LONG;

/// A runtime the scenarios run under, and the adapter API they exercise on it.
///
/// The async harnesses run the scenario future on their runtime (`tokio`, `smol::block_on`,
/// `async_std::task::block_on`) and await the adapter's futures. The blocking harness drives the
/// scenario future with a plain `block_on` on the test thread; its futures make the blocking calls
/// when polled, and [`Harness::spawn`] runs a future on a thread of its own.
pub trait Harness: Sized + 'static {
    /// The runtime's name, for messages.
    const NAME: &'static str;
    /// Whether a handler that ignores its cancellation can still be running after
    /// `Worker::run` returned: true for the blocking API (a thread cannot be abandoned; it runs
    /// until the handler returns), false for the async ones (the worker drops the handler's future).
    const HANDLERS_OUTLIVE_THE_WORKER: bool;

    /// The adapter's `Client`.
    type Client: ClientApi;
    /// The adapter's `Worker`.
    type Worker: WorkerApi;
    /// What stops a worker: a `CancellationToken` (async) or a `ShutdownHandle` (blocking).
    type Stop: Stop;
    /// The adapter's `JobContext`.
    type JobContext: JobCtx;
    /// The adapter's `CancellationToken` (what `JobContext::cancellation` gives).
    type Token: Clone + Send + Sync + 'static;

    /// Runs a scenario to completion on this runtime.
    fn block_on<F: Future>(scenario: F) -> F::Output;

    /// Runs `f` concurrently with the scenario (a task on this runtime, or a thread).
    fn spawn<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> Task<T>;

    /// Sleeps (the runtime's timer, or `std::thread::sleep`).
    fn sleep(d: Duration) -> impl Future<Output = ()> + Send;

    /// `Client::connect_to(url)`: the shortest way, every setting at its default.
    fn connect_to(url: &str) -> impl Future<Output = Result<Self::Client, Error>> + Send;

    /// A client through `Client::builder()` (or `connect_with_stream`) as `spec` says.
    fn connect(spec: ClientSpec) -> impl Future<Output = Result<Self::Client, Error>> + Send;

    /// Builds (does not run) a worker as `spec` says, with its handlers registered the way the
    /// adapter takes them natively; returns it with what stops it.
    fn worker(spec: WorkerSpec) -> Result<(Self::Worker, Self::Stop), Error>;
}

/// The adapter `Client`'s requests, as futures (the blocking harness makes the call when polled).
pub trait ClientApi: Clone + Send + Sync + fmt::Debug + 'static {
    /// `Client::push` (the jid).
    fn push(&self, job: Job) -> impl Future<Output = Result<String, Error>> + Send;
    /// `Client::push_bulk`.
    fn push_bulk(
        &self,
        jobs: Vec<Job>,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, Error>> + Send;
    /// `Client::info`.
    fn info(&self) -> impl Future<Output = Result<Info, Error>> + Send;
    /// `Client::queue_pause`.
    fn queue_pause(&self, queues: &[&str]) -> impl Future<Output = Result<(), Error>> + Send;
    /// `Client::queue_resume`.
    fn queue_resume(&self, queues: &[&str]) -> impl Future<Output = Result<(), Error>> + Send;
    /// `Client::queue_remove`.
    fn queue_remove(&self, queues: &[&str]) -> impl Future<Output = Result<(), Error>> + Send;
    /// `Client::queue_latency`.
    fn queue_latency(
        &self,
        queues: &[&str],
    ) -> impl Future<Output = Result<QueueLatency, Error>> + Send;
    /// `Client::mutate_set`.
    fn mutate_set(
        &self,
        op: MutateOp,
        target: MutateTarget,
        filter: Option<MutateFilter>,
    ) -> impl Future<Output = Result<(), Error>> + Send;
    /// `Client::fetch`.
    fn fetch(&self, queues: &[&str]) -> impl Future<Output = Result<Option<Job>, Error>> + Send;
    /// `Client::ack`.
    fn ack(&self, jid: &str) -> impl Future<Output = Result<(), Error>> + Send;
    /// `Client::fail`.
    fn fail(&self, fail: Fail) -> impl Future<Output = Result<(), Error>> + Send;
    /// `Client::beat`.
    fn beat(
        &self,
        rss_kb: Option<u64>,
        current_state: Option<WorkerState>,
    ) -> impl Future<Output = Result<Option<WorkerState>, Error>> + Send;
    /// `Client::close`.
    fn close(&self) -> impl Future<Output = Result<(), Error>> + Send;
}

/// The adapter `Worker`.
pub trait WorkerApi: Send + 'static {
    /// `Worker::run` (the blocking harness calls it when the future is polled: spawn it with
    /// [`Harness::spawn`] to run it on a thread of its own).
    fn run(self) -> impl Future<Output = StopReport> + Send + 'static;

    /// `Worker::run_job`: the job through the middleware and its handler, without a server; the
    /// outcome and the jobs it pushed.
    fn run_job(&self, job: Job) -> impl Future<Output = (Outcome, Vec<Job>)> + Send;
}

/// Stops a worker: `CancellationToken::cancel` or `ShutdownHandle::shutdown`.
pub trait Stop: Clone + Send + Sync + 'static {
    /// Asks the worker to shut down gracefully.
    fn stop(&self);
    /// Whether [`Stop::stop`] was called.
    fn is_stopped(&self) -> bool;
}

/// The adapter `JobContext`, as the handler steps use it.
pub trait JobCtx: Clone + Send + Sync + 'static {
    /// `JobContext::jid`.
    fn jid(&self) -> &str;
    /// `JobContext::jobtype`.
    fn jobtype(&self) -> &str;
    /// `JobContext::is_cancelled`.
    fn is_cancelled(&self) -> bool;
    /// Completes once the job's cancellation token fired (async handlers).
    fn cancelled(&self) -> impl Future<Output = ()> + Send;
    /// Blocks until the job's cancellation token fired (blocking handlers). The default polls, for
    /// tokens that only offer async waiting.
    fn wait_cancelled(&self) {
        while !self.is_cancelled() {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    /// `JobContext::state::<Greeting>()`, its text.
    fn greeting(&self) -> Option<String>;
    /// `JobContext::batch_id`.
    fn batch_id(&self) -> Option<String>;
    /// `JobContext::push` (the blocking one makes the call when polled).
    fn push(
        &self,
        job: Job,
    ) -> impl Future<Output = Result<String, faktory_proto::worker::PushError>> + Send;
}

// -------------------------------------------------------------------------------------------------
// what to connect and build

/// A user-opened stream for `connect_with_stream`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserStream {
    /// The runtime's own TCP stream type (tokio's, smol's, async-std's, `std::net`'s).
    Tcp,
    /// A wrapper that only implements the I/O traits, so the adapter cannot split or clone it
    /// (the futures-io harnesses wrap the *other* runtime's TCP stream: async-std's under smol,
    /// smol's under async-std).
    Opaque,
}

/// How to build a client.
#[derive(Clone, Debug, Default)]
pub struct ClientSpec {
    /// `ClientBuilder::url`.
    pub url: Option<String>,
    /// `ClientBuilder::wid` (a consumer).
    pub wid: Option<String>,
    /// Trust only this certificate (DER): `TlsConfig::RootStore`.
    pub tls_root: Option<Vec<u8>>,
    /// `ClientBuilder::request_timeout`.
    pub request_timeout: Option<Duration>,
    /// `ClientBuilder::connect_timeout`.
    pub connect_timeout: Option<Duration>,
    /// `connect_with_stream` over a stream the harness opens to this address.
    pub stream: Option<(SocketAddr, UserStream)>,
    /// `ClientBuilder::middleware`, in order.
    pub middleware: Vec<ClientLayer>,
    /// `ClientBuilder::job_defaults`.
    pub job_defaults: Vec<(String, JobDefaults)>,
}

impl ClientSpec {
    /// A client for `url`.
    pub fn url(url: impl Into<String>) -> Self {
        ClientSpec {
            url: Some(url.into()),
            ..ClientSpec::default()
        }
    }

    /// A client over a user stream to `addr`.
    pub fn stream(addr: SocketAddr, kind: UserStream) -> Self {
        ClientSpec {
            stream: Some((addr, kind)),
            ..ClientSpec::default()
        }
    }

    /// With this worker id.
    pub fn wid(mut self, wid: impl Into<String>) -> Self {
        self.wid = Some(wid.into());
        self
    }

    /// Trusting only `cert` (DER).
    pub fn tls_root(mut self, cert: Vec<u8>) -> Self {
        self.tls_root = Some(cert);
        self
    }

    /// With this connect timeout (TCP, TLS and handshake).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// With this request timeout.
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = Some(d);
        self
    }

    /// With this client middleware (after those added before).
    pub fn middleware(mut self, layer: ClientLayer) -> Self {
        self.middleware.push(layer);
        self
    }

    /// With these defaults for `jobtype`.
    pub fn job_defaults(mut self, jobtype: &str, defaults: JobDefaults) -> Self {
        self.job_defaults.push((jobtype.to_owned(), defaults));
        self
    }
}

/// What a client middleware does, as every harness registers it.
#[derive(Clone, Debug)]
pub enum ClientLayer {
    /// Sets `custom[key] = value` on every job.
    AddCustom(&'static str, &'static str),
    /// Refuses the jobs of this jobtype (`Error::PushRefused`).
    RefuseJobtype(&'static str),
    /// Records "name:jobtype" for every job it sees.
    Log(&'static str, Log),
}

impl ClientLayer {
    /// Runs the layer on `job` (each harness's middleware closure calls this).
    pub fn apply(&self, job: &mut Job) -> Result<(), Error> {
        match self {
            ClientLayer::AddCustom(key, value) => {
                job.custom
                    .get_or_insert_with(Default::default)
                    .insert((*key).to_owned(), (*value).into());
            }
            ClientLayer::RefuseJobtype(jobtype) => {
                if job.jobtype == *jobtype {
                    return Err(Error::PushRefused(format!("{jobtype} is refused")));
                }
            }
            ClientLayer::Log(name, log) => log.push(format!("{name}:{}", job.jobtype)),
        }
        Ok(())
    }
}

/// How a worker is stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// A signal given to `WorkerBuilder::shutdown_signal` (a token's `cancelled_owned()`, or a
    /// `ShutdownHandle`).
    Signal,
    /// The worker's own handle, taken from the built worker (`Worker::shutdown_handle`, blocking);
    /// the async APIs have none, so there it is the signal.
    WorkerHandle,
    /// Nothing wired: only the server (terminate) stops the worker ([`Stop::stop`] may do
    /// nothing).
    ServerOnly,
}

/// How to build a worker. [`WorkerSpec::new`] has the test-friendly timings.
#[derive(Clone, Debug)]
pub struct WorkerSpec {
    /// `WorkerBuilder::url`.
    pub url: String,
    /// `WorkerBuilder::queues`.
    pub queues: Vec<String>,
    /// `WorkerBuilder::wid`.
    pub wid: Option<String>,
    /// `WorkerBuilder::concurrency`.
    pub concurrency: Option<usize>,
    /// `WorkerBuilder::heartbeat_interval`.
    pub heartbeat: Duration,
    /// `WorkerBuilder::grace_period`.
    pub grace_period: Duration,
    /// Trust only this certificate (DER): `TlsConfig::RootStore`.
    pub tls_root: Option<Vec<u8>>,
    /// How the worker is stopped.
    pub shutdown: Shutdown,
    /// The handlers, by jobtype.
    pub handlers: Vec<(String, Handler)>,
    /// `WorkerBuilder::middleware`, in order (the first is the outermost).
    pub middleware: Vec<Layer>,
    /// `WorkerBuilder::state(Greeting(..))`.
    pub greeting: Option<String>,
}

impl WorkerSpec {
    /// A worker on `url` fetching from `queue`, beating every 200 ms, with a 5 s grace period,
    /// stopped through its shutdown signal, without handlers.
    pub fn new(url: impl Into<String>, queue: &str) -> Self {
        WorkerSpec {
            url: url.into(),
            queues: vec![queue.to_owned()],
            wid: None,
            concurrency: None,
            heartbeat: Duration::from_millis(200),
            grace_period: Duration::from_secs(5),
            tls_root: None,
            shutdown: Shutdown::Signal,
            handlers: Vec::new(),
            middleware: Vec::new(),
            greeting: None,
        }
    }

    /// With this middleware (inside those added before).
    pub fn middleware(mut self, layer: Layer) -> Self {
        self.middleware.push(layer);
        self
    }

    /// With `Greeting(text)` as state.
    pub fn greeting(mut self, text: &str) -> Self {
        self.greeting = Some(text.to_owned());
        self
    }

    /// With this worker id.
    pub fn wid(mut self, wid: impl Into<String>) -> Self {
        self.wid = Some(wid.into());
        self
    }

    /// Running at most `n` jobs at once.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = Some(n);
        self
    }

    /// With this grace period.
    pub fn grace_period(mut self, d: Duration) -> Self {
        self.grace_period = d;
        self
    }

    /// Trusting only `cert` (DER).
    pub fn tls_root(mut self, cert: Vec<u8>) -> Self {
        self.tls_root = Some(cert);
        self
    }

    /// Stopped this way.
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Registers `handler` for `jobtype`.
    pub fn handler(mut self, jobtype: &str, handler: Handler) -> Self {
        self.handlers.push((jobtype.to_owned(), handler));
        self
    }
}

// -------------------------------------------------------------------------------------------------
// handlers

/// How a handler is registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Registration {
    /// `register(jobtype, |job| ...)`: async on the async runtimes, a plain function on blocking.
    Plain,
    /// `register_with_context(jobtype, |job, ctx| ...)`.
    WithContext,
    /// `register_blocking(jobtype, |job, ctx| ...)`: a blocking function on every runtime (the
    /// async ones run it on their blocking pool).
    Blocking,
    /// `register(jobtype, ...)` with a handler written as users write it, returning
    /// `Result<(), BoxError>` and failing with the `?` of `job.args_as::<(u64,)>()` (the job's
    /// args must not be one integer). Its steps are not run.
    BoxedArgsError,
    /// `register(jobtype, ...)` with a handler whose error type is `std::io::Error`, failing with
    /// `io::Error::other("disk full")`. Its steps are not run.
    IoError,
    /// `register(jobtype, |(text, n): (String, u64)| ...)`: typed args, no context; its steps see
    /// `"{text} {n}"` as the job's description.
    TypedTuple,
    /// `register(jobtype, |s: Signup, ctx| ...)`: a struct as args, with the context; its steps
    /// see `"{name} x{count}"`.
    TypedStruct,
    /// `register_blocking(jobtype, |(text, n): (String, u64), ctx| ...)`: typed args on a blocking
    /// thread, with the context.
    TypedTupleBlocking,
}

/// The struct the [`Registration::TypedStruct`] handlers take as args.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Signup {
    /// A name.
    pub name: String,
    /// A number.
    pub count: u64,
}

/// The state type scenarios give workers ([`WorkerSpec::greeting`]).
#[derive(Clone, Debug)]
pub struct Greeting(pub String);

/// What a handler does, as steps each harness runs natively: `.await`ing the runtime's timer and
/// the context's token in async handlers, sleeping and waiting in blocking ones. It returns
/// `Ok(())` after the last step, unless a step panics or fails.
#[derive(Clone, Debug)]
pub struct Handler {
    registration: Registration,
    steps: Vec<Step>,
}

impl Handler {
    /// A handler registered this way that does nothing yet.
    pub fn new(registration: Registration) -> Self {
        Handler {
            registration,
            steps: Vec::new(),
        }
    }

    /// A plain handler that returns `Ok(())`.
    pub fn ok() -> Self {
        Handler::new(Registration::Plain)
    }

    /// Then `step`.
    pub fn then(mut self, step: Step) -> Self {
        self.steps.push(step);
        self
    }

    /// How it is registered.
    pub fn registration(&self) -> Registration {
        self.registration
    }

    /// Its steps.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }
}

/// One thing a handler does.
#[derive(Clone, Debug)]
pub enum Step {
    /// Fires the latch ("the job started").
    Fire(Latch),
    /// Sleeps: the runtime's timer in an async handler, `std::thread::sleep` in a blocking one.
    Sleep(Duration),
    /// Asserts the context describes the job (jid and jobtype). Needs a context.
    CheckContext,
    /// Waits until the job's cancellation token fires, then asserts `is_cancelled`. Needs a context.
    AwaitCancellation,
    /// Adds one.
    Count(Counter),
    /// Records the jid; once `stop_at` distinct jids were seen, stops the worker.
    Tally {
        /// Where the jids go.
        tally: Tally,
        /// How many distinct jids stop the worker.
        stop_at: usize,
    },
    /// Ignores cancellation: returns only once the latch fired (or [`LONG`] passed).
    HoldUntil(Latch),
    /// Panics with this message.
    Panic(&'static str),
    /// Returns `Err(Outer(Inner))`: errtype `Outer`, a message, and a source chain.
    Fail,
    /// Records the job's description: its args as JSON (a typed handler: its decoded args).
    Record(Log),
    /// Records the worker's `Greeting` state (or `"none"`). Needs a context.
    RecordState(Log),
    /// Records the job's batch id (or `"none"`). Needs a context.
    RecordBatch(Log),
    /// Pushes a job of this jobtype on this queue through the context, and records its jid.
    /// Needs a context.
    PushFollowUp {
        /// The follow-up's jobtype.
        jobtype: &'static str,
        /// Its queue.
        queue: String,
        /// Where its jid goes.
        log: Log,
    },
}

/// Runs `steps` in an async handler of harness `H`.
pub async fn run_steps_async<H: Harness, C: JobCtx>(
    steps: &[Step],
    job: &Job,
    ctx: Option<&C>,
    stop: &impl Stop,
) -> Result<(), Outer> {
    let desc = describe(job);
    typed_steps_async::<H, C>(steps, job, &desc, ctx, stop).await
}

/// Runs `steps` in an async handler that sees the job as `desc` (a typed handler's args).
pub async fn typed_steps_async<H: Harness, C: JobCtx>(
    steps: &[Step],
    job: &Job,
    desc: &str,
    ctx: Option<&C>,
    stop: &impl Stop,
) -> Result<(), Outer> {
    for step in steps {
        match step {
            Step::PushFollowUp {
                jobtype,
                queue,
                log,
            } => {
                let follow = Job::builder(*jobtype).queue(queue).build().unwrap();
                let jid = needs_context(ctx).push(follow).await.expect("ctx.push");
                log.push(jid);
            }
            Step::Sleep(d) => H::sleep(*d).await,
            Step::AwaitCancellation => {
                let ctx = needs_context(ctx);
                ctx.cancelled().await;
                assert!(ctx.is_cancelled());
            }
            Step::HoldUntil(latch) => {
                let end = Instant::now() + LONG;
                while !latch.is_fired() && Instant::now() < end {
                    H::sleep(Duration::from_millis(5)).await;
                }
            }
            other => other.run_common(job, desc, ctx, stop)?,
        }
    }
    Ok(())
}

/// Runs `steps` in a blocking handler.
pub fn run_steps_blocking<C: JobCtx>(
    steps: &[Step],
    job: &Job,
    ctx: Option<&C>,
    stop: &impl Stop,
) -> Result<(), Outer> {
    typed_steps_blocking(steps, job, &describe(job), ctx, stop)
}

/// Runs `steps` in a blocking handler that sees the job as `desc` (a typed handler's args).
pub fn typed_steps_blocking<C: JobCtx>(
    steps: &[Step],
    job: &Job,
    desc: &str,
    ctx: Option<&C>,
    stop: &impl Stop,
) -> Result<(), Outer> {
    for step in steps {
        match step {
            Step::PushFollowUp {
                jobtype,
                queue,
                log,
            } => {
                let follow = Job::builder(*jobtype).queue(queue).build().unwrap();
                let jid = futures_lite::future::block_on(needs_context(ctx).push(follow))
                    .expect("ctx.push");
                log.push(jid);
            }
            Step::Sleep(d) => std::thread::sleep(*d),
            Step::AwaitCancellation => {
                let ctx = needs_context(ctx);
                ctx.wait_cancelled();
                assert!(ctx.is_cancelled());
            }
            Step::HoldUntil(latch) => {
                let end = Instant::now() + LONG;
                while !latch.is_fired() && Instant::now() < end {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            other => other.run_common(job, desc, ctx, stop)?,
        }
    }
    Ok(())
}

/// A job as [`Step::Record`] records it: its args as JSON.
pub fn describe(job: &Job) -> String {
    serde_json::to_string(&job.args).unwrap()
}

/// What a typed handler uses as its job in the steps (they need a jid and a jobtype): the
/// context's, or made up without one.
pub fn placeholder_job<C: JobCtx>(ctx: Option<&C>) -> Job {
    match ctx {
        Some(ctx) => {
            let mut job = Job::new(ctx.jobtype(), vec![]);
            ctx.jid().clone_into(&mut job.jid);
            job
        }
        None => Job::new("typed", vec![]),
    }
}

fn needs_context<C>(ctx: Option<&C>) -> &C {
    ctx.expect("this step needs a handler registered with a context")
}

impl Step {
    /// The steps that do not wait.
    fn run_common<C: JobCtx>(
        &self,
        job: &Job,
        desc: &str,
        ctx: Option<&C>,
        stop: &impl Stop,
    ) -> Result<(), Outer> {
        match self {
            Step::Record(log) => log.push(desc.to_owned()),
            Step::RecordState(log) => {
                log.push(
                    needs_context(ctx)
                        .greeting()
                        .unwrap_or_else(|| "none".into()),
                );
            }
            Step::RecordBatch(log) => {
                log.push(
                    needs_context(ctx)
                        .batch_id()
                        .unwrap_or_else(|| "none".into()),
                );
            }
            Step::Fire(latch) => latch.fire(),
            Step::CheckContext => {
                let ctx = needs_context(ctx);
                assert_eq!(ctx.jid(), job.jid);
                assert_eq!(ctx.jobtype(), job.jobtype);
            }
            Step::Count(n) => n.add(),
            Step::Tally { tally, stop_at } => {
                if tally.record(&job.jid) >= *stop_at {
                    stop.stop();
                }
            }
            Step::Panic(message) => std::panic::panic_any(*message),
            Step::Fail => return Err(Outer(Inner)),
            Step::Sleep(_)
            | Step::AwaitCancellation
            | Step::HoldUntil(_)
            | Step::PushFollowUp { .. } => {
                unreachable!("waiting steps are run by each harness")
            }
        }
        Ok(())
    }
}

/// The error a failing handler returns: "charging the card failed", caused by "gateway timeout".
#[derive(Debug)]
pub struct Outer(pub Inner);

/// The cause inside [`Outer`].
#[derive(Debug)]
pub struct Inner;

impl fmt::Display for Outer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("charging the card failed")
    }
}

impl fmt::Display for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("gateway timeout")
    }
}

impl std::error::Error for Outer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl std::error::Error for Inner {}

// -------------------------------------------------------------------------------------------------
// worker middleware

/// What a worker middleware does, as every harness registers it (an async closure on the async
/// runtimes, a plain one on blocking): [`Layer::before`] runs before `next`, [`Layer::after`] on
/// its result.
#[derive(Clone, Debug)]
pub enum Layer {
    /// Records `"{name} in"` and `"{name} out ok|err"`.
    Log(&'static str, Log),
    /// Appends this string to the job's args before the handler sees them.
    AppendArg(&'static str),
    /// Jobs with custom field `skip` are ACKed without running (`next` is not called).
    SkipIfMarked,
    /// Jobs with custom field `reject` are FAILed with errtype `Rejected` (retried) without
    /// running.
    RejectIfMarked,
    /// Errors of jobs with custom field `discard` become `Ok` (ACKed, logged).
    DiscardIfMarked,
}

impl Layer {
    /// Before `next`: `Some(result)` short-circuits.
    pub fn before(&self, job: &mut Job) -> Option<Result<(), HandlerError>> {
        match self {
            Layer::Log(name, log) => log.push(format!("{name} in")),
            Layer::AppendArg(arg) => job.args.push((*arg).into()),
            Layer::SkipIfMarked if job.custom_value("skip").is_some() => return Some(Ok(())),
            Layer::RejectIfMarked if job.custom_value("reject").is_some() => {
                return Some(Err(
                    HandlerError::msg("rejected by a middleware").with_errtype("Rejected")
                ));
            }
            _ => {}
        }
        None
    }

    /// After `next`, on its result; `marked_discard` is whether the job had custom field
    /// `discard` (read before `next` took the job).
    pub fn after(
        &self,
        result: Result<(), HandlerError>,
        marked_discard: bool,
    ) -> Result<(), HandlerError> {
        match self {
            Layer::Log(name, log) => {
                log.push(format!(
                    "{name} out {}",
                    if result.is_ok() { "ok" } else { "err" }
                ));
                result
            }
            Layer::DiscardIfMarked if marked_discard => {
                if let Err(e) = &result {
                    println!("discarding a failed job: {e}");
                }
                Ok(())
            }
            _ => result,
        }
    }
}

// -------------------------------------------------------------------------------------------------
// small shared state

/// Strings recorded by handlers and middleware, in order.
#[derive(Clone, Debug, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `s`.
    pub fn push(&self, s: String) {
        self.0.lock().unwrap().push(s);
    }

    /// What was recorded.
    pub fn snapshot(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A flag that fires once and stays fired; scenarios poll it with `eventually`.
#[derive(Clone, Debug, Default)]
pub struct Latch(Arc<AtomicBool>);

impl Latch {
    /// A latch that has not fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires it.
    pub fn fire(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether it fired.
    pub fn is_fired(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A shared counter.
#[derive(Clone, Debug, Default)]
pub struct Counter(Arc<AtomicUsize>);

impl Counter {
    /// A counter at 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one.
    pub fn add(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    /// The count.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// How often each jid ran.
#[derive(Clone, Debug, Default)]
pub struct Tally(Arc<Mutex<HashMap<String, usize>>>);

impl Tally {
    /// An empty tally.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one run of `jid`; returns how many distinct jids ran.
    pub fn record(&self, jid: &str) -> usize {
        let mut seen = self.0.lock().unwrap();
        *seen.entry(jid.to_owned()).or_default() += 1;
        seen.len()
    }

    /// jid → runs.
    pub fn snapshot(&self) -> HashMap<String, usize> {
        self.0.lock().unwrap().clone()
    }
}

/// Something [`Harness::spawn`] started: await it for its output; [`Task::is_finished`] tells
/// whether it completed (or panicked).
#[must_use = "a task is awaited for its output"]
pub struct Task<T> {
    output: Pin<Box<dyn Future<Output = T> + Send>>,
    done: Arc<AtomicBool>,
}

/// The future a runtime runs for a [`Task`].
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<T: Send + 'static> Task<T> {
    /// Marks `f` so that the task knows when it ended, has `start` run it, and awaits the future
    /// `start` returns for its output (a join handle, or a future that joins a thread).
    pub fn new<J>(
        f: impl Future<Output = T> + Send + 'static,
        start: impl FnOnce(BoxFuture<T>) -> J,
    ) -> Self
    where
        J: Future<Output = T> + Send + 'static,
    {
        let done = Arc::new(AtomicBool::new(false));
        let guard = SetOnDrop(Arc::clone(&done));
        let marked = Box::pin(async move {
            let _guard = guard;
            f.await
        });
        Task {
            output: Box::pin(start(marked)),
            done,
        }
    }
}

impl<T> Task<T> {
    /// Whether the future completed (or panicked).
    pub fn is_finished(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }
}

impl<T> Future for Task<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        self.output.as_mut().poll(cx)
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("finished", &self.is_finished())
            .finish()
    }
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}
