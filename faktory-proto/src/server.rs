//! The server side of a Faktory connection, used by `faktory-testkit` and open to proxies.
//!
//! CONTRACT (skeleton; the implementation fills the bodies):
//! - `new` queues `+HI {"v":2}` (with `"i"` in 4000..=8095 and `"s"` a lowercase, not zero-padded hex
//!   salt of a 63-bit number, both derived from `seed`, when a password is set) and starts the
//!   handshake deadline (`options.handshake_timeout`, 2 s by default).
//! - The first line must start with `HELLO {`; otherwise, on invalid JSON or wrong field types, or at
//!   the deadline, the connection closes silently ([`ServerEvent::Closed`]). A wrong or missing
//!   password gives `-ERR Invalid password` then close. `v < 2` or absent means a single SHA-256 round.
//!   On success `+OK` is queued and [`ServerEvent::Hello`] emitted.
//! - After that, [`Connection::poll_event`] parses one line at a time, lazily (so the embedder answers
//!   in order): lines end at `\n`, one `\r\n` or `\n` is stripped; a partial line at EOF is dropped.
//!   `END` closes without a reply. Errors are [`ServerEvent::Invalid`]: the embedder replies with
//!   `reply_error("ERR", &err.to_string())` in order.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::command::{Command, CommandError};
use crate::handshake::{Hello, Password};

/// Options for a server connection.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerOptions {
    /// The password clients must prove, if any.
    pub password: Option<Password>,
    /// The whole-handshake deadline (2 s on the real server).
    pub handshake_timeout: Duration,
    /// Longest accepted command line; `None` is unlimited, like the real server.
    pub max_line_length: Option<usize>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            password: None,
            handshake_timeout: Duration::from_secs(2),
            max_line_length: None,
        }
    }
}

/// Why a server connection closed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client sent END.
    End,
    /// The client closed its side.
    Eof,
    /// The handshake did not complete in time.
    HandshakeTimeout,
    /// The first line was not a valid `HELLO {…}`.
    MalformedHello,
    /// Wrong or missing password (`-ERR Invalid password` was queued).
    InvalidPassword,
    /// A line exceeded `max_line_length`.
    LineTooLong,
    /// Closed by the embedder.
    Local,
}

/// What the server connection tells its embedder.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// The handshake succeeded (`+OK` is queued).
    Hello(Hello),
    /// A command to execute and answer.
    Command(Command),
    /// A line the server rejects: answer `-ERR <error>`.
    Invalid(CommandError),
    /// The connection is finished; emitted once.
    Closed(CloseReason),
}

/// The server side of one connection.
#[derive(Debug)]
pub struct Connection {
    options: ServerOptions,
}

impl Connection {
    /// A new connection; `HI` is queued for transmission.
    pub fn new(options: ServerOptions, seed: u64, now: Instant) -> Self {
        let _ = (seed, now);
        Connection { options }
    }
    /// The options.
    pub fn options(&self) -> &ServerOptions {
        &self.options
    }
    /// Feeds bytes read from the socket.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) {
        let _ = (data, now);
        unimplemented!("server::Connection::handle_input")
    }
    /// The client closed its side.
    pub fn handle_eof(&mut self) {
        unimplemented!("server::Connection::handle_eof")
    }
    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
        unimplemented!("server::Connection::handle_timeout")
    }
    /// When to call [`Connection::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        unimplemented!("server::Connection::poll_timeout")
    }
    /// The next event.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        unimplemented!("server::Connection::poll_event")
    }
    /// Queues `+OK`.
    pub fn reply_ok(&mut self) {
        unimplemented!("server::Connection::reply_ok")
    }
    /// Queues `-<code> <message>`.
    pub fn reply_error(&mut self, code: &str, message: &str) {
        let _ = (code, message);
        unimplemented!("server::Connection::reply_error")
    }
    /// Queues a bulk string.
    pub fn reply_bulk(&mut self, body: &[u8]) {
        let _ = body;
        unimplemented!("server::Connection::reply_bulk")
    }
    /// Queues `$-1`.
    pub fn reply_null(&mut self) {
        unimplemented!("server::Connection::reply_null")
    }
    /// Queues raw bytes (fault injection).
    pub fn reply_raw(&mut self, bytes: &[u8]) {
        let _ = bytes;
        unimplemented!("server::Connection::reply_raw")
    }
    /// Closes the connection (after what is queued is written).
    pub fn close(&mut self) {
        unimplemented!("server::Connection::close")
    }
    /// Whether the connection is finished.
    pub fn is_closed(&self) -> bool {
        unimplemented!("server::Connection::is_closed")
    }
    /// Bytes to write.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        unimplemented!("server::Connection::poll_transmit")
    }
}
