//! The job payload (docs/protocol.md#the-job-payload).
//!
//! A [`Job`] holds every field the server knows, keeps unknown top-level fields in [`Job::extra`]
//! (the real server drops them, but a job read from elsewhere keeps them), and decodes any job the
//! server hands out whatever client pushed it: only `jid`, `jobtype` and `args` are required.
//!
//! Every job this crate pushes carries `retry` ([`DEFAULT_RETRY`], 25, unless the job or its
//! [`JobDefaults`] chose otherwise), because the real server leaks an explicit `retry` into its
//! default for later jobs (docs/protocol.md#the-retry-default-leaks). The builder leaves `retry`
//! unset, so per-jobtype defaults ([`Job::apply_defaults`]) can still fill it; the push
//! ([`request::Push`](crate::request::Push), [`PushBulkPlan`](crate::request::PushBulkPlan), the
//! worker engine's [`push`](crate::worker::Worker::push)) sends 25 for a job that has none.
//!
//! ```
//! use faktory_proto::job::Job;
//!
//! let job = Job::builder("SendEmail")
//!     .args(("ada@example.com", 42))
//!     .queue("mail")
//!     .reserve_for(600)
//!     .custom("locale", "fr")
//!     .build()
//!     .unwrap();
//! assert_eq!(job.retry, None); // sent as 25 at push
//! let (to, n): (String, u32) = job.args_as().unwrap();
//! assert_eq!((to.as_str(), n), ("ada@example.com", 42));
//! ```
//!
//! # Arguments
//!
//! Faktory's `args` is a JSON array: positional arguments, read back as a tuple. A value that
//! serializes to a JSON object (a struct, a map) is accepted too, as the job's only argument, and
//! [`Job::args_as`] reads it back as that struct:
//!
//! ```
//! use faktory_proto::job::Job;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Email {
//!     to: String,
//!     template: String,
//! }
//!
//! let email = Email { to: "ada@example.com".into(), template: "welcome".into() };
//! let job = Job::builder("SendEmail").args(&email).build().unwrap();
//! assert_eq!(job.args.len(), 1); // [{"to":"ada@example.com","template":"welcome"}]
//! assert_eq!(job.args_as::<Email>().unwrap(), email);
//! ```
//!
//! # Times relative to the push
//!
//! [`JobBuilder::after`] and [`JobBuilder::expires_in`] say "this long after the push". This crate
//! reads no clock: the times are kept in [`Job::run_after`] and [`Job::expires_after`] (never
//! serialized) until the client resolves them at push with the current time
//! ([`Job::resolve_relative`]) into `at` and `custom.expires_at`. A push refuses a job whose
//! relative times were not resolved ([`JobError::UnresolvedRelativeTime`]).
//!
//! ```
//! use std::time::Duration;
//! use faktory_proto::job::Job;
//! use faktory_proto::time::Timestamp;
//!
//! let mut job = Job::builder("Reminder")
//!     .after(Duration::from_secs(3600))
//!     .expires_in(Duration::from_secs(7200))
//!     .build()
//!     .unwrap();
//! assert_eq!(job.at, None);
//! // What a client does when it pushes (with Timestamp::now()):
//! job.resolve_relative(Timestamp::parse("2030-01-01T00:00:00Z").unwrap());
//! assert_eq!(job.at.as_ref().map(|t| t.as_str()), Some("2030-01-01T01:00:00Z"));
//! assert_eq!(job.custom_value("expires_at"), Some(&"2030-01-01T02:00:00Z".into()));
//! assert_eq!(job.run_after, None);
//! ```
//!
//! # Enterprise options
//!
//! Unique jobs ([`JobBuilder::unique_for`], [`JobBuilder::unique_until`]), expiring jobs
//! ([`JobBuilder::expires_at`], [`JobBuilder::expires_in`]) and batches ([`Job::batch_id`]) are
//! `custom` fields read by Faktory Enterprise (docs/protocol.md#enterprise-commands); the
//! open-source server keeps them and ignores them.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::de::{self, DeserializeOwned, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::time::{Timestamp, TimestampError, UnixTime};

/// The number of retries sent with every job we push that does not set `retry` (the server's own
/// default can be changed by other clients, docs/protocol.md#the-retry-default-leaks).
pub const DEFAULT_RETRY: i64 = 25;
/// The queue the server uses when a job names none.
pub const DEFAULT_QUEUE: &str = "default";
/// The longest reservation the server accepts, in seconds (one day).
pub const MAX_RESERVE_FOR: i64 = 86_400;

/// A Faktory job.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Job {
    /// Unique job id, at least 8 bytes.
    pub jid: String,
    /// The kind of job: which handler runs it.
    pub jobtype: String,
    /// Positional arguments, any JSON values.
    pub args: Vec<Value>,
    /// Target queue; absent means [`DEFAULT_QUEUE`].
    pub queue: Option<String>,
    /// Retries after the first attempt: `0` discards on failure, negative goes straight to the dead set.
    pub retry: Option<i64>,
    /// Seconds the job stays reserved once fetched (server default 1800, clamped to 60..=86400).
    pub reserve_for: Option<i64>,
    /// When to run the job; absent or past means now.
    pub at: Option<Timestamp>,
    /// How many backtrace lines a worker sends with a FAIL for this job.
    pub backtrace: Option<i64>,
    /// Set by the server when left empty.
    pub created_at: Option<Timestamp>,
    /// Set by the server each time the job is put on a queue.
    pub enqueued_at: Option<Timestamp>,
    /// Set by the server after the job failed.
    pub failure: Option<Failure>,
    /// Extension data; keys starting with `_` are reserved for Faktory.
    pub custom: Option<Map<String, Value>>,
    /// Unknown top-level fields, kept as they came.
    pub extra: Map<String, Value>,
    /// Run the job this long after it is pushed ([`JobBuilder::after`]). Not sent: the push
    /// turns it into `at` ([`Job::resolve_relative`]). `None` in a decoded job.
    pub run_after: Option<Duration>,
    /// Expire the job this long after it is pushed ([`JobBuilder::expires_in`], Enterprise). Not
    /// sent: the push turns it into `custom.expires_at` ([`Job::resolve_relative`]). `None` in a
    /// decoded job.
    pub expires_after: Option<Duration>,
}

