//! Typed request/reply helpers shared by every adapter's `Client`.
//!
//! An adapter sends a [`Command`] through its connection and gets a [`Reply`] (or a
//! [`ServerError`]); the functions here turn that into the typed result of each client method, so
//! the tokio, smol/async-std and blocking clients agree on every decision: what counts as success,
//! how PUSHB batches are split, how a bad reply is reported.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

use crate::client::{ConnectionError, Reply};
use crate::command::{Command, QueueSelector, WorkerState};
use crate::error::ServerError;
use crate::job::Job;

/// The most jobs sent in one `PUSHB` (the server's changelog recommends at most 1,000 per call).
pub const MAX_PUSHB_BATCH: usize = 1000;

/// A reply that is not what the command should get.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// The server answered with an error.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The reply has the wrong shape for the command.
    #[error("unexpected reply {got} (expected {expected})")]
    Unexpected {
        /// What the command expects.
        expected: &'static str,
        /// What arrived.
        got: String,
    },
    /// A JSON document in the reply does not decode.
    #[error("reply JSON does not decode: {0}")]
    Json(#[from] serde_json::Error),
    /// FETCH returned a job that does not decode; it stays reserved on the server until it is
    /// FAILed (by `jid`, when known) or its reservation expires.
    #[error("fetched job does not decode ({error}); jid {jid:?}")]
    UndecodableJob {
        /// The jid, when it could be read.
        jid: Option<String>,
        /// Why it does not decode.
        error: String,
    },
}

fn describe(reply: &Reply) -> String {
    match reply {
        Reply::Ok => "+OK".into(),
        Reply::Job(Some(_)) => "a job".into(),
        Reply::Job(None) => "no job".into(),
        Reply::UndecodableJob { .. } => "an undecodable job".into(),
        Reply::Beat(_) => "a BEAT state".into(),
        Reply::PushBulk(_) => "a PUSHB result".into(),
        Reply::Json(_) => "a JSON document".into(),
        Reply::Text(_) => "a text".into(),
        #[allow(unreachable_patterns)]
        _ => "an unknown reply".into(),
    }
}

fn unexpected(expected: &'static str, reply: &Reply) -> ReplyError {
    ReplyError::Unexpected {
        expected,
        got: describe(reply),
    }
}

/// `+OK` expected (PUSH, ACK, FAIL, FLUSH, QUEUE PAUSE/RESUME/REMOVE, MUTATE, BATCH COMMIT, TRACK SET).
pub fn expect_ok(result: Result<Reply, ServerError>) -> Result<(), ReplyError> {
    match result? {
        Reply::Ok => Ok(()),
        other => Err(unexpected("+OK", &other)),
    }
}

/// FETCH: a job or nothing.
pub fn expect_job(result: Result<Reply, ServerError>) -> Result<Option<Job>, ReplyError> {
    match result? {
        Reply::Job(job) => Ok(job.map(|j| *j)),
        Reply::UndecodableJob { jid, error, .. } => Err(ReplyError::UndecodableJob { jid, error }),
        other => Err(unexpected("a job or no job", &other)),
    }
}

/// BEAT: `None` while running, else the state the server asks for.
pub fn expect_beat(result: Result<Reply, ServerError>) -> Result<Option<WorkerState>, ReplyError> {
    match result? {
        Reply::Beat(state) => Ok(state),
        Reply::Ok => Ok(None),
        other => Err(unexpected("+OK or a state", &other)),
    }
}

/// PUSHB: jid → error for the jobs that were refused.
pub fn expect_push_bulk(
    result: Result<Reply, ServerError>,
) -> Result<BTreeMap<String, String>, ReplyError> {
    match result? {
        Reply::PushBulk(map) => Ok(map),
        other => Err(unexpected("a PUSHB result", &other)),
    }
}

/// A JSON document decoded as `T` (INFO, QUEUE LATENCY, BATCH STATUS, TRACK GET).
pub fn expect_json<T: DeserializeOwned>(
    result: Result<Reply, ServerError>,
) -> Result<T, ReplyError> {
    match result? {
        Reply::Json(body) => Ok(serde_json::from_slice(&body)?),
        other => Err(unexpected("a JSON document", &other)),
    }
}

/// A text reply (the BID of BATCH NEW / BATCH OPEN).
pub fn expect_text(result: Result<Reply, ServerError>) -> Result<String, ReplyError> {
    match result? {
        Reply::Text(text) => Ok(text),
        other => Err(unexpected("a text", &other)),
    }
}

/// Splits jobs into PUSHB commands of at most [`MAX_PUSHB_BATCH`] jobs.
pub fn push_bulk_commands(jobs: Vec<Job>) -> Vec<Command> {
    let mut commands = Vec::with_capacity(jobs.len().div_ceil(MAX_PUSHB_BATCH));
    let mut rest = jobs;
    while !rest.is_empty() {
        let tail = rest.split_off(rest.len().min(MAX_PUSHB_BATCH));
        commands.push(Command::PushBulk(rest));
        rest = tail;
    }
    commands
}

