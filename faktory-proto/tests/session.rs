//! The client session machine driven with virtual time and the bytes of a fake server: eager
//! connect, calls waiting for a connection, deadlines, backoff, permanent failures, drops with calls
//! in flight, `reconnect: false`, close in every state, the attempt deadline; and a proptest over
//! random interleavings that checks the invariants (each call answered exactly once, `Connect` and
//! `Disconnect` alternate, `Closed` once, last, and only after `close`, no panic).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use faktory_proto::api::{CallResult, Error};
use faktory_proto::client::{ClientOptions, ConnectFailure, ConnectPhase, ConnectionError, Reply};
use faktory_proto::command::{Ack, Command};
use faktory_proto::handshake::Password;
use faktory_proto::session::{CallId, Event, Session, SessionConfig};
use proptest::prelude::*;

const SERVER: &str = "faktory.test:7419";
const HI: &[u8] = b"+HI {\"v\":2}\r\n";
const OK: &[u8] = b"+OK\r\n";
const HELLO: &[u8] = b"HELLO {\"v\":2}\r\n";

/// Defaults, with a backoff without jitter (100 ms, ×2) so delays can be asserted.
fn config() -> SessionConfig {
    let mut c = SessionConfig::new(SERVER, ClientOptions::default());
    c.backoff.jitter = 0.0;
    c.backoff.initial = Duration::from_millis(100);
    c.backoff.multiplier = 2.0;
    c
}

fn ack(jid: &str) -> Command {
    Command::Ack(Ack { jid: jid.into() })
}

/// Where the driver's socket is, as the events say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sock {
    None,
    Opening,
    Open,
}

/// A driver with virtual time that checks the session's invariants on everything it gives.
struct H {
    s: Session,
    base: Instant,
    now: Instant,
    sock: Sock,
    connects: usize,
    readies: usize,
    retries: usize,
    issued: BTreeSet<CallId>,
    answers: BTreeMap<CallId, CallResult>,
    close_called: bool,
    closed_seen: bool,
    issued_after_closed: BTreeSet<CallId>,
    wire: Vec<u8>,
}

impl H {
    fn new(config: SessionConfig) -> H {
        let base = Instant::now();
        H {
            s: Session::new(config, base),
            base,
            now: base,
            sock: Sock::None,
            connects: 0,
            readies: 0,
            retries: 0,
            issued: BTreeSet::new(),
            answers: BTreeMap::new(),
            close_called: false,
            closed_seen: false,
            issued_after_closed: BTreeSet::new(),
            wire: Vec::new(),
        }
    }

    fn ms(&self, ms: u64) -> Instant {
        self.base + Duration::from_millis(ms)
    }

    /// Sets the clock to `ms` after the start.
    fn at(&mut self, ms: u64) -> &mut Self {
        self.now = self.ms(ms);
        self
    }

    fn issue(&mut self, call: CallId) -> CallId {
        assert!(self.issued.insert(call), "{call:?} issued twice");
        if self.closed_seen {
            self.issued_after_closed.insert(call);
        }
        call
    }

    fn call(&mut self, command: Command) -> CallId {
        if matches!(command, Command::End) {
            self.close_called = true;
        }
        let c = self.s.call(command, self.now);
        self.issue(c)
    }

    fn connect(&mut self) -> CallId {
        let c = self.s.connect(self.now);
        self.issue(c)
    }

    fn close(&mut self) -> CallId {
        self.close_called = true;
        let c = self.s.close(self.now);
        self.issue(c)
    }

    /// The driver opened the socket it was asked for (also spuriously: the session ignores it).
    fn connected(&mut self) {
        if self.sock == Sock::Opening {
            self.sock = Sock::Open;
        }
        self.s.handle_connected(self.now);
    }

    fn connect_failed(&mut self, failure: ConnectFailure) {
        self.s.handle_connect_failed(failure, self.now);
    }

    fn input(&mut self, bytes: &[u8]) {
        self.s.handle_input(bytes, self.now);
    }

    fn eof(&mut self) {
        self.s.handle_eof(self.now);
    }

    fn transport_error(&mut self) {
        self.s
            .handle_transport_error("connection reset by peer", self.now);
    }

    fn timeout(&mut self) {
        self.s.handle_timeout(self.now);
    }

    /// Writes what the session gives, then takes its events, checking every invariant.
    fn drain(&mut self) -> Vec<Event> {
        while let Some(bytes) = self.s.poll_transmit() {
            assert_eq!(self.sock, Sock::Open, "bytes for a socket that is not open");
            self.wire.extend_from_slice(&bytes);
        }
        let mut out = Vec::new();
        while let Some(event) = self.s.poll_event() {
            match &event {
                Event::Connect => {
                    assert!(!self.closed_seen, "Connect after Closed");
                    assert_eq!(self.sock, Sock::None, "Connect while a socket exists");
                    self.sock = Sock::Opening;
                    self.connects += 1;
                }
                Event::Disconnect => {
                    assert!(!self.closed_seen, "Disconnect after Closed");
                    assert_ne!(self.sock, Sock::None, "Disconnect without a Connect");
                    self.sock = Sock::None;
                }
                Event::Ready | Event::ConnectFailed { .. } => {
                    assert!(!self.closed_seen, "{event:?} after Closed");
                    match &event {
                        Event::Ready => self.readies += 1,
                        Event::ConnectFailed {
                            retry_at: Some(_), ..
                        } => self.retries += 1,
                        _ => {}
                    }
                }
                Event::Closed => {
                    assert!(self.close_called, "Closed without close()");
                    assert!(!self.closed_seen, "Closed twice");
                    assert_eq!(self.sock, Sock::None, "Closed with a socket");
                    self.closed_seen = true;
                }
                Event::Answer { call, result } => {
                    assert!(self.issued.contains(call), "answer to a call never made");
                    assert!(!self.answers.contains_key(call), "{call:?} answered twice");
                    if self.closed_seen {
                        assert!(
                            self.issued_after_closed.contains(call),
                            "answer after Closed"
                        );
                        assert!(matches!(result, Err(Error::Closed)), "{result:?}");
                    }
                }
                _ => {}
            }
            if let Event::Answer { call, result } = event {
                self.answers.insert(call, result);
            } else {
                out.push(event);
            }
        }
        assert_eq!(self.s.is_closed(), self.closed_seen);
        assert_eq!(
            self.s.pending_calls(),
            self.issued.len() - self.answers.len(),
            "pending calls"
        );
        out
    }

