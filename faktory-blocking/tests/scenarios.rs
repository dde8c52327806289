//! The adapter scenario list, blocking. Each scenario runs against `faktory-testkit` (on a tokio
//! runtime of the test support's own), or against the real server named by `FAKTORY_URL` when that
//! is set (scenarios that need fault injection or operator actions then print `SKIPPED <name>` and
//! return). `every_tokio_scenario_is_here` keeps this list in step with faktory-tokio's.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod support;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use faktory_blocking::{
    BoxError, CancellationToken, Client, Error, Fail, Job, MutateFilter, MutateOp, MutateTarget,
    ShutdownHandle, StopReason, StopReport, Worker,
};
use faktory_proto::command::WorkerState;
use faktory_testkit::{FailOutcome, Fault, TestServer};
use serde_json::json;
use support::{Kit, Server, eventually, unique_queue, within};

const LONG: Duration = Duration::from_secs(30);

fn client(server: &Server) -> Client {
    Client::connect_to(&server.url()).expect("client connects")
}

fn consumer(server: &Server, wid: &str) -> Client {
    Client::builder()
        .url(&server.url())
        .unwrap()
        .wid(wid)
        .connect()
        .expect("consumer connects")
}

/// A worker builder pointed at `url` with test-friendly timings.
fn worker_builder(url: &str, queue: &str) -> faktory_blocking::WorkerBuilder {
    Worker::builder()
        .url(url)
        .unwrap()
        .queues([queue.to_owned()])
        .heartbeat_interval(Duration::from_millis(200))
        .grace_period(Duration::from_secs(5))
}

/// Runs the worker on a thread of its own.
fn spawn_worker(worker: Worker) -> JoinHandle<StopReport> {
    std::thread::spawn(move || worker.run())
}

/// Joins the worker's thread, failing the test if it does not stop within `limit`.
fn join_within(run: JoinHandle<StopReport>, limit: Duration) -> StopReport {
    assert!(eventually(limit, || run.is_finished()), "the worker stops");
    run.join().unwrap()
}

// -------------------------------------------------------------------------------------------------
// the list itself

/// The names of the functions marked with `attr` in a test file's source.
fn test_names(source: &str, attr: &str, fn_prefix: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut marked = false;
    for line in source.lines().map(str::trim) {
        if line == attr {
            marked = true;
        } else if marked && line.starts_with("#[") {
            continue;
        } else if marked {
            if let Some(rest) = line.strip_prefix(fn_prefix) {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                names.insert(name);
            }
            marked = false;
        }
    }
    names
}

#[test]
fn every_tokio_scenario_is_here() {
    let tokio = test_names(
        include_str!("../../faktory-tokio/tests/scenarios.rs"),
        "#[tokio::test]",
        "async fn ",
    );
    let here = test_names(include_str!("scenarios.rs"), "#[test]", "fn ");
    assert!(
        tokio.len() >= 20,
        "found the tokio scenarios: {tokio:?} (did their format change?)"
    );
    let missing: Vec<&String> = tokio.difference(&here).collect();
    assert!(
        missing.is_empty(),
        "tokio scenarios missing here: {missing:?}"
    );
    assert!(here.contains("every_tokio_scenario_is_here"));
}

// -------------------------------------------------------------------------------------------------
// client scenarios

#[test]
fn push_and_fetch_every_job_field() {
    let server = Server::start();
    let queue = unique_queue("fields");
    let c = client(&server);
    let job = Job::builder("EveryField")
        .args((1, "two", json!({"three": 3}), [true, false]))
        .queue(&queue)
        .retry(3)
        .reserve_for(600)
        .backtrace(7)
        .custom("locale", "fr")
        .custom("nested", json!({"a": [1, 2]}))
        .at(faktory_blocking::Timestamp::parse("2000-01-01T00:00:00Z").unwrap())
        .created_at(faktory_blocking::Timestamp::parse("1999-12-31T23:59:59.5Z").unwrap())
        .build()
        .unwrap();
    c.push(job.clone()).unwrap();

    let w = consumer(&server, &unique_queue("wid"));
    let got = w.fetch(&[queue.as_str()]).unwrap().expect("a job");
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
    w.ack(&got.jid).unwrap();
    if let Some(kit) = server.kit() {
        assert!(kit.acked().contains(&job.jid));
    }
}

