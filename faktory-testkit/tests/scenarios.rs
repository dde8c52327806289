//! Scenario tests over real TCP sockets, with the server clock stepped, never slept.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use std::time::Duration;

use common::{Client, Frame, READ_LIMIT, err, ok};
use faktory_testkit::proto::time::{Timestamp, UnixTime};
use faktory_testkit::{Clock, FailOutcome, Fault, RetryJitter, TestServer};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const START: &str = "2026-11-22T08:00:00Z";

fn ts(s: &str) -> UnixTime {
    Timestamp::from_raw(s).to_unix().unwrap()
}

fn secs_between(a: UnixTime, b: UnixTime) -> i64 {
    a.secs - b.secs
}

async fn server() -> TestServer {
    TestServer::builder()
        .clock(Clock::manual(ts(START)))
        .fetch_timeout(Duration::from_millis(100))
        .start()
        .await
        .unwrap()
}

fn job_json(jid: &str, extra: &str) -> String {
    format!(r#"{{"jid":"{jid}","jobtype":"TestJob","args":[1]{extra}}}"#)
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(READ_LIMIT, f)
        .await
        .expect("timed out")
}

#[tokio::test]
async fn heartbeat_reaping_closes_all_worker_connections() {
    let server = server().await;
    let addr = server.addr();
    let mut w1a = Client::worker(addr, "w1").await;
    let mut w1b = Client::worker(addr, "w1").await;
    let mut w2 = Client::worker(addr, "w2").await;
    let mut p = Client::producer(addr).await;
    assert_eq!(server.worker("w1").unwrap().connections.len(), 2);
    // w2 beats at 45 s, w1 never does.
    server.advance(Duration::from_secs(45)).unwrap();
    assert_eq!(w2.cmd(r#"BEAT {"wid":"w2","rss_kb":1024}"#).await, ok());
    assert!(server.worker("w1").is_some(), "not reaped before 60 s");
    // 75 s after w1's HELLO: the 15 s task reaped it and closed both its connections.
    server.advance(Duration::from_secs(30)).unwrap();
    assert!(server.worker("w1").is_none());
    w1a.expect_eof().await;
    w1b.expect_eof().await;
    assert_eq!(
        p.cmd(r#"BEAT {"wid":"w1"}"#).await,
        err("unknown worker w1")
    );
    assert_eq!(w2.cmd(r#"BEAT {"wid":"w2"}"#).await, ok());
    within(server.wait_for_connections(2)).await;
    assert_eq!(server.info()["faktory"]["tasks"]["Workers"]["reaped"], 1);
    // A new HELLO with the same wid re-creates the record, running again.
    let mut again = Client::worker(addr, "w1").await;
    assert_eq!(again.cmd(r#"BEAT {"wid":"w1"}"#).await, ok());
}

#[tokio::test]
async fn reservation_expiry_goes_to_retries_as_reservation_expired() {
    let server = TestServer::builder()
        .clock(Clock::manual(ts(START)))
        .fetch_timeout(Duration::from_millis(100))
        .retry_jitter(RetryJitter::Fixed(10))
        .start()
        .await
        .unwrap();
    let mut w = Client::worker(server.addr(), "w").await;
    assert_eq!(
        w.cmd(&format!(
            "PUSH {}",
            job_json("rsv-job-0001", r#","reserve_for":60"#)
        ))
        .await,
        ok()
    );
    let fetched = w.cmd("FETCH default").await.json();
    assert_eq!(fetched["reserve_for"], 60);
    assert_eq!(server.reservations()[0].wid, "w");
    // The worker goes silent (and gets reaped along the way); a producer connection carries on.
    drop(w);
    let mut w = Client::producer(server.addr()).await;
    // Due at 08:01:00, reaped by the 08:01:00 tick (expiry <= now).
    server.advance(Duration::from_secs(59)).unwrap();
    assert_eq!(server.reservations().len(), 1);
    server.advance(Duration::from_secs(1)).unwrap();
    assert!(server.reservations().is_empty());
    let retries = server.retries();
    assert_eq!(retries.len(), 1);
    assert_eq!(secs_between(retries[0].at, server.now()), 15 + 10);
    let f = retries[0].job.failure.clone().unwrap();
    assert_eq!(f.errtype.as_deref(), Some("ReservationExpired"));
    assert_eq!(
        f.message.as_deref(),
        Some("Faktory job reservation expired")
    );
    // The worker's late ACK is +OK and changes nothing; its late FAIL is "Job not found".
    assert_eq!(w.cmd(r#"ACK {"jid":"rsv-job-0001"}"#).await, ok());
    assert_eq!(server.retries().len(), 1);
    assert_eq!(
        w.cmd(r#"FAIL {"jid":"rsv-job-0001","errtype":"E","message":"m"}"#)
            .await,
        err("Job not found rsv-job-0001")
    );
    // Back on its queue at the first 5 s tick after next_at, with its failure.
    server.advance(Duration::from_secs(25)).unwrap();
    let again = w.cmd("FETCH default").await.json();
    assert_eq!(again["failure"]["errtype"], "ReservationExpired");
    assert_eq!(again["failure"]["retry_count"], 0);
    assert_eq!(again["failure"]["remaining"], 25);
    assert_eq!(server.info()["faktory"]["total_failures"], 1);
}

#[tokio::test]
async fn retry_schedule_then_dead_set() {
    let server = server().await;
    // A producer connection: no heartbeat to keep up while the clock jumps.
    let mut w = Client::producer(server.addr()).await;
    assert_eq!(
        w.cmd(&format!(
            "PUSH {}",
            job_json("retry-job-01", r#","retry":2"#)
        ))
        .await,
        ok()
    );
    for count in 0..=2i64 {
        assert_eq!(w.cmd("FETCH default").await.json()["jid"], "retry-job-01");
        let fail = r#"FAIL {"jid":"retry-job-01","errtype":"  Boom  ","message":"failed","backtrace":["a.rb:1","b.rb:2"]}"#;
        assert_eq!(w.cmd(fail).await, ok());
        if count == 2 {
            break;
        }
        let r = server.retries();
        assert_eq!(r.len(), 1);
        let delay = secs_between(r[0].at, server.now());
        let min = count.pow(4) + 15;
        assert!(
            (min..=min + 29 * (count + 1)).contains(&delay),
            "retry {count}: {delay} s"
        );
        let f = r[0].job.failure.clone().unwrap();
        assert_eq!((f.retry_count, f.remaining), (count, 2 - count));
        assert_eq!(f.errtype.as_deref(), Some("Boom"), "trimmed");
        assert_eq!(f.backtrace.unwrap(), vec!["a.rb:1", "b.rb:2"]);
        server
            .advance(Duration::from_secs(u64::try_from(delay).unwrap() + 5))
            .unwrap();
        assert!(server.retries().is_empty());
    }
    let dead = server.dead();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].job.failure.as_ref().unwrap().retry_count, 2);
    assert_eq!(server.failures().last().unwrap().outcome, FailOutcome::Dead);
    assert_eq!(server.failed(), vec!["retry-job-01"; 3]);
}

#[tokio::test]
async fn retry_zero_discards_and_negative_goes_dead() {
    let server = server().await;
    let mut w = Client::worker(server.addr(), "w").await;
    let bulk = format!(
        "PUSHB [{},{}]",
        job_json("zero-retry-1", r#","retry":0"#),
        job_json("minus-retry1", r#","retry":-1"#)
    );
    assert_eq!(w.cmd(&bulk).await, Frame::Bulk(b"{}".to_vec()));
    for _ in 0..2 {
        let jid = w.cmd("FETCH default").await.json()["jid"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(w.cmd(&format!(r#"FAIL {{"jid":"{jid}"}}"#)).await, ok());
    }
    assert!(server.retries().is_empty());
    let dead = server.dead();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].job.jid, "minus-retry1");
    let f = dead[0].job.failure.clone().unwrap();
    assert_eq!(
        (f.errtype.as_deref(), f.message.as_deref()),
        (Some("unknown"), Some("unknown"))
    );
    assert_eq!(server.failures()[0].outcome, FailOutcome::Discarded);
}

#[tokio::test]
async fn scheduled_job_surfaces_when_due() {
    let server = server().await;
    let mut w = Client::worker(server.addr(), "w").await;
    let push = format!(
        "PUSH {}",
        job_json(
            "sched-job-01",
            r#","queue":"later","at":"2026-11-22T08:00:30Z""#
        )
    );
    assert_eq!(w.cmd(&push).await, ok());
    assert_eq!(server.scheduled().len(), 1);
    assert!(
        server.queues().is_empty(),
        "a scheduled job does not create its queue yet"
    );
    assert_eq!(w.cmd("FETCH later").await, Frame::Null);
    server.advance(Duration::from_secs(29)).unwrap();
    assert_eq!(w.cmd("FETCH later").await, Frame::Null);
    server.advance(Duration::from_secs(1)).unwrap();
    let job = w.cmd("FETCH later").await.json();
    assert_eq!(job["jid"], "sched-job-01");
    assert_eq!(job["at"], "2026-11-22T08:00:30Z");
    assert_eq!(job["enqueued_at"], "2026-11-22T08:00:30Z");
}

#[tokio::test]
async fn quiet_and_terminate_are_sticky_and_operator_driven() {
    let server = server().await;
    let addr = server.addr();
    let mut control = Client::worker(addr, "wq").await;
    let mut fetcher = Client::worker(addr, "wq").await;
    let info = server.worker("wq").unwrap();
    assert_eq!(
        (info.hostname.as_deref(), info.pid, info.labels.clone()),
        (Some("test-host"), Some(4242), vec!["rust".to_owned()])
    );
    assert!(!server.quiet("nobody"));
    assert!(server.quiet("wq"));
    let quiet = Frame::Bulk(br#"{"state":"quiet"}"#.to_vec());
    let terminate = Frame::Bulk(br#"{"state":"terminate"}"#.to_vec());
    assert_eq!(
        control.cmd(r#"BEAT {"wid":"wq","rss_kb":2048}"#).await,
        quiet
    );
    assert_eq!(server.worker("wq").unwrap().rss_kb, 2048);
    assert_eq!(
        control.cmd(r#"BEAT {"wid":"wq"}"#).await,
        quiet,
        "repeated on every beat"
    );
    // The server refuses FETCH only on the connection whose HELLO created the record.
    assert_eq!(
        control
            .cmd(&format!("PUSH {}", job_json("quiet-job-01", "")))
            .await,
        ok()
    );
    assert_eq!(control.cmd("FETCH default").await, Frame::Null);
    assert_eq!(
        fetcher.cmd("FETCH default").await.json()["jid"],
        "quiet-job-01"
    );
    assert!(server.terminate("wq"));
    assert_eq!(control.cmd(r#"BEAT {"wid":"wq"}"#).await, terminate);
    assert_eq!(
        control
            .cmd(r#"BEAT {"wid":"wq","current_state":"running"}"#)
            .await,
        terminate,
        "never backwards"
    );
    assert!(server.quiet("wq"));
    assert_eq!(
        control
            .cmd(r#"BEAT {"wid":"wq","current_state":"quiet"}"#)
            .await,
        terminate
    );
}

#[tokio::test]
async fn queue_commands_over_the_wire() {
    let server = server().await;
    let mut p = Client::producer(server.addr()).await;
    for q in ["alpha", "beta"] {
        assert_eq!(
            p.cmd(&format!(
                "PUSH {}",
                job_json(&format!("job-in-{q}"), &format!(r#","queue":"{q}""#))
            ))
            .await,
            ok()
        );
    }
    assert_eq!(p.cmd("QUEUE PAUSE alpha nosuch").await, ok());
    assert!(server.is_paused("alpha"));
    assert_eq!(p.cmd("FETCH alpha beta").await.json()["jid"], "job-in-beta");
    assert_eq!(p.cmd("FETCH alpha").await, Frame::Null);
    assert_eq!(p.cmd("QUEUE RESUME *").await, ok());
    server.advance(Duration::from_millis(2500)).unwrap();
    assert_eq!(
        p.cmd("QUEUE LATENCY alpha beta").await,
        Frame::Bulk(br#"{"alpha":2.5,"beta":0}"#.to_vec())
    );
    assert_eq!(
        p.cmd("QUEUE LATENCY *").await,
        err("QUEUE LATENCY does not support wildcards")
    );
    assert_eq!(p.cmd("QUEUE REMOVE alpha").await, ok());
    assert!(!server.queues().contains_key("alpha"));
    assert_eq!(
        p.cmd("QUEUE NOPE x").await,
        err("no such QUEUE subcommand: NOPE")
    );
    assert_eq!(p.cmd("QUEUE").await, err("internal error"));
}

#[tokio::test]
async fn mutate_and_flush_over_the_wire() {
    let server = server().await;
    let later = ts("2026-11-22T09:00:00Z");
    for (jid, jt) in [
        ("mut-job-0001", "Sync"),
        ("mut-job-0002", "Sync"),
        ("mut-job-0003", "Other"),
    ] {
        let job =
            serde_json::from_value(json!({"jid": jid, "jobtype": jt, "args": ["uid:1"]})).unwrap();
        server.add_retry(job, later);
    }
    let mut p = Client::producer(server.addr()).await;
    assert_eq!(
        p.cmd(r#"MUTATE {"cmd":"kill","target":"retries","filter":{"jids":["mut-job-0002"]}}"#)
            .await,
        ok()
    );
    assert_eq!(server.dead()[0].job.jid, "mut-job-0002");
    assert_eq!(
        p.cmd(r#"MUTATE {"cmd":"requeue","target":"retries","filter":{"jobtype":"Other"}}"#)
            .await,
        ok()
    );
    assert_eq!(server.queue("default")[0].jid, "mut-job-0003");
    assert_eq!(
        p.cmd(r#"MUTATE {"cmd":"discard","target":"retries","filter":{"regexp":"*uid:1*"}}"#)
            .await,
        ok()
    );
    assert!(server.retries().is_empty());
    assert_eq!(
        p.cmd(r#"MUTATE {"cmd":"frob","target":"retries"}"#).await,
        err("unknown mutate operation")
    );
    assert_eq!(
        p.cmd(r#"MUTATE {"cmd":"kill","target":"default"}"#).await,
        err("invalid target for mutation command")
    );
    assert_eq!(
        p.cmd(r#"MUTATE {"cmd": "kill"}"#).await,
        err("invalid format")
    );
    // FLUSH: everything goes but the queue names and the paused flags.
    assert_eq!(p.cmd("QUEUE PAUSE default").await, ok());
    assert_eq!(p.cmd("FLUSH").await, ok());
    assert!(server.dead().is_empty());
    assert_eq!(server.queues().get("default"), Some(&0));
    assert!(server.is_paused("default"));
    let info = p.cmd("INFO").await.json();
    assert_eq!(info["faktory"]["queues"], json!({"default": 0}));
    assert_eq!(info["faktory"]["total_processed"], 0);
}

fn pwdhash(password: &str, salt: &str, iterations: u32) -> String {
    let mut d = Sha256::digest(format!("{password}{salt}").as_bytes());
    for _ in 1..iterations {
        d = Sha256::digest(d);
    }
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn password_handshake() {
    let server = TestServer::builder()
        .password("s3cret pw")
        .clock(Clock::manual(ts(START)))
        .start()
        .await
        .unwrap();
    assert!(server.url().starts_with("tcp://:s3cret%20pw@127.0.0.1:"));
    let hi_of = |raw: Vec<u8>| -> (String, u32) {
        assert!(
            raw.starts_with(b"+HI {\"v\":2,\"i\":"),
            "{}",
            String::from_utf8_lossy(&raw)
        );
        let v: Value = serde_json::from_slice(&raw[4..raw.len() - 2]).unwrap();
        let s = v["s"].as_str().unwrap().to_owned();
        assert!(
            s.len() <= 16
                && s.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        let i = u32::try_from(v["i"].as_u64().unwrap()).unwrap();
        assert!((4000..=8095).contains(&i));
        (s, i)
    };
    // Right hash, iterated.
    let mut c = Client::connect(server.addr()).await;
    let (s, i) = hi_of(c.read_raw_frame().await.unwrap());
    c.send(
        format!(
            "HELLO {{\"v\":2,\"pwdhash\":\"{}\"}}\r\n",
            pwdhash("s3cret pw", &s, i)
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(c.read_frame().await, Some(ok()));
    assert_eq!(c.cmd("FLUSH").await, ok());
    // v < 2: a single round is expected.
    let mut c = Client::connect(server.addr()).await;
    let (s, _) = hi_of(c.read_raw_frame().await.unwrap());
    c.send(
        format!(
            "HELLO {{\"v\":1,\"pwdhash\":\"{}\"}}\r\n",
            pwdhash("s3cret pw", &s, 1)
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(c.read_frame().await, Some(ok()));
    // Wrong password, missing hash, upper-case hex: -ERR Invalid password, then close.
    for variant in 0..3 {
        let mut c = Client::connect(server.addr()).await;
        let (s, i) = hi_of(c.read_raw_frame().await.unwrap());
        let hello = match variant {
            0 => format!(
                "HELLO {{\"v\":2,\"pwdhash\":\"{}\"}}\r\n",
                pwdhash("wrong", &s, i)
            ),
            1 => "HELLO {\"v\":2}\r\n".to_owned(),
            _ => format!(
                "HELLO {{\"v\":2,\"pwdhash\":\"{}\"}}\r\n",
                pwdhash("s3cret pw", &s, i).to_uppercase()
            ),
        };
        c.send(hello.as_bytes()).await;
        assert_eq!(c.read_frame().await, Some(err("Invalid password")));
        c.expect_eof().await;
    }
}

#[tokio::test]
async fn handshake_deadline_runs_on_the_server_clock() {
    let server = server().await;
    let mut silent = Client::connect(server.addr()).await;
    let mut late = Client::connect(server.addr()).await;
    for c in [&mut silent, &mut late] {
        assert_eq!(c.read_raw_frame().await.unwrap(), b"+HI {\"v\":2}\r\n");
    }
    // 1.9 s of server time: a HELLO is still welcome.
    server.advance(Duration::from_millis(1900)).unwrap();
    late.send(b"HELLO {\"v\":2}\r\n").await;
    assert_eq!(late.read_frame().await, Some(ok()));
    // At 2 s the silent one is closed, without a word; the other one stays.
    server.advance(Duration::from_millis(100)).unwrap();
    silent.expect_eof().await;
    server.advance(Duration::from_secs(60)).unwrap();
    assert_eq!(late.cmd("FLUSH").await, ok());
    // Malformed HELLOs are silent closes too.
    for bad in [
        "hello {}\r\n",
        "HELLO  {}\r\n",
        "HELLO {\"pid\":\"12\"}\r\n",
        "INFO\r\n",
    ] {
        let mut c = Client::connect(server.addr()).await;
        c.read_raw_frame().await.unwrap();
        c.send(bad.as_bytes()).await;
        c.expect_eof().await;
    }
}

#[tokio::test]
async fn pushb_partial_failure_over_the_wire() {
    let server = server().await;
    server.set_default_retry(7);
    let mut p = Client::producer(server.addr()).await;
    let line = r#"PUSHB [{"jid":"bulk-ok-0001","jobtype":"B","args":[]},{"jid":"short","jobtype":"B","args":[]},{"jid":"bulk-noargs1","jobtype":"B"},{"jid":"bulk-badq-01","jobtype":"B","args":[],"queue":"a b"}]"#;
    let reply = p.cmd(line).await.json();
    assert_eq!(
        reply,
        json!({
            "short": "jobs must have a reasonable jid parameter",
            "bulk-noargs1": "jobs must have an args parameter",
            "bulk-badq-01": "cannot get \"a b\" queue: queue names must match \\A[a-zA-Z0-9._-]+\\z",
        })
    );
    let q = server.queue("default");
    assert_eq!(q.len(), 1);
    assert_eq!(
        q[0].retry,
        Some(7),
        "PUSHB takes the current (leaked) default"
    );
    assert_eq!(p.cmd("PUSHB []").await, Frame::Bulk(b"{}".to_vec()));
    assert_eq!(
        p.cmd("PUSHB [oops").await,
        err("invalid JSON: invalid character 'o' looking for beginning of value")
    );
}

#[tokio::test]
async fn retry_default_leaks_from_an_explicit_retry() {
    let server = server().await;
    let mut p = Client::producer(server.addr()).await;
    assert_eq!(
        p.cmd(&format!(
            "PUSH {}",
            job_json("leak-job-001", r#","retry":3"#)
        ))
        .await,
        ok()
    );
    assert_eq!(
        p.cmd(&format!("PUSH {}", job_json("leak-job-002", "")))
            .await,
        ok()
    );
    let retries: Vec<Option<i64>> = server.queue("default").iter().map(|j| j.retry).collect();
    assert_eq!(retries, vec![Some(3), Some(3)]);
}

#[tokio::test]
async fn blocked_fetch_wakes_on_push() {
    // A 30 s block: only the wake-up on push can answer before the read limit.
    let server = TestServer::builder()
        .clock(Clock::manual(ts(START)))
        .fetch_timeout(Duration::from_secs(30))
        .start()
        .await
        .unwrap();
    let mut w = Client::worker(server.addr(), "w").await;
    let mut p = Client::producer(server.addr()).await;
    w.send(b"FETCH first wakeq\r\n").await;
    within(server.wait_for_blocked_fetches(1)).await;
    assert_eq!(
        p.cmd(&format!(
            "PUSH {}",
            job_json("wake-job-001", r#","queue":"wakeq""#)
        ))
        .await,
        ok()
    );
    let job = within(w.read_frame()).await.unwrap().json();
    assert_eq!(job["jid"], "wake-job-001");
    assert_eq!(server.blocked_fetches(), 0);
    // A scheduled job coming due (clock step) wakes a blocked FETCH too.
    assert_eq!(
        p.cmd(&format!(
            "PUSH {}",
            job_json(
                "wake-job-002",
                r#","queue":"wakeq","at":"2026-11-22T08:00:10Z""#
            )
        ))
        .await,
        ok()
    );
    w.send(b"FETCH wakeq\r\n").await;
    within(server.wait_for_blocked_fetches(1)).await;
    server.advance(Duration::from_secs(10)).unwrap();
    assert_eq!(
        within(w.read_frame()).await.unwrap().json()["jid"],
        "wake-job-002"
    );
}

#[tokio::test]
async fn empty_fetch_times_out_with_null_and_pipelines_in_order() {
    let server = server().await;
    let mut w = Client::worker(server.addr(), "w").await;
    w.send(b"FETCH nothing\r\nINFO\r\nFETCH\r\n").await;
    assert_eq!(w.read_frame().await, Some(Frame::Null));
    assert!(w.read_frame().await.unwrap().json()["faktory"].is_object());
    assert_eq!(
        w.read_frame().await,
        Some(err("must call fetch with at least one queue"))
    );
}

#[tokio::test]
async fn fault_drop_before_and_after_a_command() {
    let server = server().await;
    // Next connection: closed when its 2nd command arrives, which is not executed.
    server.inject_next_connections(1, Fault::DropBeforeCommand(2));
    let mut p = Client::producer(server.addr()).await;
    assert!(p.cmd("INFO").await.json().is_object());
    p.send(format!("PUSH {}\r\n", job_json("never-stored", "")).as_bytes())
        .await;
    p.expect_eof().await;
    assert!(server.queues().is_empty());
    // The one after is not affected.
    let mut q = Client::producer(server.addr()).await;
    let id = server.connection_by_peer(q.local_addr()).unwrap().id;
    assert_eq!(q.cmd("FLUSH").await, ok());
    // Per connection, counted from now: the next command runs, its reply is lost.
    assert!(server.inject(id, Fault::DropAfterCommand(1)));
    q.send(format!("PUSH {}\r\n", job_json("stored-anyway", "")).as_bytes())
        .await;
    q.expect_eof().await;
    assert_eq!(server.queue("default")[0].jid, "stored-anyway");
    assert_eq!(server.connections().len(), 0);
}

#[tokio::test]
async fn fault_withhold_delay_and_replace_replies() {
    let server = server().await;
    let mut p = Client::producer(server.addr()).await;
    let id = server.connection_by_peer(p.local_addr()).unwrap().id;
    // Replace the next reply with arbitrary bytes; the command still runs.
    server.inject(
        id,
        Fault::ReplaceReply {
            nth: 1,
            bytes: "$3\r\nfoo\r\n".into(),
        },
    );
    assert_eq!(
        p.cmd(&format!("PUSH {}", job_json("replaced-001", "")))
            .await,
        Frame::Bulk(b"foo".to_vec())
    );
    assert_eq!(server.queue("default").len(), 1);
    assert_eq!(p.cmd("FLUSH").await, ok(), "only that one reply");
    // Delay: an hour; what is sent meanwhile comes first; dropping the connection loses the reply.
    server.inject(id, Fault::DelayReplies(Duration::from_secs(3600)));
    p.send(b"INFO\r\n").await;
    within(async {
        while server.connection_by_peer(p.local_addr()).unwrap().commands < 3 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(server.send_raw(id, "+MARK\r\n"));
    assert_eq!(p.read_frame().await, Some(Frame::Simple("MARK".into())));
    assert!(server.drop_connection(id));
    p.expect_eof().await;
    // Withhold: commands run, replies never come.
    let mut w = Client::producer(server.addr()).await;
    let id = server.connection_by_peer(w.local_addr()).unwrap().id;
    server.inject(id, Fault::WithholdReplies);
    w.send(format!("PUSH {}\r\n", job_json("withheld-01", "")).as_bytes())
        .await;
    within(async {
        while server.queue("default").is_empty() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    server.send_raw(id, "-ERR too many connections: 2000\r\n");
    assert_eq!(
        w.read_frame().await,
        Some(err("too many connections: 2000"))
    );
    // A short delay still delivers.
    let mut d = Client::producer(server.addr()).await;
    let id = server.connection_by_peer(d.local_addr()).unwrap().id;
    server.inject(id, Fault::DelayReplies(Duration::from_millis(5)));
    assert_eq!(d.cmd("FLUSH").await, ok());
}

#[tokio::test]
async fn fault_close_on_accept_and_refused_connections() {
    let server = server().await;
    let addr = server.addr();
    server.inject_next_connections(2, Fault::CloseOnAccept);
    for _ in 0..2 {
        let mut c = Client::connect(addr).await;
        c.expect_eof().await;
    }
    let _ok = Client::producer(addr).await;
    server.refuse_connections().await;
    let e = tokio::net::TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
    assert_eq!(server.connection_count(), 1, "existing connections stay");
    server.accept_connections().await.unwrap();
    let _again = Client::producer(addr).await;
    // Refused for a while, then accepted again on the same port.
    server
        .refuse_connections_for(Duration::from_millis(20))
        .await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    within(async {
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn restart_keeps_redis_state_only() {
    let server = server().await;
    let addr = server.addr();
    let mut w = Client::worker(addr, "w").await;
    for jid in ["restart-job1", "restart-job2"] {
        assert_eq!(w.cmd(&format!("PUSH {}", job_json(jid, ""))).await, ok());
    }
    assert_eq!(w.cmd("FETCH default").await.json()["jid"], "restart-job1");
    assert_eq!(
        w.cmd(&format!(
            "PUSH {}",
            job_json("restart-job3", r#","queue":"held""#)
        ))
        .await,
        ok()
    );
    assert_eq!(w.cmd("QUEUE PAUSE held").await, ok());
    assert_eq!(
        w.cmd(&format!(
            "PUSH {}",
            job_json("restart-job4", r#","retry":9"#)
        ))
        .await,
        ok()
    );
    server.restart().await.unwrap();
    w.expect_eof().await;
    assert_eq!(server.addr(), addr);
    assert!(server.workers().is_empty());
    let mut w = Client::producer(addr).await;
    assert_eq!(w.cmd(r#"BEAT {"wid":"w"}"#).await, err("unknown worker w"));
    // The reservation survived: ACK still finds it.
    assert_eq!(w.cmd(r#"ACK {"jid":"restart-job1"}"#).await, ok());
    assert_eq!(server.acked(), vec!["restart-job1"]);
    assert_eq!(server.queue("default").len(), 2);
    assert!(server.is_paused("held"));
    assert_eq!(w.cmd("FETCH held").await, Frame::Null);
    // The leaked retry default did not survive.
    assert_eq!(
        w.cmd(&format!("PUSH {}", job_json("restart-job5", "")))
            .await,
        ok()
    );
    assert_eq!(server.queue("default").last().unwrap().retry, Some(25));
    assert_eq!(w.cmd("INFO").await.json()["server"]["command_count"], 5);
}

#[tokio::test]
async fn scaled_clock_runs_the_periodic_tasks() {
    // 600 times faster: a job due 10 s ahead comes out after a few wall-clock milliseconds.
    let server = TestServer::builder()
        .clock(Clock::scaled(600.0))
        .fetch_timeout(Duration::from_secs(15))
        .start()
        .await
        .unwrap();
    let at = Timestamp::from_unix(UnixTime {
        secs: server.now().secs + 10,
        nanos: 0,
    });
    let mut w = Client::worker(server.addr(), "w").await;
    let push = format!(
        "PUSH {}",
        job_json(
            "scaled-job-1",
            &format!(r#","queue":"sq","at":"{}""#, at.as_str())
        )
    );
    assert_eq!(w.cmd(&push).await, ok());
    assert_eq!(
        within(async { w.cmd("FETCH sq").await }).await.json()["jid"],
        "scaled-job-1"
    );
    assert!(
        server.advance(Duration::from_secs(1)).is_err(),
        "only a manual clock steps"
    );
}

#[tokio::test]
async fn dropping_the_handle_stops_everything() {
    let server = server().await;
    let addr = server.addr();
    let mut c = Client::producer(addr).await;
    let mut blocked = Client::worker(addr, "w").await;
    blocked.send(b"FETCH q\r\n").await;
    drop(server);
    c.expect_eof().await;
    blocked.expect_eof().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn preloaded_state_is_served() {
    let server = server().await;
    let job = |jid: &str| {
        serde_json::from_value(json!({"jid": jid, "jobtype": "Pre", "args": [], "queue": "pre"}))
            .unwrap()
    };
    server.push(job("preload-0001")).unwrap();
    server.enqueue(job("preload-0002")).unwrap();
    server.schedule(job("preload-0003"), ts("2026-11-22T08:00:20Z"));
    server.ensure_queue("empty").unwrap();
    assert!(server.ensure_queue("bad name").is_err());
    assert_eq!(
        server.push(job("short")).unwrap_err().to_string(),
        "jobs must have a reasonable jid parameter"
    );
    let mut w = Client::worker(server.addr(), "w").await;
    assert_eq!(w.cmd("FETCH pre").await.json()["jid"], "preload-0001");
    assert_eq!(w.cmd("FETCH pre").await.json()["jid"], "preload-0002");
    server.advance(Duration::from_secs(20)).unwrap();
    assert_eq!(w.cmd("FETCH pre").await.json()["jid"], "preload-0003");
    let info = w.cmd("INFO").await.json();
    assert_eq!(info["faktory"]["queues"], json!({"empty": 0, "pre": 0}));
    assert_eq!(info["faktory"]["sets"]["working"], 3);
    let conns = server.connections();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].wid.as_deref(), Some("w"));
    assert_eq!(conns[0].commands, 4);
}

#[tokio::test]
async fn only_loopback_addresses() {
    let e = TestServer::builder()
        .bind("0.0.0.0:0".parse().unwrap())
        .start()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    let s = TestServer::builder()
        .bind("127.0.0.2:0".parse().unwrap())
        .start()
        .await;
    assert!(s.is_ok(), "any loopback address will do");
}

#[tokio::test]
async fn a_client_that_stops_reading_cannot_block_a_restart() {
    let server = server().await;
    let stuck = Client::producer(server.addr()).await;
    let id = server.connection_by_peer(stuck.local_addr()).unwrap().id;
    // 64 MiB the client never reads: the connection task sits in a write.
    assert!(server.send_raw(id, vec![b'x'; 64 << 20]));
    within(server.restart()).await.unwrap();
    assert_eq!(server.connection_count(), 0);
    let mut p = Client::producer(server.addr()).await;
    assert_eq!(p.cmd("FLUSH").await, ok());
    drop(stuck);
}

#[test]
fn the_handle_can_be_shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<TestServer>();
    send_sync::<Clock>();
    send_sync::<faktory_testkit::store::Store>();
}

#[tokio::test]
async fn wait_until_idle_waits_for_every_reservation_to_settle() {
    let server = server().await;
    // Idle at once when there is nothing.
    assert!(server.wait_until_idle(Duration::ZERO).await);
    let mut p = Client::producer(server.addr()).await;
    for n in 0..3 {
        assert_eq!(
            p.cmd(&format!("PUSH {}", job_json(&format!("idle-job-{n}"), "")))
                .await,
            ok()
        );
    }
    // Queued jobs: not idle.
    assert!(!server.wait_until_idle(Duration::from_millis(20)).await);
    let mut w = Client::worker(server.addr(), "idle-w").await;
    for _ in 0..3 {
        assert!(matches!(w.cmd("FETCH default").await, Frame::Bulk(_)));
    }
    // Reserved jobs: still not idle.
    assert!(server.queue("default").is_empty());
    assert!(!server.wait_until_idle(Duration::from_millis(20)).await);
    // Settled while waiting: ACK, FAIL (the job goes to the retry set, which is not waited for).
    let (idle, ()) = tokio::join!(server.wait_until_idle(Duration::from_secs(10)), async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(w.cmd(r#"ACK {"jid":"idle-job-0"}"#).await, ok());
        assert_eq!(
            w.cmd(r#"FAIL {"jid":"idle-job-1","errtype":"E","message":"m"}"#)
                .await,
            ok()
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(w.cmd(r#"ACK {"jid":"idle-job-2"}"#).await, ok());
    });
    assert!(idle);
    assert_eq!(server.acked(), vec!["idle-job-0", "idle-job-2"]);
    assert_eq!(server.retries().len(), 1);
    // A reservation that expires settles too (the manual clock moves past reserve_for; on a
    // server of its own, so no retry comes due meanwhile).
    let server = self::server().await;
    let mut p = Client::producer(server.addr()).await;
    let mut w = Client::worker(server.addr(), "idle-w").await;
    assert_eq!(
        p.cmd(&format!(
            "PUSH {}",
            job_json("idle-job-3", r#","reserve_for":60"#)
        ))
        .await,
        ok()
    );
    assert!(matches!(w.cmd("FETCH default").await, Frame::Bulk(_)));
    assert!(!server.wait_until_idle(Duration::from_millis(20)).await);
    server.advance(Duration::from_secs(60)).unwrap();
    assert!(server.wait_until_idle(Duration::from_secs(5)).await);
    assert_eq!(server.retries().len(), 1);
}