    fn take_wire(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.wire)
    }

    fn answered(&self, call: CallId) -> bool {
        self.answers.contains_key(&call)
    }

    fn answer(&self, call: CallId) -> &CallResult {
        self.answers
            .get(&call)
            .unwrap_or_else(|| panic!("{call:?} not answered"))
    }

    /// After `Connect`: open the socket, HI, `+OK`; returns the events.
    fn handshake(&mut self) -> Vec<Event> {
        assert_eq!(self.sock, Sock::Opening);
        // What was written to the sockets before does not matter here.
        self.wire.clear();
        self.connected();
        self.input(HI);
        let mut ev = self.drain();
        assert_eq!(self.take_wire(), HELLO);
        self.input(OK);
        ev.extend(self.drain());
        ev
    }

    /// A ready session with nothing pending.
    fn ready(config: SessionConfig) -> H {
        let mut h = H::new(config);
        let c = h.connect();
        h.drain();
        h.handshake();
        assert!(matches!(h.answer(c), Ok(Ok(Reply::Ok))));
        assert!(h.s.is_ready());
        h
    }
}

fn refused() -> ConnectFailure {
    ConnectFailure::transient(ConnectPhase::Tcp, "connection refused")
}

/// The connect failure in an answer.
fn connect_source(result: &CallResult) -> &ConnectionError {
    match result {
        Err(Error::Connection { server, source }) => {
            assert_eq!(server, SERVER);
            source
        }
        other => panic!("expected Error::Connection, got {other:?}"),
    }
}

#[test]
fn eager_connect_succeeds() {
    let mut h = H::new(config());
    assert!(h.drain().is_empty(), "no socket before asked");
    assert_eq!(h.s.poll_timeout(), None);
    let c = h.connect();
    let ev = h.drain();
    assert!(matches!(&ev[..], [Event::Connect]), "{ev:?}");
    assert!(!h.answered(c));
    let ev = h.handshake();
    assert!(matches!(&ev[..], [Event::Ready]), "{ev:?}");
    assert!(matches!(h.answer(c), Ok(Ok(Reply::Ok))));
    assert!(h.s.is_ready());
    assert!(!h.s.awaits_input(), "idle: nothing due");
    // Connecting again while ready is answered at once, without a socket.
    let again = h.connect();
    assert!(h.drain().is_empty());
    assert!(matches!(h.answer(again), Ok(Ok(Reply::Ok))));
    assert_eq!(h.connects, 1);
}

#[test]
fn eager_connect_fails_fast_without_retry() {
    let mut h = H::new(config());
    let c = h.connect();
    h.drain();
    h.connect_failed(refused());
    let ev = h.drain();
    assert!(
        matches!(
            &ev[..],
            [Event::Disconnect, Event::ConnectFailed { retry_at: Some(t), error: ConnectionError::Connect(f) }]
                if f.phase == ConnectPhase::Tcp && *t == h.ms(100)
        ),
        "{ev:?}"
    );
    assert!(matches!(
        connect_source(h.answer(c)),
        ConnectionError::Connect(f) if f.reason == "connection refused" && !f.permanent
    ));
    assert_eq!(h.s.poll_timeout(), None, "no call waits: no retry");
    h.at(60_000).timeout();
    assert!(h.drain().is_empty());
    assert_eq!(h.connects, 1);
}

#[test]
fn calls_made_before_ready_are_pipelined_after_ok_in_order() {
    let mut h = H::new(config());
    let info = h.call(Command::Info);
    let flush = h.call(Command::Flush);
    let a = h.call(ack("abcdefgh"));
    let ev = h.drain();
    assert!(
        matches!(&ev[..], [Event::Connect]),
        "one socket for all: {ev:?}"
    );
    h.connected();
    assert!(h.s.awaits_input(), "the greeting is due");
    h.input(HI);
    h.drain();
    assert_eq!(
        h.take_wire(),
        HELLO,
        "nothing before the handshake completes"
    );
    h.input(OK);
    h.drain();
    assert_eq!(
        h.take_wire(),
        b"INFO\r\nFLUSH\r\nACK {\"jid\":\"abcdefgh\"}\r\n",
        "one write, in call order"
    );
    assert!(h.s.awaits_input());
    h.input(b"$2\r\n{}\r\n+OK\r\n-ERR Job not found abcdefgh\r\n");
    h.drain();
    assert!(matches!(h.answer(info), Ok(Ok(Reply::Json(b))) if &b[..] == b"{}"));
    assert!(matches!(h.answer(flush), Ok(Ok(Reply::Ok))));
    assert!(
        matches!(h.answer(a), Ok(Err(e)) if e.is_job_not_found()),
        "an error reply is that call's only"
    );
    assert!(h.s.is_ready());
    assert_eq!(h.s.pending_calls(), 0);
    // Once ready, a call goes out at once.
    let f = h.call(Command::Flush);
    h.drain();
    assert_eq!(h.take_wire(), b"FLUSH\r\n");
    h.input(OK);
    h.drain();
    assert!(matches!(h.answer(f), Ok(Ok(Reply::Ok))));
}

