//! proptest: random interleavings of server replies, connection drops, I/O errors, garbage,
//! restarts, operator actions, timeouts and job completions. The engine must never panic, never
//! confirm a job twice, never pipeline ACK/FAIL/BEAT behind a FETCH, never close a connection with
//! a FETCH outstanding unless it reports the FETCH abandoned, always stop after a shutdown, and
//! never claim a clean stop while a finished job's outcome is unconfirmed. Pushes made through the
//! worker are answered exactly once, never sent twice, and `Ok` only when the server has the job.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod worker_harness;

use std::collections::BTreeSet;
use std::time::Duration;

use faktory_proto::worker::{JobToken, Lifecycle, Outcome};
use proptest::prelude::*;
use worker_harness::{Harness, Mode, RecState, Run, config, job};

#[derive(Clone, Debug)]
enum Action {
    Advance(u64),
    Push(usize),
    PushUndecodable,
    Drop(usize),
    IoError(usize),
    Garbage(usize),
    SetMode(usize, u8),
    Crash,
    Start,
    Operator(bool),
    ForgetRecords,
    Quiet,
    Shutdown,
    ShutdownNow,
    FinishStuck(usize, bool),
    AckErrors(bool),
    WorkerPush(usize),
    PushErrors(bool),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        12 => (0u64..4000).prop_map(Action::Advance),
        8 => (1usize..6).prop_map(Action::Push),
        1 => Just(Action::PushUndecodable),
        2 => any::<usize>().prop_map(Action::Drop),
        1 => any::<usize>().prop_map(Action::IoError),
        1 => any::<usize>().prop_map(Action::Garbage),
        1 => (any::<usize>(), 0u8..3).prop_map(|(i, m)| Action::SetMode(i, m)),
        1 => Just(Action::Crash),
        2 => Just(Action::Start),
        1 => any::<bool>().prop_map(Action::Operator),
        1 => Just(Action::ForgetRecords),
        1 => Just(Action::Quiet),
        1 => Just(Action::Shutdown),
        1 => Just(Action::ShutdownNow),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(i, ok)| Action::FinishStuck(i, ok)),
        1 => any::<bool>().prop_map(Action::AckErrors),
        3 => (1usize..4).prop_map(Action::WorkerPush),
        1 => any::<bool>().prop_map(Action::PushErrors),
    ]
}

#[derive(Clone, Debug)]
struct Setup {
    concurrency: usize,
    per_conn: usize,
    max_conns: usize,
    grace_s: u64,
    beat_s: u64,
    chunk: usize,
    seed: u64,
    server_up_at_end: bool,
    batch: bool,
}

prop_compose! {
    fn setup()(
        concurrency in 1usize..7,
        per_conn in 1usize..4,
        max_conns in 1usize..4,
        grace_s in 1u64..30,
        beat_s in 5u64..16,
        chunk in 0usize..9,
        seed in any::<u64>(),
        server_up_at_end in prop::bool::weighted(0.8),
        batch in any::<bool>(),
    ) -> Setup {
        Setup { concurrency, per_conn, max_conns, grace_s, beat_s, chunk, seed, server_up_at_end, batch }
    }
}

fn pick(h: &Harness, i: usize) -> Option<faktory_proto::worker::ConnId> {
    let open: Vec<_> = h.open.iter().copied().collect();
    if open.is_empty() {
        None
    } else {
        Some(open[i % open.len()])
    }
}

