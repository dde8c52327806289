#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]
//! Property tests of the codec: encode then decode is the identity for RESP frames, commands and
//! jobs; any chunking of a frame stream decodes to the same frames; arbitrary bytes never panic
//! the decoder or the parsers.
#![cfg(feature = "server")]

use bytes::{Bytes, BytesMut};
use faktory_proto::command::{
    Ack, BatchNew, Beat, Command, Fail, MutateFilter, MutateOp, MutateTarget, Mutation,
    QueueSelector, TrackSet, WorkerState,
};
use faktory_proto::handshake::{Hello, parse_hello};
use faktory_proto::job::{Failure, Job};
use faktory_proto::resp::{Decoder, Frame};
use faktory_proto::time::Timestamp;
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

// ---------------------------------------------------------------------------------------------------
// frames

/// Text for simple and error frames: anything but a CRLF (which would end the line).
fn line_text() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..48)
        .prop_filter("no CRLF inside a line", |v| {
            !v.windows(2).any(|w| w == b"\r\n")
        })
        .prop_map(Bytes::from)
}

fn frame() -> impl Strategy<Value = Frame> {
    let leaf = prop_oneof![
        line_text().prop_map(Frame::Simple),
        line_text().prop_map(Frame::Error),
        vec(any::<u8>(), 0..64).prop_map(|v| Frame::Bulk(Bytes::from(v))),
        Just(Frame::Null),
        any::<i64>().prop_map(Frame::Integer),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| vec(inner, 0..6).prop_map(Frame::Array))
}

fn encode_frames(frames: &[Frame]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for f in frames {
        f.encode(&mut out);
    }
    out.to_vec()
}

/// Feeds `wire` in chunks of the given sizes (cycled), decoding after every chunk.
fn decode_chunked(wire: &[u8], sizes: &[usize]) -> Vec<Frame> {
    let mut dec = Decoder::with_max_frame_size(1 << 20);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < wire.len() {
        let n = sizes[i % sizes.len()].clamp(1, wire.len() - at);
        i += 1;
        buf.extend_from_slice(&wire[at..at + n]);
        at += n;
        while let Some(f) = dec.decode(&mut buf).unwrap() {
            frames.push(f);
        }
    }
    assert!(buf.is_empty(), "leftover bytes");
    frames
}

// ---------------------------------------------------------------------------------------------------
// JSON values and jobs

fn number() -> impl Strategy<Value = Number> {
    prop_oneof![
        any::<i64>().prop_map(Number::from),
        any::<u64>().prop_map(Number::from),
        // serde_json (without its `float_roundtrip` feature) may read a float back one ULP off;
        // that is serde_json's trade-off, not the codec's, so only floats it reads back exactly.
        any::<f64>()
            .prop_filter("finite and exact through serde_json", |f| {
                f.is_finite()
                    && serde_json::from_str::<f64>(&serde_json::to_string(f).unwrap()).ok()
                        == Some(*f)
            })
            .prop_map(|f| Number::from_f64(f).unwrap()),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number().prop_map(Value::Number),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_map() -> impl Strategy<Value = Map<String, Value>> {
    btree_map(any::<String>(), json_value(), 0..4).prop_map(|m| m.into_iter().collect())
}

const JOB_FIELDS: [&str; 12] = [
    "jid",
    "jobtype",
    "args",
    "queue",
    "retry",
    "reserve_for",
    "at",
    "backtrace",
    "created_at",
    "enqueued_at",
    "failure",
    "custom",
];

/// Unknown top-level fields: any key that is not a job field (the decoder folds case, as Go does).
fn extra_map() -> impl Strategy<Value = Map<String, Value>> {
    btree_map(
        any::<String>().prop_filter("not a job field", |k| {
            !JOB_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(k))
        }),
        json_value(),
        0..3,
    )
    .prop_map(|m| m.into_iter().collect())
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        any::<String>().prop_map(Timestamp::from_raw),
        "20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?Z"
            .prop_map(Timestamp::from_raw),
    ]
}

