//! Every command of the Faktory Work Protocol (PROTOCOL.md §11), Enterprise ones included.
//!
//! CONTRACT:
//! - [`Command::encode`] appends `VERB[ payload]\r\n` to a buffer: compact JSON, never a raw `\n`,
//!   MUTATE JSON with every space escaped as `\u0020`; names (queues, BIDs, JIDs in space-separated
//!   commands) that contain a space, CR or LF or are empty are refused with [`EncodeError`].
//!   The bytes equal the client lines of the transcripts for every command we can express.
//! - [`Command::parse`] parses one line as the real server does (verb before the first space,
//!   case-sensitive, line without its terminator). Errors are [`CommandError`]s whose `Display` is
//!   the exact text the real server puts after `-ERR ` (e.g. `unknown command NOPE`, `internal error`,
//!   `invalid JSON: invalid character 'n' looking for beginning of object key string`).
//!
//! Encoding details:
//! - Jobs are encoded as they are, without validation (the server's answer to an invalid job is part
//!   of the protocol; [`Job::validate`] and the builder check locally).
//! - `QUEUE PAUSE/RESUME/REMOVE` with [`QueueSelector::Names`] refuse an empty list and a first name
//!   `*` (the server would apply the command to every queue); use [`QueueSelector::All`].
//!   `QUEUE LATENCY` may have no names (`{}` comes back); a first name `*` is sent as is and the
//!   server answers `QUEUE LATENCY does not support wildcards`.
//!
//! Parsing details (what the real server 1.10 does, PROTOCOL.md §1.2, §3, §6):
//! - `HELLO` is not a command after the handshake: `unknown command HELLO`. A blank line is
//!   `unknown command ` (trailing space). [`crate::handshake::parse_hello`] reads the handshake line.
//! - A known verb without a space after it (`PUSH`, `ACK`, `QUEUE`, …) is `internal error`, except
//!   `FETCH` (`must call fetch with at least one queue`), `MUTATE` (`invalid format`), `INFO`,
//!   `FLUSH` and `END` (which ignore anything after the verb anyway).
//! - `FETCH` and `QUEUE` split the line on every space: `FETCH ` is one empty queue name. The QUEUE
//!   subcommand is upper-cased; `*` is a wildcard only as the first name.
//! - PUSH and PUSHB payloads are decoded with Go's rules and messages (see the private `gojson`
//!   module): syntax errors and type mismatches give `invalid JSON: <Go's message>`. Semantic checks
//!   (jid length, jobtype, args, `reserve_for`, `at`, queue names) are the server's, not the
//!   parser's: a job without `jid` or `jobtype` parses with an empty string there, and a job whose
//!   `args` are missing or `null` parses with empty args and the marker `extra["args"] == null`
//!   ([`job_args_missing`]; the server answers `jobs must have an args parameter`).
//!   [`parse_job_lenient`] gives the same result for one job JSON. `retry: null` is an absent
//!   retry; unknown top-level fields are kept in [`Job::extra`].
//! - ACK decodes a map of string to string (`invalid ACK <payload>` otherwise, or without `jid`);
//!   FAIL `invalid FAIL <payload>` or `missing JID`; BEAT `invalid BEAT <payload>` (an unknown
//!   `current_state` string is no state, a negative `rss_kb` none); MUTATE needs exactly two
//!   space-separated parts and reports Go's decoder message without prefix, then
//!   `unknown mutate operation`, then `invalid target for mutation command`.
//! - `BATCH` and `TRACK` give the OSS server's "only available in Faktory Enterprise" errors.
//!   [`Command::parse_enterprise`] parses them into commands instead (Enterprise error texts are
//!   not public: its payload errors use [`CommandError::InvalidPayload`] and
//!   [`CommandError::NoSuchSubcommand`]).

use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::handshake::Hello;
use crate::job::Job;
use crate::time::Timestamp;

pub(crate) mod gojson;

use gojson::{GVal, StructTy, Ty};

/// A client command.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
// `BatchNew` (two optional jobs) is the big variant; the variants are the agreed public API.
#[allow(clippy::large_enum_variant)]
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
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub backtrace: Vec<String>,
}

/// The server cuts `errtype` to this many bytes.
const FAIL_MAX_ERRTYPE: usize = 100;
/// The server cuts `message` to this many bytes.
const FAIL_MAX_MESSAGE: usize = 1000;
/// The server keeps this many backtrace lines.
const FAIL_MAX_BACKTRACE: usize = 50;