#[test]
fn a_call_times_out_waiting_for_a_connection_when_no_attempt_failed() {
    let mut c = config();
    c.request_timeout = Duration::from_secs(1);
    c.connect_timeout = Duration::from_secs(5);
    let mut h = H::new(c);
    let call = h.call(Command::Info);
    h.drain();
    h.connected();
    h.drain();
    assert_eq!(
        h.s.poll_timeout(),
        Some(h.ms(1000)),
        "the call's deadline first"
    );
    h.at(999).timeout();
    h.drain();
    assert!(!h.answered(call));
    h.at(1000).timeout();
    h.drain();
    assert!(matches!(
        connect_source(h.answer(call)),
        ConnectionError::Timeout("a connection")
    ));
    // The attempt goes on; it is bounded by the connect timeout.
    assert_eq!(h.s.poll_timeout(), Some(h.ms(5000)));
    h.at(5000).timeout();
    let ev = h.drain();
    assert!(
        matches!(
            &ev[..],
            [
                Event::Disconnect,
                Event::ConnectFailed {
                    retry_at: Some(_),
                    error: ConnectionError::Timeout(_)
                }
            ]
        ),
        "{ev:?}"
    );
    assert_eq!(h.s.poll_timeout(), None, "no call waits: no retry");
}

#[test]
fn a_call_waiting_for_a_connection_gets_the_last_connect_failure() {
    let mut c = config();
    c.request_timeout = Duration::from_secs(1);
    let mut h = H::new(c);
    // A call waits for one attempt at most: a refused connection answers it at once.
    let first = h.call(Command::Info);
    h.drain();
    h.connect_failed(refused());
    let ev = h.drain();
    let retry = h.ms(100);
    assert!(
        matches!(&ev[..], [Event::Disconnect, Event::ConnectFailed { retry_at: Some(t), .. }] if *t == retry),
        "{ev:?}"
    );
    assert!(matches!(
        connect_source(h.answer(first)),
        ConnectionError::Connect(f) if f.reason == "connection refused"
    ));
    // A call made during the backoff waits for the retry...
    let call = h.at(50).call(Command::Info);
    assert!(
        h.drain().is_empty(),
        "no socket before the backoff allows it"
    );
    assert_eq!(h.s.poll_timeout(), Some(retry));
    h.at(100).timeout();
    let ev = h.drain();
    assert!(matches!(&ev[..], [Event::Connect]), "{ev:?}");
    // ...whose attempt hangs (the socket opens, the server says nothing): the call's deadline comes
    // first, and it gets the failure of the attempt before.
    h.connected();
    h.at(1050).timeout();
    h.drain();
    assert!(matches!(
        connect_source(h.answer(call)),
        ConnectionError::Connect(f) if f.reason == "connection refused"
    ));
}

#[test]
fn each_call_gets_one_attempt_and_the_next_attempts_follow_the_backoff() {
    let mut c = config();
    c.request_timeout = Duration::from_secs(30);
    let mut h = H::new(c);
    // A server that is down: each call is answered after one attempt; the attempts of the calls
    // that follow are spaced by the backoff (100, 200, 400 ms).
    let mut at = 0;
    let mut call = h.call(Command::Flush);
    h.drain();
    for delay in [100, 200, 400] {
        h.at(at).connect_failed(refused());
        let ev = h.drain();
        assert!(
            matches!(&ev[..], [Event::Disconnect, Event::ConnectFailed { retry_at: Some(t), .. }] if *t == h.ms(at + delay)),
            "{ev:?}"
        );
        assert!(
            matches!(connect_source(h.answer(call)), ConnectionError::Connect(_)),
            "answered after its one attempt"
        );
        call = h.at(at + 1).call(Command::Flush);
        assert!(h.drain().is_empty(), "not before the retry");
        assert_eq!(h.s.poll_timeout(), Some(h.ms(at + delay)));
        h.at(at + delay - 1).timeout();
        assert!(h.drain().is_empty(), "not before the retry");
        at += delay;
        h.at(at).timeout();
        let ev = h.drain();
        assert!(matches!(&ev[..], [Event::Connect]), "{ev:?}");
        assert!(!h.answered(call), "the call waits for its attempt");
    }
    h.handshake();
    assert_eq!(h.take_wire(), b"FLUSH\r\n");
    h.input(OK);
    h.drain();
    assert!(matches!(h.answer(call), Ok(Ok(Reply::Ok))));
    assert_eq!(h.connects, 4);
}

