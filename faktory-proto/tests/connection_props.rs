//! Properties of the connection machines, checked with proptest over the recorded transcripts:
//! - any chunking of the server's bytes gives the client the same events and the same transmitted
//!   bytes as feeding them whole (except that a connection refused within the input that
//!   carried `HI` never transmits its HELLO when fed whole);
//! - arbitrary bytes never panic either machine (the client after any prefix of a valid session,
//!   the server after any prefix of a valid client stream), and the event stream stays well formed:
//!   at most one `Closed`, last, and every request either answered once or listed unanswered;
//! - memory stays bounded: a hostile bulk header or an endless line is an error, not an allocation.
#![cfg(feature = "server")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{ClientScript, Session};
use faktory_proto::client::{self, ClientOptions, ConnectionError, Event, RequestId};
use faktory_proto::command::{Command, CommandError};
use faktory_proto::handshake::Password;
use faktory_proto::resp::DecodeError;
use faktory_proto::server::{self, CloseReason, ServerEvent, ServerOptions};
use proptest::prelude::*;

/// The sessions replayed here: every transcript session except `big.txt` (its 16 MiB frames make
/// each proptest case slow; the transcript tests cover them).
fn sessions() -> Vec<Session> {
    common::FILES
        .iter()
        .filter(|f| **f != "big.txt")
        .flat_map(|f| common::load(f))
        .collect()
}

fn scripts() -> &'static [ClientScript] {
    static SCRIPTS: std::sync::OnceLock<Vec<ClientScript>> = std::sync::OnceLock::new();
    SCRIPTS.get_or_init(|| sessions().iter().map(common::client_script).collect())
}

fn client_streams() -> &'static [Vec<u8>] {
    static STREAMS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    STREAMS.get_or_init(|| sessions().iter().map(Session::client_bytes).collect())
}

/// A client for `script` with every command it can express queued.
fn client_for(script: &ClientScript, now: Instant) -> (client::Connection, Vec<RequestId>) {
    let mut conn = client::Connection::new(script.options.clone(), now);
    let ids = script
        .commands
        .iter()
        .filter_map(|c| {
            let id = conn.send(&c.command, now).unwrap();
            (c.command != Command::End).then_some(id)
        })
        .collect();
    (conn, ids)
}

/// Everything the connection gives after one input.
fn drain(conn: &mut client::Connection, tx: &mut Vec<u8>, events: &mut Vec<Event>) {
    while let Some(b) = conn.poll_transmit() {
        tx.extend_from_slice(&b);
    }
    while let Some(e) = conn.poll_event() {
        events.push(e);
    }
}

/// Feeds `data` cut at `cuts` (sorted positions), then EOF if asked.
fn feed_cut(
    script: &ClientScript,
    data: &[u8],
    cuts: &[usize],
    eof: bool,
) -> (Vec<Event>, Vec<u8>) {
    let now = Instant::now();
    let (mut conn, _) = client_for(script, now);
    let mut tx = Vec::new();
    let mut events = Vec::new();
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
        let cut = cut.clamp(start, data.len());
        conn.handle_input(&data[start..cut], now);
        drain(&mut conn, &mut tx, &mut events);
        start = cut;
    }
    if eof {
        conn.handle_eof(now);
        drain(&mut conn, &mut tx, &mut events);
    }
    (events, tx)
}

/// The event stream is well formed: `Ready` at most once and first, `Closed` at most once and
/// last, each request answered at most once, and, once closed, answered ∪ unanswered = sent.
fn check_client_events(events: &[Event], sent: &[RequestId]) {
    let mut answered = BTreeSet::new();
    let mut closed = false;
    for (i, e) in events.iter().enumerate() {
        assert!(!closed, "event after Closed: {e:?}");
        match e {
            Event::Ready => assert_eq!(i, 0, "Ready is first"),
            Event::Reply { id, .. } => {
                assert!(sent.contains(id), "reply to an unknown request {id:?}");
                assert!(answered.insert(*id), "{id:?} answered twice");
                // FIFO: replies come in request order.
                assert!(answered.iter().all(|a| a <= id));
            }
            Event::Closed { unanswered, .. } => {
                closed = true;
                for u in unanswered {
                    assert!(!answered.contains(u), "{u:?} both answered and unanswered");
                }
                let all: BTreeSet<_> = answered.iter().chain(unanswered).copied().collect();
                assert_eq!(
                    all,
                    sent.iter().copied().collect(),
                    "every request accounted for"
                );
            }
            other => panic!("unknown event {other:?}"),
        }
    }
}

/// Bytes with a taste for RESP: framing characters and digits come often.
fn resp_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            3 => any::<u8>(),
            2 => prop::sample::select(b"+-$:*\r\n-0123456789".to_vec()),
            1 => prop::sample::select(vec![b'O', b'K', b'{', b'}', b'"', b' ']),
        ],
        0..max,
    )
}