#[test]
fn push_bulk_reports_partial_failures() {
    let server = Server::start();
    let queue = unique_queue("bulk");
    let c = client(&server);
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

    let failed = c.push_bulk(jobs).unwrap();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(failed.contains_key("short"));
    assert!(failed.contains_key(&bad_queue_jid));
    let info = c.info().unwrap();
    assert_eq!(
        info.faktory.queues.get(&queue),
        Some(&2500),
        "2,500 jobs over three PUSHB calls"
    );
    c.queue_remove(&[queue.as_str()]).unwrap();
}

#[test]
fn queue_pause_resume_remove_latency() {
    let server = Server::start();
    let queue = unique_queue("queues");
    let c = client(&server);
    c.push(Job::builder("Q").queue(&queue).build().unwrap())
        .unwrap();
    c.queue_pause(&[queue.as_str()]).unwrap();
    let w = consumer(&server, &unique_queue("wid"));
    assert!(
        w.fetch(&[queue.as_str()]).unwrap().is_none(),
        "paused queue yields nothing"
    );
    c.queue_resume(&[queue.as_str()]).unwrap();
    let latency = c
        .queue_latency(&[queue.as_str(), "no-such-queue-xyz"])
        .unwrap();
    assert!(latency[queue.as_str()] >= 0.0);
    assert_eq!(latency["no-such-queue-xyz"], 0.0);
    c.queue_remove(&[queue.as_str()]).unwrap();
    let info = c.info().unwrap();
    assert!(
        !info.faktory.queues.contains_key(&queue),
        "removed queue is forgotten"
    );
    assert!(
        w.fetch(&[queue.as_str()]).unwrap().is_none(),
        "its job is gone"
    );
}

#[test]
fn mutate_moves_jobs_between_sets() {
    let server = Server::start();
    let queue = unique_queue("mutate");
    let c = client(&server);
    let w = consumer(&server, &unique_queue("wid"));
    let job = Job::builder("M").queue(&queue).retry(5).build().unwrap();
    c.push(job.clone()).unwrap();
    let got = w.fetch(&[queue.as_str()]).unwrap().unwrap();
    w.fail(Fail {
        jid: got.jid,
        errtype: "Boom".into(),
        message: "first failure".into(),
        backtrace: vec![],
    })
    .unwrap();
    let only_this = Some(MutateFilter {
        jids: vec![job.jid.clone()],
        ..MutateFilter::default()
    });
    // retries → dead → back on its queue.
    c.mutate_set(MutateOp::Kill, MutateTarget::Retries, only_this.clone())
        .unwrap();
    if let Some(kit) = server.kit() {
        assert!(kit.dead().iter().any(|e| e.job.jid == job.jid));
        assert!(kit.retries().is_empty());
    }
    c.mutate_set(MutateOp::Requeue, MutateTarget::Dead, only_this)
        .unwrap();
    let again = w.fetch(&[queue.as_str()]).unwrap().expect("requeued job");
    assert_eq!(again.jid, job.jid);
    let failure = again
        .failure
        .expect("the failure record travels with the job");
    assert_eq!(failure.message.as_deref(), Some("first failure"));
    w.ack(&again.jid).unwrap();
    // discard with a jobtype filter on an empty set is fine.
    c.mutate_set(
        MutateOp::Discard,
        MutateTarget::Scheduled,
        Some(MutateFilter {
            jobtype: Some("M".into()),
            ..MutateFilter::default()
        }),
    )
    .unwrap();
}

#[test]
fn consumer_commands_fetch_ack_fail_beat() {
    let Some(kit) = Server::kit_only("consumer_commands_fetch_ack_fail_beat") else {
        return;
    };
    let server = Server::Kit(kit);
    let queue = unique_queue("consumer");
    let wid = unique_queue("wid");
    let c = client(&server);
    let w = consumer(&server, &wid);
    assert_eq!(w.beat(Some(1234), None).unwrap(), None);
    c.push(Job::builder("C").queue(&queue).build().unwrap())
        .unwrap();
    c.push(Job::builder("C").queue(&queue).build().unwrap())
        .unwrap();
    let a = w.fetch(&[queue.as_str()]).unwrap().unwrap();
    let b = w.fetch(&[queue.as_str()]).unwrap().unwrap();
    w.ack(&a.jid).unwrap();
    w.fail(Fail {
        jid: b.jid.clone(),
        errtype: "E".into(),
        message: "m".into(),
        backtrace: vec!["x.rs:1".into()],
    })
    .unwrap();
    let err = w
        .fail(Fail {
            jid: b.jid,
            errtype: "E".into(),
            message: "again".into(),
            backtrace: vec![],
        })
        .unwrap_err();
    assert!(err.server_error().unwrap().is_job_not_found(), "{err}");
    let kit = server.kit().unwrap();
    assert_eq!(kit.worker(&wid).unwrap().rss_kb, 1234);
    assert!(kit.quiet(&wid));
    assert_eq!(w.beat(None, None).unwrap(), Some(WorkerState::Quiet));
    // Without a wid there is nothing to BEAT for.
    assert!(matches!(c.beat(None, None), Err(Error::Usage(_))));
}

