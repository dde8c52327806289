//! The producer (and consumer) client.

mod driver;

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use faktory_proto::api::{CallResult, ClientMiddleware, ClientSettings, Error, PushPrep};
use faktory_proto::client::Reply;
use faktory_proto::command::{
    BatchNew, Beat, Fail, MutateFilter, MutateOp, MutateTarget, Mutation, TrackSet, WorkerState,
};
use faktory_proto::config::ServerUrl;
use faktory_proto::info::{BatchStatus, Info, QueueLatency, TrackInfo};
use faktory_proto::job::{Job, JobDefaults};
use faktory_proto::request::{self, Request};
use faktory_proto::session::{Session, SessionConfig};
use faktory_proto::{ServerError, Timestamp};
use futures_channel::{mpsc, oneshot};

use crate::runtime::Runtime;
use crate::transport::{AsyncStream, Dialer, TlsSettings};
use driver::{Call, Op, Source};

/// A Faktory client: push jobs, inspect and steer the server, and (with a wid) fetch and
/// acknowledge jobs yourself.
///
/// `Client` is `Clone`, `Send` and `Sync`; clones share one connection, and concurrent calls are
/// pipelined on it in order. If the connection drops, the next call reconnects (with backoff,
/// within the request timeout); a call that was in flight when it dropped fails with
/// [`Error::OutcomeUnknown`] and is never re-sent silently. Dropping the last handle says END and
/// closes the connection in the background; [`Client::close`] does it and waits.
///
/// Each client runs one background task on its runtime `R` (`faktory_tokio::Client` is
/// `Client<faktory_tokio::Tokio>`).
///
/// ```no_run
/// use faktory_async::{Client, Error, Job, Runtime};
///
/// async fn enqueue<R: Runtime + Default>() -> Result<(), Error> {
///     // FAKTORY_PROVIDER / FAKTORY_URL / tcp://localhost:7419
///     let client = Client::<R>::connect().await?;
///     client.push(Job::with_args("SendEmail", ("ada@example.com",))?).await?;
///     let info = client.info().await?;
///     println!("{} jobs processed", info.faktory.total_processed);
///     client.close().await
/// }
/// ```
pub struct Client<R: Runtime> {
    shared: Arc<Shared>,
    _runtime: PhantomData<fn() -> R>,
}

struct Shared {
    calls: mpsc::UnboundedSender<Call>,
    closed: AtomicBool,
    wid: Option<String>,
    server: String,
    push: PushPrep,
}

impl<R: Runtime> Clone for Client<R> {
    fn clone(&self) -> Self {
        Client {
            shared: Arc::clone(&self.shared),
            _runtime: PhantomData,
        }
    }
}

impl<R: Runtime> std::fmt::Debug for Client<R> {
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
pub struct ClientBuilder<R: Runtime> {
    settings: ClientSettings,
    runtime: R,
    tls: TlsSettings,
    push: PushPrep,
}

impl<R: Runtime> std::fmt::Debug for ClientBuilder<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("settings", &self.settings)
            .field("runtime", &self.runtime)
            .field("push", &self.push)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime + Default> Default for ClientBuilder<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: Runtime + Default> ClientBuilder<R> {
    /// A builder with the defaults: the server from the environment, 10 s timeouts, the runtime's
    /// default.
    pub fn new() -> Self {
        Self::with_runtime(R::default())
    }
}

impl<R: Runtime> ClientBuilder<R> {
    /// A builder with the defaults, on `runtime`.
    pub fn with_runtime(runtime: R) -> Self {
        ClientBuilder {
            settings: ClientSettings::default(),
            runtime,
            tls: TlsSettings::default(),
            push: PushPrep::default(),
        }
    }