/// The server-maintained failure record of a job (docs/protocol.md#the-failure-record).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Failure {
    /// When the job first failed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "nullable"
    )]
    pub failed_at: Option<Timestamp>,
    /// When the job will be retried.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "nullable"
    )]
    pub next_at: Option<Timestamp>,
    /// The message of the most recent failure.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "nullable"
    )]
    pub message: Option<String>,
    /// The error type of the most recent failure.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "nullable"
    )]
    pub errtype: Option<String>,
    /// The backtrace of the most recent failure.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "nullable"
    )]
    pub backtrace: Option<Vec<String>>,
    /// 0 after the first failure, +1 on each later one.
    #[serde(default)]
    pub retry_count: i64,
    /// Retries left.
    #[serde(default)]
    pub remaining: i64,
}

fn nullable<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)
}

/// A job that cannot be built or sent as it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The arguments serialized to neither a JSON array nor a JSON object (the kind they did
    /// serialize to is given).
    #[error(
        "job args must serialize to a JSON array (a tuple, a Vec, an array: positional args) or \
         to a JSON object (a struct, a map: sent as the only arg), got {0}"
    )]
    ArgsNotArray(&'static str),
    /// The arguments could not be serialized or deserialized.
    #[error("job args: {0}")]
    Args(#[from] serde_json::Error),
    /// The jid is shorter than 8 bytes.
    #[error("jid {0:?} is shorter than 8 bytes")]
    JidTooShort(String),
    /// The jobtype is empty.
    #[error("jobtype must not be empty")]
    EmptyJobtype,
    /// The queue name does not match `^[a-zA-Z0-9._-]+$`.
    #[error("queue name {0:?} must match ^[a-zA-Z0-9._-]+$")]
    InvalidQueue(String),
    /// `reserve_for` is over one day.
    #[error("reserve_for {0} is more than one day (86400 s)")]
    ReserveTooLong(i64),
    /// `at` is not an RFC3339 timestamp.
    #[error("at: {0}")]
    InvalidAt(#[from] TimestampError),
    /// `custom.expires_at` (Enterprise) is not an RFC3339 timestamp string.
    #[error("custom.expires_at: {0}")]
    InvalidExpiresAt(TimestampError),
    /// `custom.unique_for` (Enterprise) is not a JSON number (a string is not honoured).
    #[error("custom.unique_for must be a JSON number of seconds, got {0}")]
    InvalidUniqueFor(&'static str),
    /// The job still has a time relative to its push ([`Job::run_after`],
    /// [`Job::expires_after`]): it must be resolved with the push's time first.
    #[error(
        "job {jid:?} has {field} set: call Job::resolve_relative(now) with a valid RFC 3339 time \
         before encoding it (a client's push does)"
    )]
    UnresolvedRelativeTime {
        /// The job's jid.
        jid: String,
        /// `run_after` or `expires_after`.
        field: &'static str,
    },
}

/// Whether `name` is a queue name the server accepts: `^[a-zA-Z0-9._-]+$`.
pub fn is_valid_queue_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Job {
    /// A job of `jobtype` with raw JSON `args` and a fresh jid. `retry` is left unset: the push
    /// sends [`DEFAULT_RETRY`] for it.
    pub fn new(jobtype: impl Into<String>, args: Vec<Value>) -> Self {
        let mut job = Job::blank();
        job.jid = new_jid();
        job.jobtype = jobtype.into();
        job.args = args;
        job
    }

    /// A job with every field empty (no jid either).
    pub(crate) fn blank() -> Self {
        Job {
            jid: String::new(),
            jobtype: String::new(),
            args: Vec::new(),
            queue: None,
            retry: None,
            reserve_for: None,
            at: None,
            backtrace: None,
            created_at: None,
            enqueued_at: None,
            failure: None,
            custom: None,
            extra: Map::new(),
            run_after: None,
            expires_after: None,
        }
    }

    /// A job of `jobtype` whose args are `args` serialized: a JSON array (a tuple, a `Vec`, an
    /// array) gives the positional args; a JSON object (a struct, a map) is sent as the only arg
    /// (`[{…}]`, read back with [`Job::args_as`]). Anything else is
    /// [`JobError::ArgsNotArray`].
    ///
    /// ```
    /// use faktory_proto::job::Job;
    /// use std::collections::BTreeMap;
    ///
    /// let job = Job::with_args("Resize", (640, 480)).unwrap();
    /// assert_eq!(job.args, vec![serde_json::json!(640), serde_json::json!(480)]);
    /// let map = BTreeMap::from([("width", 640)]);
    /// let job = Job::with_args("Resize", &map).unwrap();
    /// assert_eq!(job.args, vec![serde_json::json!({"width": 640})]);
    /// assert!(Job::with_args("Resize", "640x480").is_err());
    /// ```
    pub fn with_args(jobtype: impl Into<String>, args: impl Serialize) -> Result<Self, JobError> {
        Ok(Self::new(jobtype, args_to_vec(args)?))
    }

    /// Starts a [`JobBuilder`].
    pub fn builder(jobtype: impl Into<String>) -> JobBuilder {
        JobBuilder {
            job: Job::new(jobtype, Vec::new()),
            error: None,
        }
    }

    /// The queue, [`DEFAULT_QUEUE`] when none is set.
    pub fn queue(&self) -> &str {
        self.queue.as_deref().unwrap_or(DEFAULT_QUEUE)
    }

    /// Decodes the args as `T`.
    ///
    /// - Positional args decode as a tuple, a `Vec`, a tuple struct, … from the whole array; extra
    ///   or missing args are an error.
    /// - A job with a single arg also decodes as `T` from that arg when `T` does not decode from
    ///   the whole array: a job pushed with one struct or map as its args (`[{…}]`) reads back as
    ///   that struct.
    ///
    /// The error says what was tried, and how to fix it.
    ///
    /// ```
    /// use faktory_proto::job::Job;
    /// use serde::Deserialize;
    ///
    /// #[derive(Deserialize)]
    /// struct Resize { width: u32, height: u32 }
    ///
    /// let job = Job::with_args("Resize", serde_json::json!({"width": 640, "height": 480})).unwrap();
    /// let r: Resize = job.args_as().unwrap();
    /// assert_eq!((r.width, r.height), (640, 480));
    ///
    /// let job = Job::with_args("Resize", (640, 480)).unwrap();
    /// let (w, h): (u32, u32) = job.args_as().unwrap();
    /// assert_eq!((w, h), (640, 480));
    /// ```
    pub fn args_as<T: DeserializeOwned>(&self) -> Result<T, JobError> {
        let de = serde::de::value::SeqDeserializer::<_, serde_json::Error>::new(self.args.iter());
        let whole = match T::deserialize(de) {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let type_name = std::any::type_name::<T>();
        let message = match self.args.as_slice() {
            [only] => match T::deserialize(only) {
                Ok(v) => return Ok(v),
                Err(single) => format!(
                    "cannot decode the job's args as {type_name}: from the args array (1 arg): \
                     {whole}; from its only arg ({kind}): {single}",
                    kind = json_kind(only),
                ),
            },
            args => format!(
                "cannot decode the job's {n} args as {type_name}: {whole} (positional args \
                 decode as a tuple of as many values; a struct or map decodes from a job pushed \
                 with that struct or map as its only arg)",
                n = args.len(),
            ),
        };
        Err(JobError::Args(de::Error::custom(message)))
    }

    /// A custom field, if present.
    pub fn custom_value(&self, key: &str) -> Option<&Value> {
        self.custom.as_ref().and_then(|c| c.get(key))
    }

    /// The batch the job belongs to (Enterprise): `custom.bid`, when it is a string.
    ///
    /// ```
    /// use faktory_proto::job::Job;
    ///
    /// let job = Job::builder("Resize").custom("bid", "b-3kcnpl").build().unwrap();
    /// assert_eq!(job.batch_id(), Some("b-3kcnpl"));
    /// assert_eq!(Job::new("Resize", vec![]).batch_id(), None);
    /// ```
    pub fn batch_id(&self) -> Option<&str> {
        self.custom_value("bid").and_then(Value::as_str)
    }

    /// Turns the times relative to the push into absolute ones, with `now` the time of the push:
    /// `at = now + run_after` and (Enterprise) `custom.expires_at = now + expires_after` (RFC
    /// 3339, UTC), then clears [`Job::run_after`] and [`Job::expires_after`]. Clients call it when
    /// they push, with the current time ([`Timestamp::now`]); nothing in this crate reads a clock.
    ///
    /// A time past the year 9999 is written as `9999-12-31T23:59:59Z`. When `now` is not an RFC
    /// 3339 timestamp nothing changes, and the push refuses the job
    /// ([`JobError::UnresolvedRelativeTime`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use faktory_proto::job::Job;
    /// use faktory_proto::time::Timestamp;
    ///
    /// let mut job = Job::builder("Reminder").after(Duration::from_millis(1500)).build().unwrap();
    /// job.resolve_relative(Timestamp::parse("2030-01-01T00:00:00Z").unwrap());
    /// assert_eq!(job.at.unwrap().as_str(), "2030-01-01T00:00:01.5Z");
    /// ```
    #[allow(clippy::needless_pass_by_value)] // by value: `job.resolve_relative(Timestamp::now())`
    pub fn resolve_relative(&mut self, now: Timestamp) {
        if self.run_after.is_none() && self.expires_after.is_none() {
            return;
        }
        let Ok(now) = now.to_unix() else {
            return;
        };
        if let Some(d) = self.run_after.take() {
            self.at = Some(Timestamp::from_unix(add_duration(now, d)));
        }
        if let Some(d) = self.expires_after.take() {
            let at = Timestamp::from_unix(add_duration(now, d));
            self.custom.get_or_insert_with(Map::new).insert(
                "expires_at".to_owned(),
                Value::String(at.as_str().to_owned()),
            );
        }
    }

    /// Whether [`Job::resolve_relative`] still has to run (for [`JobError::UnresolvedRelativeTime`]).
    pub(crate) fn check_resolved(&self) -> Result<(), JobError> {
        let field = if self.run_after.is_some() {
            "run_after"
        } else if self.expires_after.is_some() {
            "expires_after"
        } else {
            return Ok(());
        };
        Err(JobError::UnresolvedRelativeTime {
            jid: self.jid.clone(),
            field,
        })
    }

    /// Fills what the job left unset (`queue`, `retry`, `reserve_for`, `backtrace`) from
    /// `defaults`; what the job sets wins.
    ///
    /// ```
    /// use faktory_proto::job::{Job, JobDefaults};
    ///
    /// let defaults = JobDefaults::new().queue("mail").retry(3).reserve_for(600);
    /// let mut job = Job::builder("SendEmail").retry(10).build().unwrap();
    /// job.apply_defaults(&defaults);
    /// assert_eq!(job.queue(), "mail");
    /// assert_eq!(job.retry, Some(10)); // the job's own choice wins
    /// assert_eq!(job.reserve_for, Some(600));
    /// assert_eq!(job.backtrace, None);
    /// ```
    pub fn apply_defaults(&mut self, defaults: &JobDefaults) {
        if self.queue.is_none() {
            self.queue.clone_from(&defaults.queue);
        }
        if self.retry.is_none() {
            self.retry = defaults.retry;
        }
        if self.reserve_for.is_none() {
            self.reserve_for = defaults.reserve_for;
        }
        if self.backtrace.is_none() {
            self.backtrace = defaults.backtrace;
        }
    }

    /// Checks what the server would reject at PUSH time, plus the queue name even for scheduled jobs
    /// (a scheduled job with a bad queue name is silently lost when it comes due,
    /// docs/protocol.md#scheduled-jobs-with-bad-queue-names-vanish).
    pub fn validate(&self) -> Result<(), JobError> {
        if self.jid.len() < 8 {
            return Err(JobError::JidTooShort(self.jid.clone()));
        }
        if self.jobtype.is_empty() {
            return Err(JobError::EmptyJobtype);
        }
        if let Some(q) = &self.queue {
            if !is_valid_queue_name(q) {
                return Err(JobError::InvalidQueue(q.clone()));
            }
        }
        if let Some(r) = self.reserve_for {
            if r > MAX_RESERVE_FOR {
                return Err(JobError::ReserveTooLong(r));
            }
        }
        if let Some(at) = &self.at {
            if !at.as_str().is_empty() {
                at.to_unix()?;
            }
        }
        if let Some(v) = self.custom_value("expires_at") {
            match v {
                Value::String(s) => {
                    crate::time::parse_rfc3339(s).map_err(JobError::InvalidExpiresAt)?;
                }
                other => {
                    return Err(JobError::InvalidExpiresAt(TimestampError::Syntax(
                        other.to_string(),
                    )));
                }
            }
        }
        if let Some(v) = self.custom_value("unique_for") {
            if !v.is_number() {
                return Err(JobError::InvalidUniqueFor(json_kind(v)));
            }
        }
        Ok(())
    }

    /// How many backtrace lines a FAIL for this job should carry (the job's `backtrace` field, ≥ 0).
    pub fn backtrace_lines(&self) -> usize {
        self.backtrace
            .map_or(0, |n| usize::try_from(n).unwrap_or(0))
    }
}

fn args_to_vec(args: impl Serialize) -> Result<Vec<Value>, JobError> {
    match serde_json::to_value(args)? {
        Value::Array(v) => Ok(v),
        object @ Value::Object(_) => Ok(vec![object]),
        other => Err(JobError::ArgsNotArray(json_kind(&other))),
    }
}

/// The latest time [`Job::resolve_relative`] writes: 9999-12-31T23:59:59Z (RFC 3339 has 4-digit
/// years).
const MAX_UNIX_SECS: i64 = 253_402_300_799;

/// `t + d`, at most [`MAX_UNIX_SECS`].
fn add_duration(t: UnixTime, d: Duration) -> UnixTime {
    let max = UnixTime {
        secs: MAX_UNIX_SECS,
        nanos: 0,
    };
    let Ok(secs) = i64::try_from(d.as_secs()) else {
        return max;
    };
    let mut nanos = t.nanos.saturating_add(d.subsec_nanos());
    let mut carry = 0;
    if nanos >= 1_000_000_000 {
        nanos -= 1_000_000_000;
        carry = 1;
    }
    match t.secs.checked_add(secs).and_then(|s| s.checked_add(carry)) {
        Some(secs) if secs < MAX_UNIX_SECS => UnixTime { secs, nanos },
        _ => max,
    }
}

/// When Enterprise releases a unique job's lock (`custom.unique_until`,
/// docs/protocol.md#unique-jobs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UniqueUntil {
    /// When the job succeeds (is ACKed), or `unique_for` runs out: Enterprise's default.
    Success,
    /// When the job is fetched (starts).
    Start,
}

impl UniqueUntil {
    /// The value sent: `success` or `start`.
    pub fn as_str(self) -> &'static str {
        match self {
            UniqueUntil::Success => "success",
            UniqueUntil::Start => "start",
        }
    }
}

