//! What the runtime adapters share beyond the protocol: one error type for every adapter's `Client`
//! and `Worker`, and the resolution of their settings (URL from the environment, password and
//! username from the URL, timeouts into the connection options).
//!
//! `faktory-tokio`, `faktory-async-std` and `faktory-blocking` re-export [`Error`], so the three
//! crates have the same error type, and build their `ClientBuilder`s on [`ClientSettings`], so they
//! resolve a server the same way.

use std::io;
use std::time::Duration;

use crate::ServerError;
use crate::client::{ClientOptions, ConnectionError};
use crate::command::EncodeError;
use crate::config::{ConfigError, ServerUrl};
use crate::handshake::Password;
use crate::job::JobError;
use crate::ops::{self, ReplyError};

/// Everything that can go wrong talking to Faktory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `FAKTORY_URL` / `FAKTORY_PROVIDER` or a URL given in code is invalid.
    #[error("invalid Faktory URL: {0}")]
    Config(#[from] ConfigError),
    /// The TCP connection could not be made.
    #[error("could not connect to {addr}: {source}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// The socket error.
        source: io::Error,
    },
    /// Connecting (TCP, TLS and handshake) took too long.
    #[error("connecting to {0} timed out")]
    ConnectTimeout(String),
    /// TLS setup or negotiation failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The connection failed (handshake refused, bad password, protocol violation, server gone).
    #[error(transparent)]
    Connection(ConnectionError),
    /// The connection broke while this request was in flight: the server may or may not have
    /// executed it. It is never re-sent silently (a PUSH could be doubled).
    #[error("connection lost while {command} was in flight, its outcome is unknown: {source}")]
    OutcomeUnknown {
        /// The verb of the request.
        command: &'static str,
        /// Why the connection broke.
        source: ConnectionError,
    },
    /// The server answered with an error (`-ERR …`, `-NOTUNIQUE …`).
    #[error(transparent)]
    Server(ServerError),
    /// The server's reply did not fit the request.
    #[error(transparent)]
    Reply(ReplyError),
    /// The command cannot be encoded (bad queue name, …).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The job is invalid.
    #[error(transparent)]
    Job(#[from] JobError),
    /// The request got no reply in time.
    #[error("request timed out")]
    Timeout,
    /// The worker configuration is invalid.
    #[error("invalid worker configuration: {0}")]
    WorkerConfig(crate::worker::ConfigError),
    /// The API was used in a way that cannot work (the message says how).
    #[error("{0}")]
    Usage(&'static str),
    /// The client was closed with `close()`.
    #[error("client is closed")]
    Closed,
    /// An I/O error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<ReplyError> for Error {
    fn from(e: ReplyError) -> Self {
        match e {
            ReplyError::Server(s) => Error::Server(s),
            other => Error::Reply(other),
        }
    }
}

impl From<ConnectionError> for Error {
    fn from(e: ConnectionError) -> Self {
        match e {
            ConnectionError::Timeout(_) => Error::Timeout,
            other => Error::Connection(other),
        }
    }
}

impl Error {
    /// The server's error, when the server answered with one.
    pub fn server_error(&self) -> Option<&ServerError> {
        match self {
            Error::Server(e) => Some(e),
            _ => None,
        }
    }
}

impl Error {
    /// The error as an `io::Error`, for [`crate::worker::Worker::handle_connect_failed`]. A TLS
    /// failure becomes [`io::ErrorKind::InvalidData`], which the engine treats as permanent
    /// (a certificate that does not verify will not verify on the next attempt).
    pub fn into_io(self) -> io::Error {
        match self {
            Error::Connect { source, .. } => source,
            Error::Io(e) => e,
            Error::ConnectTimeout(addr) => io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connecting to {addr} timed out"),
            ),
            Error::Tls(message) => {
                io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {message}"))
            }
            other => io::Error::other(other.to_string()),
        }
    }

    /// Whether a failed connection attempt is worth retrying with backoff (network trouble,
    /// timeouts, an overloaded or restarting server), as opposed to a refused password, a server
    /// that does not speak Faktory or a bad configuration.
    pub fn is_transient_connect(&self) -> bool {
        match self {
            Error::Connect { .. } | Error::ConnectTimeout(_) | Error::Io(_) | Error::Timeout => {
                true
            }
            Error::Connection(c) => ops::is_transient(c),
            _ => false,
        }
    }
}

