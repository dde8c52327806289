//! Parsing command lines as the real server does (feature `server`): see the parsing details in the
//! [module documentation](super).

use serde_json::{Map, Value};

use super::*;
use gojson::{GVal, StructTy, Ty};

pub(crate) mod gojson;

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
    Job::blank()
}

fn set_timestamp(slot: &mut Option<Timestamp>, v: &GVal) {
    if let GVal::Str(s) = v {
        *slot = Some(Timestamp::from_raw(s.clone()));
    }
}

/// Builds a job from a checked value with Go's assignment rules.
pub(super) fn job_from_go(v: &GVal) -> (Job, bool) {
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