    /// Adds a [`ClientMiddleware`]: it runs on every job before it is pushed, after those added
    /// before it.
    ///
    /// A closure `Fn(&mut Job) -> Result<(), Error>` is one:
    ///
    /// ```no_run
    /// use faktory_async::{Client, Error, Job, Runtime};
    ///
    /// async fn producer<R: Runtime + Default>(request_id: &'static str) -> Result<(), Error> {
    ///     let client = Client::<R>::builder()
    ///         // Every job carries the request that caused it (see the worker middleware that
    ///         // enters a span with it).
    ///         .middleware(move |job: &mut Job| {
    ///             job.custom
    ///                 .get_or_insert_with(Default::default)
    ///                 .insert("request_id".into(), request_id.into());
    ///             Ok(())
    ///         })
    ///         // Refuse jobs without a queue of their own.
    ///         .middleware(|job: &mut Job| match job.queue {
    ///             Some(_) => Ok(()),
    ///             None => Err(Error::PushRefused("jobs must name their queue".into())),
    ///         })
    ///         .connect()
    ///         .await?;
    ///     client.push(Job::builder("Mail").queue("mail").build()?).await?;
    ///     Ok(())
    /// }
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
    /// # async fn demo<R: faktory_async::Runtime + Default>() -> Result<(), faktory_async::Error> {
    /// use faktory_async::proto::job::JobDefaults;
    ///
    /// let client = faktory_async::Client::<R>::builder()
    ///     .job_defaults("SendEmail", JobDefaults::new().queue("mail").retry(5).reserve_for(300))
    ///     .connect()
    ///     .await?;
    /// // Lands on `mail`, with retry 5 and a 5-minute reservation.
    /// client.push(faktory_async::Job::with_args("SendEmail", ("ada@example.com",))?).await?;
    /// # Ok(()) }
    /// ```
    pub fn job_defaults(mut self, jobtype: impl Into<String>, defaults: JobDefaults) -> Self {
        self.push.set_job_defaults(jobtype, defaults);
        self
    }

    /// Where the client's task runs (for runtimes that carry a value, such as an executor).
    pub fn runtime(mut self, runtime: impl Into<R>) -> Self {
        self.runtime = runtime.into();
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

    /// Say HELLO with this worker id, for the consumer commands ([`Client::fetch`],
    /// [`Client::beat`]).
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

    /// TCP, TLS and handshake timeout (one connection attempt).
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

    /// Connects to the server (the URL, else `FAKTORY_PROVIDER` / `FAKTORY_URL` /
    /// `tcp://localhost:7419`) and completes the handshake: a wrong address or password fails
    /// here.
    pub async fn connect(self) -> Result<Client<R>, Error> {
        let resolved = self.settings.resolve(|k| std::env::var(k).ok())?;
        let config = resolved.session_config(seed());
        let dialer = Dialer::new(
            self.runtime.clone(),
            &resolved.url,
            &self.tls,
            resolved.connect_timeout,
        );
        start(self.runtime, config, Source::Dial(dialer), self.push).await
    }

    /// Runs the client over a stream you opened yourself (custom TLS, a proxy, an in-memory pipe),
    /// with the futures-io traits. Such a client cannot reconnect: once the stream fails, calls
    /// fail with [`Error::Connection`].
    pub async fn connect_with_stream<S: AsyncStream>(self, stream: S) -> Result<Client<R>, Error> {
        let mut config = SessionConfig::new("user-supplied stream", self.settings.options.clone());
        config.connect_timeout = self.settings.connect_timeout;
        config.request_timeout = self.settings.request_timeout;
        config.reconnect = false;
        config.seed = seed();
        let source = Source::Stream(Some(Box::new(stream)));
        start(self.runtime, config, source, self.push).await
    }
}

/// Spawns the client's task and connects eagerly.
async fn start<R: Runtime>(
    runtime: R,
    config: SessionConfig,
    source: Source<R>,
    push: PushPrep,
) -> Result<Client<R>, Error> {
    let wid = config.options.wid.clone();
    let server = config.server.clone();
    let session = Session::new(config, std::time::Instant::now());
    let (calls, rx) = mpsc::unbounded();
    runtime.spawn(driver::run(runtime.clone(), session, rx, source));
    let client = Client {
        shared: Arc::new(Shared {
            calls,
            closed: AtomicBool::new(false),
            wid,
            server,
            push,
        }),
        _runtime: PhantomData,
    };
    // On failure the client is dropped here, and its task closes the session.
    answer(client.send(Op::Connect)?)
        .await?
        .map_err(Error::Server)?;
    Ok(client)
}

/// A seed for the backoff's jitter, different per process and per client.
fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ u64::from(std::process::id()).rotate_left(32)
}

/// The answer to a call (a task that is gone closed the client).
async fn answer(reply: oneshot::Receiver<CallResult>) -> Result<Result<Reply, ServerError>, Error> {
    reply.await.map_err(|_| Error::Closed)?
}

impl<R: Runtime + Default> Client<R> {
    /// Connects to the server named by `FAKTORY_PROVIDER` / `FAKTORY_URL` (default
    /// `tcp://localhost:7419`).
    pub async fn connect() -> Result<Self, Error> {
        ClientBuilder::new().connect().await
    }