/// What a client call gets back: the server's reply (or its error reply), or why there was none.
pub type CallResult = Result<Result<crate::client::Reply, ServerError>, Error>;

/// The calls waiting on one client connection, and who gets which answer.
///
/// Every adapter's `Client` pipelines its callers' requests on one [`crate::client::Connection`];
/// `W` is the adapter's way to answer a caller (a oneshot sender, a channel, …). The decisions live
/// here: replies go to their callers in order; a call that was sent but not answered when the
/// connection closed gets [`Error::OutcomeUnknown`] (it is never re-sent: a PUSH could be doubled);
/// END, which has no reply, is answered once the connection has closed.
#[derive(Debug)]
pub struct Calls<W> {
    pending: std::collections::HashMap<crate::client::RequestId, (&'static str, W)>,
    closing: Option<W>,
}

impl<W> Default for Calls<W> {
    fn default() -> Self {
        Calls {
            pending: std::collections::HashMap::new(),
            closing: None,
        }
    }
}

impl<W> Calls<W> {
    /// No call waiting.
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls sent and not yet answered (END included).
    pub fn len(&self) -> usize {
        self.pending.len() + usize::from(self.closing.is_some())
    }

    /// Whether no call is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether an END was sent and the connection has not closed yet.
    pub fn is_closing(&self) -> bool {
        self.closing.is_some()
    }

    /// Sends `command` on `conn` for the caller `waiter`. When it cannot be sent, the caller and its
    /// answer come back at once.
    pub fn submit(
        &mut self,
        conn: &mut crate::client::Connection,
        command: &crate::command::Command,
        waiter: W,
        now: std::time::Instant,
    ) -> Option<(W, CallResult)> {
        match conn.send(command, now) {
            Ok(id) => {
                if command.expects_reply() {
                    self.pending.insert(id, (command.verb(), waiter));
                } else {
                    self.closing = Some(waiter);
                }
                None
            }
            Err(crate::client::SendError::Encode(e)) => Some((waiter, Err(Error::Encode(e)))),
            Err(_) => Some((waiter, Err(Error::Connection(ConnectionError::Eof)))),
        }
    }

    /// Turns `conn`'s events into answers for the callers. Returns `None` while the connection is
    /// open, `Some(error)` once it closed (`Some(None)` after END).
    pub fn dispatch(
        &mut self,
        conn: &mut crate::client::Connection,
        mut answer: impl FnMut(W, CallResult),
    ) -> Option<Option<ConnectionError>> {
        while let Some(event) = conn.poll_event() {
            match event {
                crate::client::Event::Reply { id, result } => {
                    if let Some((_, w)) = self.pending.remove(&id) {
                        answer(w, Ok(result));
                    }
                }
                crate::client::Event::Closed { error, unanswered } => {
                    let source = error.clone().unwrap_or(ConnectionError::Eof);
                    let unknown = |verb: &'static str| Error::OutcomeUnknown {
                        command: verb,
                        source: source.clone(),
                    };
                    for id in unanswered {
                        if let Some((verb, w)) = self.pending.remove(&id) {
                            answer(w, Err(unknown(verb)));
                        }
                    }
                    for (_, (verb, w)) in self.pending.drain() {
                        answer(w, Err(unknown(verb)));
                    }
                    if let Some(w) = self.closing.take() {
                        answer(w, Ok(Ok(crate::client::Reply::Ok)));
                    }
                    return Some(error);
                }
                _ => {}
            }
        }
        None
    }
}

