//! Every command of the Faktory Work Protocol (PROTOCOL.md §11), Enterprise ones included.
//!
//! CONTRACT (skeleton; the implementation fills the bodies):
//! - [`Command::encode`] appends `VERB[ payload]\r\n` to a buffer: compact JSON, never a raw `\n`,
//!   MUTATE JSON with every space escaped as `\u0020`; names (queues, BIDs, JIDs in space-separated
//!   commands) that contain a space, CR or LF or are empty are refused with [`EncodeError`].
//!   The bytes equal the client lines of the transcripts for every command we can express.
//! - [`Command::parse`] parses one line as the real server does (verb before the first space,
//!   case-sensitive, line without its terminator). Errors are [`CommandError`]s whose `Display` is
//!   the exact text the real server puts after `-ERR ` (e.g. `unknown command NOPE`, `internal error`,
//!   `invalid JSON: invalid character 'n' looking for beginning of object key string`).

use bytes::BytesMut;
use serde::{Deserialize, Serialize};

use crate::handshake::Hello;
use crate::job::Job;
use crate::time::Timestamp;

/// A client command.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Command {
    /// `HELLO {…}`: only valid as the first command.
    Hello(Hello),
    /// `END`: the server closes the connection without a reply.
    End,
    /// `FLUSH`: deletes everything.
    Flush,
    /// `INFO`: server statistics.
    Info,
    /// `PUSH {job}`.
    Push(Box<Job>),
    /// `PUSHB [jobs]`.
    PushBulk(Vec<Job>),
    /// `FETCH q1 q2 …`.
    Fetch(Vec<String>),
    /// `ACK {"jid":…}`.
    Ack(Ack),
    /// `FAIL {…}`.
    Fail(Fail),
    /// `BEAT {…}`.
    Beat(Beat),
    /// `QUEUE PAUSE …`.
    QueuePause(QueueSelector),
    /// `QUEUE RESUME …`.
    QueueResume(QueueSelector),
    /// `QUEUE REMOVE …`.
    QueueRemove(QueueSelector),
    /// `QUEUE LATENCY q1 q2 …`.
    QueueLatency(Vec<String>),
    /// `MUTATE {…}`.
    Mutate(Mutation),
    /// `BATCH NEW {…}` (Enterprise).
    BatchNew(BatchNew),
    /// `BATCH OPEN <bid>` (Enterprise).
    BatchOpen(String),
    /// `BATCH COMMIT <bid>` (Enterprise).
    BatchCommit(String),
    /// `BATCH STATUS <bid>` (Enterprise).
    BatchStatus(String),
    /// `TRACK SET {…}` (Enterprise).
    TrackSet(TrackSet),
    /// `TRACK GET <jid>` (Enterprise).
    TrackGet(String),
}

/// `ACK` payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The acknowledged job.
    pub jid: String,
}

/// `FAIL` payload (PROTOCOL.md §3.8). The server cuts `errtype` to 100 bytes, `message` to 1000 bytes
/// and `backtrace` to 50 lines; [`Fail::new`] does the same on a character boundary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fail {
    /// The failed job.
    pub jid: String,
    /// The error's type (class name, error kind).
    #[serde(default)]
    pub errtype: String,
    /// The error's message.
    #[serde(default)]
    pub message: String,
    /// Backtrace lines; omitted on the wire when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_empty")]
    pub backtrace: Vec<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// A worker's lifecycle state, as BEAT reports it and as the server answers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerState {
    /// Fetching and running jobs.
    Running,
    /// No more fetching; finish what runs.
    Quiet,
    /// Stop: finish within the grace period, FAIL the rest, END.
    Terminate,
}

impl WorkerState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Running => "running",
            WorkerState::Quiet => "quiet",
            WorkerState::Terminate => "terminate",
        }
    }
}

/// `BEAT` payload. Field order on the wire: `wid`, `rss_kb`, `current_state`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beat {
    /// The worker id given in HELLO.
    pub wid: String,
    /// Resident memory in KiB (omitting it resets the server's value to 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_kb: Option<u64>,
    /// A locally initiated transition (`quiet` / `terminate`); anything else means "no change".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_state: Option<WorkerState>,
}

/// Which queues a `QUEUE PAUSE/RESUME/REMOVE` applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueSelector {
    /// `*`: every known queue.
    All,
    /// These queues.
    Names(Vec<String>),
}

/// `MUTATE` operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MutateOp {
    /// Empty the whole set (filter ignored).
    Clear,
    /// Move matches to the dead set.
    Kill,
    /// Delete matches.
    Discard,
    /// Push matches back onto their queues.
    Requeue,
}

/// `MUTATE` target set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MutateTarget {
    /// The retry set.
    Retries,
    /// The scheduled set.
    Scheduled,
    /// The dead set.
    Dead,
}

