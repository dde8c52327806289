//! Every command of the Faktory Work Protocol (docs/protocol.md#commands), Enterprise ones
//! included.
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
//! Parsing details (what the real server 1.10 does; docs/protocol.md#command-lines,
//! docs/protocol.md#malformed-input and each command's section there):
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

use crate::handshake::Hello;
use crate::job::Job;
use crate::time::Timestamp;

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

/// `FAIL` payload (docs/protocol.md#fail). The server cuts `errtype` to 100 bytes, `message` to
/// 1000 bytes and `backtrace` to 50 lines; [`Fail::new`] does the same on a character boundary.
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

/// `MUTATE` filter (docs/protocol.md#mutate): `jids` wins over `regexp` (a glob) and `jobtype`.
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

impl Command {
    /// Whether the server answers this command: every command but `END`, after which the server
    /// closes the connection without a reply (docs/protocol.md#end).
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
            Command::Ack(ack) => {
                // Every ACK goes through here. A jid without a quote, a backslash or a control
                // character needs no JSON escaping: it is written as it is, the bytes serde_json
                // would write. Any other jid goes through serde_json.
                if ack.jid.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
                    return json_payload(out, b"ACK ", ack);
                }
                out.reserve(ack.jid.len() + 16);
                out.put_slice(b"ACK {\"jid\":\"");
                out.put_slice(ack.jid.as_bytes());
                out.put_slice(b"\"}");
                Ok(())
            }
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

#[cfg(feature = "server")]
pub(crate) mod parse;
#[cfg(feature = "server")]
pub use parse::{CommandError, job_args_missing, parse_job_lenient};

// Encoding and parsing are tested together (each encoded line must parse back). Two attributes,
// not `cfg(all(test, …))`: clippy's `allow-unwrap-in-tests` only recognises a plain `cfg(test)`.
#[cfg(test)]
#[cfg(feature = "server")]
mod tests {
    use super::parse::{gojson, job_from_go};
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

    proptest::proptest! {
        /// ACK's direct encoding writes what serde_json writes, for any jid (one that needs
        /// escaping goes through serde_json), and the server reads the jid back.
        #[test]
        fn ack_is_encoded_as_serde_json_would(jid in "\\PC{0,40}|[a-f0-9]{24}|.*[\"\\\\\u{0}-\u{1f}].*") {
            let ack = Ack { jid: jid.clone() };
            let expected = format!("ACK {}\r\n", serde_json::to_string(&ack).unwrap());
            let encoded = line(&Command::Ack(ack));
            proptest::prop_assert_eq!(&encoded, &expected);
            let parsed = Command::parse(encoded.trim_end_matches("\r\n").as_bytes()).unwrap();
            proptest::prop_assert_eq!(parsed, Command::Ack(Ack { jid }));
        }
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
