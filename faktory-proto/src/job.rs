//! The job payload (docs/protocol.md#the-job-payload).
//!
//! A [`Job`] holds every field the server knows, keeps unknown top-level fields in [`Job::extra`]
//! (the real server drops them, but a job read from elsewhere keeps them), and decodes any job the
//! server hands out whatever client pushed it: only `jid`, `jobtype` and `args` are required.
//!
//! Jobs built with [`Job::new`] or [`Job::builder`] always carry `retry` (25 unless chosen otherwise),
//! because the real server leaks an explicit `retry` into its default for later jobs
//! (docs/protocol.md#the-retry-default-leaks).
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
//! assert_eq!(job.retry, Some(25));
//! let (to, n): (String, u32) = job.args_as().unwrap();
//! assert_eq!((to.as_str(), n), ("ada@example.com", 42));
//! ```

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::{self, DeserializeOwned, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::time::Timestamp;

/// The default number of retries, sent explicitly with every job we build.
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
    /// The arguments did not serialize to a JSON array.
    #[error("job args must serialize to a JSON array, got {0}")]
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
    InvalidAt(#[from] crate::time::TimestampError),
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
    /// A job of `jobtype` with raw JSON `args`, a fresh jid and `retry` 25.
    pub fn new(jobtype: impl Into<String>, args: Vec<Value>) -> Self {
        Job {
            jid: new_jid(),
            jobtype: jobtype.into(),
            args,
            queue: None,
            retry: Some(DEFAULT_RETRY),
            reserve_for: None,
            at: None,
            backtrace: None,
            created_at: None,
            enqueued_at: None,
            failure: None,
            custom: None,
            extra: Map::new(),
        }
    }

    /// A job of `jobtype` whose args are `args` serialized: it must serialize to a JSON array
    /// (a tuple, a `Vec`, an array).
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

    /// Decodes the args as `T` (a tuple, a `Vec`, a tuple struct, …). Extra or missing args are an error.
    pub fn args_as<T: DeserializeOwned>(&self) -> Result<T, JobError> {
        let de = serde::de::value::SeqDeserializer::<_, serde_json::Error>::new(self.args.iter());
        Ok(T::deserialize(de)?)
    }

    /// A custom field, if present.
    pub fn custom_value(&self, key: &str) -> Option<&Value> {
        self.custom.as_ref().and_then(|c| c.get(key))
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
        other => Err(JobError::ArgsNotArray(json_kind(&other))),
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
    /// Sets the args from anything that serializes to a JSON array.
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
    /// Sets the retry count (default 25).
    pub fn retry(mut self, retry: i64) -> Self {
        self.job.retry = Some(retry);
        self
    }
    /// Sets the reservation time in seconds.
    pub fn reserve_for(mut self, secs: i64) -> Self {
        self.job.reserve_for = Some(secs);
        self
    }
    /// Schedules the job.
    pub fn at(mut self, at: impl Into<Timestamp>) -> Self {
        self.job.at = Some(at.into());
        self
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
                let mut job = Job {
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
                };
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
    fn encodes_in_client_order_with_retry() {
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
        let built = Job::builder("X").jid("abcdefgh").build().unwrap();
        assert_eq!(
            serde_json::to_string(&built).unwrap(),
            r#"{"jid":"abcdefgh","jobtype":"X","args":[],"retry":25}"#
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
        assert!(matches!(
            Job::with_args("T", json!({"a": 1})),
            Err(JobError::ArgsNotArray(_))
        ));
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
