//! The client connection machine.
//!
//! CONTRACT (skeleton; the implementation fills the bodies):
//! - `new` starts in "awaiting HI" with a handshake deadline of `now + options.handshake_timeout`.
//!   On `+HI {json}` it queues `HELLO` (with the password hash when asked; [`ConnectionError::PasswordRequired`]
//!   when asked and no password is configured), then waits for `+OK` and emits [`Event::Ready`].
//! - Commands given to [`Connection::send`] before `Ready` are held and transmitted right after `+OK`
//!   (so an overload `-ERR too many connections` right after `+OK` is never mistaken for a reply);
//!   after `Ready` they are encoded straight into the transmit buffer (pipelining).
//! - Replies are matched FIFO. The expected reply kind follows from the command
//!   (docs/protocol.md#reply-kinds):
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

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::command::{Command, EncodeError, WorkerState};
use crate::error::ServerError;
use crate::handshake::{Hello, Hi, HiError, PROTOCOL_VERSION, Password, password_hash};
use crate::job::Job;
use crate::resp::{DecodeError, Decoder, Frame};

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
    #[error(
        "server closed the connection during the handshake (malformed HELLO or handshake deadline)"
    )]
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
    /// Opening the socket failed (resolving, TCP or TLS), as the driver reported it.
    #[error("{0}")]
    Connect(ConnectFailure),
    /// Reading from or writing to the socket failed, as the driver reported it.
    #[error("I/O error: {0}")]
    Io(String),
    /// No reply (or handshake) in time; the connection must not be reused.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// Closed locally before completion.
    #[error("connection closed locally")]
    Closed,
}

impl ConnectionError {
    /// Whether a connection that failed this way is worth opening again after a backoff: network
    /// trouble, overload and timeouts are; a refused password, a missing password, a server that
    /// does not speak Faktory and a permanent connect failure (a certificate that does not verify)
    /// are not (another attempt cannot fix them).
    pub fn is_transient(&self) -> bool {
        match self {
            ConnectionError::Connect(failure) => !failure.permanent,
            ConnectionError::Eof
            | ConnectionError::Io(_)
            | ConnectionError::Timeout(_)
            | ConnectionError::ClosedBeforeGreeting
            | ConnectionError::HandshakeRejected
            | ConnectionError::TooManyConnections(_)
            | ConnectionError::Closed => true,
            ConnectionError::Decode(_)
            | ConnectionError::UnexpectedReply { .. }
            | ConnectionError::BadGreeting(_)
            | ConnectionError::PasswordRequired
            | ConnectionError::Auth(_) => false,
        }
    }
}

/// Which step of opening a socket failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectPhase {
    /// Resolving the host name.
    Resolve,
    /// The TCP connect.
    Tcp,
    /// The TLS handshake (or building its configuration).
    Tls,
}

impl std::fmt::Display for ConnectPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConnectPhase::Resolve => "resolving the host",
            ConnectPhase::Tcp => "TCP connect",
            ConnectPhase::Tls => "TLS handshake",
        })
    }
}

/// A failed attempt to open a socket, as a driver reports it to a machine
/// ([`crate::session::Session::handle_connect_failed`], the worker engine's `handle_connect_failed`).
///
/// `permanent` says that another attempt cannot succeed (a certificate that does not verify, a
/// host name that is not a TLS server name); the machines then stop retrying where the protocol
/// allows it. Everything else (refused, unreachable, timed out) is retried with backoff.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{phase} failed: {reason}")]
#[non_exhaustive]
pub struct ConnectFailure {
    /// Which step failed.
    pub phase: ConnectPhase,
    /// Whether retrying is pointless.
    pub permanent: bool,
    /// What went wrong, for people (the OS or TLS error's text, a hint).
    pub reason: String,
}

impl ConnectFailure {
    /// A failure worth retrying (refused, unreachable, reset, timed out).
    pub fn transient(phase: ConnectPhase, reason: impl Into<String>) -> Self {
        ConnectFailure {
            phase,
            permanent: false,
            reason: reason.into(),
        }
    }

    /// A failure another attempt cannot fix.
    pub fn permanent(phase: ConnectPhase, reason: impl Into<String>) -> Self {
        ConnectFailure {
            phase,
            permanent: true,
            reason: reason.into(),
        }
    }
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

/// Where the connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for `+HI`.
    AwaitHi,
    /// HELLO queued, waiting for `+OK`.
    AwaitHelloOk,
    /// Handshake done.
    Ready,
    /// Finished (cleanly or poisoned); `Event::Closed` was queued.
    Closed,
}

/// The reply kind a command expects (docs/protocol.md#reply-kinds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `+OK` (or bulk `OK`).
    Ok,
    /// `+OK` or bulk `{"state":…}`.
    Beat,
    /// Bulk job, `$-1` or `$0`.
    Fetch,
    /// Bulk JSON document.
    Json,
    /// Bulk JSON `{jid: error}`.
    PushBulk,
    /// Bulk text (a BID).
    Text,
}

impl Kind {
    /// The kind of reply `command` gets; `None` for END (no reply).
    fn of(command: &Command) -> Option<Kind> {
        Some(match command {
            Command::End => return None,
            Command::Beat(_) => Kind::Beat,
            Command::Fetch(_) => Kind::Fetch,
            Command::PushBulk(_) => Kind::PushBulk,
            Command::Info
            | Command::QueueLatency(_)
            | Command::BatchStatus(_)
            | Command::TrackGet(_) => Kind::Json,
            Command::BatchNew(_) | Command::BatchOpen(_) => Kind::Text,
            _ => Kind::Ok,
        })
    }
}

/// One request waiting for its reply.
#[derive(Clone, Copy, Debug)]
struct Pending {
    id: RequestId,
    kind: Kind,
    verb: &'static str,
    timeout: Duration,
}

/// The largest iteration count a server may ask for: the real one picks 4000..=8095; 100,000
/// rounds take a few milliseconds, so a hostile server cannot make us hash for long.
const MAX_HASH_ITERATIONS: u32 = 100_000;

