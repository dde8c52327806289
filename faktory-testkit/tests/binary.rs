//! The `faktory-testkit` binary: prints its address, serves any client, stops on Ctrl-C (SIGINT).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

fn read_line(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    while !out.ends_with(b"\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "EOF");
        out.push(b[0]);
    }
    out
}

#[cfg(unix)]
#[test]
fn serves_on_a_port_and_stops_on_ctrl_c() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_faktory-testkit"))
        .args([
            "--port",
            "0",
            "--password",
            "pw",
            "--fetch-timeout-ms",
            "50",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut url = String::new();
    out.read_line(&mut url).unwrap();
    let url = url.trim();
    assert!(url.starts_with("tcp://:pw@127.0.0.1:"), "{url}");
    let addr = url.trim_start_matches("tcp://:pw@");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    let hi = read_line(&mut s);
    assert!(
        hi.starts_with(b"+HI {\"v\":2,\"i\":"),
        "{}",
        String::from_utf8_lossy(&hi)
    );
    // No hash: refused, as the real server does.
    s.write_all(b"HELLO {\"v\":2}\r\n").unwrap();
    assert_eq!(read_line(&mut s), b"-ERR Invalid password\r\n");

    // SIGINT, as Ctrl-C in a terminal sends.
    let pid = child.id().to_string();
    let status = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(status.success());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let Ok(exit) = rx.recv_timeout(LIMIT) else {
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        panic!("the binary did not stop on SIGINT");
    };
    let exit = exit.unwrap();
    assert!(exit.success(), "{exit:?}");
}