fn failure() -> impl Strategy<Value = Failure> {
    (
        option::of(timestamp()),
        option::of(timestamp()),
        option::of(any::<String>()),
        option::of(any::<String>()),
        option::of(vec(any::<String>(), 0..3)),
        any::<i64>(),
        any::<i64>(),
    )
        .prop_map(
            |(failed_at, next_at, message, errtype, backtrace, retry_count, remaining)| {
                let mut f = Failure::default();
                f.failed_at = failed_at;
                f.next_at = next_at;
                f.message = message;
                f.errtype = errtype;
                f.backtrace = backtrace;
                f.retry_count = retry_count;
                f.remaining = remaining;
                f
            },
        )
}

prop_compose! {
    fn job()(
        jid in any::<String>(),
        jobtype in any::<String>(),
        args in vec(json_value(), 0..4),
        queue in option::of(any::<String>()),
        retry in option::of(any::<i64>()),
        reserve_for in option::of(any::<i64>()),
        at in option::of(timestamp()),
        backtrace in option::of(any::<i64>()),
        created_at in option::of(timestamp()),
        enqueued_at in option::of(timestamp()),
        failure in option::of(failure()),
        custom in option::of(json_map()),
        extra in extra_map(),
    ) -> Job {
        let mut j = Job::new(jobtype, args);
        j.jid = jid;
        j.queue = queue;
        j.retry = retry;
        j.reserve_for = reserve_for;
        j.at = at;
        j.backtrace = backtrace;
        j.created_at = created_at;
        j.enqueued_at = enqueued_at;
        j.failure = failure;
        j.custom = custom;
        j.extra = extra;
        j
    }
}

// ---------------------------------------------------------------------------------------------------
// commands

/// A name that survives the space-separated wire form; never a leading `*` (the wildcard).
fn name() -> impl Strategy<Value = String> {
    "[^ \r\n*][^ \r\n]{0,12}"
}

fn names() -> impl Strategy<Value = Vec<String>> {
    vec(name(), 1..4)
}

fn selector() -> impl Strategy<Value = QueueSelector> {
    prop_oneof![
        Just(QueueSelector::All),
        names().prop_map(QueueSelector::Names)
    ]
}

fn worker_state() -> impl Strategy<Value = WorkerState> {
    prop_oneof![
        Just(WorkerState::Running),
        Just(WorkerState::Quiet),
        Just(WorkerState::Terminate),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let op = prop_oneof![
        Just(MutateOp::Clear),
        Just(MutateOp::Kill),
        Just(MutateOp::Discard),
        Just(MutateOp::Requeue),
    ];
    let target = prop_oneof![
        Just(MutateTarget::Retries),
        Just(MutateTarget::Scheduled),
        Just(MutateTarget::Dead),
    ];
    let filter = (
        option::of(any::<String>()),
        vec(any::<String>(), 0..3),
        option::of(any::<String>()),
    )
        .prop_map(|(jobtype, jids, regexp)| MutateFilter {
            jobtype,
            jids,
            regexp,
        });
    (op, target, option::of(filter)).prop_map(|(cmd, target, filter)| Mutation {
        cmd,
        target,
        filter,
    })
}

/// Every command `Command::parse` (OSS) reads.
fn oss_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        Just(Command::End),
        Just(Command::Flush),
        Just(Command::Info),
        job().prop_map(|j| Command::Push(Box::new(j))),
        vec(job(), 0..3).prop_map(Command::PushBulk),
        names().prop_map(Command::Fetch),
        any::<String>().prop_map(|jid| Command::Ack(Ack { jid })),
        (
            ".+",
            any::<String>(),
            any::<String>(),
            vec(any::<String>(), 0..3)
        )
            .prop_map(|(jid, errtype, message, backtrace)| Command::Fail(Fail {
                jid,
                errtype,
                message,
                backtrace
            })),
        (
            any::<String>(),
            option::of(0..=i64::MAX as u64),
            option::of(worker_state())
        )
            .prop_map(|(wid, rss_kb, current_state)| Command::Beat(Beat {
                wid,
                rss_kb,
                current_state
            })),
        selector().prop_map(Command::QueuePause),
        selector().prop_map(Command::QueueResume),
        selector().prop_map(Command::QueueRemove),
        vec(name(), 0..4).prop_map(Command::QueueLatency),
        mutation().prop_map(Command::Mutate),
    ]
}

