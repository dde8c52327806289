//! Worker scenarios: throughput, handler errors and panics, operator actions, shutdown, faults.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use faktory_proto::command::{MutateFilter, MutateOp, MutateTarget};
use faktory_proto::worker::{StopReason, StopReport};
use faktory_proto::{Failure, Job};
use faktory_testkit::{Clock, FailOutcome, TestServer};

use super::{client, consumer};
use crate::harness::{
    ClientApi, Counter, Handler, Harness, Latch, Registration, Shutdown, Step, Stop, Tally, Task,
    WorkerApi, WorkerSpec,
};
use crate::support::{Kit, LONG, Server, eventually, join_within, unique_queue};

/// Builds the worker `spec` describes and runs it as a task of its own.
fn start<H: Harness>(spec: WorkerSpec) -> (Task<StopReport>, H::Stop) {
    let (worker, stop) = H::worker(spec).unwrap();
    (H::spawn(worker.run()), stop)
}

/// A worker that counts the runs of each jid and stops once `expect` distinct jobs ran, or once
/// [`LONG`] passed whatever happens (its watchdog).
struct CountingWorker {
    run: Task<StopReport>,
    watchdog: Task<()>,
    tally: Tally,
}

impl CountingWorker {
    fn start<H: Harness>(
        url: &str,
        queue: &str,
        concurrency: usize,
        expect: usize,
        delay: Duration,
    ) -> Self {
        let tally = Tally::new();
        let mut handler = Handler::new(Registration::Plain);
        if !delay.is_zero() {
            handler = handler.then(Step::Sleep(delay));
        }
        let handler = handler.then(Step::Tally {
            tally: tally.clone(),
            stop_at: expect,
        });
        let spec = WorkerSpec::new(url, queue)
            .concurrency(concurrency)
            .handler("Count", handler);
        let (worker, stop) = H::worker(spec).unwrap();
        let done = Latch::new();
        let ended = done.clone();
        let run = H::spawn(async move {
            let report = worker.run().await;
            ended.fire();
            report
        });
        let watchdog = H::spawn(async move {
            if !eventually::<H>(LONG, || done.is_fired()).await {
                stop.stop();
            }
        });
        CountingWorker {
            run,
            watchdog,
            tally,
        }
    }

    fn is_finished(&self) -> bool {
        self.run.is_finished()
    }

    /// The report and jid → runs.
    async fn finish(self) -> (StopReport, HashMap<String, usize>) {
        let report = self.run.await;
        self.watchdog.await;
        (report, self.tally.snapshot())
    }
}

/// 1,000 jobs at concurrency 20: each runs once, each is ACKed once, and the worker closes its
/// connections when it stops.
pub async fn worker_runs_1000_jobs_at_concurrency_20_each_acked_once<H: Harness>() {
    let server = Server::start().await;
    let queue = unique_queue("w1000");
    let c = client::<H>(&server).await;
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

    let (report, seen) =
        CountingWorker::start::<H>(&server.url(), &queue, 20, 1000, Duration::ZERO)
            .finish()
            .await;
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
            eventually::<H>(Duration::from_secs(5), || kit.connection_count() <= 1).await,
            "worker closed its connections: {:?}",
            kit.connections()
        );
    } else {
        let info = c.info().await.unwrap();
        assert_eq!(info.faktory.queues.get(&queue).copied().unwrap_or(0), 0);
    }
}

/// Pushes one job of `jobtype` with `backtrace` lines, runs a worker with `handler` until the job
/// was FAILed, and returns the failure record the server holds (fetched back through MUTATE requeue,
/// so this also works against a real server).
async fn fail_one_job<H: Harness>(server: &Server, jobtype: &str, handler: Handler) -> Failure {
    let queue = unique_queue("fail");
    let c = client::<H>(server).await;
    let job = Job::builder(jobtype)
        .queue(&queue)
        .backtrace(10)
        .retry(5)
        .build()
        .unwrap();
    c.push(job.clone()).await.unwrap();
    let (run, stop) = start::<H>(WorkerSpec::new(server.url(), &queue).handler(jobtype, handler));
    let found = match server.kit() {
        Some(kit) => eventually::<H>(LONG, || kit.failed().contains(&job.jid)).await,
        None => {
            H::sleep(Duration::from_secs(3)).await;
            true
        }
    };
    stop.stop();
    let report = join_within::<H>(run, LONG).await;
    assert!(found, "the job was FAILed");
    assert!(report.is_clean(), "{report:?}");
    let only = Some(MutateFilter {
        jids: vec![job.jid.clone()],
        ..MutateFilter::default()
    });
    c.mutate_set(MutateOp::Requeue, MutateTarget::Retries, only)
        .await
        .unwrap();
    let w = consumer::<H>(server, &unique_queue("wid")).await;
    let again = w
        .fetch(&[queue.as_str()])
        .await
        .unwrap()
        .expect("requeued from retries");
    w.ack(&again.jid).await.unwrap();
    again.failure.expect("failure record")
}

