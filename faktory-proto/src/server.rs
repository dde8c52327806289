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

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::command::{Command, CommandError};
use crate::handshake::{Hello, Password, parse_hello, server_salt_and_iterations, verify_password};

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
    /// Parse `BATCH` and `TRACK` as Faktory Enterprise does ([`Command::parse_enterprise`]);
    /// `false` (the default) answers them as the OSS server does.
    pub enterprise: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            password: None,
            handshake_timeout: Duration::from_secs(2),
            max_line_length: None,
            enterprise: false,
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
#[allow(clippy::large_enum_variant)] // one event at a time; boxing would cost every command
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

/// Where the connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// `HI` sent, waiting for the `HELLO` line.
    Handshake,
    /// Handshake done: command lines.
    Running,
    /// Finished; `ServerEvent::Closed` was queued.
    Closed,
}

/// The server side of one connection.
///
/// Drive it like the client: feed bytes, EOF and time; drain [`Connection::poll_transmit`] and
/// [`Connection::poll_event`]. Answer each [`ServerEvent::Command`] / [`ServerEvent::Invalid`] with
/// one `reply_*` call *before* polling the next event (commands are parsed lazily, one line per
/// call, so replies come out in order). Once [`Connection::is_closed`] is true, write what
/// [`Connection::poll_transmit`] still gives, then close the socket.
#[derive(Debug)]
pub struct Connection {
    options: ServerOptions,
    phase: Phase,
    /// Bytes read and not yet split into lines.
    inbuf: BytesMut,
    /// How many leading bytes of `inbuf` are known to hold no `\n`.
    scanned: usize,
    /// Bytes to transmit.
    outbuf: BytesMut,
    /// Salt and iterations announced in `HI` (when a password is set).
    salt: Option<(String, u32)>,
    /// The handshake deadline.
    deadline: Option<Instant>,
    events: VecDeque<ServerEvent>,
    /// The client closed its side: the complete lines still buffered are handed out, then `Closed`.
    eof: bool,
    /// The embedder called [`Connection::close`]: later replies are dropped.
    closed_locally: bool,
}

impl Connection {
    /// A new connection; `HI` is queued for transmission.
    ///
    /// With a password, the salt and iteration count come from `seed`
    /// ([`server_salt_and_iterations`]: `i` in 4000..=8095, the salt the lowercase, not
    /// zero-padded hex of a 63-bit number, as the real server picks them).
    pub fn new(options: ServerOptions, seed: u64, now: Instant) -> Self {
        let salt = options
            .password
            .as_ref()
            .map(|_| server_salt_and_iterations(seed));
        Self::start(options, salt, now)
    }

    /// A new connection announcing this exact salt and iteration count in `HI` (when a password is
    /// set; without one, `HI` carries neither, like the real server). For replaying recorded
    /// sessions and fixed test vectors.
    pub fn with_salt(
        options: ServerOptions,
        salt: impl Into<String>,
        iterations: u32,
        now: Instant,
    ) -> Self {
        let salt = options.password.as_ref().map(|_| (salt.into(), iterations));
        Self::start(options, salt, now)
    }

