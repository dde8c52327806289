#![no_main]
//! `server::Connection` fed arbitrary client bytes.
//!
//! Input: one flags byte, then the client's bytes. Flags: bit 0 sets a password, bits 1–4 pick
//! the chunk size (1–16), bit 5 sets a 64-byte maximum line length, bit 6 lets the handshake
//! deadline pass before the input arrives. Each command is answered with `+OK` and each invalid
//! line with its error, as an embedder does. The seeds (`fuzz/seeds/server_conn`) are the recorded
//! client streams of `faktory-proto/tests/data` behind a zero flags byte.
//!
//! Checked: no panic; `Hello` at most once and first; `Closed` exactly once (after EOF), last;
//! no line longer than the maximum gets through.
use std::time::{Duration, Instant};

use faktory_proto::command::CommandError;
use faktory_proto::handshake::Password;
use faktory_proto::server::{Connection, ServerEvent, ServerOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let now = Instant::now();
    let mut options = ServerOptions::default();
    if flags & 1 != 0 {
        options.password = Some(Password::from("s3cret-pw"));
    }
    if flags & 32 != 0 {
        options.max_line_length = Some(64);
    }
    let mut conn = Connection::new(options, u64::from(flags), now);
    let t = if flags & 64 != 0 {
        now + Duration::from_secs(3)
    } else {
        now
    };
    let chunk = usize::from((flags >> 1) & 15) + 1;
    let mut events = Vec::new();
    let pump = |conn: &mut Connection, events: &mut Vec<ServerEvent>| {
        while let Some(e) = conn.poll_event() {
            match &e {
                ServerEvent::Command(_) => conn.reply_ok(),
                ServerEvent::Invalid(err) => conn.reply_invalid(err),
                _ => {}
            }
            events.push(e);
        }
        while conn.poll_transmit().is_some() {}
    };
    pump(&mut conn, &mut events);
    for piece in input.chunks(chunk) {
        conn.handle_input(piece, t);
        pump(&mut conn, &mut events);
    }
    conn.handle_eof();
    pump(&mut conn, &mut events);
    assert!(conn.is_closed());
    assert!(conn.poll_timeout().is_none());

    let closes = events
        .iter()
        .filter(|e| matches!(e, ServerEvent::Closed(_)))
        .count();
    assert_eq!(closes, 1);
    assert!(matches!(events.last(), Some(ServerEvent::Closed(_))));
    for (i, e) in events.iter().enumerate() {
        match e {
            ServerEvent::Hello(_) => assert_eq!(i, 0),
            ServerEvent::Invalid(CommandError::UnknownCommand(verb)) if flags & 32 != 0 => {
                assert!(verb.chars().count() <= 64, "invalid UTF-8 becomes U+FFFD");
            }
            _ => {}
        }
    }
});
