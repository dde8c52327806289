//! The worker: runs registered handlers for fetched jobs on a pool of threads, driven by
//! `faktory_proto::worker`.
//!
//! Every decision (connections, FETCH scheduling, BEAT, quiet/terminate, shutdown, reconnects,
//! re-sending unconfirmed ACK/FAIL) is the engine's. This module opens sockets, moves bytes, waits
//! until the engine's deadline and runs handlers:
//!
//! - `run()` turns the calling thread into the engine thread. It waits on one `std::sync::mpsc`
//!   channel with `recv_timeout(until the engine's deadline)`; everything the engine reacts to
//!   arrives there: bytes, EOF and errors from the sockets, finished jobs, the shutdown handle.
//! - Each connection gets a thread that connects (TCP, TLS) and then reads the socket, forwarding
//!   what it reads to the channel. The engine thread writes to the sockets itself (requests are
//!   small, each socket has a write timeout), after grouping the engine's output per connection.
//! - Jobs run on a pool of at most `concurrency` threads, started as needed and fed by a channel;
//!   each reports its outcome to the engine's channel. Panics are caught with `catch_unwind`.

use std::collections::HashMap;
use std::io;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use faktory_proto::api::{self, JobRun, StateMap, WorkerSettings};
use faktory_proto::client::{ConnectFailure, ConnectPhase};
use faktory_proto::config::ServerUrl;
use faktory_proto::handshake::Password;
use faktory_proto::job::Job;
use faktory_proto::worker::{
    self as engine, ConnId, Event, JobToken, Outcome, PushError, PushId, Queues, StopReport,
    WorkerConfig,
};

use crate::error::Error;
use crate::handler::{
    BoxError, CancellationToken, Chain, Handler, JobContext, Middleware, PushCall, Pusher, Shaped,
    WorkerShared, lock, run_to_outcome,
};
use crate::shutdown::ShutdownHandle;
use crate::transport::{ReadEvent, Target, Writer};

/// Configures a [`Worker`]: handlers, concurrency, queues, shutdown.
///
/// ```no_run
/// # fn demo() -> Result<(), faktory_blocking::Error> {
/// use faktory_blocking::{Job, ShutdownHandle, Worker};
///
/// let stop = ShutdownHandle::new();
/// let worker = Worker::builder()
///     .register("SendEmail", |job: Job| {
///         let (to,): (String,) = job.args_as()?;
///         println!("sending to {to}");
///         Ok::<(), faktory_blocking::BoxError>(())
///     })
///     .concurrency(20)
///     .queues(["critical", "default"])
///     .shutdown_signal(stop.clone()) // call stop.shutdown() from a signal handler
///     .build()?;
/// let report = worker.run();
/// println!("stopped: {:?}", report.reason);
/// # Ok(()) }
/// ```
#[must_use]
pub struct WorkerBuilder {
    settings: WorkerSettings,
    handlers: HashMap<String, Box<dyn crate::handler::Dispatch>>,
    layers: Vec<Box<dyn Middleware>>,
    state: StateMap,
    shutdown: Option<ShutdownHandle>,
    handle_signals: bool,
    #[cfg(feature = "tls")]
    tls: crate::TlsConfig,
}

impl std::fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("settings", &self.settings)
            .field("jobtypes", &self.handlers.keys().collect::<Vec<_>>())
            .field("middleware", &self.layers.len())
            .finish_non_exhaustive()
    }
}

impl Default for WorkerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl WorkerBuilder {
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
        self.settings.url = Some(ServerUrl::parse(url)?);
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