/// Initial capacity of the input and output buffers (each grows when a frame or a command needs
/// more, and keeps what it grew to). An ACK with the FETCH after it is under 100 bytes and a
/// typical job under 1 KiB; a buffer is reused from its start once what was split off it is
/// dropped, so all of its capacity ends up resident: with a worker's dozen connections, 4 KiB
/// each cost about 70 kB more than 1 KiB (measured in the bench's worker) for no speed.
const BUFFER_CAPACITY: usize = 1024;
/// The smallest frame a server can send (`+\r\n`, an empty simple string).
const MIN_FRAME_LEN: usize = 3;
/// The highest [`Connection::read_threshold`].
const MAX_READ_THRESHOLD: usize = 64 * 1024;
/// The shortest reply timeout of a first awaited reply that [`Connection::read_threshold`] lets
/// wait for a FETCH behind it (which the server may block for 2 s on empty queues).
const HOLD_MIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The client side of one Faktory connection.
///
/// Drive it with bytes, EOF, I/O errors and time; after every input, drain
/// [`Connection::poll_transmit`] (write what it gives), [`Connection::poll_event`], and sleep until
/// [`Connection::poll_timeout`]. See the crate documentation for a complete blocking loop.
///
/// Buffers: complete FETCH replies at a frame boundary are decoded into a [`Job`] straight from
/// the caller's slice (the hot path of a worker); other input is appended to one `BytesMut` and
/// decoded there (bulk bodies are split off without copying). Output is encoded into one
/// `BytesMut` and handed out whole by [`Connection::poll_transmit`].
#[derive(Debug)]
pub struct Connection {
    options: ClientOptions,
    state: State,
    decoder: Decoder,
    /// Bytes read and not yet decoded.
    inbuf: BytesMut,
    /// Bytes to transmit.
    outbuf: BytesMut,
    /// Commands sent before `Ready`, transmitted right after `+OK`.
    held: BytesMut,
    /// Requests awaiting replies, oldest first (held ones included).
    pending: VecDeque<Pending>,
    events: VecDeque<Event>,
    next_id: u64,
    /// Deadline of the whole handshake (until `Ready`).
    handshake_deadline: Option<Instant>,
    /// Deadline of the oldest unanswered request, or of the EOF expected after END.
    reply_deadline: Option<Instant>,
    /// END was queued: no more sends, no reply expected for it.
    end_queued: bool,
    /// The next frame is the first one after `+OK` (where `too many connections` may come).
    first_after_ok: bool,
}

impl Connection {
    /// A new connection, waiting for the server's HI.
    pub fn new(options: ClientOptions, now: Instant) -> Self {
        let handshake_deadline = now.checked_add(options.handshake_timeout);
        Connection {
            decoder: Decoder::with_max_frame_size(options.max_frame_size),
            options,
            state: State::AwaitHi,
            // Room for typical replies and pipelined commands from the start: once a decoded
            // frame or a transmitted buffer is dropped, its allocation is reused.
            inbuf: BytesMut::with_capacity(BUFFER_CAPACITY),
            outbuf: BytesMut::with_capacity(BUFFER_CAPACITY),
            held: BytesMut::new(),
            pending: VecDeque::new(),
            events: VecDeque::new(),
            next_id: 0,
            handshake_deadline,
            reply_deadline: None,
            end_queued: false,
            first_after_ok: false,
        }
    }