#[test]
fn calls_whose_deadline_comes_before_the_retry_are_answered_at_once() {
    let mut c = config();
    c.request_timeout = Duration::from_secs(1);
    c.backoff.initial = Duration::from_millis(800);
    let mut h = H::new(c);
    let z = h.call(Command::Info);
    h.drain();
    h.connect_failed(refused());
    h.drain();
    assert!(h.answered(z), "one attempt per call");
    // A call made during the backoff, whose deadline (1.7 s) is after the retry (800 ms): waits.
    let a = h.at(700).call(Command::Info);
    assert!(h.drain().is_empty());
    assert!(!h.answered(a));
    h.at(800).timeout();
    h.drain();
    h.at(850).connect_failed(refused());
    let ev = h.drain();
    // Its attempt failed: answered now, and nothing waits (the next attempt: 850 + 1600 ms).
    assert!(
        matches!(
            &ev[..],
            [
                Event::Disconnect,
                Event::ConnectFailed { retry_at: Some(t), .. }
            ] if *t == h.ms(2450)
        ),
        "{ev:?}"
    );
    assert!(matches!(
        connect_source(h.answer(a)),
        ConnectionError::Connect(_)
    ));
    assert_eq!(h.s.poll_timeout(), None);
    // A call made during the backoff whose deadline is before the retry: answered at once with
    // the last error, no socket (a loop of calls does not hammer a server that is down).
    let b = h.at(900).call(Command::Info);
    let ev = h.drain();
    assert!(ev.is_empty(), "{ev:?}");
    assert!(matches!(
        connect_source(h.answer(b)),
        ConnectionError::Connect(_)
    ));
    // One whose deadline is after the retry waits for it.
    let c2 = h.at(1500).call(Command::Info);
    assert!(h.drain().is_empty());
    assert_eq!(h.s.poll_timeout(), Some(h.ms(2450)));
    h.at(2450).timeout();
    assert!(matches!(&h.drain()[..], [Event::Connect]));
    assert!(!h.answered(c2));
    // After the retry time, the next call connects at once.
    h.connect_failed(refused());
    h.drain();
    assert!(h.answered(c2), "its deadline is before the next retry");
    let d = h.at(10_000).call(Command::Info);
    assert!(matches!(&h.drain()[..], [Event::Connect]));
    assert!(!h.answered(d));
}

#[test]
fn a_permanent_connect_failure_answers_every_waiting_call_at_once() {
    let mut h = H::new(config());
    let calls: Vec<_> = (0..3).map(|_| h.call(Command::Info)).collect();
    h.drain();
    h.connect_failed(ConnectFailure::permanent(
        ConnectPhase::Tls,
        "invalid peer certificate: UnknownIssuer",
    ));
    let ev = h.drain();
    assert!(
        matches!(
            &ev[..],
            [
                Event::Disconnect,
                Event::ConnectFailed { retry_at: None, .. }
            ]
        ),
        "{ev:?}"
    );
    for c in calls {
        assert!(matches!(
            connect_source(h.answer(c)),
            ConnectionError::Connect(f) if f.permanent && f.phase == ConnectPhase::Tls
        ));
    }
    assert_eq!(h.s.poll_timeout(), None, "no retry");
    h.at(60_000).timeout();
    assert!(h.drain().is_empty());
    assert_eq!(h.connects, 1);
}

#[test]
fn a_refused_password_answers_every_waiting_call_at_once() {
    let mut options = ClientOptions::default();
    options.password = Some(Password::from("wrong"));
    let mut c = config();
    c.options = options;
    let mut h = H::new(c);
    let connect = h.connect();
    let calls: Vec<_> = (0..2).map(|_| h.call(Command::Info)).collect();
    h.drain();
    h.connected();
    h.input(b"+HI {\"v\":2,\"i\":1,\"s\":\"salt\"}\r\n");
    h.drain();
    assert!(h.take_wire().starts_with(b"HELLO {\"v\":2,\"pwdhash\":"));
    h.input(b"-ERR Invalid password\r\n");
    let ev = h.drain();
    assert!(
        matches!(
            &ev[..],
            [
                Event::Disconnect,
                Event::ConnectFailed {
                    retry_at: None,
                    error: ConnectionError::Auth(_)
                }
            ]
        ),
        "{ev:?}"
    );
    for c in calls.into_iter().chain([connect]) {
        assert!(matches!(
            connect_source(h.answer(c)),
            ConnectionError::Auth(e) if e.is_invalid_password()
        ));
    }
    assert_eq!(h.s.poll_timeout(), None);
    assert!(h.take_wire().is_empty(), "the calls were never sent");
}

#[test]
fn a_drop_gives_unknown_outcomes_to_the_calls_in_flight_only() {
    let mut h = H::ready(config());
    let info = h.call(Command::Info);
    let flush = h.call(Command::Flush);
    h.drain();
    h.input(b"$2\r\n{}\r\n");
    h.drain();
    h.eof();
    let ev = h.drain();
    assert!(matches!(&ev[..], [Event::Disconnect]), "{ev:?}");
    assert!(matches!(h.answer(info), Ok(Ok(Reply::Json(_)))));
    assert!(matches!(
        h.answer(flush),
        Err(Error::OutcomeUnknown { server, command: "FLUSH", source: ConnectionError::Eof }) if server == SERVER
    ));
    // The next call reconnects at once (no backoff for the first attempt after a drop).
    assert_eq!(h.s.poll_timeout(), None);
    let next = h.call(Command::Flush);
    assert!(matches!(&h.drain()[..], [Event::Connect]));
    h.handshake();
    assert_eq!(
        h.take_wire(),
        b"FLUSH\r\n",
        "only the new call: nothing is re-sent"
    );
    h.input(OK);
    h.drain();
    assert!(matches!(h.answer(next), Ok(Ok(Reply::Ok))));
}

