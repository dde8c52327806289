//! The transcripts of a real Faktory 1.10.0 (`tests/data/*.txt`) replayed through both connection
//! machines, whole and in small chunks (one byte at a time, except `big.txt`: 7 bytes).
//!
//! Client side: a [`client::Connection`] configured like the recorded client queues every command
//! of the session it can express (the client lines that [`Command::parse`] accepts and
//! [`Command::encode`] can write), is fed the server's bytes for those commands, and must
//! - transmit exactly its HELLO followed by the encoded commands (byte-equal to the transcript's
//!   lines wherever the recorded client wrote them the way we do: asserted per session);
//! - emit the events the transcript shows: `Ready`, one `Reply` per answered command with the
//!   reply the protocol's reply table gives for that frame (worked out in `common` without the
//!   crate's decoder), then `Closed` with the error the transcript implies.
//!
//! Server side: a [`server::Connection`] (with the transcript's salt and iterations when the
//! recorded server had a password) is fed the client's bytes; every line must become the event it
//! is (a command, or, where the real server answered with a parse error, `Invalid` whose reply is
//! byte-equal to the recorded one); the other replies are replayed with `reply_raw`, so the whole
//! output must equal the recorded server bytes, `HI` included.
#![cfg(feature = "server")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::{AUTH_PASSWORD, Session, hi_salt, raw_frame, strip_terminator, verb};
use faktory_proto::ServerError;
use faktory_proto::client::{self, ClientOptions, ConnectionError, Event, Reply, RequestId};
use faktory_proto::command::{Command, CommandError, WorkerState};
use faktory_proto::handshake::{Password, password_hash};
use faktory_proto::server::{self, CloseReason, ServerEvent, ServerOptions};

/// How bytes are fed.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Everything in one call.
    Whole,
    /// In chunks of this many bytes, with virtual time advancing as the transcript recorded it.
    Chunks(usize),
}

// ------------------------------------------------------------------------------------------------
// client side

/// What a client replay produced.
#[derive(Debug)]
struct ClientRun {
    events: Vec<Event>,
    /// Everything `poll_transmit` gave.
    transmitted: Vec<u8>,
    /// The HELLO line we sent, if any.
    hello: Option<Vec<u8>>,
    /// Whether our HELLO is byte-equal to the recorded one.
    hello_exact: bool,
    /// The commands we sent (lines of the session we can express), with their ids.
    sent: Vec<(RequestId, Command)>,
    /// How many of them encode byte-equal to the recorded line (terminator normalised to CRLF).
    exact_lines: usize,
}

impl ClientRun {
    fn replies(&self) -> Vec<&Result<Reply, ServerError>> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Reply { result, .. } => Some(result),
                _ => None,
            })
            .collect()
    }

    fn reply_to(&self, verb_name: &str) -> Vec<&Result<Reply, ServerError>> {
        let ids: Vec<RequestId> = self
            .sent
            .iter()
            .filter(|(_, c)| verb(&line_of(c)) == verb_name.as_bytes())
            .map(|(id, _)| *id)
            .collect();
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Reply { id, result } if ids.contains(id) => Some(result),
                _ => None,
            })
            .collect()
    }

    fn closed(&self) -> (&Option<ConnectionError>, &Vec<RequestId>) {
        match self.events.last() {
            Some(Event::Closed { error, unanswered }) => (error, unanswered),
            other => panic!("last event is not Closed: {other:?}"),
        }
    }
}

fn line_of(c: &Command) -> Vec<u8> {
    let mut b = BytesMut::new();
    c.encode(&mut b).unwrap();
    b.to_vec()
}

/// The HELLO our client must send, as JSON (key order is checked separately, against the
/// transcript, where the recorded client's HELLO has the same content).
fn expected_hello(o: &ClientOptions, hi: &[u8]) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert("v".into(), 2.into());
    if let Some(h) = &o.hostname {
        m.insert("hostname".into(), h.as_str().into());
    }
    if let Some(p) = o.pid {
        m.insert("pid".into(), p.into());
    }
    if !o.labels.is_empty() {
        m.insert("labels".into(), o.labels.clone().into());
    }
    if let Some(w) = &o.wid {
        m.insert("wid".into(), w.as_str().into());
    }
    if let (Some((s, i)), Some(pw)) = (hi_salt(hi), &o.password) {
        m.insert("pwdhash".into(), password_hash(pw.expose(), &s, i).into());
    }
    serde_json::Value::Object(m)
}