    fn start(options: ServerOptions, salt: Option<(String, u32)>, now: Instant) -> Self {
        let mut outbuf = BytesMut::with_capacity(64);
        outbuf.extend_from_slice(b"+HI {\"v\":2");
        if let Some((s, i)) = &salt {
            let quoted = serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned());
            outbuf.extend_from_slice(format!(",\"i\":{i},\"s\":{quoted}").as_bytes());
        }
        outbuf.extend_from_slice(b"}\r\n");
        Connection {
            deadline: now.checked_add(options.handshake_timeout),
            options,
            phase: Phase::Handshake,
            inbuf: BytesMut::new(),
            scanned: 0,
            outbuf,
            salt,
            events: VecDeque::new(),
            eof: false,
            closed_locally: false,
        }
    }

    /// The options.
    pub fn options(&self) -> &ServerOptions {
        &self.options
    }

    /// Feeds bytes read from the socket.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) {
        if self.phase == Phase::Closed || self.eof || data.is_empty() {
            return;
        }
        if self.phase == Phase::Handshake && self.deadline.is_some_and(|d| now >= d) {
            return self.close_with(CloseReason::HandshakeTimeout);
        }
        self.inbuf.extend_from_slice(data);
        if self.phase == Phase::Handshake {
            self.try_handshake();
        }
    }

    /// The client closed its side. Complete lines already received are still handed out; a
    /// partial line is dropped.
    pub fn handle_eof(&mut self) {
        match self.phase {
            Phase::Closed => {}
            Phase::Handshake => self.close_with(CloseReason::Eof),
            Phase::Running => self.eof = true,
        }
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Handshake && self.deadline.is_some_and(|d| now >= d) {
            self.close_with(CloseReason::HandshakeTimeout);
        }
    }

    /// When to call [`Connection::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Handshake => self.deadline,
            Phase::Running | Phase::Closed => None,
        }
    }

    /// The next event. Parses at most one command line per call.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        if let Some(event) = self.events.pop_front() {
            return Some(event);
        }
        if self.phase != Phase::Running {
            return None;
        }
        match self.next_line() {
            Ok(Some(line)) => match self.parse(&line) {
                Ok(Command::End) => {
                    self.close_with(CloseReason::End);
                    self.events.pop_front()
                }
                Ok(command) => Some(ServerEvent::Command(command)),
                Err(error) => Some(ServerEvent::Invalid(error)),
            },
            Ok(None) => {
                if self.eof {
                    self.close_with(CloseReason::Eof);
                }
                self.events.pop_front()
            }
            Err(reason) => {
                self.close_with(reason);
                self.events.pop_front()
            }
        }
    }

    /// Queues `+OK`.
    pub fn reply_ok(&mut self) {
        self.reply_raw(b"+OK\r\n");
    }

    /// Queues `-<code> <message>` (`-<code>` alone when the message is empty). A `\n` in either
    /// would break the framing and is written as a space.
    pub fn reply_error(&mut self, code: &str, message: &str) {
        if self.closed_locally {
            return;
        }
        let out = &mut self.outbuf;
        out.reserve(code.len() + message.len() + 4);
        out.extend_from_slice(b"-");
        extend_line(out, code.as_bytes());
        if !message.is_empty() {
            out.extend_from_slice(b" ");
            extend_line(out, message.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Queues `-ERR <error>` for a line [`Command::parse`] rejected: the real server's reply.
    pub fn reply_invalid(&mut self, error: &CommandError) {
        self.reply_error("ERR", &error.to_string());
    }

    /// Queues a bulk string.
    pub fn reply_bulk(&mut self, body: &[u8]) {
        if self.closed_locally {
            return;
        }
        let out = &mut self.outbuf;
        out.reserve(body.len() + 24);
        out.extend_from_slice(format!("${}\r\n", body.len()).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    }

    /// Queues `$-1`.
    pub fn reply_null(&mut self) {
        self.reply_raw(b"$-1\r\n");
    }

    /// Queues raw bytes (fault injection).
    pub fn reply_raw(&mut self, bytes: &[u8]) {
        if !self.closed_locally {
            self.outbuf.extend_from_slice(bytes);
        }
    }

    /// Closes the connection (after what is queued is written); later replies are dropped.
    pub fn close(&mut self) {
        if self.phase != Phase::Closed {
            self.close_with(CloseReason::Local);
        }
        self.closed_locally = true;
    }

    /// Whether the connection is finished.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Bytes to write, everything queued as one buffer.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if self.outbuf.is_empty() {
            None
        } else {
            Some(self.outbuf.split().freeze())
        }
    }

    fn parse(&self, line: &[u8]) -> Result<Command, CommandError> {
        if self.options.enterprise {
            Command::parse_enterprise(line)
        } else {
            Command::parse(line)
        }
    }

    fn close_with(&mut self, reason: CloseReason) {
        if self.phase == Phase::Closed {
            return;
        }
        self.phase = Phase::Closed;
        self.deadline = None;
        self.inbuf = BytesMut::new();
        self.scanned = 0;
        self.events.push_back(ServerEvent::Closed(reason));
    }

    /// The next complete line without its terminator (`\r\n` or `\n`), `Ok(None)` if none yet.
    fn next_line(&mut self) -> Result<Option<Bytes>, CloseReason> {
        let found = self
            .inbuf
            .get(self.scanned..)
            .and_then(|rest| rest.iter().position(|&b| b == b'\n'));
        let Some(pos) = found else {
            self.scanned = self.inbuf.len();
            if let Some(max) = self.options.max_line_length {
                // Without its `\n`, a line of `max` bytes plus `\r` may still be buffered.
                if self.inbuf.len() > max.saturating_add(1) {
                    return Err(CloseReason::LineTooLong);
                }
            }
            return Ok(None);
        };
        let end = self.scanned + pos;
        self.scanned = 0;
        let mut line = self.inbuf.split_to(end + 1);
        line.truncate(end);
        if line.last() == Some(&b'\r') {
            line.truncate(end - 1);
        }
        if self
            .options
            .max_line_length
            .is_some_and(|max| line.len() > max)
        {
            return Err(CloseReason::LineTooLong);
        }
        Ok(Some(line.freeze()))
    }

    fn try_handshake(&mut self) {
        let line = match self.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => return,
            Err(reason) => return self.close_with(reason),
        };
        // `HELLO {` exactly, JSON decoded with the Go server's type checks.
        let Some(hello) = parse_hello(&line) else {
            return self.close_with(CloseReason::MalformedHello);
        };
        if !self.password_ok(&hello) {
            self.outbuf.extend_from_slice(b"-ERR Invalid password\r\n");
            return self.close_with(CloseReason::InvalidPassword);
        }
        self.outbuf.extend_from_slice(b"+OK\r\n");
        self.phase = Phase::Running;
        self.deadline = None;
        self.events.push_back(ServerEvent::Hello(hello));
    }

    /// The password check of the real server: no password → anything goes; else `pwdhash` must be
    /// the iterated hash (`v >= 2`) or the single-round one (`v` absent or `< 2`).
    fn password_ok(&self, hello: &Hello) -> bool {
        let (Some(password), Some((salt, iterations))) = (&self.options.password, &self.salt)
        else {
            return true;
        };
        verify_password(
            password.expose(),
            salt,
            *iterations,
            hello.v,
            hello.pwdhash.as_deref(),
        )
    }
}