    /// A builder with the engine's defaults (concurrency 10, queue `default`, 15 s heartbeat, 25 s
    /// grace period) and the server from the environment.
    pub fn new() -> Self {
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
            #[cfg(feature = "tls")]
            tls: crate::TlsConfig::default(),
        }
    }

    /// Registers a handler for `jobtype`: a closure of one of the [`Handler`] shapes, taking the
    /// [`Job`] or its args deserialized (a tuple, a struct, a map), with or without the
    /// [`JobContext`]. It runs on one of the worker's threads; its error becomes a FAIL with the
    /// error's type name, message and source chain; a panic becomes a FAIL with errtype `panic`. A
    /// second handler for the same jobtype replaces the first.
    ///
    /// ```no_run
    /// use faktory_blocking::{BoxError, Job, JobContext, Worker, WorkerBuilder};
    ///
    /// fn worker() -> WorkerBuilder {
    ///     Worker::builder()
    ///         // Typed args: the error type is `HandlerError`, `?` works on any error.
    ///         .register("Mail", |(to, n): (String, u32)| {
    ///             let addr: std::net::Ipv4Addr = "10.0.0.1".parse()?;
    ///             println!("mail {n} to {to} via {addr}");
    ///             Ok(())
    ///         })
    ///         .register("Resize", |(file,): (String,), ctx: JobContext| {
    ///             println!("{file} ({})", ctx.jid());
    ///             Ok(())
    ///         })
    ///         // The whole job, any error type.
    ///         .register("Raw", |job: Job| {
    ///             println!("{:?}", job.args);
    ///             Ok::<(), BoxError>(())
    ///         })
    /// }
    /// ```
    pub fn register<M: 'static, H: Handler<M>>(
        mut self,
        jobtype: impl Into<String>,
        handler: H,
    ) -> Self {
        let shaped = Shaped(handler, PhantomData::<fn() -> M>);
        self.handlers.insert(jobtype.into(), Box::new(shaped));
        self
    }

    /// [`WorkerBuilder::register`] for a handler that takes the job and its [`JobContext`] (the
    /// closure's argument types need no annotation here).
    pub fn register_with_context<F, E>(self, jobtype: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Job, JobContext) -> Result<(), E> + Send + Sync + 'static,
        E: Into<BoxError> + 'static,
    {
        self.register(jobtype, handler)
    }

    /// The same as [`WorkerBuilder::register`] (every handler is blocking here); the name matches
    /// `faktory-tokio`'s, so code moves between the two unchanged.
    pub fn register_blocking<M: 'static, H: Handler<M>>(
        self,
        jobtype: impl Into<String>,
        handler: H,
    ) -> Self {
        self.register(jobtype, handler)
    }

    /// Adds a [`Middleware`] around every job's handler. The first added is the outermost: it runs
    /// first and sees the result last.
    pub fn middleware(mut self, layer: impl Middleware) -> Self {
        self.layers.push(Box::new(layer));
        self
    }

    /// Shares `value` with every handler and middleware: [`JobContext::state`] gives it back by
    /// its type (`ctx.state::<T>()`). Any number of types; a second value of the same type
    /// replaces the first.
    ///
    /// ```no_run
    /// use faktory_blocking::{JobContext, Worker, WorkerBuilder};
    ///
    /// struct Config {
    ///     greeting: String,
    /// }
    ///
    /// fn worker() -> WorkerBuilder {
    ///     Worker::builder()
    ///         .state(Config { greeting: "hello".into() })
    ///         .register("Greet", |(name,): (String,), ctx: JobContext| {
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

    /// Stop the worker through this handle: [`ShutdownHandle::shutdown`] shuts down gracefully,
    /// [`ShutdownHandle::shutdown_now`] ends the grace period at once. Wire your signal handler
    /// (e.g. the `ctrlc` crate's) to it. Without this, [`Worker::shutdown_handle`] gives the
    /// worker's own handle.
    pub fn shutdown_signal(mut self, handle: ShutdownHandle) -> Self {
        self.shutdown = Some(handle);
        self
    }

    /// Whether the worker shuts down on the process's termination signals while it runs (default
    /// `true`; Unix, through `signal-hook`): on SIGTERM (what systemd, Docker and Kubernetes send)
    /// or SIGINT (Ctrl-C) it stops fetching, gives running jobs the grace period
    /// ([`WorkerBuilder::grace_period`], 25 s by default), FAILs what still runs (so it is
    /// retried), waits for the server to confirm every ACK and FAIL and returns; a second signal
    /// ends the grace period at once. The handler is installed when [`Worker::run`] starts and
    /// removed when it returns.
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

    /// Validates the configuration and builds the worker (no connection is made yet).
    pub fn build(self) -> Result<Worker, Error> {
        let (url, config) = self.settings.resolve(|k| std::env::var(k).ok())?;
        let write_timeout = config.client.reply_timeout.max(Duration::from_secs(1));
        let concurrency = config.concurrency;
        let engine = engine::Worker::new(config, Instant::now()).map_err(Error::WorkerConfig)?;
        let target = Target {
            host: url.host.clone(),
            port: url.port,
            tls: url.tls,
            #[cfg(feature = "tls")]
            tls_config: self.tls,
            connect_timeout: self.settings.connect_timeout,
        };
        Ok(Worker {
            engine,
            chain: Arc::new(Chain {
                layers: self.layers,
                handlers: self.handlers,
            }),
            state: self.state,
            pushes: HashMap::new(),
            target: Arc::new(target),
            shutdown: self.shutdown.unwrap_or_default(),
            handle_signals: self.handle_signals,
            concurrency,
            write_timeout,
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

fn read_rss_kb() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| api::rss_kb_from_proc_status(&s))
}

/// A Faktory worker process.
pub struct Worker {
    engine: engine::Worker,
    chain: Arc<Chain>,
    state: StateMap,
    /// Who waits for which push's answer ([`JobContext::push`]).
    pushes: HashMap<PushId, Sender<Result<(), PushError>>>,
    target: Arc<Target>,
    shutdown: ShutdownHandle,
    handle_signals: bool,
    concurrency: usize,
    write_timeout: Duration,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("wid", &self.engine.wid())
            .field("lifecycle", &self.engine.lifecycle())
            .finish()
    }
}

