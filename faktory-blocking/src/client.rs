//! The producer (and consumer) client.
//!
//! # Design
//!
//! One I/O thread per client drives the client's `faktory_proto::session::Session` and owns the
//! socket's write half; a reader thread per socket forwards what it reads. Callers (any number of
//! threads, through clones of one `Client`) send their call over an `std::sync::mpsc` channel with
//! a reply channel of their own, and block on that reply channel. The I/O thread hands every call
//! waiting in its channel to the session before it writes, so concurrent calls are pipelined on one
//! connection. Reconnects, backoff, deadlines and unknown outcomes are the session's decisions. See
//! `driver.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use faktory_proto::Timestamp;
use faktory_proto::api::{CallResult, ClientMiddleware, ClientSettings, PushPrep};
use faktory_proto::client::ConnectionError;
use faktory_proto::command::{
    BatchNew, Beat, Command, Fail, MutateFilter, MutateOp, MutateTarget, Mutation, TrackSet,
    WorkerState,
};
use faktory_proto::config::ServerUrl;
use faktory_proto::info::{BatchStatus, Info, QueueLatency, TrackInfo};
use faktory_proto::job::{Job, JobDefaults};
use faktory_proto::request::{self, Request};
use faktory_proto::session::{Session, SessionConfig};

use crate::driver::{Driver, Msg, Source};
use crate::error::Error;
use crate::transport::{Opened, Stream, Target};

/// A Faktory client: push jobs, inspect and steer the server. Every call blocks the calling thread
/// until its reply arrives.
///
/// `Client` is `Clone`, `Send` and `Sync`; clones share one connection, and concurrent calls from
/// several threads are pipelined on it in order (one I/O thread owns the connection; callers hand
/// it their requests over a channel and wait on a reply channel each). If the connection drops, the
/// next call reconnects (with backoff, within the request timeout); a call that was in flight when
/// it dropped fails with [`Error::OutcomeUnknown`] and is never re-sent silently. Dropping the last
/// clone sends END from the I/O thread (bounded to a second) and never blocks the dropping thread.
///
/// ```no_run
/// # fn demo() -> Result<(), faktory_blocking::Error> {
/// use faktory_blocking::{Client, Job};
///
/// let client = Client::connect()?; // FAKTORY_PROVIDER / FAKTORY_URL / tcp://localhost:7419
/// client.push(Job::with_args("SendEmail", ("ada@example.com",))?)?;
/// client.close()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

struct Shared {
    tx: Sender<Msg>,
    closed: AtomicBool,
    wid: Option<String>,
    /// The server, as errors name it.
    server: String,
    /// How long a caller waits for its reply at most, whatever the I/O thread is doing (it may be
    /// blocked reading a user-supplied stream that has no timeouts).
    backstop: Duration,
    push: PushPrep,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Never blocks: the I/O thread says END and exits.
        let _ = self.tx.send(Msg::Dropped);
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.shared.server)
            .field("wid", &self.shared.wid)
            .field("closed", &self.shared.closed.load(Ordering::Relaxed))
            .finish()
    }
}