/// The connection settings of a `Client`, before they are resolved against the environment.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientSettings {
    /// The server; `None`: `FAKTORY_PROVIDER` / `FAKTORY_URL` / `tcp://localhost:7419`.
    pub url: Option<ServerUrl>,
    /// Options of each connection (password, wid for consumers, timeouts, frame limit).
    pub options: ClientOptions,
    /// TCP, TLS and handshake timeout.
    pub connect_timeout: Duration,
    /// How long a request may wait for its reply (and, when reconnecting, for a connection).
    pub request_timeout: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            url: None,
            options: ClientOptions::default(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// Settings resolved into what a connection needs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ResolvedClient {
    /// Where to connect (and whether with TLS).
    pub url: ServerUrl,
    /// The connection options, with the URL's password and username and the connect timeout as
    /// the handshake timeout.
    pub options: ClientOptions,
    /// TCP, TLS and handshake timeout.
    pub connect_timeout: Duration,
    /// Request timeout (also the reconnect budget of a call).
    pub request_timeout: Duration,
}

impl ClientSettings {
    /// Sets the server URL (`tcp://[:password@]host:port` or `tcp+tls://…`).
    pub fn set_url(&mut self, url: &str) -> Result<(), Error> {
        self.url = Some(ServerUrl::parse(url)?);
        Ok(())
    }

    /// Sets the password (it wins over one in the URL).
    pub fn set_password(&mut self, password: impl Into<String>) {
        self.options.password = Some(Password::new(password));
    }

    /// Sets the request timeout (reply deadline and reconnect budget).
    pub fn set_request_timeout(&mut self, timeout: Duration) {
        self.request_timeout = timeout;
        self.options.reply_timeout = timeout;
    }

    /// Resolves the URL (from `env` when none was set) and merges it into the options.
    pub fn resolve(&self, env: impl Fn(&str) -> Option<String>) -> Result<ResolvedClient, Error> {
        let url = match &self.url {
            Some(u) => u.clone(),
            None => ServerUrl::from_env_with(env)?,
        };
        let mut options = self.options.clone();
        if options.password.is_none() {
            options.password = url.password.clone();
        }
        if options.username.is_none() {
            options.username = url.username.clone();
        }
        options.handshake_timeout = self.connect_timeout;
        Ok(ResolvedClient {
            url,
            options,
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
        })
    }
}

