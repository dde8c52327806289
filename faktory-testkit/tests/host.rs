//! `TestServerHost`: the test server for tests without a tokio runtime (plain threads, any other
//! executor). These tests have no runtime of their own: they talk to the server over std sockets.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::future::Future;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use faktory_testkit::proto::job::Job;
use faktory_testkit::{Clock, TestServer, TestServerHost};

/// A blocking raw FWP client.
struct Raw {
    conn: BufReader<TcpStream>,
}

impl Raw {
    fn connect(addr: SocketAddr, wid: Option<&str>) -> Raw {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut raw = Raw {
            conn: BufReader::new(stream),
        };
        assert!(raw.line().starts_with("+HI"));
        let hello = match wid {
            Some(w) => format!(r#"HELLO {{"v":2,"wid":"{w}","hostname":"h","pid":1,"labels":[]}}"#),
            None => r#"HELLO {"v":2}"#.to_owned(),
        };
        assert_eq!(raw.cmd(&hello), "+OK");
        raw
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.conn.read_line(&mut line).unwrap();
        line.trim_end().to_owned()
    }

    /// Sends one command; the reply line, or a bulk string's body.
    fn cmd(&mut self, line: &str) -> String {
        self.conn
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
        let reply = self.line();
        if reply.starts_with('$') && reply != "$-1" {
            self.line()
        } else {
            reply
        }
    }
}

fn job(n: usize) -> Job {
    Job::builder("Hosted")
        .jid(format!("hosted-{n:04}"))
        .args((n,))
        .build()
        .unwrap()
}

/// A worker in raw protocol on a thread: FETCHes and ACKs `n` jobs, a little slowly.
fn raw_worker(addr: SocketAddr, n: usize) -> thread::JoinHandle<Vec<String>> {
    thread::spawn(move || {
        let mut w = Raw::connect(addr, Some("hosted-worker"));
        let mut acked = Vec::new();
        while acked.len() < n {
            let body = w.cmd("FETCH default");
            if body == "$-1" {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let jid = v["jid"].as_str().unwrap().to_owned();
            thread::sleep(Duration::from_millis(5));
            assert_eq!(w.cmd(&format!(r#"ACK {{"jid":"{jid}"}}"#)), "+OK");
            acked.push(jid);
        }
        acked
    })
}

/// A minimal executor (what smol's or async-std's `block_on` does): no tokio anywhere.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park();
    }
}

#[test]
fn a_hosted_server_serves_a_test_without_a_runtime() {
    assert!(tokio::runtime::Handle::try_current().is_err());
    let host = TestServer::builder()
        .fetch_timeout(Duration::from_millis(100))
        .start_hosted()
        .unwrap();
    let addr = host.addr();
    // Through Deref: loading and inspection.
    for n in 0..20 {
        host.push(job(n)).unwrap();
    }
    assert_eq!(host.queue("default").len(), 20);
    assert!(!host.wait_until_idle(Duration::from_millis(20)));

    let worker = raw_worker(addr, 20);
    let started = Instant::now();
    assert!(host.wait_until_idle(Duration::from_secs(20)));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(worker.join().unwrap().len(), 20);
    assert_eq!(host.acked().len(), 20);
    assert!(host.reservations().is_empty());

    // Async methods run on the host's runtime.
    host.block_on(host.wait_for_connections(0));
    let mut producer = Raw::connect(addr, None);
    host.block_on(host.wait_for_connections(1));
    assert_eq!(
        producer.cmd(&format!(
            "PUSH {}",
            serde_json::to_string(&job(99)).unwrap()
        )),
        "+OK"
    );
    assert!(!host.wait_until_idle(Duration::from_millis(20)));
    host.block_on(host.restart()).unwrap();
    assert_eq!(host.queue("default").len(), 1, "queues survive a restart");

    // Dropping the host stops the server: its connections close, its port refuses.
    let mut client = Raw::connect(addr, None);
    drop(host);
    let mut rest = String::new();
    let n = client.conn.read_line(&mut rest).unwrap_or(0);
    assert_eq!(n, 0, "EOF after the host is dropped, got {rest:?}");
    let refused = TcpStream::connect_timeout(&addr, Duration::from_secs(2));
    assert!(
        matches!(&refused, Err(e) if e.kind() == ErrorKind::ConnectionRefused),
        "{refused:?}"
    );
}

#[test]
fn wait_until_idle_async_runs_on_any_executor() {
    let host: TestServerHost = TestServer::builder()
        .fetch_timeout(Duration::from_millis(100))
        .start_hosted()
        .unwrap();
    for n in 0..5 {
        host.push(job(n)).unwrap();
    }
    // Times out while the jobs are queued.
    assert!(!block_on(
        host.wait_until_idle_async(Duration::from_millis(30))
    ));
    let worker = raw_worker(host.addr(), 5);
    assert!(block_on(
        host.wait_until_idle_async(Duration::from_secs(20))
    ));
    assert_eq!(worker.join().unwrap().len(), 5);
    // A future outliving the host resolves (false) instead of hanging.
    host.push(job(7)).unwrap();
    let pending = host.wait_until_idle_async(Duration::from_secs(60));
    drop(host);
    assert!(!block_on(pending));
}

#[test]
fn a_hosted_server_with_a_manual_clock_and_a_drop_inside_a_runtime() {
    let host = TestServer::builder()
        .clock(Clock::manual_now())
        .start_hosted()
        .unwrap();
    let mut w = Raw::connect(host.addr(), Some("reaped-worker"));
    // The record is made right after HELLO's +OK is written.
    let until = Instant::now() + Duration::from_secs(5);
    while host.workers().is_empty() && Instant::now() < until {
        thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(host.workers().len(), 1);
    host.advance(Duration::from_secs(75)).unwrap(); // the 15 s task reaps past 60 s
    assert!(
        host.workers().is_empty(),
        "reaped without wall time passing"
    );
    let mut rest = String::new();
    assert_eq!(w.conn.read_line(&mut rest).unwrap_or(0), 0);
    // Dropping the host inside some tokio runtime does not panic.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move { drop(host) });
}