/// Configures and connects a [`Client`].
#[derive(Clone)]
#[must_use]
pub struct ClientBuilder {
    settings: ClientSettings,
    #[cfg(feature = "tls")]
    tls: crate::TlsConfig,
    push: PushPrep,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("settings", &self.settings)
            .field("push", &self.push)
            .finish_non_exhaustive()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientBuilder {
    /// A builder with the defaults: the server from the environment, 10 s timeouts.
    pub fn new() -> Self {
        ClientBuilder {
            settings: ClientSettings::default(),
            #[cfg(feature = "tls")]
            tls: crate::TlsConfig::default(),
            push: PushPrep::default(),
        }
    }

    /// Adds a [`ClientMiddleware`]: it runs on every job before it is pushed, after those added
    /// before it.
    ///
    /// A closure `Fn(&mut Job) -> Result<(), Error>` is one:
    ///
    /// ```no_run
    /// # fn demo() -> Result<(), faktory_blocking::Error> {
    /// use faktory_blocking::{Client, Error, Job};
    ///
    /// let request_id = "req-42";
    /// let client = Client::builder()
    ///     // Every job carries the request that caused it.
    ///     .middleware(move |job: &mut Job| {
    ///         job.custom
    ///             .get_or_insert_with(Default::default)
    ///             .insert("request_id".into(), request_id.into());
    ///         Ok(())
    ///     })
    ///     // Refuse jobs without a queue of their own.
    ///     .middleware(|job: &mut Job| match job.queue {
    ///         Some(_) => Ok(()),
    ///         None => Err(Error::PushRefused("jobs must name their queue".into())),
    ///     })
    ///     .connect()?;
    /// client.push(Job::builder("Mail").queue("mail").build()?)?;
    /// # Ok(()) }
    /// ```
    pub fn middleware(mut self, layer: impl ClientMiddleware) -> Self {
        self.push.add_middleware(layer);
        self
    }

    /// What the jobs of `jobtype` get when they leave it unset: queue, retry, reservation,
    /// backtrace lines ([`JobDefaults`]). Applied at push, before the middleware; a second call for
    /// the same jobtype replaces the first.
    ///
    /// ```no_run
    /// # fn demo() -> Result<(), faktory_blocking::Error> {
    /// use faktory_blocking::proto::job::JobDefaults;
    ///
    /// let client = faktory_blocking::Client::builder()
    ///     .job_defaults("SendEmail", JobDefaults::new().queue("mail").retry(5).reserve_for(300))
    ///     .connect()?;
    /// // Lands on `mail`, with retry 5 and a 5-minute reservation.
    /// client.push(faktory_blocking::Job::with_args("SendEmail", ("ada@example.com",))?)?;
    /// # Ok(()) }
    /// ```
    pub fn job_defaults(mut self, jobtype: impl Into<String>, defaults: JobDefaults) -> Self {
        self.push.set_job_defaults(jobtype, defaults);
        self
    }

    /// The server, as `tcp://[:password@]host:port` or `tcp+tls://…`.
    pub fn url(mut self, url: &str) -> Result<Self, Error> {
        self.settings.set_url(url)?;
        Ok(self)
    }

    /// The server, already parsed.
    pub fn server_url(mut self, url: ServerUrl) -> Self {
        self.settings.url = Some(url);
        self
    }

    /// The password (overrides one in the URL).
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.settings.set_password(password);
        self
    }

    /// Say HELLO with this worker id, for the consumer commands ([`Client::fetch`], [`Client::beat`]).
    pub fn wid(mut self, wid: impl Into<String>) -> Self {
        self.settings.options.wid = Some(wid.into());
        self
    }

