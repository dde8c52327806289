//! The producer (and consumer) client.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use faktory_proto::ServerError;
use faktory_proto::adapter::ClientSettings;
use faktory_proto::client::{ClientOptions, Reply};
use faktory_proto::command::{
    Ack, BatchNew, Beat, Command, Fail, MutateFilter, MutateOp, MutateTarget, Mutation, TrackSet,
    WorkerState,
};
use faktory_proto::info::{BatchStatus, Info, QueueLatency, TrackInfo};
use faktory_proto::job::Job;
use faktory_proto::ops;

use crate::driver::{CallResult, Connector, Request, Source};
use crate::error::Error;
use crate::rt::{self, Spawner};
use crate::transport::{AsyncStream, Target};

/// A Faktory client: push jobs, inspect and steer the server.
///
/// `Client` is `Clone`, `Send` and `Sync`; clones share one connection, and concurrent calls are
/// pipelined on it in order. If the connection drops, the next call reconnects (with backoff, within
/// the request timeout); a call that was in flight when it dropped fails with
/// [`Error::OutcomeUnknown`] and is never re-sent silently.
///
/// ```no_run
/// # async fn demo() -> Result<(), faktory_async_std::Error> {
/// use faktory_async_std::{Client, Job};
///
/// let client = Client::connect().await?; // FAKTORY_PROVIDER / FAKTORY_URL / tcp://localhost:7419
/// client.push(Job::with_args("SendEmail", ("ada@example.com",))?).await?;
/// client.close().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

struct Shared {
    tx: async_channel::Sender<Request>,
    closed: AtomicBool,
    wid: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("wid", &self.shared.wid)
            .field("closed", &self.shared.closed.load(Ordering::Relaxed))
            .finish()
    }
}

/// Configures and connects a [`Client`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ClientBuilder {
    settings: ClientSettings,
    spawner: Spawner,
    #[cfg(feature = "tls")]
    tls: crate::transport::TlsConfig,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientBuilder {
    faktory_proto::__client_builder_setters!();

    /// A builder with the defaults: the server from the environment, 10 s timeouts.
    pub fn new() -> Self {
        ClientBuilder {
            settings: ClientSettings::default(),
            spawner: Spawner::global(),
            #[cfg(feature = "tls")]
            tls: crate::transport::TlsConfig::default(),
        }
    }

    /// How certificates are verified on `tcp+tls://` (webpki roots by default).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::transport::TlsConfig) -> Self {
        self.tls = tls;
        self
    }

    /// Where the connection task runs (default: [`Spawner::global`]).
    pub fn spawner(mut self, spawner: Spawner) -> Self {
        self.spawner = spawner;
        self
    }

    /// Connects to the server (URL, or the environment) and completes the handshake.
    pub async fn connect(self) -> Result<Client, Error> {
        let resolved = self.settings.resolve(|k| std::env::var(k).ok())?;
        let target = Target {
            host: resolved.url.host.clone(),
            port: resolved.url.port,
            tls: resolved.url.tls,
            #[cfg(feature = "tls")]
            tls_config: self.tls.clone(),
            connect_timeout: resolved.connect_timeout,
        };
        self.start(Source::Target(target), resolved.options).await
    }

    /// Runs the client over a stream you opened yourself (custom TLS, a proxy, an in-memory pipe).
    /// Such a client cannot reconnect: once the stream fails, calls fail.
    pub async fn connect_with_stream<S: AsyncStream>(self, stream: S) -> Result<Client, Error> {
        let options = self.settings.options.clone();
        self.start(Source::Stream(Some(Box::new(stream))), options)
            .await
    }

    async fn start(self, source: Source, options: ClientOptions) -> Result<Client, Error> {
        let wid = options.wid.clone();
        let mut connector = Connector {
            source,
            options,
            request_timeout: self.settings.request_timeout,
        };
        let first = match rt::timeout(self.settings.connect_timeout, connector.connect()).await {
            Ok(r) => r?,
            Err(rt::Elapsed) => return Err(Error::Timeout),
        };
        let (tx, rx) = async_channel::unbounded();
        self.spawner
            .spawn(crate::driver::run(Box::pin(rx), connector, first));
        Ok(Client {
            shared: Arc::new(Shared {
                tx,
                closed: AtomicBool::new(false),
                wid,
            }),
        })
    }
}