#[test]
fn in_flight_call_fails_with_unknown_outcome_then_reconnects() {
    let Some(kit) = Server::kit_only("in_flight_call_fails_with_unknown_outcome_then_reconnects")
    else {
        return;
    };
    let queue = unique_queue("inflight");
    let c = Client::connect_to(&kit.url()).unwrap();
    c.info().unwrap();
    let conn = kit.connections()[0].id;
    assert!(kit.inject(conn, Fault::DropAfterCommand(1)));
    let job = Job::builder("F").queue(&queue).build().unwrap();
    let err = c.push(job).unwrap_err();
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
        .unwrap();
    assert_eq!(kit.queue(&queue).len(), 2);
}

#[test]
fn client_survives_a_server_restart() {
    let Some(kit) = Server::kit_only("client_survives_a_server_restart") else {
        return;
    };
    let queue = unique_queue("restart");
    let c = Client::connect_to(&kit.url()).unwrap();
    c.push(Job::builder("R").queue(&queue).build().unwrap())
        .unwrap();
    kit.restart().unwrap();
    c.push(Job::builder("R").queue(&queue).build().unwrap())
        .unwrap();
    assert_eq!(
        kit.queue(&queue).len(),
        2,
        "state kept across the restart, client reconnected"
    );
}

#[test]
fn concurrent_calls_share_one_connection() {
    let Some(kit) = Server::kit_only("concurrent_calls_share_one_connection") else {
        return;
    };
    let queue = unique_queue("pipeline");
    let c = Client::connect_to(&kit.url()).unwrap();
    let mut threads = Vec::new();
    for i in 0..200 {
        let c = c.clone();
        let q = queue.clone();
        threads.push(std::thread::spawn(move || {
            c.push(Job::builder("P").args((i,)).queue(q).build().unwrap())
        }));
    }
    for t in threads {
        t.join().unwrap().unwrap();
    }
    assert_eq!(kit.queue(&queue).len(), 200);
    assert_eq!(kit.connection_count(), 1, "one connection, pipelined");
}

#[test]
fn password_server() {
    let kit = Kit::start_with(TestServer::builder().password("s3cret pw"));
    let c = Client::connect_to(&kit.url()).expect("password from the URL");
    c.push(Job::new("Pw", vec![])).unwrap();
    let addr = kit.addr();
    let err = Client::builder()
        .url(&format!("tcp://:wrong@{addr}"))
        .unwrap()
        .connect()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Connection { source: faktory_proto::client::ConnectionError::Auth(e), .. } if e.is_invalid_password()),
        "{err:?}"
    );
    let err = Client::connect_to(&format!("tcp://{addr}")).unwrap_err();
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

