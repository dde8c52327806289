//! Client scenarios: every request, pipelining, reconnects, passwords, TLS, garbage.

use std::time::Duration;

use faktory_proto::Job;
use faktory_proto::Timestamp;
use faktory_proto::api::Error;
use faktory_proto::client::{ConnectPhase, ConnectionError};
use faktory_proto::command::{Fail, MutateFilter, MutateOp, MutateTarget, WorkerState};
use faktory_proto::worker::StopReason;
use faktory_testkit::{Fault, TestServer};
use serde_json::json;

use super::{client, consumer};
use crate::harness::{ClientApi, ClientSpec, Handler, Harness, Stop, WorkerApi, WorkerSpec};
use crate::support::{
    Kit, LONG, Server, eventually, garbage_server, join_within, timeout, tls_proxy, unique_queue,
    unresponsive_address,
};

/// PUSH a job with every field set, FETCH it back on a consumer: every field survives.
pub async fn push_and_fetch_every_job_field<H: Harness>() {
    let server = Server::start().await;
    let queue = unique_queue("fields");
    let c = client::<H>(&server).await;
    let job = Job::builder("EveryField")
        .args((1, "two", json!({"three": 3}), [true, false]))
        .queue(&queue)
        .retry(3)
        .reserve_for(600)
        .backtrace(7)
        .custom("locale", "fr")
        .custom("nested", json!({"a": [1, 2]}))
        .at(Timestamp::parse("2000-01-01T00:00:00Z").unwrap())
        .created_at(Timestamp::parse("1999-12-31T23:59:59.5Z").unwrap())
        .build()
        .unwrap();
    c.push(job.clone()).await.unwrap();

    let w = consumer::<H>(&server, &unique_queue("wid")).await;
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

/// 2,500 jobs and two invalid ones in one `push_bulk`: three PUSHB calls, the two refused jobs
/// reported by jid.
pub async fn push_bulk_reports_partial_failures<H: Harness>() {
    let server = Server::start().await;
    let queue = unique_queue("bulk");
    let c = client::<H>(&server).await;
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

/// QUEUE PAUSE, RESUME, LATENCY and REMOVE.
pub async fn queue_pause_resume_remove_latency<H: Harness>() {
    let server = Server::start().await;
    let queue = unique_queue("queues");
    let c = client::<H>(&server).await;
    c.push(Job::builder("Q").queue(&queue).build().unwrap())
        .await
        .unwrap();
    c.queue_pause(&[queue.as_str()]).await.unwrap();
    let w = consumer::<H>(&server, &unique_queue("wid")).await;
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

/// MUTATE: a failed job goes retries → dead → back on its queue, its failure record with it.
pub async fn mutate_moves_jobs_between_sets<H: Harness>() {
    let server = Server::start().await;
    let queue = unique_queue("mutate");
    let c = client::<H>(&server).await;
    let w = consumer::<H>(&server, &unique_queue("wid")).await;
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

/// A consumer's FETCH, ACK, FAIL and BEAT, and the server's quiet heard through BEAT.
pub async fn consumer_commands_fetch_ack_fail_beat<H: Harness>() {
    let Some(kit) = Server::kit_only("consumer_commands_fetch_ack_fail_beat").await else {
        return;
    };
    let server = Server::Kit(kit);
    let queue = unique_queue("consumer");
    let wid = unique_queue("wid");
    let c = client::<H>(&server).await;
    let w = consumer::<H>(&server, &wid).await;
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
    // Without a wid there is nothing to BEAT for.
    assert!(matches!(c.beat(None, None).await, Err(Error::Usage(_))));
}

/// The server executes a PUSH and drops the connection before replying: the call fails with
/// `OutcomeUnknown`, the next call reconnects, and nothing was re-sent.
pub async fn in_flight_call_fails_with_unknown_outcome_then_reconnects<H: Harness>() {
    let Some(kit) =
        Server::kit_only("in_flight_call_fails_with_unknown_outcome_then_reconnects").await
    else {
        return;
    };
    let queue = unique_queue("inflight");
    let c = H::connect(ClientSpec::url(kit.url())).await.unwrap();
    c.info().await.unwrap();
    let conn = kit.connections()[0].id;
    assert!(kit.inject(conn, Fault::DropAfterCommand(1)));
    let job = Job::builder("F").queue(&queue).build().unwrap();
    let err = c.push(job).await.unwrap_err();
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

/// The server restarts between two calls: the client reconnects, the state survived.
pub async fn client_survives_a_server_restart<H: Harness>() {
    let Some(kit) = Server::kit_only("client_survives_a_server_restart").await else {
        return;
    };
    let queue = unique_queue("restart");
    let c = H::connect(ClientSpec::url(kit.url())).await.unwrap();
    c.push(Job::builder("R").queue(&queue).build().unwrap())
        .await
        .unwrap();
    kit.restart().await.unwrap();
    // The server closed the connection; an idle client notices when its connection task next
    // reads. A call racing that (say, on a current-thread tokio runtime that has not polled its
    // I/O driver since) is written into the closed connection and honestly fails with
    // `OutcomeUnknown` (see `in_flight_call_fails_with_unknown_outcome_then_reconnects`). This
    // scenario is about the idle client: give it a moment to see the close.
    H::sleep(Duration::from_millis(100)).await;
    c.push(Job::builder("R").queue(&queue).build().unwrap())
        .await
        .unwrap();
    assert_eq!(
        kit.queue(&queue).len(),
        2,
        "state kept across the restart, client reconnected"
    );
}

/// 200 concurrent pushes through clones of one client: one connection, pipelined.
pub async fn concurrent_calls_share_one_connection<H: Harness>() {
    let Some(kit) = Server::kit_only("concurrent_calls_share_one_connection").await else {
        return;
    };
    let queue = unique_queue("pipeline");
    let c = H::connect(ClientSpec::url(kit.url())).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let c = c.clone();
        let q = queue.clone();
        tasks.push(H::spawn(async move {
            c.push(Job::builder("P").args((i,)).queue(q).build().unwrap())
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(kit.queue(&queue).len(), 200);
    assert_eq!(kit.connection_count(), 1, "one connection, pipelined");
}

/// A password in the URL works; a wrong one and a missing one give typed errors.
pub async fn password_server<H: Harness>() {
    let kit = Kit::start(TestServer::builder().password("s3cret pw")).await;
    let c = H::connect_to(&kit.url())
        .await
        .expect("password from the URL");
    c.push(Job::new("Pw", vec![])).await.unwrap();
    let addr = kit.addr();
    let err = H::connect(ClientSpec::url(format!("tcp://:wrong@{addr}")))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Connection { source: ConnectionError::Auth(e), .. } if e.is_invalid_password()),
        "{err:?}"
    );
    let err = H::connect_to(&format!("tcp://{addr}")).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Connection {
                source: ConnectionError::PasswordRequired,
                ..
            }
        ),
        "{err:?}"
    );
}

/// A client and a worker over TLS with a private root; the default roots refuse the self-signed
/// certificate.
pub async fn tls_server<H: Harness>() {
    // A short FETCH block: the worker below waits for its FETCHes' replies when it shuts down.
    let kit = Kit::start(TestServer::builder().fetch_timeout(Duration::from_millis(100))).await;
    let (proxy, cert) = tls_proxy(kit.addr()).await;
    let url = format!("tcp+tls://localhost:{}", proxy.port());
    let c = H::connect(ClientSpec::url(&url).tls_root(cert.clone()))
        .await
        .expect("TLS with the self-signed root");
    c.push(Job::builder("Tls").queue("tlsq").build().unwrap())
        .await
        .unwrap();
    assert_eq!(kit.queue("tlsq").len(), 1);
    // Default verification (webpki roots) must refuse a self-signed certificate, for good (a
    // permanent failure in the TLS phase: retrying cannot fix it).
    let err = H::connect_to(&url).await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Connection { source: ConnectionError::Connect(f), .. }
                if f.phase == ConnectPhase::Tls && f.permanent
        ),
        "{err:?}"
    );

    // A worker over TLS: its sockets share each TLS session between reading and writing.
    let spec = WorkerSpec::new(&url, "tlsq")
        .tls_root(cert)
        .handler("Tls", Handler::ok());
    let (worker, stop) = H::worker(spec).unwrap();
    let run = H::spawn(worker.run());
    assert!(eventually::<H>(LONG, || kit.acked().len() == 1).await);
    stop.stop();
    let report = join_within::<H>(run, LONG).await;
    assert_eq!(report.reason, StopReason::Shutdown);
    assert!(report.is_clean(), "{report:?}");
}

/// A server speaking something else, or one reply replaced by garbage: a typed error, no hang.
pub async fn garbage_server_gives_a_typed_error_not_a_hang<H: Harness>() {
    let addr = garbage_server(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    let url = format!("tcp://{addr}");
    let r = timeout::<H, _>(
        Duration::from_secs(5),
        async move { H::connect_to(&url).await },
    )
    .await;
    let err = r.expect("no hang").unwrap_err();
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");

    let kit = Kit::start(TestServer::builder()).await;
    let c = H::connect(ClientSpec::url(kit.url())).await.unwrap();
    c.info().await.unwrap();
    let conn = kit.connections()[0].id;
    kit.inject(
        conn,
        Fault::ReplaceReply {
            nth: 1,
            bytes: bytes::Bytes::from_static(b"?garbage\r\n"),
        },
    );
    let r = timeout::<H, _>(Duration::from_secs(5), async move { c.info().await }).await;
    let err = r.expect("no hang").unwrap_err();
    assert!(matches!(err, Error::OutcomeUnknown { .. }), "{err:?}");
}

/// A connect to a port nobody listens on fails at once (an eager connect does not retry), with a
/// transient TCP-phase error naming the server.
pub async fn a_refused_connect_fails_fast_and_names_its_phase<H: Harness>() {
    // A port nobody listens on (bound, then closed).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let started = std::time::Instant::now();
    let url = format!("tcp://127.0.0.1:{port}");
    let r = timeout::<H, _>(
        Duration::from_secs(5),
        async move { H::connect_to(&url).await },
    )
    .await;
    let err = r.expect("no hang").unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Connection { server, source: ConnectionError::Connect(f) }
                if f.phase == ConnectPhase::Tcp
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

/// Errors say what failed and where: the server's address and the phase (TCP, TLS, handshake), a
/// hint when TLS meets a plain server or the reverse, the offending value of a bad URL; and a call
/// made after the server died fails within the connect timeout.
pub async fn error_messages_name_what_failed_and_where<H: Harness>() {
    // An address that does not answer: the TCP connect times out, and the error says so.
    let (addr, _held, _listener) = unresponsive_address();
    let spec = ClientSpec::url(format!("tcp://{addr}")).connect_timeout(Duration::from_millis(500));
    let started = std::time::Instant::now();
    let err = H::connect(spec).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{addr}: TCP connect failed: ")),
        "{text}"
    );
    assert!(text.contains("timed out"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    let kit = Kit::start(TestServer::builder().fetch_timeout(Duration::from_millis(100))).await;
    // TLS against a plain Faktory: the hint says to use tcp://.
    let url = format!("tcp+tls://localhost:{}", kit.addr().port());
    let err = H::connect(ClientSpec::url(&url).connect_timeout(Duration::from_secs(2)))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("TLS handshake failed"), "{text}");
    assert!(text.contains("use tcp:// instead of tcp+tls://"), "{text}");

    // Plain TCP against a TLS port: the server waits for a ClientHello, the client for HI.
    let (proxy, _cert) = tls_proxy(kit.addr()).await;
    let url = format!("tcp://localhost:{}", proxy.port());
    let err = H::connect(ClientSpec::url(&url).connect_timeout(Duration::from_millis(500)))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&format!("localhost:{}", proxy.port())),
        "{text}"
    );
    assert!(
        text.contains("if the server expects TLS, use tcp+tls://"),
        "{text}"
    );

    // A bad URL names the bad value.
    let err = H::connect_to("tcp://localhost:notaport").await.unwrap_err();
    assert!(err.to_string().contains("\"notaport\""), "{err}");

    // The server dies: every call fails fast, at the latest within the connect timeout.
    let c = H::connect(ClientSpec::url(kit.url()).connect_timeout(Duration::from_secs(2)))
        .await
        .unwrap();
    c.push(Job::new("Alive", vec![])).await.unwrap();
    drop(kit);
    // Dropping the testkit stops its tasks on their runtime: give that a moment.
    H::sleep(Duration::from_millis(200)).await;
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let err = c.push(Job::new("Dead", vec![])).await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}: {err}",
            started.elapsed()
        );
        assert!(
            matches!(err, Error::Connection { .. } | Error::OutcomeUnknown { .. }),
            "{err:?}"
        );
    }
}
