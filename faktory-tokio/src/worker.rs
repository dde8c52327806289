//! The worker: runs registered handlers for fetched jobs, driven by `faktory_proto::worker`.
//!
//! Every decision (connections, FETCH scheduling, BEAT, quiet/terminate, shutdown, reconnects,
//! re-sending unconfirmed ACK/FAIL) is the engine's; this module opens sockets, moves bytes,
//! sleeps until the engine's deadline and runs handlers on tokio tasks.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use faktory_proto::adapter::WorkerSettings;
use faktory_proto::job::Job;
use faktory_proto::ops;
use faktory_proto::worker::{self as engine, ConnId, Event, JobToken, Outcome, StopReport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::Error;
use crate::handler::{
    AsyncHandler, BlockingHandler, BoxError, Handler, JobContext, run_to_outcome,
};
use crate::transport::Target;

type ShutdownSignal = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Configures a [`Worker`]: handlers, concurrency, queues, shutdown.
///
/// ```no_run
/// # async fn demo() -> Result<(), faktory_tokio::Error> {
/// use faktory_tokio::{Job, Worker};
///
/// let worker = Worker::builder()
///     .register("SendEmail", |job: Job| async move {
///         let (to,): (String,) = job.args_as()?;
///         println!("sending to {to}");
///         Ok::<(), faktory_tokio::BoxError>(())
///     })
///     .concurrency(20)
///     .queues(["critical", "default"])
///     .shutdown_signal(async { let _ = tokio::signal::ctrl_c().await; })
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

    /// Registers a blocking handler for `jobtype`, run on tokio's blocking pool.
    pub fn register_blocking<F, E>(mut self, jobtype: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Job, JobContext) -> Result<(), E> + Send + Sync + 'static,
        E: Into<BoxError> + 'static,
    {
        self.handlers
            .insert(jobtype.into(), Arc::new(BlockingHandler(Arc::new(handler))));
        self
    }

    /// When this future completes, the worker shuts down gracefully (a `CancellationToken`'s
    /// `cancelled_owned()`, `tokio::signal::ctrl_c()`, …).
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

    /// Validates the configuration and builds the worker (no connection is made yet).
    pub fn build(self) -> Result<Worker, Error> {
        let (url, config) = self.settings.resolve(|k| std::env::var(k).ok())?;
        let engine =
            engine::Worker::new(config, Instant::now().into_std()).map_err(Error::WorkerConfig)?;
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

struct ConnTasks {
    writer: mpsc::UnboundedSender<Bytes>,
    reader: AbortHandle,
}

struct RunningJob {
    cancel: CancellationToken,
    task: AbortHandle,
}

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
        let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
        let mut conns: HashMap<ConnId, ConnTasks> = HashMap::new();
        let mut jobs: HashMap<JobToken, RunningJob> = HashMap::new();
        let mut shutdown = self.shutdown.take();
        let mut next_rss = Instant::now();
        let rss_every = Duration::from_secs(5);
        tracing::info!(wid = %self.engine.wid(), server = %self.target.authority(), "faktory worker starting");
        loop {
            while let Some((conn, bytes)) = self.engine.poll_transmit() {
                if let Some(c) = conns.get(&conn) {
                    if tracing::enabled!(tracing::Level::TRACE) {
                        tracing::trace!(conn = conn.0, wire = %ops::wire_for_log(&bytes), "faktory send");
                    }
                    let _ = c.writer.send(bytes);
                }
            }
            while let Some(event) = self.engine.poll_event() {
                match event {
                    Event::OpenConnection(conn) => {
                        let tasks = open_connection(conn, Arc::clone(&self.target), tx.clone());
                        conns.insert(conn, tasks);
                    }
                    Event::CloseConnection(conn) => {
                        if let Some(c) = conns.remove(&conn) {
                            // Dropping the writer's sender lets it flush what is queued (END), then
                            // shut the socket down.
                            drop(c.writer);
                            c.reader.abort();
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
                            drop(c.writer);
                            c.reader.abort();
                        }
                        for (_, j) in jobs.drain() {
                            j.cancel.cancel();
                            j.task.abort();
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
            let far = now + Duration::from_secs(3600);
            let signal = async {
                match shutdown.as_mut() {
                    Some(s) => s.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                msg = rx.recv() => {
                    if let Some(msg) = msg {
                        self.handle(msg);
                        while let Ok(more) = rx.try_recv() {
                            self.handle(more);
                        }
                    }
                    // A steady stream of messages must not starve the engine's deadline (BEAT).
                    let now = Instant::now();
                    if self.engine.poll_timeout().is_some_and(|d| Instant::from_std(d) <= now) {
                        self.engine.handle_timeout(now.into_std());
                    }
                }
                () = tokio::time::sleep_until(deadline.map_or(far, Instant::from_std)), if deadline.is_some() => {
                    self.engine.handle_timeout(Instant::now().into_std());
                }
                () = signal => {
                    shutdown = None;
                    tracing::info!("faktory worker shutting down");
                    self.engine.shutdown(Instant::now().into_std());
                }
            }
        }
    }

    fn handle(&mut self, msg: Msg) {
        let now = Instant::now().into_std();
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

    fn spawn_job(&self, token: JobToken, job: Job, tx: mpsc::UnboundedSender<Msg>) -> RunningJob {
        let cancel = CancellationToken::new();
        let ctx = JobContext::new(&job, cancel.clone());
        let span = tracing::info_span!("faktory.job", jid = %job.jid, jobtype = %job.jobtype, queue = %job.queue());
        let handler = self.handlers.get(&job.jobtype).cloned();
        let task = tokio::spawn(
            async move {
                let outcome = match handler {
                    Some(h) => run_to_outcome(&*h, job, ctx).await,
                    None => ops::unknown_jobtype_outcome(&job.jobtype),
                };
                match &outcome {
                    Outcome::Ok => tracing::debug!("job succeeded"),
                    other => tracing::warn!(outcome = ?other, "job failed"),
                }
                let _ = tx.send(Msg::JobDone(token, outcome));
            }
            .instrument(span),
        );
        RunningJob {
            cancel,
            task: task.abort_handle(),
        }
    }
}

/// Connects socket `conn`, then reads it until EOF; a separate task writes what the engine sends.
fn open_connection(conn: ConnId, target: Arc<Target>, tx: mpsc::UnboundedSender<Msg>) -> ConnTasks {
    let (wtx, mut wrx) = mpsc::unbounded_channel::<Bytes>();
    let reader = tokio::spawn(async move {
        let stream = match target.open().await {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(Msg::Connected(conn, Err(e.into_io())));
                return;
            }
        };
        let (mut read, mut write) = tokio::io::split(stream);
        let wtx_err = tx.clone();
        tokio::spawn(async move {
            // Everything queued by the time the socket is free goes out in one write: one syscall
            // (and one TCP segment) for an ACK and the FETCH that refills its slot.
            let mut batch = BytesMut::new();
            while let Some(first) = wrx.recv().await {
                let result = if let Ok(second) = wrx.try_recv() {
                    batch.extend_from_slice(&first);
                    batch.extend_from_slice(&second);
                    while let Ok(more) = wrx.try_recv() {
                        batch.extend_from_slice(&more);
                    }
                    let r = write.write_all(&batch).await;
                    batch.clear();
                    r
                } else {
                    write.write_all(&first).await
                };
                if let Err(e) = result {
                    let _ = wtx_err.send(Msg::IoError(conn, e));
                    return;
                }
            }
            let _ = write.shutdown().await;
        });
        if tx.send(Msg::Connected(conn, Ok(()))).is_err() {
            return;
        }
        let mut buf = BytesMut::with_capacity(16 * 1024);
        loop {
            if buf.capacity() < 4096 {
                buf.reserve(16 * 1024);
            }
            match read.read_buf(&mut buf).await {
                Ok(0) => {
                    let _ = tx.send(Msg::Eof(conn));
                    return;
                }
                Ok(_) => {
                    if tx.send(Msg::Input(conn, buf.split().freeze())).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Msg::IoError(conn, e));
                    return;
                }
            }
        }
    });
    ConnTasks {
        writer: wtx,
        reader: reader.abort_handle(),
    }
}