#[test]
fn an_io_error_or_a_reply_timeout_is_a_drop_too() {
    let mut h = H::ready(config());
    let a = h.call(Command::Info);
    h.drain();
    h.transport_error();
    assert!(matches!(&h.drain()[..], [Event::Disconnect]));
    assert!(matches!(
        h.answer(a),
        Err(Error::OutcomeUnknown {
            command: "INFO",
            source: ConnectionError::Io(_),
            ..
        })
    ));
    let b = h.call(Command::Info);
    h.drain();
    h.handshake();
    h.take_wire();
    let sent = h.now;
    assert_eq!(h.s.poll_timeout(), Some(sent + Duration::from_secs(10)));
    h.now = sent + Duration::from_secs(10);
    h.timeout();
    assert!(matches!(&h.drain()[..], [Event::Disconnect]));
    let e = h.answer(b).as_ref().unwrap_err();
    assert!(
        e.is_timeout() && matches!(e, Error::OutcomeUnknown { .. }),
        "{e:?}"
    );
}

#[test]
fn the_backoff_is_reset_once_a_connection_was_ready() {
    let mut h = H::new(config());
    h.call(Command::Info);
    h.drain();
    h.connect_failed(refused()); // retry after 100 ms
    h.drain();
    h.at(50).call(Command::Info);
    h.at(100).timeout();
    h.drain();
    h.connect_failed(refused()); // retry after 200 ms
    let ev = h.drain();
    assert!(
        matches!(&ev[..], [_, Event::ConnectFailed { retry_at: Some(t), .. }] if *t == h.ms(300))
    );
    let a = h.at(150).call(Command::Info);
    h.at(300).timeout();
    h.drain();
    h.handshake();
    h.input(b"$2\r\n{}\r\n");
    h.drain();
    assert!(h.answered(a));
    h.at(5000).eof();
    h.drain();
    // A new streak: the first attempt at once, then 100 ms again (not 400).
    h.call(Command::Info);
    assert!(matches!(&h.drain()[..], [Event::Connect]));
    h.connect_failed(refused());
    let ev = h.drain();
    assert!(
        matches!(&ev[..], [_, Event::ConnectFailed { retry_at: Some(t), .. }] if *t == h.ms(5100)),
        "{ev:?}"
    );
}

#[test]
fn too_many_connections_is_a_failed_attempt_and_its_calls_were_not_executed() {
    let mut h = H::new(config());
    let a = h.call(Command::Flush);
    h.drain();
    h.connected();
    h.input(HI);
    h.input(OK);
    h.drain();
    assert_eq!(h.take_wire(), b"HELLO {\"v\":2}\r\nFLUSH\r\n");
    h.input(b"-ERR too many connections: 2000\r\n");
    let ev = h.drain();
    assert!(
        matches!(
            &ev[..],
            [Event::Disconnect, Event::ConnectFailed { retry_at: Some(t), error: ConnectionError::TooManyConnections(_) }]
                if *t == h.ms(100)
        ),
        "{ev:?}"
    );
    // The server read none of it: the call failed to connect (it was not executed), it is not an
    // unknown outcome.
    assert!(
        matches!(
            connect_source(h.answer(a)),
            ConnectionError::TooManyConnections(_)
        ),
        "{:?}",
        h.answer(a)
    );
    // The next call waits for the backoff; refused again, in the same chunk as +OK: the call was
    // never written this time.
    let b = h.at(50).call(Command::Flush);
    h.at(100).timeout();
    h.drain();
    h.connected();
    h.input(HI);
    h.drain();
    h.input(b"+OK\r\n-ERR too many connections: 2000\r\n");
    let ev = h.drain();
    assert!(
        matches!(&ev[..], [Event::Ready, Event::Disconnect, Event::ConnectFailed { retry_at: Some(t), .. }] if *t == h.ms(300)),
        "the backoff grows: {ev:?}"
    );
    assert_eq!(h.take_wire(), HELLO);
    assert!(matches!(
        connect_source(h.answer(b)),
        ConnectionError::TooManyConnections(_)
    ));
    // A connection that takes it.
    let c = h.at(250).call(Command::Flush);
    h.at(300).timeout();
    h.drain();
    h.handshake();
    assert_eq!(h.take_wire(), b"FLUSH\r\n");
    h.input(OK);
    h.drain();
    assert!(matches!(h.answer(c), Ok(Ok(Reply::Ok))));
}

#[test]
fn without_reconnect_the_first_socket_is_the_only_one() {
    let mut c = config();
    c.reconnect = false;
    c.server = "user-supplied stream".into();
    let mut h = H::new(c);
    let first = h.call(Command::Info);
    h.drain();
    h.handshake();
    h.take_wire();
    h.input(b"$2\r\n{}\r\n");
    let a = h.call(Command::Flush);
    h.drain();
    h.eof();
    assert!(matches!(&h.drain()[..], [Event::Disconnect]));
    assert!(h.answered(first));
    assert!(matches!(
        h.answer(a),
        Err(Error::OutcomeUnknown {
            command: "FLUSH",
            ..
        })
    ));
    let b = h.call(Command::Info);
    let c2 = h.connect();
    assert!(h.drain().is_empty(), "no Connect again");
    for call in [b, c2] {
        assert!(matches!(
            h.answer(call),
            Err(Error::Connection { server, source: ConnectionError::Eof }) if server == "user-supplied stream"
        ));
    }
    assert_eq!(h.connects, 1);

    // A failed first handshake ends it as well.
    let mut c = config();
    c.reconnect = false;
    let mut h = H::new(c);
    let a = h.call(Command::Info);
    h.drain();
    h.connected();
    h.input(b"HTTP/1.1 400 Bad Request\r\n");
    let ev = h.drain();
    assert!(
        matches!(
            &ev[..],
            [
                Event::Disconnect,
                Event::ConnectFailed { retry_at: None, .. }
            ]
        ),
        "{ev:?}"
    );
    assert!(matches!(
        connect_source(h.answer(a)),
        ConnectionError::Decode(_)
    ));
    let b = h.call(Command::Info);
    assert!(h.drain().is_empty());
    assert!(matches!(
        connect_source(h.answer(b)),
        ConnectionError::Decode(_)
    ));
    assert_eq!(h.connects, 1);
}