impl fmt::Display for UniqueUntil {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Defaults for the jobs of one jobtype (or any set of jobs), applied with
/// [`Job::apply_defaults`]: each fills only what the job left unset.
///
/// ```
/// use faktory_proto::job::{Job, JobDefaults};
///
/// let reports = JobDefaults::new().queue("reports").retry(2).reserve_for(3600).backtrace(10);
/// let mut job = Job::builder("MonthlyReport").build().unwrap();
/// job.apply_defaults(&reports);
/// assert_eq!((job.queue(), job.retry, job.reserve_for, job.backtrace), ("reports", Some(2), Some(3600), Some(10)));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobDefaults {
    /// The queue.
    pub queue: Option<String>,
    /// Retries after the first attempt (the push sends [`DEFAULT_RETRY`] when neither the job nor
    /// its defaults set it).
    pub retry: Option<i64>,
    /// Seconds the job stays reserved once fetched.
    pub reserve_for: Option<i64>,
    /// Backtrace lines a failing worker sends.
    pub backtrace: Option<i64>,
}

impl JobDefaults {
    /// No defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The queue.
    #[must_use]
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Retries after the first attempt.
    #[must_use]
    pub fn retry(mut self, retry: i64) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Seconds the job stays reserved once fetched (at most [`MAX_RESERVE_FOR`]).
    #[must_use]
    pub fn reserve_for(mut self, secs: i64) -> Self {
        self.reserve_for = Some(secs);
        self
    }