    /// Connects to `url` (`tcp://[:password@]host:port` or `tcp+tls://…`).
    pub async fn connect_to(url: &str) -> Result<Self, Error> {
        ClientBuilder::new().url(url)?.connect().await
    }

    /// A [`ClientBuilder`] on the runtime's default.
    pub fn builder() -> ClientBuilder<R> {
        ClientBuilder::new()
    }
}

impl<R: Runtime> Client<R> {
    fn send(&self, op: Op) -> Result<oneshot::Receiver<CallResult>, Error> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let (reply, rx) = oneshot::channel();
        self.shared
            .calls
            .unbounded_send(Call { op, reply })
            .map_err(|_| Error::Closed)?;
        Ok(rx)
    }

    /// Sends any request ([`faktory_proto::request`]) and reads its reply. Every method below is
    /// one such call.
    ///
    /// ```no_run
    /// # async fn demo<R: faktory_async::Runtime + Default>() -> Result<(), faktory_async::Error> {
    /// use faktory_async::proto::request;
    ///
    /// let client = faktory_async::Client::<R>::connect().await?;
    /// let info = client.call(request::Info).await?;
    /// # let _ = info; Ok(()) }
    /// ```
    pub async fn call<Q: Request>(&self, request: Q) -> Result<Q::Output, Error> {
        let command = request.into_command()?;
        Q::parse(answer(self.send(Op::Call(command))?).await?)
    }

    /// Pushes one job and returns its jid. The [`ClientMiddleware`] runs first (and may refuse
    /// it); then the job is validated (jid, jobtype, queue name, `reserve_for`, `at`).
    ///
    /// ```no_run
    /// # async fn demo<R: faktory_async::Runtime + Default>() -> Result<(), faktory_async::Error> {
    /// use faktory_async::{Client, Job};
    ///
    /// let client = Client::<R>::connect().await?;
    /// let jid = client.push(Job::with_args("SendEmail", ("ada@example.com",))?).await?;
    /// println!("pushed {jid}");
    /// # Ok(()) }
    /// ```
    pub async fn push(&self, job: Job) -> Result<String, Error> {
        let mut job = job;
        self.shared.push.prepare(&mut job, Timestamp::now)?;
        let jid = job.jid.clone();
        self.call(request::Push(job)).await?;
        Ok(jid)
    }

    /// Pushes many jobs with PUSHB, at most 1,000 per command, all pipelined. Returns jid → error
    /// for the jobs that were refused (empty when all were pushed); jobs that a
    /// [`ClientMiddleware`] refused or that fail local validation are reported there too and not
    /// sent.
    pub async fn push_bulk(
        &self,
        jobs: impl IntoIterator<Item = Job>,
    ) -> Result<BTreeMap<String, String>, Error> {
        let mut plan = self.shared.push.plan_bulk(jobs, Timestamp::now);
        let replies = std::mem::take(&mut plan.commands)
            .into_iter()
            .map(|command| self.send(Op::Call(command)))
            .collect::<Result<Vec<_>, _>>()?;
        for reply in replies {
            plan.absorb(answer(reply).await?)?;
        }
        Ok(plan.refused)
    }

    /// Server statistics.
    pub async fn info(&self) -> Result<Info, Error> {
        self.call(request::Info).await
    }

    /// Deletes every job, queue and set on the server.
    pub async fn flush(&self) -> Result<(), Error> {
        self.call(request::Flush).await
    }

    /// Pauses queues (`["*"]`: all of them): FETCH skips them, pushes still land.
    pub async fn queue_pause<S: AsRef<str>>(&self, queues: &[S]) -> Result<(), Error> {
        self.call(request::QueuePause(request::queue_selector(queues)))
            .await
    }

    /// Resumes paused queues (`["*"]`: all of them).
    pub async fn queue_resume<S: AsRef<str>>(&self, queues: &[S]) -> Result<(), Error> {
        self.call(request::QueueResume(request::queue_selector(queues)))
            .await
    }