fn run_client(session: &Session, mode: Mode) -> ClientRun {
    let script = common::client_script(session);
    let flow = &script.flow;
    let base = Instant::now();
    let options = script.options.clone();
    let want_hello = expected_hello(&options, &flow.hi.0);
    let has_password = options.password.is_some();
    let mut conn = client::Connection::new(options, base);
    assert!(!conn.is_ready() && !conn.is_closed());
    assert_eq!(conn.poll_timeout(), Some(base + Duration::from_secs(10)));

    // Queue every command we can express; they are held until the handshake completes.
    let mut sent = Vec::new();
    let mut replies = Vec::new();
    let mut encoded = Vec::new();
    let exact_lines = script.commands.iter().filter(|c| c.exact).count();
    for sc in &script.commands {
        let id = conn.send(&sc.command, base).unwrap();
        encoded.extend_from_slice(&sc.encoded);
        replies.push((id, sc.command.clone(), sc.replies.clone()));
        sent.push((id, sc.command.clone()));
    }
    assert_eq!(
        conn.in_flight(),
        sent.iter().filter(|(_, c)| *c != Command::End).count()
    );
    assert_eq!(conn.poll_transmit(), None, "nothing may be sent before HI");
    let frames = &script.frames;

    let mut transmitted = Vec::new();
    let mut events = Vec::new();
    let mut now = base;
    let drain =
        |conn: &mut client::Connection, transmitted: &mut Vec<u8>, events: &mut Vec<Event>| {
            while let Some(b) = conn.poll_transmit() {
                transmitted.extend_from_slice(&b);
            }
            while let Some(e) = conn.poll_event() {
                events.push(e);
            }
        };
    match mode {
        Mode::Whole => {
            let all: Vec<u8> = frames.iter().flat_map(|(f, _)| f.iter().copied()).collect();
            conn.handle_input(&all, now);
            drain(&mut conn, &mut transmitted, &mut events);
        }
        Mode::Chunks(n) => {
            for (frame, secs) in frames {
                now += Duration::from_secs_f64(*secs);
                // Virtual time: a spurious timer call changes nothing while replies are on time.
                conn.handle_timeout(now);
                for chunk in frame.chunks(n) {
                    conn.handle_input(chunk, now);
                    drain(&mut conn, &mut transmitted, &mut events);
                }
            }
        }
    }
    if flow.server_closed {
        conn.handle_eof(now);
        drain(&mut conn, &mut transmitted, &mut events);
        assert!(conn.is_closed());
        assert_eq!(conn.poll_timeout(), None);
        assert!(matches!(
            conn.send(&Command::Info, now),
            Err(client::SendError::Closed)
        ));
    }

    // --- the oracle ---
    let all_ids: Vec<RequestId> = replies
        .iter()
        .filter(|(_, c, _)| *c != Command::End)
        .map(|(id, _, _)| *id)
        .collect();
    let mut expected = Vec::new();
    let mut expected_tx = Vec::new();
    let asks = hi_salt(&flow.hi.0).is_some();
    if asks && !has_password {
        expected.push(Event::Closed {
            error: Some(ConnectionError::PasswordRequired),
            unanswered: all_ids,
        });
    } else {
        let hello_line = transmitted
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| transmitted[..=i].to_vec());
        match &hello_line {
            Some(hello_line) => {
                let json = serde_json::from_slice::<serde_json::Value>(
                    strip_terminator(hello_line)
                        .strip_prefix(b"HELLO ")
                        .unwrap(),
                )
                .unwrap();
                assert_eq!(json, want_hello, "{}: HELLO content", session.name());
                expected_tx.extend_from_slice(hello_line);
            }
            None => {
                // Fed whole, the refusal arrives in the same input as HI: the connection is
                // closed before the driver polls, and a closed connection transmits nothing.
                assert!(
                    matches!(mode, Mode::Whole),
                    "{}: no HELLO sent",
                    session.name()
                );
                assert!(
                    matches!(
                        flow.hello_reply.as_ref().map(|(f, _)| raw_frame(f)),
                        Some(common::RawFrame::Error(_))
                    ),
                    "{}: no HELLO sent",
                    session.name()
                );
            }
        }
        match flow.hello_reply.as_ref().map(|(f, _)| raw_frame(f)) {
            Some(common::RawFrame::Simple(ok)) if ok == b"OK" => {
                expected.push(Event::Ready);
                expected_tx.extend_from_slice(&encoded);
                let mut unanswered = Vec::new();
                for (id, cmd, r) in &replies {
                    match r.first() {
                        Some((frame, _)) => expected.push(Event::Reply {
                            id: *id,
                            result: common::expected_reply(cmd, frame),
                        }),
                        None if *cmd == Command::End => {}
                        None => unanswered.push(*id),
                    }
                }
                if flow.server_closed {
                    let clean = unanswered.is_empty()
                        && sent.last().is_some_and(|(_, c)| *c == Command::End);
                    expected.push(Event::Closed {
                        error: (!clean).then_some(ConnectionError::Eof),
                        unanswered,
                    });
                }
            }
            Some(common::RawFrame::Error(line)) => expected.push(Event::Closed {
                error: Some(ConnectionError::Auth(ServerError::from_line(&line))),
                unanswered: all_ids,
            }),
            Some(other) => panic!("unexpected HELLO reply {other:?}"),
            None if flow.server_closed => expected.push(Event::Closed {
                error: Some(ConnectionError::HandshakeRejected),
                unanswered: all_ids,
            }),
            None => {}
        }
    }
    assert_eq!(
        events,
        expected,
        "{}: client events ({mode:?})",
        session.name()
    );
    assert_eq!(
        String::from_utf8_lossy(&transmitted),
        String::from_utf8_lossy(&expected_tx),
        "{}: client bytes ({mode:?})",
        session.name()
    );
    let hello = transmitted
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| transmitted[..=i].to_vec());
    let hello_exact = hello.is_some() && hello == flow.hello;
    ClientRun {
        events,
        transmitted,
        hello,
        hello_exact,
        sent,
        exact_lines,
    }
}

// ------------------------------------------------------------------------------------------------
// server side

/// What a server replay produced.
#[derive(Debug)]
struct ServerRun {
    events: Vec<ServerEvent>,
    output: Vec<u8>,
}

impl ServerRun {
    fn hello(&self) -> &faktory_proto::handshake::Hello {
        self.events
            .iter()
            .find_map(|e| match e {
                ServerEvent::Hello(h) => Some(h),
                _ => None,
            })
            .expect("no Hello event")
    }

