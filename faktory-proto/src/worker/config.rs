//! Worker configuration.

use std::time::Duration;

use crate::backoff::BackoffConfig;
use crate::client::ClientOptions;
use crate::job::is_valid_queue_name;

/// Which queues to fetch from, and in which order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Queues {
    /// Every FETCH lists the queues in this order: the server takes from the first non-empty one.
    Strict(Vec<String>),
    /// Every FETCH lists the queues in a random order drawn by weight (without replacement): queue
    /// `q` comes first with probability `weight(q) / Σ weights`, so it is served in that proportion
    /// while several queues hold jobs, and the others still follow in the list, so no FETCH waits
    /// on an empty queue while another has jobs. A weight of 0 puts a queue always last.
    Weighted(Vec<(String, u32)>),
}

impl Queues {
    /// Strict order.
    pub fn strict<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        Queues::Strict(names.into_iter().map(Into::into).collect())
    }

    /// Weighted order.
    pub fn weighted<S: Into<String>>(weights: impl IntoIterator<Item = (S, u32)>) -> Self {
        Queues::Weighted(weights.into_iter().map(|(n, w)| (n.into(), w)).collect())
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let names: Vec<&str> = match self {
            Queues::Strict(v) => v.iter().map(String::as_str).collect(),
            Queues::Weighted(v) => v.iter().map(|(n, _)| n.as_str()).collect(),
        };
        if names.is_empty() {
            return Err(ConfigError::NoQueues);
        }
        for name in &names {
            if !is_valid_queue_name(name) {
                return Err(ConfigError::InvalidQueueName((*name).to_owned()));
            }
        }
        for (i, name) in names.iter().enumerate() {
            if names.iter().take(i).any(|n| n == name) {
                return Err(ConfigError::DuplicateQueue((*name).to_owned()));
            }
        }
        if let Queues::Weighted(v) = self {
            if v.iter().all(|(_, w)| *w == 0) {
                return Err(ConfigError::ZeroWeights);
            }
        }
        Ok(())
    }
}

impl Default for Queues {
    fn default() -> Self {
        Queues::Strict(vec![crate::job::DEFAULT_QUEUE.to_owned()])
    }
}

/// A configuration the engine refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `concurrency` is 0.
    #[error("concurrency must be at least 1")]
    ZeroConcurrency,
    /// No queue to fetch from.
    #[error("at least one queue is needed")]
    NoQueues,
    /// A queue name that does not match `^[a-zA-Z0-9._-]+$`.
    #[error("invalid queue name {0:?}: queue names must match [a-zA-Z0-9._-]+")]
    InvalidQueueName(String),
    /// A queue listed twice.
    #[error("queue {0:?} is listed twice")]
    DuplicateQueue(String),
    /// Weighted queues whose weights are all 0.
    #[error("weighted queues need at least one non-zero weight")]
    ZeroWeights,
    /// An empty wid (an empty wid makes a producer connection, not a worker).
    #[error("the worker id must not be empty")]
    EmptyWid,
    /// `max_fetch_connections` or `fetches_per_connection` is 0.
    #[error("max_fetch_connections and fetches_per_connection must be at least 1")]
    ZeroFetchConnections,
    /// A zero `heartbeat_interval`.
    #[error("heartbeat_interval must not be zero")]
    ZeroHeartbeat,
}

/// The default number of concurrently running jobs.
pub const DEFAULT_CONCURRENCY: usize = 10;
/// The default BEAT interval (the server reaps a worker after 60 s without BEAT).
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);
/// The default grace period given to running jobs on terminate or local shutdown (Go and Ruby
/// workers use 25 s; the protocol asks for at most 30 s).
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(25);
/// The default time allowed after the grace period to deliver the last ACK/FAIL and END.
pub const DEFAULT_SHUTDOWN_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// The default cap on fetch connections (the control connection comes on top, so at most 12 in
/// all): a real server's throughput plateaus from about 10 connections on, and the 11th hides the
/// worker's own latency at high concurrency (see the [module documentation](super)).
pub const DEFAULT_MAX_FETCH_CONNECTIONS: usize = 11;
/// The default number of FETCHes outstanding on one fetch connection at most: one, because the
/// server runs one command at a time per connection, so a second pipelined FETCH adds no
/// throughput and makes an idle shutdown wait a second FETCH block.
pub const DEFAULT_FETCHES_PER_CONNECTION: usize = 1;