/// Appends `bytes` with every `\n` written as a space.
fn extend_line(out: &mut BytesMut, bytes: &[u8]) {
    if bytes.contains(&b'\n') {
        out.extend(bytes.iter().map(|&b| if b == b'\n' { b' ' } else { b }));
    } else {
        out.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::password_hash;

    fn events(c: &mut Connection) -> Vec<ServerEvent> {
        std::iter::from_fn(|| c.poll_event()).collect()
    }

    fn out(c: &mut Connection) -> Vec<u8> {
        std::iter::from_fn(|| c.poll_transmit())
            .flat_map(|b| b.to_vec())
            .collect()
    }

    fn with_password() -> ServerOptions {
        ServerOptions {
            password: Some(Password::from("s3cret-pw")),
            ..ServerOptions::default()
        }
    }

    fn running(now: Instant) -> Connection {
        let mut c = Connection::new(ServerOptions::default(), 1, now);
        c.handle_input(b"HELLO {\"v\":2}\r\n", now);
        assert!(matches!(c.poll_event(), Some(ServerEvent::Hello(_))));
        assert_eq!(out(&mut c), b"+HI {\"v\":2}\r\n+OK\r\n");
        c
    }

    #[test]
    fn hi_carries_salt_and_iterations_with_a_password() {
        let now = Instant::now();
        let mut c = Connection::new(ServerOptions::default(), 1, now);
        assert_eq!(out(&mut c), b"+HI {\"v\":2}\r\n");
        for seed in 0..200 {
            let mut c = Connection::new(with_password(), seed, now);
            let hi = out(&mut c);
            let json: serde_json::Value = serde_json::from_slice(&hi[4..hi.len() - 2]).unwrap();
            let i = json["i"].as_u64().unwrap();
            assert!((4000..=8095).contains(&i));
            let s = json["s"].as_str().unwrap();
            assert!(!s.is_empty() && s.len() <= 16);
            assert!(!s.starts_with('0') || s == "0", "not zero-padded: {s}");
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            );
            let again = out(&mut Connection::new(with_password(), seed, now));
            assert_eq!(hi, again, "the seed decides");
        }
    }

    #[test]
    fn hello_types_are_checked_like_go() {
        let now = Instant::now();
        for (line, ok) in [
            (&b"HELLO {\"pid\":\"12\"}\r\n"[..], false),
            (b"HELLO {\"v\":300}\r\n", false),
            (b"HELLO {\"v\":2.0}\r\n", false),
            (b"HELLO {\"v\":\"2\"}\r\n", false),
            (b"HELLO {\"labels\":\"x\"}\r\n", false),
            (b"HELLO {} x\r\n", false),
            (b"HELLO  {}\r\n", false),
            (b"hello {}\r\n", false),
            (b"HELLO{}\r\n", false),
            (
                b"HELLO {\"v\":2,\"foo\":[1,{}],\"pid\":-1,\"wid\":null}\r\n",
                true,
            ),
            (b"HELLO {}\n", true),
        ] {
            let mut c = Connection::new(ServerOptions::default(), 1, now);
            c.handle_input(line, now);
            let ev = events(&mut c);
            if ok {
                assert!(
                    matches!(ev[..], [ServerEvent::Hello(_)]),
                    "{line:?}: {ev:?}"
                );
            } else {
                assert_eq!(
                    ev,
                    vec![ServerEvent::Closed(CloseReason::MalformedHello)],
                    "{line:?}"
                );
                assert_eq!(out(&mut c), b"+HI {\"v\":2}\r\n", "silent close");
            }
        }
        let mut c = Connection::new(ServerOptions::default(), 1, now);
        c.handle_input(
            b"HELLO {\"V\":1,\"WID\":\"w\",\"wid\":\"w2\",\"Hostname\":\"h\"}\r\n",
            now,
        );
        match c.poll_event() {
            Some(ServerEvent::Hello(h)) => {
                assert_eq!(h.v, Some(1));
                assert_eq!(h.wid.as_deref(), Some("w2"), "the last duplicate wins");
                assert_eq!(h.hostname.as_deref(), Some("h"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn passwords() {
        let now = Instant::now();
        let hash = |v: u8, rounds: u32| {
            format!(
                "HELLO {{\"v\":{v},\"pwdhash\":\"{}\"}}\r\n",
                password_hash("s3cret-pw", "5cd4e5d2eb28a61", rounds)
            )
        };
        for (line, ok) in [
            (hash(2, 7946), true),
            (hash(1, 1), true),
            (hash(2, 1), false),
            (hash(1, 7946), false),
            (
                hash(2, 7946)
                    .to_uppercase()
                    .replace("HELLO {\"V\"", "HELLO {\"v\""),
                false,
            ),
            ("HELLO {\"v\":2}\r\n".to_owned(), false),
        ] {
            let mut c = Connection::with_salt(with_password(), "5cd4e5d2eb28a61", 7946, now);
            assert_eq!(
                out(&mut c),
                b"+HI {\"v\":2,\"i\":7946,\"s\":\"5cd4e5d2eb28a61\"}\r\n"
            );
            c.handle_input(line.as_bytes(), now);
            let ev = events(&mut c);
            if ok {
                assert!(matches!(ev[..], [ServerEvent::Hello(_)]), "{line}");
                assert_eq!(out(&mut c), b"+OK\r\n");
            } else {
                assert_eq!(
                    ev,
                    vec![ServerEvent::Closed(CloseReason::InvalidPassword)],
                    "{line}"
                );
                assert_eq!(out(&mut c), b"-ERR Invalid password\r\n");
                assert!(c.is_closed());
            }
        }
    }

    #[test]
    fn handshake_deadline() {
        let base = Instant::now();
        let mut c = Connection::new(ServerOptions::default(), 1, base);
        assert_eq!(c.poll_timeout(), Some(base + Duration::from_secs(2)));
        c.handle_input(b"HELLO {", base + Duration::from_millis(1500));
        c.handle_timeout(base + Duration::from_millis(1999));
        assert_eq!(c.poll_event(), None);
        c.handle_timeout(base + Duration::from_secs(2));
        assert_eq!(
            events(&mut c),
            vec![ServerEvent::Closed(CloseReason::HandshakeTimeout)]
        );

        // Input arriving after the deadline is too late even without a timer call.
        let mut c = Connection::new(ServerOptions::default(), 1, base);
        c.handle_input(b"HELLO {}\r\n", base + Duration::from_secs(2));
        assert_eq!(
            events(&mut c),
            vec![ServerEvent::Closed(CloseReason::HandshakeTimeout)]
        );
        assert_eq!(c.poll_timeout(), None);
    }

    #[test]
    fn lines_split_like_the_real_server() {
        let now = Instant::now();
        let mut c = running(now);
        c.handle_input(b"INFO\r\r\nINFO\n\r\nINFO\rINFO\r\nFLUSH", now);
        assert_eq!(
            events(&mut c),
            vec![
                ServerEvent::Invalid(CommandError::UnknownCommand("INFO\r".into())),
                ServerEvent::Command(Command::Info),
                ServerEvent::Invalid(CommandError::UnknownCommand(String::new())),
                ServerEvent::Invalid(CommandError::UnknownCommand("INFO\rINFO".into())),
            ]
        );
        c.handle_eof();
        assert_eq!(
            events(&mut c),
            vec![ServerEvent::Closed(CloseReason::Eof)],
            "partial line dropped"
        );
    }

    #[test]
    fn parsing_is_lazy_and_end_closes_without_reply() {
        let now = Instant::now();
        let mut c = running(now);
        c.handle_input(b"INFO\r\nNOPE\r\nEND\r\nINFO\r\n", now);
        assert_eq!(c.poll_event(), Some(ServerEvent::Command(Command::Info)));
        c.reply_bulk(b"{}");
        match c.poll_event() {
            Some(ServerEvent::Invalid(e)) => c.reply_invalid(&e),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.poll_event(), Some(ServerEvent::Closed(CloseReason::End)));
        assert_eq!(c.poll_event(), None, "nothing after END is read");
        assert!(c.is_closed());
        assert_eq!(out(&mut c), b"$2\r\n{}\r\n-ERR unknown command NOPE\r\n");
    }

    #[test]
    fn replies_and_close_after_flush() {
        let now = Instant::now();
        let mut c = running(now);
        c.reply_ok();
        c.reply_null();
        c.reply_error("NOTUNIQUE", "Job not unique");
        c.reply_error("ERR", "a\nb");
        c.reply_error("ERR", "");
        c.reply_raw(b"garbage");
        c.close();
        c.reply_ok();
        assert_eq!(
            out(&mut c),
            b"+OK\r\n$-1\r\n-NOTUNIQUE Job not unique\r\n-ERR a b\r\n-ERR\r\ngarbage".to_vec()
        );
        assert_eq!(
            events(&mut c),
            vec![ServerEvent::Closed(CloseReason::Local)]
        );
        c.handle_input(b"INFO\r\n", now);
        assert_eq!(c.poll_event(), None);
    }

    #[test]
    fn enterprise_commands_when_asked() {
        let now = Instant::now();
        let mut c = running(now);
        c.handle_input(b"TRACK GET abcdefgh\r\n", now);
        assert_eq!(
            c.poll_event(),
            Some(ServerEvent::Invalid(CommandError::TrackEnterpriseOnly))
        );
        let o = ServerOptions {
            enterprise: true,
            ..ServerOptions::default()
        };
        let mut c = Connection::new(o, 1, now);
        c.handle_input(b"HELLO {}\r\nTRACK GET abcdefgh\r\nBATCH OPEN b-1\r\n", now);
        assert!(matches!(c.poll_event(), Some(ServerEvent::Hello(_))));
        assert_eq!(
            c.poll_event(),
            Some(ServerEvent::Command(Command::TrackGet("abcdefgh".into())))
        );
        assert_eq!(
            c.poll_event(),
            Some(ServerEvent::Command(Command::BatchOpen("b-1".into())))
        );
    }

    #[test]
    fn max_line_length() {
        let now = Instant::now();
        let o = ServerOptions {
            max_line_length: Some(8),
            ..ServerOptions::default()
        };
        let mut c = Connection::new(o, 1, now);
        c.handle_input(b"HELLO {}\r\n", now);
        assert!(matches!(c.poll_event(), Some(ServerEvent::Hello(_))));
        c.handle_input(b"FLUSH 12\r\n", now);
        assert_eq!(
            c.poll_event(),
            Some(ServerEvent::Command(Command::Flush)),
            "8 bytes is fine"
        );
        c.handle_input(b"FLUSH 1234", now);
        assert_eq!(
            c.poll_event(),
            Some(ServerEvent::Closed(CloseReason::LineTooLong))
        );
    }
}
