//! A raw FWP client for the tests: writes lines, reads whole RESP frames (keeping their exact bytes).
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any single read may take before the test fails (never reached when things work).
pub const READ_LIMIT: Duration = Duration::from_secs(20);

/// One RESP frame as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Simple(String),
    Error(String),
    Bulk(Vec<u8>),
    Null,
}

impl Frame {
    pub fn bulk_str(&self) -> String {
        match self {
            Frame::Bulk(b) => String::from_utf8(b.clone()).unwrap(),
            other => panic!("expected a bulk string, got {other:?}"),
        }
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.bulk_str()).unwrap()
    }
}

pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects, checks `+HI {"v":2}`, sends `HELLO <json>` and expects `+OK`.
    pub async fn hello(addr: SocketAddr, hello_json: &str) -> Client {
        let mut c = Client::connect(addr).await;
        assert_eq!(
            c.read_raw_frame().await.unwrap(),
            b"+HI {\"v\":2}\r\n".to_vec()
        );
        c.send(format!("HELLO {hello_json}\r\n").as_bytes()).await;
        assert_eq!(c.read_frame().await, Some(Frame::Simple("OK".into())));
        c
    }

    pub async fn producer(addr: SocketAddr) -> Client {
        Client::hello(addr, r#"{"v":2}"#).await
    }

    pub async fn worker(addr: SocketAddr, wid: &str) -> Client {
        Client::hello(
            addr,
            &format!(
                r#"{{"v":2,"hostname":"test-host","pid":4242,"labels":["rust"],"wid":"{wid}"}}"#
            ),
        )
        .await
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().unwrap()
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = vec![0u8; 64 * 1024];
        let n = tokio::time::timeout(READ_LIMIT, self.stream.read(&mut chunk))
            .await
            .expect("the server did not answer in time")
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    async fn line(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..i + 2).collect();
                return Some(line);
            }
            if !self.fill().await {
                assert!(
                    self.buf.is_empty(),
                    "EOF inside a frame: {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
                return None;
            }
        }
    }

    /// The next frame's exact bytes, `None` at EOF.
    pub async fn read_raw_frame(&mut self) -> Option<Vec<u8>> {
        let mut line = self.line().await?;
        if line.first() == Some(&b'$') && line != b"$-1\r\n" {
            let n: usize = std::str::from_utf8(&line[1..line.len() - 2])
                .unwrap()
                .parse()
                .unwrap();
            while self.buf.len() < n + 2 {
                assert!(self.fill().await, "EOF inside a bulk string");
            }
            line.extend(self.buf.drain(..n + 2));
        }
        Some(line)
    }

    pub async fn read_frame(&mut self) -> Option<Frame> {
        let raw = self.read_raw_frame().await?;
        Some(parse_frame(&raw))
    }

    /// Sends a command line (CRLF added) and reads its reply.
    pub async fn cmd(&mut self, line: &str) -> Frame {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.read_frame()
            .await
            .unwrap_or_else(|| panic!("EOF instead of a reply to {line}"))
    }

    /// Whether the server closed the connection (reads until EOF; fails on unexpected data).
    pub async fn expect_eof(&mut self) {
        if let Some(f) = self.read_raw_frame().await {
            panic!("expected EOF, got {:?}", String::from_utf8_lossy(&f));
        }
    }
}

pub fn parse_frame(raw: &[u8]) -> Frame {
    let text = &raw[1..raw.len() - 2];
    match raw[0] {
        b'+' => Frame::Simple(String::from_utf8_lossy(text).into_owned()),
        b'-' => Frame::Error(String::from_utf8_lossy(text).into_owned()),
        b'$' if raw == b"$-1\r\n" => Frame::Null,
        b'$' => {
            let i = raw.windows(2).position(|w| w == b"\r\n").unwrap();
            Frame::Bulk(raw[i + 2..raw.len() - 2].to_vec())
        }
        other => panic!("unexpected frame type {:?}", char::from(other)),
    }
}

pub fn ok() -> Frame {
    Frame::Simple("OK".into())
}

pub fn err(msg: &str) -> Frame {
    Frame::Error(format!("ERR {msg}"))
}