    /// The options this connection was made with.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// Feeds bytes read from the socket.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) {
        if self.state == State::Closed || data.is_empty() {
            return;
        }
        let mut data = data;
        if self.inbuf.is_empty() {
            // Nothing buffered, so the decoder is at a frame boundary: complete FETCH replies at
            // the front of `data` are decoded in place, without going through the buffer.
            let used = self.fetch_replies_in_place(data, now);
            data = data.get(used..).unwrap_or_default();
            if data.is_empty() || self.state == State::Closed {
                return;
            }
        }
        self.inbuf.extend_from_slice(data);
        while self.state != State::Closed {
            match self.decoder.decode(&mut self.inbuf) {
                Ok(Some(frame)) => self.handle_frame(frame, now),
                Ok(None) => break,
                Err(e) => self.finish(Some(ConnectionError::Decode(e))),
            }
        }
    }

    /// The hot path: while a FETCH is the oldest request, decodes complete bulk replies at the
    /// front of `data` straight into [`Job`]s, without copying them into the input buffer.
    /// Anything else (an incomplete frame, a header the fast path does not take, another reply
    /// kind) is left to the decoder. Returns how many bytes were used.
    fn fetch_replies_in_place(&mut self, data: &[u8], now: Instant) -> usize {
        let mut used = 0;
        while self.state == State::Ready {
            let Some(front) = self.pending.front().copied() else {
                break;
            };
            if front.kind != Kind::Fetch {
                break;
            }
            let Some((body, len)) = data
                .get(used..)
                .and_then(|rest| complete_bulk(rest, self.options.max_frame_size))
            else {
                break;
            };
            let reply = job_reply(body, || Bytes::copy_from_slice(body));
            self.first_after_ok = false;
            self.pending.pop_front();
            self.events.push_back(Event::Reply {
                id: front.id,
                result: Ok(reply),
            });
            self.arm_front(now);
            used += len;
        }
        used
    }

    /// The socket reached EOF.
    pub fn handle_eof(&mut self, now: Instant) {
        let _ = now;
        match self.state {
            State::Closed => {}
            State::AwaitHi => self.finish(Some(ConnectionError::ClosedBeforeGreeting)),
            State::AwaitHelloOk => self.finish(Some(ConnectionError::HandshakeRejected)),
            State::Ready => {
                if self.end_queued && self.pending.is_empty() && self.inbuf.is_empty() {
                    self.finish(None);
                } else {
                    self.finish(Some(ConnectionError::Eof));
                }
            }
        }
    }

    /// Reading from or writing to the socket failed; `reason` says how (the OS error's text).
    pub fn handle_transport_error(&mut self, reason: &str) {
        self.finish(Some(ConnectionError::Io(reason.to_owned())));
    }

    /// Opening the socket failed: the connection closes with [`ConnectionError::Connect`].
    pub fn handle_connect_failed(&mut self, failure: ConnectFailure) {
        self.finish(Some(ConnectionError::Connect(failure)));
    }

    /// Time passed; spurious calls are no-ops.
    ///
    /// After END, once every earlier request is answered, the connection waits one
    /// `options.reply_timeout` for the server's EOF and then closes cleanly by itself.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Closed => {}
            State::AwaitHi | State::AwaitHelloOk => {
                if self.handshake_deadline.is_some_and(|d| now >= d) {
                    let what = if self.state == State::AwaitHi {
                        "the server greeting (HI): if the server expects TLS, use tcp+tls://"
                    } else {
                        "the reply to HELLO"
                    };
                    self.finish(Some(ConnectionError::Timeout(what)));
                }
            }
            State::Ready => {
                if self.reply_deadline.is_some_and(|d| now >= d) {
                    match self.pending.front() {
                        Some(p) => {
                            let what = timeout_label(p.verb);
                            self.finish(Some(ConnectionError::Timeout(what)));
                        }
                        None if self.end_queued => self.finish(None),
                        None => self.reply_deadline = None,
                    }
                }
            }
        }
    }

    /// Queues a command with the default reply timeout.
    pub fn send(&mut self, command: &Command, now: Instant) -> Result<RequestId, SendError> {
        self.send_with_timeout(command, None, now)
    }

    /// Queues a command with its own reply timeout (`None`: the default).
    ///
    /// Before the handshake completes the command is held and transmitted right after `+OK`. After
    /// END nothing more can be sent (the server stops reading at END).
    pub fn send_with_timeout(
        &mut self,
        command: &Command,
        timeout: Option<Duration>,
        now: Instant,
    ) -> Result<RequestId, SendError> {
        if self.state == State::Closed || self.end_queued {
            return Err(SendError::Closed);
        }
        let ready = self.state == State::Ready;
        if ready {
            command.encode(&mut self.outbuf)?;
        } else {
            command.encode(&mut self.held)?;
        }
        let id = RequestId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1);
        let timeout = timeout.unwrap_or(self.options.reply_timeout);
        match Kind::of(command) {
            Some(kind) => {
                if ready && self.pending.is_empty() {
                    self.reply_deadline = now.checked_add(timeout);
                }
                self.pending.push_back(Pending {
                    id,
                    kind,
                    verb: command.verb(),
                    timeout,
                });
            }
            None => {
                self.end_queued = true;
                if ready && self.pending.is_empty() {
                    self.reply_deadline = now.checked_add(self.options.reply_timeout);
                }
            }
        }
        Ok(id)
    }

    /// Bytes to write to the socket, if any: everything queued, as one buffer (no copy).
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if self.outbuf.is_empty() {
            None
        } else {
            Some(self.outbuf.split().freeze())
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Connection::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::AwaitHi | State::AwaitHelloOk => self.handshake_deadline,
            State::Ready => self.reply_deadline,
            State::Closed => None,
        }
    }

    /// Whether the handshake completed and the connection is usable.
    pub fn is_ready(&self) -> bool {
        self.state == State::Ready
    }

    /// Whether the connection is finished (closed or poisoned).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Requests sent and not yet answered (including those held until the handshake completes).
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// The fewest bytes worth reading: how many the server owes this connection at the least
    /// for the replies it waits for, up to and including the first FETCH. Each counts as the
    /// smallest frame there is (3 bytes, `+\r\n`), less what of the first has arrived already.
    /// It is 1 (any byte) while the connection waits for at most one such reply, when the first
    /// awaited reply is a FETCH's, when that reply's timeout is under 5 s and a FETCH follows
    /// it, and when the connection is not ready.
    ///
    /// An adapter can hand it to the kernel as the socket's receive low-water mark
    /// (`SO_RCVLOWAT` on Linux): with an ACK and the next FETCH in flight (6), the ACK's `+OK`
    /// (5 bytes) then does not wake the reader; the job behind it does, and both are read at
    /// once. The server is bound to send at least this much, so no reply is held back for ever:
    /// at most until the FETCH after it answers (2 s when the queues are empty), and EOF or an
    /// error end the wait at once. Set it again after every read and every send: it falls as
    /// replies arrive.
    pub fn read_threshold(&self) -> usize {
        let Some(front) = self.pending.front() else {
            return 1;
        };
        if self.state != State::Ready || front.kind == Kind::Fetch {
            return 1;
        }
        let mut replies = 0;
        let mut fetch = false;
        for p in &self.pending {
            replies += 1;
            if p.kind == Kind::Fetch {
                fetch = true;
                break;
            }
        }
        if replies < 2 || (fetch && front.timeout < HOLD_MIN_TIMEOUT) {
            return 1;
        }
        MIN_FRAME_LEN
            .saturating_mul(replies)
            .saturating_sub(self.inbuf.len())
            .clamp(1, MAX_READ_THRESHOLD)
    }

    /// Abandons the connection locally: [`Event::Closed`] with [`ConnectionError::Closed`] follows.
    pub fn abort(&mut self) {
        self.finish(Some(ConnectionError::Closed));
    }

    /// Ends the connection once: every pending request becomes unanswered, buffers are released.
    fn finish(&mut self, error: Option<ConnectionError>) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        let unanswered = self.pending.drain(..).map(|p| p.id).collect();
        self.inbuf = BytesMut::new();
        self.outbuf = BytesMut::new();
        self.held = BytesMut::new();
        self.handshake_deadline = None;
        self.reply_deadline = None;
        self.events.push_back(Event::Closed { error, unanswered });
    }

    fn handle_frame(&mut self, frame: Frame, now: Instant) {
        match self.state {
            State::AwaitHi => self.on_greeting(frame),
            State::AwaitHelloOk => match frame {
                Frame::Simple(ref t) | Frame::Bulk(ref t) if t.as_ref() == b"OK" => {
                    self.on_ready(now);
                }
                Frame::Error(line) => {
                    self.finish(Some(ConnectionError::Auth(ServerError::from_line(&line))));
                }
                other => self.finish(Some(ConnectionError::UnexpectedReply {
                    command: "HELLO",
                    got: describe(&other),
                })),
            },
            State::Ready => self.on_reply(frame, now),
            State::Closed => {}
        }
    }

    fn on_greeting(&mut self, frame: Frame) {
        let Frame::Simple(text) = frame else {
            return self.finish(Some(ConnectionError::BadGreeting(HiError::NotHi)));
        };
        let hi = match Hi::parse(&text) {
            Ok(hi) => hi,
            Err(e) => return self.finish(Some(ConnectionError::BadGreeting(e))),
        };
        let pwdhash = if hi.requires_password() {
            let Some(password) = &self.options.password else {
                return self.finish(Some(ConnectionError::PasswordRequired));
            };
            let iterations = hi.i.unwrap_or(1);
            if iterations > MAX_HASH_ITERATIONS {
                return self.finish(Some(ConnectionError::BadGreeting(HiError::Json(format!(
                    "password hash iteration count {iterations} exceeds {MAX_HASH_ITERATIONS}"
                )))));
            }
            let salt = hi.s.as_deref().unwrap_or("");
            Some(password_hash(password.expose(), salt, iterations))
        } else {
            None
        };
        let o = &self.options;
        let hello = Hello {
            v: Some(PROTOCOL_VERSION),
            hostname: o.hostname.clone(),
            pid: o.pid,
            labels: (!o.labels.is_empty()).then(|| o.labels.clone()),
            wid: o.wid.clone(),
            pwdhash,
            username: o.username.clone(),
        };
        match Command::Hello(hello).encode(&mut self.outbuf) {
            Ok(()) => self.state = State::AwaitHelloOk,
            Err(e) => self.finish(Some(ConnectionError::Io(format!(
                "cannot encode HELLO: {e}"
            )))),
        }
    }

    fn on_ready(&mut self, now: Instant) {
        self.state = State::Ready;
        self.handshake_deadline = None;
        self.first_after_ok = true;
        self.events.push_back(Event::Ready);
        if !self.held.is_empty() {
            // One copy, once per connection; the output buffer keeps its allocation.
            self.outbuf.extend_from_slice(&self.held);
            self.held = BytesMut::new();
        }
        self.arm_front(now);
    }

    /// Starts the timer of the (new) oldest unanswered request, or the wait for EOF after END.
    fn arm_front(&mut self, now: Instant) {
        self.reply_deadline = match self.pending.front() {
            Some(p) => now.checked_add(p.timeout),
            None if self.end_queued => now.checked_add(self.options.reply_timeout),
            None => None,
        };
    }

    fn on_reply(&mut self, frame: Frame, now: Instant) {
        let first = std::mem::take(&mut self.first_after_ok);
        if let Frame::Error(line) = &frame {
            let error = ServerError::from_line(line);
            if first && error.is_too_many_connections() {
                return self.finish(Some(ConnectionError::TooManyConnections(error)));
            }
            return match self.pending.pop_front() {
                Some(p) => {
                    self.events.push_back(Event::Reply {
                        id: p.id,
                        result: Err(error),
                    });
                    self.arm_front(now);
                }
                None => self.finish(Some(ConnectionError::UnexpectedReply {
                    command: "no request",
                    got: describe(&frame),
                })),
            };
        }
        let Some(p) = self.pending.front().copied() else {
            return self.finish(Some(ConnectionError::UnexpectedReply {
                command: "no request",
                got: describe(&frame),
            }));
        };
        match decode_reply(p.kind, frame) {
            Ok(reply) => {
                self.pending.pop_front();
                self.events.push_back(Event::Reply {
                    id: p.id,
                    result: Ok(reply),
                });
                self.arm_front(now);
            }
            Err(got) => self.finish(Some(ConnectionError::UnexpectedReply {
                command: p.verb,
                got,
            })),
        }
    }
}