fn enterprise_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (
            option::of(any::<String>()),
            option::of(any::<String>()),
            option::of(job()),
            option::of(job())
        )
            .prop_map(|(parent_bid, description, success, complete)| {
                Command::BatchNew(BatchNew {
                    parent_bid,
                    description,
                    success,
                    complete,
                })
            }),
        name().prop_map(Command::BatchOpen),
        name().prop_map(Command::BatchCommit),
        name().prop_map(Command::BatchStatus),
        (
            any::<String>(),
            option::of(any::<i64>()),
            option::of(any::<String>()),
            option::of(timestamp())
        )
            .prop_map(
                |(jid, percent, desc, reserve_until)| Command::TrackSet(TrackSet {
                    jid,
                    percent,
                    desc,
                    reserve_until
                })
            ),
        name().prop_map(Command::TrackGet),
    ]
}

fn hello() -> impl Strategy<Value = Hello> {
    (
        option::of(any::<u8>()),
        option::of(any::<String>()),
        option::of(any::<u32>()),
        option::of(vec(any::<String>(), 0..3)),
        option::of(any::<String>()),
        option::of(any::<String>()),
        option::of(any::<String>()),
    )
        .prop_map(|(v, hostname, pid, labels, wid, pwdhash, username)| Hello {
            v,
            hostname,
            pid,
            labels,
            wid,
            pwdhash,
            username,
        })
}

/// The encoded line without its CRLF, checking the framing rules on the way.
fn wire_line(cmd: &Command) -> Vec<u8> {
    let mut out = BytesMut::new();
    cmd.encode(&mut out).unwrap();
    assert!(out.ends_with(b"\r\n"));
    let line = &out[..out.len() - 2];
    assert!(!line.contains(&b'\n'), "raw LF in {cmd:?}");
    assert!(!line.contains(&b'\r'), "raw CR in {cmd:?}");
    if let Command::Mutate(_) = cmd {
        assert_eq!(line.iter().filter(|&&b| b == b' ').count(), 1);
    }
    line.to_vec()
}

/// Bytes that look a bit like commands and JSON, to reach deep into the parsers.
fn commandish() -> impl Strategy<Value = Vec<u8>> {
    let verb = prop_oneof![
        Just(""),
        Just("PUSH "),
        Just("PUSHB "),
        Just("ACK "),
        Just("FAIL "),
        Just("BEAT "),
        Just("MUTATE "),
        Just("QUEUE "),
        Just("FETCH "),
        Just("BATCH NEW "),
        Just("TRACK SET "),
        Just("HELLO "),
    ];
    let body = vec(
        prop_oneof![
            Just(&b"{"[..]),
            Just(&b"}"[..]),
            Just(&b"["[..]),
            Just(&b"]"[..]),
            Just(&b":"[..]),
            Just(&b","[..]),
            Just(&b"\""[..]),
            Just(&b"\\u"[..]),
            Just(&b"\\"[..]),
            Just(&b"null"[..]),
            Just(&b"true"[..]),
            Just(&b"-1.5e3"[..]),
            Just(&b"0"[..]),
            Just(&b" "[..]),
            Just(&b"\"jid\""[..]),
            Just(&b"\"args\""[..]),
            Just(&b"\"retry\""[..]),
            Just(&b"\"failure\""[..]),
            Just(&b"\"custom\""[..]),
            Just(&b"\"cmd\""[..]),
            Just(&b"\"kill\""[..]),
            Just(&b"\"target\""[..]),
            Just(&b"\"dead\""[..]),
            Just(&b"\"filter\""[..]),
            Just(&b"\"wid\""[..]),
            Just(&b"\"rss_kb\""[..]),
            Just(&b"\xff"[..]),
            Just(&b"\xd8"[..]),
            Just(&b"*"[..]),
            Just(&b"PAUSE"[..]),
            Just(&b"LATENCY"[..]),
        ],
        0..24,
    );
    (verb, body).prop_map(|(v, parts)| {
        let mut out = v.as_bytes().to_vec();
        for p in parts {
            out.extend_from_slice(p);
        }
        out
    })
}

