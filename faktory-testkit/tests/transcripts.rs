//! Replays the real Faktory 1.10 transcripts (faktory-proto/tests/data, except tls.txt) against a
//! TestServer over real TCP sockets and compares every reply with what the real server sent.
//!
//! What is compared:
//! - simple strings, errors and `$-1`: byte for byte (so every error text);
//! - `HI`: byte for byte (password servers are told the recorded salts);
//! - job replies: byte for byte after masking `created_at`, `enqueued_at`, `failure.failed_at` and
//!   `failure.next_at` (field order, HTML escaping, float64 numbers, dropped fields all count);
//! - INFO: the same keys everywhere (queue names aside) and the same JSON types, plus exact values
//!   for the fields each test lists (the ones this replay can reproduce);
//! - QUEUE LATENCY: the same keys, numbers, 0 where the server said 0;
//! - EOFs: the server closed at the same point;
//! - everything else (PUSHB maps, BEAT states): byte for byte.
//!
//! The server clock is manual: before a command is sent, it is moved to the time the real reply
//! came (the recorded delay, or a later timestamp the expected reply carries), so a 2 s FETCH block,
//! a 60 s reaping or a 95 s reservation expiry cost no wall time. FETCH blocks 40 ms of wall time.
//!
//! The transcripts were recorded against a server with history; each test recreates the part of
//! that history its replies depend on, and says so.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::Client;
use faktory_testkit::proto::time::{Timestamp, UnixTime};
use faktory_testkit::{Clock, RetryJitter, TestServer};
use serde_json::Value;

// -------------------------------------------------------------------------------------------------
// transcript parsing

#[derive(Clone, Debug)]
enum Payload {
    Full(Vec<u8>),
    /// `b'head' ...<total bytes total>... b'tail'`.
    Elided {
        head: Vec<u8>,
        total: usize,
        tail: Vec<u8>,
    },
}

