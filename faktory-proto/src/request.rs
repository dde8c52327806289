//! Typed requests: each client request as a [`Request`], a command with its reply parser, so an
//! adapter's `Client` needs one generic `call` and the parsing of every reply lives here once.
//!
//! ```
//! use faktory_proto::client::Reply;
//! use faktory_proto::request::{self, Request};
//!
//! // What a client does for `client.call(request::Info)`: send the command…
//! let command = request::Info.into_command().expect("INFO always encodes");
//! assert_eq!(command.verb(), "INFO");
//! // …and parse what comes back.
//! let info = request::Info::parse(Ok(Reply::Json(br#"{"faktory":{},"server":{}}"#.to_vec().into())));
//! assert!(info.is_ok());
//! ```
//!
//! Bulk pushes are several PUSHB commands: [`PushBulkPlan`] validates and splits them.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

use crate::api::Error;
use crate::client::Reply;
use crate::command::{self, Command, QueueSelector, WorkerState};
use crate::error::ServerError;
use crate::info;
use crate::job::{DEFAULT_RETRY, Job, JobError};

/// A client request: the command to send and how to read its reply.
pub trait Request {
    /// What the caller gets on success.
    type Output;

    /// The command to send. Local validation happens here (an invalid job never reaches the
    /// server).
    fn into_command(self) -> Result<Command, Error>;

    /// Reads the server's answer (an error reply becomes [`Error::Server`]).
    fn parse(reply: Result<Reply, ServerError>) -> Result<Self::Output, Error>;
}

/// Any command, answered with the raw [`Reply`].
impl Request for Command {
    type Output = Reply;

    fn into_command(self) -> Result<Command, Error> {
        Ok(self)
    }

    fn parse(reply: Result<Reply, ServerError>) -> Result<Reply, Error> {
        reply.map_err(Error::Server)
    }
}

