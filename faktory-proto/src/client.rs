//! The client connection machine.
//!
//! CONTRACT (skeleton; the implementation fills the bodies):
//! - `new` starts in "awaiting HI" with a handshake deadline of `now + options.handshake_timeout`.
//!   On `+HI {json}` it queues `HELLO` (with the password hash when asked; [`ConnectionError::PasswordRequired`]
//!   when asked and no password is configured), then waits for `+OK` and emits [`Event::Ready`].
//! - Commands given to [`Connection::send`] before `Ready` are held and transmitted right after `+OK`
//!   (so an overload `-ERR too many connections` right after `+OK` is never mistaken for a reply);
//!   after `Ready` they are encoded straight into the transmit buffer (pipelining).
//! - Replies are matched FIFO. The expected reply kind follows from the command (PROTOCOL.md §10):
//!   `Ok` (`+OK`, or bulk `OK`), BEAT (`+OK` or bulk `{"state":…}`), FETCH (bulk job, `$-1`, `$0`),
//!   JSON (INFO, PUSHB, QUEUE LATENCY, BATCH STATUS, TRACK GET), text (BATCH NEW/OPEN), none (END).
//!   Any kind may get an error frame instead: that is [`Event::Reply`] with `Err(ServerError)` and the
//!   connection stays usable.
//! - A frame that does not fit the expected kind, a decode error, EOF, an I/O error or a timeout
//!   poisons the connection: [`Event::Closed`] is emitted once, with the error and the ids of the
//!   requests that got no reply (their outcome is unknown), and every later `send` fails.
//! - Reply deadlines: a request's timer starts when it becomes the oldest unanswered request (the
//!   server runs one command at a time per connection, so a request pipelined behind a blocking FETCH
//!   is not late), and runs for its timeout (`options.reply_timeout` unless given).
//! - An error frame arriving first after `+OK` whose message starts with `too many connections` is
//!   [`ConnectionError::TooManyConnections`]; EOF after `HELLO` was sent and before `+OK` is
//!   [`ConnectionError::HandshakeRejected`] (malformed HELLO or the server's 2 s handshake deadline).
//! - After END is transmitted no reply is expected; the following EOF closes the connection cleanly
//!   (`Event::Closed { error: None, .. }`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::command::{Command, EncodeError, WorkerState};
use crate::error::ServerError;
use crate::handshake::{HiError, Password};
use crate::job::Job;
use crate::resp::DecodeError;

/// Options for one client connection.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientOptions {
    /// The server password, if it has one.
    pub password: Option<Password>,
    /// Worker id: set for worker connections, `None` for producers.
    pub wid: Option<String>,
    /// Hostname reported in HELLO (workers).
    pub hostname: Option<String>,
    /// Process id reported in HELLO (workers).
    pub pid: Option<u32>,
    /// Labels reported in HELLO (workers).
    pub labels: Vec<String>,
    /// Username forwarded in HELLO (ignored by Faktory).
    pub username: Option<String>,
    /// How long the whole handshake may take (from `new` to `+OK`). Default 10 s.
    pub handshake_timeout: Duration,
    /// Default reply timeout per request. Default 10 s (FETCH blocks up to 2 s on the server).
    pub reply_timeout: Duration,
    /// Largest frame accepted from the server. Default [`crate::resp::DEFAULT_MAX_FRAME_SIZE`].
    pub max_frame_size: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            password: None,
            wid: None,
            hostname: None,
            pid: None,
            labels: Vec::new(),
            username: None,
            handshake_timeout: Duration::from_secs(10),
            reply_timeout: Duration::from_secs(10),
            max_frame_size: crate::resp::DEFAULT_MAX_FRAME_SIZE,
        }
    }
}

/// Identifies one request on one connection (increasing from 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// A successful reply, typed by the command it answers.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Reply {
    /// `+OK` (PUSH, ACK, FAIL, FLUSH, QUEUE PAUSE/RESUME/REMOVE, MUTATE, BATCH COMMIT, TRACK SET, HELLO).
    Ok,
    /// FETCH: a job, or `None` when the queues stayed empty.
    Job(Option<Box<Job>>),
    /// FETCH brought a job whose JSON does not decode as a [`Job`]. It is reserved on the server:
    /// FAIL it by `jid` when one could be read, or it returns only when its reservation expires.
    UndecodableJob {
        /// The jid, if the payload had one.
        jid: Option<String>,
        /// Why it did not decode.
        error: String,
        /// The raw payload.
        raw: Bytes,
    },
    /// BEAT: `None` for `+OK`, else the state the server asks for.
    Beat(Option<WorkerState>),
    /// PUSHB: jid → error text for the jobs that failed (empty when all were pushed).
    PushBulk(BTreeMap<String, String>),
    /// INFO, QUEUE LATENCY, BATCH STATUS, TRACK GET: the JSON document.
    Json(Bytes),
    /// BATCH NEW / BATCH OPEN: the BID.
    Text(String),
}

