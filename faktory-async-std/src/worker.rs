//! The worker: runs registered handlers for fetched jobs, driven by `faktory_proto::worker`.
//!
//! Every decision (connections, FETCH scheduling, BEAT, quiet/terminate, shutdown, reconnects,
//! re-sending unconfirmed ACK/FAIL) is the engine's; this module opens sockets, moves bytes,
//! sleeps until the engine's deadline and runs handlers on the [`Spawner`]'s executor.

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_io::Timer;
use bytes::{Buf, Bytes};
use faktory_proto::adapter::WorkerSettings;
use faktory_proto::job::Job;
use faktory_proto::ops;
use faktory_proto::worker::{self as engine, ConnId, Event, JobToken, Outcome, StopReport};
use futures_io::{AsyncRead, AsyncWrite};
use futures_lite::{Stream, future};
use tracing::Instrument;

use crate::error::Error;
use crate::handler::{
    AsyncHandler, BlockingHandler, BoxError, Handler, JobContext, run_to_outcome,
};
use crate::rt::{CancellationToken, Spawner};
use crate::transport::{BoxStream, Target};

type ShutdownSignal = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Configures a [`Worker`]: handlers, concurrency, queues, shutdown.
///
/// ```no_run
/// # async fn demo() -> Result<(), faktory_async_std::Error> {
/// use faktory_async_std::{CancellationToken, Job, Worker};
///
/// let stop = CancellationToken::new(); // call stop.cancel() to shut down gracefully
/// let worker = Worker::builder()
///     .register("SendEmail", |job: Job| async move {
///         let (to,): (String,) = job.args_as()?;
///         println!("sending to {to}");
///         Ok::<(), faktory_async_std::BoxError>(())
///     })
///     .concurrency(20)
///     .queues(["critical", "default"])
///     .shutdown_signal(stop.clone().cancelled_owned())
///     .build()?;
/// let report = worker.run().await;
/// println!("stopped: {:?}", report.reason);
/// # Ok(()) }
/// ```
#[must_use]
pub struct WorkerBuilder {
    settings: WorkerSettings,
    handlers: HashMap<String, Arc<dyn Handler>>,
    shutdown: Option<ShutdownSignal>,
    spawner: Spawner,
    #[cfg(feature = "tls")]
    tls: crate::transport::TlsConfig,
}

impl std::fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("settings", &self.settings)
            .field("jobtypes", &self.handlers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Default for WorkerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl WorkerBuilder {
    faktory_proto::__worker_builder_setters!();

    /// A builder with the engine's defaults (concurrency 10, queue `default`, 15 s heartbeat, 25 s
    /// grace period) and the server from the environment.
    pub fn new() -> Self {
        let mut settings = WorkerSettings::default();
        settings.config.pid = Some(std::process::id());
        settings.config.hostname = hostname();
        WorkerBuilder {
            settings,
            handlers: HashMap::new(),
            shutdown: None,
            spawner: Spawner::global(),
            #[cfg(feature = "tls")]
            tls: crate::transport::TlsConfig::default(),
        }
    }

    /// Registers an async handler for `jobtype`. Its error becomes a FAIL with the error's type
    /// name, message and source chain; a panic becomes a FAIL with errtype `panic`.
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

    /// Registers a blocking handler for `jobtype`, run on the `blocking` crate's thread pool (the
    /// pool behind `smol::unblock` and `async_std::task::spawn_blocking`).
    pub fn register_blocking<F, E>(mut self, jobtype: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Job, JobContext) -> Result<(), E> + Send + Sync + 'static,
        E: Into<BoxError> + 'static,
    {
        self.handlers
            .insert(jobtype.into(), Arc::new(BlockingHandler(Arc::new(handler))));
        self
    }

    /// When this future completes, the worker shuts down gracefully (a [`CancellationToken`]'s
    /// `cancelled_owned()`, a signal handler's future, …).
    pub fn shutdown_signal<F>(mut self, signal: F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.shutdown = Some(Box::pin(signal));
        self
    }

    /// How certificates are verified on `tcp+tls://` (webpki roots by default).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::transport::TlsConfig) -> Self {
        self.tls = tls;
        self
    }

    /// Where handlers and socket tasks run (default: [`Spawner::global`]).
    pub fn spawner(mut self, spawner: Spawner) -> Self {
        self.spawner = spawner;
        self
    }

    /// Validates the configuration and builds the worker (no connection is made yet).
    pub fn build(self) -> Result<Worker, Error> {
        let (url, config) = self.settings.resolve(|k| std::env::var(k).ok())?;
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
            handlers: self.handlers,
            target: Arc::new(target),
            shutdown: self.shutdown,
            spawner: self.spawner,
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
        .and_then(|s| ops::rss_kb_from_proc_status(&s))
}

/// A Faktory worker process.
pub struct Worker {
    engine: engine::Worker,
    handlers: HashMap<String, Arc<dyn Handler>>,
    target: Arc<Target>,
    shutdown: Option<ShutdownSignal>,
    spawner: Spawner,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("wid", &self.engine.wid())
            .field("lifecycle", &self.engine.lifecycle())
            .finish()
    }
}

