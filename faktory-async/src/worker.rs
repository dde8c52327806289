//! The worker: runs registered handlers for fetched jobs, driven by `faktory_proto::worker`.
//!
//! Every decision (connections, FETCH scheduling, BEAT, quiet/terminate, shutdown, reconnects,
//! re-sending unconfirmed ACK/FAIL) is the engine's; the [`driver`] opens sockets, moves bytes,
//! sleeps until the engine's deadline and runs handlers as tasks on the runtime.

mod driver;
mod wake;

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use faktory_proto::api::{Error, JobRun, StateMap, WorkerSettings};
use faktory_proto::handshake::Password;
use faktory_proto::job::Job;
use faktory_proto::worker::{self as engine, Queues, StopReport, WorkerConfig};
use futures_channel::mpsc;

use crate::handler::{
    AsyncDispatch, BlockingHandler, BlockingShape, BoxError, Chain, DynMiddleware, Handler,
    JobContext, Middleware, PushCall, Pusher, Registered, WorkerShared, finish_job, start_job,
};
use crate::runtime::Runtime;
use crate::token::CancellationToken;
use crate::transport::{Dialer, TlsSettings};

type ShutdownSignal = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Configures a [`Worker`]: handlers, concurrency, queues, shutdown.
///
/// ```no_run
/// use faktory_async::{BoxError, CancellationToken, Error, Job, Runtime, Worker};
///
/// async fn work<R: Runtime + Default>(stop: CancellationToken) -> Result<(), Error> {
///     let worker = Worker::<R>::builder()
///         .register("SendEmail", |job: Job| async move {
///             let (to,): (String,) = job.args_as()?;
///             println!("sending to {to}");
///             Ok::<(), BoxError>(())
///         })
///         .concurrency(20)
///         .queues(["critical", "default"])
///         .shutdown_signal(stop.cancelled_owned()) // or a signal handler's future
///         .build()?;
///     let report = worker.run().await;
///     println!("stopped: {:?}", report.reason);
///     Ok(())
/// }
/// ```
#[must_use]
pub struct WorkerBuilder<R: Runtime> {
    settings: WorkerSettings,
    handlers: HashMap<String, Registered>,
    layers: Vec<Box<dyn DynMiddleware>>,
    state: StateMap,
    shutdown: Option<ShutdownSignal>,
    handle_signals: bool,
    runtime: R,
    tls: TlsSettings,
}

impl<R: Runtime> std::fmt::Debug for WorkerBuilder<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("settings", &self.settings)
            .field("jobtypes", &self.handlers.keys().collect::<Vec<_>>())
            .field("middleware", &self.layers.len())
            .field("runtime", &self.runtime)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime + Default> Default for WorkerBuilder<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: Runtime + Default> WorkerBuilder<R> {
    /// A builder with the engine's defaults (concurrency 10, queue `default`, 15 s heartbeat, 25 s
    /// grace period), the server from the environment, and the runtime's default.
    pub fn new() -> Self {
        Self::with_runtime(R::default())
    }
}

impl<R: Runtime> WorkerBuilder<R> {
    /// A builder with the defaults, on `runtime`.
    pub fn with_runtime(runtime: R) -> Self {
        let mut settings = WorkerSettings::default();
        settings.config.pid = Some(std::process::id());
        settings.config.hostname = hostname();
        WorkerBuilder {
            settings,
            handlers: HashMap::new(),
            layers: Vec::new(),
            state: StateMap::default(),
            shutdown: None,
            handle_signals: true,
            runtime,
            tls: TlsSettings::default(),
        }
    }

    /// Where handlers and the worker's tasks run (for runtimes that carry a value, such as an
    /// executor).
    pub fn runtime(mut self, runtime: impl Into<R>) -> Self {
        self.runtime = runtime.into();
        self
    }

