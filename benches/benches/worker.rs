//! Criterion bench for the worker engine: 100,000 no-op jobs from an in-memory server.
//!
//! The engine (concurrency 10, default connections: control + 5 fetch connections) is driven with a
//! frozen virtual clock against a minimal server in this file: it answers HI/HELLO, hands out
//! pre-encoded FETCH replies (197-byte jobs shaped like `transcripts/basic.txt`, unique jids),
//! answers ACK and BEAT with `+OK`. The adapter side finishes every job `Ok` as soon as it is
//! handed out. One iteration = 100,000 jobs fetched, run and ACK-confirmed; criterion's
//! throughput line gives jobs/s, and time / 100,000 is the per-job cost of the whole engine
//! (FETCH encode, reply decode into a `Job`, RunJob, ACK encode, ACK reply, bookkeeping), to be set
//! beside `fetch_reply_to_job` of the `proto` bench (decoding one FETCH reply).
//!
//! Run: `cargo bench -p faktory-benches --bench worker -- --warm-up-time 1 --measurement-time 5`.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use faktory_proto::worker::{ConnId, Event, Outcome, Worker, WorkerConfig};

const JOBS: usize = 100_000;

/// Pre-encoded FETCH replies, one per job.
fn replies(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let body = format!(
                "{{\"retry\":25,\"jid\":\"probe-jid-{i:07}\",\"queue\":\"probe\",\"jobtype\":\"ProbeJob\",\"created_at\":\"2026-11-22T08:24:39.221419355Z\",\"enqueued_at\":\"2026-11-22T08:24:39.221794035Z\",\"args\":[1,\"two\",{{\"three\":3}}]}}"
            );
            assert_eq!(body.len(), 197);
            let mut v = format!("${}\r\n", body.len()).into_bytes();
            v.extend_from_slice(body.as_bytes());
            v.extend_from_slice(b"\r\n");
            v
        })
        .collect()
}

#[derive(Default)]
struct ServerConn {
    input: Vec<u8>,
    output: Vec<u8>,
    /// FETCHes held because the jobs ran out (never answered in this bench).
    held: usize,
}

struct Server<'a> {
    conns: HashMap<ConnId, ServerConn>,
    jobs: std::slice::Iter<'a, Vec<u8>>,
    acks: usize,
}

impl Server<'_> {
    fn receive(&mut self, id: ConnId, bytes: &[u8]) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        c.input.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(pos) = c.input[start..].iter().position(|b| *b == b'\n') {
            let line = &c.input[start..start + pos];
            start += pos + 1;
            if line.starts_with(b"FETCH ") {
                match self.jobs.next() {
                    Some(reply) if c.held == 0 => c.output.extend_from_slice(reply),
                    _ => c.held += 1,
                }
            } else if line.starts_with(b"ACK ") {
                self.acks += 1;
                c.output.extend_from_slice(b"+OK\r\n");
            } else if line.starts_with(b"HELLO ") || line.starts_with(b"BEAT ") {
                c.output.extend_from_slice(b"+OK\r\n");
            } else if line.starts_with(b"END") {
            } else {
                panic!("unexpected line {:?}", String::from_utf8_lossy(line));
            }
        }
        c.input.drain(..start);
    }
}

/// Runs `jobs.len()` no-op jobs through a fresh engine; returns the number of ACKs the server saw.
fn run(jobs: &[Vec<u8>]) -> usize {
    let now = Instant::now();
    let mut cfg = WorkerConfig::default();
    cfg.concurrency = 10;
    cfg.wid = Some("bench-worker-01".into());
    cfg.seed = Some(1);
    let mut worker = Worker::new(cfg, now).unwrap();
    let mut server = Server {
        conns: HashMap::new(),
        jobs: jobs.iter(),
        acks: 0,
    };
    let mut finished = Vec::with_capacity(16);
    let mut confirmed = 0usize;
    while confirmed < jobs.len() {
        let mut progress = false;
        while let Some((id, bytes)) = worker.poll_transmit() {
            server.receive(id, &bytes);
            progress = true;
        }
        while let Some(ev) = worker.poll_event() {
            progress = true;
            match ev {
                Event::OpenConnection(id) => {
                    server.conns.insert(
                        id,
                        ServerConn {
                            output: b"+HI {\"v\":2}\r\n".to_vec(),
                            ..ServerConn::default()
                        },
                    );
                    worker.handle_connected(id, now);
                }
                Event::RunJob { token, job } => {
                    black_box(&job);
                    finished.push(token);
                }
                Event::JobConfirmed { .. } => confirmed += 1,
                Event::Stopped(r) => panic!("stopped: {r:?}"),
                _ => {}
            }
        }
        for token in finished.drain(..) {
            worker.handle_job_finished(token, Outcome::Ok, now);
        }
        let ids: Vec<ConnId> = server
            .conns
            .iter()
            .filter(|(_, c)| !c.output.is_empty())
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let out = std::mem::take(&mut server.conns.get_mut(&id).unwrap().output);
            worker.handle_input(id, &out, now);
            progress = true;
        }
        assert!(progress, "stalled after {confirmed} jobs");
    }
    server.acks
}

fn worker_100k_noop_jobs(c: &mut Criterion) {
    let jobs = replies(JOBS);
    let mut group = c.benchmark_group("worker");
    group.sample_size(10);
    group.throughput(Throughput::Elements(JOBS as u64));
    group.bench_function("100k_noop_jobs", |b| {
        b.iter_batched(
            || (),
            |()| assert_eq!(run(black_box(&jobs)), JOBS),
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, worker_100k_noop_jobs);
criterion_main!(benches);
