//! The worker engine through whole scenarios, in virtual time, against the in-memory server of
//! `worker_harness`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod worker_harness;

use std::time::Duration;

use faktory_proto::Job;
use faktory_proto::client::ConnectionError;
use faktory_proto::job::JobError;
use faktory_proto::worker::{
    Confirmation, ConnId, Event, Lifecycle, Outcome, PushError, PushId, Queues, SHUTDOWN_ERRTYPE,
    SkipReason, StopReason, WorkerConfig,
};
use serde_json::Value;
use worker_harness::{Harness, Mode, RecState, Run, config, job, ok_after};

const S: Duration = Duration::from_secs(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn count_verb(h: &Harness, verb: &str) -> usize {
    h.verbs_since(Duration::ZERO)
        .iter()
        .filter(|v| *v == verb)
        .count()
}

#[test]
fn quiet_in_the_middle_of_running_jobs() {
    let mut cfg = config(4);
    cfg.heartbeat_interval = 5 * S;
    let mut h = Harness::new(cfg, ok_after(10_000));
    for n in 0..10 {
        h.server.push("default", &job(n));
    }
    h.run_for(S);
    assert_eq!(h.worker.running_jobs(), 4);
    assert_eq!(h.server.queued(), 6);

    h.operator(RecState::Quiet);
    assert!(h.run_until_cond(10 * S, |h| h.worker.lifecycle() == Lifecycle::Quiet));
    let quiet_at = h.t();
    assert!(
        quiet_at <= 6 * S,
        "quiet seen at the next BEAT, got {quiet_at:?}"
    );

    h.run_for(30 * S);
    // The 4 running jobs finished and were ACKed; nothing else was fetched.
    assert_eq!(h.server.store.acks.len(), 4);
    assert_eq!(h.confirmations.len(), 4);
    assert!(
        h.confirmations
            .values()
            .all(|c| c == &[Confirmation::Acked])
    );
    assert_eq!(h.server.queued(), 6);
    let after: Vec<String> = h.verbs_since(quiet_at);
    assert!(
        !after.iter().any(|v| v == "FETCH"),
        "FETCH after quiet: {after:?}"
    );
    // It keeps beating, reporting quiet, and does not stop on its own.
    let beats_after: Vec<&Value> = h
        .server
        .store
        .beats
        .iter()
        .filter(|(t, _, _)| *t - h.base > quiet_at)
        .map(|(_, _, v)| v)
        .collect();
    assert!(
        beats_after.len() >= 5,
        "{} beats after quiet",
        beats_after.len()
    );
    assert!(beats_after.iter().all(|b| b["current_state"] == "quiet"));
    assert_eq!(h.worker.lifecycle(), Lifecycle::Quiet);
    assert!(h.stopped.is_none());
    assert_eq!(h.worker.open_connections(), h.open.len());
    h.assert_invariants();
}

#[test]
fn terminate_with_a_job_that_never_finishes() {
    let mut cfg = config(2);
    cfg.heartbeat_interval = 5 * S;
    let runner = Box::new(|j: &faktory_proto::Job| {
        if j.jid == job(0).jid {
            Run::Never
        } else {
            Run::After(3 * S, Outcome::Ok)
        }
    });
    let mut h = Harness::new(cfg, runner);
    h.server.push("default", &job(0));
    h.server.push("default", &job(1));
    h.run_for(S);
    assert_eq!(h.worker.running_jobs(), 2);

    h.operator(RecState::Terminate);
    assert!(h.run_until_cond(10 * S, |h| h.worker.lifecycle() == Lifecycle::Terminating));
    let term_at = h.t();
    let report = h.run_until_stopped(60 * S);
    let stopped_at = h.t();

    assert_eq!(report.reason, StopReason::Terminated);
    assert!(report.is_clean(), "{report:?}");
    // The grace period (25 s) was given in full to the stuck job, and not much more.
    assert!(stopped_at >= term_at + 25 * S, "stopped at {stopped_at:?}");
    assert!(stopped_at <= term_at + 26 * S, "stopped at {stopped_at:?}");
    // The short job was ACKed, the stuck one cancelled and FAILed with the shutdown errtype.
    assert_eq!(h.server.store.acks, vec![job(1).jid]);
    assert_eq!(h.cancelled.len(), 1);
    let stuck = h.cancelled[0];
    assert_eq!(h.run_jobs[&stuck].jid, job(0).jid);
    assert_eq!(h.confirmations[&stuck], vec![Confirmation::Failed]);
    assert_eq!(h.server.store.fails.len(), 1);
    assert_eq!(h.server.store.fails[0]["errtype"], SHUTDOWN_ERRTYPE);
    // A late outcome of the cancelled job is ignored.
    assert!(!h.worker.handle_job_finished(stuck, Outcome::Ok, h.now));
    // END on every connection, nothing left open, no FETCH after terminate.
    let opened_live = h.opened.len();
    assert!(count_verb(&h, "END") >= 1 && count_verb(&h, "END") <= opened_live);
    assert!(h.open.is_empty());
    assert!(!h.verbs_since(term_at + ms(1)).iter().any(|v| v == "FETCH"));
    assert_eq!(h.worker.lifecycle(), Lifecycle::Stopped);
    h.assert_invariants();
}

#[test]
fn shutdown_with_nothing_running() {
    let cfg = config(4);
    let mut h = Harness::new(cfg, ok_after(10));
    h.run_for(3 * S);
    let conns = h.open.len();
    assert_eq!(conns, 1 + 4, "control + one fetch connection per slot");
    assert!(h.worker.outstanding_fetches() > 0);

    let shutdown_at = h.t();
    h.shutdown();
    // current_state is reported at once.
    let last_beat = h.server.store.beats.last().unwrap();
    assert_eq!(last_beat.2["current_state"], "terminate");
    assert_eq!(last_beat.0 - h.base, shutdown_at);

    let report = h.run_until_stopped(30 * S);
    assert_eq!(report.reason, StopReason::Shutdown);
    assert!(report.is_clean());
    // Outstanding FETCHes were answered before their connections closed: one FETCH per connection,
    // so the shutdown waits one 2 s FETCH block (plus the harness's round trips), never two.
    assert_eq!(h.server.store.closed_with_fetch, 0);
    assert!(h.server.store.stranded.is_empty());
    assert!(
        h.t() <= shutdown_at + 2 * S + ms(50),
        "took until {:?} (shutdown at {shutdown_at:?})",
        h.t()
    );
    assert!(
        !h.verbs_since(shutdown_at + ms(1))
            .iter()
            .any(|v| v == "FETCH")
    );
    assert_eq!(count_verb(&h, "END"), conns);
    assert!(h.open.is_empty());
    assert!(h.run_jobs.is_empty());
    // After Stopped nothing happens any more.
    assert_eq!(h.worker.poll_timeout(), None);
    h.run_for(60 * S);
    assert_eq!(
        h.events.last().map(|(_, e)| matches!(e, Event::Stopped(_))),
        Some(true)
    );
    h.assert_invariants();
}

#[test]
fn control_connection_dropped_while_acks_in_flight() {
    // One fetch connection with room for a third FETCH: while two jobs run, a FETCH blocks on it,
    // so the ACK and FAIL can only go to the control connection.
    let mut cfg = config(3);
    cfg.max_fetch_connections = 1;
    cfg.fetches_per_connection = 3;
    let runner = Box::new(|j: &faktory_proto::Job| {
        let n: Vec<usize> = j.args_as().unwrap();
        if n[0] % 2 == 0 {
            Run::After(S, Outcome::Ok)
        } else {
            Run::After(S, Outcome::failed("Boom", "odd job"))
        }
    });
    let mut h = Harness::new(cfg, runner);

    for (round, mode) in [(0usize, Mode::Frozen), (1, Mode::BlackHole)] {
        h.server.push("default", &job(round * 2));
        h.server.push("default", &job(round * 2 + 1));
        h.run_for(ms(100));
        assert_eq!(h.worker.running_jobs(), 2, "round {round}");
        let control = h.control_conn().unwrap();
        let round_start = h.now;
        // Frozen: the server never reads the ACK/FAIL; BlackHole: it executes them, the replies
        // are lost.
        h.set_mode(control, mode);
        h.run_for(ms(1500));
        assert_eq!(
            h.worker.unconfirmed_outcomes(),
            2,
            "round {round}: in flight"
        );
        let outcome_lines_on_control = h
            .server
            .store
            .lines
            .iter()
            .filter(|(t, c, l)| {
                *t >= round_start
                    && *c == control
                    && (l.starts_with("ACK") || l.starts_with("FAIL"))
            })
            .count();
        assert_eq!(outcome_lines_on_control, 2, "round {round}");
        h.drop_conn(control);
        h.run_for(10 * S);
        assert_eq!(h.worker.unconfirmed_outcomes(), 0, "round {round}");
        assert!(h.control_conn().is_some(), "control reopened");
    }

    // Every job confirmed exactly once; the FAIL re-sent after it had landed came back
    // `Job not found`, which counts as landed.
    assert_eq!(h.confirmations.len(), 4);
    let by_jid = |n: usize| {
        let token = h
            .run_jobs
            .iter()
            .find(|(_, j)| j.jid == job(n).jid)
            .unwrap()
            .0;
        h.confirmations[token].clone()
    };
    assert_eq!(by_jid(0), vec![Confirmation::Acked]);
    assert_eq!(by_jid(1), vec![Confirmation::Failed]);
    assert_eq!(by_jid(2), vec![Confirmation::Acked]);
    assert_eq!(by_jid(3), vec![Confirmation::NotFound]);
    assert_eq!(h.server.store.not_found, 1);
    // The server got each outcome (the black-holed ACK twice: harmless, +OK for an unknown jid).
    assert!(h.server.store.reserved.is_empty());
    let fails: Vec<&str> = h
        .server
        .store
        .fails
        .iter()
        .map(|f| f["jid"].as_str().unwrap())
        .collect();
    assert_eq!(fails, vec![job(1).jid.as_str(), job(3).jid.as_str()]);
    h.assert_invariants();
}

#[test]
fn server_restarting_twice_in_a_row() {
    let mut cfg = config(2);
    cfg.backoff.initial = ms(100);
    cfg.backoff.max = 10 * S;
    let mut h = Harness::new(cfg, ok_after(2_000));
    h.server.push("default", &job(0));
    h.run_for(S);
    assert_eq!(h.worker.running_jobs(), 1);

    // First outage: 30 s. The running job finishes while the server is down.
    let down_at = h.t();
    h.crash_server();
    h.run_for(30 * S);
    let attempts: Vec<Duration> = h
        .opened
        .iter()
        .filter(|(t, _)| *t > down_at)
        .map(|(t, _)| *t)
        .collect();
    assert!(attempts.len() >= 5, "{attempts:?}");
    let mut gaps = vec![attempts[0] - down_at];
    gaps.extend(attempts.windows(2).map(|w| w[1] - w[0]));
    // The control connection is retried alone (fetch connections wait for it): one attempt per gap.
    for w in gaps.windows(2).take(5) {
        assert!(w[1] >= w[0], "backoff must grow: {gaps:?}");
    }
    assert!(gaps[5] >= gaps[0] * 8, "{gaps:?}");
    assert!(gaps.iter().all(|g| *g <= 10 * S), "capped: {gaps:?}");
    assert_eq!(
        h.worker.unconfirmed_outcomes(),
        1,
        "the ACK waits for the server"
    );

    // The server is back: reconnect (same wid), the ACK is delivered.
    h.start_server();
    h.run_for(15 * S);
    assert_eq!(h.server.store.acks, vec![job(0).jid]);
    assert_eq!(h.confirmations.len(), 1);
    let hellos_wid = h.server.store.records.keys().cloned().collect::<Vec<_>>();
    assert_eq!(hellos_wid, vec!["wid-test-0001".to_owned()]);
    assert!(h.control_conn().is_some());
    assert_eq!(h.fetch_conns().len(), 2, "one per slot");

    // Second outage right away: the backoff starts small again.
    let down2 = h.t();
    h.crash_server();
    h.run_for(S);
    let first = h
        .opened
        .iter()
        .find(|(t, _)| *t > down2)
        .map(|(t, _)| *t)
        .unwrap();
    assert!(
        first - down2 <= ms(100),
        "backoff was reset: {:?}",
        first - down2
    );
    h.start_server();
    h.run_for(10 * S);
    h.server.push("default", &job(1));
    h.run_for(10 * S);
    assert_eq!(h.server.store.acks, vec![job(0).jid, job(1).jid]);
    assert_eq!(h.worker.lifecycle(), Lifecycle::Running);
    h.assert_invariants();
}

#[test]
fn weighted_queues_follow_their_weights() {
    let mut cfg = config(10);
    cfg.queues = Queues::weighted([("high", 5), ("mid", 3), ("low", 2)]);
    let mut h = Harness::new(cfg, ok_after(0));
    for n in 0..10_000 {
        for q in ["high", "mid", "low"] {
            let mut j = job(n);
            j.jid = format!("{q}-{n:08}");
            h.server.push(q, &j);
        }
    }
    assert!(h.run_until_cond(600 * S, |h| h.server.store.fetches.len() >= 10_000));
    let fetches = &h.server.store.fetches[..10_000];
    for (q, w) in [("high", 0.5), ("mid", 0.3), ("low", 0.2)] {
        let first = fetches.iter().filter(|f| f[0] == q).count() as f64 / 10_000.0;
        assert!((first - w).abs() < 0.02, "{q}: {first} vs {w}");
    }
    // Every FETCH lists all three queues, so none waits on an empty one while another has jobs.
    assert!(fetches.iter().all(|f| {
        let mut s = f.clone();
        s.sort();
        s == ["high", "low", "mid"]
    }));
    h.assert_invariants();
}

#[test]
fn strict_queues_keep_their_order() {
    let mut cfg = config(2);
    cfg.queues = Queues::strict(["critical", "default", "bulk"]);
    let mut h = Harness::new(cfg, ok_after(0));
    h.run_for(5 * S);
    assert!(!h.server.store.fetches.is_empty());
    assert!(
        h.server
            .store
            .fetches
            .iter()
            .all(|f| f == &["critical", "default", "bulk"])
    );
}

#[test]
fn shutdown_while_fetches_are_outstanding_runs_what_they_bring() {
    let cfg = config(4);
    let mut h = Harness::new(cfg, ok_after(1_000));
    h.run_for(S);
    assert_eq!(h.worker.outstanding_fetches(), 4);
    let shutdown_at = h.t();
    h.shutdown();
    // A job arrives while the FETCHes are still blocked: the one that takes it brings it back.
    h.run_for(ms(500));
    assert!(h.stopped.is_none());
    h.server.push("default", &job(7));
    let report = h.run_until_stopped(30 * S);
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        h.server.store.closed_with_fetch, 0,
        "no connection closed with a FETCH outstanding"
    );
    assert!(h.server.store.stranded.is_empty());
    assert_eq!(
        h.run_jobs.len(),
        1,
        "the job arrived within the grace period: it ran"
    );
    assert_eq!(h.server.store.acks, vec![job(7).jid]);
    assert_eq!(
        h.confirmations.values().next().unwrap(),
        &vec![Confirmation::Acked]
    );
    assert!(
        !h.verbs_since(shutdown_at + ms(1))
            .iter()
            .any(|v| v == "FETCH")
    );
    assert!(h.open.is_empty());
    h.assert_invariants();
}