/// `{"state":"quiet"}`, BEAT's bulk reply.
#[derive(serde::Deserialize)]
struct StateReply {
    state: WorkerState,
}

/// Turns a non-error frame into the reply `kind` expects, or describes why it does not fit.
fn decode_reply(kind: Kind, frame: Frame) -> Result<Reply, String> {
    match (kind, frame) {
        (Kind::Fetch, Frame::Bulk(body)) => Ok(job_reply(&body, || body.clone())),
        (Kind::Fetch, Frame::Null) => Ok(Reply::Job(None)),
        (Kind::Ok, Frame::Simple(t) | Frame::Bulk(t)) if t.as_ref() == b"OK" => Ok(Reply::Ok),
        (Kind::Beat, Frame::Simple(t) | Frame::Bulk(t)) if t.as_ref() == b"OK" => {
            Ok(Reply::Beat(None))
        }
        (Kind::Beat, Frame::Bulk(body)) => match serde_json::from_slice::<StateReply>(&body) {
            Ok(s) => Ok(Reply::Beat(Some(s.state))),
            Err(e) => Err(format!("BEAT state that does not decode ({e})")),
        },
        (Kind::Json, Frame::Bulk(body)) => Ok(Reply::Json(body)),
        (Kind::PushBulk, Frame::Bulk(body)) => match serde_json::from_slice(&body) {
            Ok(map) => Ok(Reply::PushBulk(map)),
            Err(e) => Err(format!("PUSHB result that does not decode ({e})")),
        },
        (Kind::Text, Frame::Bulk(t) | Frame::Simple(t)) => {
            Ok(Reply::Text(String::from_utf8_lossy(&t).into_owned()))
        }
        (_, other) => Err(describe(&other)),
    }
}