    /// Backtrace lines a failing worker sends.
    #[must_use]
    pub fn backtrace(mut self, lines: i64) -> Self {
        self.backtrace = Some(lines);
        self
    }
}

/// Builds a [`Job`] step by step; [`JobBuilder::build`] validates it.
#[derive(Debug)]
#[must_use]
pub struct JobBuilder {
    job: Job,
    error: Option<JobError>,
}

impl JobBuilder {
    /// Sets the jid (a fresh random one is the default).
    pub fn jid(mut self, jid: impl Into<String>) -> Self {
        self.job.jid = jid.into();
        self
    }
    /// Sets the args from anything that serializes to a JSON array (positional args: a tuple, a
    /// `Vec`) or to a JSON object (a struct, a map: sent as the only arg, `[{…}]`); see
    /// [`Job::with_args`].
    pub fn args(mut self, args: impl Serialize) -> Self {
        match args_to_vec(args) {
            Ok(v) => self.job.args = v,
            Err(e) => self.error = Some(e),
        }
        self
    }
    /// Sets the args as raw JSON values.
    pub fn raw_args(mut self, args: Vec<Value>) -> Self {
        self.job.args = args;
        self
    }
    /// Sets the queue.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.job.queue = Some(queue.into());
        self
    }
    /// Sets the retry count (unset: [`JobDefaults`], else 25 sent at push).
    pub fn retry(mut self, retry: i64) -> Self {
        self.job.retry = Some(retry);
        self
    }
    /// Sets the reservation time in seconds.
    pub fn reserve_for(mut self, secs: i64) -> Self {
        self.job.reserve_for = Some(secs);
        self
    }
    /// Schedules the job at a point in time (replaces [`JobBuilder::after`]).
    pub fn at(mut self, at: impl Into<Timestamp>) -> Self {
        self.job.at = Some(at.into());
        self.job.run_after = None;
        self
    }
    /// Schedules the job to run this long after it is pushed (replaces [`JobBuilder::at`]): the
    /// push sets `at` ([`Job::resolve_relative`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use faktory_proto::job::Job;
    ///
    /// let job = Job::builder("Reminder").after(Duration::from_secs(600)).build().unwrap();
    /// assert_eq!(job.run_after, Some(Duration::from_secs(600)));
    /// assert_eq!(job.at, None); // set when it is pushed
    /// ```
    pub fn after(mut self, delay: Duration) -> Self {
        self.job.run_after = Some(delay);
        self.job.at = None;
        self
    }
    /// *(Enterprise)* The job expires at this time: a worker's FETCH drops it after that
    /// (`custom.expires_at`; replaces [`JobBuilder::expires_in`]).
    ///
    /// ```
    /// use faktory_proto::job::Job;
    /// use faktory_proto::time::Timestamp;
    ///
    /// let at = Timestamp::parse("2030-01-01T00:00:00Z").unwrap();
    /// let job = Job::builder("Flash").expires_at(at).build().unwrap();
    /// assert_eq!(job.custom_value("expires_at"), Some(&"2030-01-01T00:00:00Z".into()));
    /// ```
    pub fn expires_at(mut self, at: impl Into<Timestamp>) -> Self {
        let at: Timestamp = at.into();
        self.job.expires_after = None;
        self.custom("expires_at", at.as_str())
    }
    /// *(Enterprise)* The job expires this long after it is pushed (replaces
    /// [`JobBuilder::expires_at`]): the push sets `custom.expires_at`
    /// ([`Job::resolve_relative`]), which every Enterprise version reads (`expires_in` only
    /// 1.5.5 and later).
    ///
    /// ```
    /// use std::time::Duration;
    /// use faktory_proto::job::Job;
    ///
    /// let job = Job::builder("Flash").expires_in(Duration::from_secs(3600)).build().unwrap();
    /// assert_eq!(job.expires_after, Some(Duration::from_secs(3600)));
    /// ```
    pub fn expires_in(mut self, ttl: Duration) -> Self {
        self.job.expires_after = Some(ttl);
        if let Some(custom) = &mut self.job.custom {
            custom.remove("expires_at");
        }
        self
    }
    /// *(Enterprise)* A unique job: the server refuses (`NOTUNIQUE`) a job with the same jobtype,
    /// args and queue while this one holds its lock, at most `ttl` (`custom.unique_for`, in whole
    /// seconds, rounded up).
    ///
    /// ```
    /// use std::time::Duration;
    /// use faktory_proto::job::{Job, UniqueUntil};
    ///
    /// let job = Job::builder("Sync")
    ///     .args((42,))
    ///     .unique_for(Duration::from_secs(600))
    ///     .unique_until(UniqueUntil::Start)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(job.custom_value("unique_for"), Some(&600.into()));
    /// assert_eq!(job.custom_value("unique_until"), Some(&"start".into()));
    /// ```
    pub fn unique_for(self, ttl: Duration) -> Self {
        let secs = ttl
            .as_secs()
            .saturating_add(u64::from(ttl.subsec_nanos() > 0));
        self.custom("unique_for", secs)
    }
    /// *(Enterprise)* When a unique job's lock is released (`custom.unique_until`): on success
    /// (the default) or when the job starts. Only meaningful with [`JobBuilder::unique_for`].
    pub fn unique_until(self, until: UniqueUntil) -> Self {
        self.custom("unique_until", until.as_str())
    }
    /// How many backtrace lines a failing worker should send.
    pub fn backtrace(mut self, lines: i64) -> Self {
        self.job.backtrace = Some(lines);
        self
    }
    /// Sets `created_at` (the server fills it in otherwise).
    pub fn created_at(mut self, at: impl Into<Timestamp>) -> Self {
        self.job.created_at = Some(at.into());
        self
    }
    /// Adds one custom field.
    pub fn custom(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.job
            .custom
            .get_or_insert_with(Map::new)
            .insert(key.into(), value.into());
        self
    }
    /// Replaces the whole custom map.
    pub fn custom_map(mut self, custom: Map<String, Value>) -> Self {
        self.job.custom = Some(custom);
        self
    }
    /// Validates and returns the job.
    pub fn build(self) -> Result<Job, JobError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        self.job.validate()?;
        Ok(self.job)
    }
}