impl Client {
    /// Connects to the server named by `FAKTORY_PROVIDER` / `FAKTORY_URL` (default
    /// `tcp://localhost:7419`).
    pub async fn connect() -> Result<Client, Error> {
        ClientBuilder::new().connect().await
    }

    /// Connects to `url` (`tcp://[:password@]host:port` or `tcp+tls://…`).
    pub async fn connect_to(url: &str) -> Result<Client, Error> {
        ClientBuilder::new().url(url)?.connect().await
    }

    /// A [`ClientBuilder`].
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    fn submit(&self, command: Command) -> Result<async_channel::Receiver<CallResult>, Error> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let (tx, rx) = async_channel::bounded(1);
        self.shared
            .tx
            .try_send(Request { command, reply: tx })
            .map_err(|_| Error::Closed)?;
        Ok(rx)
    }

    async fn call(&self, command: Command) -> Result<Result<Reply, ServerError>, Error> {
        let rx = self.submit(command)?;
        rx.recv().await.map_err(|_| Error::Closed)?
    }

    /// Pushes one job. The job is validated first (jid, jobtype, queue name, `reserve_for`, `at`).
    pub async fn push(&self, job: Job) -> Result<(), Error> {
        job.validate()?;
        Ok(ops::expect_ok(
            self.call(Command::Push(Box::new(job))).await?,
        )?)
    }

    /// Pushes many jobs with PUSHB, at most 1,000 per command, all pipelined. Returns jid → error for
    /// the jobs that were refused (empty when all were pushed); jobs that fail local validation are
    /// reported there too and not sent.
    pub async fn push_bulk(
        &self,
        jobs: impl IntoIterator<Item = Job>,
    ) -> Result<BTreeMap<String, String>, Error> {
        let mut plan = ops::PushBulkPlan::new(jobs);
        let receivers: Vec<_> = std::mem::take(&mut plan.commands)
            .into_iter()
            .map(|c| self.submit(c))
            .collect::<Result<_, _>>()?;
        for rx in receivers {
            plan.absorb(rx.recv().await.map_err(|_| Error::Closed)??)?;
        }
        Ok(plan.refused)
    }

    /// Server statistics.
    pub async fn info(&self) -> Result<Info, Error> {
        Ok(ops::expect_json(self.call(Command::Info).await?)?)
    }

    /// Deletes every job, queue and set on the server.
    pub async fn flush(&self) -> Result<(), Error> {
        Ok(ops::expect_ok(self.call(Command::Flush).await?)?)
    }

    /// Pauses queues (`["*"]`: all of them): FETCH skips them, pushes still land.
    pub async fn queue_pause<S: AsRef<str>>(&self, queues: &[S]) -> Result<(), Error> {
        Ok(ops::expect_ok(
            self.call(Command::QueuePause(ops::queue_selector(queues)))
                .await?,
        )?)
    }

    /// Resumes paused queues (`["*"]`: all of them).
    pub async fn queue_resume<S: AsRef<str>>(&self, queues: &[S]) -> Result<(), Error> {
        Ok(ops::expect_ok(
            self.call(Command::QueueResume(ops::queue_selector(queues)))
                .await?,
        )?)
    }

    /// Deletes queues and all their jobs (`["*"]`: all of them).
    pub async fn queue_remove<S: AsRef<str>>(&self, queues: &[S]) -> Result<(), Error> {
        Ok(ops::expect_ok(
            self.call(Command::QueueRemove(ops::queue_selector(queues)))
                .await?,
        )?)
    }

    /// Seconds since the oldest job of each queue was enqueued (0 for empty or unknown queues).
    pub async fn queue_latency<S: AsRef<str>>(&self, queues: &[S]) -> Result<QueueLatency, Error> {
        let names = queues.iter().map(|s| s.as_ref().to_owned()).collect();
        Ok(ops::expect_json(
            self.call(Command::QueueLatency(names)).await?,
        )?)
    }

    /// Runs a MUTATE command on the retry, scheduled or dead set.
    pub async fn mutate(&self, mutation: Mutation) -> Result<(), Error> {
        Ok(ops::expect_ok(self.call(Command::Mutate(mutation)).await?)?)
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

    /// Creates a batch (Enterprise) and returns its BID. Push its jobs with `custom.bid` set (see
    /// [`Client::push_in_batch`]), then [`Client::batch_commit`].
    pub async fn batch_new(&self, batch: BatchNew) -> Result<String, Error> {
        Ok(ops::expect_text(
            self.call(Command::BatchNew(batch)).await?,
        )?)
    }

    /// Reopens a batch to add jobs (Enterprise).
    pub async fn batch_open(&self, bid: &str) -> Result<String, Error> {
        Ok(ops::expect_text(
            self.call(Command::BatchOpen(bid.to_owned())).await?,
        )?)
    }

    /// Commits a batch (Enterprise): its callbacks can fire once its jobs are done.
    pub async fn batch_commit(&self, bid: &str) -> Result<(), Error> {
        Ok(ops::expect_ok(
            self.call(Command::BatchCommit(bid.to_owned())).await?,
        )?)
    }

    /// A batch's status (Enterprise).
    pub async fn batch_status(&self, bid: &str) -> Result<BatchStatus, Error> {
        Ok(ops::expect_json(
            self.call(Command::BatchStatus(bid.to_owned())).await?,
        )?)
    }

    /// Pushes `job` as a member of batch `bid` (sets `custom.bid`).
    pub async fn push_in_batch(&self, bid: &str, mut job: Job) -> Result<(), Error> {
        job.custom
            .get_or_insert_with(Default::default)
            .insert("bid".into(), serde_json::Value::String(bid.to_owned()));
        self.push(job).await
    }

    /// A tracked job's progress (Enterprise; push with `custom.track = 1`).
    pub async fn track_get(&self, jid: &str) -> Result<TrackInfo, Error> {
        Ok(ops::expect_json(
            self.call(Command::TrackGet(jid.to_owned())).await?,
        )?)
    }

    /// Updates a tracked job's progress (Enterprise).
    pub async fn track_set(&self, track: TrackSet) -> Result<(), Error> {
        Ok(ops::expect_ok(self.call(Command::TrackSet(track)).await?)?)
    }

    /// FETCH one job from `queues` (in priority order); `None` when they stay empty for ~2 s.
    /// Every fetched job must be ACKed or FAILed. The FETCH blocks the connection while it waits:
    /// use a separate `Client` for fetching if you also push.
    pub async fn fetch<S: AsRef<str>>(&self, queues: &[S]) -> Result<Option<Job>, Error> {
        let names = queues.iter().map(|s| s.as_ref().to_owned()).collect();
        Ok(ops::expect_job(self.call(Command::Fetch(names)).await?)?)
    }

    /// ACK a fetched job.
    pub async fn ack(&self, jid: &str) -> Result<(), Error> {
        Ok(ops::expect_ok(
            self.call(Command::Ack(Ack {
                jid: jid.to_owned(),
            }))
            .await?,
        )?)
    }

    /// FAIL a fetched job (the server retries it per its `retry`).
    pub async fn fail(&self, fail: Fail) -> Result<(), Error> {
        Ok(ops::expect_ok(self.call(Command::Fail(fail)).await?)?)
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
        let beat = Beat {
            wid,
            rss_kb,
            current_state,
        };
        Ok(ops::expect_beat(self.call(Command::Beat(beat)).await?)?)
    }

    /// Sends END and closes the connection; later calls fail with [`Error::Closed`].
    pub async fn close(&self) -> Result<(), Error> {
        let rx = self.submit(Command::End)?;
        self.shared.closed.store(true, Ordering::Release);
        let _ = rx.recv().await;
        Ok(())
    }
}