/// A handler's error becomes a FAIL with its type, message and source chain.
pub async fn handler_error_becomes_fail_with_message_and_backtrace<H: Harness>() {
    let server = Server::start().await;
    let failure = fail_one_job::<H>(&server, "Charge", Handler::ok().then(Step::Fail)).await;
    assert_eq!(failure.errtype.as_deref(), Some("Outer"));
    assert_eq!(failure.message.as_deref(), Some("charging the card failed"));
    assert_eq!(
        failure.backtrace,
        Some(vec!["caused by: gateway timeout".to_owned()])
    );
}

/// The errtype of a handler's error names the error, never the box: `JobError` for the `?` of
/// `job.args_as()` in a handler returning `BoxError`, `io::Error` for a handler whose error type
/// is `std::io::Error` (a custom error type: `Outer`, in the scenario above).
pub async fn handler_errors_get_a_meaningful_errtype<H: Harness>() {
    let server = Server::start().await;
    let failure = fail_one_job::<H>(
        &server,
        "BadArgs",
        Handler::new(Registration::BoxedArgsError),
    )
    .await;
    assert_eq!(failure.errtype.as_deref(), Some("JobError"), "{failure:?}");
    assert!(
        failure.message.as_deref().is_some_and(|m| !m.is_empty()),
        "{failure:?}"
    );
    let failure = fail_one_job::<H>(&server, "Disk", Handler::new(Registration::IoError)).await;
    assert_eq!(failure.errtype.as_deref(), Some("io::Error"), "{failure:?}");
    assert_eq!(failure.message.as_deref(), Some("disk full"));
}

/// A handler's panic becomes a FAIL with errtype `panic` and the panic's message.
pub async fn handler_panic_becomes_fail<H: Harness>() {
    let server = Server::start().await;
    let failure = fail_one_job::<H>(
        &server,
        "Boom",
        Handler::ok().then(Step::Panic("handler exploded")),
    )
    .await;
    assert_eq!(failure.errtype.as_deref(), Some("panic"));
    assert_eq!(failure.message.as_deref(), Some("handler exploded"));
}

/// A `register_blocking` handler sees its context and runs once; a job nobody handles is FAILed
/// with `UnknownJobtype`.
pub async fn blocking_handler_and_unknown_jobtype<H: Harness>() {
    let Some(kit) = Server::kit_only("blocking_handler_and_unknown_jobtype").await else {
        return;
    };
    let queue = unique_queue("blocking");
    let ran = Counter::new();
    let handler = Handler::new(Registration::Blocking)
        .then(Step::CheckContext)
        .then(Step::Sleep(Duration::from_millis(20)))
        .then(Step::Count(ran.clone()));
    let (worker, stop) =
        H::worker(WorkerSpec::new(kit.url(), &queue).handler("Sync", handler)).unwrap();
    let sync_job = Job::builder("Sync").queue(&queue).build().unwrap();
    let unknown = Job::builder("Nobody").queue(&queue).build().unwrap();
    kit.push(sync_job.clone()).unwrap();
    kit.push(unknown.clone()).unwrap();
    let run = H::spawn(worker.run());
    assert!(
        eventually::<H>(LONG, || kit.acked().contains(&sync_job.jid)
            && kit.failed().contains(&unknown.jid))
        .await
    );
    stop.stop();
    let report = join_within::<H>(run, LONG).await;
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(ran.get(), 1);
    let f = kit
        .failures()
        .into_iter()
        .find(|f| f.jid == unknown.jid)
        .unwrap();
    assert_eq!(f.errtype, "UnknownJobtype");
}

