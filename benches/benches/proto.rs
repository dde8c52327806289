//! Criterion benches for `faktory-proto`.
//!
//! - `fetch_reply_to_job`: the FETCH reply of `transcripts/basic.txt` (`$197\r\n{…}\r\n`) fed to a
//!   ready `client::Connection` with a FETCH pending, through to the `Job` in the `Reply` event
//!   (one long-lived connection; the FETCHes are queued outside the timed section).
//! - `job_serde_json_baseline`: plain `serde_json::from_slice::<Job>` of the same 197-byte body.
//!   Issue #2 wants the first within 1.2x of the second (framing nearly free).
//! - `encode_push`: `Command::Push` of a typical job into a reused `BytesMut`.
//! - `password_hash_8000`: the iterated SHA-256 password hash with i = 8000.
//!
//! Run: `cargo bench -p faktory-benches --bench proto -- --warm-up-time 1 --measurement-time 3`.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{Criterion, criterion_group, criterion_main};
use faktory_proto::Job;
use faktory_proto::client::{ClientOptions, Connection, Event, Reply};
use faktory_proto::command::Command;
use faktory_proto::handshake::password_hash;

/// The FETCH reply of `transcripts/basic.txt`, byte for byte.
const FETCH_REPLY: &[u8] = b"$197\r\n{\"retry\":25,\"jid\":\"probe-jid-0000001\",\"queue\":\"probe\",\"jobtype\":\"ProbeJob\",\"created_at\":\"2026-11-22T08:24:39.221419355Z\",\"enqueued_at\":\"2026-11-22T08:24:39.221794035Z\",\"args\":[1,\"two\",{\"three\":3}]}\r\n";

fn body() -> &'static [u8] {
    let body = &FETCH_REPLY[6..FETCH_REPLY.len() - 2];
    assert_eq!(body.len(), 197);
    body
}

/// A connection past its handshake.
fn ready(now: Instant) -> Connection {
    let mut conn = Connection::new(ClientOptions::default(), now);
    conn.handle_input(b"+HI {\"v\":2}\r\n+OK\r\n", now);
    assert_eq!(conn.poll_event(), Some(Event::Ready));
    while conn.poll_transmit().is_some() {}
    conn
}

/// One long-lived ready connection (as in an adapter): FETCHes are queued in batches outside the
/// timed section, then each timed step feeds one recorded reply and takes the `Job` out of the
/// `Reply` event (and drops it, as the baseline drops its `Job`).
fn fetch_reply_to_job(c: &mut Criterion) {
    let now = Instant::now();
    let mut conn = ready(now);
    let fetch = Command::Fetch(vec!["probe".into()]);
    c.bench_function("fetch_reply_to_job", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(1024);
                for _ in 0..n {
                    conn.send(&fetch, now).unwrap();
                }
                while conn.poll_transmit().is_some() {}
                let start = Instant::now();
                for _ in 0..n {
                    conn.handle_input(black_box(FETCH_REPLY), now);
                    match conn.poll_event() {
                        Some(Event::Reply {
                            result: Ok(Reply::Job(Some(job))),
                            ..
                        }) => drop(black_box(job)),
                        other => panic!("{other:?}"),
                    }
                }
                total += start.elapsed();
                left -= n;
            }
            total
        });
    });
}

fn job_serde_json_baseline(c: &mut Criterion) {
    let body = body();
    c.bench_function("job_serde_json_baseline", |b| {
        b.iter(|| serde_json::from_slice::<Job>(black_box(body)).unwrap());
    });
}

fn encode_push(c: &mut Criterion) {
    let job = Job::builder("SendEmail")
        .jid("probe-jid-0000001")
        .args(("ada@example.com", 42, serde_json::json!({"locale": "fr"})))
        .queue("mail")
        .reserve_for(600)
        .build()
        .unwrap();
    let cmd = Command::Push(Box::new(job));
    let mut out = BytesMut::with_capacity(512);
    c.bench_function("encode_push", |b| {
        b.iter(|| {
            out.clear();
            black_box(&cmd).encode(&mut out).unwrap();
            black_box(out.len())
        });
    });
}

fn password_hash_8000(c: &mut Criterion) {
    c.bench_function("password_hash_8000", |b| {
        b.iter(|| password_hash(black_box("s3cret-pw"), black_box("5cd4e5d2eb28a61"), 8000));
    });
}

criterion_group!(
    benches,
    fetch_reply_to_job,
    job_serde_json_baseline,
    encode_push,
    password_hash_8000
);
criterion_main!(benches);
