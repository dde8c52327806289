use super::*;
use faktory_proto::command::{Ack, Beat, Fail, MutateFilter, MutateOp, MutateTarget, Mutation};

fn t(s: &str) -> UnixTime {
    gotime::parse_rfc3339_go(s).unwrap()
}

fn plus(base: UnixTime, secs: i64) -> UnixTime {
    gotime::add_secs(base, secs)
}

fn job(json: &str) -> Job {
    serde_json::from_str(json).unwrap()
}

fn push(json: &str) -> Command {
    // Through the real parser, so missing args carry its marker.
    Command::parse(format!("PUSH {json}").as_bytes()).unwrap()
}

fn fail(jid: &str, errtype: &str, message: &str) -> Command {
    Command::Fail(Fail {
        jid: jid.into(),
        errtype: errtype.into(),
        message: message.into(),
        backtrace: vec![],
    })
}

fn beat(wid: &str, state: Option<WorkerState>) -> Command {
    Command::Beat(Beat {
        wid: wid.into(),
        rss_kb: None,
        current_state: state,
    })
}

fn hello(wid: &str) -> Hello {
    Hello {
        v: Some(2),
        wid: Some(wid.into()),
        hostname: Some("h".into()),
        pid: Some(7),
        labels: Some(vec!["l".into()]),
        ..Hello::default()
    }
}

fn reply(o: Outcome) -> Reply {
    match o {
        Outcome::Reply(r) => r,
        Outcome::Block(w) => panic!("blocked: {w:?}"),
    }
}

fn bulk(o: Outcome) -> String {
    match reply(o) {
        Reply::Bulk(b) => String::from_utf8(b).unwrap(),
        other => panic!("not bulk: {other:?}"),
    }
}

fn err(o: Outcome) -> String {
    match reply(o) {
        Reply::Error(e) => e,
        other => panic!("not an error: {other:?}"),
    }
}

const T0: &str = "2026-11-22T08:24:39Z";

fn store() -> (Store, ConnId, UnixTime) {
    let now = t(T0);
    let mut s = Store::new(StoreConfig::default(), now);
    let c = s.connect();
    s.hello(c, &Hello::default(), now);
    (s, c, now)
}

fn fetch(s: &mut Store, c: ConnId, q: &str, now: UnixTime) -> Outcome {
    s.execute(c, Command::Fetch(vec![q.to_owned()]), now)
}