// ---------------------------------------------------------------------------------------------------
// jid generation

fn jid_state() -> &'static RandomState {
    static STATE: OnceLock<RandomState> = OnceLock::new();
    STATE.get_or_init(RandomState::new)
}

/// 128 bits from a keyed PRF (SipHash with the process's random key) over a counter.
fn random_128() -> u128 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let st = jid_state();
    let mut h1 = st.build_hasher();
    h1.write_u64(n);
    h1.write_u8(1);
    let mut h2 = st.build_hasher();
    h2.write_u64(n);
    h2.write_u8(2);
    (u128::from(h1.finish()) << 64) | u128::from(h2.finish())
}

/// Appends the low `digits` digits of `value` in base `2^bits`, most significant first.
fn push_digits(out: &mut String, value: u128, digits: u32, bits: u32, alphabet: &str) {
    let mask = (1u128 << bits) - 1;
    for i in (0..digits).rev() {
        let d = ((value >> (i * bits)) & mask) as usize;
        out.extend(alphabet.as_bytes().get(d).map(|&b| char::from(b)));
    }
}

/// A fresh random jid: 96 random bits in URL-safe base64 (16 characters), like the Go client.
pub fn new_jid() -> String {
    const B64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut s = String::with_capacity(16);
    push_digits(&mut s, random_128(), 16, 6, B64URL);
    s
}

/// A fresh random worker id: 64 random bits as 16 lowercase hex characters.
pub fn new_wid() -> String {
    let mut s = String::with_capacity(16);
    push_digits(&mut s, random_128(), 16, 4, "0123456789abcdef");
    s
}

// ---------------------------------------------------------------------------------------------------
// serde