fn line_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            3 => any::<u8>(),
            2 => prop::sample::select(b"\r\n \n{}[]\":,".to_vec()),
            1 => prop::sample::select(vec![b'P', b'U', b'S', b'H', b'E', b'L', b'O', b'A', b'C', b'K']),
        ],
        0..max,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any chunking of a session's server bytes gives the same events and transmitted bytes.
    #[test]
    fn any_chunking_gives_the_same_events(
        which in any::<prop::sample::Index>(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..40),
    ) {
        let script = which.get(scripts());
        let data = script.server_bytes();
        let (whole_events, whole_tx) = feed_cut(script, &data, &[], script.server_closed);
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
        cuts.sort_unstable();
        let (events, tx) = feed_cut(script, &data, &cuts, script.server_closed);
        prop_assert_eq!(&events, &whole_events);
        // Fed whole, a refusal can arrive in the same input as HI: the connection closes before
        // the driver polls and drops the queued HELLO. Otherwise the bytes are the same.
        prop_assert!(tx.starts_with(&whole_tx), "{:?} vs {:?}", tx, whole_tx);
        if !matches!(whole_events.last(), Some(Event::Closed { error: Some(_), .. })) {
            prop_assert_eq!(tx, whole_tx);
        }
        prop_assert!(!whole_events.is_empty());
    }

    /// After any prefix of a valid session, arbitrary bytes, EOF and timeouts never panic the
    /// client, and its events stay well formed.
    #[test]
    fn client_survives_arbitrary_bytes_after_any_prefix(
        which in any::<prop::sample::Index>(),
        prefix in any::<prop::sample::Index>(),
        garbage in resp_bytes(200),
        chunk in 1usize..17,
        eof in any::<bool>(),
        late in 0u64..30_000,
    ) {
        let script = which.get(scripts());
        let data = script.server_bytes();
        let now = Instant::now();
        let (mut conn, sent) = client_for(script, now);
        let mut tx = Vec::new();
        let mut events = Vec::new();
        let mut input = data[..prefix.index(data.len() + 1)].to_vec();
        input.extend_from_slice(&garbage);
        for piece in input.chunks(chunk) {
            conn.handle_input(piece, now);
            drain(&mut conn, &mut tx, &mut events);
        }
        let later = now + Duration::from_millis(late);
        conn.handle_timeout(later);
        drain(&mut conn, &mut tx, &mut events);
        if eof {
            conn.handle_eof(later);
        } else {
            conn.abort();
        }
        drain(&mut conn, &mut tx, &mut events);
        prop_assert!(conn.is_closed());
        let last_is_closed = matches!(events.last(), Some(Event::Closed { .. }));
        prop_assert!(last_is_closed);
        check_client_events(&events, &sent);
        // A closed connection takes no more input and sends nothing.
        conn.handle_input(b"+OK\r\n", later);
        prop_assert_eq!(conn.poll_event(), None);
        prop_assert_eq!(conn.poll_transmit(), None);
    }

    /// Arbitrary client bytes, after any prefix of a recorded client stream, never panic the
    /// server; every event is answered in order and `Closed` comes once, last.
    #[test]
    fn server_survives_arbitrary_bytes_after_any_prefix(
        which in any::<prop::sample::Index>(),
        prefix in any::<prop::sample::Index>(),
        garbage in line_bytes(300),
        chunk in 1usize..17,
        password in any::<bool>(),
        max_line in prop::option::of(1usize..200),
    ) {
        let streams = client_streams();
        let stream = which.get(streams);
        let now = Instant::now();
        let mut o = ServerOptions::default();
        o.password = password.then(|| Password::from(common::AUTH_PASSWORD));
        o.max_line_length = max_line;
        let mut conn = server::Connection::new(o, 42, now);
        let mut input = stream[..prefix.index(stream.len() + 1)].to_vec();
        input.extend_from_slice(&garbage);
        let mut events = Vec::new();
        for piece in input.chunks(chunk) {
            conn.handle_input(piece, now);
            while let Some(e) = conn.poll_event() {
                match &e {
                    ServerEvent::Command(_) => conn.reply_ok(),
                    ServerEvent::Invalid(err) => conn.reply_invalid(err),
                    _ => {}
                }
                events.push(e);
            }
            while conn.poll_transmit().is_some() {}
        }
        conn.handle_eof();
        while let Some(e) = conn.poll_event() {
            events.push(e);
        }
        prop_assert!(conn.is_closed());
        let closes = events.iter().filter(|e| matches!(e, ServerEvent::Closed(_))).count();
        prop_assert_eq!(closes, 1);
        let last_is_closed = matches!(events.last(), Some(ServerEvent::Closed(_)));
        prop_assert!(last_is_closed);
        let hellos = events.iter().filter(|e| matches!(e, ServerEvent::Hello(_))).count();
        prop_assert!(hellos <= 1);
        if hellos == 1 {
            let first_is_hello = matches!(events[0], ServerEvent::Hello(_));
            prop_assert!(first_is_hello, "Hello comes first");
        }
        if let Some(max) = max_line {
            for e in &events {
                if let ServerEvent::Invalid(CommandError::UnknownCommand(v)) = e {
                    // Invalid UTF-8 becomes U+FFFD: count characters, not bytes.
                    prop_assert!(v.chars().count() <= max);
                }
            }
        }
    }

    /// A bulk announcing more than the maximum is refused from its header alone.
    #[test]
    fn hostile_bulk_header_is_an_error_not_an_allocation(extra in 1u64..10_000_000_000u64) {
        let max = 1024usize;
        let mut o = ClientOptions::default();
        o.max_frame_size = max;
        let now = Instant::now();
        let mut conn = client::Connection::new(o, now);
        let id = conn.send(&Command::Fetch(vec!["default".into()]), now).unwrap();
        conn.handle_input(b"+HI {\"v\":2}\r\n+OK\r\n", now);
        let announced = max as u64 + extra;
        conn.handle_input(format!("${announced}\r\n").as_bytes(), now);
        conn.handle_input(&[b'x'; 64], now);
        let mut events = Vec::new();
        drain(&mut conn, &mut Vec::new(), &mut events);
        prop_assert_eq!(events.len(), 2);
        match &events[1] {
            Event::Closed { error: Some(ConnectionError::Decode(DecodeError::FrameTooLarge { len, .. })), unanswered } => {
                prop_assert_eq!(*len, announced);
                prop_assert_eq!(unanswered, &vec![id]);
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }

    /// A server line longer than `max_line_length` closes the connection whatever the chunking,
    /// before the line is complete: once `max + 2` bytes came without `\n` (with `max + 1`, the
    /// last byte may still be the `\r` of a line of exactly `max` bytes).
    #[test]
    fn server_line_limit_holds_under_any_chunking(len in 12usize..400, chunk in 1usize..50) {
        let now = Instant::now();
        let mut o = ServerOptions::default();
        o.max_line_length = Some(10);
        let mut conn = server::Connection::new(o, 1, now);
        conn.handle_input(b"HELLO {}\r\n", now);
        assert!(matches!(conn.poll_event(), Some(ServerEvent::Hello(_))));
        let line = vec![b'A'; len];
        let mut closed_at = None;
        for (i, piece) in line.chunks(chunk).enumerate() {
            conn.handle_input(piece, now);
            if let Some(e) = conn.poll_event() {
                prop_assert_eq!(e, ServerEvent::Closed(CloseReason::LineTooLong));
                closed_at = Some(i);
                break;
            }
        }
        prop_assert!(closed_at.is_some(), "no newline was ever sent: the limit alone must close");
        prop_assert!(conn.is_closed());
    }
}

/// The real server's `$9999999999` case from the brief, with the default maximum (64 MiB).
#[test]
fn ten_gigabyte_bulk_header_is_refused() {
    let now = Instant::now();
    let mut conn = client::Connection::new(ClientOptions::default(), now);
    let id = conn.send(&Command::Fetch(vec!["q".into()]), now).unwrap();
    conn.handle_input(b"+HI {\"v\":2}\r\n+OK\r\n$9999999999\r\n", now);
    assert_eq!(conn.poll_event(), Some(Event::Ready));
    match conn.poll_event() {
        Some(Event::Closed {
            error: Some(ConnectionError::Decode(DecodeError::FrameTooLarge { len, max })),
            unanswered,
        }) => {
            assert_eq!(len, 9_999_999_999);
            assert_eq!(max, faktory_proto::resp::DEFAULT_MAX_FRAME_SIZE);
            assert_eq!(unanswered, vec![id]);
        }
        other => panic!("{other:?}"),
    }
}

/// A server line that never ends is refused once it passes the client's maximum frame size.
#[test]
fn endless_simple_string_is_refused() {
    let now = Instant::now();
    let mut o = ClientOptions::default();
    o.max_frame_size = 4096;
    let mut conn = client::Connection::new(o, now);
    conn.handle_input(b"+HI {\"v\":2}\r\n+OK\r\n+", now);
    let chunk = [b'a'; 1000];
    let mut fed = 0;
    while !conn.is_closed() && fed < 100_000 {
        conn.handle_input(&chunk, now);
        fed += chunk.len();
    }
    assert!(conn.is_closed(), "still reading after {fed} bytes");
    assert!(fed <= 8192, "closed only after {fed} bytes");
    assert_eq!(conn.poll_event(), Some(Event::Ready));
    assert!(matches!(
        conn.poll_event(),
        Some(Event::Closed {
            error: Some(ConnectionError::Decode(DecodeError::LineTooLong { .. })),
            ..
        })
    ));
}