/// Quiet from the server (heard on the next BEAT): the worker fetches nothing more but keeps
/// running until it is stopped.
pub async fn quiet_from_the_server_stops_fetching<H: Harness>() {
    let Some(kit) = Server::kit_only("quiet_from_the_server_stops_fetching").await else {
        return;
    };
    let queue = unique_queue("quiet");
    let wid = unique_queue("wid");
    let (run, stop) = start::<H>(
        WorkerSpec::new(kit.url(), &queue)
            .wid(&wid)
            .handler("Q", Handler::ok()),
    );
    let first = Job::builder("Q").queue(&queue).build().unwrap();
    kit.push(first.clone()).unwrap();
    assert!(eventually::<H>(LONG, || kit.acked().contains(&first.jid)).await);
    assert!(kit.quiet(&wid));
    // The worker hears it on its next BEAT (every 200 ms here) and stops fetching everywhere.
    H::sleep(Duration::from_millis(600)).await;
    let second = Job::builder("Q").queue(&queue).build().unwrap();
    kit.push(second).unwrap();
    H::sleep(Duration::from_millis(600)).await;
    assert_eq!(kit.queue(&queue).len(), 1, "a quiet worker fetches nothing");
    assert!(
        !run.is_finished(),
        "a quiet worker keeps running (and beating)"
    );
    stop.stop();
    let report = join_within::<H>(run, LONG).await;
    assert_eq!(report.reason, StopReason::Shutdown);
}

/// Terminate from the server stops a worker that has no shutdown signal.
pub async fn terminate_from_the_server_stops_the_worker<H: Harness>() {
    let Some(kit) = Server::kit_only("terminate_from_the_server_stops_the_worker").await else {
        return;
    };
    let queue = unique_queue("terminate");
    let wid = unique_queue("wid");
    let (run, _stop) = start::<H>(
        WorkerSpec::new(kit.url(), &queue)
            .wid(&wid)
            .shutdown(Shutdown::ServerOnly)
            .handler("T", Handler::ok()),
    );
    assert!(eventually::<H>(LONG, || kit.worker(&wid).is_some()).await);
    assert!(kit.terminate(&wid));
    let report = join_within::<H>(run, LONG).await;
    assert_eq!(report.reason, StopReason::Terminated);
    assert!(report.is_clean());
}

/// A local shutdown (through the worker's own handle where the API has one) lets a job that
/// finishes within the grace period finish: it is ACKed.
pub async fn local_shutdown_lets_a_slow_job_finish_within_the_grace_period<H: Harness>() {
    let Some(kit) =
        Server::kit_only("local_shutdown_lets_a_slow_job_finish_within_the_grace_period").await
    else {
        return;
    };
    let queue = unique_queue("grace");
    let started = Latch::new();
    let handler = Handler::ok()
        .then(Step::Fire(started.clone()))
        .then(Step::Sleep(Duration::from_millis(500)));
    // The stop is taken before the worker runs.
    let (worker, stop) = H::worker(
        WorkerSpec::new(kit.url(), &queue)
            .shutdown(Shutdown::WorkerHandle)
            .handler("Slow", handler),
    )
    .unwrap();
    let job = Job::builder("Slow").queue(&queue).build().unwrap();
    kit.push(job.clone()).unwrap();
    let run = H::spawn(worker.run());
    assert!(
        eventually::<H>(LONG, || started.is_fired()).await,
        "the job started"
    );
    stop.stop();
    assert!(stop.is_stopped());
    let report = join_within::<H>(run, LONG).await;
    assert_eq!(report.reason, StopReason::Shutdown);
    assert!(report.is_clean());
    assert!(
        kit.acked().contains(&job.jid),
        "finished inside the grace period: ACKed"
    );
    assert!(kit.failed().is_empty());
}