fn parse_everything(line: &[u8]) {
    let _ = Command::parse(line);
    let _ = Command::parse_enterprise(line);
    let _ = parse_hello(line);
    let _ = faktory_proto::command::parse_job_lenient(line);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn frame_encode_decode_is_identity(f in frame()) {
        let wire = f.to_bytes();
        let mut buf = BytesMut::from(&wire[..]);
        let got = Decoder::new().decode(&mut buf).unwrap();
        prop_assert_eq!(got, Some(f));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn any_chunking_gives_the_same_frames(
        frames in vec(frame(), 1..6),
        sizes in vec(1usize..40, 1..8),
    ) {
        let wire = encode_frames(&frames);
        prop_assert_eq!(&decode_chunked(&wire, &sizes), &frames);
        prop_assert_eq!(&decode_chunked(&wire, &[1]), &frames);
    }

    #[test]
    fn command_encode_parse_is_identity(cmd in oss_command()) {
        let line = wire_line(&cmd);
        prop_assert_eq!(Command::parse(&line), Ok(cmd.clone()));
        prop_assert_eq!(Command::parse_enterprise(&line), Ok(cmd));
    }

    #[test]
    fn enterprise_command_encode_parse_is_identity(cmd in enterprise_command()) {
        let line = wire_line(&cmd);
        prop_assert_eq!(Command::parse_enterprise(&line), Ok(cmd));
        // The OSS server refuses them with its fixed message.
        let oss = Command::parse(&line).unwrap_err().to_string();
        prop_assert!(oss.ends_with("only available in Faktory Enterprise"));
    }

    #[test]
    fn hello_encode_parse_is_identity(h in hello()) {
        let line = wire_line(&Command::Hello(h.clone()));
        prop_assert_eq!(parse_hello(&line), Some(h));
    }

    #[test]
    fn job_json_round_trip(j in job()) {
        let json = serde_json::to_vec(&j).unwrap();
        let back: Job = serde_json::from_slice(&json).unwrap();
        prop_assert_eq!(&back, &j);
        // The server-side lenient parser agrees.
        let (lenient, args_present) = faktory_proto::command::parse_job_lenient(&json).unwrap();
        prop_assert!(args_present);
        prop_assert_eq!(lenient, j);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(
        data in vec(any::<u8>(), 0..256),
        sizes in vec(1usize..32, 1..6),
    ) {
        let mut dec = Decoder::with_max_frame_size(4096);
        let mut buf = BytesMut::new();
        let mut at = 0;
        let mut i = 0;
        'feed: while at < data.len() {
            let n = sizes[i % sizes.len()].min(data.len() - at);
            i += 1;
            buf.extend_from_slice(&data[at..at + n]);
            at += n;
            loop {
                match dec.decode(&mut buf) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
        }
    }

    #[test]
    fn frame_like_bytes_never_panic_the_decoder(
        parts in vec(prop_oneof![
            Just(&b"+"[..]), Just(&b"-"[..]), Just(&b"$"[..]), Just(&b"*"[..]), Just(&b":"[..]),
            Just(&b"\r"[..]), Just(&b"\n"[..]), Just(&b"\r\n"[..]), Just(&b"-1"[..]), Just(&b"0"[..]),
            Just(&b"3"[..]), Just(&b"99999999999999999999"[..]), Just(&b"OK"[..]),
        ], 0..40),
    ) {
        let data: Vec<u8> = parts.concat();
        let mut dec = Decoder::with_max_frame_size(64);
        let mut buf = BytesMut::new();
        for b in data {
            buf.extend_from_slice(&[b]);
            if dec.decode(&mut buf).is_err() {
                break;
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_parsers(line in vec(any::<u8>(), 0..128)) {
        parse_everything(&line);
    }

    #[test]
    fn command_like_bytes_never_panic_the_parsers(line in commandish()) {
        parse_everything(&line);
    }
}