enum Msg {
    Connected(ConnId, Result<(), io::Error>),
    Input(ConnId, Bytes),
    Eof(ConnId),
    IoError(ConnId, io::Error),
    JobDone(JobToken, Outcome),
}

/// What the main loop keeps of one socket's task.
struct ConnTasks {
    /// Bytes for the socket; dropping it lets the task flush what is queued (END), then close.
    writer: async_channel::Sender<Bytes>,
    /// Fired on close: abandons a connect still in progress.
    closed: CancellationToken,
}

impl ConnTasks {
    fn close(self) {
        drop(self.writer);
        self.closed.cancel();
    }
}

struct RunningJob {
    /// The handler's [`JobContext::cancellation`].
    cancel: CancellationToken,
    /// Drops the handler's future (when the worker stops).
    abort: CancellationToken,
}

/// What woke the main loop.
enum Wake {
    Msg(Option<Msg>),
    Timeout,
    Signal,
}

/// How long a closing socket may take to flush what is queued (END) before it is dropped.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

impl Worker {
    /// A [`WorkerBuilder`].
    pub fn builder() -> WorkerBuilder {
        WorkerBuilder::new()
    }

    /// This worker's id.
    pub fn wid(&self) -> &str {
        self.engine.wid()
    }

    /// Runs until the shutdown signal fires, the server says terminate, or the server refuses the
    /// worker for good; returns why, with any outcome the server did not confirm. It never exits the
    /// process.
    pub async fn run(mut self) -> StopReport {
        let (tx, rx) = async_channel::unbounded::<Msg>();
        let mut rx = Box::pin(rx);
        let mut conns: HashMap<ConnId, ConnTasks> = HashMap::new();
        let mut jobs: HashMap<JobToken, RunningJob> = HashMap::new();
        let mut shutdown = self.shutdown.take();
        let mut timer = Timer::never();
        let mut next_rss = Instant::now();
        let rss_every = Duration::from_secs(5);
        tracing::info!(wid = %self.engine.wid(), server = %self.target.authority(), "faktory worker starting");
        loop {
            while let Some((conn, bytes)) = self.engine.poll_transmit() {
                if let Some(c) = conns.get(&conn) {
                    if tracing::enabled!(tracing::Level::TRACE) {
                        tracing::trace!(conn = conn.0, wire = %ops::wire_for_log(&bytes), "faktory send");
                    }
                    let _ = c.writer.try_send(bytes);
                }
            }
            while let Some(event) = self.engine.poll_event() {
                match event {
                    Event::OpenConnection(conn) => {
                        let tasks = self.open_connection(conn, tx.clone());
                        conns.insert(conn, tasks);
                    }
                    Event::CloseConnection(conn) => {
                        if let Some(c) = conns.remove(&conn) {
                            c.close();
                        }
                    }
                    Event::RunJob { token, job } => {
                        let running = self.spawn_job(token, *job, tx.clone());
                        jobs.insert(token, running);
                    }
                    Event::CancelJob(token) => {
                        if let Some(j) = jobs.remove(&token) {
                            j.cancel.cancel();
                        }
                    }
                    Event::JobConfirmed {
                        token,
                        jid,
                        confirmation,
                    } => {
                        tracing::debug!(jid = %jid, ?confirmation, "faktory job outcome confirmed");
                        jobs.remove(&token);
                    }
                    Event::JobSkipped { jid, reason, .. } => {
                        tracing::warn!(jid = ?jid, ?reason, "faktory job skipped");
                    }
                    Event::ConnectionFailed { conn, error } => {
                        tracing::warn!(conn = conn.0, %error, "faktory connection failed");
                    }
                    Event::CommandFailed {
                        conn,
                        command,
                        error,
                    } => {
                        tracing::warn!(conn = conn.0, command, %error, "faktory command failed");
                    }
                    Event::StateChanged(state) => {
                        tracing::info!(?state, "faktory worker lifecycle");
                    }
                    Event::Stopped(report) => {
                        for (_, c) in conns.drain() {
                            c.close();
                        }
                        for (_, j) in jobs.drain() {
                            j.cancel.cancel();
                            j.abort.cancel();
                        }
                        tracing::info!(reason = ?report.reason, clean = report.is_clean(), "faktory worker stopped");
                        return report;
                    }
                    _ => {}
                }
            }
            let now = Instant::now();
            if now >= next_rss {
                if let Some(kb) = read_rss_kb() {
                    self.engine.set_rss_kb(kb);
                }
                next_rss = now + rss_every;
            }
            let deadline = self.engine.poll_timeout();
            if let Some(at) = deadline {
                timer.set_at(at);
            }
            let wake = poll_fn(|cx| {
                if let Poll::Ready(msg) = rx.as_mut().poll_next(cx) {
                    return Poll::Ready(Wake::Msg(msg));
                }
                if deadline.is_some() && Pin::new(&mut timer).poll(cx).is_ready() {
                    return Poll::Ready(Wake::Timeout);
                }
                if let Some(signal) = shutdown.as_mut() {
                    if signal.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Wake::Signal);
                    }
                }
                Poll::Pending
            })
            .await;
            match wake {
                Wake::Msg(Some(msg)) => {
                    self.handle(msg);
                    while let Ok(more) = rx.try_recv() {
                        self.handle(more);
                    }
                    // A steady stream of messages must not starve the engine's deadline.
                    let now = Instant::now();
                    if self.engine.poll_timeout().is_some_and(|at| at <= now) {
                        self.engine.handle_timeout(now);
                    }
                }
                // Unreachable while this loop holds `tx`.
                Wake::Msg(None) => {}
                Wake::Timeout => self.engine.handle_timeout(Instant::now()),
                Wake::Signal => {
                    shutdown = None;
                    tracing::info!("faktory worker shutting down");
                    self.engine.shutdown(Instant::now());
                }
            }
        }
    }

    fn handle(&mut self, msg: Msg) {
        let now = Instant::now();
        match msg {
            Msg::Connected(conn, Ok(())) => self.engine.handle_connected(conn, now),
            Msg::Connected(conn, Err(e)) => self.engine.handle_connect_failed(conn, &e, now),
            Msg::Input(conn, bytes) => {
                if tracing::enabled!(tracing::Level::TRACE) {
                    tracing::trace!(conn = conn.0, wire = %ops::wire_for_log(&bytes), "faktory recv");
                }
                self.engine.handle_input(conn, &bytes, now);
            }
            Msg::Eof(conn) => self.engine.handle_eof(conn, now),
            Msg::IoError(conn, e) => self.engine.handle_io_error(conn, &e, now),
            Msg::JobDone(token, outcome) => {
                self.engine.handle_job_finished(token, outcome, now);
            }
        }
    }

    fn spawn_job(&self, token: JobToken, job: Job, tx: async_channel::Sender<Msg>) -> RunningJob {
        let cancel = CancellationToken::new();
        let abort = CancellationToken::new();
        let ctx = JobContext::new(&job, cancel.clone());
        let span = tracing::info_span!("faktory.job", jid = %job.jid, jobtype = %job.jobtype, queue = %job.queue());
        let handler = self.handlers.get(&job.jobtype).cloned();
        let task = async move {
            let outcome = match handler {
                Some(h) => run_to_outcome(&*h, job, ctx).await,
                None => ops::unknown_jobtype_outcome(&job.jobtype),
            };
            match &outcome {
                Outcome::Ok => tracing::debug!("job succeeded"),
                other => tracing::warn!(outcome = ?other, "job failed"),
            }
            let _ = tx.try_send(Msg::JobDone(token, outcome));
        }
        .instrument(span);
        self.spawner
            .spawn(future::or(task, abort.clone().cancelled_owned()));
        RunningJob { cancel, abort }
    }

    /// Connects socket `conn`, then one task moves its bytes both ways until it is closed.
    fn open_connection(&self, conn: ConnId, tx: async_channel::Sender<Msg>) -> ConnTasks {
        let (wtx, wrx) = async_channel::unbounded::<Bytes>();
        let closed = CancellationToken::new();
        let abandon = closed.clone().cancelled_owned();
        let target = Arc::clone(&self.target);
        self.spawner.spawn(async move {
            let opened = future::or(async { Some(target.open().await) }, async {
                abandon.await;
                None
            })
            .await;
            let stream = match opened {
                None => return,
                Some(Err(e)) => {
                    let _ = tx.try_send(Msg::Connected(conn, Err(e.into_io())));
                    return;
                }
                Some(Ok(stream)) => stream,
            };
            if tx.try_send(Msg::Connected(conn, Ok(()))).is_err() {
                return;
            }
            let mut pump = Pump {
                conn,
                stream,
                writes: Box::pin(wrx),
                msgs: tx,
                rbuf: vec![0; 16 * 1024],
                out: Bytes::new(),
                needs_flush: false,
                closing: None,
            };
            poll_fn(|cx| pump.poll(cx)).await;
        });
        ConnTasks {
            writer: wtx,
            closed,
        }
    }
}

