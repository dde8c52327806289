//! The adapter scenario list, on tokio. Each scenario runs against `faktory-testkit`, or against the
//! real server named by `FAKTORY_URL` when that is set (scenarios that need fault injection or
//! operator actions then print `SKIPPED <name>` and return).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faktory_proto::command::WorkerState;
use faktory_testkit::{FailOutcome, Fault, TestServer};
use faktory_tokio::{
    BoxError, CancellationToken, Client, Error, Fail, Job, MutateFilter, MutateOp, MutateTarget,
    StopReason, Worker,
};
use serde_json::json;
use support::{Server, eventually, unique_queue};

const LONG: Duration = Duration::from_secs(30);

async fn client(server: &Server) -> Client {
    Client::connect_to(&server.url())
        .await
        .expect("client connects")
}

async fn consumer(server: &Server, wid: &str) -> Client {
    Client::builder()
        .url(&server.url())
        .unwrap()
        .wid(wid)
        .connect()
        .await
        .expect("consumer connects")
}

/// A worker builder pointed at `url` with test-friendly timings.
fn worker_builder(url: &str, queue: &str) -> faktory_tokio::WorkerBuilder {
    Worker::builder()
        .url(url)
        .unwrap()
        .queues([queue.to_owned()])
        .heartbeat_interval(Duration::from_millis(200))
        .grace_period(Duration::from_secs(5))
}

// -------------------------------------------------------------------------------------------------
// client scenarios

#[tokio::test]
async fn push_and_fetch_every_job_field() {
    let server = Server::start().await;
    let queue = unique_queue("fields");
    let c = client(&server).await;
    let job = Job::builder("EveryField")
        .args((1, "two", json!({"three": 3}), [true, false]))
        .queue(&queue)
        .retry(3)
        .reserve_for(600)
        .backtrace(7)
        .custom("locale", "fr")
        .custom("nested", json!({"a": [1, 2]}))
        .at(faktory_tokio::Timestamp::parse("2000-01-01T00:00:00Z").unwrap())
        .created_at(faktory_tokio::Timestamp::parse("1999-12-31T23:59:59.5Z").unwrap())
        .build()
        .unwrap();
    c.push(job.clone()).await.unwrap();

    let w = consumer(&server, &unique_queue("wid")).await;
    let got = w.fetch(&[queue.as_str()]).await.unwrap().expect("a job");
    assert_eq!(got.jid, job.jid);
    assert_eq!(got.jobtype, "EveryField");
    assert_eq!(got.args, job.args);
    assert_eq!(got.queue(), queue);
    assert_eq!(got.retry, Some(3));
    assert_eq!(got.reserve_for, Some(600));
    assert_eq!(got.backtrace, Some(7));
    assert_eq!(got.custom, job.custom);
    assert_eq!(got.at, job.at);
    assert_eq!(got.created_at, job.created_at);
    assert!(
        got.enqueued_at.as_ref().unwrap().to_unix().is_ok(),
        "server sets enqueued_at"
    );
    assert!(got.failure.is_none());
    w.ack(&got.jid).await.unwrap();
    if let Some(kit) = server.kit() {
        assert!(kit.acked().contains(&job.jid));
    }
}

#[tokio::test]
async fn push_bulk_reports_partial_failures() {
    let server = Server::start().await;
    let queue = unique_queue("bulk");
    let c = client(&server).await;
    let mut jobs: Vec<Job> = (0..2500)
        .map(|i| {
            Job::builder("Bulk")
                .args((i,))
                .queue(&queue)
                .build()
                .unwrap()
        })
        .collect();
    let mut bad = Job::new("Bulk", vec![]);
    bad.jid = "short".into();
    bad.queue = Some(queue.clone());
    jobs.push(bad);
    let mut bad_queue = Job::new("Bulk", vec![]);
    bad_queue.queue = Some("no spaces allowed".into());
    let bad_queue_jid = bad_queue.jid.clone();
    jobs.push(bad_queue);

    let failed = c.push_bulk(jobs).await.unwrap();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(failed.contains_key("short"));
    assert!(failed.contains_key(&bad_queue_jid));
    let info = c.info().await.unwrap();
    assert_eq!(
        info.faktory.queues.get(&queue),
        Some(&2500),
        "2,500 jobs over three PUSHB calls"
    );
    c.queue_remove(&[queue.as_str()]).await.unwrap();
}