    /// Registers an async handler for `jobtype`: a closure of one of the [`Handler`] shapes, taking
    /// the [`Job`] or its args deserialized (a tuple, a struct, a map), with or without the
    /// [`JobContext`]. Its error becomes a FAIL with the error's type name, message and source
    /// chain; a panic becomes a FAIL with errtype `panic`. A second handler for the same jobtype
    /// replaces the first.
    ///
    /// ```no_run
    /// use faktory_async::{BoxError, Job, JobContext, Runtime, Worker};
    ///
    /// fn worker<R: Runtime + Default>() -> faktory_async::WorkerBuilder<R> {
    ///     Worker::<R>::builder()
    ///         // Typed args: the error type is `HandlerError`, `?` works on any error.
    ///         .register("Mail", |(to, n): (String, u32)| async move {
    ///             let addr: std::net::Ipv4Addr = "10.0.0.1".parse()?;
    ///             println!("mail {n} to {to} via {addr}");
    ///             Ok(())
    ///         })
    ///         .register("Resize", |(file,): (String,), ctx: JobContext| async move {
    ///             println!("{file} ({})", ctx.jid());
    ///             Ok(())
    ///         })
    ///         // The whole job, any error type.
    ///         .register("Raw", |job: Job| async move {
    ///             println!("{:?}", job.args);
    ///             Ok::<(), BoxError>(())
    ///         })
    /// }
    /// ```
    ///
    /// The handler's future is first polled on the worker's own task (a handler that completes
    /// without waiting costs no task of its own); once it waits, it continues as a task of its own
    /// on the runtime. Do not compute for long before the first `.await` that waits: use
    /// [`WorkerBuilder::register_blocking`] for CPU-bound or blocking work.
    pub fn register<M: 'static, H: Handler<M>>(
        mut self,
        jobtype: impl Into<String>,
        handler: H,
    ) -> Self {
        let dispatch = AsyncDispatch(handler, PhantomData::<fn() -> M>);
        self.handlers
            .insert(jobtype.into(), Registered::Async(Arc::new(dispatch)));
        self
    }

    /// [`WorkerBuilder::register`] for a handler that takes the job and its [`JobContext`] (the
    /// closure's argument types need no annotation here).
    pub fn register_with_context<F, Fut, E>(self, jobtype: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Job, JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        self.register(jobtype, handler)
    }

    /// Registers a blocking handler for `jobtype` (the shapes of [`WorkerBuilder::register`],
    /// returning the result itself: see [`BlockingHandler`]), run on the runtime's blocking
    /// threads ([`Runtime::spawn_blocking`]).
    pub fn register_blocking<M: 'static, H: BlockingHandler<M>>(
        mut self,
        jobtype: impl Into<String>,
        handler: H,
    ) -> Self {
        let shape = BlockingShape(handler, PhantomData::<fn() -> M>);
        self.handlers
            .insert(jobtype.into(), Registered::Blocking(Arc::new(shape)));
        self
    }

    /// Adds a [`Middleware`] around every job's handler. The first added is the outermost: it runs
    /// first and sees the result last.
    pub fn middleware(mut self, layer: impl Middleware) -> Self {
        self.layers.push(Box::new(layer));
        self
    }

    /// Shares `value` with every handler and middleware: [`JobContext::state`] gives it back by
    /// its type (`ctx.state::<T>()`). Any number of types; a second value of the same type
    /// replaces the first. Share a pool or a client as it is (they are usually cheap handles),
    /// anything else is kept once, behind an `Arc`.
    ///
    /// ```no_run
    /// use faktory_async::{JobContext, Runtime, Worker};
    ///
    /// struct Config {
    ///     greeting: String,
    /// }
    ///
    /// fn worker<R: Runtime + Default>() -> faktory_async::WorkerBuilder<R> {
    ///     Worker::<R>::builder()
    ///         .state(Config { greeting: "hello".into() })
    ///         .register("Greet", |(name,): (String,), ctx: JobContext| async move {
    ///             let config = ctx.state::<Config>()?;
    ///             println!("{} {name}", config.greeting);
    ///             Ok(())
    ///         })
    /// }
    /// ```
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(value);
        self
    }

    /// When this future completes, the worker shuts down gracefully (a
    /// [`CancellationToken`](crate::CancellationToken)'s `cancelled_owned()`, …). It works beside
    /// the termination signals (see [`WorkerBuilder::handle_signals`]): whichever comes first.
    pub fn shutdown_signal<F>(mut self, signal: F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.shutdown = Some(Box::pin(signal));
        self
    }

    /// Whether the worker shuts down on the process's termination signals while it runs (default
    /// `true`; [`Runtime::termination_signals`]): on SIGTERM or SIGINT (Ctrl-C) it stops fetching,
    /// gives running jobs the grace period ([`WorkerBuilder::grace_period`], 25 s by default),
    /// FAILs what still runs (so it is retried), waits for the server to confirm every ACK and FAIL
    /// and returns; a second signal ends the grace period at once. The handlers are installed when
    /// [`Worker::run`] starts; as with any signal handler in the process, SIGINT then no longer
    /// kills the process by itself, so let `run` return and exit.
    pub fn handle_signals(mut self, handle: bool) -> Self {
        self.handle_signals = handle;
        self
    }

    /// How certificates are verified on `tcp+tls://` (webpki roots by default).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::TlsConfig) -> Self {
        self.tls = tls;
        self
    }

    /// How many jobs run at once.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.settings.config.concurrency = n;
        self
    }

    /// Fetch from these queues in strict priority order.
    pub fn queues<I, S>(mut self, queues: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.settings.config.queues = Queues::strict(queues);
        self
    }

    /// Fetch from these queues in a random order weighted per FETCH.
    pub fn weighted_queues<I, S>(mut self, queues: I) -> Self
    where
        I: IntoIterator<Item = (S, u32)>,
        S: Into<String>,
    {
        self.settings.config.queues = Queues::weighted(queues);
        self
    }

    /// Labels shown on the Web UI's Busy page.
    pub fn labels<I, S>(mut self, labels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.settings.config.labels = labels.into_iter().map(Into::into).collect();
        self
    }

    /// Hostname shown on the Busy page (default: this machine's).
    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.settings.config.hostname = Some(hostname.into());
        self
    }

    /// The worker id (default: a random one per worker).
    pub fn wid(mut self, wid: impl Into<String>) -> Self {
        self.settings.config.wid = Some(wid.into());
        self
    }

    /// How long running jobs may finish after terminate or shutdown (default 25 s).
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.settings.config.grace_period = grace;
        self
    }

    /// BEAT interval (default 15 s).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.settings.config.heartbeat_interval = interval;
        self
    }

    /// The server, as `tcp://[:password@]host:port` or `tcp+tls://…` (default: the environment).
    pub fn url(mut self, url: &str) -> Result<Self, Error> {
        self.settings.url = Some(faktory_proto::config::ServerUrl::parse(url)?);
        Ok(self)
    }

    /// The password (overrides one in the URL).
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.settings.password = Some(Password::new(password));
        self
    }

    /// TCP, TLS and handshake timeout per connection (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connect_timeout = timeout;
        self
    }

    /// Full access to the engine's configuration (fetch connections, backoff, seed, …).
    pub fn config(mut self, f: impl FnOnce(&mut WorkerConfig)) -> Self {
        f(&mut self.settings.config);
        self
    }

    /// Validates the configuration and builds the worker (no connection is made yet).
    pub fn build(self) -> Result<Worker<R>, Error> {
        let (url, config) = self.settings.resolve(|k| std::env::var(k).ok())?;
        let engine = engine::Worker::new(config, Instant::now()).map_err(Error::WorkerConfig)?;
        let dialer = Dialer::new(
            self.runtime.clone(),
            &url,
            &self.tls,
            self.settings.connect_timeout,
        );
        let handlers = self
            .handlers
            .into_iter()
            .map(|(jobtype, h)| (jobtype, h.bind(&self.runtime)))
            .collect();
        let (push_tx, pushes) = mpsc::unbounded();
        Ok(Worker {
            engine,
            chain: Arc::new(Chain {
                layers: self.layers,
                handlers,
            }),
            shared: Arc::new(WorkerShared {
                state: self.state,
                pusher: Pusher::Worker(push_tx),
            }),
            pushes,
            dialer,
            shutdown: self.shutdown,
            handle_signals: self.handle_signals,
            runtime: self.runtime,
        })
    }
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
}