/// A bulk push, planned: the PUSHB commands to send (at most [`MAX_PUSHB_BATCH`] jobs each) and the
/// jobs refused locally because they do not validate ([`Job::validate`]), jid → reason. Merge the
/// servers' answers into `refused` with [`PushBulkPlan::absorb`].
#[derive(Debug)]
#[non_exhaustive]
pub struct PushBulkPlan {
    /// The PUSHB commands, to be sent in order (pipelined).
    pub commands: Vec<Command>,
    /// jid → error for every job not pushed so far.
    pub refused: BTreeMap<String, String>,
}

impl PushBulkPlan {
    /// Validates `jobs` and splits the valid ones into PUSHB commands.
    pub fn new(jobs: impl IntoIterator<Item = Job>) -> Self {
        let mut refused = BTreeMap::new();
        let mut valid = Vec::new();
        for job in jobs {
            match job.validate() {
                Ok(()) => valid.push(job),
                Err(e) => {
                    refused.insert(job.jid.clone(), e.to_string());
                }
            }
        }
        PushBulkPlan {
            commands: push_bulk_commands(valid),
            refused,
        }
    }

    /// Adds the jobs one PUSHB reply refused.
    pub fn absorb(&mut self, result: Result<Reply, ServerError>) -> Result<(), ReplyError> {
        self.refused.extend(expect_push_bulk(result)?);
        Ok(())
    }
}

/// Makes `job` a member of batch `bid` (Enterprise): sets `custom.bid`.
pub fn join_batch(job: &mut Job, bid: &str) {
    job.custom
        .get_or_insert_with(Default::default)
        .insert("bid".into(), serde_json::Value::String(bid.to_owned()));
}

/// A queue selector from names, where a first name `*` means every queue.
pub fn queue_selector<S: AsRef<str>>(names: &[S]) -> QueueSelector {
    match names.first() {
        Some(first) if first.as_ref() == "*" => QueueSelector::All,
        _ => QueueSelector::Names(names.iter().map(|s| s.as_ref().to_owned()).collect()),
    }
}

/// Whether a failed connection attempt is worth retrying with backoff: network trouble, overload and
/// timeouts are; a refused password, a missing password and a server that does not speak Faktory
/// are not (retrying cannot fix them).
pub fn is_transient(error: &ConnectionError) -> bool {
    matches!(
        error,
        ConnectionError::Eof
            | ConnectionError::Io(_)
            | ConnectionError::Timeout(_)
            | ConnectionError::ClosedBeforeGreeting
            | ConnectionError::HandshakeRejected
            | ConnectionError::TooManyConnections(_)
    )
}

/// Wire bytes made fit for a `trace`-level log: lossy UTF-8, line breaks escaped, and the value of a
/// `pwdhash` field replaced by `<redacted>`.
pub fn wire_for_log(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len().min(4096));
    let mut rest: &str = &text;
    const KEY: &str = "\"pwdhash\":\"";
    while let Some(pos) = rest.find(KEY) {
        let (head, tail) = rest.split_at(pos + KEY.len());
        out.push_str(head);
        out.push_str("<redacted>");
        rest = tail
            .find('"')
            .map_or("", |end| tail.get(end..).unwrap_or(""));
    }
    out.push_str(rest);
    out.replace('\r', "\\r").replace('\n', "\\n")
}

/// The errtype of FAILs for jobs whose jobtype has no registered handler.
pub const UNKNOWN_JOBTYPE_ERRTYPE: &str = "UnknownJobtype";

/// The outcome of a job no handler is registered for: a FAIL (so it is retried, perhaps by a
/// worker that knows it, instead of sitting reserved until its reservation expires).
pub fn unknown_jobtype_outcome(jobtype: &str) -> crate::worker::Outcome {
    crate::worker::Outcome::failed(
        UNKNOWN_JOBTYPE_ERRTYPE,
        format!("no handler registered for jobtype {jobtype:?}"),
    )
}

/// The outcome of a handler that returned `error` of type `type_name` (from
/// `std::any::type_name::<E>()`): FAIL with the last path segment of the type as errtype, the
/// error's message, and its `source()` chain as backtrace lines (`caused by: …`).
pub fn failed_outcome(
    type_name: &str,
    error: &(dyn std::error::Error + 'static),
) -> crate::worker::Outcome {
    let mut backtrace = Vec::new();
    let mut source = error.source();
    while let Some(s) = source {
        backtrace.push(format!("caused by: {s}"));
        source = s.source();
    }
    crate::worker::Outcome::Failed {
        errtype: short_type_name(type_name),
        message: error.to_string(),
        backtrace,
    }
}

/// `my_crate::errors::MyError<T>` → `MyError`.
fn short_type_name(full: &str) -> String {
    let head = full.split('<').next().unwrap_or(full);
    let name = head.rsplit("::").next().unwrap_or(head);
    if name.is_empty() {
        full.to_owned()
    } else {
        name.to_owned()
    }
}

/// The outcome of a handler that panicked with `payload`.
pub fn panicked_outcome(payload: &(dyn std::any::Any + Send)) -> crate::worker::Outcome {
    crate::worker::Outcome::Panicked {
        message: panic_message(payload),
    }
}

/// The message of a caught panic payload (`&str` or `String`; anything else is described).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "handler panicked with a non-string payload".to_owned()
    }
}