/// The server settings of a `Worker`, before they are resolved against the environment.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkerSettings {
    /// The engine's configuration.
    pub config: crate::worker::WorkerConfig,
    /// The server; `None`: the environment.
    pub url: Option<ServerUrl>,
    /// The password (wins over one in the URL).
    pub password: Option<Password>,
    /// TCP, TLS and handshake timeout per connection.
    pub connect_timeout: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            config: crate::worker::WorkerConfig::default(),
            url: None,
            password: None,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl WorkerSettings {
    /// Resolves the URL (from `env` when none was set), puts the password, username and handshake
    /// timeout into the engine's connection options, and returns the URL and the configuration.
    pub fn resolve(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(ServerUrl, crate::worker::WorkerConfig), Error> {
        let url = match &self.url {
            Some(u) => u.clone(),
            None => ServerUrl::from_env_with(env)?,
        };
        let mut config = self.config.clone();
        config.client.password = self.password.clone().or_else(|| url.password.clone());
        if config.client.username.is_none() {
            config.client.username = url.username.clone();
        }
        config.client.handshake_timeout = self.connect_timeout;
        Ok((url, config))
    }
}

/// Generates the `WorkerBuilder` setters every adapter shares, on a builder that holds a
/// [`WorkerSettings`] in a field named `settings` (runtime-specific setters such as the shutdown
/// signal, the spawner or TLS stay in each adapter).
#[doc(hidden)]
#[macro_export]
macro_rules! __worker_builder_setters {
    () => {
        /// How many jobs run at once.
        pub fn concurrency(mut self, n: usize) -> Self {
            self.settings.config.concurrency = n;
            self
        }

        /// Fetch from these queues in strict priority order.
        pub fn queues<I, S>(mut self, queues: I) -> Self
        where
            I: ::std::iter::IntoIterator<Item = S>,
            S: ::std::convert::Into<::std::string::String>,
        {
            self.settings.config.queues = $crate::worker::Queues::strict(queues);
            self
        }

        /// Fetch from these queues in a random order weighted per FETCH.
        pub fn weighted_queues<I, S>(mut self, queues: I) -> Self
        where
            I: ::std::iter::IntoIterator<Item = (S, u32)>,
            S: ::std::convert::Into<::std::string::String>,
        {
            self.settings.config.queues = $crate::worker::Queues::weighted(queues);
            self
        }

        /// Labels shown on the Web UI's Busy page.
        pub fn labels<I, S>(mut self, labels: I) -> Self
        where
            I: ::std::iter::IntoIterator<Item = S>,
            S: ::std::convert::Into<::std::string::String>,
        {
            self.settings.config.labels =
                labels.into_iter().map(::std::convert::Into::into).collect();
            self
        }

        /// Hostname shown on the Busy page (default: this machine's).
        pub fn hostname(
            mut self,
            hostname: impl ::std::convert::Into<::std::string::String>,
        ) -> Self {
            self.settings.config.hostname = Some(hostname.into());
            self
        }

        /// The worker id (default: a random one per worker).
        pub fn wid(mut self, wid: impl ::std::convert::Into<::std::string::String>) -> Self {
            self.settings.config.wid = Some(wid.into());
            self
        }

        /// How long running jobs may finish after terminate or shutdown (default 25 s).
        pub fn grace_period(mut self, grace: ::std::time::Duration) -> Self {
            self.settings.config.grace_period = grace;
            self
        }

        /// BEAT interval (default 15 s).
        pub fn heartbeat_interval(mut self, interval: ::std::time::Duration) -> Self {
            self.settings.config.heartbeat_interval = interval;
            self
        }

        /// The server, as `tcp://[:password@]host:port` or `tcp+tls://…` (default: the environment).
        pub fn url(mut self, url: &str) -> ::std::result::Result<Self, $crate::adapter::Error> {
            self.settings.url = Some($crate::config::ServerUrl::parse(url)?);
            Ok(self)
        }

        /// The password (overrides one in the URL).
        pub fn password(
            mut self,
            password: impl ::std::convert::Into<::std::string::String>,
        ) -> Self {
            self.settings.password = Some($crate::handshake::Password::new(password));
            self
        }

        /// TCP, TLS and handshake timeout per connection (default 10 s).
        pub fn connect_timeout(mut self, timeout: ::std::time::Duration) -> Self {
            self.settings.connect_timeout = timeout;
            self
        }

        /// Full access to the engine's configuration (fetch connections, backoff, seed, …).
        pub fn config(
            mut self,
            f: impl ::std::ops::FnOnce(&mut $crate::worker::WorkerConfig),
        ) -> Self {
            f(&mut self.settings.config);
            self
        }
    };
}

/// Generates the `ClientBuilder` setters every adapter shares, on a builder that holds a
/// [`ClientSettings`] in a field named `settings`.
#[doc(hidden)]
#[macro_export]
macro_rules! __client_builder_setters {
    () => {
        /// The server, as `tcp://[:password@]host:port` or `tcp+tls://…`.
        pub fn url(mut self, url: &str) -> ::std::result::Result<Self, $crate::adapter::Error> {
            self.settings.set_url(url)?;
            Ok(self)
        }

        /// The server, already parsed.
        pub fn server_url(mut self, url: $crate::config::ServerUrl) -> Self {
            self.settings.url = Some(url);
            self
        }

        /// The password (overrides one in the URL).
        pub fn password(
            mut self,
            password: impl ::std::convert::Into<::std::string::String>,
        ) -> Self {
            self.settings.set_password(password);
            self
        }

        /// Say HELLO with this worker id, for the consumer commands ([`Client::fetch`], [`Client::beat`]).
        pub fn wid(mut self, wid: impl ::std::convert::Into<::std::string::String>) -> Self {
            self.settings.options.wid = Some(wid.into());
            self
        }

        /// Hostname reported in HELLO (consumers).
        pub fn hostname(
            mut self,
            hostname: impl ::std::convert::Into<::std::string::String>,
        ) -> Self {
            self.settings.options.hostname = Some(hostname.into());
            self
        }

        /// Labels reported in HELLO (consumers).
        pub fn labels<I, S>(mut self, labels: I) -> Self
        where
            I: ::std::iter::IntoIterator<Item = S>,
            S: ::std::convert::Into<::std::string::String>,
        {
            self.settings.options.labels =
                labels.into_iter().map(::std::convert::Into::into).collect();
            self
        }

        /// TCP (and TLS) connect timeout, also the handshake timeout.
        pub fn connect_timeout(mut self, timeout: ::std::time::Duration) -> Self {
            self.settings.connect_timeout = timeout;
            self
        }

        /// How long a request may wait for its reply (and, when reconnecting, for a connection).
        pub fn request_timeout(mut self, timeout: ::std::time::Duration) -> Self {
            self.settings.set_request_timeout(timeout);
            self
        }
    };
}

/// Generates the request methods of a `Client` (push, info, queues, mutate, batches, tracking,
/// consumer commands) for every adapter: `__client_methods!(async; .await)` for the async ones,
/// `__client_methods!(;)` for the blocking one. The client must have
/// `fn call(&self, Command) -> Result<Result<Reply, ServerError>, Error>` (async or not) and a
/// `shared.wid: Option<String>`.
#[doc(hidden)]
#[macro_export]
macro_rules! __client_methods {
    ($($async:ident)?; $($await:tt)*) => {
    /// Pushes one job. The job is validated first (jid, jobtype, queue name, `reserve_for`, `at`).
    pub $($async)? fn push(&self, job: $crate::job::Job) -> ::std::result::Result<(), $crate::adapter::Error> {
        job.validate()?;
        Ok($crate::ops::expect_ok(
            self.call($crate::command::Command::Push(Box::new(job)))$($await)*?,
        )?)
    }

    /// Server statistics.
    pub $($async)? fn info(&self) -> ::std::result::Result<$crate::info::Info, $crate::adapter::Error> {
        Ok($crate::ops::expect_json(self.call($crate::command::Command::Info)$($await)*?)?)
    }

    /// Deletes every job, queue and set on the server.
    pub $($async)? fn flush(&self) -> ::std::result::Result<(), $crate::adapter::Error> {
        Ok($crate::ops::expect_ok(self.call($crate::command::Command::Flush)$($await)*?)?)
    }

    /// Pauses queues (`["*"]`: all of them): FETCH skips them, pushes still land.
    pub $($async)? fn queue_pause<S: AsRef<str>>(&self, queues: &[S]) -> ::std::result::Result<(), $crate::adapter::Error> {
        Ok($crate::ops::expect_ok(
            self.call($crate::command::Command::QueuePause($crate::ops::queue_selector(queues)))
                $($await)*?,
        )?)
    }

    /// Resumes paused queues (`["*"]`: all of them).
    pub $($async)? fn queue_resume<S: AsRef<str>>(&self, queues: &[S]) -> ::std::result::Result<(), $crate::adapter::Error> {
        Ok($crate::ops::expect_ok(
            self.call($crate::command::Command::QueueResume($crate::ops::queue_selector(queues)))
                $($await)*?,
        )?)
    }

    /// Deletes queues and all their jobs (`["*"]`: all of them).
    pub $($async)? fn queue_remove<S: AsRef<str>>(&self, queues: &[S]) -> ::std::result::Result<(), $crate::adapter::Error> {
        Ok($crate::ops::expect_ok(
            self.call($crate::command::Command::QueueRemove($crate::ops::queue_selector(queues)))
                $($await)*?,
        )?)
    }

    /// Seconds since the oldest job of each queue was enqueued (0 for empty or unknown queues).
    pub $($async)? fn queue_latency<S: AsRef<str>>(&self, queues: &[S]) -> ::std::result::Result<$crate::info::QueueLatency, $crate::adapter::Error> {
        let names = queues.iter().map(|s| s.as_ref().to_owned()).collect();
        Ok($crate::ops::expect_json(
            self.call($crate::command::Command::QueueLatency(names))$($await)*?,
        )?)
    }

    /// Runs a MUTATE command on the retry, scheduled or dead set.
    pub $($async)? fn mutate(&self, mutation: $crate::command::Mutation) -> ::std::result::Result<(), $crate::adapter::Error> {
        Ok($crate::ops::expect_ok(self.call($crate::command::Command::Mutate(mutation))$($await)*?)?)
    }

    /// MUTATE shorthand: `op` on `target`, restricted by `filter` (`None`: every job).
    pub $($async)? fn mutate_set(
        &self,
        op: $crate::command::MutateOp,
        target: $crate::command::MutateTarget,
        filter: Option<$crate::command::MutateFilter>,
    ) -> ::std::result::Result<(), $crate::adapter::Error> {
        self.mutate($crate::command::Mutation {
            cmd: op,
            target,
            filter,
        })
        $($await)*
    }

    /// Creates a batch (Enterprise) and returns its BID. Push its jobs with `custom.bid` set (see
    /// [`Client::push_in_batch`]), then [`Client::batch_commit`].
    pub $($async)? fn batch_new(&self, batch: $crate::command::BatchNew) -> ::std::result::Result<String, $crate::adapter::Error> {
        Ok($crate::ops::expect_text(
            self.call($crate::command::Command::BatchNew(batch))$($await)*?,
        )?)
    }

    /// Reopens a batch to add jobs (Enterprise).
    pub $($async)? fn batch_open(&self, bid: &str) -> ::std::result::Result<String, $crate::adapter::Error> {
        Ok($crate::ops::expect_text(
            self.call($crate::command::Command::BatchOpen(bid.to_owned()))$($await)*?,
        )?)
    }

    /// Commits a batch (Enterprise): its callbacks can fire once its jobs are done.
    pub $($async)? fn batch_commit(&self, bid: &str) -> ::std::result::Result<(), $crate::adapter::Error> {
        Ok($crate::ops::expect_ok(
            self.call($crate::command::Command::BatchCommit(bid.to_owned()))$($await)*?,
        )?)
    }

    /// A batch's status (Enterprise).
    pub $($async)? fn batch_status(&self, bid: &str) -> ::std::result::Result<$crate::info::BatchStatus, $crate::adapter::Error> {
        Ok($crate::ops::expect_json(
            self.call($crate::command::Command::BatchStatus(bid.to_owned()))$($await)*?,
        )?)
    }

    /// Pushes `job` as a member of batch `bid` (sets `custom.bid`).
    pub $($async)? fn push_in_batch(&self, bid: &str, mut job: $crate::job::Job) -> ::std::result::Result<(), $crate::adapter::Error> {
        $crate::ops::join_batch(&mut job, bid);
        self.push(job)$($await)*
    }

    /// A tracked job's progress (Enterprise; push with `custom.track = 1`).
    pub $($async)? fn track_get(&self, jid: &str) -> ::std::result::Result<$crate::info::TrackInfo, $crate::adapter::Error> {
        Ok($crate::ops::expect_json(
            self.call($crate::command::Command::TrackGet(jid.to_owned()))$($await)*?,
        )?)
    }

    /// Updates a tracked job's progress (Enterprise).
    pub $($async)? fn track_set(&self, track: $crate::command::TrackSet) -> ::std::result::Result<(), $crate::adapter::Error> {
        Ok($crate::ops::expect_ok(self.call($crate::command::Command::TrackSet(track))$($await)*?)?)
    }

    /// FETCH one job from `queues` (in priority order); `None` when they stay empty for ~2 s.
    /// Every fetched job must be ACKed or FAILed. The FETCH blocks the connection while it waits:
    /// use a separate `Client` for fetching if you also push.
    pub $($async)? fn fetch<S: AsRef<str>>(&self, queues: &[S]) -> ::std::result::Result<Option<$crate::job::Job>, $crate::adapter::Error> {
        let names = queues.iter().map(|s| s.as_ref().to_owned()).collect();
        Ok($crate::ops::expect_job(self.call($crate::command::Command::Fetch(names))$($await)*?)?)
    }

    /// ACK a fetched job.
    pub $($async)? fn ack(&self, jid: &str) -> ::std::result::Result<(), $crate::adapter::Error> {
        Ok($crate::ops::expect_ok(
            self.call($crate::command::Command::Ack($crate::command::Ack {
                jid: jid.to_owned(),
            }))
            $($await)*?,
        )?)
    }

    /// FAIL a fetched job (the server retries it per its `retry`).
    pub $($async)? fn fail(&self, fail: $crate::command::Fail) -> ::std::result::Result<(), $crate::adapter::Error> {
        Ok($crate::ops::expect_ok(self.call($crate::command::Command::Fail(fail))$($await)*?)?)
    }

    /// BEAT for this client's wid (set with [`ClientBuilder::wid`]): `None` while running, else the
    /// state the server asks for (quiet or terminate).
    pub $($async)? fn beat(
        &self,
        rss_kb: Option<u64>,
        current_state: Option<$crate::command::WorkerState>,
    ) -> ::std::result::Result<Option<$crate::command::WorkerState>, $crate::adapter::Error> {
        let wid = self.shared.wid.clone().ok_or($crate::adapter::Error::Usage(
            "beat needs a client built with ClientBuilder::wid",
        ))?;
        let beat = $crate::command::Beat {
            wid,
            rss_kb,
            current_state,
        };
        Ok($crate::ops::expect_beat(self.call($crate::command::Command::Beat(beat))$($await)*?)?)
    }

    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unanswered_calls_get_an_unknown_outcome_and_end_is_answered_at_close() {
        use crate::client::{Connection, Reply};
        use crate::command::Command;
        let now = std::time::Instant::now();
        let mut conn = Connection::new(ClientOptions::default(), now);
        conn.handle_input(b"+HI {\"v\":2}\r\n+OK\r\n", now);
        let mut calls: Calls<u32> = Calls::new();
        let mut answers = Vec::new();
        assert_eq!(calls.dispatch(&mut conn, |w, r| answers.push((w, r))), None);
        assert!(calls.submit(&mut conn, &Command::Info, 1, now).is_none());
        assert!(calls.submit(&mut conn, &Command::Flush, 2, now).is_none());
        assert!(calls.submit(&mut conn, &Command::End, 3, now).is_none());
        assert_eq!(calls.len(), 3);
        conn.handle_input(b"$2\r\n{}\r\n", now);
        conn.handle_eof(now);
        let closed = calls.dispatch(&mut conn, |w, r| answers.push((w, r)));
        assert!(closed.is_some());
        assert!(calls.is_empty());
        assert!(matches!(&answers[0], (1, Ok(Ok(Reply::Json(_))))));
        assert!(matches!(
            &answers[1],
            (
                2,
                Err(Error::OutcomeUnknown {
                    command: "FLUSH",
                    ..
                })
            )
        ));
        assert!(matches!(&answers[2], (3, Ok(Ok(Reply::Ok)))));
        let bad = Command::Fetch(vec!["has space".into()]);
        assert!(matches!(
            calls.submit(&mut conn, &bad, 4, now),
            Some((4, Err(_)))
        ));
    }

    #[test]
    fn client_settings_take_password_and_username_from_the_url() {
        let mut s = ClientSettings::default();
        s.set_url("tcp://user:pa%40ss@example.com:7500").unwrap();
        s.set_request_timeout(Duration::from_secs(3));
        let r = s.resolve(|_| None).unwrap();
        assert_eq!(r.url.port, 7500);
        assert_eq!(
            r.options.password.as_ref().map(Password::expose),
            Some("pa@ss")
        );
        assert_eq!(r.options.username.as_deref(), Some("user"));
        assert_eq!(r.options.reply_timeout, Duration::from_secs(3));
        s.set_password("explicit");
        let r = s.resolve(|_| None).unwrap();
        assert_eq!(
            r.options.password.as_ref().map(Password::expose),
            Some("explicit")
        );
    }

    #[test]
    fn settings_fall_back_to_the_environment() {
        let s = ClientSettings::default();
        let r = s
            .resolve(|k| (k == "FAKTORY_URL").then(|| "tcp+tls://h:1".to_owned()))
            .unwrap();
        assert!(r.url.tls);
        let w = WorkerSettings::default();
        let (url, config) = w.resolve(|_| None).unwrap();
        assert_eq!(url.port, 7419);
        assert_eq!(config.client.handshake_timeout, Duration::from_secs(10));
        assert!(Error::Timeout.is_transient_connect());
        assert!(!Error::Usage("x").is_transient_connect());
    }
}