    /// Deletes queues and all their jobs (`["*"]`: all of them).
    pub async fn queue_remove<S: AsRef<str>>(&self, queues: &[S]) -> Result<(), Error> {
        self.call(request::QueueRemove(request::queue_selector(queues)))
            .await
    }

    /// Seconds since the oldest job of each queue was enqueued (0 for empty or unknown queues).
    pub async fn queue_latency<S: AsRef<str>>(&self, queues: &[S]) -> Result<QueueLatency, Error> {
        self.call(request::QueueLatency(names(queues))).await
    }

    /// Runs a MUTATE command on the retry, scheduled or dead set.
    pub async fn mutate(&self, mutation: Mutation) -> Result<(), Error> {
        self.call(request::Mutate(mutation)).await
    }

    /// MUTATE shorthand: `op` on `target`, restricted by `filter` (`None`: every job).
    pub async fn mutate_set(
        &self,
        op: MutateOp,
        target: MutateTarget,
        filter: Option<MutateFilter>,
    ) -> Result<(), Error> {
        self.mutate(Mutation {
            cmd: op,
            target,
            filter,
        })
        .await
    }

    /// Creates a batch (Enterprise) and returns its BID. Push its jobs with
    /// [`Client::push_in_batch`], then [`Client::batch_commit`].
    pub async fn batch_new(&self, batch: BatchNew) -> Result<String, Error> {
        self.call(request::BatchNew(batch)).await
    }

    /// Reopens a batch to add jobs (Enterprise).
    pub async fn batch_open(&self, bid: &str) -> Result<String, Error> {
        self.call(request::BatchOpen(bid.to_owned())).await
    }

    /// Commits a batch (Enterprise): its callbacks can fire once its jobs are done.
    pub async fn batch_commit(&self, bid: &str) -> Result<(), Error> {
        self.call(request::BatchCommit(bid.to_owned())).await
    }

    /// A batch's status (Enterprise).
    pub async fn batch_status(&self, bid: &str) -> Result<BatchStatus, Error> {
        self.call(request::BatchStatus(bid.to_owned())).await
    }

    /// Pushes `job` as a member of batch `bid` (sets `custom.bid`) and returns its jid.
    pub async fn push_in_batch(&self, bid: &str, mut job: Job) -> Result<String, Error> {
        request::join_batch(&mut job, bid);
        self.push(job).await
    }

    /// A tracked job's progress (Enterprise; push with `custom.track = 1`).
    pub async fn track_get(&self, jid: &str) -> Result<TrackInfo, Error> {
        self.call(request::TrackGet(jid.to_owned())).await
    }

    /// Updates a tracked job's progress (Enterprise).
    pub async fn track_set(&self, track: TrackSet) -> Result<(), Error> {
        self.call(request::TrackSet(track)).await
    }

    /// FETCH one job from `queues` (in priority order); `None` when they stay empty for ~2 s.
    /// Every fetched job must be ACKed or FAILed. The FETCH blocks the connection while it waits:
    /// use a separate `Client` for fetching if you also push.
    pub async fn fetch<S: AsRef<str>>(&self, queues: &[S]) -> Result<Option<Job>, Error> {
        self.call(request::Fetch(names(queues))).await
    }

    /// ACK a fetched job.
    pub async fn ack(&self, jid: &str) -> Result<(), Error> {
        self.call(request::Ack(jid.to_owned())).await
    }

    /// FAIL a fetched job (the server retries it per its `retry`).
    pub async fn fail(&self, fail: Fail) -> Result<(), Error> {
        self.call(request::Fail(fail)).await
    }

    /// BEAT for this client's wid (set with [`ClientBuilder::wid`]): `None` while running, else the
    /// state the server asks for (quiet or terminate).
    pub async fn beat(
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
        .await
    }

    /// Sends END after the calls already sent (they still get their replies) and waits until the
    /// connection is closed; later calls fail with [`Error::Closed`].
    pub async fn close(&self) -> Result<(), Error> {
        let reply = self.send(Op::Close)?;
        self.shared.closed.store(true, Ordering::Release);
        let _ = reply.await;
        Ok(())
    }
}

fn names<S: AsRef<str>>(queues: &[S]) -> Vec<String> {
    queues.iter().map(|s| s.as_ref().to_owned()).collect()
}