/// A Faktory worker process: [`Worker::run`] fetches jobs and runs their handlers until it is
/// told to stop.
pub struct Worker<R: Runtime> {
    engine: engine::Worker,
    pub(crate) chain: Arc<Chain>,
    shared: Arc<WorkerShared>,
    pushes: mpsc::UnboundedReceiver<PushCall>,
    dialer: Arc<Dialer<R>>,
    shutdown: Option<ShutdownSignal>,
    handle_signals: bool,
    runtime: R,
}

impl<R: Runtime> std::fmt::Debug for Worker<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("wid", &self.engine.wid())
            .field("lifecycle", &self.engine.lifecycle())
            .field("server", &self.dialer.authority())
            .finish_non_exhaustive()
    }
}

impl<R: Runtime + Default> Worker<R> {
    /// A [`WorkerBuilder`] on the runtime's default.
    pub fn builder() -> WorkerBuilder<R> {
        WorkerBuilder::new()
    }
}

impl<R: Runtime> Worker<R> {
    /// This worker's id.
    pub fn wid(&self) -> &str {
        self.engine.wid()
    }

    /// Runs until the shutdown signal fires, the server says terminate, or the server refuses the
    /// worker for good; returns why, with any outcome the server did not confirm. It never exits
    /// the process.
    ///
    /// One task does all the worker's I/O (this future: every connection's socket, the timer,
    /// finished jobs, the shutdown signal); each job runs as its own task on the runtime.
    ///
    /// The future is a pointer: the driver's state (several kB) is on the heap from the start, so
    /// moving the future into a task copies nothing big through the caller's stack.
    pub fn run(self) -> impl Future<Output = StopReport> + Send + 'static {
        Box::pin(driver::run(self))
    }

    /// Runs `job` through the middleware and its handler as the worker would, without a server:
    /// for tests. The context has the worker's state and records what the job pushes; the
    /// returned [`JobRun`] has the outcome (ACK or FAIL) and those jobs. Blocking handlers run on
    /// the runtime's blocking threads, as in the worker.
    ///
    /// ```
    /// use faktory_async::{HandlerError, Job, JobContext, Next, Outcome, Runtime, Worker};
    ///
    /// async fn check<R: Runtime + Default>() {
    ///     let worker = Worker::<R>::builder()
    ///         .state(2u32)
    ///         .middleware(|job: Job, ctx: JobContext, next: Next| async move {
    ///             // Here: what every job goes through (it is only passed on).
    ///             next.run(job, ctx).await
    ///         })
    ///         .register("Double", |(n,): (u32,), ctx: JobContext| async move {
    ///             let factor = ctx.state::<u32>()?;
    ///             ctx.push(Job::with_args("Print", (n * factor,))?).await?;
    ///             Ok(())
    ///         })
    ///         .register("Fail", |(n,): (u32,)| async move { Err(HandlerError::msg(format!("no {n}"))) })
    ///         .build()
    ///         .unwrap();
    ///
    ///     let run = worker.run_job(Job::with_args("Double", (21,)).unwrap()).await;
    ///     assert_eq!(run.outcome, Outcome::Ok);
    ///     assert_eq!(run.pushed[0].args, [serde_json::json!(42)]);
    ///
    ///     let run = worker.run_job(Job::with_args("Fail", (7,)).unwrap()).await;
    ///     assert!(matches!(run.outcome, Outcome::Failed { ref message, .. } if message == "no 7"));
    /// }
    /// ```
    pub fn run_job(&self, job: Job) -> impl Future<Output = JobRun> + Send + 'static {
        let shared = Arc::new(WorkerShared::recorder(self.shared.state.clone()));
        let ctx = JobContext::new(&job, CancellationToken::new(), shared);
        let chain = Arc::clone(&self.chain);
        async move {
            let outcome = finish_job(start_job(&chain, job, |_, _| ctx.clone())).await;
            JobRun::new(outcome, ctx.pushed())
        }
    }
}