/// What the connection tells its driver.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The handshake completed.
    Ready,
    /// A reply to request `id`.
    Reply {
        /// The request answered.
        id: RequestId,
        /// The reply or the server's error.
        result: Result<Reply, ServerError>,
    },
    /// The connection is finished; emitted once. Close the socket.
    Closed {
        /// Why; `None` after END.
        error: Option<ConnectionError>,
        /// Requests that got no reply, oldest first: their outcome is unknown.
        unanswered: Vec<RequestId>,
    },
}

/// Why a connection failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The server sent bytes that are not RESP.
    #[error("protocol violation: {0}")]
    Decode(#[from] DecodeError),
    /// The server sent a frame that does not answer the pending request.
    #[error("protocol violation: unexpected {got} in reply to {command}")]
    UnexpectedReply {
        /// The command being answered (its verb).
        command: &'static str,
        /// A short description of what arrived.
        got: String,
    },
    /// The first frame was not a valid `HI`.
    #[error("bad server greeting: {0}")]
    BadGreeting(#[from] HiError),
    /// The server closed before saying HI.
    #[error("server closed the connection before its greeting")]
    ClosedBeforeGreeting,
    /// The server closed after our HELLO without a reply: it rejected the HELLO as malformed or
    /// the handshake took longer than its 2 s deadline.
    #[error("server closed the connection during the handshake (malformed HELLO or handshake deadline)")]
    HandshakeRejected,
    /// The server asks for a password and none is configured.
    #[error("server requires a password and none is configured")]
    PasswordRequired,
    /// `-ERR Invalid password` (or another error) in reply to HELLO.
    #[error("handshake refused: {0}")]
    Auth(ServerError),
    /// `-ERR too many connections` right after the handshake.
    #[error("server is overloaded: {0}")]
    TooManyConnections(ServerError),
    /// The server closed the connection.
    #[error("server closed the connection")]
    Eof,
    /// An I/O error reported by the driver.
    #[error("I/O error: {0}")]
    Io(String),
    /// No reply (or handshake) in time; the connection must not be reused.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// Closed locally before completion.
    #[error("connection closed locally")]
    Closed,
}

/// Why a command could not be sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The connection is closed or poisoned.
    #[error("connection is closed")]
    Closed,
    /// The command cannot be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// The client side of one Faktory connection.
#[derive(Debug)]
pub struct Connection {
    options: ClientOptions,
}

impl Connection {
    /// A new connection, waiting for the server's HI.
    pub fn new(options: ClientOptions, now: Instant) -> Self {
        let _ = now;
        Connection { options }
    }

    /// The options this connection was made with.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// Feeds bytes read from the socket.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) {
        let _ = (data, now);
        unimplemented!("client::Connection::handle_input")
    }

    /// The socket reached EOF.
    pub fn handle_eof(&mut self, now: Instant) {
        let _ = now;
        unimplemented!("client::Connection::handle_eof")
    }

    /// The socket failed.
    pub fn handle_io_error(&mut self, error: &std::io::Error) {
        let _ = error;
        unimplemented!("client::Connection::handle_io_error")
    }

    /// Time passed; spurious calls are no-ops.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
        unimplemented!("client::Connection::handle_timeout")
    }

    /// Queues a command with the default reply timeout.
    pub fn send(&mut self, command: &Command, now: Instant) -> Result<RequestId, SendError> {
        self.send_with_timeout(command, None, now)
    }

    /// Queues a command with its own reply timeout (`None`: the default).
    pub fn send_with_timeout(
        &mut self,
        command: &Command,
        timeout: Option<Duration>,
        now: Instant,
    ) -> Result<RequestId, SendError> {
        let _ = (command, timeout, now);
        unimplemented!("client::Connection::send_with_timeout")
    }

    /// Bytes to write to the socket, if any.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        unimplemented!("client::Connection::poll_transmit")
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        unimplemented!("client::Connection::poll_event")
    }

    /// When [`Connection::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        unimplemented!("client::Connection::poll_timeout")
    }

    /// Whether the handshake completed and the connection is usable.
    pub fn is_ready(&self) -> bool {
        unimplemented!("client::Connection::is_ready")
    }

    /// Whether the connection is finished (closed or poisoned).
    pub fn is_closed(&self) -> bool {
        unimplemented!("client::Connection::is_closed")
    }

    /// Requests sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        unimplemented!("client::Connection::in_flight")
    }

    /// Abandons the connection locally: [`Event::Closed`] with [`ConnectionError::Closed`] follows.
    pub fn abort(&mut self) {
        unimplemented!("client::Connection::abort")
    }
}

#[allow(dead_code)]
fn _unused(_: BytesMut) {}