/// Declares a request type: its doc, its fields, how it becomes a command, and which reply parser
/// reads its answer.
macro_rules! request {
    ($(#[$doc:meta])* $name:ident $(($field:ty))? => |$this:ident| $command:expr, $parse:ident -> $out:ty) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name $((pub $field))?;

        impl Request for $name {
            type Output = $out;

            fn into_command(self) -> Result<Command, Error> {
                let $this = self;
                Ok($command)
            }

            fn parse(reply: Result<Reply, ServerError>) -> Result<$out, Error> {
                Ok($parse(reply)?)
            }
        }
    };
}

/// What every push does to a job before it is encoded ([`Push`], [`PushBulkPlan`], the worker
/// engine's [`push`](crate::worker::Worker::push)):
///
/// - refuses a job whose times relative to the push were not resolved
///   ([`JobError::UnresolvedRelativeTime`]: call [`Job::resolve_relative`] with the time of the
///   push first);
/// - validates it ([`Job::validate`]: jid, jobtype, queue name, `reserve_for`, `at`, Enterprise
///   fields);
/// - sets `retry` to [`DEFAULT_RETRY`] when the job has none, so every job pushed carries `retry`
///   (docs/protocol.md#the-retry-default-leaks).
///
/// ```
/// use faktory_proto::job::Job;
/// use faktory_proto::request::prepare_push;
///
/// let mut job = Job::builder("X").build().unwrap();
/// assert_eq!(job.retry, None);
/// prepare_push(&mut job).unwrap();
/// assert_eq!(job.retry, Some(25));
/// ```
pub fn prepare_push(job: &mut Job) -> Result<(), JobError> {
    job.check_resolved()?;
    job.validate()?;
    if job.retry.is_none() {
        job.retry = Some(DEFAULT_RETRY);
    }
    Ok(())
}

/// PUSH one job, prepared with [`prepare_push`] (relative times must be resolved; validated;
/// `retry` 25 when unset).
#[derive(Clone, Debug)]
pub struct Push(pub Job);

impl Request for Push {
    type Output = ();

    fn into_command(self) -> Result<Command, Error> {
        let mut job = self.0;
        prepare_push(&mut job)?;
        Ok(Command::Push(Box::new(job)))
    }

    fn parse(reply: Result<Reply, ServerError>) -> Result<(), Error> {
        Ok(expect_ok(reply)?)
    }
}

request! {
    /// INFO: server statistics.
    Info => |_this| Command::Info, expect_json -> info::Info
}
request! {
    /// FLUSH: deletes every job, queue and set on the server.
    Flush => |_this| Command::Flush, expect_ok -> ()
}
request! {
    /// QUEUE PAUSE: FETCH skips these queues; pushes still land.
    QueuePause(QueueSelector) => |this| Command::QueuePause(this.0), expect_ok -> ()
}
request! {
    /// QUEUE RESUME: resumes paused queues.
    QueueResume(QueueSelector) => |this| Command::QueueResume(this.0), expect_ok -> ()
}
request! {
    /// QUEUE REMOVE: deletes queues and all their jobs.
    QueueRemove(QueueSelector) => |this| Command::QueueRemove(this.0), expect_ok -> ()
}
request! {
    /// QUEUE LATENCY: seconds since the oldest job of each queue was enqueued.
    QueueLatency(Vec<String>) => |this| Command::QueueLatency(this.0), expect_json -> info::QueueLatency
}
request! {
    /// MUTATE: an operation on the retry, scheduled or dead set.
    Mutate(command::Mutation) => |this| Command::Mutate(this.0), expect_ok -> ()
}
/// BATCH NEW (Enterprise): creates a batch, answers its BID. Its callback jobs are prepared like
/// pushed jobs ([`prepare_push`]): the server pushes them later, with `retry` 25 when unset.
#[derive(Clone, Debug)]
pub struct BatchNew(pub command::BatchNew);

impl Request for BatchNew {
    type Output = String;

    fn into_command(self) -> Result<Command, Error> {
        let mut batch = self.0;
        for job in [&mut batch.success, &mut batch.complete]
            .into_iter()
            .flatten()
        {
            prepare_push(job)?;
        }
        Ok(Command::BatchNew(batch))
    }

    fn parse(reply: Result<Reply, ServerError>) -> Result<String, Error> {
        Ok(expect_text(reply)?)
    }
}
request! {
    /// BATCH OPEN (Enterprise): reopens a batch to add jobs, answers its BID.
    BatchOpen(String) => |this| Command::BatchOpen(this.0), expect_text -> String
}
request! {
    /// BATCH COMMIT (Enterprise): its callbacks can fire once its jobs are done.
    BatchCommit(String) => |this| Command::BatchCommit(this.0), expect_ok -> ()
}
request! {
    /// BATCH STATUS (Enterprise).
    BatchStatus(String) => |this| Command::BatchStatus(this.0), expect_json -> info::BatchStatus
}
request! {
    /// TRACK GET (Enterprise): a tracked job's progress.
    TrackGet(String) => |this| Command::TrackGet(this.0), expect_json -> info::TrackInfo
}
request! {
    /// TRACK SET (Enterprise): updates a tracked job's progress.
    TrackSet(command::TrackSet) => |this| Command::TrackSet(this.0), expect_ok -> ()
}
request! {
    /// FETCH one job from these queues (in priority order); `None` when they stay empty for ~2 s.
    Fetch(Vec<String>) => |this| Command::Fetch(this.0), expect_job -> Option<Job>
}
request! {
    /// ACK a fetched job by jid.
    Ack(String) => |this| Command::Ack(command::Ack { jid: this.0 }), expect_ok -> ()
}
request! {
    /// FAIL a fetched job (the server retries it per its `retry`).
    Fail(command::Fail) => |this| Command::Fail(this.0), expect_ok -> ()
}
request! {
    /// BEAT: `None` while running, else the state the server asks for (quiet or terminate).
    Beat(command::Beat) => |this| Command::Beat(this.0), expect_beat -> Option<WorkerState>
}

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
fn expect_ok(result: Result<Reply, ServerError>) -> Result<(), ReplyError> {
    match result? {
        Reply::Ok => Ok(()),
        other => Err(unexpected("+OK", &other)),
    }
}

/// FETCH: a job or nothing.
fn expect_job(result: Result<Reply, ServerError>) -> Result<Option<Job>, ReplyError> {
    match result? {
        Reply::Job(job) => Ok(job.map(|j| *j)),
        Reply::UndecodableJob { jid, error, .. } => Err(ReplyError::UndecodableJob { jid, error }),
        other => Err(unexpected("a job or no job", &other)),
    }
}

/// BEAT: `None` while running, else the state the server asks for.
fn expect_beat(result: Result<Reply, ServerError>) -> Result<Option<WorkerState>, ReplyError> {
    match result? {
        Reply::Beat(state) => Ok(state),
        Reply::Ok => Ok(None),
        other => Err(unexpected("+OK or a state", &other)),
    }
}

/// PUSHB: jid → error for the jobs that were refused.
fn expect_push_bulk(
    result: Result<Reply, ServerError>,
) -> Result<BTreeMap<String, String>, ReplyError> {
    match result? {
        Reply::PushBulk(map) => Ok(map),
        other => Err(unexpected("a PUSHB result", &other)),
    }
}

/// A JSON document decoded as `T` (INFO, QUEUE LATENCY, BATCH STATUS, TRACK GET).
fn expect_json<T: DeserializeOwned>(result: Result<Reply, ServerError>) -> Result<T, ReplyError> {
    match result? {
        Reply::Json(body) => Ok(serde_json::from_slice(&body)?),
        other => Err(unexpected("a JSON document", &other)),
    }
}

/// A text reply (the BID of BATCH NEW / BATCH OPEN).
fn expect_text(result: Result<Reply, ServerError>) -> Result<String, ReplyError> {
    match result? {
        Reply::Text(text) => Ok(text),
        other => Err(unexpected("a text", &other)),
    }
}

/// Splits jobs into PUSHB commands of at most [`MAX_PUSHB_BATCH`] jobs.
fn push_bulk_commands(jobs: Vec<Job>) -> Vec<Command> {
    let mut commands = Vec::with_capacity(jobs.len().div_ceil(MAX_PUSHB_BATCH));
    let mut rest = jobs;
    while !rest.is_empty() {
        let tail = rest.split_off(rest.len().min(MAX_PUSHB_BATCH));
        commands.push(Command::PushBulk(rest));
        rest = tail;
    }
    commands
}

/// A bulk push, planned: the PUSHB commands to send (at most [`MAX_PUSHB_BATCH`] jobs each, every
/// job prepared with [`prepare_push`], so each carries `retry`) and the jobs refused locally
/// because [`prepare_push`] refused them, jid → reason. Merge the servers' answers into `refused`
/// with [`PushBulkPlan::absorb`].
#[derive(Debug)]
#[non_exhaustive]
pub struct PushBulkPlan {
    /// The PUSHB commands, to be sent in order (pipelined).
    pub commands: Vec<Command>,
    /// jid → error for every job not pushed so far.
    pub refused: BTreeMap<String, String>,
}

impl PushBulkPlan {
    /// Prepares `jobs` ([`prepare_push`]) and splits the valid ones into PUSHB commands.
    pub fn new(jobs: impl IntoIterator<Item = Job>) -> Self {
        let mut refused = BTreeMap::new();
        let mut valid = Vec::new();
        for mut job in jobs {
            match prepare_push(&mut job) {
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

    fn wire(command: &Command) -> String {
        let mut out = bytes::BytesMut::new();
        command.encode(&mut out).unwrap();
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn every_push_and_pushb_line_carries_retry() {
        // docs/protocol.md#the-retry-default-leaks: the builder leaves retry unset, the push sends it.
        let built = Job::builder("X").build().unwrap();
        assert_eq!(built.retry, None);
        let line = wire(&Push(built).into_command().unwrap());
        assert!(
            line.starts_with("PUSH ") && line.contains(r#""retry":25"#),
            "{line}"
        );
        let chosen = Job::builder("X").retry(3).build().unwrap();
        let line = wire(&Push(chosen).into_command().unwrap());
        assert!(
            line.contains(r#""retry":3"#) && !line.contains(r#""retry":25"#),
            "{line}"
        );
        let mut decoded: Job =
            serde_json::from_str(r#"{"jid":"abcdefgh","jobtype":"X","args":[]}"#).unwrap();
        decoded.retry = None;
        assert!(wire(&Push(decoded).into_command().unwrap()).contains(r#""retry":25"#));

        let mut jobs: Vec<Job> = (0..1500).map(|_| Job::new("X", vec![])).collect();
        jobs[7].retry = Some(0);
        let plan = PushBulkPlan::new(jobs);
        for command in &plan.commands {
            let Command::PushBulk(jobs) = command else {
                panic!("PUSHB expected")
            };
            assert!(jobs.iter().all(|j| j.retry.is_some()));
            let line = wire(command);
            assert!(line.starts_with("PUSHB "));
            assert_eq!(line.matches(r#""retry":"#).count(), jobs.len());
        }
        let Some(Command::PushBulk(first)) = plan.commands.first() else {
            panic!("PUSHB expected")
        };
        assert_eq!(first[7].retry, Some(0));

        // Batch callbacks are pushed by the server later: they carry retry too.
        let batch = command::BatchNew {
            success: Some(Job::builder("Done").build().unwrap()),
            ..Default::default()
        };
        let line = wire(&BatchNew(batch).into_command().unwrap());
        assert!(line.contains(r#""retry":25"#), "{line}");
    }

    #[test]
    fn pushes_refuse_unresolved_relative_times() {
        let later = Job::builder("X")
            .after(std::time::Duration::from_secs(60))
            .build()
            .unwrap();
        let jid = later.jid.clone();
        assert!(matches!(
            Push(later.clone()).into_command(),
            Err(Error::Job(JobError::UnresolvedRelativeTime { .. }))
        ));
        let plan = PushBulkPlan::new([later.clone(), Job::new("X", vec![])]);
        assert!(plan.refused[&jid].contains("resolve_relative"));
        assert_eq!(plan.commands.len(), 1);
        let mut resolved = later;
        resolved.resolve_relative(crate::Timestamp::parse("2030-01-01T00:00:00Z").unwrap());
        let line = wire(&Push(resolved).into_command().unwrap());
        assert!(line.contains(r#""at":"2030-01-01T00:01:00Z""#), "{line}");
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
}