/// Everything the worker engine needs to know.
///
/// Start from [`WorkerConfig::default`] and set fields; [`crate::worker::Worker::new`] validates.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WorkerConfig {
    /// How many jobs run at once (default [`DEFAULT_CONCURRENCY`]).
    pub concurrency: usize,
    /// Which queues to fetch from (default: strict `["default"]`).
    pub queues: Queues,
    /// The worker id sent in every HELLO and BEAT. `None`: [`crate::job::new_wid`] makes one when
    /// the worker is created (the one random draw that is not from `seed`; it decides nothing).
    pub wid: Option<String>,
    /// Hostname shown on the Busy page.
    pub hostname: Option<String>,
    /// Process id shown on the Busy page.
    pub pid: Option<u32>,
    /// Labels shown on the Busy page (default `["rust"]`).
    pub labels: Vec<String>,
    /// BEAT interval (default 15 s).
    pub heartbeat_interval: Duration,
    /// How long running jobs may still run after terminate or local shutdown (default 25 s).
    pub grace_period: Duration,
    /// After the grace period, how long to keep trying to deliver ACK/FAIL before giving up
    /// (default 5 s).
    pub shutdown_flush_timeout: Duration,
    /// Reconnect delays (exponential, capped, jittered; reset when a connection is ready again).
    pub backoff: BackoffConfig,
    /// The most fetch connections (default [`DEFAULT_MAX_FETCH_CONNECTIONS`]); see the module docs.
    pub max_fetch_connections: usize,
    /// The most FETCHes pipelined on one fetch connection (default
    /// [`DEFAULT_FETCHES_PER_CONNECTION`]); the number of fetch connections is
    /// `ceil(concurrency / fetches_per_connection)`, capped by `max_fetch_connections`.
    pub fetches_per_connection: usize,
    /// Seed of the random generator (weighted queue order, backoff jitter). `None`: derived from the
    /// wid, so two processes differ and one replay is exact.
    pub seed: Option<u64>,
    /// Connection options: password, username, handshake and reply timeouts, maximum frame size.
    /// `wid`, `hostname`, `pid` and `labels` in here are ignored (the fields above win).
    pub client: ClientOptions,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: DEFAULT_CONCURRENCY,
            queues: Queues::default(),
            wid: None,
            hostname: None,
            pid: None,
            labels: vec!["rust".to_owned()],
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            grace_period: DEFAULT_GRACE_PERIOD,
            shutdown_flush_timeout: DEFAULT_SHUTDOWN_FLUSH_TIMEOUT,
            backoff: BackoffConfig::default(),
            max_fetch_connections: DEFAULT_MAX_FETCH_CONNECTIONS,
            fetches_per_connection: DEFAULT_FETCHES_PER_CONNECTION,
            seed: None,
            client: ClientOptions::default(),
        }
    }
}

impl WorkerConfig {
    /// The number of fetch connections this configuration opens:
    /// `ceil(concurrency / fetches_per_connection)` clamped to `1..=max_fetch_connections`.
    pub fn fetch_connections(&self) -> usize {
        self.concurrency
            .div_ceil(self.fetches_per_connection.max(1))
            .clamp(1, self.max_fetch_connections.max(1))
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.concurrency == 0 {
            return Err(ConfigError::ZeroConcurrency);
        }
        if self.max_fetch_connections == 0 || self.fetches_per_connection == 0 {
            return Err(ConfigError::ZeroFetchConnections);
        }
        if self.heartbeat_interval.is_zero() {
            return Err(ConfigError::ZeroHeartbeat);
        }
        if self.wid.as_deref() == Some("") {
            return Err(ConfigError::EmptyWid);
        }
        self.queues.validate()
    }
}