#[test]
fn close_with_calls_in_flight_waits_for_their_replies_and_the_eof() {
    let mut h = H::ready(config());
    let info = h.call(Command::Info);
    let flush = h.call(Command::Flush);
    h.drain();
    let close = h.close();
    let second = h.close();
    let ev = h.drain();
    assert!(ev.is_empty(), "{ev:?}");
    assert_eq!(
        h.take_wire(),
        b"INFO\r\nFLUSH\r\nEND\r\n",
        "END after the calls"
    );
    assert!(!h.s.is_ready());
    assert!(h.s.awaits_input());
    let late = h.call(Command::Info);
    h.drain();
    assert!(matches!(h.answer(late), Err(Error::Closed)));
    h.input(b"$2\r\n{}\r\n+OK\r\n");
    h.drain();
    assert!(matches!(h.answer(info), Ok(Ok(Reply::Json(_)))));
    assert!(matches!(h.answer(flush), Ok(Ok(Reply::Ok))));
    assert!(!h.answered(close), "answered on the server's EOF");
    h.eof();
    let ev = h.drain();
    assert!(
        matches!(&ev[..], [Event::Disconnect, Event::Closed]),
        "{ev:?}"
    );
    assert!(matches!(h.answer(close), Ok(Ok(Reply::Ok))));
    assert!(matches!(h.answer(second), Ok(Ok(Reply::Ok))));
    assert!(h.s.is_closed());
    assert_eq!(h.s.poll_timeout(), None);
    // Later calls (and closes) are answered with Closed; nothing else happens.
    let after = h.call(Command::Info);
    let again = h.close();
    let c = h.connect();
    assert!(h.drain().is_empty());
    for call in [after, again, c] {
        assert!(matches!(h.answer(call), Err(Error::Closed)));
    }
    h.eof();
    h.input(OK);
    h.at(100_000).timeout();
    assert!(h.drain().is_empty());
}

#[test]
fn close_when_the_server_never_closes_ends_at_the_end_deadline() {
    let mut h = H::ready(config());
    let close = h.close();
    h.drain();
    assert_eq!(h.take_wire(), b"END\r\n");
    assert_eq!(h.s.poll_timeout(), Some(h.now + Duration::from_secs(10)));
    h.at(10_000).timeout();
    let ev = h.drain();
    assert!(
        matches!(&ev[..], [Event::Disconnect, Event::Closed]),
        "{ev:?}"
    );
    assert!(matches!(h.answer(close), Ok(Ok(Reply::Ok))));
}

#[test]
fn close_while_connecting_abandons_the_attempt() {
    // The socket is opening.
    let mut h = H::new(config());
    let a = h.call(Command::Info);
    let c = h.connect();
    h.drain();
    let close = h.close();
    let ev = h.drain();
    assert!(
        matches!(&ev[..], [Event::Disconnect, Event::Closed]),
        "{ev:?}"
    );
    assert!(matches!(h.answer(a), Err(Error::Closed)));
    assert!(matches!(h.answer(c), Err(Error::Closed)));
    assert!(matches!(h.answer(close), Ok(Ok(Reply::Ok))));
    // A late report of the abandoned socket changes nothing.
    h.connected();
    h.input(HI);
    assert!(h.drain().is_empty());
    assert!(h.take_wire().is_empty());

    // The handshake is in progress.
    let mut h = H::new(config());
    let a = h.call(Command::Info);
    h.drain();
    h.connected();
    h.input(HI);
    h.drain();
    h.take_wire();
    let close = h.close();
    let ev = h.drain();
    assert!(
        matches!(&ev[..], [Event::Disconnect, Event::Closed]),
        "{ev:?}"
    );
    assert!(
        h.take_wire().is_empty(),
        "no END before the handshake completed"
    );
    assert!(matches!(h.answer(a), Err(Error::Closed)));
    assert!(matches!(h.answer(close), Ok(Ok(Reply::Ok))));

    // Waiting for a retry.
    let mut h = H::new(config());
    h.call(Command::Info);
    h.drain();
    h.connect_failed(refused());
    h.drain();
    let a = h.at(50).call(Command::Info);
    assert!(h.drain().is_empty(), "waits for the backoff");
    let close = h.close();
    let ev = h.drain();
    assert!(matches!(&ev[..], [Event::Closed]), "{ev:?}");
    assert!(matches!(h.answer(a), Err(Error::Closed)));
    assert!(matches!(h.answer(close), Ok(Ok(Reply::Ok))));
    h.at(60_000).timeout();
    assert!(h.drain().is_empty(), "no retry after close");
}

#[test]
fn close_while_idle() {
    // No socket ever.
    let mut h = H::new(config());
    let close = h.close();
    let ev = h.drain();
    assert!(matches!(&ev[..], [Event::Closed]), "{ev:?}");
    assert!(matches!(h.answer(close), Ok(Ok(Reply::Ok))));
    assert_eq!(h.connects, 0);

    // A ready connection with nothing in flight: END, then the server's EOF.
    let mut h = H::ready(config());
    let close = h.call(Command::End);
    h.drain();
    assert_eq!(h.take_wire(), b"END\r\n");
    h.eof();
    let ev = h.drain();
    assert!(
        matches!(&ev[..], [Event::Disconnect, Event::Closed]),
        "{ev:?}"
    );
    assert!(matches!(h.answer(close), Ok(Ok(Reply::Ok))));

    // After a drop (no socket).
    let mut h = H::ready(config());
    h.eof();
    h.drain();
    let close = h.close();
    assert!(matches!(&h.drain()[..], [Event::Closed]));
    assert!(matches!(h.answer(close), Ok(Ok(Reply::Ok))));
}

