//! Every scenario on faktory-blocking: the scenario on the test thread, workers and concurrent
//! callers on threads of their own, workers stopped through a `ShutdownHandle`. Also the one
//! scenario only this API can express.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use faktory_proto::Job;
use faktory_proto::worker::StopReason;
use faktory_scenarios::support::{LONG, Server, eventually, join_within, unique_queue};
use faktory_scenarios::{
    Blocking, Handler, Harness, Latch, Registration, Shutdown, Step, WorkerApi, WorkerSpec,
};

faktory_scenarios::scenarios!(faktory_scenarios::Blocking);

/// Blocking only: `ShutdownHandle::shutdown_now` (a second Ctrl-C) ends the grace period at once.
/// The async adapters have no such call: their shutdown signal is a future that fires once.
#[test]
fn shutdown_now_cancels_running_jobs_without_the_grace_period() {
    Blocking::block_on(async {
        let Some(kit) =
            Server::kit_only("shutdown_now_cancels_running_jobs_without_the_grace_period").await
        else {
            return;
        };
        let queue = unique_queue("now");
        let started = Latch::new();
        let release = Latch::new();
        let handler = Handler::new(Registration::WithContext)
            .then(Step::Fire(started.clone()))
            .then(Step::AwaitCancellation)
            .then(Step::HoldUntil(release.clone()));
        let spec = WorkerSpec::new(kit.url(), &queue)
            // Longer than `join_within` waits: only `shutdown_now` can end it in time.
            .grace_period(Duration::from_secs(120))
            .shutdown(Shutdown::WorkerHandle)
            .handler("Long", handler);
        // `stop` is the worker's own `ShutdownHandle`.
        let (worker, stop) = Blocking::worker(spec).unwrap();
        let job = Job::builder("Long").queue(&queue).build().unwrap();
        kit.push(job.clone()).unwrap();
        let run = Blocking::spawn(WorkerApi::run(worker));
        assert!(
            eventually::<Blocking>(LONG, || started.is_fired()).await,
            "the job started"
        );
        stop.shutdown();
        stop.shutdown_now();
        let report = join_within::<Blocking>(run, LONG).await;
        assert_eq!(report.reason, StopReason::Shutdown);
        assert!(report.is_clean(), "{report:?}");
        let f = kit
            .failures()
            .into_iter()
            .find(|f| f.jid == job.jid)
            .expect("FAILed");
        assert_eq!(f.errtype, "Shutdown");
        release.fire();
    });
}