/// Resident memory in KiB from the text of `/proc/self/status` (its `VmRSS:` line), for BEAT's
/// `rss_kb`. The adapters read the file (Linux only) and pass the text here.
pub fn rss_kb_from_proc_status(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line.split_whitespace().skip(1);
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => Some(value),
        Some("mB") => value.checked_mul(1024),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_bulk_splits_at_1000() {
        let jobs: Vec<Job> = (0..2500).map(|_| Job::new("X", vec![])).collect();
        let cmds = push_bulk_commands(jobs);
        let sizes: Vec<usize> = cmds
            .iter()
            .map(|c| match c {
                Command::PushBulk(v) => v.len(),
                _ => 0,
            })
            .collect();
        assert_eq!(sizes, vec![1000, 1000, 500]);
        assert!(push_bulk_commands(Vec::new()).is_empty());
    }

    #[test]
    fn push_bulk_plan_refuses_invalid_jobs_locally() {
        let mut bad = Job::new("X", vec![]);
        bad.jid = "short".into();
        let mut jobs = vec![bad];
        jobs.extend((0..1500).map(|_| Job::new("X", vec![])));
        let mut plan = PushBulkPlan::new(jobs);
        assert_eq!(plan.commands.len(), 2);
        assert_eq!(plan.refused.len(), 1);
        assert!(plan.refused.contains_key("short"));
        let mut from_server = BTreeMap::new();
        from_server.insert(
            "abcdefghij".to_owned(),
            "NOTUNIQUE Job not unique".to_owned(),
        );
        plan.absorb(Ok(Reply::PushBulk(from_server))).unwrap();
        assert_eq!(plan.refused.len(), 2);
        assert!(plan.absorb(Ok(Reply::Ok)).is_err());
    }

    #[test]
    fn typed_replies() {
        assert!(expect_ok(Ok(Reply::Ok)).is_ok());
        assert!(matches!(
            expect_ok(Ok(Reply::Job(None))),
            Err(ReplyError::Unexpected { .. })
        ));
        let err = ServerError::new("ERR", "boom");
        assert!(matches!(expect_ok(Err(err)), Err(ReplyError::Server(_))));
        assert_eq!(
            expect_beat(Ok(Reply::Beat(Some(WorkerState::Quiet)))).unwrap(),
            Some(WorkerState::Quiet)
        );
        let v: BTreeMap<String, f64> =
            expect_json(Ok(Reply::Json(bytes::Bytes::from_static(b"{\"a\":1.5}")))).unwrap();
        assert_eq!(v["a"], 1.5);
        assert!(matches!(queue_selector(&["*", "x"]), QueueSelector::All));
        assert!(matches!(queue_selector(&["a"]), QueueSelector::Names(v) if v == ["a"]));
    }

    #[test]
    fn error_outcomes_carry_type_message_and_chain() {
        let inner = std::io::Error::other("disk full");
        #[derive(Debug)]
        struct Wrap(std::io::Error);
        impl std::fmt::Display for Wrap {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("saving failed")
            }
        }
        impl std::error::Error for Wrap {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Wrap(inner);
        let o = failed_outcome("app::store::Wrap<u8>", &e);
        assert_eq!(
            o,
            crate::worker::Outcome::Failed {
                errtype: "Wrap".into(),
                message: "saving failed".into(),
                backtrace: vec!["caused by: disk full".into()],
            }
        );
        assert_eq!(short_type_name("Plain"), "Plain");
    }

    #[test]
    fn panic_messages() {
        let p = std::panic::catch_unwind(|| panic!("boom {}", 1)).unwrap_err();
        assert_eq!(panic_message(&*p), "boom 1");
        let p = std::panic::catch_unwind(|| panic!("static")).unwrap_err();
        assert_eq!(panic_message(&*p), "static");
        let p = std::panic::catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        assert!(panic_message(&*p).contains("non-string"));
    }

    #[test]
    fn reads_rss_from_proc_status() {
        let status = "Name:\tcargo\nVmPeak:\t  10 kB\nVmRSS:\t   54176 kB\nThreads:\t1\n";
        assert_eq!(rss_kb_from_proc_status(status), Some(54176));
        assert_eq!(rss_kb_from_proc_status("Name: x\n"), None);
        assert_eq!(rss_kb_from_proc_status("VmRSS: lots kB\n"), None);
    }

    #[test]
    fn logs_never_show_the_password_hash() {
        let line = b"HELLO {\"v\":2,\"pwdhash\":\"9ad13ef3f4f4\",\"wid\":\"w\"}\r\n";
        let logged = wire_for_log(line);
        assert!(!logged.contains("9ad13ef3f4f4"), "{logged}");
        assert!(logged.contains("<redacted>"));
        assert!(logged.ends_with("\\r\\n"), "{logged}");
        assert!(is_transient(&ConnectionError::Eof));
        assert!(!is_transient(&ConnectionError::PasswordRequired));
    }
}