/// FETCH's reply for a bulk body: no job for `$0`, else the job, or what is known of a payload
/// that does not decode (`raw` gives its bytes).
fn job_reply(body: &[u8], raw: impl FnOnce() -> Bytes) -> Reply {
    if body.is_empty() {
        return Reply::Job(None);
    }
    // One UTF-8 check of the whole body is cheaper than serde_json's check of each string in it
    // (the same job and the same errors either way; invalid UTF-8 gets serde_json's own error).
    let decoded = match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str::<Job>(text),
        Err(_) => serde_json::from_slice::<Job>(body),
    };
    match decoded {
        Ok(job) => Reply::Job(Some(Box::new(job))),
        Err(e) => Reply::UndecodableJob {
            jid: extract_jid(body),
            error: e.to_string(),
            raw: raw(),
        },
    }
}

/// A complete bulk frame `$<n>\r\n<n bytes>\r\n` at the start of `data`, in the plainest form
/// (1 to 19 digits, `n <= max`): its body and its whole length. `None` for anything else,
/// which the decoder then handles (and rejects where it must) whatever the chunking.
fn complete_bulk(data: &[u8], max: usize) -> Option<(&[u8], usize)> {
    let rest = data.strip_prefix(b"$")?;
    let digits = rest.iter().take(20).position(|b| !b.is_ascii_digit())?;
    if digits == 0 || digits > 19 {
        return None;
    }
    let n = rest.get(..digits)?.iter().try_fold(0usize, |acc, &d| {
        acc.checked_mul(10)?.checked_add(usize::from(d - b'0'))
    })?;
    if n > max {
        return None;
    }
    let after = rest.get(digits..)?.strip_prefix(b"\r\n")?;
    let body = after.get(..n)?;
    if after.get(n..n.checked_add(2)?)? != b"\r\n" {
        return None;
    }
    Some((body, 1 + digits + 2 + n + 2))
}

/// The `jid` of a job payload that does not decode as a [`Job`], if it has one.
fn extract_jid(body: &[u8]) -> Option<String> {
    let serde_json::Value::Object(map) = serde_json::from_slice(body).ok()? else {
        return None;
    };
    // Keys match case-insensitively on the server.
    let as_string = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    map.get("jid").and_then(as_string).or_else(|| {
        map.iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("jid"))
            .find_map(|(_, v)| as_string(v))
    })
}

/// A short description of a frame, for errors.
fn describe(frame: &Frame) -> String {
    const MAX: usize = 60;
    let text = |b: &[u8]| {
        let cut = b.get(..MAX).unwrap_or(b);
        let mut s = String::from_utf8_lossy(cut).into_owned();
        if b.len() > MAX {
            s.push('…');
        }
        s
    };
    match frame {
        Frame::Simple(t) => format!("simple string {:?}", text(t)),
        Frame::Error(t) => format!("error {:?}", text(t)),
        Frame::Bulk(b) => format!("bulk string of {} bytes", b.len()),
        Frame::Null => "null bulk string".to_owned(),
        Frame::Integer(n) => format!("integer {n}"),
        Frame::Array(items) => format!("array of {} elements", items.len()),
    }
}

