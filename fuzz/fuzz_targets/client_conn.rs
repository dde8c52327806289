#![no_main]
//! `client::Connection` fed arbitrary server bytes.
//!
//! Input: one flags byte, then the server's bytes. Flags: bit 0 configures a password, bits 1–4
//! pick the chunk size (1–16), bit 5 ends with EOF (else with an abort), bit 6 makes every
//! request time out. Before any input the client queues a FETCH, a BEAT, a PUSHB, an INFO, an ACK
//! and a BATCH NEW, so replies of every kind are decoded. The seeds (`fuzz/seeds/client_conn`) are
//! the recorded sessions of `faktory-proto/tests/data` behind a zero flags byte.
//!
//! Checked: no panic; `Ready` at most once and first; replies in request order, each once;
//! `Closed` exactly once, last, accounting for every request; nothing out after `Closed`.
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use faktory_proto::client::{ClientOptions, Connection, Event};
use faktory_proto::command::{Ack, BatchNew, Beat, Command};
use faktory_proto::handshake::Password;
use faktory_proto::job::Job;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let now = Instant::now();
    let mut options = ClientOptions::default();
    if flags & 1 != 0 {
        options.password = Some(Password::from("s3cret-pw"));
    }
    options.wid = Some("fuzz-wid".into());
    options.max_frame_size = 1 << 20;
    let mut conn = Connection::new(options, now);
    let mut job = Job::new("F", vec![]);
    job.jid = "fuzz-jid-0001".into();
    let commands = [
        Command::Fetch(vec!["default".into()]),
        Command::Beat(Beat {
            wid: "fuzz-wid".into(),
            rss_kb: Some(1),
            current_state: None,
        }),
        Command::PushBulk(vec![job]),
        Command::Info,
        Command::Ack(Ack {
            jid: "abcdefgh".into(),
        }),
        Command::BatchNew(BatchNew::default()),
    ];
    let sent: Vec<_> = commands
        .iter()
        .map(|c| {
            conn.send(c, now)
                .expect("a fresh connection takes commands")
        })
        .collect();
    let chunk = usize::from((flags >> 1) & 15) + 1;
    let mut events = Vec::new();
    let pump = |conn: &mut Connection, events: &mut Vec<Event>| {
        while conn.poll_transmit().is_some() {}
        while let Some(e) = conn.poll_event() {
            events.push(e);
        }
    };
    let mut t = now;
    for piece in input.chunks(chunk) {
        conn.handle_input(piece, t);
        pump(&mut conn, &mut events);
        if flags & 64 != 0 {
            t += Duration::from_secs(3);
            conn.handle_timeout(t);
            pump(&mut conn, &mut events);
        }
    }
    if flags & 32 != 0 {
        conn.handle_eof(t);
    } else {
        conn.abort();
    }
    pump(&mut conn, &mut events);
    assert!(conn.is_closed());
    assert!(conn.poll_timeout().is_none());
    conn.handle_input(b"+OK\r\n", t);
    assert!(conn.poll_event().is_none() && conn.poll_transmit().is_none());

    let mut answered = BTreeSet::new();
    let mut closed = 0;
    for (i, e) in events.iter().enumerate() {
        assert_eq!(closed, 0, "event after Closed");
        match e {
            Event::Ready => assert_eq!(i, 0),
            Event::Reply { id, .. } => {
                assert!(sent.contains(id));
                assert!(answered.iter().all(|a| a < id), "FIFO");
                answered.insert(*id);
            }
            Event::Closed { unanswered, .. } => {
                closed += 1;
                let all: BTreeSet<_> = answered.iter().chain(unanswered).copied().collect();
                assert_eq!(all, sent.iter().copied().collect());
            }
            _ => {}
        }
    }
    assert_eq!(closed, 1);
});