/// What the engine thread reacts to.
pub(crate) enum Msg {
    Connected(ConnId, Result<Writer, ConnectFailure>),
    Input(ConnId, Bytes),
    Eof(ConnId),
    IoError(ConnId, io::Error),
    JobDone(JobToken, Outcome),
    Shutdown {
        now: bool,
    },
    /// A follow-up job from a handler ([`JobContext::push`]).
    /// (Boxed: a `Job` is large, and every message on the channel is as large as the largest.)
    Push(Box<PushCall>),
}

enum ConnState {
    /// Its thread is connecting; set the flag to have the socket closed once it is connected.
    Connecting(Arc<AtomicBool>),
    Open(Writer),
}

/// The most messages handled before the engine's output is written again.
const BATCH: usize = 512;
/// How often the resident memory is read for BEAT.
const RSS_EVERY: Duration = Duration::from_secs(5);

impl Worker {
    /// A [`WorkerBuilder`].
    pub fn builder() -> WorkerBuilder {
        WorkerBuilder::new()
    }

    /// This worker's id.
    pub fn wid(&self) -> &str {
        self.engine.wid()
    }

    /// The handle that stops this worker (the one given to [`WorkerBuilder::shutdown_signal`], or
    /// the worker's own). Clone it into a signal handler or another thread before calling
    /// [`Worker::run`].
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Runs `job` through the middleware and its handler as the worker would, on the calling
    /// thread, without a server: for tests. The context has the worker's state and records what
    /// the job pushes; the returned [`JobRun`] has the outcome (ACK or FAIL) and those jobs.
    ///
    /// ```
    /// use faktory_blocking::{HandlerError, Job, JobContext, Next, Outcome, Worker};
    ///
    /// let worker = Worker::builder()
    ///     .state(2u32)
    ///     .middleware(|job: Job, ctx: JobContext, next: Next| {
    ///         // Here: what every job goes through (it is only passed on).
    ///         next.run(job, ctx)
    ///     })
    ///     .register("Double", |(n,): (u32,), ctx: JobContext| {
    ///         let factor = ctx.state::<u32>()?;
    ///         ctx.push(Job::with_args("Print", (n * factor,))?)?;
    ///         Ok(())
    ///     })
    ///     .register("Fail", |(n,): (u32,)| Err(HandlerError::msg(format!("no {n}"))))
    ///     .build()
    ///     .unwrap();
    ///
    /// let run = worker.run_job(Job::with_args("Double", (21,)).unwrap());
    /// assert_eq!(run.outcome, Outcome::Ok);
    /// assert_eq!(run.pushed[0].args, [serde_json::json!(42)]);
    ///
    /// let run = worker.run_job(Job::with_args("Fail", (7,)).unwrap());
    /// assert!(matches!(run.outcome, Outcome::Failed { ref message, .. } if message == "no 7"));
    /// ```
    pub fn run_job(&self, job: Job) -> JobRun {
        let shared = Arc::new(WorkerShared::recorder(self.state.clone()));
        let ctx = JobContext::new(&job, CancellationToken::new(), shared);
        let outcome = run_to_outcome(&self.chain, job, ctx.clone());
        JobRun::new(outcome, ctx.pushed())
    }