fn truncate_on_char_boundary(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while cut > 0 && !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

impl Fail {
    /// A FAIL payload cut to what the server keeps: `errtype` to 100 bytes and `message` to 1000
    /// bytes (on character boundaries, where the server may split a character), `backtrace` to 50
    /// lines.
    pub fn new(
        jid: impl Into<String>,
        errtype: impl Into<String>,
        message: impl Into<String>,
        mut backtrace: Vec<String>,
    ) -> Fail {
        let mut errtype = errtype.into();
        let mut message = message.into();
        truncate_on_char_boundary(&mut errtype, FAIL_MAX_ERRTYPE);
        truncate_on_char_boundary(&mut message, FAIL_MAX_MESSAGE);
        backtrace.truncate(FAIL_MAX_BACKTRACE);
        Fail {
            jid: jid.into(),
            errtype,
            message,
            backtrace,
        }
    }
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
    /// `invalid <command> <payload>`: an Enterprise payload that does not decode
    /// ([`Command::parse_enterprise`] only; the Enterprise text is not public).
    #[error("invalid {command} {payload}")]
    InvalidPayload {
        /// `BATCH NEW` or `TRACK SET`.
        command: &'static str,
        /// The payload as received.
        payload: String,
    },
    /// `no such <command> subcommand: <sub>` ([`Command::parse_enterprise`] only).
    #[error("no such {command} subcommand: {sub}")]
    NoSuchSubcommand {
        /// `BATCH` or `TRACK`.
        command: &'static str,
        /// The subcommand as received.
        sub: String,
    },
}

impl Command {
    /// Whether the server answers this command: every command but `END`, after which the server
    /// closes the connection without a reply (PROTOCOL.md §3.1).
    pub fn expects_reply(&self) -> bool {
        !matches!(self, Command::End)
    }

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
        let start = out.len();
        let result = self.encode_line(out);
        match result {
            Ok(()) => out.put_slice(b"\r\n"),
            Err(_) => out.truncate(start),
        }
        result
    }

    fn encode_line(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        match self {
            Command::Hello(hello) => json_payload(out, b"HELLO ", hello),
            Command::End => {
                out.put_slice(b"END");
                Ok(())
            }
            Command::Flush => {
                out.put_slice(b"FLUSH");
                Ok(())
            }
            Command::Info => {
                out.put_slice(b"INFO");
                Ok(())
            }
            Command::Push(job) => json_payload(out, b"PUSH ", job),
            Command::PushBulk(jobs) => json_payload(out, b"PUSHB ", jobs),
            Command::Fetch(queues) => {
                if queues.is_empty() {
                    return Err(EncodeError::NoQueues("FETCH"));
                }
                check_names(queues)?;
                out.put_slice(b"FETCH");
                put_names(out, queues);
                Ok(())
            }
            Command::Ack(ack) => json_payload(out, b"ACK ", ack),
            Command::Fail(fail) => json_payload(out, b"FAIL ", fail),
            Command::Beat(beat) => json_payload(out, b"BEAT ", beat),
            Command::QueuePause(sel) => queue_line(out, "PAUSE", sel),
            Command::QueueResume(sel) => queue_line(out, "RESUME", sel),
            Command::QueueRemove(sel) => queue_line(out, "REMOVE", sel),
            Command::QueueLatency(queues) => {
                check_names(queues)?;
                out.put_slice(b"QUEUE LATENCY");
                put_names(out, queues);
                Ok(())
            }
            Command::Mutate(mutation) => {
                let json = serde_json::to_vec(mutation)?;
                out.reserve(json.len() + 16);
                out.put_slice(b"MUTATE ");
                // Compact JSON has spaces only inside strings, where `\u0020` means the same.
                for chunk in json.split(|&b| b == b' ').enumerate() {
                    if chunk.0 > 0 {
                        out.put_slice(b"\\u0020");
                    }
                    out.put_slice(chunk.1);
                }
                Ok(())
            }
            Command::BatchNew(batch) => json_payload(out, b"BATCH NEW ", batch),
            Command::BatchOpen(bid) => name_line(out, b"BATCH OPEN ", bid),
            Command::BatchCommit(bid) => name_line(out, b"BATCH COMMIT ", bid),
            Command::BatchStatus(bid) => name_line(out, b"BATCH STATUS ", bid),
            Command::TrackSet(track) => json_payload(out, b"TRACK SET ", track),
            Command::TrackGet(jid) => name_line(out, b"TRACK GET ", jid),
        }
    }

    /// The command line (without CRLF) as it goes on the wire, for logs and tests.
    pub fn to_line(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = BytesMut::new();
        self.encode_line(&mut out)?;
        Ok(out.to_vec())
    }

    /// Parses one command line (without its line terminator) as the real server does after HELLO.
    pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
        parse_line(line, false)
    }

    /// Like [`Command::parse`], but `BATCH` and `TRACK` are parsed into their Enterprise commands
    /// instead of the OSS server's "only available in Faktory Enterprise" errors:
    /// `BATCH NEW <json>`, `BATCH OPEN|COMMIT|STATUS <bid>`, `TRACK SET <json>`, `TRACK GET <jid>`.
    pub fn parse_enterprise(line: &[u8]) -> Result<Command, CommandError> {
        parse_line(line, true)
    }
}

// ---------------------------------------------------------------------------------------------------
// encoding helpers

fn json_payload<T: Serialize + ?Sized>(
    out: &mut BytesMut,
    prefix: &[u8],
    value: &T,
) -> Result<(), EncodeError> {
    out.put_slice(prefix);
    serde_json::to_writer((&mut *out).writer(), value)?;
    Ok(())
}

fn check_name(name: &str) -> Result<(), EncodeError> {
    if name.is_empty() || name.bytes().any(|b| matches!(b, b' ' | b'\r' | b'\n')) {
        return Err(EncodeError::InvalidName(name.to_owned()));
    }
    Ok(())
}

fn check_names(names: &[String]) -> Result<(), EncodeError> {
    names.iter().try_for_each(|n| check_name(n))
}

fn put_names(out: &mut BytesMut, names: &[String]) {
    for name in names {
        out.put_u8(b' ');
        out.put_slice(name.as_bytes());
    }
}

fn name_line(out: &mut BytesMut, prefix: &[u8], name: &str) -> Result<(), EncodeError> {
    check_name(name)?;
    out.put_slice(prefix);
    out.put_slice(name.as_bytes());
    Ok(())
}