    /// Hostname reported in HELLO (consumers).
    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.settings.options.hostname = Some(hostname.into());
        self
    }

    /// Labels reported in HELLO (consumers).
    pub fn labels<I, S>(mut self, labels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.settings.options.labels = labels.into_iter().map(Into::into).collect();
        self
    }

    /// TCP (and TLS) connect timeout, also the handshake timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connect_timeout = timeout;
        self
    }

    /// How long a request may wait for its reply (and, when reconnecting, for a connection).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.settings.set_request_timeout(timeout);
        self
    }

    /// How certificates are verified on `tcp+tls://` (webpki roots by default).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::TlsConfig) -> Self {
        self.tls = tls;
        self
    }

    /// Connects to the server (URL, or the environment) and completes the handshake.
    pub fn connect(self) -> Result<Client, Error> {
        let resolved = self.settings.resolve(|k| std::env::var(k).ok())?;
        let target = Target {
            host: resolved.url.host.clone(),
            port: resolved.url.port,
            tls: resolved.url.tls,
            #[cfg(feature = "tls")]
            tls_config: self.tls.clone(),
            connect_timeout: resolved.connect_timeout,
        };
        let config = resolved.session_config(crate::driver::seed());
        self.start(Source::Target(target), config)
    }

    /// Runs the client over a stream you opened yourself (custom TLS, a proxy, an in-memory pipe).
    /// Such a client cannot reconnect: once the stream fails, calls fail.
    ///
    /// A `std::net::TcpStream` is read by its own thread, like the client's own sockets. Any other
    /// stream cannot be read by one thread while another writes it, so the I/O thread reads it only
    /// while replies are due: a server that closes an idle connection is noticed by the next call
    /// (which then fails with [`Error::OutcomeUnknown`]), and reply deadlines are enforced only as
    /// far as the stream's own read timeouts allow (give it some if it can have them; the callers
    /// stop waiting after twice the request timeout in any case).
    pub fn connect_with_stream<S: Stream>(self, stream: S) -> Result<Client, Error> {
        let options = match self.settings.url {
            // The password and username of a URL given to this builder still apply.
            Some(_) => self.settings.resolve(|_| None)?.options,
            None => self.settings.options.clone(),
        };
        let mut config = SessionConfig::new("user-supplied stream", options);
        config.connect_timeout = self.settings.connect_timeout;
        config.request_timeout = self.settings.request_timeout;
        config.reconnect = false;
        config.seed = crate::driver::seed();
        let opened = Opened::from_user(stream)?;
        self.start(Source::Stream(Some(opened)), config)
    }

    fn start(self, source: Source, config: SessionConfig) -> Result<Client, Error> {
        let wid = config.options.wid.clone();
        let server = config.server.clone();
        let write_timeout = config.request_timeout;
        let session = Session::new(config, std::time::Instant::now());
        let (tx, rx) = crate::driver::channel();
        let driver = Driver::new(session, source, write_timeout, tx.clone());
        std::thread::Builder::new()
            .name("faktory-client".into())
            .spawn(move || crate::driver::run(&rx, driver))
            .map_err(|e| Error::Connection {
                server: server.clone(),
                source: ConnectionError::Io(format!("cannot start the client's I/O thread: {e}")),
            })?;
        let client = Client {
            shared: Arc::new(Shared {
                tx,
                closed: AtomicBool::new(false),
                wid,
                server,
                backstop: self
                    .settings
                    .connect_timeout
                    .saturating_add(self.settings.request_timeout.saturating_mul(2))
                    .saturating_add(Duration::from_secs(1)),
                push: self.push,
            }),
        };
        // Connect eagerly, so a wrong URL or password is noticed here. On failure the client is
        // dropped, and its I/O thread ends.
        let (reply, answer) = mpsc::channel();
        client.send(Msg::Connect(reply))?;
        client.wait(&answer)?.map_err(Error::Server)?;
        Ok(client)
    }
}

impl Client {
    /// Connects to the server named by `FAKTORY_PROVIDER` / `FAKTORY_URL` (default
    /// `tcp://localhost:7419`).
    pub fn connect() -> Result<Client, Error> {
        ClientBuilder::new().connect()
    }

    /// Connects to `url` (`tcp://[:password@]host:port` or `tcp+tls://…`).
    pub fn connect_to(url: &str) -> Result<Client, Error> {
        ClientBuilder::new().url(url)?.connect()
    }

    /// A [`ClientBuilder`].
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    fn send(&self, msg: Msg) -> Result<(), Error> {
        self.shared.tx.send(msg).map_err(|_| Error::Closed)
    }