impl Serialize for Job {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Field order follows what clients send (and what the transcripts show).
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("jid", &self.jid)?;
        m.serialize_entry("jobtype", &self.jobtype)?;
        m.serialize_entry("args", &self.args)?;
        if let Some(v) = &self.queue {
            m.serialize_entry("queue", v)?;
        }
        if let Some(v) = &self.retry {
            m.serialize_entry("retry", v)?;
        }
        if let Some(v) = &self.custom {
            m.serialize_entry("custom", v)?;
        }
        if let Some(v) = &self.reserve_for {
            m.serialize_entry("reserve_for", v)?;
        }
        if let Some(v) = &self.at {
            m.serialize_entry("at", v)?;
        }
        if let Some(v) = &self.backtrace {
            m.serialize_entry("backtrace", v)?;
        }
        if let Some(v) = &self.created_at {
            m.serialize_entry("created_at", v)?;
        }
        if let Some(v) = &self.enqueued_at {
            m.serialize_entry("enqueued_at", v)?;
        }
        if let Some(v) = &self.failure {
            m.serialize_entry("failure", v)?;
        }
        for (k, v) in &self.extra {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

enum Field {
    Jid,
    Jobtype,
    Args,
    Queue,
    Retry,
    ReserveFor,
    At,
    Backtrace,
    CreatedAt,
    EnqueuedAt,
    Failure,
    Custom,
    Other(String),
}

impl Field {
    fn known(name: &str) -> Option<Field> {
        Some(match name {
            "jid" => Field::Jid,
            "jobtype" => Field::Jobtype,
            "args" => Field::Args,
            "queue" => Field::Queue,
            "retry" => Field::Retry,
            "reserve_for" => Field::ReserveFor,
            "at" => Field::At,
            "backtrace" => Field::Backtrace,
            "created_at" => Field::CreatedAt,
            "enqueued_at" => Field::EnqueuedAt,
            "failure" => Field::Failure,
            "custom" => Field::Custom,
            _ => return None,
        })
    }

    fn from_name(name: &str) -> Field {
        if let Some(f) = Field::known(name) {
            return f;
        }
        // The server's decoder matches keys case-insensitively (docs/protocol.md#json-round-trip).
        if name.len() <= 16 && name.bytes().any(|b| b.is_ascii_uppercase()) {
            if let Some(f) = Field::known(&name.to_ascii_lowercase()) {
                return f;
            }
        }
        Field::Other(name.to_owned())
    }
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a job field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(Field::from_name(v))
            }
        }
        d.deserialize_identifier(FieldVisitor)
    }
}