#[test]
fn the_attempt_deadline_covers_the_socket_and_the_handshake() {
    let mut c = config();
    c.connect_timeout = Duration::from_secs(2);
    c.request_timeout = Duration::from_secs(60);

    // The socket never opens (a driver that does not bound its steps): the session gives up 250 ms
    // after the budget, so a driver that does reports first, with the phase.
    let mut h = H::new(c.clone());
    let a = h.call(Command::Info);
    h.drain();
    assert_eq!(h.s.poll_timeout(), Some(h.ms(2250)));
    h.at(2249).timeout();
    assert!(h.drain().is_empty());
    h.at(2250).timeout();
    let ev = h.drain();
    assert!(
        matches!(
            &ev[..],
            [
                Event::Disconnect,
                Event::ConnectFailed {
                    retry_at: Some(_),
                    error: ConnectionError::Timeout("the socket to open")
                }
            ]
        ),
        "{ev:?}"
    );
    assert!(
        matches!(
            connect_source(h.answer(a)),
            ConnectionError::Timeout("the socket to open")
        ),
        "one attempt per call"
    );
    // The driver's late report of that socket is ignored (it was told to abandon it).
    h.connected();
    assert!(h.drain().is_empty());
    assert_eq!(h.s.poll_timeout(), None, "nothing waits");

    // The socket opens after 500 ms and the server says nothing: the handshake gets what is left.
    let mut h = H::new(c);
    h.connect();
    h.drain();
    h.at(500).connected();
    h.drain();
    assert_eq!(h.s.poll_timeout(), Some(h.ms(2000)));
    h.at(2000).timeout();
    let ev = h.drain();
    assert!(
        matches!(
            &ev[..],
            [
                Event::Disconnect,
                Event::ConnectFailed {
                    error: ConnectionError::Timeout(
                        "the server greeting (HI): if the server expects TLS, use tcp+tls://"
                    ),
                    ..
                }
            ]
        ),
        "{ev:?}"
    );
}

#[test]
fn invalid_commands_are_answered_at_once() {
    let bad = || Command::Fetch(vec!["has space".into()]);
    // Waiting for a connection.
    let mut h = H::new(config());
    let a = h.call(bad());
    assert!(
        h.drain().is_empty(),
        "no socket for a call that cannot be sent"
    );
    assert!(matches!(h.answer(a), Err(Error::Encode(_))));
    // On a ready connection, which stays usable.
    let mut h = H::ready(config());
    let b = h.call(bad());
    h.drain();
    assert!(matches!(h.answer(b), Err(Error::Encode(_))));
    assert!(h.take_wire().is_empty());
    let c = h.call(Command::Flush);
    h.drain();
    h.input(OK);
    h.drain();
    assert!(matches!(h.answer(c), Ok(Ok(Reply::Ok))));
}

/// The intent of the removed `adapter::Calls` test: replies go to their callers in order, a call
/// sent and not answered when the connection closed gets an unknown outcome, END is answered once
/// the connection has closed, and a command that cannot be encoded is answered at once.
#[test]
fn unanswered_calls_get_an_unknown_outcome_and_close_is_answered_at_eof() {
    let mut h = H::ready(config());
    let bad = h.call(Command::Fetch(vec!["has space".into()]));
    let info = h.call(Command::Info);
    let flush = h.call(Command::Flush);
    let close = h.close();
    h.drain();
    assert!(matches!(h.answer(bad), Err(Error::Encode(_))));
    assert_eq!(h.s.pending_calls(), 3);
    h.input(b"$2\r\n{}\r\n");
    h.eof();
    let ev = h.drain();
    assert!(
        matches!(&ev[..], [Event::Disconnect, Event::Closed]),
        "{ev:?}"
    );
    assert!(matches!(h.answer(info), Ok(Ok(Reply::Json(_)))));
    assert!(matches!(
        h.answer(flush),
        Err(Error::OutcomeUnknown {
            command: "FLUSH",
            source: ConnectionError::Eof,
            ..
        })
    ));
    assert!(matches!(h.answer(close), Ok(Ok(Reply::Ok))));
    assert_eq!(h.s.pending_calls(), 0);
}

#[test]
fn huge_timeouts_do_not_overflow() {
    let mut c = config();
    c.connect_timeout = Duration::MAX;
    c.request_timeout = Duration::MAX;
    c.backoff.initial = Duration::MAX;
    c.backoff.max = Duration::MAX;
    let mut h = H::new(c);
    let a = h.call(Command::Info);
    h.drain();
    assert_eq!(h.s.poll_timeout(), None, "no deadline can be reached");
    h.connect_failed(refused());
    let ev = h.drain();
    assert!(
        matches!(
            &ev[..],
            [
                Event::Disconnect,
                Event::ConnectFailed { retry_at: None, .. }
            ]
        ),
        "{ev:?}"
    );
    assert!(h.answered(a), "no retry can ever come: answered at once");
    h.call(Command::Info);
    assert!(matches!(&h.drain()[..], [Event::Connect]));
    h.handshake();
    h.at(1_000_000).timeout();
    h.drain();
}