#[test]
fn push_validation_order_and_texts() {
    let (mut s, c, now) = store();
    let cases = [
        (
            r#"{"jid":"","jobtype":"","args":[],"reserve_for":90000}"#,
            "jobs must have a reasonable jid parameter",
        ),
        (
            r#"{"jid":"short","jobtype":"X","args":[]}"#,
            "jobs must have a reasonable jid parameter",
        ),
        (
            r#"{"jid":"probe-nojobtype","jobtype":"","args":[]}"#,
            "jobs must have a jobtype parameter",
        ),
        (
            r#"{"jid":"probe-noargs01","jobtype":"X","reserve_for":90000}"#,
            "jobs must have an args parameter",
        ),
        (
            r#"{"jid":"probe-argsnull","jobtype":"X","args":null}"#,
            "jobs must have an args parameter",
        ),
        (
            r#"{"jid":"probe-rsv-00001","jobtype":"S","args":[],"reserve_for":90000}"#,
            "jobs cannot be reserved for more than one day",
        ),
        (
            r#"{"jid":"probe-sched-0002","jobtype":"S","args":[],"at":"not-a-time"}"#,
            r#"invalid timestamp for 'at': "not-a-time": parsing time "not-a-time" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse "not-a-time" as "2006""#,
        ),
        (
            r#"{"jid":"probe-fid-000002","jobtype":"F","queue":"f q","args":[]}"#,
            r#"cannot get "f q" queue: queue names must match \A[a-zA-Z0-9._-]+\z"#,
        ),
    ];
    for (j, msg) in cases {
        assert_eq!(err(s.execute(c, push(j), now)), msg, "{j}");
    }
    assert!(s.queue_sizes().is_empty(), "nothing was stored");
    // reserve_for of exactly one day is fine, and a duplicate jid is simply enqueued again.
    for _ in 0..2 {
        let r = reply(s.execute(
            c,
            push(r#"{"jid":"probe-dupe-001","jobtype":"X","args":[],"reserve_for":86400}"#),
            now,
        ));
        assert_eq!(r, Reply::Ok);
    }
    assert_eq!(s.queue_sizes().get("default"), Some(&2));
}

#[test]
fn pushed_job_is_reserialized_like_the_server() {
    let (mut s, c, now) = store();
    reply(s.execute(
        c,
        push(r#"{"jid":"probe-jid-0000001","jobtype":"ProbeJob","args":[1,"two",{"three":3}],"queue":"probe","priority":9}"#),
        now,
    ));
    let body = bulk(fetch(&mut s, c, "probe", now));
    assert_eq!(
        body,
        r#"{"retry":25,"jid":"probe-jid-0000001","queue":"probe","jobtype":"ProbeJob","created_at":"2026-11-22T08:24:39Z","enqueued_at":"2026-11-22T08:24:39Z","args":[1,"two",{"three":3}]}"#
    );
}

#[test]
fn explicit_retry_leaks_into_the_default() {
    let (mut s, c, now) = store();
    reply(s.execute(
        c,
        push(r#"{"jid":"aaaaaaaa1","jobtype":"A","args":[],"retry":3}"#),
        now,
    ));
    reply(s.execute(
        c,
        push(r#"{"jid":"aaaaaaaa2","jobtype":"A","args":[]}"#),
        now,
    ));
    reply(s.execute(
        c,
        push(r#"{"jid":"aaaaaaaa3","jobtype":"A","args":[],"retry":null}"#),
        now,
    ));
    let retries: Vec<Option<i64>> = s.queue_jobs("default").iter().map(|j| j.retry).collect();
    assert_eq!(retries, vec![Some(3), Some(3), Some(3)]);
    // Even a PUSH that fails validation afterwards changed the default (the decode happened).
    let e = err(s.execute(
        c,
        push(r#"{"jid":"short","jobtype":"A","args":[],"retry":7}"#),
        now,
    ));
    assert_eq!(e, "jobs must have a reasonable jid parameter");
    assert_eq!(s.default_retry(), 7);
    // PUSHB reads the default but does not change it.
    let jobs = vec![
        job(r#"{"jid":"bbbbbbbb1","jobtype":"B","args":[]}"#),
        job(r#"{"jid":"bbbbbbbb2","jobtype":"B","args":[],"retry":1}"#),
    ];
    assert_eq!(bulk(s.execute(c, Command::PushBulk(jobs), now)), "{}");
    assert_eq!(s.default_retry(), 7);
    assert_eq!(s.queue_jobs("default").get(3).unwrap().retry, Some(7));
    assert_eq!(s.queue_jobs("default").get(4).unwrap().retry, Some(1));
    // A restart forgets the leak.
    s.restart(now);
    assert_eq!(s.default_retry(), DEFAULT_RETRY);
}

#[test]
fn pushb_partial_failure_map() {
    let (mut s, c, now) = store();
    let jobs = vec![
        job(r#"{"jid":"probe-bulk-0001","jobtype":"B","args":[]}"#),
        job(r#"{"jid":"short","jobtype":"B","args":[]}"#),
        job(r#"{"jid":"probe-bulk-0003","jobtype":"","args":[]}"#),
        job(r#"{"jid":"dupedupe1","jobtype":"","args":[]}"#),
        job(r#"{"jid":"dupedupe1","jobtype":"X","args":[],"at":"bad<"}"#),
    ];
    let body = bulk(s.execute(c, Command::PushBulk(jobs), now));
    assert_eq!(
        body,
        r#"{"dupedupe1":"invalid timestamp for 'at': \"bad\u003c\": parsing time \"bad\u003c\" as \"2006-01-02T15:04:05.999999999Z07:00\": cannot parse \"bad\u003c\" as \"2006\"","probe-bulk-0003":"jobs must have a jobtype parameter","short":"jobs must have a reasonable jid parameter"}"#
    );
    assert_eq!(
        s.queue_sizes().get("default"),
        Some(&1),
        "valid jobs are stored anyway"
    );
    assert_eq!(bulk(s.execute(c, Command::PushBulk(vec![]), now)), "{}");
    // One shared created_at for the batch.
    let jobs = vec![
        job(r#"{"jid":"cccccccc1","jobtype":"C","args":[]}"#),
        job(r#"{"jid":"cccccccc2","jobtype":"C","args":[]}"#),
    ];
    let later = plus(now, 3);
    bulk(s.execute(c, Command::PushBulk(jobs), later));
    let q = s.queue_jobs("default");
    assert_eq!(q[1].created_at, q[2].created_at);
    assert_eq!(q[1].created_at.as_ref().unwrap().to_unix().unwrap(), later);
}

#[test]
fn fetch_order_paused_queues_and_fifo() {
    let (mut s, c, now) = store();
    for (jid, q) in [
        ("aaaaaaaa1", "low"),
        ("aaaaaaaa2", "high"),
        ("aaaaaaaa3", "high"),
    ] {
        reply(s.execute(
            c,
            push(&format!(
                r#"{{"jid":"{jid}","jobtype":"A","args":[],"queue":"{q}"}}"#
            )),
            now,
        ));
    }
    let order = Command::Fetch(vec!["high".into(), "low".into()]);
    assert!(bulk(s.execute(c, order.clone(), now)).contains("aaaaaaaa2"));
    reply(s.execute(
        c,
        Command::QueuePause(QueueSelector::Names(vec!["high".into(), "nosuch".into()])),
        now,
    ));
    assert!(s.is_paused("high"));
    assert!(!s.is_paused("nosuch"), "unknown names are ignored");
    assert!(
        bulk(s.execute(c, order.clone(), now)).contains("aaaaaaaa1"),
        "paused queue skipped"
    );
    match s.execute(c, Command::Fetch(vec!["high".into()]), now) {
        Outcome::Block(w) => assert!(w.queues.is_empty(), "all paused: just wait"),
        other => panic!("{other:?}"),
    }
    reply(s.execute(c, Command::QueueResume(QueueSelector::All), now));
    assert!(bulk(s.execute(c, order.clone(), now)).contains("aaaaaaaa3"));
    match s.execute(c, order, now) {
        Outcome::Block(w) => assert_eq!(w.queues, vec!["high".to_owned(), "low".to_owned()]),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err(s.execute(c, Command::Fetch(vec![]), now)),
        "must call fetch with at least one queue"
    );
}

#[test]
fn blocked_fetch_succeeds_after_a_push() {
    let (mut s, c, now) = store();
    let w = match fetch(&mut s, c, "q1", now) {
        Outcome::Block(w) => w,
        other => panic!("{other:?}"),
    };
    assert_eq!(s.try_fetch(c, &w, now), None);
    let before = s.enqueue_count();
    reply(s.execute(
        c,
        push(r#"{"jid":"aaaaaaaa1","jobtype":"A","args":[],"queue":"q1"}"#),
        now,
    ));
    assert!(s.enqueue_count() > before);
    let body = String::from_utf8(s.try_fetch(c, &w, now).unwrap()).unwrap();
    assert!(body.contains("aaaaaaaa1"));
    assert_eq!(s.reservations().len(), 1);
}

#[test]
fn reserve_for_is_clamped_at_fetch() {
    let (mut s, c, now) = store();
    for (jid, rf) in [
        ("rrrrrrr01", 0),
        ("rrrrrrr02", 1),
        ("rrrrrrr03", 600),
        ("rrrrrrr04", -5),
        ("rrrrrrr05", 86400),
    ] {
        reply(s.execute(
            c,
            push(&format!(
                r#"{{"jid":"{jid}","jobtype":"A","args":[],"reserve_for":{rf}}}"#
            )),
            now,
        ));
        bulk(fetch(&mut s, c, "default", now));
    }
    let mut exp: Vec<(String, i64)> = s
        .reservations()
        .into_iter()
        .map(|r| (r.job.jid, r.expires_at.secs - now.secs))
        .collect();
    exp.sort();
    assert_eq!(
        exp,
        vec![
            ("rrrrrrr01".into(), 1800),
            ("rrrrrrr02".into(), 60),
            ("rrrrrrr03".into(), 600),
            ("rrrrrrr04".into(), 60),
            ("rrrrrrr05".into(), 86400)
        ]
    );
    // The payload keeps the original value.
    assert_eq!(s.reservations()[0].job.reserve_for, Some(1));
}

#[test]
fn ack_unknown_is_ok_and_logged() {
    let (mut s, c, now) = store();
    assert_eq!(
        reply(s.execute(
            c,
            Command::Ack(Ack {
                jid: "no-such-jid-123".into()
            }),
            now
        )),
        Reply::Ok
    );
    reply(s.execute(
        c,
        push(r#"{"jid":"aaaaaaaa1","jobtype":"A","args":[]}"#),
        now,
    ));
    bulk(fetch(&mut s, c, "default", now));
    reply(s.execute(
        c,
        Command::Ack(Ack {
            jid: "aaaaaaaa1".into(),
        }),
        now,
    ));
    assert_eq!(s.acked(), vec!["aaaaaaaa1".to_owned()]);
    assert_eq!(s.ack_log().len(), 2);
    assert!(!s.ack_log()[0].known);
    assert_eq!(s.total_processed(), 1);
    assert!(s.reservations().is_empty());
}

#[test]
fn fail_needs_a_reservation_and_cleans_its_input() {
    let (mut s, c, now) = store();
    assert_eq!(
        err(s.execute(c, fail("nope-nope-1", "E", "m"), now)),
        "Job not found nope-nope-1"
    );
    assert_eq!(err(s.execute(c, fail("", "E", "m"), now)), "missing JID");
    reply(s.execute(c, push(r#"{"jid":"probe-jid-fail001","jobtype":"FailJob","args":[],"queue":"probe2","retry":3}"#), now));
    bulk(fetch(&mut s, c, "probe2", now));
    let long_type = format!("{}é", "x".repeat(99)); // 101 bytes, é split by the 100-byte cut
    let cmd = Command::Fail(Fail {
        jid: "probe-jid-fail001".into(),
        errtype: format!("  {long_type}\n"),
        message: "   ".into(),
        backtrace: (0..60).map(|i| format!("line {i}")).collect(),
    });
    assert_eq!(reply(s.execute(c, cmd, now)), Reply::Ok);
    assert_eq!(
        err(s.execute(c, fail("probe-jid-fail001", "RuntimeError", "again"), now)),
        "Job not found probe-jid-fail001"
    );
    let f = &s.failures()[0];
    assert_eq!(f.errtype, format!("{}\u{fffd}", "x".repeat(99)));
    assert_eq!(f.message, "unknown");
    assert_eq!(f.backtrace.len(), 50);
    let r = s.retries();
    assert_eq!(r.len(), 1);
    let failure = r[0].job.failure.clone().unwrap();
    assert_eq!(failure.retry_count, 0);
    assert_eq!(failure.remaining, 3);
    assert_eq!(failure.message.as_deref(), Some("unknown"));
    assert_eq!(failure.backtrace.as_ref().map(Vec::len), Some(50));
    assert_eq!(failure.failed_at.unwrap().to_unix().unwrap(), now);
    assert_eq!(s.total_failures(), 1);
    assert_eq!(s.total_processed(), 1, "a failure counts as processed too");
}

#[test]
fn retry_schedule_bounds_and_dead_set() {
    // retry_count^4 + 15 + R*(retry_count+1), R in 0..=29, for a job with retry 6.
    let now = t(T0);
    let mut s = Store::new(
        StoreConfig {
            seed: 42,
            jitter: RetryJitter::Random,
        },
        now,
    );
    let c = s.connect();
    reply(s.execute(
        c,
        push(r#"{"jid":"retryme01","jobtype":"A","args":[],"retry":6}"#),
        now,
    ));
    let mut clock = now;
    let mut delays = Vec::new();
    for count in 0..=6i64 {
        bulk(fetch(&mut s, c, "default", clock));
        reply(s.execute(c, fail("retryme01", "E", "boom"), clock));
        if count == 6 {
            break;
        }
        let entry = s.retries().pop().unwrap();
        let delay = entry.at.secs - clock.secs;
        let min = count.pow(4) + 15;
        let max = min + 29 * (count + 1);
        assert!(
            (min..=max).contains(&delay),
            "count {count}: {delay} not in {min}..={max}"
        );
        let f = entry.job.failure.unwrap();
        assert_eq!((f.retry_count, f.remaining), (count, 6 - count));
        assert_eq!(f.next_at.unwrap().to_unix().unwrap(), entry.at);
        delays.push(delay);
        // Not due a second early; due once its tick passes.
        s.advance(plus(entry.at, -1));
        assert_eq!(s.retries().len(), 1);
        clock = plus(entry.at, 5);
        s.advance(clock);
        assert!(s.retries().is_empty());
        assert_eq!(s.queue_sizes().get("default"), Some(&1));
        let fetched = s.queue_jobs("default");
        assert_ne!(
            fetched[0].enqueued_at.as_ref().unwrap().to_unix().unwrap(),
            now,
            "enqueued_at refreshed"
        );
    }
    assert_eq!(delays.len(), 6);
    let dead = s.dead();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].at.secs - clock.secs, DEAD_TTL_SECS);
    let f = dead[0].job.failure.clone().unwrap();
    assert_eq!((f.retry_count, f.remaining), (6, 0));
    assert_eq!(
        f.failed_at.unwrap().to_unix().unwrap(),
        now,
        "failed_at is the first failure"
    );
    assert_eq!(s.failures().last().unwrap().outcome, FailOutcome::Dead);
}

#[test]
fn fixed_jitter_gives_exact_schedule() {
    let now = t(T0);
    let mut s = Store::new(
        StoreConfig {
            seed: 1,
            jitter: RetryJitter::Fixed(4),
        },
        now,
    );
    let c = s.connect();
    reply(s.execute(
        c,
        push(r#"{"jid":"retryme01","jobtype":"A","args":[],"retry":25}"#),
        now,
    ));
    bulk(fetch(&mut s, c, "default", now));
    reply(s.execute(c, fail("retryme01", "E", "boom"), now));
    assert_eq!(s.retries()[0].at, plus(now, 19));
}

#[test]
fn retry_zero_discards_and_negative_goes_dead() {
    let (mut s, c, now) = store();
    reply(s.execute(
        c,
        push(r#"{"jid":"zero00001","jobtype":"A","args":[],"retry":0}"#),
        now,
    ));
    reply(s.execute(
        c,
        push(r#"{"jid":"minus0001","jobtype":"A","args":[],"retry":-1}"#),
        now,
    ));
    bulk(fetch(&mut s, c, "default", now));
    bulk(fetch(&mut s, c, "default", now));
    reply(s.execute(c, fail("zero00001", "E", "m"), now));
    reply(s.execute(c, fail("minus0001", "E", "m"), now));
    assert!(s.retries().is_empty());
    let dead = s.dead();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].job.jid, "minus0001");
    let outcomes: Vec<FailOutcome> = s.failures().iter().map(|f| f.outcome).collect();
    assert_eq!(outcomes, vec![FailOutcome::Discarded, FailOutcome::Dead]);
    assert_eq!(s.total_failures(), 2, "a discarded failure still counts");
}

#[test]
fn reservation_expiry_is_a_failure_on_the_15s_tick() {
    let start = t("2026-11-22T08:19:55Z");
    let mut s = Store::new(
        StoreConfig {
            seed: 1,
            jitter: RetryJitter::Fixed(4),
        },
        start,
    );
    let c = s.connect();
    let now = t("2026-11-22T08:22:31Z");
    s.advance(now);
    reply(s.execute(
        c,
        push(r#"{"jid":"probe-rsv-000001","jobtype":"S","args":[],"queue":"tq","reserve_for":1}"#),
        now,
    ));
    bulk(fetch(&mut s, c, "tq", now));
    // Clamped to 60 s: expires at 08:23:31, processed by the 08:23:45 tick.
    s.advance(t("2026-11-22T08:23:44Z"));
    assert_eq!(s.reservations().len(), 1);
    s.advance(t("2026-11-22T08:23:45Z"));
    assert!(s.reservations().is_empty());
    let r = s.retries();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].at, t("2026-11-22T08:24:04Z"));
    let f = r[0].job.failure.clone().unwrap();
    assert_eq!(f.errtype.as_deref(), Some("ReservationExpired"));
    assert_eq!(
        f.message.as_deref(),
        Some("Faktory job reservation expired")
    );
    assert_eq!(f.backtrace, None);
    assert_eq!(s.failures()[0].reason, FailReason::ReservationExpired);
    // Back on its queue at the 08:24:05 tick, and a late FAIL is "Job not found".
    s.advance(t("2026-11-22T08:24:05Z"));
    assert_eq!(s.queue_jobs("tq").len(), 1);
    assert_eq!(
        err(s.execute(c, fail("probe-rsv-000001", "E", "late"), now)),
        "Job not found probe-rsv-000001"
    );
    let info: Value = serde_json::from_str(&s.info_json(t("2026-11-22T08:24:06Z"))).unwrap();
    assert_eq!(info["faktory"]["tasks"]["Busy"]["reaped"], 1);
    assert_eq!(info["faktory"]["total_failures"], 1);
}

#[test]
fn scheduled_jobs_surface_on_the_5s_tick() {
    let (mut s, c, now) = store();
    reply(s.execute(c, push(r#"{"jid":"sched0001","jobtype":"S","args":[],"queue":"tq","at":"2026-11-22T08:24:42Z"}"#), now));
    // Future: scheduled, queue not even created yet; a bad queue name is not checked either.
    reply(s.execute(c, push(r#"{"jid":"sched0002","jobtype":"S","args":[],"queue":"b a d","at":"2026-11-22T08:24:42Z"}"#), now));
    // Past `at`: enqueued now, `at` kept.
    reply(s.execute(c, push(r#"{"jid":"sched0003","jobtype":"S","args":[],"queue":"tq","at":"2000-01-01T00:00:00Z"}"#), now));
    assert_eq!(s.scheduled().len(), 2);
    assert_eq!(s.queue_sizes().get("tq"), Some(&1));
    assert!(s.queue_jobs("tq")[0].at.is_some());
    s.advance(t("2026-11-22T08:24:44Z"));
    assert_eq!(s.scheduled().len(), 2, "not before the tick");
    s.advance(t("2026-11-22T08:24:45Z"));
    assert!(s.scheduled().is_empty());
    assert_eq!(
        s.queue_sizes().get("tq"),
        Some(&2),
        "the bad-queue job is silently lost"
    );
    let j = &s.queue_jobs("tq")[1];
    assert_eq!(j.jid, "sched0001");
    assert_eq!(
        j.enqueued_at.as_ref().unwrap().as_str(),
        "2026-11-22T08:24:45Z"
    );
}

#[test]
fn beat_state_is_sticky_and_monotonic() {
    let (mut s, _, now) = store();
    let w = s.connect();
    s.hello(w, &hello("probe-wid-quiet"), now);
    assert_eq!(
        err(s.execute(w, beat("nobody", None), now)),
        "unknown worker nobody"
    );
    assert_eq!(
        reply(s.execute(w, beat("probe-wid-quiet", None), now)),
        Reply::Ok
    );
    assert_eq!(
        bulk(s.execute(w, beat("probe-wid-quiet", Some(WorkerState::Quiet)), now)),
        r#"{"state":"quiet"}"#
    );
    assert_eq!(
        bulk(s.execute(w, beat("probe-wid-quiet", None), now)),
        r#"{"state":"quiet"}"#
    );
    assert_eq!(
        bulk(s.execute(
            w,
            beat("probe-wid-quiet", Some(WorkerState::Terminate)),
            now
        )),
        r#"{"state":"terminate"}"#
    );
    assert_eq!(
        bulk(s.execute(w, beat("probe-wid-quiet", Some(WorkerState::Running)), now)),
        r#"{"state":"terminate"}"#
    );
    assert!(
        s.quiet("probe-wid-quiet"),
        "quiet after terminate is accepted but changes nothing"
    );
    assert_eq!(
        s.worker("probe-wid-quiet").unwrap().state,
        WorkerState::Terminate
    );
    // The creating connection's FETCH is refused; another connection of the same wid is not.
    reply(s.execute(
        w,
        push(r#"{"jid":"aaaaaaaa1","jobtype":"A","args":[]}"#),
        now,
    ));
    assert_eq!(
        fetch(&mut s, w, "default", now),
        Outcome::Block(FetchWait { queues: vec![] })
    );
    let w2 = s.connect();
    s.hello(w2, &hello("probe-wid-quiet"), now);
    assert!(bulk(fetch(&mut s, w2, "default", now)).contains("aaaaaaaa1"));
    assert_eq!(s.reservations()[0].wid, "probe-wid-quiet");
}

#[test]
fn operator_quiet_and_rss() {
    let (mut s, _, now) = store();
    let w = s.connect();
    s.hello(w, &hello("w1"), now);
    assert!(!s.quiet("nobody"));
    let b = Command::Beat(Beat {
        wid: "w1".into(),
        rss_kb: Some(54176),
        current_state: None,
    });
    assert_eq!(reply(s.execute(w, b, now)), Reply::Ok);
    assert_eq!(s.worker("w1").unwrap().rss_kb, 54176);
    assert!(s.quiet("w1"));
    assert_eq!(
        bulk(s.execute(w, beat("w1", None), now)),
        r#"{"state":"quiet"}"#
    );
    assert_eq!(
        s.worker("w1").unwrap().rss_kb,
        0,
        "a BEAT without rss_kb resets it"
    );
    assert!(s.terminate("w1"));
    assert_eq!(
        bulk(s.execute(w, beat("w1", None), now)),
        r#"{"state":"terminate"}"#
    );
    let info = s.worker("w1").unwrap();
    assert_eq!(
        (info.hostname.as_deref(), info.pid, info.labels.clone()),
        (Some("h"), Some(7), vec!["l".to_owned()])
    );
}

#[test]
fn heartbeat_reaping_closes_all_connections_of_the_worker() {
    let start = t("2026-11-22T08:00:00.5Z");
    let mut s = Store::new(StoreConfig::default(), start);
    let a = s.connect();
    let b = s.connect();
    let other = s.connect();
    s.hello(a, &hello("idle"), start);
    s.hello(b, &hello("idle"), plus(start, 30));
    s.hello(other, &hello("busy"), start);
    // "busy" beats every 20 s; "idle" never does (a later HELLO does not refresh the heartbeat).
    let mut closed = Vec::new();
    let mut now = start;
    for _ in 0..4 {
        now = plus(now, 20);
        closed.extend(s.advance(now));
        if s.worker("busy").is_some() {
            reply(s.execute(other, beat("busy", None), now));
        }
    }
    // Reaped at the first 15 s tick more than 60 s after the first HELLO: 08:01:15.5.
    assert_eq!(closed, vec![a, b]);
    assert!(s.worker("idle").is_none());
    assert!(s.worker("busy").is_some());
    assert_eq!(s.connection_count(), 1);
    assert_eq!(
        err(s.execute(other, beat("idle", None), now)),
        "unknown worker idle"
    );
    let info: Value = serde_json::from_str(&s.info_json(now)).unwrap();
    assert_eq!(info["faktory"]["tasks"]["Workers"]["reaped"], 1);
    // Disconnecting the reaped connections later is harmless.
    s.disconnect(a);
    s.disconnect(b);
    assert_eq!(s.connection_count(), 1);
}

#[test]
fn last_connection_closing_deletes_the_worker() {
    let (mut s, _, now) = store();
    let a = s.connect();
    let b = s.connect();
    s.hello(a, &hello("w"), now);
    s.hello(b, &hello("w"), now);
    s.disconnect(a);
    assert!(s.worker("w").is_some());
    s.disconnect(b);
    assert!(s.worker("w").is_none());
}

#[test]
fn queue_commands_with_wildcards() {
    let (mut s, c, now) = store();
    for q in ["a", "b", "c"] {
        reply(s.execute(
            c,
            push(&format!(
                r#"{{"jid":"job-in-{q}","jobtype":"A","args":[],"queue":"{q}"}}"#
            )),
            now,
        ));
    }
    reply(s.execute(c, Command::QueuePause(QueueSelector::All), now));
    assert!(["a", "b", "c"].iter().all(|q| s.is_paused(q)));
    reply(s.execute(
        c,
        Command::QueueRemove(QueueSelector::Names(vec!["b".into()])),
        now,
    ));
    assert_eq!(
        s.queue_sizes().keys().cloned().collect::<Vec<_>>(),
        vec!["a".to_owned(), "c".to_owned()]
    );
    assert!(!s.is_paused("b"));
    let later = gotime::add(now, Duration::from_millis(1500));
    let lat = bulk(s.execute(
        c,
        Command::QueueLatency(vec!["c".into(), "a".into(), "nosuchq".into()]),
        later,
    ));
    assert_eq!(lat, r#"{"a":1.5,"c":1.5,"nosuchq":0}"#);
    assert_eq!(bulk(s.execute(c, Command::QueueLatency(vec![]), now)), "{}");
    reply(s.execute(c, Command::QueueRemove(QueueSelector::All), now));
    assert!(s.queue_sizes().is_empty());
}

fn mutation(cmd: MutateOp, target: MutateTarget, filter: Option<MutateFilter>) -> Command {
    Command::Mutate(Mutation {
        cmd,
        target,
        filter,
    })
}

fn filter(jobtype: Option<&str>, jids: &[&str], regexp: Option<&str>) -> Option<MutateFilter> {
    Some(MutateFilter {
        jobtype: jobtype.map(str::to_owned),
        jids: jids.iter().map(|s| (*s).to_owned()).collect(),
        regexp: regexp.map(str::to_owned),
    })
}

#[test]
fn mutate_filters() {
    let (mut s, c, now) = store();
    let at = plus(now, 3600);
    for (jid, jt, arg) in [
        ("mut-0001", "SyncJob", "uid:123"),
        ("mut-0002", "SyncJob", "uid:456"),
        ("mut-0003", "Other", "uid:123"),
    ] {
        s.add_retry(
            job(&format!(
                r#"{{"jid":"{jid}","jobtype":"{jt}","args":["{arg}"]}}"#
            )),
            at,
            now,
        );
    }
    let jids = |v: Vec<SetEntry>| v.into_iter().map(|e| e.job.jid).collect::<Vec<_>>();
    // jids win over jobtype and regexp.
    reply(s.execute(
        c,
        mutation(
            MutateOp::Kill,
            MutateTarget::Retries,
            filter(Some("Other"), &["mut-0002"], Some("*nomatch*")),
        ),
        now,
    ));
    assert_eq!(jids(s.dead()), vec!["mut-0002"]);
    assert_eq!(s.dead()[0].at, plus(now, DEAD_TTL_SECS));
    // regexp is a glob over the payload, narrowed by jobtype.
    reply(s.execute(
        c,
        mutation(
            MutateOp::Discard,
            MutateTarget::Retries,
            filter(Some("SyncJob"), &[], Some("*uid:123*")),
        ),
        now,
    ));
    assert_eq!(jids(s.retries()), vec!["mut-0003"]);
    // jobtype alone.
    reply(s.execute(
        c,
        mutation(
            MutateOp::Requeue,
            MutateTarget::Retries,
            filter(Some("Other"), &[], None),
        ),
        now,
    ));
    assert!(s.retries().is_empty());
    let requeued = s.queue_jobs("default");
    assert_eq!(requeued.len(), 1);
    assert_eq!(
        requeued[0].enqueued_at, None,
        "requeue does not refresh enqueued_at"
    );
    // discard without a filter clears; clear ignores its filter.
    reply(s.execute(
        c,
        mutation(MutateOp::Discard, MutateTarget::Dead, None),
        now,
    ));
    assert!(s.dead().is_empty());
    s.add_scheduled(
        job(r#"{"jid":"mut-0004","jobtype":"X","args":[]}"#),
        at,
        now,
    );
    reply(s.execute(
        c,
        mutation(
            MutateOp::Clear,
            MutateTarget::Scheduled,
            filter(None, &["nomatch"], None),
        ),
        now,
    ));
    assert!(s.scheduled().is_empty());
}

#[test]
fn flush_keeps_names_pauses_and_in_memory_reservations() {
    let (mut s, c, now) = store();
    reply(s.execute(
        c,
        push(r#"{"jid":"aaaaaaaa1","jobtype":"A","args":[],"queue":"rq","reserve_for":60}"#),
        now,
    ));
    reply(s.execute(
        c,
        push(r#"{"jid":"aaaaaaaa2","jobtype":"A","args":[],"queue":"rq"}"#),
        now,
    ));
    reply(s.execute(
        c,
        push(r#"{"jid":"aaaaaaaa3","jobtype":"A","args":[],"queue":"rq"}"#),
        now,
    ));
    bulk(fetch(&mut s, c, "rq", now));
    bulk(fetch(&mut s, c, "rq", now));
    reply(s.execute(
        c,
        Command::QueuePause(QueueSelector::Names(vec!["rq".into()])),
        now,
    ));
    reply(s.execute(
        c,
        Command::Ack(Ack {
            jid: "aaaaaaaa2".into(),
        }),
        now,
    ));
    assert_eq!(reply(s.execute(c, Command::Flush, now)), Reply::Ok);
    assert_eq!(s.queue_sizes().get("rq"), Some(&0), "the name stays known");
    assert!(s.is_paused("rq"));
    assert_eq!(s.total_processed(), 0);
    let info: Value = serde_json::from_str(&s.info_json(now)).unwrap();
    assert_eq!(info["faktory"]["sets"]["working"], 0);
    assert_eq!(info["faktory"]["tasks"]["Busy"]["size"], 1);
    // The pre-flush reservation never expires, and FAIL on it is +OK doing nothing.
    s.advance(plus(now, 3600));
    assert_eq!(s.reservations().len(), 1);
    assert!(!s.reservations()[0].persisted);
    assert_eq!(
        reply(s.execute(c, fail("aaaaaaaa1", "E", "m"), now)),
        Reply::Ok
    );
    assert_eq!(s.total_failures(), 0);
    assert!(s.retries().is_empty());
    assert_eq!(s.failures()[0].outcome, FailOutcome::Ignored);
}

#[test]
fn restart_keeps_redis_state_only() {
    let (mut s, c, now) = store();
    let w = s.connect();
    s.hello(w, &hello("w"), now);
    reply(s.execute(
        c,
        push(r#"{"jid":"aaaaaaaa1","jobtype":"A","args":[]}"#),
        now,
    ));
    reply(s.execute(
        c,
        push(r#"{"jid":"aaaaaaaa2","jobtype":"A","args":[]}"#),
        now,
    ));
    bulk(fetch(&mut s, w, "default", now));
    reply(s.execute(c, Command::QueuePause(QueueSelector::All), now));
    s.restart(plus(now, 10));
    assert_eq!(s.connection_count(), 0);
    assert!(s.workers().is_empty());
    assert_eq!(s.queue_sizes().get("default"), Some(&1));
    assert_eq!(s.reservations().len(), 1);
    assert!(s.is_paused("default"));
    assert_eq!(s.command_count(), 0);
    // ACK after the restart still finds the reservation.
    let c2 = s.connect();
    reply(s.execute(
        c2,
        Command::Ack(Ack {
            jid: "aaaaaaaa1".into(),
        }),
        now,
    ));
    assert_eq!(s.acked(), vec!["aaaaaaaa1".to_owned()]);
}

#[test]
fn info_shape_and_counts() {
    let (mut s, c, now) = store();
    let w = s.connect();
    s.hello(w, &hello("probe-wid-0001"), now);
    reply(s.execute(
        w,
        push(r#"{"jid":"probe-jid-0000001","jobtype":"ProbeJob","args":[1],"queue":"probe"}"#),
        now,
    ));
    bulk(fetch(&mut s, w, "probe", now));
    reply(s.execute(
        w,
        Command::Ack(Ack {
            jid: "probe-jid-0000001".into(),
        }),
        now,
    ));
    // An unknown verb is not counted; other rejected lines are.
    s.invalid(&CommandError::UnknownCommand("NOPE".into()));
    s.invalid(&CommandError::Internal);
    let body = bulk(s.execute(c, Command::Info, plus(now, 3)));
    assert_eq!(
        body,
        r#"{"now":"2026-11-22T08:24:42Z","server_utc_time":"08:24:42 UTC","faktory":{"queues":{"probe":0},"sets":{"dead":0,"retries":0,"scheduled":0,"working":0},"tasks":{"Busy":{"reaped":0,"size":0},"Dead":{"cycles":0,"enqueued":0,"size":0,"wall_time_sec":0},"Retries":{"cycles":0,"enqueued":0,"size":0,"wall_time_sec":0},"Scheduled":{"cycles":0,"enqueued":0,"size":0,"wall_time_sec":0},"Workers":{"reaped":0,"size":1}},"total_failures":0,"total_processed":1,"total_enqueued":0,"total_queues":1},"server":{"description":"Faktory","faktory_version":"1.10.0","uptime":3,"connections":2,"command_count":5,"used_memory_mb":0}}"#
    );
}

#[test]
fn enterprise_commands_and_second_hello() {
    let (mut s, c, now) = store();
    assert_eq!(
        err(s.execute(c, Command::TrackGet("x".into()), now)),
        "tracking subsystem is only available in Faktory Enterprise"
    );
    assert_eq!(
        err(s.execute(c, Command::BatchOpen("b-1".into()), now)),
        "batch subsystem is only available in Faktory Enterprise"
    );
    let before = s.command_count();
    assert_eq!(
        err(s.execute(c, Command::Hello(Hello::default()), now)),
        "unknown command HELLO"
    );
    assert_eq!(s.command_count(), before);
    assert_eq!(reply(s.execute(c, Command::End, now)), Reply::Close);
}

#[test]
fn tick_counts_follow_the_clock_phase() {
    let start = t("2026-11-22T08:24:36.2Z");
    let mut s = Store::new(StoreConfig::default(), start);
    // Ticks at .2 past each second; only 08:24:40.2 is on a multiple of 5 up to 08:24:44.
    s.advance(t("2026-11-22T08:24:44Z"));
    let info: Value = serde_json::from_str(&s.info_json(t("2026-11-22T08:24:44Z"))).unwrap();
    assert_eq!(info["faktory"]["tasks"]["Scheduled"]["cycles"], 1);
    assert_eq!(info["faktory"]["tasks"]["Dead"]["cycles"], 0);
    s.advance(t("2026-11-22T08:26:00.2Z"));
    let info: Value = serde_json::from_str(&s.info_json(t("2026-11-22T08:26:00.2Z"))).unwrap();
    assert_eq!(info["faktory"]["tasks"]["Retries"]["cycles"], 17);
    assert_eq!(info["faktory"]["tasks"]["Dead"]["cycles"], 2);
}

#[test]
fn dead_jobs_are_purged_after_180_days() {
    let (mut s, _, now) = store();
    s.add_dead(
        job(r#"{"jid":"dead00001","jobtype":"A","args":[]}"#),
        plus(now, 120),
        now,
    );
    s.add_dead(
        job(r#"{"jid":"dead00002","jobtype":"A","args":[]}"#),
        plus(now, DEAD_TTL_SECS),
        now,
    );
    s.advance(plus(now, 200));
    assert_eq!(s.dead().len(), 1);
    s.advance(plus(now, DEAD_TTL_SECS + 60));
    assert!(s.dead().is_empty());
}

#[test]
fn loading_resolves_times_relative_to_the_push() {
    let (mut s, _c, now) = store();
    let later = faktory_proto::job::Job::builder("Later")
        .jid("relative-1")
        .after(std::time::Duration::from_secs(90))
        .expires_in(std::time::Duration::from_secs(600))
        .build()
        .unwrap();
    s.push(later, now).unwrap();
    let scheduled = s.scheduled();
    assert_eq!(scheduled.len(), 1);
    assert_eq!(scheduled[0].at, plus(now, 90));
    let expires = scheduled[0].job.custom_value("expires_at").unwrap();
    assert_eq!(t(expires.as_str().unwrap()), plus(now, 600), "{expires}");
    // A job built without retry gets the server's default, as a PUSH without retry would.
    let plain = faktory_proto::job::Job::builder("Now").build().unwrap();
    s.enqueue_now(plain, now).unwrap();
    assert_eq!(s.queue_jobs("default")[0].retry, Some(DEFAULT_RETRY));
}

#[test]
fn idle_means_no_queued_and_no_reserved_job() {
    let (mut s, c, now) = store();
    assert!(s.is_idle());
    s.push(job(r#"{"jid":"idle-0001","jobtype":"I","args":[]}"#), now)
        .unwrap();
    assert!(!s.is_idle());
    assert!(matches!(
        fetch(&mut s, c, "default", now),
        Outcome::Reply(Reply::Bulk(_))
    ));
    assert!(!s.is_idle(), "reserved");
    reply(s.execute(
        c,
        Command::Ack(Ack {
            jid: "idle-0001".into(),
        }),
        now,
    ));
    assert!(s.is_idle());
    // A scheduled job is not waited for.
    s.add_scheduled(
        job(r#"{"jid":"idle-0002","jobtype":"I","args":[]}"#),
        plus(now, 60),
        now,
    );
    assert!(s.is_idle());
}