fn queue_line(
    out: &mut BytesMut,
    sub: &'static str,
    sel: &QueueSelector,
) -> Result<(), EncodeError> {
    match sel {
        QueueSelector::All => {
            out.put_slice(b"QUEUE ");
            out.put_slice(sub.as_bytes());
            out.put_slice(b" *");
        }
        QueueSelector::Names(names) => {
            let Some(first) = names.first() else {
                return Err(EncodeError::NoQueues(match sub {
                    "PAUSE" => "QUEUE PAUSE",
                    "RESUME" => "QUEUE RESUME",
                    _ => "QUEUE REMOVE",
                }));
            };
            if first == "*" {
                // The server would read it as the wildcard.
                return Err(EncodeError::InvalidName(first.clone()));
            }
            check_names(names)?;
            out.put_slice(b"QUEUE ");
            out.put_slice(sub.as_bytes());
            put_names(out, names);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// parsing

/// The Go types the real server decodes payloads into.
static FAILURE_GO: StructTy = StructTy {
    name: "Failure",
    qualified: "client.Failure",
    fields: &[
        ("retry_count", Ty::Int("int")),
        ("remaining", Ty::Int("int")),
        ("failed_at", Ty::Str("string")),
        ("next_at", Ty::Str("string")),
        ("message", Ty::Str("string")),
        ("errtype", Ty::Str("string")),
        ("backtrace", Ty::Slice(&Ty::Str("string"))),
    ],
};
static JOB_GO: StructTy = StructTy {
    name: "Job",
    qualified: "client.Job",
    fields: &[
        ("retry", Ty::Int("int")),
        ("failure", Ty::Struct(&FAILURE_GO)),
        ("custom", Ty::Map(&Ty::Any)),
        ("jid", Ty::Str("string")),
        ("queue", Ty::Str("string")),
        ("jobtype", Ty::Str("string")),
        ("created_at", Ty::Str("string")),
        ("enqueued_at", Ty::Str("string")),
        ("at", Ty::Str("string")),
        ("args", Ty::Slice(&Ty::Any)),
        ("reserve_for", Ty::Int("int")),
        ("backtrace", Ty::Int("int")),
    ],
};
static JOB_TY: Ty = Ty::Struct(&JOB_GO);
static JOBS_TY: Ty = Ty::Slice(&JOB_TY);
static ACK_TY: Ty = Ty::Map(&Ty::Str("string"));
static FAIL_GO: StructTy = StructTy {
    name: "FailPayload",
    qualified: "manager.FailPayload",
    fields: &[
        ("jid", Ty::Str("string")),
        ("message", Ty::Str("string")),
        ("errtype", Ty::Str("string")),
        ("backtrace", Ty::Slice(&Ty::Str("string"))),
    ],
};
static FAIL_TY: Ty = Ty::Struct(&FAIL_GO);
static BEAT_GO: StructTy = StructTy {
    name: "ClientBeat",
    qualified: "server.ClientBeat",
    fields: &[
        ("current_state", Ty::Str("string")),
        ("wid", Ty::Str("string")),
        ("rss_kb", Ty::Int("int64")),
    ],
};
static BEAT_TY: Ty = Ty::Struct(&BEAT_GO);
static FILTER_GO: StructTy = StructTy {
    name: "JobFilter",
    qualified: "client.JobFilter",
    fields: &[
        ("jids", Ty::Slice(&Ty::Str("string"))),
        ("regexp", Ty::Str("string")),
        ("jobtype", Ty::Str("string")),
    ],
};
static OPERATION_GO: StructTy = StructTy {
    name: "Operation",
    qualified: "client.Operation",
    fields: &[
        ("cmd", Ty::Str("string")),
        ("target", Ty::Str("client.Structure")),
        ("filter", Ty::Struct(&FILTER_GO)),
    ],
};
static OPERATION_TY: Ty = Ty::Struct(&OPERATION_GO);

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Parses and type-checks a payload the Go way.
fn go_decode(json: &[u8], ty: &'static Ty) -> Result<GVal, String> {
    let tree = gojson::parse(json)?;
    gojson::check(&tree, ty)?;
    Ok(tree)
}

/// The fields of a checked object in document order (empty for `null`).
fn fields_of(v: &GVal) -> &[(String, GVal)] {
    match v {
        GVal::Obj(fields) => fields,
        _ => &[],
    }
}

/// Decodes one job as the real server's `PUSH` does, without its semantic checks.
///
/// Returns the job and whether it had `args` (missing or `null` args give empty args and `false`;
/// the job then also carries the marker of [`job_args_missing`]). A missing `jid` or `jobtype` is an
/// empty string, `retry: null` no retry. JSON errors are [`CommandError::InvalidJson`] with Go's
/// decoder message.
pub fn parse_job_lenient(json: &[u8]) -> Result<(Job, bool), CommandError> {
    // Fast path: every job our own encoder produces, and nearly every job anyone sends.
    if let Ok(job) = serde_json::from_slice::<Job>(json) {
        return Ok((job, true));
    }
    let tree = go_decode(json, &JOB_TY).map_err(CommandError::InvalidJson)?;
    Ok(job_from_go(&tree))
}

/// Whether a job parsed from a PUSH/PUSHB line had no `args` (missing or `null`): the parser marks
/// such a job with `extra["args"] = null`, which no other path produces (`args` is a known field).
pub fn job_args_missing(job: &Job) -> bool {
    matches!(job.extra.get("args"), Some(Value::Null))
}

fn parse_jobs_lenient(json: &[u8]) -> Result<Vec<Job>, CommandError> {
    if let Ok(jobs) = serde_json::from_slice::<Vec<Job>>(json) {
        return Ok(jobs);
    }
    let tree = go_decode(json, &JOBS_TY).map_err(CommandError::InvalidJson)?;
    Ok(match &tree {
        GVal::Arr(items) => items.iter().map(|v| job_from_go(v).0).collect(),
        _ => Vec::new(),
    })
}

fn empty_job() -> Job {
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
    }
}

fn set_timestamp(slot: &mut Option<Timestamp>, v: &GVal) {
    if let GVal::Str(s) = v {
        *slot = Some(Timestamp::from_raw(s.clone()));
    }
}

/// Builds a job from a checked value with Go's assignment rules.
fn job_from_go(v: &GVal) -> (Job, bool) {
    let mut job = empty_job();
    let mut args_present = false;
    for (key, value) in fields_of(v) {
        let Some((name, _)) = JOB_GO.field(key) else {
            job.extra.insert(key.clone(), gojson::to_value(value));
            continue;
        };
        match *name {
            "jid" => gojson::set_string(&mut job.jid, value),
            "jobtype" => gojson::set_string(&mut job.jobtype, value),
            "queue" => gojson::set_opt_string(&mut job.queue, value),
            "args" => match value {
                GVal::Arr(items) => {
                    job.args = items.iter().map(gojson::to_value).collect();
                    args_present = true;
                }
                _ => {
                    job.args = Vec::new();
                    args_present = false;
                }
            },
            "retry" => match value {
                GVal::Null => job.retry = None,
                _ => gojson::set_int(&mut job.retry, value),
            },
            "reserve_for" => gojson::set_int(&mut job.reserve_for, value),
            "backtrace" => gojson::set_int(&mut job.backtrace, value),
            "at" => set_timestamp(&mut job.at, value),
            "created_at" => set_timestamp(&mut job.created_at, value),
            "enqueued_at" => set_timestamp(&mut job.enqueued_at, value),
            "custom" => match value {
                GVal::Obj(fields) => {
                    gojson::merge_map(job.custom.get_or_insert_with(Map::new), fields);
                }
                _ => job.custom = None,
            },
            "failure" => match value {
                GVal::Obj(_) => {
                    let failure = job.failure.get_or_insert_with(crate::job::Failure::default);
                    failure_from_go(failure, value);
                }
                _ => job.failure = None,
            },
            _ => {}
        }
    }
    if !args_present {
        job.extra.insert("args".to_owned(), Value::Null);
    }
    (job, args_present)
}

fn failure_from_go(failure: &mut crate::job::Failure, v: &GVal) {
    for (key, value) in fields_of(v) {
        let Some((name, _)) = FAILURE_GO.field(key) else {
            continue;
        };
        let mut n = None;
        match *name {
            "retry_count" => {
                gojson::set_int(&mut n, value);
                if let Some(n) = n {
                    failure.retry_count = n;
                }
            }
            "remaining" => {
                gojson::set_int(&mut n, value);
                if let Some(n) = n {
                    failure.remaining = n;
                }
            }
            "failed_at" => set_timestamp(&mut failure.failed_at, value),
            "next_at" => set_timestamp(&mut failure.next_at, value),
            "message" => gojson::set_opt_string(&mut failure.message, value),
            "errtype" => gojson::set_opt_string(&mut failure.errtype, value),
            "backtrace" => failure.backtrace = gojson::strings(value),
            _ => {}
        }
    }
}

fn parse_ack(data: &[u8]) -> Result<Ack, CommandError> {
    let invalid = || CommandError::InvalidAck(lossy(data));
    let tree = go_decode(data, &ACK_TY).map_err(|_| invalid())?;
    let mut jid = None;
    for (key, value) in fields_of(&tree) {
        if key == "jid" {
            jid = Some(match value {
                GVal::Str(s) => s.clone(),
                _ => String::new(),
            });
        }
    }
    jid.map(|jid| Ack { jid }).ok_or_else(invalid)
}

fn parse_fail(data: &[u8]) -> Result<Fail, CommandError> {
    let tree = go_decode(data, &FAIL_TY).map_err(|_| CommandError::InvalidFail(lossy(data)))?;
    let mut fail = Fail {
        jid: String::new(),
        errtype: String::new(),
        message: String::new(),
        backtrace: Vec::new(),
    };
    for (key, value) in fields_of(&tree) {
        match FAIL_GO.field(key).map(|f| f.0) {
            Some("jid") => gojson::set_string(&mut fail.jid, value),
            Some("message") => gojson::set_string(&mut fail.message, value),
            Some("errtype") => gojson::set_string(&mut fail.errtype, value),
            Some("backtrace") => fail.backtrace = gojson::strings(value).unwrap_or_default(),
            _ => {}
        }
    }
    if fail.jid.is_empty() {
        return Err(CommandError::MissingJid);
    }
    Ok(fail)
}

fn parse_beat(data: &[u8]) -> Result<Beat, CommandError> {
    let tree = go_decode(data, &BEAT_TY).map_err(|_| CommandError::InvalidBeat(lossy(data)))?;
    let mut wid = String::new();
    let mut state = String::new();
    let mut rss = None;
    for (key, value) in fields_of(&tree) {
        match BEAT_GO.field(key).map(|f| f.0) {
            Some("wid") => gojson::set_string(&mut wid, value),
            Some("current_state") => gojson::set_string(&mut state, value),
            Some("rss_kb") => gojson::set_int(&mut rss, value),
            _ => {}
        }
    }
    Ok(Beat {
        wid,
        rss_kb: rss.and_then(|n| u64::try_from(n).ok()),
        current_state: match state.as_str() {
            "running" => Some(WorkerState::Running),
            "quiet" => Some(WorkerState::Quiet),
            "terminate" => Some(WorkerState::Terminate),
            _ => None,
        },
    })
}

fn parse_mutate(line: &[u8]) -> Result<Mutation, CommandError> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(_verb), Some(json), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(CommandError::MutateFormat);
    };
    let tree = go_decode(json, &OPERATION_TY).map_err(CommandError::MutateJson)?;
    let mut cmd = String::new();
    let mut target = String::new();
    let mut filter: Option<MutateFilter> = None;
    for (key, value) in fields_of(&tree) {
        match OPERATION_GO.field(key).map(|f| f.0) {
            Some("cmd") => gojson::set_string(&mut cmd, value),
            Some("target") => gojson::set_string(&mut target, value),
            Some("filter") => match value {
                GVal::Obj(fields) => {
                    let f = filter.get_or_insert_with(MutateFilter::default);
                    for (key, value) in fields {
                        match FILTER_GO.field(key).map(|f| f.0) {
                            Some("jids") => f.jids = gojson::strings(value).unwrap_or_default(),
                            Some("regexp") => gojson::set_opt_string(&mut f.regexp, value),
                            Some("jobtype") => gojson::set_opt_string(&mut f.jobtype, value),
                            _ => {}
                        }
                    }
                }
                _ => filter = None,
            },
            _ => {}
        }
    }
    let cmd = match cmd.as_str() {
        "clear" => MutateOp::Clear,
        "kill" => MutateOp::Kill,
        "discard" => MutateOp::Discard,
        "requeue" => MutateOp::Requeue,
        _ => return Err(CommandError::UnknownMutateOp),
    };
    let target = match target.as_str() {
        "retries" => MutateTarget::Retries,
        "scheduled" => MutateTarget::Scheduled,
        "dead" => MutateTarget::Dead,
        _ => return Err(CommandError::InvalidMutateTarget),
    };
    Ok(Mutation {
        cmd,
        target,
        filter,
    })
}