#[test]
fn time_never_runs_backwards_in_a_session() {
    let mut c = config();
    c.request_timeout = Duration::from_secs(1);
    let mut h = H::new(c);
    h.at(5000).call(Command::Info);
    h.drain();
    // A call made with an earlier `now` counts from the latest one.
    let late = h.at(0).call(Command::Info);
    h.drain();
    assert_eq!(h.s.poll_timeout(), Some(h.ms(6000)));
    h.at(5999).timeout();
    h.drain();
    assert!(!h.answered(late));
    h.at(6000).timeout();
    h.drain();
    assert!(h.answered(late));
}

// -------------------------------------------------------------------------------------------------
// proptest

#[derive(Clone, Debug)]
enum Op {
    Call(u8),
    Connect,
    Close,
    Connected,
    ConnectFailed(bool),
    Input(usize),
    Eof,
    TransportError,
    Advance(u64),
    ToDeadline,
    /// A well-behaved server: the socket opens, HI (asking for the password when one is set),
    /// `+OK`.
    Handshake,
    /// A reply every command sent here accepts (bulk `OK`).
    Reply,
}

/// What a fake server may say (also out of turn).
const INPUTS: &[&[u8]] = &[
    b"+HI {\"v\":2}\r\n",
    b"+HI {\"v\":2}\r\n+OK\r\n",
    b"+OK\r\n",
    b"$2\r\n{}\r\n",
    b"$-1\r\n",
    b"-ERR boom\r\n",
    b"-ERR too many connections: 5\r\n",
    b"+OK\r\n-ERR too many connections: 5\r\n",
    b"+HI {\"v\":2,\"i\":1,\"s\":\"x\"}\r\n",
    b"-ERR Invalid password\r\n",
    b"!garbage\r\n",
    b"$5\r\nOK",
];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..12).prop_map(Op::Call),
        1 => Just(Op::Connect),
        1 => Just(Op::Close),
        4 => Just(Op::Connected),
        2 => any::<bool>().prop_map(Op::ConnectFailed),
        8 => (0..INPUTS.len()).prop_map(Op::Input),
        1 => Just(Op::Eof),
        1 => Just(Op::TransportError),
        3 => (0u64..3000).prop_map(Op::Advance),
        2 => Just(Op::ToDeadline),
        4 => Just(Op::Handshake),
        6 => Just(Op::Reply),
    ]
}

fn command(kind: u8) -> Command {
    match kind {
        0 => Command::Info,
        1 => Command::Flush,
        2 => Command::Fetch(vec!["default".into()]),
        3 => ack("abcdefgh"),
        4 => Command::Fetch(vec!["has space".into()]),
        5..=10 => Command::Info,
        _ => Command::End,
    }
}

/// Applies one operation.
fn apply(h: &mut H, op: &Op, password: bool) {
    match op {
        Op::Call(k) => {
            h.call(command(*k));
        }
        Op::Connect => {
            h.connect();
        }
        Op::Close => {
            h.close();
        }
        Op::Connected => h.connected(),
        Op::ConnectFailed(permanent) => {
            let f = if *permanent {
                ConnectFailure::permanent(ConnectPhase::Tls, "bad certificate")
            } else {
                refused()
            };
            h.connect_failed(f);
        }
        Op::Input(i) => h.input(INPUTS[*i]),
        Op::Eof => h.eof(),
        Op::TransportError => h.transport_error(),
        Op::Advance(ms) => {
            h.now += Duration::from_millis(*ms);
            h.timeout();
        }
        Op::ToDeadline => {
            if let Some(t) = h.s.poll_timeout() {
                h.now = h.now.max(t);
            }
            h.timeout();
        }
        Op::Handshake => {
            h.connected();
            h.drain();
            if password {
                h.input(b"+HI {\"v\":2,\"i\":3,\"s\":\"salt\"}\r\n");
            } else {
                h.input(HI);
            }
            h.drain();
            h.input(OK);
        }
        Op::Reply => h.input(b"$2\r\nOK\r\n"),
    }
    h.drain();
}

fn run(ops: &[Op], reconnect: bool, password: bool) {
    let mut c = config();
    c.reconnect = reconnect;
    c.connect_timeout = Duration::from_secs(2);
    c.request_timeout = Duration::from_secs(3);
    c.options.reply_timeout = Duration::from_secs(1);
    c.backoff.jitter = 0.5;
    c.seed = 7;
    if password {
        c.options.password = Some(Password::from("pw"));
    }
    let mut h = H::new(c);
    for op in ops {
        apply(&mut h, op, password);
        if !reconnect {
            assert!(h.connects <= 1, "a second socket without reconnect");
        }
    }
    // Close, and let the server go away: the session must end, every call answered.
    h.close();
    for _ in 0..4 {
        h.drain();
        if h.closed_seen {
            break;
        }
        h.eof();
        h.drain();
        h.now += Duration::from_secs(3600);
        h.timeout();
    }
    h.drain();
    assert!(h.closed_seen, "close ends the session");
    assert_eq!(h.sock, Sock::None, "every Connect matched by a Disconnect");
    assert_eq!(h.answers.len(), h.issued.len(), "every call answered");
    assert_eq!(h.s.pending_calls(), 0);
    assert_eq!(h.s.poll_timeout(), None);
    assert_eq!(h.s.poll_transmit(), None);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_interleavings_keep_the_invariants(
        ops in proptest::collection::vec(op(), 0..60),
        reconnect in any::<bool>(),
        password in any::<bool>(),
    ) {
        run(&ops, reconnect, password);
    }
}
