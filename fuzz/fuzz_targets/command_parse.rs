#![no_main]
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The server-side command parsers fed arbitrary lines: `Command::parse`,
//! `Command::parse_enterprise`, `handshake::parse_hello` and `command::parse_job_lenient` never
//! panic. When a line parses into a command that can be encoded, the encoded line is well framed
//! (one CRLF at the end, no other CR or LF, MUTATE without a raw space) and parses back to the same
//! command. Jobs are left out of that last check: serde_json may read a float in `args` or
//! `custom` back one ULP off.
use bytes::BytesMut;
use faktory_proto::command::{Command, parse_job_lenient};
use faktory_proto::handshake::parse_hello;
use libfuzzer_sys::fuzz_target;

fn check_round_trip(
    cmd: &Command,
    parse: fn(&[u8]) -> Result<Command, faktory_proto::command::CommandError>,
) {
    let mut out = BytesMut::new();
    if cmd.encode(&mut out).is_err() {
        assert!(out.is_empty(), "a failed encode appended bytes");
        return;
    }
    let line = out.strip_suffix(b"\r\n").expect("CRLF terminated");
    assert!(
        !line.contains(&b'\n') && !line.contains(&b'\r'),
        "raw line break in {line:?}"
    );
    if matches!(cmd, Command::Mutate(_)) {
        assert_eq!(
            line.iter().filter(|&&b| b == b' ').count(),
            1,
            "MUTATE with a space"
        );
    }
    let has_json_values = matches!(
        cmd,
        Command::Push(_) | Command::PushBulk(_) | Command::BatchNew(_) | Command::Hello(_)
    );
    if !has_json_values {
        let back = parse(line).expect("an encoded command parses");
        assert_eq!(&back, cmd, "parse(encode(cmd)) != cmd");
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(cmd) = Command::parse(data) {
        check_round_trip(&cmd, Command::parse);
    }
    if let Ok(cmd) = Command::parse_enterprise(data) {
        check_round_trip(&cmd, Command::parse_enterprise);
    }
    if let Some(hello) = parse_hello(data) {
        let mut out = BytesMut::new();
        Command::Hello(hello.clone())
            .encode(&mut out)
            .expect("HELLO encodes");
        let line = out.strip_suffix(b"\r\n").expect("CRLF terminated");
        assert_eq!(parse_hello(line), Some(hello), "HELLO does not round-trip");
    }
    let _ = parse_job_lenient(data);
});