#[test]
fn shutdown_while_fetches_are_outstanding_fails_what_arrives_after_the_grace_period() {
    let mut cfg = config(4);
    cfg.grace_period = S;
    // Two FETCHes pipelined per fetch connection (not the default): the second ones are still
    // waiting at 2.5 s.
    cfg.fetches_per_connection = 2;
    let mut h = Harness::new(cfg, ok_after(1_000));
    h.run_for(ms(10));
    h.shutdown();
    h.run_for(ms(2_500));
    assert_eq!(h.worker.lifecycle(), Lifecycle::Ending);
    assert!(h.worker.outstanding_fetches() > 0);
    h.server.push("default", &job(9));
    let report = h.run_until_stopped(30 * S);
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(h.server.store.closed_with_fetch, 0);
    assert!(h.run_jobs.is_empty(), "not started after the grace period");
    let skipped: Vec<&Event> = h
        .events
        .iter()
        .map(|(_, e)| e)
        .filter(|e| {
            matches!(
                e,
                Event::JobSkipped {
                    reason: SkipReason::ShuttingDown,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(skipped.len(), 1);
    assert_eq!(h.server.store.fails.len(), 1);
    assert_eq!(h.server.store.fails[0]["jid"], job(9).jid.as_str());
    assert_eq!(h.server.store.fails[0]["errtype"], SHUTDOWN_ERRTYPE);
    assert_eq!(
        h.confirmations.values().next().unwrap(),
        &vec![Confirmation::Failed]
    );
    h.assert_invariants();
}

#[test]
fn thousand_jobs_through_concurrency_ten() {
    let cfg = config(10);
    let mut counter = 0u64;
    let runner = Box::new(move |j: &faktory_proto::Job| {
        counter = counter
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let d = ms((counter >> 33) % 300);
        let n: Vec<usize> = j.args_as().unwrap();
        if n[0] % 7 == 3 {
            Run::After(d, Outcome::failed("Flaky", "every seventh job fails"))
        } else {
            Run::After(d, Outcome::Ok)
        }
    });
    let mut h = Harness::new(cfg, runner);
    h.chunk = 7;
    for n in 0..1000 {
        h.server.push("default", &job(n));
    }
    // The control connection drops twice on the way: nothing may be lost or doubled.
    assert!(h.run_until_cond(600 * S, |h| h.confirmations.len() >= 300));
    let c = h.control_conn().unwrap();
    h.drop_conn(c);
    assert!(h.run_until_cond(600 * S, |h| h.confirmations.len() >= 700));
    let c = h.control_conn().unwrap();
    h.drop_conn(c);
    assert!(h.run_until_cond(600 * S, |h| h.confirmations.len() >= 1000));
    h.shutdown();
    let report = h.run_until_stopped(60 * S);
    assert!(report.is_clean());

    assert_eq!(h.run_jobs.len(), 1000);
    assert_eq!(h.confirmations.len(), 1000);
    let mut failed = 0;
    for (token, job) in &h.run_jobs {
        let n: Vec<usize> = job.args_as().unwrap();
        let c = &h.confirmations[token];
        assert_eq!(c.len(), 1);
        if n[0] % 7 == 3 {
            failed += 1;
            assert_eq!(c[0], Confirmation::Failed);
        } else {
            assert_eq!(c[0], Confirmation::Acked);
        }
    }
    assert_eq!(h.server.store.fails.len(), failed);
    assert_eq!(h.server.store.acks.len(), 1000 - failed);
    assert!(h.server.store.reserved.is_empty());
    assert_eq!(h.server.queued(), 0);
    h.assert_invariants();
}

#[test]
fn unknown_worker_reconnects_with_the_same_wid() {
    let mut cfg = config(2);
    cfg.heartbeat_interval = 5 * S;
    let mut h = Harness::new(cfg, ok_after(100));
    h.run_for(S);
    let first_control = h.control_conn().unwrap();
    // The record vanishes while the connections stay (e.g. a proxy kept them open).
    h.server.store.records.clear();
    h.run_for(10 * S);
    let control = h.control_conn().unwrap();
    assert_ne!(control, first_control, "control connection reopened");
    assert!(h.server.store.records.contains_key("wid-test-0001"));
    assert_eq!(h.worker.lifecycle(), Lifecycle::Running);
    h.server.push("default", &job(1));
    h.run_for(10 * S);
    assert_eq!(h.server.store.acks, vec![job(1).jid]);
    // Reaped: every connection closed by the server; the worker reconnects and carries on.
    h.reap("wid-test-0001");
    h.run_for(10 * S);
    assert!(h.control_conn().is_some());
    h.server.push("default", &job(2));
    h.run_for(10 * S);
    assert_eq!(h.server.store.acks, vec![job(1).jid, job(2).jid]);
    assert!(h.stopped.is_none());
    h.assert_invariants();
}

#[test]
fn beats_carry_rss_and_arrive_on_time_on_the_control_connection() {
    let mut h = Harness::new(config(2), ok_after(100));
    h.worker.set_rss_kb(54_176);
    h.run_for(61 * S);
    let beats = &h.server.store.beats;
    // One at connect, then every 15 s.
    assert_eq!(beats.len(), 5, "{beats:?}");
    let control = h.control_conn().unwrap();
    // The first BEAT went out at connect, before the adapter reported memory.
    assert!(beats[1..].iter().all(|(_, c, b)| *c == control
        && b["rss_kb"] == 54_176
        && b["wid"] == "wid-test-0001"
        && b.get("current_state").is_none()));
    for w in beats.windows(2) {
        assert_eq!(w[1].0 - w[0].0, 15 * S);
    }
}

#[test]
fn fail_payloads_are_cut_to_the_server_limits() {
    let runner = Box::new(|j: &faktory_proto::Job| {
        let n: Vec<usize> = j.args_as().unwrap();
        match n[0] {
            0 => Run::After(
                ms(10),
                Outcome::Failed {
                    errtype: "É".repeat(80),
                    message: "ü".repeat(900),
                    backtrace: (0..80).map(|i| format!("frame {i}")).collect(),
                },
            ),
            1 => Run::After(
                ms(10),
                Outcome::Panicked {
                    message: "index out of bounds".into(),
                },
            ),
            _ => Run::After(
                ms(10),
                Outcome::Failed {
                    errtype: "E".into(),
                    message: "m".into(),
                    backtrace: vec!["a".into(), "b".into()],
                },
            ),
        }
    });
    let mut h = Harness::new(config(2), runner);
    let mut j0 = job(0);
    j0.backtrace = Some(70);
    h.server.push("default", &j0);
    h.server.push("default", &job(1));
    let mut j2 = job(2);
    j2.backtrace = Some(1);
    h.server.push("default", &j2);
    h.run_for(5 * S);
    let fails = &h.server.store.fails;
    assert_eq!(fails.len(), 3);
    let find = |jid: &str| fails.iter().find(|f| f["jid"] == jid).unwrap().clone();
    let f0 = find(&j0.jid);
    assert_eq!(f0["errtype"].as_str().unwrap().len(), 100);
    assert_eq!(f0["message"].as_str().unwrap().len(), 1000);
    assert_eq!(f0["backtrace"].as_array().unwrap().len(), 50);
    let f1 = find(&job(1).jid);
    assert_eq!(f1["errtype"], "panic");
    assert_eq!(f1["message"], "index out of bounds");
    assert!(
        f1.get("backtrace")
            .is_none_or(|b| b.as_array().unwrap().is_empty())
    );
    let f2 = find(&j2.jid);
    assert_eq!(f2["backtrace"], serde_json::json!(["a"]));
}

#[test]
fn undecodable_jobs_are_failed_by_jid() {
    let mut h = Harness::new(config(2), ok_after(10));
    h.server.push_raw(
        "default",
        br#"{"jid":"bad-job-0001","jobtype":"X","args":"not an array"}"#.to_vec(),
    );
    h.run_for(5 * S);
    assert!(h.run_jobs.is_empty());
    assert_eq!(h.server.store.fails.len(), 1);
    assert_eq!(h.server.store.fails[0]["jid"], "bad-job-0001");
    assert_eq!(h.server.store.fails[0]["errtype"], "InvalidJob");
    let skipped = h.events.iter().find_map(|(_, e)| match e {
        Event::JobSkipped {
            token,
            jid,
            reason: SkipReason::Undecodable(_),
        } => Some((*token, jid.clone())),
        _ => None,
    });
    let (token, jid) = skipped.unwrap();
    assert_eq!(jid.as_deref(), Some("bad-job-0001"));
    assert_eq!(h.confirmations[&token], vec![Confirmation::Failed]);
}

#[test]
fn a_refused_password_is_fatal_before_the_first_connection() {
    let cfg = config(2);
    let mut h = Harness::new_with(cfg, ok_after(10), |s| s.store.reject_hello = true);
    let report = h.run_until_stopped(10 * S);
    assert!(matches!(report.reason, StopReason::Fatal(_)), "{report:?}");
    assert!(!report.is_clean(), "a refused worker never stops clean");
    assert!(h.open.is_empty());
    assert_eq!(h.opened.len(), 1);
}

#[test]
fn outcome_errors_are_retried_then_reported() {
    let mut h = Harness::new(config(1), ok_after(10));
    h.server.store.ack_error = Some("context deadline exceeded".into());
    h.server.push("default", &job(0));
    h.run_for(10 * S);
    assert_eq!(h.confirmations.len(), 1);
    let c = h.confirmations.values().next().unwrap();
    assert!(
        matches!(&c[..], [Confirmation::Rejected(e)] if e.message == "context deadline exceeded")
    );
    let acks = h
        .verbs_since(Duration::ZERO)
        .iter()
        .filter(|v| *v == "ACK")
        .count();
    assert_eq!(acks, 3);
}

#[test]
fn fetch_connections_grow_with_concurrency_up_to_the_cap() {
    for (concurrency, expected) in [(1, 1), (2, 2), (10, 10), (11, 11), (16, 11), (100, 11)] {
        let mut h = Harness::new(config(concurrency), ok_after(10));
        h.run_for(S);
        assert_eq!(h.fetch_conns().len(), expected, "concurrency {concurrency}");
        assert!(h.control_conn().is_some());
        // Never more FETCHes than free slots, never more than 1 per connection.
        assert_eq!(h.worker.outstanding_fetches(), concurrency.min(expected));
    }
    let cfg = WorkerConfig::default();
    assert_eq!(cfg.fetch_connections(), 10);
    // Tuned: two FETCHes per connection, at most 8 connections.
    for (concurrency, expected) in [(2, 1), (10, 5), (100, 8)] {
        let mut cfg = config(concurrency);
        cfg.fetches_per_connection = 2;
        cfg.max_fetch_connections = 8;
        let mut h = Harness::new(cfg, ok_after(10));
        h.run_for(S);
        assert_eq!(h.fetch_conns().len(), expected, "concurrency {concurrency}");
        assert_eq!(
            h.worker.outstanding_fetches(),
            concurrency.min(expected * 2)
        );
    }
}

#[test]
fn acks_never_wait_behind_a_blocking_fetch() {
    let mut h = Harness::new(config(10), ok_after(50));
    for n in 0..200 {
        h.server.push("default", &job(n));
    }
    h.run_for(30 * S);
    assert_eq!(h.confirmations.len(), 200);
    assert_eq!(h.server.store.behind_fetch, 0);
    // ACKs were spread over several connections.
    let ack_conns: std::collections::BTreeSet<ConnId> = h
        .server
        .store
        .lines
        .iter()
        .filter(|(_, _, l)| l.starts_with("ACK"))
        .map(|(_, c, _)| *c)
        .collect();
    assert!(ack_conns.len() >= 2, "{ack_conns:?}");
}

#[test]
fn shutdown_now_fails_running_jobs_at_once() {
    let mut h = Harness::new(config(2), ok_after(60_000));
    h.server.push("default", &job(0));
    h.server.push("default", &job(1));
    h.run_for(S);
    assert_eq!(h.worker.running_jobs(), 2);
    h.shutdown();
    h.run_for(S);
    assert_eq!(h.worker.lifecycle(), Lifecycle::Terminating);
    let at = h.t();
    h.worker.shutdown_now(h.now);
    let report = h.run_until_stopped(10 * S);
    assert!(report.is_clean());
    assert_eq!(report.reason, StopReason::Shutdown);
    assert_eq!(h.t(), at, "nothing left to wait for");
    assert_eq!(h.cancelled.len(), 2);
    assert_eq!(h.server.store.fails.len(), 2);
    assert!(
        h.confirmations
            .values()
            .all(|c| c == &[Confirmation::Failed])
    );
    h.assert_invariants();
}

#[test]
fn at_high_concurrency_quick_jobs_are_acked_on_their_own_connection() {
    // Concurrency 50 on 11 fetch connections: slots are free when a job arrives, so without the
    // refill hold the connection would FETCH again at once and the ACK would have to go to the
    // only connection without a FETCH outstanding, the control one (one command at a time on a
    // real server: the bottleneck).
    let mut h = Harness::new(config(50), ok_after(0));
    for n in 0..500 {
        h.server.push("default", &job(n));
    }
    h.run_for(30 * S);
    assert_eq!(h.confirmations.len(), 500);
    let control = h.control_conn().expect("control connection");
    let acks: Vec<ConnId> = h
        .server
        .store
        .lines
        .iter()
        .filter(|(_, _, l)| l.starts_with("ACK"))
        .map(|(_, c, _)| *c)
        .collect();
    let on_control = acks.iter().filter(|c| **c == control).count();
    assert!(
        on_control * 100 <= acks.len(),
        "{on_control} of {} ACKs on the control connection",
        acks.len()
    );
    h.assert_invariants();
}

// ---------------------------------------------------------------------------------------------------
// Worker::push

/// A follow-up job for a queue the worker does not fetch from.
fn follow_up(n: usize) -> Job {
    Job::builder("FollowUp")
        .jid(format!("pushed-{n:08}"))
        .queue("elsewhere")
        .args((n,))
        .build()
        .unwrap()
}

fn index_of_event(h: &Harness, pred: impl Fn(&Event) -> bool) -> usize {
    h.events.iter().position(|(_, e)| pred(e)).expect("event")
}

#[test]
fn a_push_is_answered_ok_on_a_connection_without_a_fetch() {
    let mut h = Harness::new(config(2), ok_after(100));
    h.run_for(S);
    assert_eq!(
        h.worker.outstanding_fetches(),
        2,
        "both fetch connections block"
    );
    let ids: Vec<PushId> = (0..3).map(|n| h.push(follow_up(n))).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    for id in &ids {
        assert_eq!(h.push_answer(*id), Some(&Ok(())));
    }
    assert_eq!(h.worker.pending_pushes(), 0);
    // In order, on the control connection (the fetch connections each have a FETCH blocked), with
    // retry sent although the builder left it unset.
    let pushed = &h.server.store.pushed;
    assert_eq!(pushed.len(), 3);
    for (n, (_, conn, payload)) in pushed.iter().enumerate() {
        assert_eq!(Some(*conn), h.control_conn());
        assert_eq!(payload["jid"], format!("pushed-{n:08}"));
        assert_eq!(payload["retry"], 25);
    }
    assert_eq!(h.server.store.queues["elsewhere"].len(), 3);

    // A job that does not validate, or whose relative time was not resolved, is answered at once
    // and never sent.
    let mut bad = follow_up(9);
    bad.jid = "short".into();
    let bad = h.push(bad);
    assert!(matches!(
        h.push_answer(bad),
        Some(Err(PushError::Invalid(e))) if matches!(**e, JobError::JidTooShort(_))
    ));
    let later = Job::builder("Later").after(10 * S).build().unwrap();
    let later = h.push(later);
    assert!(matches!(
        h.push_answer(later),
        Some(Err(PushError::Invalid(e))) if matches!(**e, JobError::UnresolvedRelativeTime { .. })
    ));
    assert_eq!(count_verb(&h, "PUSH"), 3);

    // Pushes still go beside jobs being ACKed, never behind a FETCH.
    for n in 0..20 {
        h.server.push("default", &job(n));
    }
    for n in 10..20 {
        h.push(follow_up(n));
        h.run_for(ms(30));
    }
    h.run_for(5 * S);
    assert_eq!(h.server.store.acks.len(), 20);
    assert_eq!(h.server.store.pushed.len(), 13);
    h.assert_invariants();
}

#[test]
fn a_push_answered_with_an_error_is_the_servers_error() {
    let mut h = Harness::new(config(1), ok_after(100));
    h.run_for(S);
    h.server.store.push_error = Some("NOTUNIQUE Job not unique".into());
    let refused = h.push(follow_up(0));
    match h.push_answer(refused) {
        Some(Err(PushError::Server(e))) => {
            assert_eq!(e.code, "NOTUNIQUE");
            assert_eq!(e.message, "Job not unique");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        !h.push_answer(refused)
            .unwrap()
            .as_ref()
            .unwrap_err()
            .is_outcome_unknown()
    );
    // The connection stays usable.
    h.server.store.push_error = None;
    let control = h.control_conn();
    let ok = h.push(follow_up(1));
    assert_eq!(h.push_answer(ok), Some(&Ok(())));
    assert_eq!(h.control_conn(), control, "no reconnect");
    assert_eq!(h.server.store.pushed.len(), 1);
    h.assert_invariants();
}

#[test]
fn a_drop_with_a_push_in_flight_makes_its_outcome_unknown_and_it_is_not_resent() {
    let mut h = Harness::new(config(1), ok_after(100));
    h.run_for(S);
    let control = h.control_conn().unwrap();
    // The server executes the PUSH, but its reply is lost, then the connection drops.
    h.set_mode(control, Mode::BlackHole);
    let id = h.push(follow_up(0));
    assert_eq!(h.push_answer(id), None);
    assert_eq!(h.worker.pending_pushes(), 1);
    assert_eq!(h.server.store.pushed.len(), 1);
    h.drop_conn(control);
    assert_eq!(
        h.push_answer(id),
        Some(&Err(PushError::OutcomeUnknown(ConnectionError::Eof)))
    );
    assert!(
        h.push_answer(id)
            .unwrap()
            .as_ref()
            .unwrap_err()
            .is_outcome_unknown()
    );
    // The control connection comes back; the PUSH is never sent again (it would be doubled).
    assert!(h.run_until_cond(30 * S, |h| h.control_conn().is_some_and(|c| c != control)));
    h.run_for(10 * S);
    assert_eq!(count_verb(&h, "PUSH"), 1);
    assert_eq!(h.server.store.queues["elsewhere"].len(), 1);
    // A reply timeout is a drop too.
    let mut cfg = config(1);
    cfg.client.reply_timeout = 3 * S;
    let mut h = Harness::new(cfg, ok_after(100));
    h.run_for(S);
    let control = h.control_conn().unwrap();
    h.set_mode(control, Mode::Frozen);
    let id = h.push(follow_up(1));
    let pushed_at = h.t();
    assert!(h.run_until_cond(10 * S, |h| h.push_answer(id).is_some()));
    assert!(matches!(
        h.push_answer(id),
        Some(Err(PushError::OutcomeUnknown(ConnectionError::Timeout(_))))
    ));
    assert_eq!(h.t(), pushed_at + 3 * S);
    h.run_for(10 * S);
    assert_eq!(count_verb(&h, "PUSH"), 1);
    h.assert_invariants();
}

#[test]
fn a_push_waits_for_a_ready_connection_at_most_the_reply_timeout() {
    let mut cfg = config(1);
    cfg.client.reply_timeout = 4 * S;
    let mut h = Harness::new(cfg, ok_after(100));
    h.run_for(S);
    h.crash_server();
    assert_eq!(h.worker.open_connections(), 0);
    // Nothing is ready: the push waits, and goes out once a connection is back.
    let id = h.push(follow_up(0));
    h.run_for(2 * S);
    assert_eq!(h.push_answer(id), None);
    assert_eq!(count_verb(&h, "PUSH"), 0);
    h.start_server();
    assert!(h.run_until_cond(2 * S, |h| h.push_answer(id).is_some()));
    assert_eq!(h.push_answer(id), Some(&Ok(())));
    assert_eq!(h.server.store.pushed.len(), 1);

    // The server stays away: answered NoConnection after reply_timeout, nothing sent.
    h.crash_server();
    let pushed_at = h.t();
    let id = h.push(follow_up(1));
    assert!(h.run_until_cond(30 * S, |h| h.push_answer(id).is_some()));
    assert_eq!(
        h.push_answer(id),
        Some(&Err(PushError::NoConnection { waited: 4 * S }))
    );
    assert_eq!(h.t(), pushed_at + 4 * S);
    h.start_server();
    h.run_for(30 * S);
    assert_eq!(count_verb(&h, "PUSH"), 1);
    assert_eq!(h.worker.pending_pushes(), 0);
    h.assert_invariants();
}

#[test]
fn a_push_during_shutdown_is_sent_and_answered_before_end() {
    let mut h = Harness::new(config(1), ok_after(5_000));
    h.server.push("default", &job(0));
    h.run_for(S);
    assert_eq!(h.worker.running_jobs(), 1);
    h.shutdown();
    assert_eq!(h.worker.lifecycle(), Lifecycle::Terminating);
    // The running job pushes a follow-up during the grace period.
    let id = h.push(follow_up(0));
    assert_eq!(h.push_answer(id), Some(&Ok(())));
    let report = h.run_until_stopped(40 * S);
    assert!(report.is_clean(), "{report:?}");
    let pushed = index_of_event(&h, |e| matches!(e, Event::Pushed { .. }));
    let stopped = index_of_event(&h, |e| matches!(e, Event::Stopped(_)));
    assert!(pushed < stopped);
    let lines = &h.server.store.lines;
    let push_line = lines.iter().position(|(_, _, l)| l.starts_with("PUSH"));
    let first_end = lines.iter().position(|(_, _, l)| l == "END");
    assert!(push_line < first_end, "PUSH before END");
    // After the stop, a push is answered at once and nothing is sent.
    let late = h.push(follow_up(1));
    assert_eq!(h.push_answer(late), Some(&Err(PushError::Stopped)));
    assert_eq!(count_verb(&h, "PUSH"), 1);
    h.assert_invariants();
}

#[test]
fn pushes_left_at_the_hard_stop_are_answered() {
    // A push whose reply never comes: the stop waits for it until the hard stop, then reports
    // its outcome unknown; one queued with no connection ready is answered Stopped.
    let mut cfg = config(1);
    cfg.client.reply_timeout = 120 * S;
    cfg.shutdown_flush_timeout = 3 * S;
    let mut h = Harness::new(cfg, ok_after(100));
    h.run_for(S);
    let control = h.control_conn().unwrap();
    h.set_mode(control, Mode::BlackHole);
    let in_flight = h.push(follow_up(0));
    h.shutdown();
    let shutdown_at = h.t();
    let report = h.run_until_stopped(60 * S);
    assert_eq!(
        h.push_answer(in_flight),
        Some(&Err(PushError::OutcomeUnknown(ConnectionError::Closed)))
    );
    assert!(h.t() <= shutdown_at + 2 * S + 3 * S + ms(50), "{:?}", h.t());
    assert_eq!(report.reason, StopReason::Shutdown);

    let mut cfg = config(1);
    cfg.client.reply_timeout = 120 * S;
    cfg.shutdown_flush_timeout = 3 * S;
    let mut h = Harness::new(cfg, ok_after(100));
    h.run_for(S);
    h.shutdown();
    h.crash_server();
    let queued = h.push(follow_up(1));
    let _report = h.run_until_stopped(60 * S);
    assert_eq!(h.push_answer(queued), Some(&Err(PushError::Stopped)));
    assert_eq!(count_verb(&h, "PUSH"), 0);
    h.assert_invariants();
}