    fn submit(&self, command: Command) -> Result<Receiver<CallResult>, Error> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let (tx, rx) = mpsc::channel();
        self.send(Msg::Call(Box::new(command), tx))?;
        Ok(rx)
    }

    fn wait(&self, rx: &Receiver<CallResult>) -> CallResult {
        match rx.recv_timeout(self.shared.backstop) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => Err(Error::Connection {
                server: self.shared.server.clone(),
                source: ConnectionError::Timeout("the client's I/O thread"),
            }),
            Err(RecvTimeoutError::Disconnected) => Err(Error::Closed),
        }
    }

    /// Sends any request (the typed ones of [`faktory_proto::request`], or a raw [`Command`]
    /// answered with its raw [`Reply`](faktory_proto::client::Reply)) and waits for its answer. The
    /// methods below are this with their request.
    pub fn call<R: Request>(&self, request: R) -> Result<R::Output, Error> {
        let rx = self.submit(request.into_command()?)?;
        R::parse(self.wait(&rx)?)
    }

    /// Pushes one job and returns its jid. The [`ClientMiddleware`] runs first (and may refuse
    /// it); then the job is validated (jid, jobtype, queue name, `reserve_for`, `at`).
    ///
    /// ```no_run
    /// # fn demo() -> Result<(), faktory_blocking::Error> {
    /// use faktory_blocking::{Client, Job};
    ///
    /// let client = Client::connect()?;
    /// let jid = client.push(Job::with_args("SendEmail", ("ada@example.com",))?)?;
    /// println!("pushed {jid}");
    /// # Ok(()) }
    /// ```
    pub fn push(&self, job: Job) -> Result<String, Error> {
        let mut job = job;
        self.shared.push.prepare(&mut job, Timestamp::now)?;
        let jid = job.jid.clone();
        self.call(request::Push(job))?;
        Ok(jid)
    }

    /// Pushes many jobs with PUSHB, at most 1,000 per command, all pipelined. Returns jid → error for
    /// the jobs that were refused (empty when all were pushed); jobs that a [`ClientMiddleware`]
    /// refused or that fail local validation are reported there too and not sent.
    pub fn push_bulk(
        &self,
        jobs: impl IntoIterator<Item = Job>,
    ) -> Result<BTreeMap<String, String>, Error> {
        let mut plan = self.shared.push.plan_bulk(jobs, Timestamp::now);
        let receivers: Vec<_> = std::mem::take(&mut plan.commands)
            .into_iter()
            .map(|c| self.submit(c))
            .collect::<Result<_, _>>()?;
        for rx in receivers {
            plan.absorb(self.wait(&rx)?)?;
        }
        Ok(plan.refused)
    }

    /// Server statistics.
    pub fn info(&self) -> Result<Info, Error> {
        self.call(request::Info)
    }

    /// Deletes every job, queue and set on the server.
    pub fn flush(&self) -> Result<(), Error> {
        self.call(request::Flush)
    }

    /// Pauses queues (`["*"]`: all of them): FETCH skips them, pushes still land.
    pub fn queue_pause<S: AsRef<str>>(&self, queues: &[S]) -> Result<(), Error> {
        self.call(request::QueuePause(request::queue_selector(queues)))
    }

    /// Resumes paused queues (`["*"]`: all of them).
    pub fn queue_resume<S: AsRef<str>>(&self, queues: &[S]) -> Result<(), Error> {
        self.call(request::QueueResume(request::queue_selector(queues)))
    }

    /// Deletes queues and all their jobs (`["*"]`: all of them).
    pub fn queue_remove<S: AsRef<str>>(&self, queues: &[S]) -> Result<(), Error> {
        self.call(request::QueueRemove(request::queue_selector(queues)))
    }

    /// Seconds since the oldest job of each queue was enqueued (0 for empty or unknown queues).
    pub fn queue_latency<S: AsRef<str>>(&self, queues: &[S]) -> Result<QueueLatency, Error> {
        self.call(request::QueueLatency(names(queues)))
    }

    /// Runs a MUTATE command on the retry, scheduled or dead set.
    pub fn mutate(&self, mutation: Mutation) -> Result<(), Error> {
        self.call(request::Mutate(mutation))
    }

    /// MUTATE shorthand: `op` on `target`, restricted by `filter` (`None`: every job).
    pub fn mutate_set(
        &self,
        op: MutateOp,
        target: MutateTarget,
        filter: Option<MutateFilter>,
    ) -> Result<(), Error> {
        self.call(request::Mutate(Mutation {
            cmd: op,
            target,
            filter,
        }))
    }

    /// Creates a batch (Enterprise) and returns its BID. Push its jobs with `custom.bid` set (see
    /// [`Client::push_in_batch`]), then [`Client::batch_commit`].
    pub fn batch_new(&self, batch: BatchNew) -> Result<String, Error> {
        self.call(request::BatchNew(batch))
    }

    /// Reopens a batch to add jobs (Enterprise).
    pub fn batch_open(&self, bid: &str) -> Result<String, Error> {
        self.call(request::BatchOpen(bid.to_owned()))
    }

    /// Commits a batch (Enterprise): its callbacks can fire once its jobs are done.
    pub fn batch_commit(&self, bid: &str) -> Result<(), Error> {
        self.call(request::BatchCommit(bid.to_owned()))
    }

    /// A batch's status (Enterprise).
    pub fn batch_status(&self, bid: &str) -> Result<BatchStatus, Error> {
        self.call(request::BatchStatus(bid.to_owned()))
    }

    /// Pushes `job` as a member of batch `bid` (sets `custom.bid`) and returns its jid.
    pub fn push_in_batch(&self, bid: &str, mut job: Job) -> Result<String, Error> {
        request::join_batch(&mut job, bid);
        self.push(job)
    }

    /// A tracked job's progress (Enterprise; push with `custom.track = 1`).
    pub fn track_get(&self, jid: &str) -> Result<TrackInfo, Error> {
        self.call(request::TrackGet(jid.to_owned()))
    }

    /// Updates a tracked job's progress (Enterprise).
    pub fn track_set(&self, track: TrackSet) -> Result<(), Error> {
        self.call(request::TrackSet(track))
    }

    /// FETCH one job from `queues` (in priority order); `None` when they stay empty for ~2 s.
    /// Every fetched job must be ACKed or FAILed. The FETCH blocks the connection while it waits:
    /// use a separate `Client` for fetching if you also push.
    pub fn fetch<S: AsRef<str>>(&self, queues: &[S]) -> Result<Option<Job>, Error> {
        self.call(request::Fetch(names(queues)))
    }

    /// ACK a fetched job.
    pub fn ack(&self, jid: &str) -> Result<(), Error> {
        self.call(request::Ack(jid.to_owned()))
    }

    /// FAIL a fetched job (the server retries it per its `retry`).
    pub fn fail(&self, fail: Fail) -> Result<(), Error> {
        self.call(request::Fail(fail))
    }

    /// BEAT for this client's wid (set with [`ClientBuilder::wid`]): `None` while running, else the
    /// state the server asks for (quiet or terminate).
    pub fn beat(
        &self,
        rss_kb: Option<u64>,
        current_state: Option<WorkerState>,
    ) -> Result<Option<WorkerState>, Error> {
        let wid = self.shared.wid.clone().ok_or(Error::Usage(
            "beat needs a client built with ClientBuilder::wid",
        ))?;
        self.call(request::Beat(Beat {
            wid,
            rss_kb,
            current_state,
        }))
    }

    /// Sends END and closes the connection; later calls fail with [`Error::Closed`].
    pub fn close(&self) -> Result<(), Error> {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return Err(Error::Closed);
        }
        let (tx, rx) = mpsc::channel();
        self.send(Msg::Close(tx))?;
        let _ = self.wait(&rx);
        Ok(())
    }
}

/// Queue names as the requests take them.
fn names<S: AsRef<str>>(queues: &[S]) -> Vec<String> {
    queues.iter().map(|s| s.as_ref().to_owned()).collect()
}