fn parse_queue(line: &[u8]) -> Result<Command, CommandError> {
    let mut tokens = line.split(|&b| b == b' ').skip(1).map(lossy);
    let sub = tokens
        .next()
        .ok_or(CommandError::Internal)?
        .to_ascii_uppercase();
    let names: Vec<String> = tokens.collect();
    if sub == "LATENCY" {
        if names.first().is_some_and(|n| n == "*") {
            return Err(CommandError::LatencyWildcard);
        }
        return Ok(Command::QueueLatency(names));
    }
    let make: fn(QueueSelector) -> Command = match sub.as_str() {
        "PAUSE" => Command::QueuePause,
        "RESUME" => Command::QueueResume,
        "REMOVE" => Command::QueueRemove,
        _ => return Err(CommandError::NoSuchQueueSubcommand(sub)),
    };
    match names.first() {
        None => Err(CommandError::Internal),
        Some(first) if first == "*" => Ok(make(QueueSelector::All)),
        Some(_) => Ok(make(QueueSelector::Names(names))),
    }
}

fn parse_batch(rest: Option<&[u8]>) -> Result<Command, CommandError> {
    let rest = rest.ok_or(CommandError::Internal)?;
    let (sub, arg) = split_first_space(rest);
    let arg = arg.ok_or(CommandError::Internal);
    match sub {
        b"NEW" => {
            let arg = arg?;
            serde_json::from_slice::<BatchNew>(arg)
                .map(Command::BatchNew)
                .map_err(|_| CommandError::InvalidPayload {
                    command: "BATCH NEW",
                    payload: lossy(arg),
                })
        }
        b"OPEN" => Ok(Command::BatchOpen(lossy(arg?))),
        b"COMMIT" => Ok(Command::BatchCommit(lossy(arg?))),
        b"STATUS" => Ok(Command::BatchStatus(lossy(arg?))),
        other => Err(CommandError::NoSuchSubcommand {
            command: "BATCH",
            sub: lossy(other),
        }),
    }
}