/// One connected socket: writes what the engine sends, reads what the server sends, and once the
/// engine closes it, flushes what is queued (END) and closes, within [`CLOSE_FLUSH_TIMEOUT`].
struct Pump {
    conn: ConnId,
    stream: BoxStream,
    writes: Pin<Box<async_channel::Receiver<Bytes>>>,
    msgs: async_channel::Sender<Msg>,
    rbuf: Vec<u8>,
    out: Bytes,
    needs_flush: bool,
    /// Set once the engine closed the socket: the flush deadline.
    closing: Option<Timer>,
}

impl Pump {
    /// Completes when the socket is finished (closed by the engine, EOF, an I/O error, or the worker
    /// gone).
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.out.is_empty() && self.closing.is_none() {
                match self.writes.as_mut().poll_next(cx) {
                    Poll::Ready(Some(bytes)) => {
                        self.out = bytes;
                        continue;
                    }
                    Poll::Ready(None) => self.closing = Some(Timer::after(CLOSE_FLUSH_TIMEOUT)),
                    Poll::Pending => {}
                }
            }
            if !self.out.is_empty() {
                match Pin::new(&mut self.stream).poll_write(cx, &self.out) {
                    Poll::Ready(Ok(0)) => return self.fail(io::ErrorKind::WriteZero.into()),
                    Poll::Ready(Ok(n)) => {
                        self.out.advance(n.min(self.out.len()));
                        self.needs_flush = true;
                        continue;
                    }
                    Poll::Ready(Err(e)) => return self.fail(e),
                    Poll::Pending => break,
                }
            }
            if self.needs_flush {
                match Pin::new(&mut self.stream).poll_flush(cx) {
                    Poll::Ready(Ok(())) => self.needs_flush = false,
                    Poll::Ready(Err(e)) => return self.fail(e),
                    Poll::Pending => break,
                }
            }
            if self.closing.is_some() {
                match Pin::new(&mut self.stream).poll_close(cx) {
                    Poll::Ready(_) => return Poll::Ready(()),
                    Poll::Pending => break,
                }
            }
            break;
        }
        if let Some(deadline) = self.closing.as_mut() {
            if Pin::new(deadline).poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        // Read until the socket has nothing more, but yield now and then to stay fair.
        for _ in 0..32 {
            match Pin::new(&mut self.stream).poll_read(cx, &mut self.rbuf) {
                Poll::Ready(Ok(0)) => {
                    let _ = self.msgs.try_send(Msg::Eof(self.conn));
                    return Poll::Ready(());
                }
                Poll::Ready(Ok(n)) => {
                    let data = Bytes::copy_from_slice(self.rbuf.get(..n).unwrap_or_default());
                    if self.msgs.try_send(Msg::Input(self.conn, data)).is_err() {
                        return Poll::Ready(());
                    }
                }
                Poll::Ready(Err(e)) => return self.fail(e),
                Poll::Pending => return Poll::Pending,
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn fail(&self, error: io::Error) -> Poll<()> {
        let _ = self.msgs.try_send(Msg::IoError(self.conn, error));
        Poll::Ready(())
    }
}
