//! The worker: runs registered handlers for fetched jobs, driven by `faktory_proto::worker`.
//!
//! Every decision (connections, FETCH scheduling, BEAT, quiet/terminate, shutdown, reconnects,
//! re-sending unconfirmed ACK/FAIL) is the engine's; the [`driver`] opens sockets, moves bytes,
//! sleeps until the engine's deadline and runs handlers as tasks on the runtime.

mod driver;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use faktory_proto::api::{Error, WorkerSettings};
use faktory_proto::handshake::Password;
use faktory_proto::job::Job;
use faktory_proto::worker::{self as engine, Queues, StopReport, WorkerConfig};

use crate::handler::{AsyncHandler, BlockingHandler, BoxError, Handler, JobContext};
use crate::runtime::Runtime;
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
    handlers: HashMap<String, Arc<dyn Handler<R>>>,
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

    /// Registers an async handler for `jobtype`. Its error becomes a FAIL with the error's type
    /// name, message and source chain; a panic becomes a FAIL with errtype `panic`.
    ///
    /// The handler's future is first polled on the worker's own task (a handler that completes
    /// without waiting costs no task of its own); once it waits, it continues as a task of its own
    /// on the runtime. Do not compute for long before the first `.await` that waits: use
    /// [`WorkerBuilder::register_blocking`] for CPU-bound or blocking work.
    pub fn register<F, Fut, E>(self, jobtype: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        self.register_with_context(jobtype, move |job, _ctx| handler(job))
    }

    /// Registers an async handler that also gets a [`JobContext`] (jid, custom fields, and a
    /// cancellation token that fires when the worker gives up on the job).
    pub fn register_with_context<F, Fut, E>(
        mut self,
        jobtype: impl Into<String>,
        handler: F,
    ) -> Self
    where
        F: Fn(Job, JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        self.handlers
            .insert(jobtype.into(), Arc::new(AsyncHandler(handler)));
        self
    }

    /// Registers a blocking handler for `jobtype`, run on the runtime's blocking threads
    /// ([`Runtime::spawn_blocking`]).
    pub fn register_blocking<F, E>(mut self, jobtype: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Job, JobContext) -> Result<(), E> + Send + Sync + 'static,
        E: Into<BoxError> + 'static,
    {
        self.handlers
            .insert(jobtype.into(), Arc::new(BlockingHandler(Arc::new(handler))));
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
        Ok(Worker {
            engine,
            handlers: self.handlers,
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
    handlers: HashMap<String, Arc<dyn Handler<R>>>,
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
    pub async fn run(self) -> StopReport {
        driver::run(self).await
    }
}
