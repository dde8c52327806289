//! Criterion round trips of `faktory-tokio` against the in-process `faktory-testkit` (loopback TCP,
//! one multi-thread tokio runtime for both):
//!
//! - `push_roundtrip`: one `Client::push` awaited (job built, PUSH written, `+OK` read).
//! - `push_pipelined_64`: 64 pushes in flight on one `Client` (throughput per job).
//! - `push_bulk_1000`: one `push_bulk` of 1,000 jobs (one PUSHB).
//! - `worker_roundtrip`: a running `Worker` (concurrency 10); one job pushed, timed until its
//!   handler ran (PUSH, the blocked FETCH woken, the job decoded and dispatched).
//! - `worker_drain_1000`: 1,000 jobs prefilled through the testkit handle (not timed), then a
//!   fresh `Worker` (concurrency 10, default connections) built and run until its handler has
//!   seen all 1,000 (connection setup included; its shutdown is not timed).
//!
//! Run: `cargo bench -p faktory-benches --bench roundtrip -- --warm-up-time 1 --measurement-time 5`.
//! The `faktory-bench` tool and the `compare` example measure the same paths in whole processes.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use faktory_testkit::TestServer;
use faktory_tokio::{BoxError, CancellationToken, Client, Job, Worker};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

fn job(queue: &str) -> Job {
    Job::builder("Noop")
        .queue(queue)
        .args((1, "string", 3))
        .build()
        .unwrap()
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn server(rt: &Runtime) -> TestServer {
    rt.block_on(
        TestServer::builder()
            .fetch_timeout(Duration::from_millis(100))
            .start(),
    )
    .unwrap()
}

fn push(c: &mut Criterion) {
    let rt = runtime();
    let server = server(&rt);
    let client = rt.block_on(Client::connect_to(&server.url())).unwrap();
    let mut g = c.benchmark_group("push");
    g.throughput(Throughput::Elements(1));
    g.bench_function("push_roundtrip", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    client.push(job("rt-push")).await.unwrap();
                }
                let took = start.elapsed();
                client.queue_remove(&["rt-push"]).await.unwrap();
                took
            })
        });
    });
    g.bench_function("push_pipelined_64", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let next = Arc::new(AtomicU64::new(0));
                let start = Instant::now();
                let tasks: Vec<_> = (0..64)
                    .map(|_| {
                        let (client, next) = (client.clone(), Arc::clone(&next));
                        tokio::spawn(async move {
                            while next.fetch_add(1, Ordering::Relaxed) < iters {
                                client.push(job("rt-pipe")).await.unwrap();
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
                let took = start.elapsed();
                client.queue_remove(&["rt-pipe"]).await.unwrap();
                took
            })
        });
    });
    g.throughput(Throughput::Elements(1000));
    g.bench_function("push_bulk_1000", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut took = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let jobs: Vec<Job> = (0..1000).map(|_| job("rt-bulk")).collect();
                    let refused = client.push_bulk(jobs).await.unwrap();
                    took += start.elapsed();
                    assert!(refused.is_empty());
                    client.queue_remove(&["rt-bulk"]).await.unwrap();
                }
                took
            })
        });
    });
    g.finish();
    rt.block_on(client.close()).unwrap();
    drop(server);
}

fn worker(c: &mut Criterion) {
    let rt = runtime();
    let server = server(&rt);
    let client = rt.block_on(Client::connect_to(&server.url())).unwrap();
    let mut g = c.benchmark_group("worker");

    // One long-running worker; each iteration pushes a job and waits for its handler.
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let stop = CancellationToken::new();
    let w = Worker::builder()
        .url(&server.url())
        .unwrap()
        .queues(["rt-worker"])
        .concurrency(10)
        .register("Noop", move |_job: Job| {
            let _ = tx.send(());
            std::future::ready(Ok::<(), BoxError>(()))
        })
        .shutdown_signal(stop.clone().cancelled_owned())
        .build()
        .unwrap();
    let running = rt.spawn(w.run());
    g.throughput(Throughput::Elements(1));
    g.bench_function("worker_roundtrip", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    client.push(job("rt-worker")).await.unwrap();
                    rx.recv().await.unwrap();
                }
                start.elapsed()
            })
        });
    });
    stop.cancel();
    let report = rt.block_on(running).unwrap();
    assert!(report.is_clean(), "{report:?}");

    // A fresh worker per iteration drains 1,000 prefilled jobs.
    const DRAIN: u64 = 1000;
    g.throughput(Throughput::Elements(DRAIN));
    g.sample_size(10);
    g.bench_function("worker_drain_1000", |b| {
        b.iter_custom(|iters| {
            let mut took = Duration::ZERO;
            for _ in 0..iters {
                for _ in 0..DRAIN {
                    server.enqueue(job("rt-drain")).unwrap();
                }
                let handled = Arc::new(AtomicU64::new(0));
                let done = CancellationToken::new();
                let stop = CancellationToken::new();
                let (h, d) = (Arc::clone(&handled), done.clone());
                let start = Instant::now();
                let w = Worker::builder()
                    .url(&server.url())
                    .unwrap()
                    .queues(["rt-drain"])
                    .concurrency(10)
                    .register("Noop", move |_job: Job| {
                        if h.fetch_add(1, Ordering::Relaxed) + 1 == DRAIN {
                            d.cancel();
                        }
                        std::future::ready(Ok::<(), BoxError>(()))
                    })
                    .shutdown_signal(stop.clone().cancelled_owned())
                    .build()
                    .unwrap();
                let running = rt.spawn(w.run());
                rt.block_on(done.cancelled());
                took += start.elapsed();
                stop.cancel();
                let report = rt.block_on(running).unwrap();
                assert!(report.is_clean(), "{report:?}");
                assert_eq!(handled.load(Ordering::Relaxed), DRAIN);
            }
            took
        });
    });
    g.finish();
    rt.block_on(client.close()).unwrap();
    drop(server);
}

criterion_group!(benches, push, worker);
criterion_main!(benches);