impl<'de> Deserialize<'de> for Job {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct JobVisitor;
        impl<'de> Visitor<'de> for JobVisitor {
            type Value = Job;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Faktory job object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Job, A::Error> {
                let mut jid: Option<String> = None;
                let mut jobtype: Option<String> = None;
                let mut args: Option<Vec<Value>> = None;
                let mut job = Job::blank();
                // Duplicate keys: the last one wins, as in the server's decoder.
                while let Some(key) = map.next_key::<Field>()? {
                    match key {
                        Field::Jid => jid = map.next_value()?,
                        Field::Jobtype => jobtype = map.next_value()?,
                        Field::Args => args = map.next_value()?,
                        Field::Queue => job.queue = map.next_value()?,
                        Field::Retry => job.retry = map.next_value()?,
                        Field::ReserveFor => job.reserve_for = map.next_value()?,
                        Field::At => job.at = map.next_value()?,
                        Field::Backtrace => job.backtrace = map.next_value()?,
                        Field::CreatedAt => job.created_at = map.next_value()?,
                        Field::EnqueuedAt => job.enqueued_at = map.next_value()?,
                        Field::Failure => job.failure = map.next_value()?,
                        Field::Custom => job.custom = map.next_value()?,
                        Field::Other(name) => {
                            let v: Value = map.next_value()?;
                            job.extra.insert(name, v);
                        }
                    }
                }
                job.jid = jid.ok_or_else(|| de::Error::missing_field("jid"))?;
                job.jobtype = jobtype.ok_or_else(|| de::Error::missing_field("jobtype"))?;
                job.args = args.ok_or_else(|| de::Error::missing_field("args"))?;
                Ok(job)
            }
        }
        d.deserialize_map(JobVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn decodes_minimal_job_from_any_client() {
        // The Go client omits reserve_for; other clients omit nearly everything.
        let j: Job = serde_json::from_str(r#"{"jid":"abcdefgh","jobtype":"X","args":[]}"#).unwrap();
        assert_eq!(j.jid, "abcdefgh");
        assert_eq!(j.queue(), "default");
        assert_eq!(j.retry, None);
        assert_eq!(j.reserve_for, None);
        assert!(serde_json::from_str::<Job>(r#"{"jobtype":"X","args":[]}"#).is_err());
        assert!(serde_json::from_str::<Job>(r#"{"jid":"abcdefgh","args":[]}"#).is_err());
        assert!(serde_json::from_str::<Job>(r#"{"jid":"abcdefgh","jobtype":"X"}"#).is_err());
    }

    #[test]
    fn decodes_fetch_reply_with_failure_and_keeps_unknown_fields() {
        let raw = r#"{"retry":25,"failure":{"failed_at":"2026-11-22T08:23:45.771901056Z","next_at":"2026-11-22T08:24:04.771913234Z","message":"Faktory job reservation expired","errtype":"ReservationExpired","retry_count":0,"remaining":25},"jid":"probe-rsv-000001","queue":"tq","jobtype":"S","created_at":"2026-11-22T08:22:30.773491864Z","enqueued_at":"2026-11-22T08:24:05.771997943Z","args":[],"reserve_for":1,"zzz":[1]}"#;
        let j: Job = serde_json::from_str(raw).unwrap();
        let f = j.failure.as_ref().unwrap();
        assert_eq!(f.errtype.as_deref(), Some("ReservationExpired"));
        assert_eq!(f.remaining, 25);
        assert_eq!(j.reserve_for, Some(1));
        assert_eq!(j.extra.get("zzz"), Some(&json!([1])));
        assert!(j.enqueued_at.unwrap().to_unix().is_ok());
    }

    #[test]
    fn keys_match_case_insensitively_like_the_server() {
        let j: Job =
            serde_json::from_str(r#"{"JID":"abcdefgh","JobType":"X","Args":[1]}"#).unwrap();
        assert_eq!(j.jid, "abcdefgh");
        assert_eq!(j.jobtype, "X");
        assert_eq!(j.args, vec![json!(1)]);
    }

    #[test]
    fn encodes_in_client_order() {
        let mut j = Job::new(
            "ProbeJob",
            vec![json!(1), json!("two"), json!({"three": 3})],
        );
        j.jid = "probe-jid-0000001".into();
        j.queue = Some("probe".into());
        j.retry = None;
        assert_eq!(
            serde_json::to_string(&j).unwrap(),
            r#"{"jid":"probe-jid-0000001","jobtype":"ProbeJob","args":[1,"two",{"three":3}],"queue":"probe"}"#
        );
        // The builder leaves retry to the push (request::prepare_push sends 25).
        let built = Job::builder("X").jid("abcdefgh").build().unwrap();
        assert_eq!(built.retry, None);
        assert_eq!(
            serde_json::to_string(&built).unwrap(),
            r#"{"jid":"abcdefgh","jobtype":"X","args":[]}"#
        );
        let built = Job::builder("X").jid("abcdefgh").retry(0).build().unwrap();
        assert_eq!(
            serde_json::to_string(&built).unwrap(),
            r#"{"jid":"abcdefgh","jobtype":"X","args":[],"retry":0}"#
        );
    }

    #[test]
    fn typed_args_in_and_out() {
        let j = Job::with_args("T", ("a", 2u8, vec![true])).unwrap();
        let (a, b, c): (String, u8, Vec<bool>) = j.args_as().unwrap();
        assert_eq!((a.as_str(), b, c), ("a", 2, vec![true]));
        assert!(
            j.args_as::<(String, u8)>().is_err(),
            "extra args are an error"
        );
        for not_args in [json!("a"), json!(1), json!(null), json!(true)] {
            let err = Job::with_args("T", not_args).unwrap_err();
            assert!(matches!(err, JobError::ArgsNotArray(_)));
            let text = err.to_string();
            assert!(text.contains("array") && text.contains("object"), "{text}");
        }
        assert!(Job::builder("T").args("a").build().is_err());
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Email {
        to: String,
        n: u32,
    }

    #[test]
    fn a_struct_or_map_is_the_only_arg() {
        let email = Email {
            to: "ada@example.com".into(),
            n: 42,
        };
        let j = Job::builder("Mail").args(&email).build().unwrap();
        assert_eq!(j.args, vec![json!({"to": "ada@example.com", "n": 42})]);
        assert_eq!(j.args_as::<Email>().unwrap(), email);
        // The same through the wire.
        let back: Job = serde_json::from_str(&serde_json::to_string(&j).unwrap()).unwrap();
        assert_eq!(back.args_as::<Email>().unwrap(), email);
        let j = Job::with_args("Mail", std::collections::BTreeMap::from([("k", 1)])).unwrap();
        assert_eq!(j.args, vec![json!({"k": 1})]);
        let m: std::collections::BTreeMap<String, u32> = j.args_as().unwrap();
        assert_eq!(m["k"], 1);
        // Positional args still decode positionally, also with a single arg.
        let j = Job::with_args("Mail", ("ada@example.com", 42)).unwrap();
        assert_eq!(
            j.args_as::<Email>().unwrap(),
            email,
            "a struct from a sequence"
        );
        let j = Job::with_args("One", (7,)).unwrap();
        assert_eq!(j.args_as::<(u32,)>().unwrap(), (7,));
        assert_eq!(j.args_as::<u32>().unwrap(), 7);
        assert_eq!(j.args_as::<Vec<u32>>().unwrap(), vec![7]);
        let j = Job::new("One", vec![json!([1, 2])]);
        assert_eq!(j.args_as::<Vec<Vec<u32>>>().unwrap(), vec![vec![1, 2]]);
        assert_eq!(j.args_as::<Vec<u32>>().unwrap(), vec![1, 2]);
    }

    #[test]
    fn args_errors_say_what_was_tried() {
        let j = Job::with_args("Mail", json!({"to": 5})).unwrap();
        let text = j.args_as::<Email>().unwrap_err().to_string();
        assert!(text.contains("Email"), "{text}");
        assert!(text.contains("args array"), "{text}");
        assert!(text.contains("only arg (an object)"), "{text}");
        let j = Job::with_args("Mail", ("a", 1, 2)).unwrap();
        let err = j.args_as::<Email>().unwrap_err();
        assert!(matches!(err, JobError::Args(_)));
        let text = err.to_string();
        assert!(text.contains("3 args"), "{text}");
        assert!(text.contains("only arg"), "{text}");
        assert!(Job::new("E", vec![]).args_as::<Email>().is_err());
    }

    #[test]
    fn batch_id_reads_custom_bid() {
        let mut j = Job::new("X", vec![]);
        assert_eq!(j.batch_id(), None);
        crate::request::join_batch(&mut j, "b-123");
        assert_eq!(j.batch_id(), Some("b-123"));
        j.custom = Some(Map::from_iter([("bid".to_owned(), json!(5))]));
        assert_eq!(j.batch_id(), None);
    }

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    #[test]
    fn relative_times_are_resolved_at_push() {
        let mut j = Job::builder("R")
            .after(Duration::from_secs(90))
            .expires_in(Duration::from_millis(86_400_250))
            .custom("locale", "fr")
            .build()
            .unwrap();
        assert_eq!(j.run_after, Some(Duration::from_secs(90)));
        assert_eq!(j.at, None);
        // Never on the wire.
        let wire = serde_json::to_string(&j).unwrap();
        assert!(
            !wire.contains("after") && !wire.contains("expires"),
            "{wire}"
        );
        assert!(crate::request::prepare_push(&mut j.clone()).is_err());
        j.resolve_relative(ts("2030-12-31T23:59:00.9Z"));
        assert_eq!(j.at, Some(Timestamp::from_raw("2031-01-01T00:00:30.9Z")));
        assert_eq!(
            j.custom_value("expires_at"),
            Some(&json!("2031-01-01T23:59:01.15Z"))
        );
        assert_eq!(j.custom_value("locale"), Some(&json!("fr")));
        assert_eq!((j.run_after, j.expires_after), (None, None));
        j.validate().unwrap();
        assert!(crate::request::prepare_push(&mut j).is_ok());
        // Resolving again changes nothing.
        let before = j.clone();
        j.resolve_relative(ts("2040-01-01T00:00:00Z"));
        assert_eq!(j, before);
        // A decoded job has none.
        let back: Job = serde_json::from_str(&serde_json::to_string(&j).unwrap()).unwrap();
        assert_eq!((back.run_after, back.expires_after), (None, None));
    }

    #[test]
    fn relative_times_edge_cases() {
        // A bad `now` leaves the job unresolved, and the push says so.
        let mut j = Job::builder("R")
            .after(Duration::from_secs(1))
            .build()
            .unwrap();
        j.resolve_relative(Timestamp::from_raw("yesterday"));
        assert_eq!(j.run_after, Some(Duration::from_secs(1)));
        let err = crate::request::prepare_push(&mut j).unwrap_err();
        assert!(matches!(
            err,
            JobError::UnresolvedRelativeTime {
                field: "run_after",
                ..
            }
        ));
        assert!(err.to_string().contains("resolve_relative"), "{err}");
        // Far future: capped at the last RFC 3339 second.
        let mut j = Job::builder("R")
            .after(Duration::MAX)
            .expires_in(Duration::from_secs(u64::MAX / 2))
            .build()
            .unwrap();
        j.resolve_relative(ts("2030-01-01T00:00:00+02:00"));
        assert_eq!(j.at, Some(Timestamp::from_raw("9999-12-31T23:59:59Z")));
        assert_eq!(
            j.custom_value("expires_at"),
            Some(&json!("9999-12-31T23:59:59Z"))
        );
        j.validate().unwrap();
        // Offsets in `now` are honoured; the result is UTC.
        let mut j = Job::builder("R").after(Duration::ZERO).build().unwrap();
        j.resolve_relative(ts("2030-01-01T02:00:00+02:00"));
        assert_eq!(j.at, Some(Timestamp::from_raw("2030-01-01T00:00:00Z")));
        // The last of at / after wins, and so for expires_at / expires_in.
        let j = Job::builder("R")
            .after(Duration::from_secs(5))
            .at(ts("2030-01-01T00:00:00Z"))
            .expires_in(Duration::from_secs(5))
            .expires_at(ts("2031-01-01T00:00:00Z"))
            .build()
            .unwrap();
        assert_eq!((j.run_after, j.expires_after), (None, None));
        assert_eq!(
            j.custom_value("expires_at"),
            Some(&json!("2031-01-01T00:00:00Z"))
        );
        let j = Job::builder("R")
            .at(ts("2030-01-01T00:00:00Z"))
            .after(Duration::from_secs(5))
            .expires_at(ts("2031-01-01T00:00:00Z"))
            .expires_in(Duration::from_secs(5))
            .build()
            .unwrap();
        assert_eq!(j.at, None);
        assert_eq!(j.custom_value("expires_at"), None);
        assert_eq!(j.expires_after, Some(Duration::from_secs(5)));
    }

    #[test]
    fn enterprise_options_are_custom_fields() {
        let j = Job::builder("U")
            .unique_for(Duration::from_millis(600_001))
            .unique_until(UniqueUntil::Success)
            .expires_at(ts("2030-01-01T00:00:00Z"))
            .build()
            .unwrap();
        assert_eq!(j.custom_value("unique_for"), Some(&json!(601)));
        assert_eq!(j.custom_value("unique_until"), Some(&json!("success")));
        let wire = serde_json::to_string(&j).unwrap();
        assert!(
            wire.contains(r#""custom":{"expires_at":"2030-01-01T00:00:00Z","unique_for":601,"unique_until":"success"}"#),
            "{wire}"
        );
        assert_eq!(UniqueUntil::Start.to_string(), "start");
        // Bad values set by hand are refused before they reach the server.
        assert!(matches!(
            Job::builder("U")
                .expires_at(Timestamp::from_raw("tomorrow"))
                .build(),
            Err(JobError::InvalidExpiresAt(_))
        ));
        assert!(matches!(
            Job::builder("U").custom("expires_at", 5).build(),
            Err(JobError::InvalidExpiresAt(_))
        ));
        assert!(matches!(
            Job::builder("U").custom("unique_for", "600").build(),
            Err(JobError::InvalidUniqueFor("a string"))
        ));
    }

    #[test]
    fn defaults_fill_only_what_is_unset() {
        let d = JobDefaults::new()
            .queue("q1")
            .retry(3)
            .reserve_for(120)
            .backtrace(5);
        let mut j = Job::builder("D").build().unwrap();
        j.apply_defaults(&d);
        assert_eq!(
            (j.queue.as_deref(), j.retry, j.reserve_for, j.backtrace),
            (Some("q1"), Some(3), Some(120), Some(5))
        );
        let mut j = Job::builder("D")
            .queue("mine")
            .retry(0)
            .reserve_for(60)
            .backtrace(0)
            .build()
            .unwrap();
        j.apply_defaults(&d);
        assert_eq!(
            (j.queue.as_deref(), j.retry, j.reserve_for, j.backtrace),
            (Some("mine"), Some(0), Some(60), Some(0))
        );
        let mut j = Job::builder("D").build().unwrap();
        j.apply_defaults(&JobDefaults::default());
        assert_eq!(j, {
            let mut k = j.clone();
            k.apply_defaults(&JobDefaults::new());
            k
        });
        assert_eq!(j.retry, None);
    }

    #[test]
    fn builder_validates() {
        assert!(matches!(
            Job::builder("X").queue("f q").build(),
            Err(JobError::InvalidQueue(_))
        ));
        assert!(matches!(
            Job::builder("X").jid("short").build(),
            Err(JobError::JidTooShort(_))
        ));
        assert!(matches!(
            Job::builder("").build(),
            Err(JobError::EmptyJobtype)
        ));
        assert!(matches!(
            Job::builder("X").reserve_for(90_000).build(),
            Err(JobError::ReserveTooLong(_))
        ));
        assert!(matches!(
            Job::builder("X")
                .at(Timestamp::from_raw("2099-01-01 00:00:00"))
                .build(),
            Err(JobError::InvalidAt(_))
        ));
    }

    #[test]
    fn jids_are_unique_and_url_safe() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let j = new_jid();
            assert_eq!(j.len(), 16);
            assert!(
                j.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            assert!(seen.insert(j));
        }
        assert_eq!(new_wid().len(), 16);
    }
}