fn parse_track(rest: Option<&[u8]>) -> Result<Command, CommandError> {
    let rest = rest.ok_or(CommandError::Internal)?;
    let (sub, arg) = split_first_space(rest);
    let arg = arg.ok_or(CommandError::Internal);
    match sub {
        b"SET" => {
            let arg = arg?;
            serde_json::from_slice::<TrackSet>(arg)
                .map(Command::TrackSet)
                .map_err(|_| CommandError::InvalidPayload {
                    command: "TRACK SET",
                    payload: lossy(arg),
                })
        }
        b"GET" => Ok(Command::TrackGet(lossy(arg?))),
        other => Err(CommandError::NoSuchSubcommand {
            command: "TRACK",
            sub: lossy(other),
        }),
    }
}

/// `(before, Some(after))` around the first space, or `(all, None)`.
fn split_first_space(line: &[u8]) -> (&[u8], Option<&[u8]>) {
    match line.iter().position(|&b| b == b' ') {
        Some(i) => {
            let (head, tail) = line.split_at(i);
            (head, tail.get(1..))
        }
        None => (line, None),
    }
}

fn parse_line(line: &[u8], enterprise: bool) -> Result<Command, CommandError> {
    let (verb, rest) = split_first_space(line);
    // Handlers that slice a fixed prefix off the line panic (→ `internal error`) without it.
    let payload = || rest.ok_or(CommandError::Internal);
    match verb {
        b"END" => Ok(Command::End),
        b"FLUSH" => Ok(Command::Flush),
        b"INFO" => Ok(Command::Info),
        b"PUSH" => Ok(Command::Push(Box::new(parse_job_lenient(payload()?)?.0))),
        b"PUSHB" => Ok(Command::PushBulk(parse_jobs_lenient(payload()?)?)),
        b"FETCH" => {
            let queues: Vec<String> = line.split(|&b| b == b' ').skip(1).map(lossy).collect();
            if queues.is_empty() {
                return Err(CommandError::FetchWithoutQueue);
            }
            Ok(Command::Fetch(queues))
        }
        b"ACK" => Ok(Command::Ack(parse_ack(payload()?)?)),
        b"FAIL" => Ok(Command::Fail(parse_fail(payload()?)?)),
        b"BEAT" => Ok(Command::Beat(parse_beat(payload()?)?)),
        b"QUEUE" => parse_queue(line),
        b"MUTATE" => Ok(Command::Mutate(parse_mutate(line)?)),
        b"BATCH" if enterprise => parse_batch(rest),
        b"BATCH" => Err(CommandError::BatchEnterpriseOnly),
        b"TRACK" if enterprise => parse_track(rest),
        b"TRACK" => Err(CommandError::TrackEnterpriseOnly),
        _ => Err(CommandError::UnknownCommand(lossy(verb))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(cmd: &Command) -> String {
        let mut out = BytesMut::new();
        cmd.encode(&mut out).unwrap();
        String::from_utf8(out.to_vec()).unwrap()
    }

    fn err(line: &str) -> String {
        Command::parse(line.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn encodes_simple_commands() {
        assert_eq!(line(&Command::End), "END\r\n");
        assert_eq!(line(&Command::Info), "INFO\r\n");
        assert_eq!(line(&Command::Flush), "FLUSH\r\n");
        assert_eq!(
            line(&Command::Fetch(vec!["critical".into(), "default".into()])),
            "FETCH critical default\r\n"
        );
        assert_eq!(
            line(&Command::QueueResume(QueueSelector::All)),
            "QUEUE RESUME *\r\n"
        );
        assert_eq!(line(&Command::QueueLatency(vec![])), "QUEUE LATENCY\r\n");
        assert_eq!(
            line(&Command::BatchCommit("b-1".into())),
            "BATCH COMMIT b-1\r\n"
        );
        assert_eq!(line(&Command::TrackGet("j".into())), "TRACK GET j\r\n");
    }

    #[test]
    fn mutate_never_contains_a_space() {
        let m = Command::Mutate(Mutation {
            cmd: MutateOp::Discard,
            target: MutateTarget::Dead,
            filter: Some(MutateFilter {
                jobtype: Some("Sync Job".into()),
                jids: vec![],
                regexp: Some("*uid: 1*".into()),
            }),
        });
        let l = line(&m);
        assert_eq!(
            l,
            "MUTATE {\"cmd\":\"discard\",\"target\":\"dead\",\"filter\":{\"jobtype\":\"Sync\\u0020Job\",\"regexp\":\"*uid:\\u00201*\"}}\r\n"
        );
        assert_eq!(l.matches(' ').count(), 1);
        assert_eq!(Command::parse(l.trim_end().as_bytes()).unwrap(), m);
    }

    #[test]
    fn refuses_bad_names_and_appends_nothing() {
        let mut out = BytesMut::from(&b"INFO\r\n"[..]);
        for cmd in [
            Command::Fetch(vec![]),
            Command::Fetch(vec!["a b".into()]),
            Command::Fetch(vec!["ok".into(), "".into()]),
            Command::QueuePause(QueueSelector::Names(vec![])),
            Command::QueueRemove(QueueSelector::Names(vec!["*".into()])),
            Command::QueueLatency(vec!["a\r".into()]),
            Command::BatchOpen("x\ny".into()),
            Command::TrackGet(String::new()),
        ] {
            assert!(cmd.encode(&mut out).is_err(), "{cmd:?}");
            assert_eq!(&out[..], b"INFO\r\n");
        }
        assert!(matches!(
            Command::Fetch(vec![]).encode(&mut out),
            Err(EncodeError::NoQueues("FETCH"))
        ));
    }

    #[test]
    fn fail_new_cuts_like_the_server() {
        let f = Fail::new("j", "é".repeat(60), "x".repeat(2000), vec!["l".into(); 80]);
        assert_eq!(f.errtype.len(), 100);
        assert_eq!(f.message.len(), 1000);
        assert_eq!(f.backtrace.len(), 50);
        let f = Fail::new("j", "e", "m", vec![]);
        assert_eq!(
            line(&Command::Fail(f)),
            "FAIL {\"jid\":\"j\",\"errtype\":\"e\",\"message\":\"m\"}\r\n"
        );
    }

    #[test]
    fn verbs_and_payload_errors_match_the_server() {
        assert_eq!(err("garbage line"), "unknown command garbage");
        assert_eq!(err("push {}"), "unknown command push");
        assert_eq!(err(""), "unknown command ");
        assert_eq!(err(" PUSH {}"), "unknown command ");
        assert_eq!(err("INFO\r"), "unknown command INFO\r");
        assert_eq!(err("HELLO {}"), "unknown command HELLO");
        for bare in [
            "PUSH",
            "PUSHB",
            "ACK",
            "FAIL",
            "BEAT",
            "QUEUE",
            "QUEUE PAUSE",
        ] {
            assert_eq!(err(bare), "internal error", "{bare}");
        }
        assert_eq!(err("FETCH"), "must call fetch with at least one queue");
        assert_eq!(
            Command::parse(b"FETCH ").unwrap(),
            Command::Fetch(vec![String::new()])
        );
        assert_eq!(
            Command::parse(b"FETCH a  b").unwrap(),
            Command::Fetch(vec!["a".into(), String::new(), "b".into()])
        );
        assert_eq!(Command::parse(b"INFO foo").unwrap(), Command::Info);
        assert_eq!(Command::parse(b"FLUSH foo").unwrap(), Command::Flush);
        assert_eq!(Command::parse(b"END foo").unwrap(), Command::End);
        assert_eq!(err("PUSH "), "invalid JSON: unexpected end of JSON input");
        assert_eq!(
            err("PUSHB {}"),
            "invalid JSON: json: cannot unmarshal object into Go value of type []client.Job"
        );
        assert_eq!(err("ACK {}"), "invalid ACK {}");
        assert_eq!(
            err("ACK {\"jid\":\"x\",\"n\":1}"),
            "invalid ACK {\"jid\":\"x\",\"n\":1}"
        );
        assert_eq!(err("ACK  null"), "invalid ACK  null");
        assert_eq!(err("FAIL {}"), "missing JID");
        assert_eq!(
            err("FAIL {\"jid\":\"x\",\"backtrace\":\"one\"}"),
            "invalid FAIL {\"jid\":\"x\",\"backtrace\":\"one\"}"
        );
        assert_eq!(
            err("BEAT {\"wid\":\"w\",\"rss_kb\":1.5}"),
            "invalid BEAT {\"wid\":\"w\",\"rss_kb\":1.5}"
        );
        assert_eq!(err("BEAT x\ry"), "invalid BEAT x\ry");
        assert_eq!(err("QUEUE FROB x"), "no such QUEUE subcommand: FROB");
        assert_eq!(err("QUEUE frob x"), "no such QUEUE subcommand: FROB");
        assert_eq!(
            err("QUEUE LATENCY *"),
            "QUEUE LATENCY does not support wildcards"
        );
        assert_eq!(err("MUTATE"), "invalid format");
        assert_eq!(err("MUTATE {\"cmd\": \"clear\"}"), "invalid format");
        assert_eq!(err("MUTATE {\"cmd\":\"clear\"} "), "invalid format");
        assert_eq!(err("MUTATE {"), "unexpected end of JSON input");
        assert_eq!(
            err("MUTATE {\"cmd\":1}"),
            "json: cannot unmarshal number into Go struct field Operation.cmd of type string"
        );
        assert_eq!(
            err("MUTATE {\"cmd\":\"frob\",\"target\":\"dead\"}"),
            "unknown mutate operation"
        );
        assert_eq!(
            err("MUTATE {\"cmd\":\"kill\",\"target\":\"queue\"}"),
            "invalid target for mutation command"
        );
        assert_eq!(
            err("BATCH NEW {}"),
            "batch subsystem is only available in Faktory Enterprise"
        );
        assert_eq!(
            err("BATCH"),
            "batch subsystem is only available in Faktory Enterprise"
        );
        assert_eq!(
            err("TRACK GET x"),
            "tracking subsystem is only available in Faktory Enterprise"
        );
    }

    #[test]
    fn parses_payloads_like_the_server() {
        assert_eq!(
            Command::parse(b"ACK   {\"jid\":\"x\",\"other\":\"y\"}").unwrap(),
            Command::Ack(Ack { jid: "x".into() })
        );
        assert_eq!(
            Command::parse(b"QUEUE pause a * b").unwrap(),
            Command::QueuePause(QueueSelector::Names(vec![
                "a".into(),
                "*".into(),
                "b".into()
            ]))
        );
        assert_eq!(
            Command::parse(b"QUEUE REMOVE * a").unwrap(),
            Command::QueueRemove(QueueSelector::All)
        );
        assert_eq!(
            Command::parse(b"QUEUE LATENCY").unwrap(),
            Command::QueueLatency(vec![])
        );
        assert_eq!(
            Command::parse(b"BEAT {\"WID\":\"w\",\"current_state\":\"bogus\",\"rss_kb\":-1}")
                .unwrap(),
            Command::Beat(Beat {
                wid: "w".into(),
                rss_kb: None,
                current_state: None
            })
        );
        assert_eq!(
            Command::parse(b"FAIL {\"jid\":\"j\",\"backtrace\":null,\"errtype\":null}").unwrap(),
            Command::Fail(Fail {
                jid: "j".into(),
                errtype: String::new(),
                message: String::new(),
                backtrace: vec![]
            })
        );
        assert_eq!(
            Command::parse(b"MUTATE {\"cmd\":\"kill\",\"target\":\"dead\",\"filter\":null}")
                .unwrap(),
            Command::Mutate(Mutation {
                cmd: MutateOp::Kill,
                target: MutateTarget::Dead,
                filter: None
            })
        );
    }

    #[test]
    fn push_is_lenient_about_what_the_server_checks() {
        let Command::Push(job) = Command::parse(b"PUSH {\"jid\":\"x\"}").unwrap() else {
            panic!("not a push");
        };
        assert_eq!(job.jid, "x");
        assert_eq!(job.jobtype, "");
        assert!(job_args_missing(&job));
        let (job, args) =
            parse_job_lenient(br#"{"jobtype":"X","args":[],"retry":null,"zzz":1}"#).unwrap();
        assert!(args);
        assert!(!job_args_missing(&job));
        assert_eq!(job.jid, "");
        assert_eq!(job.retry, None);
        assert_eq!(job.extra.get("zzz"), Some(&json!(1)));
        let (job, args) =
            parse_job_lenient(br#"{"jid":"abcdefgh","jobtype":"X","args":null}"#).unwrap();
        assert!(!args && job_args_missing(&job));
        // Go's assignment rules: null keeps a string, last duplicate wins, keys fold case.
        let (job, _) = parse_job_lenient(
            br#"{"jid":"first","jid":null,"JobType":"T","args":[1],"ARGS":[2],"custom":{"a":1},"custom":{"b":2},"failure":{"retry_count":3,"message":null}}"#,
        )
        .unwrap();
        assert_eq!(job.jid, "first");
        assert_eq!(job.jobtype, "T");
        assert_eq!(job.args, vec![json!(2)]);
        assert_eq!(
            job.custom,
            Some(json!({"a":1,"b":2}).as_object().unwrap().clone())
        );
        assert_eq!(job.failure.as_ref().unwrap().retry_count, 3);
        // Invalid UTF-8 becomes U+FFFD, as in the server.
        let (job, _) =
            parse_job_lenient(b"{\"jid\":\"abcdefgh\",\"jobtype\":\"\xff\",\"args\":[]}").unwrap();
        assert_eq!(job.jobtype, "\u{fffd}");
        // An encoded job with the marker parses back with the marker.
        let mut out = BytesMut::new();
        Command::Push(Box::new(
            job_from_go(&gojson::parse(br#"{"jid":"abcdefgh"}"#).unwrap()).0,
        ))
        .encode(&mut out)
        .unwrap();
        let Command::Push(back) = Command::parse(&out[..out.len() - 2]).unwrap() else {
            panic!("not a push");
        };
        assert!(job_args_missing(&back));
        // PUSHB: null is no jobs, a null element an empty job.
        assert_eq!(
            Command::parse(b"PUSHB null").unwrap(),
            Command::PushBulk(vec![])
        );
        let Command::PushBulk(jobs) =
            Command::parse(b"PUSHB [null,{\"jid\":\"abcdefgh\",\"args\":[]}]").unwrap()
        else {
            panic!("not a pushb");
        };
        assert_eq!(jobs.len(), 2);
        assert!(job_args_missing(&jobs[0]));
        assert_eq!(jobs[1].jid, "abcdefgh");
    }

    #[test]
    fn push_json_errors_are_gos() {
        let cases = [
            (
                "PUSH {not json}",
                "invalid character 'n' looking for beginning of object key string",
            ),
            ("PUSH ", "unexpected end of JSON input"),
            (
                "PUSH {\"jid\":\"probe-unknownf\",\"jobtype\":\"X\",\"args\":[],\"zzz\":1} trailing",
                "invalid character 't' after top-level value",
            ),
            (
                "PUSH {\"jid\":\"probe-argsobj1\",\"jobtype\":\"X\",\"args\":{\"a\":1}}",
                "json: cannot unmarshal object into Go struct field Job.args of type []interface {}",
            ),
            (
                "PUSH {\"jid\":\"probe-args-str\",\"jobtype\":\"X\",\"args\":\"str\"}",
                "json: cannot unmarshal string into Go struct field Job.args of type []interface {}",
            ),
            (
                "PUSH {\"jid\":12345678901,\"jobtype\":\"X\",\"args\":[]}",
                "json: cannot unmarshal number into Go struct field Job.jid of type string",
            ),
            (
                "PUSH [1,2]",
                "json: cannot unmarshal array into Go value of type client.Job",
            ),
            (
                "PUSH {\"jid\":\"abcdefgh\",\"jobtype\":\"X\",\"args\":[],\"reserve_for\":1800.0}",
                "json: cannot unmarshal number 1800.0 into Go struct field Job.reserve_for of type int",
            ),
            (
                "PUSH {\"jid\":\"abcdefgh\",\"jobtype\":\"X\",\"args\":[],\"retry\":\"5\"}",
                "json: cannot unmarshal string into Go struct field Job.retry of type int",
            ),
            (
                "PUSH {\"jid\":\"abcdefgh\",\"jobtype\":\"X\",\"args\":[],\"backtrace\":1e3}",
                "json: cannot unmarshal number 1e3 into Go struct field Job.backtrace of type int",
            ),
            (
                "PUSH {\"jid\":\"abcdefgh\",\"jobtype\":\"X\",\"args\":[],\"custom\":[]}",
                "json: cannot unmarshal array into Go struct field Job.custom of type map[string]interface {}",
            ),
            (
                "PUSH {\"jid\":\"abcdefgh\",\"jobtype\":\"X\",\"args\":[],\"failure\":\"x\"}",
                "json: cannot unmarshal string into Go struct field Job.failure of type client.Failure",
            ),
        ];
        for (l, msg) in cases {
            assert_eq!(
                Command::parse(l.as_bytes()),
                Err(CommandError::InvalidJson(msg.to_owned())),
                "{l}"
            );
        }
    }

    #[test]
    fn enterprise_commands_parse_when_asked() {
        for cmd in [
            Command::BatchNew(BatchNew {
                parent_bid: Some("b-0".into()),
                description: Some("d".into()),
                success: Some(Job::builder("Done").jid("abcdefgh").build().unwrap()),
                complete: None,
            }),
            Command::BatchOpen("b-1".into()),
            Command::BatchCommit("b-1".into()),
            Command::BatchStatus("b-1".into()),
            Command::TrackSet(TrackSet {
                jid: "abcdefgh".into(),
                percent: Some(50),
                desc: Some("half way".into()),
                reserve_until: None,
            }),
            Command::TrackGet("abcdefgh".into()),
        ] {
            let l = cmd.to_line().unwrap();
            assert_eq!(Command::parse_enterprise(&l).unwrap(), cmd);
            assert!(
                Command::parse(&l)
                    .unwrap_err()
                    .to_string()
                    .contains("only available in Faktory Enterprise")
            );
        }
        assert_eq!(
            Command::parse_enterprise(b"BATCH FROB x")
                .unwrap_err()
                .to_string(),
            "no such BATCH subcommand: FROB"
        );
        assert_eq!(
            Command::parse_enterprise(b"TRACK SET {")
                .unwrap_err()
                .to_string(),
            "invalid TRACK SET {"
        );
        assert_eq!(
            Command::parse_enterprise(b"BATCH OPEN"),
            Err(CommandError::Internal)
        );
    }
}