    /// Runs on the calling thread until the shutdown handle fires, the server says terminate, or
    /// the server refuses the worker for good; returns why, with any outcome the server did not
    /// confirm. It never exits the process. A handler still running when it returns (one that
    /// ignored its cancellation token) keeps its thread until it returns; its outcome is dropped.
    pub fn run(mut self) -> StopReport {
        let (tx, rx) = mpsc::channel::<Msg>();
        let mut conns: HashMap<ConnId, ConnState> = HashMap::new();
        let mut jobs: HashMap<JobToken, CancellationToken> = HashMap::new();
        let mut pool = Pool::new(self.concurrency, tx.clone(), Arc::clone(&self.chain));
        let shared = Arc::new(WorkerShared {
            state: std::mem::take(&mut self.state),
            pusher: Pusher::Worker(tx.clone()),
        });
        let mut out: Vec<(ConnId, BytesMut)> = Vec::new();
        let mut next_rss = Instant::now();
        tracing::info!(wid = %self.engine.wid(), server = %self.target.authority(), "faktory worker starting");
        let _signals = self
            .handle_signals
            .then(|| crate::shutdown::on_termination_signals(&self.shutdown))
            .flatten();
        match self.shutdown.register(tx.clone()) {
            0 => {}
            1 => self.engine.shutdown(Instant::now()),
            _ => self.engine.shutdown_now(Instant::now()),
        }
        loop {
            // 1. Write everything the engine queued, grouped per connection, before its events.
            while let Some((conn, bytes)) = self.engine.poll_transmit() {
                match out.iter_mut().find(|(c, _)| *c == conn) {
                    Some((_, buf)) => buf.extend_from_slice(&bytes),
                    None => out.push((conn, BytesMut::from(&bytes[..]))),
                }
            }
            let mut write_failed = false;
            for (conn, bytes) in out.drain(..) {
                let Some(ConnState::Open(writer)) = conns.get_mut(&conn) else {
                    continue;
                };
                if tracing::enabled!(tracing::Level::TRACE) {
                    tracing::trace!(conn = conn.0, wire = %api::wire_for_log(&bytes), "faktory send");
                }
                if let Err(e) = writer.write_all(&bytes) {
                    self.engine
                        .handle_transport_error(conn, &e.to_string(), Instant::now());
                    write_failed = true;
                }
            }
            if write_failed {
                continue;
            }
            // 2. Events.
            while let Some(event) = self.engine.poll_event() {
                match event {
                    Event::OpenConnection(conn) => {
                        let cancelled = Arc::new(AtomicBool::new(false));
                        match open_connection(
                            conn,
                            Arc::clone(&self.target),
                            tx.clone(),
                            Arc::clone(&cancelled),
                            self.write_timeout,
                        ) {
                            Ok(()) => {
                                conns.insert(conn, ConnState::Connecting(cancelled));
                            }
                            Err(e) => {
                                conns.insert(conn, ConnState::Connecting(cancelled));
                                let failure = ConnectFailure::transient(
                                    ConnectPhase::Tcp,
                                    format!("cannot start a connection thread: {e}"),
                                );
                                let _ = tx.send(Msg::Connected(conn, Err(failure)));
                            }
                        }
                    }
                    Event::CloseConnection(conn) => match conns.remove(&conn) {
                        Some(ConnState::Open(writer)) => writer.close(),
                        Some(ConnState::Connecting(cancelled)) => {
                            cancelled.store(true, Ordering::Release);
                        }
                        None => {}
                    },
                    Event::RunJob { token, job } => {
                        let cancel = CancellationToken::new();
                        let ctx = JobContext::new(&job, cancel.clone(), Arc::clone(&shared));
                        pool.run(Task {
                            token,
                            job: *job,
                            ctx,
                        });
                        jobs.insert(token, cancel);
                    }
                    Event::CancelJob(token) => {
                        if let Some(c) = jobs.remove(&token) {
                            c.cancel();
                        }
                    }
                    Event::JobConfirmed { token, .. } => {
                        jobs.remove(&token);
                    }
                    Event::Pushed { id, result } => {
                        if let Some(reply) = self.pushes.remove(&id) {
                            let _ = reply.send(result);
                        }
                    }
                    Event::Stopped(report) => {
                        for (_, c) in conns.drain() {
                            match c {
                                ConnState::Open(writer) => writer.close(),
                                ConnState::Connecting(cancelled) => {
                                    cancelled.store(true, Ordering::Release);
                                }
                            }
                        }
                        for (_, c) in jobs.drain() {
                            c.cancel();
                        }
                        return report;
                    }
                    _ => {}
                }
            }
            // 3. Wait for the first message or the deadline, then take what else is waiting.
            let now = Instant::now();
            if now >= next_rss {
                if let Some(kb) = read_rss_kb() {
                    self.engine.set_rss_kb(kb);
                }
                next_rss = now + RSS_EVERY;
            }
            let first = match self.engine.poll_timeout() {
                Some(deadline) if deadline <= now => {
                    self.engine.handle_timeout(now);
                    continue;
                }
                Some(deadline) => rx.recv_timeout(deadline - now),
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let mut next = match first {
                Ok(msg) => Some(msg),
                Err(RecvTimeoutError::Timeout) => {
                    self.engine.handle_timeout(Instant::now());
                    continue;
                }
                // Unreachable while this thread holds `tx`; stop waiting all the same.
                Err(RecvTimeoutError::Disconnected) => None,
            };
            // The engine runs once for everything taken (its outputs are drained next).
            self.engine.begin_batch();
            let mut handled = 0;
            while let Some(msg) = next.take() {
                self.handle(msg, &mut conns, &mut pool);
                handled += 1;
                if handled < BATCH {
                    next = rx.try_recv().ok();
                }
            }
            self.engine.end_batch();
            let now = Instant::now();
            if self.engine.poll_timeout().is_some_and(|t| t <= now) {
                self.engine.handle_timeout(now);
            }
        }
    }

    fn handle(&mut self, msg: Msg, conns: &mut HashMap<ConnId, ConnState>, pool: &mut Pool) {
        let now = Instant::now();
        match msg {
            Msg::Connected(conn, result) => match (conns.get_mut(&conn), result) {
                (Some(state @ ConnState::Connecting(_)), Ok(writer)) => {
                    *state = ConnState::Open(writer);
                    tracing::debug!(conn = conn.0, "faktory socket connected");
                    self.engine.handle_connected(conn, now);
                }
                (Some(ConnState::Connecting(_)), Err(failure)) => {
                    tracing::debug!(conn = conn.0, %failure, "faktory socket failed to open");
                    self.engine.handle_connect_failed(conn, &failure, now);
                }
                // Closed meanwhile: drop the socket (its writer shuts it down).
                _ => {}
            },
            Msg::Input(conn, bytes) => {
                if tracing::enabled!(tracing::Level::TRACE) {
                    tracing::trace!(conn = conn.0, wire = %api::wire_for_log(&bytes), "faktory recv");
                }
                if conns.contains_key(&conn) {
                    self.engine.handle_input(conn, &bytes, now);
                }
            }
            Msg::Eof(conn) => {
                if conns.contains_key(&conn) {
                    self.engine.handle_eof(conn, now);
                }
            }
            Msg::IoError(conn, e) => {
                if conns.contains_key(&conn) {
                    self.engine
                        .handle_transport_error(conn, &e.to_string(), now);
                }
            }
            Msg::JobDone(token, outcome) => {
                pool.finished();
                self.engine.handle_job_finished(token, outcome, now);
            }
            Msg::Shutdown { now: false } => {
                tracing::info!("faktory worker shutting down");
                self.engine.shutdown(now);
            }
            Msg::Shutdown { now: true } => {
                tracing::info!("faktory worker shutting down now");
                self.engine.shutdown_now(now);
            }
            Msg::Push(call) => {
                let (job, reply) = *call;
                let id = self.engine.push(job, now);
                self.pushes.insert(id, reply);
            }
        }
    }
}

/// Connects socket `conn` on a thread of its own, hands the write half to the engine thread, then
/// reads the socket until EOF, an error, or the engine thread shutting it down.
fn open_connection(
    conn: ConnId,
    target: Arc<Target>,
    tx: Sender<Msg>,
    cancelled: Arc<AtomicBool>,
    write_timeout: Duration,
) -> Result<(), io::Error> {
    std::thread::Builder::new()
        .name(format!("faktory-conn-{}", conn.0))
        .spawn(move || {
            let deadline = Instant::now() + target.connect_timeout;
            let opened = match target.open(deadline) {
                Ok(s) => s,
                Err(failure) => {
                    let _ = tx.send(Msg::Connected(conn, Err(failure)));
                    return;
                }
            };
            if cancelled.load(Ordering::Acquire) {
                return;
            }
            let (reader, writer) = match opened.split() {
                Ok(halves) => halves,
                Err(_) => {
                    let failure =
                        ConnectFailure::transient(ConnectPhase::Tcp, "could not split the socket");
                    let _ = tx.send(Msg::Connected(conn, Err(failure)));
                    return;
                }
            };
            writer.set_write_timeout(Some(write_timeout));
            if tx.send(Msg::Connected(conn, Ok(writer))).is_err() {
                return;
            }
            crate::transport::read_loop(reader, |event| {
                let msg = match event {
                    ReadEvent::Data(b) => Msg::Input(conn, b),
                    ReadEvent::Eof => Msg::Eof(conn),
                    ReadEvent::Error(e) => Msg::IoError(conn, e),
                };
                tx.send(msg).is_ok()
            });
        })
        .map(|_| ())
}

/// One job for the pool.
struct Task {
    token: JobToken,
    job: Job,
    ctx: JobContext,
}

/// At most `max` handler threads, started as needed, taking tasks from one channel.
struct Pool {
    tasks: Sender<Task>,
    queue: Arc<Mutex<Receiver<Task>>>,
    done: Sender<Msg>,
    chain: Arc<Chain>,
    spawned: usize,
    busy: usize,
    max: usize,
}

impl Pool {
    fn new(max: usize, done: Sender<Msg>, chain: Arc<Chain>) -> Self {
        let (tasks, queue) = mpsc::channel();
        Pool {
            tasks,
            queue: Arc::new(Mutex::new(queue)),
            done,
            chain,
            spawned: 0,
            busy: 0,
            max,
        }
    }