/// A job still running when the grace period ends is FAILed (errtype `Shutdown`, retried) and its
/// handler sees its cancellation.
pub async fn local_shutdown_fails_a_job_past_the_grace_period<H: Harness>() {
    let Some(kit) = Server::kit_only("local_shutdown_fails_a_job_past_the_grace_period").await
    else {
        return;
    };
    let queue = unique_queue("pastgrace");
    let started = Latch::new();
    let cancelled_seen = Counter::new();
    // The handler ignores its cancellation (it keeps running) until the test ends.
    let release = Latch::new();
    let handler = Handler::new(Registration::WithContext)
        .then(Step::Fire(started.clone()))
        .then(Step::AwaitCancellation)
        .then(Step::Count(cancelled_seen.clone()))
        .then(Step::HoldUntil(release.clone()));
    let spec = WorkerSpec::new(kit.url(), &queue)
        .grace_period(Duration::from_millis(300))
        .handler("Stuck", handler);
    let (worker, stop) = H::worker(spec).unwrap();
    let job = Job::builder("Stuck").queue(&queue).build().unwrap();
    kit.push(job.clone()).unwrap();
    let run = H::spawn(worker.run());
    assert!(
        eventually::<H>(LONG, || started.is_fired()).await,
        "the job started"
    );
    stop.stop();
    let report = join_within::<H>(run, LONG).await;
    assert_eq!(report.reason, StopReason::Shutdown);
    assert!(report.is_clean(), "{report:?}");
    let f = kit
        .failures()
        .into_iter()
        .find(|f| f.jid == job.jid)
        .expect("FAILed");
    assert_eq!(f.errtype, "Shutdown");
    assert!(matches!(f.outcome, FailOutcome::Retry(_)));
    if H::HANDLERS_OUTLIVE_THE_WORKER {
        // Its thread runs on: it sees the cancellation, maybe after `run` returned.
        assert!(
            eventually::<H>(LONG, || cancelled_seen.get() == 1).await,
            "the handler saw its cancellation"
        );
    } else {
        // The worker dropped the handler: it saw the cancellation before, or never will.
        assert_eq!(cancelled_seen.get(), 1, "the handler saw its cancellation");
    }
    release.fire();
}

/// A shutdown asked for before the worker runs stops it at once, cleanly.
pub async fn shutdown_before_run_stops_at_once<H: Harness>() {
    let server = Server::start().await;
    let queue = unique_queue("early");
    let (worker, stop) =
        H::worker(WorkerSpec::new(server.url(), &queue).handler("E", Handler::ok())).unwrap();
    stop.stop();
    let report = join_within::<H>(H::spawn(worker.run()), LONG).await;
    assert_eq!(report.reason, StopReason::Shutdown);
    assert!(report.is_clean(), "{report:?}");
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
async fn jobs_survive<H: Harness>(kind: FaultKind) {
    let kit = Kit::start(
        TestServer::builder()
            .fetch_timeout(Duration::from_millis(100))
            .clock(Clock::manual_now()),
    )
    .await;
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
    let worker = CountingWorker::start::<H>(&kit.url(), &queue, 8, total, Duration::from_millis(2));
    let mut faults = 0;
    let mut ticks = 0u32;
    while !worker.is_finished() {
        H::sleep(Duration::from_millis(40)).await;
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
    let (report, seen) = worker.finish().await;
    assert_eq!(faults, 3, "the faults were injected mid-run");
    assert_eq!(report.reason, StopReason::Shutdown);
    assert!(
        report.is_clean(),
        "no finished job's outcome lost: {report:?}"
    );
    assert_eq!(seen.len(), total, "every job ran");
    let acked: HashSet<String> = kit.acked().into_iter().collect();
    for j in &jobs {
        assert!(
            acked.contains(&j.jid),
            "{} ran and its ACK reached the server",
            j.jid
        );
    }
}

/// The server drops every connection three times mid-run: no ACK is lost.
pub async fn server_dropping_connections_mid_run_loses_no_ack<H: Harness>() {
    if Server::kit_only("server_dropping_connections_mid_run_loses_no_ack")
        .await
        .is_none()
    {
        return;
    }
    jobs_survive::<H>(FaultKind::DropConnections).await;
}

/// The server restarts three times mid-run: no ACK is lost.
pub async fn server_restarting_mid_run_loses_no_ack<H: Harness>() {
    if Server::kit_only("server_restarting_mid_run_loses_no_ack")
        .await
        .is_none()
    {
        return;
    }
    jobs_survive::<H>(FaultKind::Restart).await;
}