/// What a timed-out request was waiting for.
fn timeout_label(verb: &'static str) -> &'static str {
    match verb {
        "HELLO" => "the reply to HELLO",
        "FLUSH" => "the reply to FLUSH",
        "INFO" => "the reply to INFO",
        "PUSH" => "the reply to PUSH",
        "PUSHB" => "the reply to PUSHB",
        "FETCH" => "the reply to FETCH",
        "ACK" => "the reply to ACK",
        "FAIL" => "the reply to FAIL",
        "BEAT" => "the reply to BEAT",
        "QUEUE" => "the reply to QUEUE",
        "MUTATE" => "the reply to MUTATE",
        "BATCH" => "the reply to BATCH",
        "TRACK" => "the reply to TRACK",
        _ => "a reply",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Ack, Beat};

    const HI: &[u8] = b"+HI {\"v\":2}\r\n";

    fn t(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    fn events(c: &mut Connection) -> Vec<Event> {
        std::iter::from_fn(|| c.poll_event()).collect()
    }

    fn ready(now: Instant) -> Connection {
        let mut c = Connection::new(ClientOptions::default(), now);
        c.handle_input(HI, now);
        c.handle_input(b"+OK\r\n", now);
        assert_eq!(events(&mut c), vec![Event::Ready]);
        while c.poll_transmit().is_some() {}
        c
    }

    fn fetch() -> Command {
        Command::Fetch(vec!["default".into()])
    }

    fn ack() -> Command {
        Command::Ack(Ack {
            jid: "abcdefgh".into(),
        })
    }

    fn closed(error: ConnectionError, unanswered: Vec<RequestId>) -> Event {
        Event::Closed {
            error: Some(error),
            unanswered,
        }
    }

    #[test]
    fn commands_wait_for_ok_and_follow_hello() {
        let now = Instant::now();
        let mut c = Connection::new(ClientOptions::default(), now);
        let id = c.send(&ack(), now).unwrap();
        assert_eq!(c.poll_transmit(), None);
        c.handle_input(HI, now);
        assert_eq!(c.poll_transmit().unwrap(), &b"HELLO {\"v\":2}\r\n"[..]);
        assert!(!c.is_ready());
        c.handle_input(b"+OK\r\n", now);
        assert!(c.is_ready());
        assert_eq!(
            c.poll_transmit().unwrap(),
            &b"ACK {\"jid\":\"abcdefgh\"}\r\n"[..]
        );
        c.handle_input(b"+OK\r\n", now);
        assert_eq!(
            events(&mut c),
            vec![
                Event::Ready,
                Event::Reply {
                    id,
                    result: Ok(Reply::Ok)
                }
            ]
        );
        assert_eq!(c.in_flight(), 0);
    }

    #[test]
    fn pipelined_commands_go_out_as_one_buffer() {
        let now = Instant::now();
        let mut c = ready(now);
        c.send(&ack(), now).unwrap();
        c.send(&fetch(), now).unwrap();
        let out = c.poll_transmit().unwrap();
        assert_eq!(out, &b"ACK {\"jid\":\"abcdefgh\"}\r\nFETCH default\r\n"[..]);
        assert_eq!(c.poll_transmit(), None);
        assert_eq!(c.in_flight(), 2);
    }

    #[test]
    fn too_many_connections_right_after_ok() {
        let now = Instant::now();
        let mut c = Connection::new(ClientOptions::default(), now);
        let id = c.send(&fetch(), now).unwrap();
        c.handle_input(
            b"+HI {\"v\":2}\r\n+OK\r\n-ERR too many connections: 2000\r\n",
            now,
        );
        let err = ServerError::new("ERR", "too many connections: 2000");
        assert_eq!(
            events(&mut c),
            vec![
                Event::Ready,
                closed(ConnectionError::TooManyConnections(err), vec![id])
            ]
        );
        assert!(c.is_closed());
        assert!(matches!(c.send(&fetch(), now), Err(SendError::Closed)));
    }

    #[test]
    fn the_same_error_later_is_an_ordinary_reply() {
        let now = Instant::now();
        let mut c = ready(now);
        let a = c.send(&ack(), now).unwrap();
        let b = c.send(&ack(), now).unwrap();
        c.handle_input(b"+OK\r\n-ERR too many connections: 2000\r\n", now);
        let ev = events(&mut c);
        assert_eq!(ev.len(), 2);
        assert_eq!(
            ev[0],
            Event::Reply {
                id: a,
                result: Ok(Reply::Ok)
            }
        );
        assert!(
            matches!(&ev[1], Event::Reply { id, result: Err(e) } if *id == b && e.is_too_many_connections())
        );
        assert!(c.is_ready());
    }

    #[test]
    fn handshake_failures_are_distinct() {
        let now = Instant::now();
        let mut c = Connection::new(ClientOptions::default(), now);
        c.handle_eof(now);
        assert_eq!(
            events(&mut c),
            vec![closed(ConnectionError::ClosedBeforeGreeting, vec![])]
        );

        let mut c = Connection::new(ClientOptions::default(), now);
        c.handle_input(HI, now);
        c.handle_eof(now);
        assert_eq!(
            events(&mut c),
            vec![closed(ConnectionError::HandshakeRejected, vec![])]
        );

        let mut c = Connection::new(ClientOptions::default(), now);
        c.handle_input(b"+HI {\"v\":2,\"i\":5000,\"s\":\"abc\"}\r\n", now);
        assert_eq!(
            events(&mut c),
            vec![closed(ConnectionError::PasswordRequired, vec![])]
        );
        assert_eq!(c.poll_transmit(), None, "no HELLO without the password");

        let mut c = Connection::new(ClientOptions::default(), now);
        c.handle_input(b"+HELLO\r\n", now);
        assert!(matches!(
            &events(&mut c)[..],
            [Event::Closed {
                error: Some(ConnectionError::BadGreeting(_)),
                ..
            }]
        ));

        let mut c = Connection::new(ClientOptions::default(), now);
        c.handle_input(HI, now);
        c.handle_input(b"-ERR Invalid password\r\n", now);
        let err = ServerError::new("ERR", "Invalid password");
        assert_eq!(
            events(&mut c),
            vec![closed(ConnectionError::Auth(err), vec![])]
        );
    }

    #[test]
    fn handshake_deadline() {
        let base = Instant::now();
        let o = ClientOptions {
            handshake_timeout: Duration::from_secs(3),
            ..ClientOptions::default()
        };
        let mut c = Connection::new(o, base);
        let id = c.send(&ack(), base).unwrap();
        assert_eq!(c.poll_timeout(), Some(t(base, 3000)));
        c.handle_input(HI, t(base, 1000));
        c.handle_timeout(t(base, 2999));
        assert_eq!(c.poll_event(), None);
        c.handle_timeout(t(base, 3000));
        assert_eq!(
            events(&mut c),
            vec![closed(
                ConnectionError::Timeout("the reply to HELLO"),
                vec![id]
            )]
        );
        assert_eq!(c.poll_timeout(), None);
    }

    #[test]
    fn reply_timer_starts_when_the_request_becomes_oldest() {
        let base = Instant::now();
        let mut c = ready(base);
        assert_eq!(c.poll_timeout(), None);
        let f = c.send(&fetch(), base).unwrap();
        assert_eq!(c.poll_timeout(), Some(t(base, 10_000)));
        let a = c
            .send_with_timeout(&ack(), Some(Duration::from_secs(1)), t(base, 500))
            .unwrap();
        // The ACK waits behind the FETCH: its second only starts when the FETCH is answered.
        assert_eq!(c.poll_timeout(), Some(t(base, 10_000)));
        c.handle_input(b"$-1\r\n", t(base, 2000));
        assert_eq!(c.poll_timeout(), Some(t(base, 3000)));
        c.handle_timeout(t(base, 2999));
        assert_eq!(
            events(&mut c),
            vec![Event::Reply {
                id: f,
                result: Ok(Reply::Job(None))
            }]
        );
        c.handle_timeout(t(base, 3000));
        assert_eq!(
            events(&mut c),
            vec![closed(
                ConnectionError::Timeout("the reply to ACK"),
                vec![a]
            )]
        );
        // A late reply is never read as an answer.
        c.handle_input(b"+OK\r\n", t(base, 3001));
        assert_eq!(c.poll_event(), None);
    }

    #[test]
    fn reply_kinds() {
        let now = Instant::now();
        let mut c = ready(now);
        let beat = Command::Beat(Beat {
            wid: "w".into(),
            rss_kb: None,
            current_state: None,
        });
        let ids: Vec<_> = [fetch(), fetch(), ack(), beat.clone(), beat, Command::Info]
            .iter()
            .map(|cmd| c.send(cmd, now).unwrap())
            .collect();
        c.handle_input(
            b"$0\r\n\r\n$-1\r\n$2\r\nOK\r\n+OK\r\n$21\r\n{\"state\":\"terminate\"}\r\n$2\r\n{}\r\n",
            now,
        );
        let results: Vec<_> = events(&mut c)
            .into_iter()
            .map(|e| match e {
                Event::Reply { result, .. } => result.unwrap(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            results,
            vec![
                Reply::Job(None),
                Reply::Job(None),
                Reply::Ok,
                Reply::Beat(None),
                Reply::Beat(Some(WorkerState::Terminate)),
                Reply::Json(Bytes::from_static(b"{}")),
            ]
        );
        assert_eq!(ids.len(), 6);
    }

    #[test]
    fn undecodable_job_keeps_its_jid() {
        let now = Instant::now();
        let mut c = ready(now);
        let id = c.send(&fetch(), now).unwrap();
        let body = br#"{"jid":"abcdefgh","jobtype":"X","args":{"not":"an array"}}"#;
        c.handle_input(format!("${}\r\n", body.len()).as_bytes(), now);
        c.handle_input(body, now);
        c.handle_input(b"\r\n", now);
        match c.poll_event() {
            Some(Event::Reply {
                id: got,
                result: Ok(Reply::UndecodableJob { jid, raw, .. }),
            }) => {
                assert_eq!(got, id);
                assert_eq!(jid.as_deref(), Some("abcdefgh"));
                assert_eq!(raw, &body[..]);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            c.is_ready(),
            "an undecodable job does not poison the connection"
        );
    }

    #[test]
    fn fetch_replies_decode_the_same_in_place_and_buffered() {
        let now = Instant::now();
        let job = br#"{"jid":"abcdefgh","jobtype":"X","args":[1]}"#;
        let bad = br#"{"jid":"abcdefgi","jobtype":"X","args":{}}"#;
        let mut input = Vec::new();
        input.extend_from_slice(format!("${}\r\n", job.len()).as_bytes());
        input.extend_from_slice(job);
        input.extend_from_slice(format!("\r\n$0{}\r\n", bad.len()).as_bytes());
        input.extend_from_slice(bad);
        input.extend_from_slice(b"\r\n$0\r\n\r\n$-1\r\n$2\r\n{}\r\n");
        let run = |chunks: &[&[u8]]| {
            let mut c = ready(now);
            for _ in 0..4 {
                c.send(&fetch(), now).unwrap();
            }
            c.send(&Command::Info, now).unwrap();
            for chunk in chunks {
                c.handle_input(chunk, now);
            }
            events(&mut c)
        };
        let whole = run(&[&input]);
        let (a, b) = input.split_at(input.len() - 7);
        assert_eq!(run(&[a, b]), whole);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(&bytes), whole);
        assert_eq!(whole.len(), 5);
        assert!(
            matches!(&whole[0], Event::Reply { result: Ok(Reply::Job(Some(j))), .. } if j.jid == "abcdefgh")
        );
        assert!(matches!(
            &whole[1],
            Event::Reply { result: Ok(Reply::UndecodableJob { jid: Some(jid), raw, .. }), .. }
                if jid == "abcdefgi" && raw == &bad[..]
        ));
        assert!(matches!(
            &whole[2],
            Event::Reply {
                result: Ok(Reply::Job(None)),
                ..
            }
        ));
        assert!(matches!(
            &whole[3],
            Event::Reply {
                result: Ok(Reply::Job(None)),
                ..
            }
        ));
        assert!(matches!(
            &whole[4],
            Event::Reply {
                result: Ok(Reply::Json(_)),
                ..
            }
        ));
    }

    #[test]
    fn unexpected_frames_poison_once() {
        let now = Instant::now();
        let mut c = ready(now);
        let f = c.send(&fetch(), now).unwrap();
        let a = c.send(&ack(), now).unwrap();
        c.handle_input(b"+OK\r\n", now);
        c.handle_eof(now);
        c.abort();
        let ev = events(&mut c);
        assert_eq!(
            ev,
            vec![closed(
                ConnectionError::UnexpectedReply {
                    command: "FETCH",
                    got: "simple string \"OK\"".into()
                },
                vec![f, a]
            )]
        );

        let mut c = ready(now);
        c.handle_input(b"+OK\r\n", now);
        assert!(matches!(
            &events(&mut c)[..],
            [Event::Closed {
                error: Some(ConnectionError::UnexpectedReply {
                    command: "no request",
                    ..
                }),
                ..
            }]
        ));

        let mut c = ready(now);
        let id = c.send(&ack(), now).unwrap();
        c.handle_input(b"!oops\r\n", now);
        assert!(matches!(
            &events(&mut c)[..],
            [Event::Closed { error: Some(ConnectionError::Decode(_)), unanswered }] if unanswered == &vec![id]
        ));
    }

    #[test]
    fn end_closes_cleanly_at_eof_or_after_waiting() {
        let base = Instant::now();
        let mut c = ready(base);
        let a = c.send(&ack(), base).unwrap();
        c.send(&Command::End, base).unwrap();
        assert!(matches!(c.send(&ack(), base), Err(SendError::Closed)));
        assert_eq!(
            c.poll_transmit().unwrap(),
            &b"ACK {\"jid\":\"abcdefgh\"}\r\nEND\r\n"[..]
        );
        c.handle_input(b"+OK\r\n", t(base, 5));
        c.handle_eof(t(base, 6));
        assert_eq!(
            events(&mut c),
            vec![
                Event::Reply {
                    id: a,
                    result: Ok(Reply::Ok)
                },
                Event::Closed {
                    error: None,
                    unanswered: vec![]
                }
            ]
        );

        // EOF while a request before END is unanswered is not clean.
        let mut c = ready(base);
        let a = c.send(&ack(), base).unwrap();
        c.send(&Command::End, base).unwrap();
        c.handle_eof(base);
        assert_eq!(events(&mut c), vec![closed(ConnectionError::Eof, vec![a])]);

        // A server that never closes after END: the connection ends by itself.
        let mut c = ready(base);
        c.send(&Command::End, base).unwrap();
        assert_eq!(c.poll_timeout(), Some(t(base, 10_000)));
        c.handle_timeout(t(base, 10_000));
        assert_eq!(
            events(&mut c),
            vec![Event::Closed {
                error: None,
                unanswered: vec![]
            }]
        );
    }

    #[test]
    fn io_error_and_abort() {
        let now = Instant::now();
        let mut c = ready(now);
        let a = c.send(&ack(), now).unwrap();
        c.handle_transport_error("reset");
        assert_eq!(
            events(&mut c),
            vec![closed(ConnectionError::Io("reset".into()), vec![a])]
        );
        assert_eq!(c.poll_transmit(), None, "unsent bytes are dropped");

        let mut c = ready(now);
        c.abort();
        c.abort();
        assert_eq!(
            events(&mut c),
            vec![closed(ConnectionError::Closed, vec![])]
        );
    }

    #[test]
    fn huge_timeouts_do_not_overflow() {
        let now = Instant::now();
        let o = ClientOptions {
            handshake_timeout: Duration::MAX,
            reply_timeout: Duration::MAX,
            ..ClientOptions::default()
        };
        let mut c = Connection::new(o, now);
        assert_eq!(c.poll_timeout(), None);
        c.handle_input(b"+HI {\"v\":2}\r\n+OK\r\n", now);
        c.send(&ack(), now).unwrap();
        assert_eq!(c.poll_timeout(), None);
    }

    #[test]
    fn a_hostile_iteration_count_is_refused() {
        let now = Instant::now();
        let o = ClientOptions {
            password: Some(Password::from("pw")),
            ..ClientOptions::default()
        };
        let mut c = Connection::new(o, now);
        c.handle_input(b"+HI {\"v\":2,\"i\":4000000000,\"s\":\"ab\"}\r\n", now);
        assert!(matches!(
            &events(&mut c)[..],
            [Event::Closed {
                error: Some(ConnectionError::BadGreeting(_)),
                ..
            }]
        ));
    }

    /// One step of a threshold check: bytes from the server, then commands sent, then the
    /// threshold expected, and why.
    type ThresholdStep = (&'static [u8], Vec<Command>, usize, &'static str);

    fn check_thresholds(c: &mut Connection, steps: Vec<ThresholdStep>) {
        let now = Instant::now();
        for (input, commands, want, why) in steps {
            c.handle_input(input, now);
            for command in &commands {
                c.send(command, now).unwrap();
            }
            assert_eq!(c.read_threshold(), want, "{why}");
        }
    }

    #[test]
    fn read_threshold_counts_three_bytes_per_reply_up_to_the_first_fetch() {
        let now = Instant::now();
        let mut c = Connection::new(ClientOptions::default(), now);
        assert_eq!(c.read_threshold(), 1, "not ready");
        check_thresholds(
            &mut c,
            vec![
                (HI, vec![], 1, "HELLO sent, not ready yet"),
                (b"+OK\r\n", vec![], 1, "nothing awaited"),
                (b"", vec![ack()], 1, "one reply: any frame will do"),
                (
                    b"",
                    vec![fetch()],
                    6,
                    "ACK + FETCH: +OK alone (5) is not enough",
                ),
                (b"+O", vec![], 4, "2 bytes of the first reply are in"),
                (b"K\r\n", vec![], 1, "only the FETCH is awaited"),
                (
                    b"$-1\r\n",
                    vec![fetch(), fetch()],
                    1,
                    "a FETCH's reply first",
                ),
                (
                    b"$-1\r\n$-1\r\n",
                    vec![ack(), fetch(), fetch()],
                    6,
                    "held back until the first FETCH, not the second",
                ),
                (b"+OK\r\n$-1\r\n$-1\r\n", vec![ack(), ack()], 6, "no FETCH"),
            ],
        );
        c.abort();
        assert_eq!(c.read_threshold(), 1, "closed");

        // Under a reply timeout shorter than a FETCH may block, nothing waits for a FETCH.
        let options = ClientOptions {
            reply_timeout: Duration::from_secs(1),
            ..ClientOptions::default()
        };
        let mut c = Connection::new(options, now);
        check_thresholds(
            &mut c,
            vec![
                (HI, vec![], 1, "HELLO sent"),
                (
                    b"+OK\r\n",
                    vec![ack(), fetch()],
                    1,
                    "the ACK's 1 s would expire",
                ),
                (
                    b"+OK\r\n$-1\r\n",
                    vec![ack(), ack()],
                    6,
                    "no FETCH to wait for",
                ),
            ],
        );
    }

    proptest::proptest! {
        /// Whatever the replies and however they are split into reads, the threshold never asks
        /// for more bytes than the server still has to send: no reply is held back.
        #[test]
        fn read_threshold_never_exceeds_what_the_server_still_sends(
            kinds in proptest::collection::vec((proptest::bool::ANY, 0..2usize), 1..5),
            cuts in proptest::collection::vec(1..40usize, 1..30),
        ) {
            let now = Instant::now();
            let mut c = ready(now);
            let mut owed = Vec::new();
            for (is_fetch, variant) in kinds {
                if is_fetch {
                    c.send(&fetch(), now).unwrap();
                    owed.extend_from_slice(if variant == 0 {
                        &b"$-1\r\n"[..]
                    } else {
                        &b"$42\r\n{\"jid\":\"abcdefgh\",\"jobtype\":\"x\",\"args\":[]}\r\n"[..]
                    });
                } else {
                    c.send(&ack(), now).unwrap();
                    owed.extend_from_slice(if variant == 0 {
                        &b"+OK\r\n"[..]
                    } else {
                        &b"-ERR Job not found\r\n"[..]
                    });
                }
            }
            let mut rest = &owed[..];
            let mut cuts = cuts.into_iter().cycle();
            while !rest.is_empty() {
                proptest::prop_assert!(c.read_threshold() <= rest.len());
                let n = cuts.next().unwrap_or(1).min(rest.len());
                let (chunk, tail) = rest.split_at(n);
                c.handle_input(chunk, now);
                rest = tail;
            }
            proptest::prop_assert!(!c.is_closed());
            proptest::prop_assert_eq!(c.in_flight(), 0, "every reply was taken");
            proptest::prop_assert_eq!(c.read_threshold(), 1);
        }
    }
}