fn run_case(s: &Setup, actions: &[Action]) {
    let mut cfg = config(s.concurrency);
    cfg.fetches_per_connection = s.per_conn;
    cfg.max_fetch_connections = s.max_conns;
    cfg.grace_period = Duration::from_secs(s.grace_s);
    cfg.heartbeat_interval = Duration::from_secs(s.beat_s);
    cfg.seed = Some(s.seed);
    let mut rng = s.seed | 1;
    let runner = Box::new(move |_: &faktory_proto::Job| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let d = Duration::from_millis(rng % 3000);
        match (rng >> 20) % 20 {
            0 => Run::Never,
            1 | 2 => Run::After(d, Outcome::failed("E", "failed")),
            3 => Run::After(
                d,
                Outcome::Panicked {
                    message: "boom".into(),
                },
            ),
            _ => Run::After(d, Outcome::Ok),
        }
    });
    let mut h = Harness::new(cfg, runner);
    h.chunk = s.chunk;
    h.batch = s.batch;
    let mut next_job = 0usize;
    let mut next_push = 0usize;
    let mut pushes = Vec::new();
    let mut stuck_done: BTreeSet<JobToken> = BTreeSet::new();

    for a in actions {
        if h.stopped.is_some() {
            break;
        }
        match a {
            Action::Advance(ms) => h.run_for(Duration::from_millis(*ms)),
            Action::Push(n) => {
                for _ in 0..*n {
                    h.server.push("default", &job(next_job));
                    next_job += 1;
                }
                h.settle();
            }
            Action::PushUndecodable => {
                let body = format!(r#"{{"jid":"bad-{next_job:08}","jobtype":7,"args":[]}}"#);
                next_job += 1;
                h.server.push_raw("default", body.into_bytes());
                h.settle();
            }
            Action::Drop(i) => {
                if let Some(id) = pick(&h, *i) {
                    h.drop_conn(id);
                }
            }
            Action::IoError(i) => {
                if let Some(id) = pick(&h, *i) {
                    h.server.conns.remove(&id);
                    h.server.forget_records_pub();
                    h.worker
                        .handle_transport_error(id, "Connection reset by peer", h.now);
                    h.settle();
                }
            }
            Action::Garbage(i) => {
                if let Some(id) = pick(&h, *i) {
                    h.server.conns.remove(&id);
                    h.server.forget_records_pub();
                    h.worker.handle_input(id, b"%garbage\r\n", h.now);
                    h.settle();
                }
            }
            Action::SetMode(i, m) => {
                if let Some(id) = pick(&h, *i) {
                    let mode = [Mode::Normal, Mode::Frozen, Mode::BlackHole][usize::from(*m)];
                    h.set_mode(id, mode);
                }
            }
            Action::Crash => h.crash_server(),
            Action::Start => h.start_server(),
            Action::Operator(quiet) => {
                h.operator(if *quiet {
                    RecState::Quiet
                } else {
                    RecState::Terminate
                });
            }
            Action::ForgetRecords => h.server.store.records.clear(),
            Action::Quiet => {
                h.worker.quiet(h.now);
                h.settle();
            }
            Action::Shutdown => h.shutdown(),
            Action::ShutdownNow => {
                h.worker.shutdown_now(h.now);
                h.settle();
            }
            Action::FinishStuck(i, ok) => {
                let stuck: Vec<JobToken> = h
                    .running
                    .keys()
                    .copied()
                    .filter(|t| !h.scheduled.contains_key(t) && !stuck_done.contains(t))
                    .collect();
                if !stuck.is_empty() {
                    let t = stuck[i % stuck.len()];
                    stuck_done.insert(t);
                    let outcome = if *ok {
                        Outcome::Ok
                    } else {
                        Outcome::failed("Late", "late")
                    };
                    h.finish_job(t, outcome);
                }
            }
            Action::AckErrors(on) => {
                h.server.store.ack_error = on.then(|| "context deadline exceeded".to_owned());
            }
            Action::WorkerPush(n) => {
                for _ in 0..*n {
                    let job = faktory_proto::Job::builder("FollowUp")
                        .jid(format!("pushed-{next_push:08}"))
                        .queue("elsewhere")
                        .build()
                        .unwrap();
                    next_push += 1;
                    pushes.push(h.worker.push(job, h.now));
                }
                h.settle();
            }
            Action::PushErrors(on) => {
                h.server.store.push_error = on.then(|| "NOTUNIQUE Job not unique".to_owned());
            }
        }
        h.assert_invariants();
    }

    // The end: a server that works (usually), then shutdown; the worker must stop, in bounded time.
    if s.server_up_at_end {
        h.start_server();
        h.server.store.ack_error = None;
        let ids: Vec<_> = h.server.conns.keys().copied().collect();
        for id in ids {
            h.set_mode(id, Mode::Normal);
        }
    }
    h.shutdown();
    let report = h.run_until_stopped(Duration::from_secs(s.grace_s + 40));
    assert_eq!(h.worker.lifecycle(), Lifecycle::Stopped);
    h.assert_invariants();
    assert!(
        h.open.is_empty(),
        "every OpenConnection got its CloseConnection"
    );

    // Every outcome the engine accepted is confirmed, or listed as unconfirmed; never both.
    let listed: BTreeSet<JobToken> = report.unconfirmed.iter().map(|u| u.token).collect();
    for token in h.finished.keys() {
        let confirmed = h.confirmations.contains_key(token);
        assert!(
            confirmed != listed.contains(token),
            "token {token:?}: confirmed {confirmed}"
        );
    }
    for token in &h.cancelled {
        assert!(h.confirmations.contains_key(token) || listed.contains(token));
    }
    if report.is_clean() {
        assert!(listed.is_empty());
        for token in h.finished.keys() {
            assert!(h.confirmations.contains_key(token));
        }
    }
    // Every push was answered once; none was sent twice; Ok means the server has it.
    for id in &pushes {
        assert!(h.push_answer(*id).is_some(), "push {id:?} unanswered");
    }
    let mut sent = BTreeSet::new();
    for (_, _, line) in &h.server.store.lines {
        if let Some(payload) = line.strip_prefix("PUSH ") {
            let v: serde_json::Value = serde_json::from_str(payload).unwrap();
            assert!(sent.insert(v["jid"].to_string()), "PUSH sent twice: {line}");
        }
    }
    let stored: BTreeSet<String> = h
        .server
        .store
        .pushed
        .iter()
        .map(|(_, _, v)| v["jid"].to_string())
        .collect();
    for (n, id) in pushes.iter().enumerate() {
        if h.push_answer(*id) == Some(&Ok(())) {
            assert!(
                stored.contains(&format!("\"pushed-{n:08}\"")),
                "push {n} Ok but not stored"
            );
        }
    }
    // Once stopped, the engine asks for nothing more.
    assert!(h.worker.poll_timeout().is_none());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_interleavings_never_lose_or_double_an_outcome(
        s in setup(),
        actions in prop::collection::vec(action(), 1..60),
    ) {
        run_case(&s, &actions);
    }
}

#[test]
fn healthy_end_is_clean() {
    for batch in [false, true] {
        healthy_case(batch);
    }
}

fn healthy_case(batch: bool) {
    // A hand-picked interleaving with faults in the middle and a healthy server at the end: the
    // stop must be clean.
    let s = Setup {
        concurrency: 4,
        per_conn: 2,
        max_conns: 2,
        grace_s: 25,
        beat_s: 15,
        chunk: 3,
        seed: 99,
        server_up_at_end: true,
        batch,
    };
    let actions = [
        Action::Push(20),
        Action::Advance(1500),
        Action::Drop(0),
        Action::Advance(700),
        Action::Crash,
        Action::Advance(3000),
        Action::Start,
        Action::Advance(4000),
        Action::Garbage(1),
        Action::Push(5),
        Action::Advance(4000),
    ];
    run_case(&s, &actions);
}