    fn run(&mut self, task: Task) {
        if self.busy >= self.spawned && self.spawned < self.max {
            let queue = Arc::clone(&self.queue);
            let done = self.done.clone();
            let chain = Arc::clone(&self.chain);
            let spawned = std::thread::Builder::new()
                .name(format!("faktory-job-{}", self.spawned))
                .spawn(move || handler_thread(&queue, &done, &chain));
            match spawned {
                Ok(_) => self.spawned += 1,
                Err(e) if self.spawned == 0 => {
                    tracing::error!(error = %e, "cannot start a handler thread");
                    let outcome = Outcome::failed("ThreadSpawn", e.to_string());
                    let _ = self.done.send(Msg::JobDone(task.token, outcome));
                    self.busy += 1;
                    return;
                }
                // The task waits for one of the running threads.
                Err(e) => tracing::warn!(error = %e, "cannot start another handler thread"),
            }
        }
        self.busy += 1;
        if let Err(mpsc::SendError(task)) = self.tasks.send(task) {
            // Unreachable: the pool holds the receiver.
            let _ = self.done.send(Msg::JobDone(
                task.token,
                Outcome::failed("Internal", "handler pool is gone"),
            ));
        }
    }

    fn finished(&mut self) {
        self.busy = self.busy.saturating_sub(1);
    }
}

fn handler_thread(queue: &Mutex<Receiver<Task>>, done: &Sender<Msg>, chain: &Arc<Chain>) {
    loop {
        let task = lock(queue).recv();
        let Ok(Task { token, job, ctx }) = task else {
            return;
        };
        let span = tracing::info_span!("faktory.job", jid = %job.jid, jobtype = %job.jobtype, queue = %job.queue());
        // The engine logs the outcome.
        let outcome = span.in_scope(|| run_to_outcome(chain, job, ctx));
        if done.send(Msg::JobDone(token, outcome)).is_err() {
            return;
        }
    }
}
