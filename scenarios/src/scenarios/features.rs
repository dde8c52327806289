//! Middleware, typed handlers, state, follow-up pushes from handlers, job options and the no-server
//! test helper.

use std::time::Duration;

use faktory_proto::api::Error;
use faktory_proto::job::{JobDefaults, UniqueUntil};
use faktory_proto::worker::Outcome;
use faktory_proto::{Job, Timestamp};
use serde_json::json;

use super::client;
use crate::harness::{
    ClientApi, ClientLayer, ClientSpec, Handler, Harness, Layer, Log, Registration, Signup, Step,
    Stop, WorkerApi, WorkerSpec,
};
use crate::support::{Kit, LONG, Server, eventually, join_within, unique_queue};

/// Runs a worker built from `spec` until `done` holds (or [`LONG`] passed), then stops it and
/// checks it stopped cleanly.
async fn work_until<H: Harness>(spec: WorkerSpec, mut done: impl FnMut() -> bool) -> bool {
    let (worker, stop) = H::worker(spec).unwrap();
    let run = H::spawn(worker.run());
    let reached = eventually::<H>(LONG, &mut done).await;
    stop.stop();
    let report = join_within::<H>(run, LONG).await;
    assert!(report.is_clean(), "{report:?}");
    reached
}

fn failure_errtype(kit: &Kit, jid: &str) -> Option<String> {
    kit.failures()
        .into_iter()
        .find(|f| f.jid == jid)
        .map(|f| f.errtype)
}