    fn commands(&self) -> Vec<&Command> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Command(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    fn invalid(&self) -> Vec<&CommandError> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Invalid(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    fn close_reason(&self) -> &CloseReason {
        match self.events.last() {
            Some(ServerEvent::Closed(r)) => r,
            other => panic!("last event is not Closed: {other:?}"),
        }
    }
}

fn run_server(session: &Session, mode: Mode) -> ServerRun {
    let flow = session.flow();
    let base = Instant::now();
    let mut conn = match hi_salt(&flow.hi.0) {
        Some((salt, i)) => {
            let mut o = ServerOptions::default();
            o.password = Some(Password::from(AUTH_PASSWORD));
            server::Connection::with_salt(o, salt, i, base)
        }
        None => server::Connection::new(ServerOptions::default(), 7, base),
    };
    assert_eq!(conn.poll_timeout(), Some(base + Duration::from_secs(2)));
    let mut output = Vec::new();
    let mut events = Vec::new();
    let mut exchanges = flow.exchanges.iter();
    let name = session.name();

    let mut drain = |conn: &mut server::Connection,
                     output: &mut Vec<u8>,
                     events: &mut Vec<ServerEvent>| {
        while let Some(ev) = conn.poll_event() {
            match &ev {
                ServerEvent::Command(cmd) => {
                    let ex = exchanges
                        .next()
                        .unwrap_or_else(|| panic!("{name}: extra command {cmd:?}"));
                    assert_eq!(cmd.verb().as_bytes(), verb(&ex.line), "{name}: verb");
                    let (reply, _) = &ex.replies[0];
                    assert!(
                        !common::is_parse_error(reply),
                        "{name}: the real server rejected {:?} while parsing it ({:?}), we parsed {cmd:?}",
                        String::from_utf8_lossy(&ex.line[..ex.line.len().min(200)]),
                        String::from_utf8_lossy(reply),
                    );
                    conn.reply_raw(reply);
                }
                ServerEvent::Invalid(err) => {
                    let ex = exchanges
                        .next()
                        .unwrap_or_else(|| panic!("{name}: extra line {err:?}"));
                    let (reply, _) = &ex.replies[0];
                    let ours = format!("-ERR {err}\r\n");
                    assert!(
                        ours.as_bytes() == reply.as_slice(),
                        "{name}: reply to {:?}: ours {:?}, recorded {:?}",
                        String::from_utf8_lossy(&ex.line[..ex.line.len().min(200)]),
                        &ours[..ours.len().min(200)],
                        String::from_utf8_lossy(&reply[..reply.len().min(200)]),
                    );
                    conn.reply_invalid(err);
                }
                ServerEvent::Closed(CloseReason::End) => {
                    let ex = exchanges.next().expect("END without a line");
                    assert_eq!(verb(&ex.line), b"END");
                }
                ServerEvent::Hello(_) | ServerEvent::Closed(_) => {}
                other => panic!("unknown event {other:?}"),
            }
            events.push(ev);
        }
        while let Some(b) = conn.poll_transmit() {
            output.extend_from_slice(&b);
        }
    };

    drain(&mut conn, &mut output, &mut events);
    let client = session.client_bytes();
    match mode {
        Mode::Whole => {
            conn.handle_input(&client, base);
            drain(&mut conn, &mut output, &mut events);
        }
        Mode::Chunks(n) => {
            for chunk in client.chunks(n) {
                conn.handle_input(chunk, base);
                drain(&mut conn, &mut output, &mut events);
            }
        }
    }
    if !conn.is_closed() {
        if client.is_empty() && flow.server_closed {
            // The recorded client stayed silent: the server's 2 s handshake deadline closed it.
            let at = base + Duration::from_secs_f64(session.eof_secs().unwrap());
            conn.handle_timeout(at - Duration::from_millis(1));
            drain(&mut conn, &mut output, &mut events);
            assert!(!conn.is_closed());
            conn.handle_timeout(at);
        } else if flow.server_closed {
            // Closed by something outside the protocol (the idle-worker reaper).
            conn.close();
        } else {
            // The recorded client went away.
            conn.handle_eof();
        }
        drain(&mut conn, &mut output, &mut events);
    }
    assert!(conn.is_closed(), "{name}: still open");
    assert_eq!(conn.poll_event(), None);
    assert!(exchanges.next().is_none(), "{name}: lines left unparsed");
    let recorded = session.server_bytes();
    assert!(
        output == recorded,
        "{name}: server bytes ({mode:?}): ours {:?}\nrecorded {:?}",
        String::from_utf8_lossy(&output[..output.len().min(600)]),
        String::from_utf8_lossy(&recorded[..recorded.len().min(600)]),
    );
    ServerRun { events, output }
}

/// Runs both sides and returns their results.
fn run(file: &str, label: Option<&str>, mode: Mode) -> (ClientRun, ServerRun) {
    let session = common::session(file, label);
    (run_client(&session, mode), run_server(&session, mode))
}

/// Runs every session of `file`.
fn run_file(file: &str, mode: Mode) -> usize {
    let sessions = common::load(file);
    for s in &sessions {
        run_client(s, mode);
        run_server(s, mode);
    }
    sessions.len()
}

/// `session_tests!(whole_name, chunked_name, file, label[, chunk], |client, server| checks)`:
/// two tests replaying one session whole and in chunks (one byte unless given), then `checks`.
macro_rules! session_tests {
    ($whole:ident, $bytes:ident, $file:expr, $label:expr, |$c:ident, $s:ident| $body:block) => {
        session_tests!($whole, $bytes, $file, $label, 1, |$c, $s| $body);
    };
    ($whole:ident, $bytes:ident, $file:expr, $label:expr, $chunk:expr, |$c:ident, $s:ident| $body:block) => {
        #[test]
        fn $whole() {
            #[allow(unused_variables)]
            fn check($c: &ClientRun, $s: &ServerRun) $body
            let (c, s) = run($file, $label, Mode::Whole);
            check(&c, &s);
        }

        #[test]
        fn $bytes() {
            #[allow(unused_variables)]
            fn check($c: &ClientRun, $s: &ServerRun) $body
            let (c, s) = run($file, $label, Mode::Chunks($chunk));
            check(&c, &s);
        }
    };
}

fn job_of(r: &Result<Reply, ServerError>) -> &faktory_proto::Job {
    match r {
        Ok(Reply::Job(Some(j))) => j,
        other => panic!("not a job: {other:?}"),
    }
}

fn server_error(r: &Result<Reply, ServerError>) -> &ServerError {
    r.as_ref()
        .err()
        .unwrap_or_else(|| panic!("not an error: {r:?}"))
}

// ------------------------------------------------------------------------------------------------
// every file, whole and byte by byte

macro_rules! file_tests {
    ($whole:ident, $bytes:ident, $file:expr, $sessions:expr, $chunk:expr) => {
        #[test]
        fn $whole() {
            assert_eq!(run_file($file, Mode::Whole), $sessions);
        }
        #[test]
        fn $bytes() {
            assert_eq!(run_file($file, Mode::Chunks($chunk)), $sessions);
        }
    };
}

file_tests!(auth_whole, auth_byte_by_byte, "auth.txt", 6, 1);
file_tests!(quirks_whole, quirks_byte_by_byte, "quirks.txt", 10, 1);
file_tests!(timing_whole, timing_byte_by_byte, "timing.txt", 3, 1);
// basic.txt, extra.txt, fidelity.txt and tls.txt hold one session each: `basic_whole`,
// `basic_byte_by_byte` and so on below replay them with more checks.
// big.txt: its two sessions have their own tests below (`big_big`, `big_big_fetch`), fed in
// 7-byte chunks rather than byte by byte (16 MiB one byte at a time is too slow in debug builds).

// ------------------------------------------------------------------------------------------------
// basic.txt (and tls.txt, the same script over TLS)

fn check_basic(c: &ClientRun, s: &ServerRun) {
    assert!(
        c.hello_exact,
        "HELLO differs from the recorded one: {:?}",
        c.hello
    );
    assert_eq!(c.exact_lines, 8, "every client line is ours byte for byte");
    assert_eq!(c.sent.len(), 8);
    assert_eq!(c.events.first(), Some(&Event::Ready));
    let job = job_of(c.reply_to("FETCH")[0]);
    assert_eq!(job.jid, "probe-jid-0000001");
    assert_eq!(job.jobtype, "ProbeJob");
    assert_eq!(
        job.args,
        vec![
            serde_json::json!(1),
            "two".into(),
            serde_json::json!({"three": 3})
        ]
    );
    assert_eq!(job.queue(), "probe");
    assert_eq!(job.retry, Some(25));
    let beats: Vec<_> = c.reply_to("BEAT").into_iter().cloned().collect();
    assert_eq!(
        beats,
        vec![
            Ok(Reply::Beat(None)),
            Ok(Reply::Beat(Some(WorkerState::Quiet))),
            Ok(Reply::Beat(Some(WorkerState::Quiet)))
        ]
    );
    assert!(matches!(c.reply_to("INFO")[0], Ok(Reply::Json(b)) if b.starts_with(b"{\"now\":")));
    assert_eq!(
        c.closed(),
        (&None, &vec![]),
        "END then EOF is a clean close"
    );

    assert_eq!(s.hello().wid.as_deref(), Some("probe-wid-0001"));
    assert_eq!(s.hello().pid, Some(4242));
    let verbs: Vec<_> = s.commands().iter().map(|c| c.verb()).collect();
    assert_eq!(
        verbs,
        ["PUSH", "FETCH", "ACK", "INFO", "BEAT", "BEAT", "BEAT"]
    );
    assert_eq!(s.close_reason(), &CloseReason::End);
}

session_tests!(
    basic_whole,
    basic_byte_by_byte,
    "basic.txt",
    None,
    |c, s| {
        check_basic(c, s);
    }
);
session_tests!(tls_whole, tls_byte_by_byte, "tls.txt", None, |c, s| {
    check_basic(c, s);
});

// ------------------------------------------------------------------------------------------------
// auth.txt

session_tests!(
    auth_good_pwd_whole,
    auth_good_pwd_byte_by_byte,
    "auth.txt",
    Some("good-pwd"),
    |c, s| {
        // s3cret-pw, salt 5cd4e5d2eb28a61, i = 7946: our HELLO is the recorded one, pwdhash included.
        assert!(
            c.hello_exact,
            "HELLO differs: {:?}",
            c.hello.as_ref().map(|h| String::from_utf8_lossy(h))
        );
        assert!(String::from_utf8_lossy(c.hello.as_ref().unwrap()).contains(
            "\"pwdhash\":\"9ad13ef3f4f42d1493916dd0aecb1c611bf9c5734d353529a4f8b53ab522f346\""
        ));
        assert_eq!(c.events[0], Event::Ready);
        assert!(matches!(c.replies()[0], Ok(Reply::Json(_))));
        assert_eq!(c.closed(), (&None, &vec![]));
        assert_eq!(s.hello().wid.as_deref(), Some("probe-wid-auth"));
        assert_eq!(s.close_reason(), &CloseReason::End);
    }
);

fn check_refused(c: &ClientRun, s: &ServerRun) {
    match c.closed() {
        (Some(ConnectionError::Auth(e)), unanswered) => {
            assert!(e.is_invalid_password(), "{e:?}");
            assert!(unanswered.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert!(!c.events.contains(&Event::Ready));
    assert_eq!(s.close_reason(), &CloseReason::InvalidPassword);
    assert!(s.output.ends_with(b"-ERR Invalid password\r\n"));
    assert_eq!(s.events.len(), 1, "no Hello event for a refused password");
}

session_tests!(
    auth_wrong_pwd_whole,
    auth_wrong_pwd_byte_by_byte,
    "auth.txt",
    Some("wrong-pwd"),
    |c, s| {
        check_refused(c, s);
    }
);
session_tests!(
    auth_v2_single_sha256_whole,
    auth_v2_single_sha256_byte_by_byte,
    "auth.txt",
    Some("v2-single-sha256"),
    |c, s| {
        check_refused(c, s);
    }
);
session_tests!(
    auth_uppercase_hex_whole,
    auth_uppercase_hex_byte_by_byte,
    "auth.txt",
    Some("uppercase-hex"),
    |c, s| {
        check_refused(c, s);
    }
);

session_tests!(
    auth_no_pwdhash_whole,
    auth_no_pwdhash_byte_by_byte,
    "auth.txt",
    Some("no-pwdhash"),
    |c, s| {
        // Our client has no password: it refuses to send a HELLO the server would reject.
        assert_eq!(
            c.events,
            vec![Event::Closed {
                error: Some(ConnectionError::PasswordRequired),
                unanswered: vec![]
            }]
        );
        assert!(c.transmitted.is_empty());
        // The recorded client's HELLO without a hash, fed to our server.
        assert_eq!(s.close_reason(), &CloseReason::InvalidPassword);
    }
);

session_tests!(
    auth_v1_single_sha256_whole,
    auth_v1_single_sha256_byte_by_byte,
    "auth.txt",
    Some("v1-single-sha256"),
    |c, s| {
        assert_eq!(c.events, vec![Event::Ready]);
        // v < 2: the server expects SHA256(password + salt), one round, whatever `i` says.
        assert_eq!(s.hello().v, Some(1));
        assert_eq!(
            s.hello().pwdhash.as_deref(),
            Some(password_hash(AUTH_PASSWORD, "dbf328e94d06af2", 1).as_str())
        );
        assert_eq!(s.close_reason(), &CloseReason::Eof);
    }
);

// ------------------------------------------------------------------------------------------------
// quirks.txt

fn check_silent_close(c: &ClientRun, s: &ServerRun) {
    assert_eq!(
        c.events,
        vec![Event::Closed {
            error: Some(ConnectionError::HandshakeRejected),
            unanswered: vec![]
        }]
    );
    assert_eq!(
        s.events,
        vec![ServerEvent::Closed(CloseReason::MalformedHello)]
    );
    assert_eq!(s.output, b"+HI {\"v\":2}\r\n");
}

session_tests!(
    quirks_garbage_before_hello_whole,
    quirks_garbage_before_hello_byte_by_byte,
    "quirks.txt",
    Some("garbage-before-hello"),
    |c, s| {
        check_silent_close(c, s);
    }
);
session_tests!(
    quirks_push_before_hello_whole,
    quirks_push_before_hello_byte_by_byte,
    "quirks.txt",
    Some("PUSH-before-hello"),
    |c, s| {
        check_silent_close(c, s);
    }
);
session_tests!(
    quirks_hello_bad_json_whole,
    quirks_hello_bad_json_byte_by_byte,
    "quirks.txt",
    Some("HELLO-bad-json"),
    |c, s| {
        check_silent_close(c, s);
    }
);
session_tests!(
    quirks_hello_no_brace_space_whole,
    quirks_hello_no_brace_space_byte_by_byte,
    "quirks.txt",
    Some("HELLO-no-brace-space"),
    |c, s| {
        check_silent_close(c, s);
    }
);

session_tests!(
    quirks_hello_empty_obj_lf_only_whole,
    quirks_hello_empty_obj_lf_only_byte_by_byte,
    "quirks.txt",
    Some("HELLO-empty-obj,LF-only"),
    |c, s| {
        assert_eq!(c.events.len(), 2);
        assert!(matches!(c.replies()[0], Ok(Reply::Json(b)) if b.len() == 687));
        assert_eq!(s.hello(), &faktory_proto::handshake::Hello::default());
        assert_eq!(
            s.commands(),
            vec![&Command::Info],
            "a bare-LF line is a command"
        );
        assert_eq!(s.close_reason(), &CloseReason::Eof);
    }
);

session_tests!(
    quirks_hello_v1_with_unknown_fields_whole,
    quirks_hello_v1_with_unknown_fields_byte_by_byte,
    "quirks.txt",
    Some("HELLO-v1-with-unknown-fields"),
    |c, s| {
        assert_eq!(c.events, vec![Event::Ready]);
        assert_eq!(s.hello().v, Some(1));
        assert_eq!(s.hello().wid.as_deref(), Some("w-v1"));
    }
);

session_tests!(
    quirks_silent_after_hi_whole,
    quirks_silent_after_hi_byte_by_byte,
    "quirks.txt",
    Some("silent-after-HI"),
    |c, s| {
        assert!(matches!(
            c.closed().0,
            Some(ConnectionError::HandshakeRejected)
        ));
        assert_eq!(
            s.events,
            vec![ServerEvent::Closed(CloseReason::HandshakeTimeout)]
        );
    }
);

session_tests!(
    quirks_hello_with_pwdhash_no_password_server_whole,
    quirks_hello_with_pwdhash_no_password_server_byte_by_byte,
    "quirks.txt",
    Some("HELLO-with-pwdhash-no-password-server"),
    |c, s| {
        assert_eq!(c.events, vec![Event::Ready]);
        assert!(!String::from_utf8_lossy(c.hello.as_ref().unwrap()).contains("pwdhash"));
        assert_eq!(
            s.hello().pwdhash.as_deref(),
            Some("deadbeef"),
            "ignored without a password"
        );
    }
);

session_tests!(
    quirks_post_hello_whole,
    quirks_post_hello_byte_by_byte,
    "quirks.txt",
    Some("post-hello"),
    |c, s| {
        // Of the garbage, what our client can express got the recorded replies.
        let beat = c.reply_to("BEAT");
        assert_eq!(beat.len(), 1);
        assert!(server_error(beat[0]).is_unknown_worker());
        let fetch = job_of(c.reply_to("FETCH")[0]);
        assert_eq!(fetch.jid, "probe-dupe-001");
        assert_eq!(fetch.retry, Some(3));
        assert_eq!(c.closed(), (&None, &vec![]));
        // Every parse error of the real server, reproduced.
        let invalid = s.invalid();
        assert!(invalid.contains(&&CommandError::UnknownCommand("garbage".into())));
        assert!(
            invalid.contains(&&CommandError::UnknownCommand(String::new())),
            "blank line"
        );
        assert!(
            invalid.contains(&&CommandError::UnknownCommand("HELLO".into())),
            "second HELLO"
        );
        assert!(invalid.contains(&&CommandError::Internal));
        assert_eq!(
            invalid
                .iter()
                .filter(|e| ***e == CommandError::UnknownCommand("NOPE".into()))
                .count(),
            2
        );
        assert_eq!(s.close_reason(), &CloseReason::End);
    }
);

session_tests!(
    quirks_quiet_whole,
    quirks_quiet_byte_by_byte,
    "quirks.txt",
    Some("quiet"),
    |c, s| {
        let beats: Vec<_> = c.reply_to("BEAT").into_iter().cloned().collect();
        assert_eq!(
            beats,
            vec![
                Ok(Reply::Beat(Some(WorkerState::Quiet))),
                Ok(Reply::Beat(Some(WorkerState::Terminate))),
                Ok(Reply::Beat(Some(WorkerState::Terminate)))
            ]
        );
        assert_eq!(c.reply_to("FETCH"), vec![&Ok(Reply::Job(None))]);
        assert_eq!(c.exact_lines, 5);
        assert_eq!(c.closed(), (&None, &vec![]));
        assert_eq!(s.close_reason(), &CloseReason::End);
    }
);

// ------------------------------------------------------------------------------------------------
// extra.txt

session_tests!(
    extra_whole,
    extra_byte_by_byte,
    "extra.txt",
    None,
    |c, s| {
        assert!(c.hello_exact);
        let fetches = c.reply_to("FETCH");
        assert_eq!(job_of(fetches[0]).jid, "probe-jid-fail001");
        assert_eq!(job_of(fetches[0]).reserve_for, Some(60));
        assert!(fetches.contains(&&Ok(Reply::Job(None))), "$-1 is no job");
        let fails = c.reply_to("FAIL");
        assert_eq!(fails[0], &Ok(Reply::Ok));
        assert!(server_error(fails[1]).is_job_not_found());
        let pushb = c.reply_to("PUSHB");
        match pushb[0] {
            Ok(Reply::PushBulk(m)) => {
                assert_eq!(m.len(), 2);
                assert_eq!(m["short"], "jobs must have a reasonable jid parameter");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(pushb[1], &Ok(Reply::PushBulk(Default::default())));
        // The OSS server refuses BATCH and TRACK while parsing (client side: see
        // `extra_enterprise_only_replies`).
        assert!(s.invalid().contains(&&CommandError::BatchEnterpriseOnly));
        assert!(s.invalid().contains(&&CommandError::TrackEnterpriseOnly));
        assert_eq!(c.closed(), (&None, &vec![]));
        assert!(s.invalid().contains(&&CommandError::FetchWithoutQueue));
        assert!(s.invalid().contains(&&CommandError::LatencyWildcard));
        assert!(
            s.invalid()
                .contains(&&CommandError::NoSuchQueueSubcommand("FROB".into()))
        );
        assert_eq!(s.close_reason(), &CloseReason::End);
    }
);

// ------------------------------------------------------------------------------------------------
// fidelity.txt

session_tests!(
    fidelity_whole,
    fidelity_byte_by_byte,
    "fidelity.txt",
    Some("fidelity"),
    |c, s| {
        let fetches = c.reply_to("FETCH");
        let first = job_of(fetches[0]);
        assert_eq!(
            first.args[0],
            serde_json::json!(9007199254740992u64),
            "the server's float64 round trip"
        );
        assert_eq!(first.args[5], serde_json::json!("<a&b>"));
        assert_eq!(first.backtrace, Some(5));
        assert!(
            first.extra.is_empty(),
            "the server dropped zzz and priority"
        );
        assert_eq!(c.closed(), (&None, &vec![]));
        assert_eq!(s.close_reason(), &CloseReason::End);
    }
);

// ------------------------------------------------------------------------------------------------
// big.txt — fed in 7-byte chunks, not one byte at a time: 16 MiB one byte per call takes too long
// in debug builds. The elided payloads are rebuilt with their announced lengths (see
// `common::Payload::expand`).

session_tests!(
    big_big_whole,
    big_big_chunked,
    "big.txt",
    Some("big"),
    7,
    |c, s| {
        // Our client can express the two well-formed PUSHes (compactly: the recorded client put
        // spaces in its JSON).
        assert_eq!(c.reply_to("PUSH"), vec![&Ok(Reply::Ok), &Ok(Reply::Ok)]);
        let invalid = s.invalid();
        match invalid[0] {
            CommandError::UnknownCommand(v) => assert_eq!(v.len(), 1_048_576),
            other => panic!("{other:?}"),
        }
        let pushes = s.commands();
        assert_eq!(pushes.len(), 2);
        match pushes[1] {
            Command::Push(job) => assert_eq!(job.args[0].as_str().unwrap().len(), 16 * 1024 * 1024),
            other => panic!("{other:?}"),
        }
    }
);

session_tests!(
    big_big_fetch_whole,
    big_big_fetch_chunked,
    "big.txt",
    Some("big-fetch"),
    7,
    |c, s| {
        let fetches = c.reply_to("FETCH");
        let one = job_of(fetches[0]);
        assert_eq!(one.jid, "probe-big-00001");
        assert!(one.args[0].as_str().unwrap().len() > 1_048_000);
        let sixteen = job_of(fetches[1]);
        assert_eq!(sixteen.jid, "probe-big-00002");
        assert!(sixteen.args[0].as_str().unwrap().len() > 16_777_000);
        assert_eq!(c.closed(), (&None, &vec![]));
        assert_eq!(s.close_reason(), &CloseReason::End);
    }
);

// ------------------------------------------------------------------------------------------------
// timing.txt

session_tests!(
    timing_timing_whole,
    timing_timing_byte_by_byte,
    "timing.txt",
    Some("timing"),
    |c, s| {
        // FETCHes that blocked ~2 s on the server (virtual time in the chunked run) are on time.
        let fetches = c.reply_to("FETCH");
        assert!(
            fetches
                .iter()
                .filter(|r| ***r == Ok(Reply::Job(None)))
                .count()
                >= 20
        );
        let expired = fetches
            .iter()
            .filter_map(|r| match r {
                Ok(Reply::Job(Some(j))) => j.failure.as_ref(),
                _ => None,
            })
            .next()
            .expect("the job with an expired reservation");
        assert_eq!(expired.errtype.as_deref(), Some("ReservationExpired"));
        assert!(
            !c.events.iter().any(|e| matches!(e, Event::Closed { .. })),
            "still open"
        );
        assert_eq!(s.close_reason(), &CloseReason::Eof);
    }
);

session_tests!(
    timing_idle_worker_no_beat_whole,
    timing_idle_worker_no_beat_byte_by_byte,
    "timing.txt",
    Some("idle-worker-no-beat"),
    |c, s| {
        // Reaped by the server after 60+ s without BEAT: an EOF with nothing outstanding.
        assert_eq!(
            c.events,
            vec![
                Event::Ready,
                Event::Closed {
                    error: Some(ConnectionError::Eof),
                    unanswered: vec![]
                }
            ]
        );
        assert_eq!(s.hello().wid.as_deref(), Some("probe-wid-idle"));
        assert_eq!(s.close_reason(), &CloseReason::Local);
    }
);

session_tests!(
    timing_idle_producer_whole,
    timing_idle_producer_byte_by_byte,
    "timing.txt",
    Some("idle-producer"),
    |c, s| {
        assert!(matches!(c.replies()[0], Ok(Reply::Json(b)) if b.len() == 788));
        assert_eq!(s.commands(), vec![&Command::Info]);
    }
);

/// A FETCH whose own timeout (2 s) is shorter than the server's block (2.074 s recorded): the
/// connection is poisoned at the deadline and the late reply is never read.
#[test]
fn timing_fetch_reply_deadline() {
    let session = common::session("timing.txt", Some("timing"));
    let flow = session.flow();
    let base = Instant::now();
    let mut conn = client::Connection::new(ClientOptions::default(), base);
    conn.handle_input(&flow.hi.0, base);
    conn.handle_input(&flow.hello_reply.as_ref().unwrap().0, base);
    assert_eq!(conn.poll_event(), Some(Event::Ready));
    let id = conn
        .send_with_timeout(
            &Command::Fetch(vec!["tq".into()]),
            Some(Duration::from_secs(2)),
            base,
        )
        .unwrap();
    assert_eq!(conn.poll_timeout(), Some(base + Duration::from_secs(2)));
    conn.handle_timeout(base + Duration::from_millis(1999));
    assert_eq!(conn.poll_event(), None);
    conn.handle_timeout(base + Duration::from_secs(2));
    assert_eq!(
        conn.poll_event(),
        Some(Event::Closed {
            error: Some(ConnectionError::Timeout("the reply to FETCH")),
            unanswered: vec![id]
        })
    );
    // The recorded `$-1`, arriving 2.074 s after the FETCH, is ignored.
    let late = &flow.exchanges[1].replies[0];
    assert_eq!(late.1, 2.074);
    conn.handle_input(&late.0, base + Duration::from_secs_f64(late.1));
    assert_eq!(conn.poll_event(), None);
}

/// `TRACK GET x` and `BATCH NEW {}` from `extra.txt` (which `Command::parse` refuses as the OSS
/// server does, so the replay above cannot send them): the recorded error replies are ordinary
/// errors for a JSON and a text request, and the connection stays usable.
#[test]
fn extra_enterprise_only_replies() {
    let session = common::session("extra.txt", None);
    let flow = session.flow();
    let reply_to = |line: &[u8]| {
        flow.exchanges
            .iter()
            .find(|e| e.line == line)
            .map(|e| e.replies[0].0.clone())
            .unwrap()
    };
    let now = Instant::now();
    let mut conn = client::Connection::new(ClientOptions::default(), now);
    let track = conn.send(&Command::TrackGet("x".into()), now).unwrap();
    let batch = conn
        .send(&Command::BatchNew(Default::default()), now)
        .unwrap();
    conn.handle_input(&flow.hi.0, now);
    conn.handle_input(&flow.hello_reply.as_ref().unwrap().0, now);
    conn.handle_input(&reply_to(b"TRACK GET x\r\n"), now);
    conn.handle_input(&reply_to(b"BATCH NEW {}\r\n"), now);
    let tx: Vec<u8> = std::iter::from_fn(|| conn.poll_transmit())
        .flat_map(|b| b.to_vec())
        .collect();
    assert!(tx.ends_with(b"TRACK GET x\r\nBATCH NEW {}\r\n"));
    assert_eq!(conn.poll_event(), Some(Event::Ready));
    for id in [track, batch] {
        match conn.poll_event() {
            Some(Event::Reply {
                id: got,
                result: Err(e),
            }) => {
                assert_eq!(got, id);
                assert!(e.is_enterprise_only(), "{e:?}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(conn.is_ready());
}

// ------------------------------------------------------------------------------------------------
// fuzz seeds

/// The seed corpora of the four fuzz targets (`fuzz/seeds/<target>/`), generated from the
/// transcripts. Elided payloads (the multi-MiB lines of `big.txt`) are left out to keep the seeds
/// small. Regenerate with `FAKTORY_WRITE_SEEDS=1 cargo test -p faktory-proto --test transcripts
/// fuzz_seeds`.
fn fuzz_seeds() -> Vec<(String, Vec<u8>)> {
    use std::collections::BTreeSet;
    let mut seeds = Vec::new();
    let mut lines_seen = BTreeSet::new();
    for file in common::FILES {
        for session in common::load(file) {
            let stem = file.trim_end_matches(".txt");
            let name = match &session.label {
                Some(l) => format!("{stem}-{l}"),
                None => stem.to_owned(),
            }
            .to_ascii_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "-");
            let bytes = |want: common::Dir| -> Vec<u8> {
                session
                    .entries
                    .iter()
                    .filter_map(|e| match e {
                        common::Entry::Data { dir, payload, .. }
                            if *dir == want && !payload.is_elided() =>
                        {
                            Some(payload.head.clone())
                        }
                        _ => None,
                    })
                    .flatten()
                    .collect()
            };
            let server = bytes(common::Dir::Server);
            let client = bytes(common::Dir::Client);
            let password = u8::from(hi_salt(&session.flow().hi.0).is_some());
            seeds.push((format!("resp_decode/{name}"), server.clone()));
            // client_conn: flags = password?, chunks of 8 bytes (7 << 1), EOF at the end (0x20).
            let mut c = vec![password | (7 << 1) | 0x20];
            c.extend_from_slice(&server);
            seeds.push((format!("client_conn/{name}"), c));
            // server_conn: flags = password?, chunks of 8 bytes.
            let mut s = vec![password | (7 << 1)];
            s.extend_from_slice(&client);
            seeds.push((format!("server_conn/{name}"), s));
            for (i, line) in common::split_lines(&client).iter().enumerate() {
                let line = strip_terminator(line).to_vec();
                if lines_seen.insert(line.clone()) {
                    seeds.push((format!("command_parse/{name}-{i:03}"), line));
                }
            }
        }
    }
    seeds
}

#[test]
fn fuzz_seeds_match_transcripts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds");
    let seeds = fuzz_seeds();
    assert!(
        seeds.iter().all(|(_, s)| s.len() < 64 * 1024),
        "seeds stay small"
    );
    for target in ["resp_decode", "command_parse", "client_conn", "server_conn"] {
        assert!(seeds.iter().any(|(n, _)| n.starts_with(target)), "{target}");
    }
    if std::env::var_os("FAKTORY_WRITE_SEEDS").is_some() {
        for (name, bytes) in &seeds {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, bytes).unwrap();
        }
    }
    for (name, bytes) in &seeds {
        let on_disk = std::fs::read(dir.join(name))
            .unwrap_or_else(|e| panic!("seed {name}: {e} (regenerate with FAKTORY_WRITE_SEEDS=1)"));
        assert!(
            &on_disk == bytes,
            "seed {name} is stale (regenerate with FAKTORY_WRITE_SEEDS=1)"
        );
    }
}