#[test]
fn tls_server() {
    // A short FETCH block: the worker below waits for its FETCHes' replies when it shuts down.
    let kit = Kit::start();
    let (proxy, cert) = support::tls_proxy(kit.addr());
    let mut roots = faktory_blocking::rustls::RootCertStore::empty();
    roots.add(cert.into()).unwrap();
    let url = format!("tcp+tls://localhost:{}", proxy.port());
    let c = Client::builder()
        .url(&url)
        .unwrap()
        .tls(faktory_blocking::TlsConfig::RootStore(roots.clone()))
        .connect()
        .expect("TLS with the self-signed root");
    c.push(Job::builder("Tls").queue("tlsq").build().unwrap())
        .unwrap();
    assert_eq!(kit.queue("tlsq").len(), 1);
    // Default verification (webpki roots) must refuse a self-signed certificate.
    let err = Client::connect_to(&url).unwrap_err();
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

    // A worker over TLS: its reader threads and the engine's writes share each TLS session.
    let stop = ShutdownHandle::new();
    let worker = Worker::builder()
        .url(&url)
        .unwrap()
        .tls(faktory_blocking::TlsConfig::RootStore(roots))
        .queues(["tlsq"])
        .register("Tls", |_job: Job| Ok::<(), BoxError>(()))
        .shutdown_signal(stop.clone())
        .build()
        .unwrap();
    let run = spawn_worker(worker);
    assert!(eventually(LONG, || kit.acked().len() == 1));
    stop.shutdown();
    let report = join_within(run, LONG);
    assert_eq!(report.reason, StopReason::Shutdown);
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn garbage_server_gives_a_typed_error_not_a_hang() {
    let addr = support::garbage_server(b"HTTP/1.1 400 Bad Request\r\n\r\n");
    let err = within(Duration::from_secs(5), move || {
        Client::connect_to(&format!("tcp://{addr}"))
    })
    .unwrap_err();
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");

    let kit = Kit::start_with(TestServer::builder());
    let c = Client::connect_to(&kit.url()).unwrap();
    c.info().unwrap();
    let conn = kit.connections()[0].id;
    kit.inject(
        conn,
        Fault::ReplaceReply {
            nth: 1,
            bytes: bytes::Bytes::from_static(b"?garbage\r\n"),
        },
    );
    let c2 = c;
    let err = within(Duration::from_secs(5), move || c2.info()).unwrap_err();
    assert!(matches!(err, Error::OutcomeUnknown { .. }), "{err:?}");
}

// -------------------------------------------------------------------------------------------------
// worker scenarios

/// Runs a worker until `expect` distinct jobs were handled or `LONG` passes; returns the handled
/// jids with how often each ran.
fn run_counting_worker(
    url: &str,
    queue: &str,
    concurrency: usize,
    expect: usize,
    delay: Duration,
) -> (StopReport, HashMap<String, usize>) {
    let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let stop = ShutdownHandle::new();
    let (seen2, stop2) = (Arc::clone(&seen), stop.clone());
    let worker = worker_builder(url, queue)
        .concurrency(concurrency)
        .register("Count", move |job: Job| {
            if !delay.is_zero() {
                std::thread::sleep(delay);
            }
            let distinct = {
                let mut seen = seen2.lock().unwrap();
                *seen.entry(job.jid).or_default() += 1;
                seen.len()
            };
            if distinct >= expect {
                stop2.shutdown();
            }
            Ok::<(), BoxError>(())
        })
        .shutdown_signal(stop.clone())
        .build()
        .unwrap();
    let done = CancellationToken::new();
    let watchdog = {
        let (done, stop) = (done.clone(), stop);
        std::thread::spawn(move || {
            if !done.wait_timeout(LONG) {
                stop.shutdown();
            }
        })
    };
    let report = worker.run();
    done.cancel();
    watchdog.join().unwrap();
    let seen = seen.lock().unwrap().clone();
    (report, seen)
}

#[test]
fn worker_runs_1000_jobs_at_concurrency_20_each_acked_once() {
    let server = Server::start();
    let queue = unique_queue("w1000");
    let c = client(&server);
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
    assert!(c.push_bulk(jobs).unwrap().is_empty());

    let (report, seen) = run_counting_worker(&server.url(), &queue, 20, 1000, Duration::ZERO);
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
            eventually(Duration::from_secs(5), || kit.connection_count() <= 1),
            "worker closed its connections: {:?}",
            kit.connections()
        );
    } else {
        let info = c.info().unwrap();
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
fn fail_one_job(
    server: &Server,
    jobtype: &str,
    register: impl FnOnce(faktory_blocking::WorkerBuilder) -> faktory_blocking::WorkerBuilder,
) -> faktory_proto::Failure {
    let queue = unique_queue("fail");
    let c = client(server);
    let job = Job::builder(jobtype)
        .queue(&queue)
        .backtrace(10)
        .retry(5)
        .build()
        .unwrap();
    c.push(job.clone()).unwrap();
    let stop = ShutdownHandle::new();
    let worker = register(worker_builder(&server.url(), &queue))
        .shutdown_signal(stop.clone())
        .build()
        .unwrap();
    let run = spawn_worker(worker);
    let found = match server.kit() {
        Some(kit) => eventually(LONG, || kit.failed().contains(&job.jid)),
        None => {
            std::thread::sleep(Duration::from_secs(3));
            true
        }
    };
    stop.shutdown();
    let report = join_within(run, LONG);
    assert!(found, "the job was FAILed");
    assert!(report.is_clean(), "{report:?}");
    let only = Some(MutateFilter {
        jids: vec![job.jid],
        ..MutateFilter::default()
    });
    c.mutate_set(MutateOp::Requeue, MutateTarget::Retries, only)
        .unwrap();
    let w = consumer(server, &unique_queue("wid"));
    let again = w
        .fetch(&[queue.as_str()])
        .unwrap()
        .expect("requeued from retries");
    w.ack(&again.jid).unwrap();
    again.failure.expect("failure record")
}

#[test]
fn handler_error_becomes_fail_with_message_and_backtrace() {
    let server = Server::start();
    let failure = fail_one_job(&server, "Charge", |b| {
        b.register("Charge", |_job: Job| Err::<(), Outer>(Outer(Inner)))
    });
    assert_eq!(failure.errtype.as_deref(), Some("Outer"));
    assert_eq!(failure.message.as_deref(), Some("charging the card failed"));
    assert_eq!(
        failure.backtrace,
        Some(vec!["caused by: gateway timeout".to_owned()])
    );
}

#[test]
fn handler_panic_becomes_fail() {
    let server = Server::start();
    let failure = fail_one_job(&server, "Boom", |b| {
        b.register("Boom", |job: Job| {
            if job.jobtype == "Boom" {
                panic!("handler exploded");
            }
            Ok::<(), BoxError>(())
        })
    });
    assert_eq!(failure.errtype.as_deref(), Some("panic"));
    assert_eq!(failure.message.as_deref(), Some("handler exploded"));
}

#[test]
fn blocking_handler_and_unknown_jobtype() {
    let Some(kit) = Server::kit_only("blocking_handler_and_unknown_jobtype") else {
        return;
    };
    let queue = unique_queue("blocking");
    let ran = Arc::new(AtomicUsize::new(0));
    let ran2 = Arc::clone(&ran);
    let stop = ShutdownHandle::new();
    let worker = worker_builder(&kit.url(), &queue)
        .register_blocking(
            "Sync",
            move |job: Job, ctx: faktory_blocking::JobContext| {
                assert_eq!(ctx.jid(), job.jid);
                assert_eq!(ctx.jobtype(), "Sync");
                std::thread::sleep(Duration::from_millis(20));
                ran2.fetch_add(1, Ordering::SeqCst);
                Ok::<(), BoxError>(())
            },
        )
        .shutdown_signal(stop.clone())
        .build()
        .unwrap();
    let sync_job = Job::builder("Sync").queue(&queue).build().unwrap();
    let unknown = Job::builder("Nobody").queue(&queue).build().unwrap();
    kit.push(sync_job.clone()).unwrap();
    kit.push(unknown.clone()).unwrap();
    let run = spawn_worker(worker);
    assert!(eventually(LONG, || kit.acked().contains(&sync_job.jid)
        && kit.failed().contains(&unknown.jid)));
    stop.shutdown();
    join_within(run, LONG);
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    let f = kit
        .failures()
        .into_iter()
        .find(|f| f.jid == unknown.jid)
        .unwrap();
    assert_eq!(f.errtype, "UnknownJobtype");
}

#[test]
fn quiet_from_the_server_stops_fetching() {
    let Some(kit) = Server::kit_only("quiet_from_the_server_stops_fetching") else {
        return;
    };
    let queue = unique_queue("quiet");
    let wid = unique_queue("wid");
    let stop = ShutdownHandle::new();
    let worker = worker_builder(&kit.url(), &queue)
        .wid(&wid)
        .register("Q", |_job: Job| Ok::<(), BoxError>(()))
        .shutdown_signal(stop.clone())
        .build()
        .unwrap();
    let run = spawn_worker(worker);
    let first = Job::builder("Q").queue(&queue).build().unwrap();
    kit.push(first.clone()).unwrap();
    assert!(eventually(LONG, || kit.acked().contains(&first.jid)));
    assert!(kit.quiet(&wid));
    // The worker hears it on its next BEAT (every 200 ms here) and stops fetching everywhere.
    std::thread::sleep(Duration::from_millis(600));
    let second = Job::builder("Q").queue(&queue).build().unwrap();
    kit.push(second).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(kit.queue(&queue).len(), 1, "a quiet worker fetches nothing");
    assert!(
        !run.is_finished(),
        "a quiet worker keeps running (and beating)"
    );
    stop.shutdown();
    let report = join_within(run, LONG);
    assert_eq!(report.reason, StopReason::Shutdown);
}

#[test]
fn terminate_from_the_server_stops_the_worker() {
    let Some(kit) = Server::kit_only("terminate_from_the_server_stops_the_worker") else {
        return;
    };
    let queue = unique_queue("terminate");
    let wid = unique_queue("wid");
    let worker = worker_builder(&kit.url(), &queue)
        .wid(&wid)
        .register("T", |_job: Job| Ok::<(), BoxError>(()))
        .build()
        .unwrap();
    let run = spawn_worker(worker);
    assert!(eventually(LONG, || kit.worker(&wid).is_some()));
    assert!(kit.terminate(&wid));
    let report = join_within(run, LONG);
    assert_eq!(report.reason, StopReason::Terminated);
    assert!(report.is_clean());
}

#[test]
fn local_shutdown_lets_a_slow_job_finish_within_the_grace_period() {
    let Some(kit) =
        Server::kit_only("local_shutdown_lets_a_slow_job_finish_within_the_grace_period")
    else {
        return;
    };
    let queue = unique_queue("grace");
    let started = CancellationToken::new();
    let started2 = started.clone();
    let worker = worker_builder(&kit.url(), &queue)
        .register("Slow", move |_job: Job| {
            started2.cancel();
            std::thread::sleep(Duration::from_millis(500));
            Ok::<(), BoxError>(())
        })
        .build()
        .unwrap();
    // The worker's own handle, taken before it runs.
    let stop = worker.shutdown_handle();
    let job = Job::builder("Slow").queue(&queue).build().unwrap();
    kit.push(job.clone()).unwrap();
    let run = spawn_worker(worker);
    assert!(started.wait_timeout(LONG), "the job started");
    stop.shutdown();
    assert!(stop.is_shutdown());
    let report = join_within(run, LONG);
    assert_eq!(report.reason, StopReason::Shutdown);
    assert!(report.is_clean());
    assert!(
        kit.acked().contains(&job.jid),
        "finished inside the grace period: ACKed"
    );
    assert!(kit.failed().is_empty());
}

#[test]
fn local_shutdown_fails_a_job_past_the_grace_period() {
    let Some(kit) = Server::kit_only("local_shutdown_fails_a_job_past_the_grace_period") else {
        return;
    };
    let queue = unique_queue("pastgrace");
    let started = CancellationToken::new();
    let cancelled_seen = Arc::new(AtomicUsize::new(0));
    // The handler ignores its cancellation (it keeps running) until the test ends.
    let release = CancellationToken::new();
    let stop = ShutdownHandle::new();
    let (started2, seen2, release2) = (
        started.clone(),
        Arc::clone(&cancelled_seen),
        release.clone(),
    );
    let worker = worker_builder(&kit.url(), &queue)
        .grace_period(Duration::from_millis(300))
        .register_with_context(
            "Stuck",
            move |_job: Job, ctx: faktory_blocking::JobContext| {
                started2.cancel();
                ctx.cancellation().wait();
                assert!(ctx.is_cancelled());
                seen2.fetch_add(1, Ordering::SeqCst);
                release2.wait_timeout(LONG);
                Ok::<(), BoxError>(())
            },
        )
        .shutdown_signal(stop.clone())
        .build()
        .unwrap();
    let job = Job::builder("Stuck").queue(&queue).build().unwrap();
    kit.push(job.clone()).unwrap();
    let run = spawn_worker(worker);
    assert!(started.wait_timeout(LONG), "the job started");
    stop.shutdown();
    let report = join_within(run, LONG);
    assert_eq!(report.reason, StopReason::Shutdown);
    assert!(report.is_clean(), "{report:?}");
    let f = kit
        .failures()
        .into_iter()
        .find(|f| f.jid == job.jid)
        .expect("FAILed");
    assert_eq!(f.errtype, "Shutdown");
    assert!(matches!(f.outcome, FailOutcome::Retry(_)));
    assert!(
        eventually(LONG, || cancelled_seen.load(Ordering::SeqCst) == 1),
        "the handler saw its cancellation"
    );
    release.cancel();
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
fn jobs_survive(kind: FaultKind) {
    let kit = Kit::start_with(
        TestServer::builder()
            .fetch_timeout(Duration::from_millis(100))
            .clock(faktory_testkit::Clock::manual_now()),
    );
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
    let q = queue;
    let run = std::thread::spawn(move || {
        run_counting_worker(&url, &q, 8, total, Duration::from_millis(2))
    });
    let mut faults = 0;
    let mut ticks = 0u32;
    while !run.is_finished() {
        std::thread::sleep(Duration::from_millis(40));
        if faults < 3 {
            let hit = match kind {
                FaultKind::DropConnections => kit.drop_all_connections() > 0,
                FaultKind::Restart => kit.restart().is_ok(),
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
    let (report, seen) = run.join().unwrap();
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

#[test]
fn server_dropping_connections_mid_run_loses_no_ack() {
    if Server::kit_only("server_dropping_connections_mid_run_loses_no_ack").is_none() {
        return;
    }
    jobs_survive(FaultKind::DropConnections);
}

#[test]
fn server_restarting_mid_run_loses_no_ack() {
    if Server::kit_only("server_restarting_mid_run_loses_no_ack").is_none() {
        return;
    }
    jobs_survive(FaultKind::Restart);
}

// -------------------------------------------------------------------------------------------------
// blocking-only scenarios: user-supplied streams, close and drop, the shutdown handle

#[test]
fn handles_are_shareable_across_threads() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    fn sendable<T: Send + 'static>() {}
    shareable::<Client>();
    shareable::<faktory_blocking::ShutdownHandle>();
    shareable::<CancellationToken>();
    shareable::<faktory_blocking::JobContext>();
    sendable::<Worker>();
    sendable::<Error>();
}

/// A stream the client cannot split: it is read on the I/O thread, only while replies are due.
struct Opaque(std::net::TcpStream);

impl std::io::Read for Opaque {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl std::io::Write for Opaque {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[test]
fn client_over_a_user_stream_pipelines_and_cannot_reconnect() {
    let Some(kit) = Server::kit_only("client_over_a_user_stream_pipelines_and_cannot_reconnect")
    else {
        return;
    };
    let queue = unique_queue("userstream");
    let tcp = std::net::TcpStream::connect(kit.addr()).unwrap();
    let c = Client::builder()
        .request_timeout(Duration::from_secs(5))
        .connect_with_stream(Opaque(tcp))
        .unwrap();
    let threads: Vec<_> = (0..20)
        .map(|t| {
            let (c, q) = (c.clone(), queue.clone());
            std::thread::spawn(move || {
                for i in 0..5 {
                    c.push(Job::builder("U").args((t, i)).queue(&q).build().unwrap())
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(kit.queue(&queue).len(), 100);
    assert_eq!(c.info().unwrap().faktory.queues.get(&queue), Some(&100));
    assert_eq!(kit.connection_count(), 1, "one connection, pipelined");

    // The server drops it: the next call fails (the stream was read only while replies were due,
    // so the EOF is seen with this call), and nothing reconnects a user's stream.
    assert_eq!(kit.drop_all_connections(), 1);
    assert!(eventually(LONG, || kit.connection_count() == 0));
    let c2 = c.clone();
    let err = within(Duration::from_secs(10), move || c2.info()).unwrap_err();
    assert!(
        matches!(err, Error::OutcomeUnknown { .. } | Error::Connection { .. }),
        "{err:?}"
    );
    let err = within(Duration::from_secs(10), move || c.info()).unwrap_err();
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
}

#[test]
fn client_over_a_user_tcp_stream_is_full_duplex() {
    let Some(kit) = Server::kit_only("client_over_a_user_tcp_stream_is_full_duplex") else {
        return;
    };
    let queue = unique_queue("usertcp");
    let tcp = std::net::TcpStream::connect(kit.addr()).unwrap();
    let c = Client::builder().connect_with_stream(tcp).unwrap();
    c.push(Job::builder("T").queue(&queue).build().unwrap())
        .unwrap();
    assert_eq!(kit.queue(&queue).len(), 1);
    // Its reader thread reports the server's close while the client is idle: the next call knows
    // the connection is gone and, with no way to reopen it, fails without sending anything.
    assert_eq!(kit.drop_all_connections(), 1);
    assert!(eventually(LONG, || kit.connection_count() == 0));
    let err = c
        .push(Job::builder("T").queue(&queue).build().unwrap())
        .unwrap_err();
    assert!(
        matches!(err, Error::Connection { .. } | Error::OutcomeUnknown { .. }),
        "{err:?}"
    );
    assert_eq!(kit.queue(&queue).len(), 1);
}

#[test]
fn a_refused_connect_fails_fast_and_names_its_phase() {
    // A port nobody listens on (bound, then closed).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let started = std::time::Instant::now();
    let err = within(Duration::from_secs(5), move || {
        Client::connect_to(&format!("tcp://127.0.0.1:{port}"))
    })
    .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Connection {
                server,
                source: faktory_proto::client::ConnectionError::Connect(f),
            } if f.phase == faktory_proto::client::ConnectPhase::Tcp
                && !f.permanent
                && *server == format!("127.0.0.1:{port}")
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "an eager connect fails fast, without retrying"
    );
}

#[test]
fn close_says_end_and_later_calls_fail() {
    let Some(kit) = Server::kit_only("close_says_end_and_later_calls_fail") else {
        return;
    };
    let c = Client::connect_to(&kit.url()).unwrap();
    let other = c.clone();
    c.info().unwrap();
    assert_eq!(kit.connection_count(), 1);
    c.close().unwrap();
    assert!(eventually(LONG, || kit.connection_count() == 0));
    assert!(matches!(c.info(), Err(Error::Closed)));
    assert!(matches!(other.info(), Err(Error::Closed)), "clones too");
    assert!(matches!(c.close(), Err(Error::Closed)));
}

#[test]
fn dropping_the_last_client_says_end() {
    let Some(kit) = Server::kit_only("dropping_the_last_client_says_end") else {
        return;
    };
    let c = Client::connect_to(&kit.url()).unwrap();
    let other = c.clone();
    c.info().unwrap();
    drop(c);
    other.info().unwrap();
    assert_eq!(kit.connection_count(), 1, "a clone keeps the connection");
    drop(other);
    assert!(
        eventually(LONG, || kit.connection_count() == 0),
        "the I/O thread said END and closed"
    );
}

#[test]
fn shutdown_before_run_stops_at_once() {
    let server = Server::start();
    let queue = unique_queue("early");
    let stop = ShutdownHandle::new();
    stop.shutdown();
    let worker = worker_builder(&server.url(), &queue)
        .register("E", |_job: Job| Ok::<(), BoxError>(()))
        .shutdown_signal(stop)
        .build()
        .unwrap();
    let report = join_within(spawn_worker(worker), LONG);
    assert_eq!(report.reason, StopReason::Shutdown);
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn shutdown_now_cancels_running_jobs_without_the_grace_period() {
    let Some(kit) = Server::kit_only("shutdown_now_cancels_running_jobs_without_the_grace_period")
    else {
        return;
    };
    let queue = unique_queue("now");
    let started = CancellationToken::new();
    let release = CancellationToken::new();
    let (started2, release2) = (started.clone(), release.clone());
    let worker = worker_builder(&kit.url(), &queue)
        // Longer than `join_within` waits: only `shutdown_now` can end it in time.
        .grace_period(Duration::from_secs(120))
        .register_with_context(
            "Long",
            move |_job: Job, ctx: faktory_blocking::JobContext| {
                started2.cancel();
                ctx.cancellation().wait();
                release2.wait_timeout(LONG);
                Ok::<(), BoxError>(())
            },
        )
        .build()
        .unwrap();
    let stop = worker.shutdown_handle();
    let job = Job::builder("Long").queue(&queue).build().unwrap();
    kit.push(job.clone()).unwrap();
    let run = spawn_worker(worker);
    assert!(started.wait_timeout(LONG), "the job started");
    stop.shutdown();
    stop.shutdown_now();
    let report = join_within(run, LONG);
    assert_eq!(report.reason, StopReason::Shutdown);
    assert!(report.is_clean(), "{report:?}");
    let f = kit
        .failures()
        .into_iter()
        .find(|f| f.jid == job.jid)
        .expect("FAILed");
    assert_eq!(f.errtype, "Shutdown");
    release.cancel();
}