/// Worker middleware, in order (the first added is the outermost): each sees the job and the
/// outcome of the rest of the chain; one changes the job (the handler sees the extra arg), one
/// short-circuits (the job is ACKed without running), one turns the job into a FAIL with its own
/// errtype (retried), one turns a handler's error into an ACK (discarded).
pub async fn worker_middleware_order_modify_short_circuit_retry_discard<H: Harness>() {
    let Some(kit) =
        Server::kit_only("worker_middleware_order_modify_short_circuit_retry_discard").await
    else {
        return;
    };
    let queue = unique_queue("mw");
    let (order, ran) = (Log::new(), Log::new());
    let spec = WorkerSpec::new(kit.url(), &queue)
        .concurrency(1)
        .middleware(Layer::Log("outer", order.clone()))
        .middleware(Layer::DiscardIfMarked)
        .middleware(Layer::RejectIfMarked)
        .middleware(Layer::SkipIfMarked)
        .middleware(Layer::Log("inner", order.clone()))
        .middleware(Layer::AppendArg("added"))
        .handler("Echo", Handler::ok().then(Step::Record(ran.clone())))
        .handler("Fails", Handler::ok().then(Step::Fail));
    let plain = Job::builder("Echo")
        .args((1,))
        .queue(&queue)
        .build()
        .unwrap();
    let mark = |jobtype: &str, key: &str| {
        Job::builder(jobtype)
            .queue(&queue)
            .custom(key, true)
            .build()
            .unwrap()
    };
    let (skip, reject) = (mark("Echo", "skip"), mark("Echo", "reject"));
    let (discard, fails) = (
        mark("Fails", "discard"),
        Job::builder("Fails").queue(&queue).build().unwrap(),
    );
    // One at a time (concurrency 1, pushed in order), so the order log reads job by job.
    kit.push(plain.clone()).unwrap();
    let settled = |kit: &Kit, jid: &str| {
        kit.acked().iter().any(|j| j == jid) || kit.failed().iter().any(|j| j == jid)
    };
    let (worker, stop) = H::worker(spec).unwrap();
    let run = H::spawn(worker.run());
    assert!(eventually::<H>(LONG, || settled(&kit, &plain.jid)).await);
    for job in [&skip, &reject, &discard, &fails] {
        kit.push(job.clone()).unwrap();
        assert!(eventually::<H>(LONG, || settled(&kit, &job.jid)).await);
    }
    stop.stop();
    let report = join_within::<H>(run, LONG).await;
    assert!(report.is_clean(), "{report:?}");

    // The handler saw the extra arg; the skipped and rejected jobs never reached it.
    assert_eq!(ran.snapshot(), [r#"[1,"added"]"#]);
    let acked = kit.acked();
    assert!(acked.contains(&plain.jid));
    assert!(acked.contains(&skip.jid), "short-circuited: ACKed");
    assert!(acked.contains(&discard.jid), "error discarded: ACKed");
    assert_eq!(
        failure_errtype(&kit, &reject.jid).as_deref(),
        Some("Rejected")
    );
    assert_eq!(failure_errtype(&kit, &fails.jid).as_deref(), Some("Outer"));
    assert!(
        kit.retries().iter().any(|e| e.job.jid == reject.jid),
        "a middleware's error is retried"
    );
    // outer wraps inner; a short-circuit before inner leaves inner out.
    assert_eq!(
        order.snapshot(),
        [
            "outer in",
            "inner in",
            "inner out ok",
            "outer out ok", // plain
            "outer in",
            "outer out ok", // skip
            "outer in",
            "outer out err", // reject
            "outer in",
            "inner in",
            "inner out err",
            "outer out ok", // discard
            "outer in",
            "inner in",
            "inner out err",
            "outer out err", // fails
        ]
    );
}

/// Client middleware changes every pushed job (a custom field) and refuses some (not sent; `push`
/// fails, `push_bulk` reports the jid); per-jobtype defaults apply at push, and what the job says
/// itself wins.
pub async fn client_middleware_and_job_defaults_shape_the_pushed_job<H: Harness>() {
    let server = Server::start().await;
    let queue = unique_queue("cmw");
    let other_queue = unique_queue("cmw-defaults");
    let seen = Log::new();
    let c = H::connect(
        ClientSpec::url(server.url())
            .middleware(ClientLayer::Log("first", seen.clone()))
            .middleware(ClientLayer::AddCustom("request_id", "req-42"))
            .middleware(ClientLayer::RefuseJobtype("Forbidden"))
            .middleware(ClientLayer::Log("last", seen.clone()))
            .job_defaults(
                "Defaulted",
                JobDefaults::new()
                    .queue(&other_queue)
                    .retry(3)
                    .reserve_for(120),
            ),
    )
    .await
    .unwrap();
    let job = Job::builder("Tagged").queue(&queue).build().unwrap();
    assert_eq!(c.push(job.clone()).await.unwrap(), job.jid);
    let refused = c
        .push(Job::builder("Forbidden").queue(&queue).build().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::PushRefused(_)), "{refused:?}");
    let bulk_refused = Job::builder("Forbidden").queue(&queue).build().unwrap();
    let bulk_ok = Job::builder("Tagged").queue(&queue).build().unwrap();
    let failed = c
        .push_bulk(vec![bulk_refused.clone(), bulk_ok.clone()])
        .await
        .unwrap();
    assert_eq!(failed.keys().collect::<Vec<_>>(), [&bulk_refused.jid]);
    let defaulted = Job::builder("Defaulted").build().unwrap();
    c.push(defaulted.clone()).await.unwrap();
    let explicit = Job::builder("Defaulted")
        .queue(&queue)
        .retry(0)
        .build()
        .unwrap();
    c.push(explicit.clone()).await.unwrap();
    assert_eq!(
        seen.snapshot(),
        [
            "first:Tagged",
            "last:Tagged",
            "first:Forbidden", // refused before `last`
            "first:Forbidden",
            "first:Tagged",
            "last:Tagged", // push_bulk
            "first:Defaulted",
            "last:Defaulted",
            "first:Defaulted",
            "last:Defaulted",
        ]
    );

    let w = H::connect(ClientSpec::url(server.url()).wid(unique_queue("wid")))
        .await
        .unwrap();
    let mut got = Vec::new();
    for q in [&queue, &queue, &other_queue, &queue] {
        let j = w.fetch(&[q.as_str()]).await.unwrap().expect("a pushed job");
        w.ack(&j.jid).await.unwrap();
        got.push(j);
    }
    let by_jid = |jid: &str| got.iter().find(|j| j.jid == jid).expect("fetched");
    for jid in [&job.jid, &bulk_ok.jid] {
        assert_eq!(
            by_jid(jid).custom_value("request_id"),
            Some(&json!("req-42")),
            "the middleware's field was sent"
        );
    }
    let d = by_jid(&defaulted.jid);
    assert_eq!(d.queue(), other_queue);
    assert_eq!((d.retry, d.reserve_for), (Some(3), Some(120)));
    let e = by_jid(&explicit.jid);
    assert_eq!(e.queue(), queue, "the job's own queue wins");
    assert_eq!((e.retry, e.reserve_for), (Some(0), Some(120)));
    assert!(
        w.fetch(&[queue.as_str()]).await.unwrap().is_none(),
        "nothing else landed"
    );
}

/// Typed handlers: a tuple (no context), a struct sent as one JSON object (with the context), and
/// a tuple on a blocking thread; args that do not decode FAIL with errtype `JobError`.
pub async fn typed_handlers_get_tuple_and_struct_args<H: Harness>() {
    let Some(kit) = Server::kit_only("typed_handlers_get_tuple_and_struct_args").await else {
        return;
    };
    let queue = unique_queue("typed");
    let ran = Log::new();
    let record = || Step::Record(ran.clone());
    let spec = WorkerSpec::new(kit.url(), &queue)
        .handler(
            "Tuple",
            Handler::new(Registration::TypedTuple).then(record()),
        )
        .handler(
            "Struct",
            Handler::new(Registration::TypedStruct)
                .then(Step::CheckContext)
                .then(record()),
        )
        .handler(
            "Blocking",
            Handler::new(Registration::TypedTupleBlocking).then(record()),
        );
    let tuple = Job::builder("Tuple")
        .args(("ada", 3))
        .queue(&queue)
        .build()
        .unwrap();
    let signup = Signup {
        name: "grace".into(),
        count: 7,
    };
    let structured = Job::builder("Struct")
        .args(&signup)
        .queue(&queue)
        .build()
        .unwrap();
    assert_eq!(structured.args, [json!({"name": "grace", "count": 7})]);
    let blocking = Job::builder("Blocking")
        .args(("linus", 1))
        .queue(&queue)
        .build()
        .unwrap();
    let bad = Job::builder("Tuple")
        .args(("only one",))
        .queue(&queue)
        .build()
        .unwrap();
    for j in [&tuple, &structured, &blocking, &bad] {
        kit.push(j.clone()).unwrap();
    }
    assert!(
        work_until::<H>(spec, || kit.acked().len() == 3 && kit.failed().len() == 1).await,
        "acked {:?} failed {:?}",
        kit.acked(),
        kit.failures()
    );
    let mut seen = ran.snapshot();
    seen.sort();
    assert_eq!(seen, ["ada 3", "grace x7", "linus 1"]);
    assert_eq!(failure_errtype(&kit, &bad.jid).as_deref(), Some("JobError"));
}

/// Jobs larger than the worker's first read buffer (8 KiB), and one larger than the most it grows
/// to (64 KiB), arrive whole, in any mix with small ones: each handler sees its args exactly as
/// pushed, and each job is ACKed.
pub async fn jobs_larger_than_a_read_arrive_whole<H: Harness>() {
    let server = Server::start().await;
    let queue = unique_queue("large");
    let ran = Log::new();
    let spec = WorkerSpec::new(server.url(), &queue)
        .concurrency(3)
        .handler(
            "Large",
            Handler::new(Registration::Plain).then(Step::Record(ran.clone())),
        );
    let sizes = [10, 20_000, 3, 150_000, 9_000, 70_000, 1];
    let mut expected: Vec<String> = Vec::new();
    let c = client::<H>(&server).await;
    for (i, n) in sizes.into_iter().enumerate() {
        let text = char::from(b'a' + i as u8).to_string().repeat(n);
        let job = Job::builder("Large")
            .args((i, text))
            .queue(&queue)
            .build()
            .unwrap();
        expected.push(serde_json::to_string(&job.args).unwrap());
        c.push(job).await.unwrap();
    }
    assert!(
        work_until::<H>(spec, || ran.snapshot().len() >= sizes.len()).await,
        "ran {} of {} jobs",
        ran.snapshot().len(),
        sizes.len()
    );
    let mut seen = ran.snapshot();
    seen.sort();
    expected.sort();
    assert!(seen == expected, "a job's args changed on the way");
    if let Some(kit) = server.kit() {
        assert!(eventually::<H>(LONG, || kit.acked().len() == sizes.len()).await);
    }
}

/// State given to the worker reaches handlers (async, blocking) through the context; the batch a
/// job belongs to is the context's `batch_id`.
pub async fn handlers_see_shared_state_and_their_batch<H: Harness>() {
    let Some(kit) = Server::kit_only("handlers_see_shared_state_and_their_batch").await else {
        return;
    };
    let queue = unique_queue("state");
    let (state, batch) = (Log::new(), Log::new());
    let spec = WorkerSpec::new(kit.url(), &queue)
        .greeting("hello")
        .handler(
            "Async",
            Handler::new(Registration::WithContext)
                .then(Step::RecordState(state.clone()))
                .then(Step::RecordBatch(batch.clone())),
        )
        .handler(
            "Sync",
            Handler::new(Registration::Blocking).then(Step::RecordState(state.clone())),
        );
    let in_batch = Job::builder("Async")
        .queue(&queue)
        .custom("bid", "b-123")
        .build()
        .unwrap();
    assert_eq!(in_batch.batch_id(), Some("b-123"));
    kit.push(in_batch).unwrap();
    kit.push(Job::builder("Sync").queue(&queue).build().unwrap())
        .unwrap();
    assert!(work_until::<H>(spec, || kit.acked().len() == 2).await);
    assert_eq!(state.snapshot(), ["hello", "hello"]);
    assert_eq!(batch.snapshot(), ["b-123"]);
}

/// `ctx.push` from a handler (async and blocking) sends a follow-up job over the worker's own
/// connections: it lands on the server with the jid `push` returned, and runs.
pub async fn ctx_push_sends_a_follow_up_job_that_lands_and_runs<H: Harness>() {
    let Some(kit) = Server::kit_only("ctx_push_sends_a_follow_up_job_that_lands_and_runs").await
    else {
        return;
    };
    let queue = unique_queue("followup");
    let (pushed, followed) = (Log::new(), Log::new());
    let follow_up = |jobtype| Step::PushFollowUp {
        jobtype,
        queue: queue.clone(),
        log: pushed.clone(),
    };
    let spec = WorkerSpec::new(kit.url(), &queue)
        .handler(
            "Parent",
            Handler::new(Registration::WithContext).then(follow_up("Child")),
        )
        .handler(
            "SyncParent",
            Handler::new(Registration::Blocking).then(follow_up("Child")),
        )
        .handler("Child", Handler::ok().then(Step::Record(followed.clone())));
    kit.push(Job::builder("Parent").queue(&queue).build().unwrap())
        .unwrap();
    kit.push(Job::builder("SyncParent").queue(&queue).build().unwrap())
        .unwrap();
    assert!(work_until::<H>(spec, || followed.len() == 2 && kit.acked().len() == 4).await);
    let acked = kit.acked();
    for jid in pushed.snapshot() {
        assert!(
            acked.contains(&jid),
            "the follow-up {jid} ran and was ACKed"
        );
    }
    assert_eq!(pushed.len(), 2);
}

/// `push` returns the jid of the job it pushed; `push` of an invalid job fails before sending.
pub async fn push_returns_the_jid<H: Harness>() {
    let server = Server::start().await;
    let queue = unique_queue("jid");
    let c = client::<H>(&server).await;
    let job = Job::builder("J").queue(&queue).build().unwrap();
    assert_eq!(c.push(job.clone()).await.unwrap(), job.jid);
    let mut bad = Job::builder("J").queue(&queue).build().unwrap();
    bad.jid = "short".into();
    assert!(matches!(c.push(bad).await, Err(Error::Job(_))));
    c.queue_remove(&[queue.as_str()]).await.unwrap();
}

/// A job pushed with `after(2 s)` lands in the scheduled set due about 2 s after the push (the
/// relative time is resolved when it is pushed, not when it was built).
pub async fn relative_scheduling_lands_in_the_scheduled_set<H: Harness>() {
    let Some(kit) = Server::kit_only("relative_scheduling_lands_in_the_scheduled_set").await else {
        return;
    };
    let server = Server::Kit(kit);
    let queue = unique_queue("after");
    let c = client::<H>(&server).await;
    let job = Job::builder("Later")
        .queue(&queue)
        .after(Duration::from_secs(2))
        .build()
        .unwrap();
    H::sleep(Duration::from_millis(300)).await; // built well before it is pushed
    let before = Timestamp::now().to_unix().unwrap().as_secs_f64();
    c.push(job.clone()).await.unwrap();
    let after = Timestamp::now().to_unix().unwrap().as_secs_f64();
    let kit = server.kit().unwrap();
    let entry = kit
        .scheduled()
        .into_iter()
        .find(|e| e.job.jid == job.jid)
        .expect("in the scheduled set");
    let due = entry.at.as_secs_f64();
    assert!(
        due >= before + 1.9 && due <= after + 2.1,
        "due {due}, pushed between {before} and {after}"
    );
    assert!(kit.queue(&queue).is_empty(), "not on its queue yet");
}

/// The Enterprise options (expiry, uniqueness) are in the pushed job's JSON, as Faktory
/// Enterprise reads them (`custom.expires_at`, `custom.unique_for`, `custom.unique_until`).
pub async fn enterprise_options_are_in_the_pushed_json<H: Harness>() {
    let Some(kit) = Server::kit_only("enterprise_options_are_in_the_pushed_json").await else {
        return;
    };
    let server = Server::Kit(kit);
    let queue = unique_queue("ent");
    let c = client::<H>(&server).await;
    let job = Job::builder("Unique")
        .queue(&queue)
        .expires_in(Duration::from_secs(3600))
        .unique_for(Duration::from_secs(600))
        .unique_until(UniqueUntil::Start)
        .build()
        .unwrap();
    let pushed_at = Timestamp::now().to_unix().unwrap().as_secs_f64();
    c.push(job.clone()).await.unwrap();
    let landed = server.kit().unwrap().queue(&queue);
    let got = landed
        .iter()
        .find(|j| j.jid == job.jid)
        .expect("on its queue");
    assert_eq!(got.custom_value("unique_for"), Some(&json!(600)));
    assert_eq!(got.custom_value("unique_until"), Some(&json!("start")));
    let expires = got
        .custom_value("expires_at")
        .and_then(|v| v.as_str())
        .expect("expires_at");
    let expires = Timestamp::parse(expires)
        .unwrap()
        .to_unix()
        .unwrap()
        .as_secs_f64();
    assert!(
        (expires - (pushed_at + 3600.0)).abs() < 5.0,
        "expires an hour after the push: {expires} vs {pushed_at}"
    );
}

/// `Worker::run_job` runs a job through the middleware and its handler with no server: the
/// outcome the worker would report, and what the handler pushed (recorded, not sent).
pub async fn run_job_tests_a_handler_without_a_server<H: Harness>() {
    let order = Log::new();
    let queue = unique_queue("nosrv");
    let spec = WorkerSpec::new("tcp://127.0.0.1:1", &queue)
        .greeting("hi")
        .middleware(Layer::Log("mw", order.clone()))
        .middleware(Layer::RejectIfMarked)
        .handler(
            "Parent",
            Handler::new(Registration::WithContext)
                .then(Step::RecordState(order.clone()))
                .then(Step::PushFollowUp {
                    jobtype: "Child",
                    queue: queue.clone(),
                    log: order.clone(),
                }),
        )
        .handler("Fails", Handler::ok().then(Step::Fail));
    let (worker, _stop) = H::worker(spec).unwrap();
    let (outcome, pushed) = worker.run_job(Job::new("Parent", vec![])).await;
    assert_eq!(outcome, Outcome::Ok);
    assert_eq!(pushed.len(), 1);
    assert_eq!(pushed[0].jobtype, "Child");
    let seen = order.snapshot();
    assert_eq!(seen[..2], ["mw in".to_owned(), "hi".to_owned()]);
    assert_eq!(seen[2], pushed[0].jid);
    assert_eq!(seen[3], "mw out ok");
    let (outcome, _) = worker.run_job(Job::new("Fails", vec![])).await;
    assert!(
        matches!(outcome, Outcome::Failed { ref errtype, .. } if errtype == "Outer"),
        "{outcome:?}"
    );
    let rejected = Job::builder("Parent").custom("reject", 1).build().unwrap();
    let (outcome, pushed) = worker.run_job(rejected).await;
    assert!(
        matches!(outcome, Outcome::Failed { ref errtype, .. } if errtype == "Rejected"),
        "{outcome:?}"
    );
    assert!(pushed.is_empty());
}