#[tokio::test]
async fn queue_pause_resume_remove_latency() {
    let server = Server::start().await;
    let queue = unique_queue("queues");
    let c = client(&server).await;
    c.push(Job::builder("Q").queue(&queue).build().unwrap())
        .await
        .unwrap();
    c.queue_pause(&[queue.as_str()]).await.unwrap();
    let w = consumer(&server, &unique_queue("wid")).await;
    assert!(
        w.fetch(&[queue.as_str()]).await.unwrap().is_none(),
        "paused queue yields nothing"
    );
    c.queue_resume(&[queue.as_str()]).await.unwrap();
    let latency = c
        .queue_latency(&[queue.as_str(), "no-such-queue-xyz"])
        .await
        .unwrap();
    assert!(latency[queue.as_str()] >= 0.0);
    assert_eq!(latency["no-such-queue-xyz"], 0.0);
    c.queue_remove(&[queue.as_str()]).await.unwrap();
    let info = c.info().await.unwrap();
    assert!(
        !info.faktory.queues.contains_key(&queue),
        "removed queue is forgotten"
    );
    assert!(
        w.fetch(&[queue.as_str()]).await.unwrap().is_none(),
        "its job is gone"
    );
}

#[tokio::test]
async fn mutate_moves_jobs_between_sets() {
    let server = Server::start().await;
    let queue = unique_queue("mutate");
    let c = client(&server).await;
    let w = consumer(&server, &unique_queue("wid")).await;
    let job = Job::builder("M").queue(&queue).retry(5).build().unwrap();
    c.push(job.clone()).await.unwrap();
    let got = w.fetch(&[queue.as_str()]).await.unwrap().unwrap();
    w.fail(Fail {
        jid: got.jid.clone(),
        errtype: "Boom".into(),
        message: "first failure".into(),
        backtrace: vec![],
    })
    .await
    .unwrap();
    let only_this = Some(MutateFilter {
        jids: vec![job.jid.clone()],
        ..MutateFilter::default()
    });
    // retries → dead → back on its queue.
    c.mutate_set(MutateOp::Kill, MutateTarget::Retries, only_this.clone())
        .await
        .unwrap();
    if let Some(kit) = server.kit() {
        assert!(kit.dead().iter().any(|e| e.job.jid == job.jid));
        assert!(kit.retries().is_empty());
    }
    c.mutate_set(MutateOp::Requeue, MutateTarget::Dead, only_this.clone())
        .await
        .unwrap();
    let again = w
        .fetch(&[queue.as_str()])
        .await
        .unwrap()
        .expect("requeued job");
    assert_eq!(again.jid, job.jid);
    let failure = again
        .failure
        .expect("the failure record travels with the job");
    assert_eq!(failure.message.as_deref(), Some("first failure"));
    w.ack(&again.jid).await.unwrap();
    // discard with a jobtype filter on an empty set is fine.
    c.mutate_set(
        MutateOp::Discard,
        MutateTarget::Scheduled,
        Some(MutateFilter {
            jobtype: Some("M".into()),
            ..MutateFilter::default()
        }),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn consumer_commands_fetch_ack_fail_beat() {
    let Some(kit) = Server::kit_only("consumer_commands_fetch_ack_fail_beat").await else {
        return;
    };
    let server = Server::Kit(kit);
    let queue = unique_queue("consumer");
    let wid = unique_queue("wid");
    let c = client(&server).await;
    let w = consumer(&server, &wid).await;
    assert_eq!(w.beat(Some(1234), None).await.unwrap(), None);
    c.push(Job::builder("C").queue(&queue).build().unwrap())
        .await
        .unwrap();
    c.push(Job::builder("C").queue(&queue).build().unwrap())
        .await
        .unwrap();
    let a = w.fetch(&[queue.as_str()]).await.unwrap().unwrap();
    let b = w.fetch(&[queue.as_str()]).await.unwrap().unwrap();
    w.ack(&a.jid).await.unwrap();
    w.fail(Fail {
        jid: b.jid.clone(),
        errtype: "E".into(),
        message: "m".into(),
        backtrace: vec!["x.rs:1".into()],
    })
    .await
    .unwrap();
    let err = w
        .fail(Fail {
            jid: b.jid.clone(),
            errtype: "E".into(),
            message: "again".into(),
            backtrace: vec![],
        })
        .await
        .unwrap_err();
    assert!(err.server_error().unwrap().is_job_not_found(), "{err}");
    let kit = server.kit().unwrap();
    assert_eq!(kit.worker(&wid).unwrap().rss_kb, 1234);
    assert!(kit.quiet(&wid));
    assert_eq!(w.beat(None, None).await.unwrap(), Some(WorkerState::Quiet));
}

#[tokio::test]
async fn in_flight_call_fails_with_unknown_outcome_then_reconnects() {
    let Some(kit) =
        Server::kit_only("in_flight_call_fails_with_unknown_outcome_then_reconnects").await
    else {
        return;
    };
    let queue = unique_queue("inflight");
    let c = Client::connect_to(&kit.url()).await.unwrap();
    c.info().await.unwrap();
    let conn = kit.connections()[0].id;
    assert!(kit.inject(conn, Fault::DropAfterCommand(1)));
    let job = Job::builder("F").queue(&queue).build().unwrap();
    let err = c.push(job.clone()).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::OutcomeUnknown {
                command: "PUSH",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        kit.queue(&queue).len(),
        1,
        "the server executed it: that is why the outcome is unknown"
    );
    // The next call reconnects; the PUSH was not re-sent behind our back.
    c.push(Job::builder("F").queue(&queue).build().unwrap())
        .await
        .unwrap();
    assert_eq!(kit.queue(&queue).len(), 2);
}

#[tokio::test]
async fn client_survives_a_server_restart() {
    let Some(kit) = Server::kit_only("client_survives_a_server_restart").await else {
        return;
    };
    let queue = unique_queue("restart");
    let c = Client::connect_to(&kit.url()).await.unwrap();
    c.push(Job::builder("R").queue(&queue).build().unwrap())
        .await
        .unwrap();
    kit.restart().await.unwrap();
    c.push(Job::builder("R").queue(&queue).build().unwrap())
        .await
        .unwrap();
    assert_eq!(
        kit.queue(&queue).len(),
        2,
        "state kept across the restart, client reconnected"
    );
}

#[tokio::test]
async fn concurrent_calls_share_one_connection() {
    let Some(kit) = Server::kit_only("concurrent_calls_share_one_connection").await else {
        return;
    };
    let queue = unique_queue("pipeline");
    let c = Client::connect_to(&kit.url()).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let c = c.clone();
        let q = queue.clone();
        tasks.push(tokio::spawn(async move {
            c.push(Job::builder("P").args((i,)).queue(q).build().unwrap())
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(kit.queue(&queue).len(), 200);
    assert_eq!(kit.connection_count(), 1, "one connection, pipelined");
}

#[tokio::test]
async fn password_server() {
    let kit = TestServer::builder()
        .password("s3cret pw")
        .start()
        .await
        .unwrap();
    let c = Client::connect_to(&kit.url())
        .await
        .expect("password from the URL");
    c.push(Job::new("Pw", vec![])).await.unwrap();
    let addr = kit.addr();
    let err = Client::builder()
        .url(&format!("tcp://:wrong@{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Connection { source: faktory_proto::client::ConnectionError::Auth(e), .. } if e.is_invalid_password()),
        "{err:?}"
    );
    let err = Client::connect_to(&format!("tcp://{addr}"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Connection {
                source: faktory_proto::client::ConnectionError::PasswordRequired,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn tls_server() {
    let kit = TestServer::start().await.unwrap();
    let (proxy, cert) = support::tls_proxy(kit.addr()).await;
    let mut roots = faktory_tokio::rustls::RootCertStore::empty();
    roots.add(cert.into()).unwrap();
    let url = format!("tcp+tls://localhost:{}", proxy.port());
    let c = Client::builder()
        .url(&url)
        .unwrap()
        .tls(faktory_tokio::TlsConfig::RootStore(roots))
        .connect()
        .await
        .expect("TLS with the self-signed root");
    c.push(Job::builder("Tls").queue("tlsq").build().unwrap())
        .await
        .unwrap();
    assert_eq!(kit.queue("tlsq").len(), 1);
    // Default verification (webpki roots) must refuse a self-signed certificate.
    let err = Client::connect_to(&url).await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Connection {
                source: faktory_proto::client::ConnectionError::Connect(f),
                ..
            } if f.phase == faktory_proto::client::ConnectPhase::Tls && f.permanent
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn garbage_server_gives_a_typed_error_not_a_hang() {
    let addr = support::garbage_server(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        Client::connect_to(&format!("tcp://{addr}")),
    )
    .await;
    let err = r.expect("no hang").unwrap_err();
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");

    let kit = TestServer::start().await.unwrap();
    let c = Client::connect_to(&kit.url()).await.unwrap();
    c.info().await.unwrap();
    let conn = kit.connections()[0].id;
    kit.inject(
        conn,
        Fault::ReplaceReply {
            nth: 1,
            bytes: bytes::Bytes::from_static(b"?garbage\r\n"),
        },
    );
    let r = tokio::time::timeout(Duration::from_secs(5), c.info()).await;
    let err = r.expect("no hang").unwrap_err();
    assert!(matches!(err, Error::OutcomeUnknown { .. }), "{err:?}");
}

// -------------------------------------------------------------------------------------------------
// worker scenarios

/// Runs a worker until `done` jobs were handled or `LONG` passes; returns the handled jids.
async fn run_counting_worker(
    url: &str,
    queue: &str,
    concurrency: usize,
    expect: usize,
    delay: Duration,
) -> (faktory_tokio::StopReport, HashMap<String, usize>) {
    let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let stop = CancellationToken::new();
    let done = Arc::new(AtomicUsize::new(0));
    let (seen2, stop2, done2) = (Arc::clone(&seen), stop.clone(), Arc::clone(&done));
    let worker = worker_builder(url, queue)
        .concurrency(concurrency)
        .register("Count", move |job: Job| {
            let (seen, stop, done) = (Arc::clone(&seen2), stop2.clone(), Arc::clone(&done2));
            async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let distinct = {
                    let mut seen = seen.lock().unwrap();
                    *seen.entry(job.jid.clone()).or_default() += 1;
                    seen.len()
                };
                done.fetch_add(1, Ordering::SeqCst);
                if distinct >= expect {
                    stop.cancel();
                }
                Ok::<(), BoxError>(())
            }
        })
        .shutdown_signal(stop.clone().cancelled_owned())
        .build()
        .unwrap();
    let guard = stop.clone();
    let watchdog = tokio::spawn(async move {
        tokio::time::sleep(LONG).await;
        guard.cancel();
    });
    let report = worker.run().await;
    watchdog.abort();
    let seen = seen.lock().unwrap().clone();
    (report, seen)
}

#[tokio::test]
async fn worker_runs_1000_jobs_at_concurrency_20_each_acked_once() {
    let server = Server::start().await;
    let queue = unique_queue("w1000");
    let c = client(&server).await;
    let jobs: Vec<Job> = (0..1000)
        .map(|i| {
            Job::builder("Count")
                .args((i,))
                .queue(&queue)
                .build()
                .unwrap()
        })
        .collect();
    let jids: Vec<String> = jobs.iter().map(|j| j.jid.clone()).collect();
    assert!(c.push_bulk(jobs).await.unwrap().is_empty());

    let (report, seen) = run_counting_worker(&server.url(), &queue, 20, 1000, Duration::ZERO).await;
    assert_eq!(report.reason, StopReason::Shutdown);
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(seen.len(), 1000, "every job ran");
    assert!(seen.values().all(|&n| n == 1), "no job ran twice");
    if let Some(kit) = server.kit() {
        let mut acks: HashMap<String, usize> = HashMap::new();
        for a in kit.ack_log() {
            *acks.entry(a.jid).or_default() += 1;
        }
        for jid in &jids {
            assert_eq!(acks.get(jid), Some(&1), "{jid} acked exactly once");
        }
        assert!(kit.reservations().is_empty());
        // Only the producer client's connection remains once the worker's ENDs arrived.
        assert!(
            eventually(Duration::from_secs(5), || kit.connection_count() <= 1).await,
            "worker closed its connections: {:?}",
            kit.connections()
        );
    } else {
        let info = c.info().await.unwrap();
        assert_eq!(info.faktory.queues.get(&queue).copied().unwrap_or(0), 0);
    }
}

#[derive(Debug)]
struct Outer(Inner);
#[derive(Debug)]
struct Inner;
impl std::fmt::Display for Outer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("charging the card failed")
    }
}
impl std::fmt::Display for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("gateway timeout")
    }
}
impl std::error::Error for Outer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}
impl std::error::Error for Inner {}

/// Pushes one job of `jobtype` with `backtrace` lines, runs a worker with `register` until the job
/// was FAILed, and returns the failure record the server holds (fetched back through MUTATE requeue,
/// so this also works against a real server).
async fn fail_one_job(
    server: &Server,
    jobtype: &str,
    register: impl FnOnce(faktory_tokio::WorkerBuilder) -> faktory_tokio::WorkerBuilder,
) -> faktory_proto::Failure {
    let queue = unique_queue("fail");
    let c = client(server).await;
    let job = Job::builder(jobtype)
        .queue(&queue)
        .backtrace(10)
        .retry(5)
        .build()
        .unwrap();
    c.push(job.clone()).await.unwrap();
    let stop = CancellationToken::new();
    let worker = register(worker_builder(&server.url(), &queue))
        .shutdown_signal(stop.clone().cancelled_owned())
        .build()
        .unwrap();
    let run = tokio::spawn(worker.run());
    let found = match server.kit() {
        Some(kit) => eventually(LONG, || kit.failed().contains(&job.jid)).await,
        None => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            true
        }
    };
    stop.cancel();
    let report = run.await.unwrap();
    assert!(found, "the job was FAILed");
    assert!(report.is_clean(), "{report:?}");
    let only = Some(MutateFilter {
        jids: vec![job.jid.clone()],
        ..MutateFilter::default()
    });
    c.mutate_set(MutateOp::Requeue, MutateTarget::Retries, only)
        .await
        .unwrap();
    let w = consumer(server, &unique_queue("wid")).await;
    let again = w
        .fetch(&[queue.as_str()])
        .await
        .unwrap()
        .expect("requeued from retries");
    w.ack(&again.jid).await.unwrap();
    again.failure.expect("failure record")
}

#[tokio::test]
async fn handler_error_becomes_fail_with_message_and_backtrace() {
    let server = Server::start().await;
    let failure = fail_one_job(&server, "Charge", |b| {
        b.register("Charge", |_job: Job| async move {
            Err::<(), Outer>(Outer(Inner))
        })
    })
    .await;
    assert_eq!(failure.errtype.as_deref(), Some("Outer"));
    assert_eq!(failure.message.as_deref(), Some("charging the card failed"));
    assert_eq!(
        failure.backtrace,
        Some(vec!["caused by: gateway timeout".to_owned()])
    );
}

#[tokio::test]
async fn handler_panic_becomes_fail() {
    let server = Server::start().await;
    let failure = fail_one_job(&server, "Boom", |b| {
        b.register("Boom", |job: Job| async move {
            if job.jobtype == "Boom" {
                panic!("handler exploded");
            }
            Ok::<(), BoxError>(())
        })
    })
    .await;
    assert_eq!(failure.errtype.as_deref(), Some("panic"));
    assert_eq!(failure.message.as_deref(), Some("handler exploded"));
}

#[tokio::test]
async fn blocking_handler_and_unknown_jobtype() {
    let Some(kit) = Server::kit_only("blocking_handler_and_unknown_jobtype").await else {
        return;
    };
    let queue = unique_queue("blocking");
    let ran = Arc::new(AtomicUsize::new(0));
    let ran2 = Arc::clone(&ran);
    let stop = CancellationToken::new();
    let worker = worker_builder(&kit.url(), &queue)
        .register_blocking("Sync", move |job: Job, ctx: faktory_tokio::JobContext| {
            assert_eq!(ctx.jid(), job.jid);
            std::thread::sleep(Duration::from_millis(20));
            ran2.fetch_add(1, Ordering::SeqCst);
            Ok::<(), BoxError>(())
        })
        .shutdown_signal(stop.clone().cancelled_owned())
        .build()
        .unwrap();
    let sync_job = Job::builder("Sync").queue(&queue).build().unwrap();
    let unknown = Job::builder("Nobody").queue(&queue).build().unwrap();
    kit.push(sync_job.clone()).unwrap();
    kit.push(unknown.clone()).unwrap();
    let run = tokio::spawn(worker.run());
    assert!(
        eventually(LONG, || kit.acked().contains(&sync_job.jid)
            && kit.failed().contains(&unknown.jid))
        .await
    );
    stop.cancel();
    run.await.unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    let f = kit
        .failures()
        .into_iter()
        .find(|f| f.jid == unknown.jid)
        .unwrap();
    assert_eq!(f.errtype, "UnknownJobtype");
}

#[tokio::test]
async fn quiet_from_the_server_stops_fetching() {
    let Some(kit) = Server::kit_only("quiet_from_the_server_stops_fetching").await else {
        return;
    };
    let queue = unique_queue("quiet");
    let wid = unique_queue("wid");
    let stop = CancellationToken::new();
    let worker = worker_builder(&kit.url(), &queue)
        .wid(&wid)
        .register("Q", |_job: Job| async { Ok::<(), BoxError>(()) })
        .shutdown_signal(stop.clone().cancelled_owned())
        .build()
        .unwrap();
    let run = tokio::spawn(worker.run());
    let first = Job::builder("Q").queue(&queue).build().unwrap();
    kit.push(first.clone()).unwrap();
    assert!(eventually(LONG, || kit.acked().contains(&first.jid)).await);
    assert!(kit.quiet(&wid));
    // The worker hears it on its next BEAT (every 200 ms here) and stops fetching everywhere.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let second = Job::builder("Q").queue(&queue).build().unwrap();
    kit.push(second.clone()).unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(kit.queue(&queue).len(), 1, "a quiet worker fetches nothing");
    assert!(
        !run.is_finished(),
        "a quiet worker keeps running (and beating)"
    );
    stop.cancel();
    let report = run.await.unwrap();
    assert_eq!(report.reason, StopReason::Shutdown);
}

#[tokio::test]
async fn terminate_from_the_server_stops_the_worker() {
    let Some(kit) = Server::kit_only("terminate_from_the_server_stops_the_worker").await else {
        return;
    };
    let queue = unique_queue("terminate");
    let wid = unique_queue("wid");
    let worker = worker_builder(&kit.url(), &queue)
        .wid(&wid)
        .register("T", |_job: Job| async { Ok::<(), BoxError>(()) })
        .build()
        .unwrap();
    let run = tokio::spawn(worker.run());
    assert!(eventually(LONG, || kit.worker(&wid).is_some()).await);
    assert!(kit.terminate(&wid));
    let report = tokio::time::timeout(LONG, run)
        .await
        .expect("stops")
        .unwrap();
    assert_eq!(report.reason, StopReason::Terminated);
    assert!(report.is_clean());
}

#[tokio::test]
async fn local_shutdown_lets_a_slow_job_finish_within_the_grace_period() {
    let Some(kit) =
        Server::kit_only("local_shutdown_lets_a_slow_job_finish_within_the_grace_period").await
    else {
        return;
    };
    let queue = unique_queue("grace");
    let started = CancellationToken::new();
    let stop = CancellationToken::new();
    let started2 = started.clone();
    let worker = worker_builder(&kit.url(), &queue)
        .register("Slow", move |_job: Job| {
            let started = started2.clone();
            async move {
                started.cancel();
                tokio::time::sleep(Duration::from_millis(500)).await;
                Ok::<(), BoxError>(())
            }
        })
        .shutdown_signal(stop.clone().cancelled_owned())
        .build()
        .unwrap();
    let job = Job::builder("Slow").queue(&queue).build().unwrap();
    kit.push(job.clone()).unwrap();
    let run = tokio::spawn(worker.run());
    started.cancelled().await;
    stop.cancel();
    let report = tokio::time::timeout(LONG, run).await.unwrap().unwrap();
    assert_eq!(report.reason, StopReason::Shutdown);
    assert!(report.is_clean());
    assert!(
        kit.acked().contains(&job.jid),
        "finished inside the grace period: ACKed"
    );
    assert!(kit.failed().is_empty());
}

#[tokio::test]
async fn local_shutdown_fails_a_job_past_the_grace_period() {
    let Some(kit) = Server::kit_only("local_shutdown_fails_a_job_past_the_grace_period").await
    else {
        return;
    };
    let queue = unique_queue("pastgrace");
    let started = CancellationToken::new();
    let cancelled_seen = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let (started2, seen2) = (started.clone(), Arc::clone(&cancelled_seen));
    let worker = worker_builder(&kit.url(), &queue)
        .grace_period(Duration::from_millis(300))
        .register_with_context("Stuck", move |_job: Job, ctx: faktory_tokio::JobContext| {
            let (started, seen) = (started2.clone(), Arc::clone(&seen2));
            async move {
                started.cancel();
                ctx.cancellation().cancelled().await;
                seen.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<()>().await;
                Ok::<(), BoxError>(())
            }
        })
        .shutdown_signal(stop.clone().cancelled_owned())
        .build()
        .unwrap();
    let job = Job::builder("Stuck").queue(&queue).build().unwrap();
    kit.push(job.clone()).unwrap();
    let run = tokio::spawn(worker.run());
    started.cancelled().await;
    stop.cancel();
    let report = tokio::time::timeout(LONG, run).await.unwrap().unwrap();
    assert_eq!(report.reason, StopReason::Shutdown);
    assert!(report.is_clean(), "{report:?}");
    let f = kit
        .failures()
        .into_iter()
        .find(|f| f.jid == job.jid)
        .expect("FAILed");
    assert_eq!(f.errtype, "Shutdown");
    assert!(matches!(f.outcome, FailOutcome::Retry(_)));
    assert_eq!(
        cancelled_seen.load(Ordering::SeqCst),
        1,
        "the handler saw its cancellation"
    );
}

#[derive(Clone, Copy)]
enum FaultKind {
    DropConnections,
    Restart,
}

/// Runs `total` jobs while the server drops every connection (or restarts) three times; every job
/// runs and every job that ran is ACKed. FETCHes in flight at a fault may have reserved a job that
/// the worker never received: those come back through reservation expiry, which the test reaches by
/// stepping the testkit's clock once the faults are over.
async fn jobs_survive(kind: FaultKind) {
    let kit = TestServer::builder()
        .fetch_timeout(Duration::from_millis(100))
        .clock(faktory_testkit::Clock::manual_now())
        .start()
        .await
        .unwrap();
    let total = 300;
    let queue = unique_queue("faults");
    let jobs: Vec<Job> = (0..total)
        .map(|i| {
            Job::builder("Count")
                .args((i,))
                .queue(&queue)
                .reserve_for(60)
                .build()
                .unwrap()
        })
        .collect();
    for j in &jobs {
        kit.push(j.clone()).unwrap();
    }
    let url = kit.url();
    let q = queue.clone();
    let run = tokio::spawn(async move {
        run_counting_worker(&url, &q, 8, total, Duration::from_millis(2)).await
    });
    let mut faults = 0;
    let mut ticks = 0u32;
    while !run.is_finished() {
        tokio::time::sleep(Duration::from_millis(40)).await;
        if faults < 3 {
            let hit = match kind {
                FaultKind::DropConnections => kit.drop_all_connections() > 0,
                FaultKind::Restart => kit.restart().await.is_ok(),
            };
            if hit {
                faults += 1;
            }
        } else {
            ticks += 1;
            if ticks % 5 == 0 {
                kit.advance(Duration::from_secs(20)).unwrap();
            }
        }
    }
    let (report, seen) = run.await.unwrap();
    assert_eq!(faults, 3, "the faults were injected mid-run");
    assert_eq!(report.reason, StopReason::Shutdown);
    assert!(
        report.is_clean(),
        "no finished job's outcome lost: {report:?}"
    );
    assert_eq!(seen.len(), total, "every job ran");
    let acked: std::collections::HashSet<String> = kit.acked().into_iter().collect();
    for j in &jobs {
        assert!(
            acked.contains(&j.jid),
            "{} ran and its ACK reached the server",
            j.jid
        );
    }
}

#[tokio::test]
async fn server_dropping_connections_mid_run_loses_no_ack() {
    if Server::kit_only("server_dropping_connections_mid_run_loses_no_ack")
        .await
        .is_none()
    {
        return;
    }
    jobs_survive(FaultKind::DropConnections).await;
}

#[tokio::test]
async fn server_restarting_mid_run_loses_no_ack() {
    if Server::kit_only("server_restarting_mid_run_loses_no_ack")
        .await
        .is_none()
    {
        return;
    }
    jobs_survive(FaultKind::Restart).await;
}