impl Payload {
    /// The bytes, the elided middle filled with the head's last byte (the recorded lines repeat
    /// one character there).
    fn rebuild(&self) -> Vec<u8> {
        match self {
            Payload::Full(b) => b.clone(),
            Payload::Elided { head, total, tail } => {
                let fill = *head.last().unwrap();
                let mut v = Vec::with_capacity(*total);
                v.extend_from_slice(head);
                v.resize(total - tail.len(), fill);
                v.extend_from_slice(tail);
                v
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Event {
    Send {
        label: String,
        payload: Payload,
    },
    Recv {
        label: String,
        payload: Payload,
        delay: f64,
    },
    Eof {
        label: String,
        delay: f64,
    },
    /// `=== …`: the recorder closed its connections between sections.
    Section,
}

impl Event {
    fn label(&self) -> &str {
        match self {
            Event::Send { label, .. } | Event::Recv { label, .. } | Event::Eof { label, .. } => {
                label
            }
            Event::Section => "",
        }
    }
}

/// Parses a Python bytes literal at the start of `s`; returns the bytes and the rest of `s`.
fn bytes_literal(s: &str) -> (Vec<u8>, &str) {
    let b = s.as_bytes();
    assert_eq!(b[0], b'b', "not a bytes literal: {s}");
    let quote = b[1];
    let mut out = Vec::new();
    let mut i = 2;
    loop {
        let c = b[i];
        if c == quote {
            return (out, &s[i + 1..]);
        }
        if c == b'\\' {
            let e = b[i + 1];
            i += 2;
            match e {
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'0' => out.push(0),
                b'\\' | b'\'' | b'"' => out.push(e),
                b'x' => {
                    out.push(u8::from_str_radix(&s[i..i + 2], 16).unwrap());
                    i += 2;
                }
                other => panic!("unknown escape \\{}", char::from(other)),
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
}

/// `[1.234s]` → 1.234.
fn delay_of(s: &str) -> f64 {
    let s = s.trim();
    if let Some(i) = s.find("after ") {
        let rest = &s[i + 6..];
        let end = rest.find('s').unwrap();
        return rest[..end].parse().unwrap();
    }
    if let Some(inner) = s.strip_prefix('[').and_then(|x| x.strip_suffix("s]")) {
        return inner.parse().unwrap();
    }
    0.0
}

fn parse_transcript(text: &str) -> Vec<Event> {
    let mut events = Vec::new();
    for line in text.lines() {
        if line.starts_with("===") {
            events.push(Event::Section);
            continue;
        }
        let (label, rest) = match line.strip_prefix('[') {
            Some(r) if !r.starts_with("EOF") => {
                let end = r.find(']').unwrap();
                (r[..end].to_owned(), r[end + 1..].trim_start())
            }
            _ => (String::new(), line.trim_start()),
        };
        if rest.starts_with("[EOF") {
            events.push(Event::Eof {
                label,
                delay: delay_of(rest),
            });
            continue;
        }
        let (dir, lit) = if let Some(l) = rest.strip_prefix("S> ") {
            ('S', l)
        } else if let Some(l) = rest.strip_prefix("C> ") {
            ('C', l)
        } else {
            continue; // a note
        };
        let (head, after) = bytes_literal(lit);
        let after = after.trim_start();
        let (payload, after) = if let Some(r) = after.strip_prefix("...<") {
            let end = r.find(" bytes total>...").unwrap();
            let total: usize = r[..end].parse().unwrap();
            let (tail, after) = bytes_literal(r[end + " bytes total>...".len()..].trim_start());
            (Payload::Elided { head, total, tail }, after)
        } else {
            (Payload::Full(head), after)
        };
        if after.contains("EOF") {
            events.push(Event::Eof {
                label,
                delay: delay_of(after),
            });
        } else if dir == 'S' {
            events.push(Event::Recv {
                label,
                payload,
                delay: delay_of(after),
            });
        } else {
            events.push(Event::Send { label, payload });
        }
    }
    events
}

fn load(name: &str) -> Vec<Event> {
    let path = format!(
        "{}/../faktory-proto/tests/data/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    parse_transcript(&std::fs::read_to_string(path).unwrap())
}

// -------------------------------------------------------------------------------------------------
// comparison

fn ts(s: &str) -> UnixTime {
    Timestamp::from_raw(s).to_unix().unwrap()
}

fn plus_secs(t: UnixTime, secs: f64) -> UnixTime {
    let total =
        i128::from(t.secs) * 1_000_000_000 + i128::from(t.nanos) + (secs * 1e9).round() as i128;
    UnixTime {
        secs: (total.div_euclid(1_000_000_000)) as i64,
        nanos: total.rem_euclid(1_000_000_000) as u32,
    }
}

fn later(a: UnixTime, b: UnixTime) -> bool {
    (a.secs, a.nanos) > (b.secs, b.nanos)
}

/// Replaces the value of every `"key":"…"` string with `<ts>`.
fn mask_key(s: &str, key: &str) -> String {
    let pat = format!("\"{key}\":\"");
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find(&pat) {
        out.push_str(&rest[..i + pat.len()]);
        rest = &rest[i + pat.len()..];
        let end = rest.find('"').unwrap_or(rest.len());
        out.push_str("<ts>");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn mask_job(s: &str) -> String {
    ["created_at", "enqueued_at", "failed_at", "next_at"]
        .iter()
        .fold(s.to_owned(), |acc, k| mask_key(&acc, k))
}

/// The value of the first `"key":"…"` string.
fn string_field(s: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\":\"");
    let i = s.find(&pat)? + pat.len();
    let end = s[i..].find('"')?;
    Some(s[i..i + end].to_owned())
}

fn is_job(body: &str) -> bool {
    body.starts_with("{\"retry\":") && body.contains("\"jid\":")
}

/// Same keys (except under the queue map) and the same JSON types.
fn same_shape(path: &str, a: &Value, b: &Value) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            if path != "/faktory/queues" {
                let kx: Vec<&String> = x.keys().collect();
                let ky: Vec<&String> = y.keys().collect();
                assert_eq!(kx, ky, "INFO keys differ at {path}");
            }
            for (k, v) in x {
                if let Some(w) = y.get(k) {
                    same_shape(&format!("{path}/{k}"), v, w);
                }
            }
        }
        (Value::Number(_), Value::Number(_))
        | (Value::String(_), Value::String(_))
        | (Value::Bool(_), Value::Bool(_))
        | (Value::Null, Value::Null)
        | (Value::Array(_), Value::Array(_)) => {}
        _ => panic!("INFO type differs at {path}: {a} vs {b}"),
    }
}

struct Replayer<'a> {
    server: &'a TestServer,
    name: &'static str,
    clients: HashMap<String, Client>,
    /// INFO fields (JSON pointers) that must be equal.
    info_exact: Vec<&'static str>,
    /// (expected, actual) INFO documents, for checks after the replay.
    infos: Vec<(Value, Value)>,
    /// (expected, actual) raw replies.
    replies: Vec<(Payload, Vec<u8>)>,
}

impl<'a> Replayer<'a> {
    fn new(server: &'a TestServer, name: &'static str, info_exact: &[&'static str]) -> Self {
        Replayer {
            server,
            name,
            clients: HashMap::new(),
            info_exact: info_exact.to_vec(),
            infos: Vec::new(),
            replies: Vec::new(),
        }
    }

    /// Moves the manual clock forward to `t` (never back).
    fn clock_to(&self, t: UnixTime) {
        if later(t, self.server.now()) {
            self.server.set_time(t).unwrap();
        }
    }

    /// The time the real server answered at: the recorded delay after now, or a later server
    /// timestamp the reply carries (`enqueued_at` of a job, `now` of INFO).
    fn reply_time(&self, payload: &Payload, delay: f64) -> UnixTime {
        let mut t = plus_secs(self.server.now(), delay);
        if let Payload::Full(b) = payload {
            let text = String::from_utf8_lossy(b);
            for key in ["enqueued_at", "now"] {
                if let Some(v) = string_field(&text, key) {
                    if let Ok(a) = Timestamp::from_raw(v).to_unix() {
                        if later(a, t) {
                            t = a;
                        }
                    }
                }
            }
        }
        t
    }

    async fn run(&mut self, events: &[Event]) {
        for (i, ev) in events.iter().enumerate() {
            if matches!(ev, Event::Section) {
                self.close_all().await;
                continue;
            }
            let label = ev.label().to_owned();
            if !self.clients.contains_key(&label) && !matches!(ev, Event::Send { .. }) {
                let c = Client::connect(self.server.addr()).await;
                self.clients.insert(label.clone(), c);
            }
            match ev {
                Event::Send { payload, .. } => {
                    // Move the clock to when the real server answered this command.
                    let next = events[i + 1..].iter().find(|e| {
                        e.label() == label && matches!(e, Event::Recv { .. } | Event::Eof { .. })
                    });
                    if let Some(Event::Recv {
                        payload: p, delay, ..
                    }) = next
                    {
                        let t = self.reply_time(p, *delay);
                        self.clock_to(t);
                    }
                    let bytes = payload.rebuild();
                    self.clients.get_mut(&label).unwrap().send(&bytes).await;
                }
                Event::Recv { payload, .. } => {
                    let got = self.clients.get_mut(&label).unwrap().read_raw_frame().await;
                    let got = got.unwrap_or_else(|| {
                        panic!("{}: [{label}] EOF instead of {:?}", self.name, payload)
                    });
                    self.compare(&label, payload, &got);
                    self.replies.push((payload.clone(), got));
                }
                Event::Eof { delay, .. } => {
                    let t = plus_secs(self.server.now(), *delay);
                    self.clock_to(t);
                    self.clients.get_mut(&label).unwrap().expect_eof().await;
                    self.clients.remove(&label);
                }
                Event::Section => {}
            }
        }
        self.close_all().await;
    }

    /// Closes every client connection and waits until the server has noticed.
    async fn close_all(&mut self) {
        self.clients.clear();
        tokio::time::timeout(common::READ_LIMIT, self.server.wait_for_connections(0))
            .await
            .expect("the server did not notice closed connections");
    }

    fn compare(&mut self, label: &str, expected: &Payload, got: &[u8]) {
        let ctx = format!("{}: [{label}]", self.name);
        let want = match expected {
            Payload::Full(b) => b.clone(),
            Payload::Elided { head, .. } if head.first() == Some(&b'$') => {
                return compare_elided_job(&ctx, expected, got);
            }
            Payload::Elided { .. } => expected.rebuild(),
        };
        if want.first() != Some(&b'$') || want == b"$-1\r\n" {
            assert_eq!(
                String::from_utf8_lossy(got),
                String::from_utf8_lossy(&want),
                "{ctx} reply differs"
            );
            return;
        }
        let want_body = body_of(&want);
        let got_body = body_of(got);
        assert_eq!(header_len(got), got_body.len(), "{ctx} bulk length header");
        let want_s = String::from_utf8_lossy(want_body).into_owned();
        let got_s = String::from_utf8_lossy(got_body).into_owned();
        if want_s.starts_with("{\"now\"") {
            let w: Value = serde_json::from_str(&want_s).unwrap();
            let g: Value = serde_json::from_str(&got_s).unwrap();
            same_shape("", &w, &g);
            for p in &self.info_exact {
                assert_eq!(g.pointer(p), w.pointer(p), "{ctx} INFO {p}: got {got_s}");
            }
            self.infos.push((w, g));
        } else if is_job(&want_s) {
            assert_eq!(mask_job(&got_s), mask_job(&want_s), "{ctx} job differs");
        } else if let Ok(Value::Object(w)) = serde_json::from_str::<Value>(&want_s) {
            let all_numbers = !w.is_empty() && w.values().all(Value::is_number);
            if all_numbers {
                // QUEUE LATENCY: seconds since the oldest job was enqueued.
                let g: serde_json::Map<String, Value> = serde_json::from_str(&got_s).unwrap();
                assert_eq!(
                    w.keys().collect::<Vec<_>>(),
                    g.keys().collect::<Vec<_>>(),
                    "{ctx} latency keys"
                );
                for (k, v) in &w {
                    let gv = g[k].as_f64().unwrap();
                    assert!(gv >= 0.0, "{ctx} latency {k}");
                    if v.as_f64() == Some(0.0) {
                        assert_eq!(gv, 0.0, "{ctx} latency {k} should be 0");
                    }
                }
            } else {
                assert_eq!(got_s, want_s, "{ctx} reply differs");
            }
        } else {
            assert_eq!(got_s, want_s, "{ctx} reply differs");
        }
    }
}

fn header_len(frame: &[u8]) -> usize {
    let i = frame.windows(2).position(|w| w == b"\r\n").unwrap();
    std::str::from_utf8(&frame[1..i]).unwrap().parse().unwrap()
}

fn body_of(frame: &[u8]) -> &[u8] {
    let i = frame.windows(2).position(|w| w == b"\r\n").unwrap();
    &frame[i + 2..frame.len() - 2]
}

/// big.txt's elided job replies: the head (timestamps masked) and tail must match, and the length
/// must be what the real server announced give or take the length of its elided `enqueued_at`.
fn compare_elided_job(ctx: &str, expected: &Payload, got: &[u8]) {
    let Payload::Elided { head, tail, .. } = expected else {
        unreachable!()
    };
    let announced = header_len(head);
    let body = body_of(got);
    assert_eq!(header_len(got), body.len(), "{ctx} bulk length header");
    let got_s = String::from_utf8_lossy(body).into_owned();
    let masked = mask_job(&got_s);
    // Head: everything up to the (cut) enqueued_at value.
    let head_body =
        String::from_utf8_lossy(&head[head.windows(2).position(|w| w == b"\r\n").unwrap() + 2..])
            .into_owned();
    let cut = head_body.find("\"enqueued_at\":\"").unwrap() + "\"enqueued_at\":\"".len();
    assert!(
        masked.starts_with(&mask_job(&head_body[..cut])),
        "{ctx} head differs: {}",
        &masked[..200.min(masked.len())]
    );
    let tail_body = String::from_utf8_lossy(&tail[..tail.len() - 2]).into_owned();
    assert!(got_s.ends_with(&tail_body), "{ctx} tail differs");
    // Real length = ours - our enqueued_at + theirs (created_at is in the head, 30 bytes).
    let real_created = string_field(&head_body, "created_at").unwrap();
    let ours_created = string_field(&got_s, "created_at").unwrap();
    let ours_enq = string_field(&got_s, "enqueued_at").unwrap();
    let theirs_enq = announced as i64
        - (body.len() as i64 - ours_enq.len() as i64 - ours_created.len() as i64
            + real_created.len() as i64);
    assert!(
        (20..=30).contains(&theirs_enq),
        "{ctx}: the real enqueued_at would be {theirs_enq} bytes long"
    );
}

async fn server_at(
    start: &str,
    configure: impl FnOnce(faktory_testkit::TestServerBuilder) -> faktory_testkit::TestServerBuilder,
) -> TestServer {
    let b = TestServer::builder()
        .clock(Clock::manual(ts(start)))
        .fetch_timeout(Duration::from_millis(40));
    configure(b).start().await.unwrap()
}

// -------------------------------------------------------------------------------------------------
// the replays

const INFO_BASICS: &[&str] = &[
    "/now",
    "/server_utc_time",
    "/faktory/queues",
    "/faktory/sets",
    "/faktory/total_failures",
    "/faktory/total_processed",
    "/faktory/total_enqueued",
    "/faktory/total_queues",
    "/faktory/tasks/Busy/size",
    "/faktory/tasks/Workers/size",
    "/faktory/tasks/Workers/reaped",
    "/server/description",
    "/server/faktory_version",
    "/server/connections",
];

#[tokio::test]
async fn basic_then_extra() {
    // Recorded on one fresh server: basic.txt (uptime 3 at its INFO) then extra.txt (uptime 9),
    // so extra's INFO also counts basic's queue, ACK and commands. Start = basic's INFO "now" - 3.5 s.
    let server = server_at("2026-11-22T08:24:35.723Z", |b| b).await;
    let mut exact = INFO_BASICS.to_vec();
    exact.extend(["/server/command_count", "/server/uptime"]);
    let mut r = Replayer::new(&server, "basic.txt", &exact);
    r.run(&load("basic.txt")).await;
    assert_eq!(r.infos.len(), 1);
    let mut r = Replayer::new(&server, "extra.txt", &exact);
    r.run(&load("extra.txt")).await;
    assert_eq!(r.infos.len(), 1);
    // What the replies imply about the state, checked through the handle too.
    assert!(server.queues().values().all(|&n| n == 0));
    assert_eq!(server.dead().len(), 0, "FLUSH emptied the dead set");
    assert_eq!(
        server.acked(),
        vec!["probe-jid-0000001", "probe-bulk-0001", "probe-bulk-0004"]
    );
}

#[tokio::test]
async fn quirks() {
    // Recorded on a server with history (uptime 65): queues default, probe, probe2 and rq known and
    // empty; one in-memory reservation left over from before a FLUSH (Busy size 1, working 0); and
    // an earlier PUSH with "retry":3, so jobs pushed without retry come back with retry 3 (docs/protocol.md#the-retry-default-leaks).
    let server = server_at("2026-11-22T08:19:55.712Z", |b| b).await;
    let now = server.now();
    server.with_store(|s| {
        s.push(
            serde_json::from_str(
                r#"{"jid":"leftover-0001","jobtype":"Old","args":[],"queue":"rq"}"#,
            )
            .unwrap(),
            now,
        )
        .unwrap();
        let c = s.connect();
        assert!(
            s.try_fetch(
                c,
                &faktory_testkit::store::FetchWait {
                    queues: vec!["rq".into()]
                },
                now
            )
            .is_some()
        );
        s.disconnect(c);
        s.flush();
    });
    for q in ["default", "probe", "probe2", "rq"] {
        server.ensure_queue(q).unwrap();
    }
    server.set_default_retry(3);
    let mut exact = INFO_BASICS.to_vec();
    exact.push("/server/uptime");
    let mut r = Replayer::new(&server, "quirks.txt", &exact);
    r.run(&load("quirks.txt")).await;
    assert_eq!(r.infos.len(), 2);
    // The command count grew by the same amount between the two INFOs (unknown verbs not counted).
    let d_want = r.infos[1]
        .0
        .pointer("/server/command_count")
        .unwrap()
        .as_i64()
        .unwrap()
        - r.infos[0]
            .0
            .pointer("/server/command_count")
            .unwrap()
            .as_i64()
            .unwrap();
    let d_got = r.infos[1]
        .1
        .pointer("/server/command_count")
        .unwrap()
        .as_i64()
        .unwrap()
        - r.infos[0]
            .1
            .pointer("/server/command_count")
            .unwrap()
            .as_i64()
            .unwrap();
    assert_eq!(d_got, d_want);
}

#[tokio::test]
async fn fidelity() {
    // Recorded at 08:24:15 on the server of quirks/big/timing after the load test, whose Go client
    // pushes "retry":25 explicitly: the default was 25 again, as on a fresh server.
    let server = server_at("2026-11-22T08:24:15Z", |b| b).await;
    let mut r = Replayer::new(&server, "fidelity.txt", &[]);
    r.run(&load("fidelity.txt")).await;
    // The scheduled job (2099) was there until MUTATE clear; the bad-queue push stored nothing.
    assert!(server.scheduled().is_empty());
    assert_eq!(
        server.queues().keys().collect::<Vec<_>>(),
        vec!["default", "fq"]
    );
    let fetched = r
        .replies
        .iter()
        .filter(|(_, got)| got.starts_with(b"$3"))
        .count();
    assert!(fetched >= 1, "the fidelity job was compared");
}

#[tokio::test]
async fn auth() {
    // A password server; each connection announces the salt and iteration count recorded for it,
    // so the recorded HELLO lines (and their hashes) are replayed verbatim and HI matches byte for byte.
    let events = load("auth.txt");
    let mut salts = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for e in &events {
        if let Event::Recv {
            label,
            payload: Payload::Full(b),
            ..
        } = e
        {
            if seen.insert(label.clone()) {
                let hi: Value = serde_json::from_slice(&b[4..b.len() - 2]).unwrap();
                salts.push((
                    hi["s"].as_str().unwrap().to_owned(),
                    hi["i"].as_u64().unwrap() as u32,
                ));
            }
        }
    }
    assert_eq!(salts.len(), 6);
    let server = server_at("2026-11-22T08:24:36.68Z", |b| b.password("s3cret-pw")).await;
    server.set_next_salts(salts);
    let mut exact = INFO_BASICS.to_vec();
    exact.extend(["/server/command_count", "/server/uptime"]);
    let mut r = Replayer::new(&server, "auth.txt", &exact);
    r.run(&events).await;
    assert_eq!(r.infos.len(), 1);
}

#[tokio::test]
async fn big_lines() {
    // big.txt ran right after quirks.txt on the same server: the retry default was still 3 (docs/protocol.md#the-retry-default-leaks).
    // The 1 MiB and 16 MiB lines are rebuilt from the announced sizes.
    let server = server_at("2026-11-22T08:21:08Z", |b| b).await;
    server.set_default_retry(3);
    let events = load("big.txt");
    let mut r = Replayer::new(&server, "big.txt", &[]);
    r.run(&events).await;
    // The two fetched jobs carried exactly the args that were pushed.
    let pushes: Vec<Vec<u8>> = events
        .iter()
        .filter_map(|e| match e {
            Event::Send { payload, .. } => Some(payload.rebuild()),
            _ => None,
        })
        .filter(|l| l.starts_with(b"PUSH {\"jid\""))
        .collect();
    let fetched: Vec<Value> = r
        .replies
        .iter()
        .filter(|(_, got)| got.len() > 1 << 20 && got.starts_with(b"$"))
        .map(|(_, got)| serde_json::from_slice(body_of(got)).unwrap())
        .collect();
    assert_eq!(pushes.len(), 2);
    assert_eq!(fetched.len(), 2);
    for (line, job) in pushes.iter().zip(&fetched) {
        let pushed: Value = serde_json::from_slice(&line[5..line.len() - 2]).unwrap();
        assert_eq!(job["args"], pushed["args"]);
        assert_eq!(job["jid"], pushed["jid"]);
    }
    assert_eq!(server.acked().len(), 2);
}

#[tokio::test]
async fn timing() {
    // The server of this recording started at 08:19:55 (INFO: uptime 250 at 08:24:05.77) and its
    // 1 s ticker fired .7719 s past each second (the failed_at of the expired reservation). Its
    // retry jitter drew R = 4 (next_at - failed_at = 19 s = 0^4 + 15 + 4). The replay starts at
    // the first push (created_at 08:22:26.509) and follows the recorded delays and the server
    // timestamps in the replies; 95 s of FETCH/BEAT cost no wall time beyond the 40 ms blocks.
    let server = server_at("2026-11-22T08:19:55.771901Z", |b| {
        b.retry_jitter(RetryJitter::Fixed(4))
    })
    .await;
    server.set_time(ts("2026-11-22T08:22:26.4Z")).unwrap();
    // The final INFO reflects the load test that ran before; compare what this replay controls:
    // the reaped idle worker, the expired reservation, the sets and the connections.
    let exact = [
        "/now",
        "/faktory/sets/retries",
        "/faktory/sets/scheduled",
        "/faktory/sets/dead",
        "/faktory/tasks/Busy/reaped",
        "/faktory/tasks/Workers/reaped",
        "/faktory/tasks/Workers/size",
        "/server/connections",
        "/server/uptime",
    ];
    let mut r = Replayer::new(&server, "timing.txt", &exact);
    r.run(&load("timing.txt")).await;
    assert_eq!(r.infos.len(), 1);
    let failure = &server.failures()[0];
    assert_eq!(failure.jid, "probe-rsv-000001");
    assert_eq!(failure.at, ts("2026-11-22T08:23:45.771901Z"));
}

#[test]
fn every_transcript_but_tls_is_replayed() {
    // The replays above cover these files; a new transcript must get a replay here too.
    let dir = format!("{}/../faktory-proto/tests/data", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".txt"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "auth.txt",
            "basic.txt",
            "big.txt",
            "extra.txt",
            "fidelity.txt",
            "quirks.txt",
            "timing.txt",
            "tls.txt"
        ]
    );
    // And each parses into events with at least one server reply.
    for n in names.iter().filter(|n| *n != "tls.txt") {
        assert!(
            load(n).iter().any(|e| matches!(e, Event::Recv { .. })),
            "{n}"
        );
    }
}