/// `MUTATE` filter (PROTOCOL.md §3.11): `jids` wins over `regexp` (a glob) and `jobtype`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MutateFilter {
    /// Only jobs of this type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobtype: Option<String>,
    /// Only these jids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jids: Vec<String>,
    /// A glob (`*`, `?`, `[…]`) over the whole JSON payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regexp: Option<String>,
}

/// `MUTATE` payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mutation {
    /// What to do.
    pub cmd: MutateOp,
    /// To which set.
    pub target: MutateTarget,
    /// Which jobs (absent: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<MutateFilter>,
}

/// `BATCH NEW` payload (Enterprise).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchNew {
    /// Makes this a child batch of `parent_bid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_bid: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Pushed when every job succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<Job>,
    /// Pushed when every job ran once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete: Option<Job>,
}

/// `TRACK SET` payload (Enterprise).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackSet {
    /// The tracked job.
    pub jid: String,
    /// Progress percentage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<i64>,
    /// Progress description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desc: Option<String>,
    /// Extends the reservation until this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserve_until: Option<Timestamp>,
}

/// A command that cannot be encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A name (queue, BID, JID) is empty or contains a space, CR or LF.
    #[error("invalid name {0:?}: must be non-empty without spaces or line breaks")]
    InvalidName(String),
    /// FETCH and QUEUE LATENCY need at least one queue (the latter may be empty on the wire, but
    /// PAUSE/RESUME/REMOVE may not).
    #[error("{0} needs at least one queue")]
    NoQueues(&'static str),
    /// JSON serialization failed.
    #[error("JSON encoding failed: {0}")]
    Json(#[from] serde_json::Error),
}

/// A line the server rejects. `Display` is the exact text after `-ERR ` on the real server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// `unknown command <verb>` (also for `HELLO` after the handshake and for blank lines).
    #[error("unknown command {0}")]
    UnknownCommand(String),
    /// `internal error`: a verb without its payload (a recovered panic on the real server).
    #[error("internal error")]
    Internal,
    /// `invalid JSON: <Go decoder message>` (PUSH, PUSHB).
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// `invalid ACK <payload>`.
    #[error("invalid ACK {0}")]
    InvalidAck(String),
    /// `invalid FAIL <payload>`.
    #[error("invalid FAIL {0}")]
    InvalidFail(String),
    /// `missing JID` (FAIL without a jid).
    #[error("missing JID")]
    MissingJid,
    /// `invalid BEAT <payload>`.
    #[error("invalid BEAT {0}")]
    InvalidBeat(String),
    /// `must call fetch with at least one queue`.
    #[error("must call fetch with at least one queue")]
    FetchWithoutQueue,
    /// `no such QUEUE subcommand: <SUB>`.
    #[error("no such QUEUE subcommand: {0}")]
    NoSuchQueueSubcommand(String),
    /// `QUEUE LATENCY does not support wildcards`.
    #[error("QUEUE LATENCY does not support wildcards")]
    LatencyWildcard,
    /// `invalid format` (MUTATE without payload or with spaces).
    #[error("invalid format")]
    MutateFormat,
    /// `<Go decoder message>` (MUTATE JSON errors have no prefix).
    #[error("{0}")]
    MutateJson(String),
    /// `unknown mutate operation`.
    #[error("unknown mutate operation")]
    UnknownMutateOp,
    /// `invalid target for mutation command`.
    #[error("invalid target for mutation command")]
    InvalidMutateTarget,
    /// `batch subsystem is only available in Faktory Enterprise`.
    #[error("batch subsystem is only available in Faktory Enterprise")]
    BatchEnterpriseOnly,
    /// `tracking subsystem is only available in Faktory Enterprise`.
    #[error("tracking subsystem is only available in Faktory Enterprise")]
    TrackEnterpriseOnly,
}

impl Command {
    /// The verb as written on the wire (`QUEUE` for every queue subcommand, `BATCH`, `TRACK`).
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Hello(_) => "HELLO",
            Command::End => "END",
            Command::Flush => "FLUSH",
            Command::Info => "INFO",
            Command::Push(_) => "PUSH",
            Command::PushBulk(_) => "PUSHB",
            Command::Fetch(_) => "FETCH",
            Command::Ack(_) => "ACK",
            Command::Fail(_) => "FAIL",
            Command::Beat(_) => "BEAT",
            Command::QueuePause(_)
            | Command::QueueResume(_)
            | Command::QueueRemove(_)
            | Command::QueueLatency(_) => "QUEUE",
            Command::Mutate(_) => "MUTATE",
            Command::BatchNew(_)
            | Command::BatchOpen(_)
            | Command::BatchCommit(_)
            | Command::BatchStatus(_) => "BATCH",
            Command::TrackSet(_) | Command::TrackGet(_) => "TRACK",
        }
    }

    /// Appends the command line, with its CRLF, to `out`. On error nothing is appended.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        let _ = out;
        unimplemented!("Command::encode")
    }

    /// Parses one command line (without its line terminator) as the real server does after HELLO.
    pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
        let _ = line;
        unimplemented!("Command::parse")
    }
}
