//! The client session machine: one client's connection to the server over time.
//!
//! A [`client::Connection`] is one socket's protocol; a [`Session`] is what a `Client` needs on top
//! of it, decided once for every runtime: when to open a socket, reconnecting with backoff inside
//! each call's deadline, which caller gets which reply, what becomes of calls in flight when the
//! connection drops (their outcome is unknown, and they are never re-sent), END and the closed
//! state. The async crate's `Client` and `faktory-blocking`'s drive it; they only open sockets, move
//! bytes, sleep until [`Session::poll_timeout`] and hand answers to their callers.
//!
//! # Driving a session
//!
//! ```text
//! let mut s = Session::new(config, now());
//! let ready = s.connect(now());                 // optional: connect eagerly (fails fast)
//! loop {
//!     // 1. Write every transmit BEFORE handling events: a Disconnect always comes after the
//!     //    last bytes (END) for the socket were handed out here.
//!     while let Some(bytes) = s.poll_transmit() { socket.write_all(bytes) }
//!     // 2. Events.
//!     while let Some(ev) = s.poll_event() {
//!         match ev {
//!             Event::Connect      => start opening a socket (TCP, TLS) to the server; later
//!                                    s.handle_connected(now()) or s.handle_connect_failed(f, now()),
//!             Event::Disconnect   => close the socket (or abort its opening),
//!             Event::Answer { call, result } => hand `result` to the caller of `call`,
//!             Event::Closed       => stop (a call made later is answered Error::Closed at once),
//!             Event::Ready | Event::ConnectFailed { .. } => log,
//!         }
//!     }
//!     // 3. Wait for the first of: bytes → s.handle_input(&buf, now()); EOF → s.handle_eof(now());
//!     //    a read/write error → s.handle_transport_error(&e.to_string(), now());
//!     //    a caller → s.call(command, now()) / s.close(now());
//!     //    the deadline s.poll_timeout() → s.handle_timeout(now()).
//! }
//! ```
//!
//! # Contract
//!
//! - **Sockets.** A new session has no socket. The first [`Session::connect`] or [`Session::call`]
//!   emits [`Event::Connect`]. Every `Connect` is matched by exactly one [`Event::Disconnect`] (also
//!   when opening the socket failed); at most one socket exists at a time, and after `Disconnect`
//!   the driver reports nothing more for that socket. An attempt (socket, TLS and handshake) must
//!   complete within `connect_timeout`: adapters bound the socket and TLS steps by it, so the
//!   failure they report names its [`ConnectPhase`](crate::client::ConnectPhase); the handshake's
//!   own deadline is what is left of `connect_timeout` once the socket is open; and the session
//!   gives up on a socket not reported open 250 ms after the budget (a backstop for drivers that
//!   do not bound their steps: [`ConnectionError::Timeout`]).
//! - **Calls.** Each call gets exactly one [`Event::Answer`]. Calls made while no connection is
//!   ready wait, in order, and are sent (pipelined) the moment the handshake completes. A call
//!   waits at most `request_timeout` from the moment it was made until it is sent: then it is
//!   answered with [`Error::Connection`] carrying the last connect failure (or
//!   [`ConnectionError::Timeout`] when no attempt has failed yet). Once sent, its reply deadline is
//!   the connection's `reply_timeout`. A server error reply (`-ERR …`) is `Ok(Err(ServerError))`
//!   for that call only. A command that cannot be encoded is answered with [`Error::Encode`] at
//!   once, also while no connection is ready. `call(Command::End)` is [`Session::close`].
//! - **Failures before ready.** A failed attempt (connect failure, handshake refused, attempt
//!   timed out) emits `Disconnect` and [`Event::ConnectFailed`]. A pending [`Session::connect`] is
//!   answered with the error at once (an eager connect fails fast, so a wrong URL is noticed). If
//!   the error is permanent ([`ConnectionError::is_transient`] is false: a refused password, not a
//!   Faktory server, a certificate that does not verify) or not, every waiting call is answered
//!   with it: a call waits for one attempt at most, so a server that is down (connection refused,
//!   unreachable, timed out) is reported within the connect timeout instead of after retries until
//!   the call's deadline. No attempt is made without a call (the next call connects again, when
//!   the backoff allows).
//! - **Backoff.** The first attempt after a drop (or of a new session) starts at once; each failed
//!   attempt in a row delays the next one by the backoff's next delay, and that delay holds for
//!   every call made later (also after a permanent failure): a call made while the next attempt is
//!   not due waits for it, or is answered with the last error at once when its deadline comes
//!   first (so a loop of calls against a server that is down neither hammers it nor hangs). Only
//!   [`Session::connect`] starts an attempt at once whatever the backoff says. The backoff is reset
//!   once a connection is ready and has answered something, or has been used and dropped.
//! - **Overload.** A server over its connection limit answers `+OK` to HELLO, then
//!   `-ERR too many connections` and closes, before reading any command (docs/protocol.md#overload-after-ok). That connection counts as a failed attempt (transient, with
//!   backoff, [`Event::ConnectFailed`]), and the calls sent on it were not executed: they are
//!   answered with that error ([`Error::Connection`]), not with [`Error::OutcomeUnknown`].
//! - **A drop.** When a ready connection fails (EOF, I/O error, reply timeout, protocol
//!   violation), every call sent on it and not answered gets [`Error::OutcomeUnknown`]: the server
//!   may have executed it, so it is never re-sent. The next call opens a new socket at once.
//! - **No reconnect.** With `reconnect: false` (a stream the user supplied), the first socket is the
//!   only one: once it is gone (a failed handshake or a drop), waiting and later calls (and
//!   `connect`) are answered with [`Error::Connection`] carrying the error that ended it, and no
//!   further `Connect` is emitted.
//! - **Close.** [`Session::close`] on a ready connection sends END after the calls already sent
//!   (they still get their replies) and answers the close call with `Ok(Ok(Reply::Ok))` once the
//!   connection has closed (the server's EOF, or the connection's own END deadline; a call still
//!   unanswered then gets [`Error::OutcomeUnknown`]); then `Disconnect` and [`Event::Closed`].
//!   While a socket is opening or its handshake is in progress nothing was sent: the attempt is
//!   abandoned (`Disconnect`) and the session closes at once; with no socket, `Closed` comes at
//!   once. Calls still waiting for a connection (and a pending `connect`) are answered with
//!   [`Error::Closed`]; so is every later call. A second `close` is answered when the first one is
//!   (after `Closed`: with [`Error::Closed`]). `Closed` is emitted once; the only events after it
//!   are the answers to calls made after it.
//!
//! Errors name the server: every [`Error::Connection`] and [`Error::OutcomeUnknown`] carries
//! [`SessionConfig::server`]. Time never runs backwards inside a session: a `now` earlier than one
//! given before counts as the latest one. Nothing panics, whatever the inputs and their order;
//! inputs for a socket that does not exist (bytes before `handle_connected`, a second
//! `handle_connected`) are ignored. Memory grows only with the calls made and not answered.
//!
//! Events of one failure come in this order: `Disconnect`, `ConnectFailed`, then the answers (a
//! failed attempt); the answers, then `Disconnect` (a drop); the answers, the close's answer,
//! `Disconnect`, `Closed` (a close).

use std::time::{Duration, Instant};

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::api::{CallResult, Error};
use crate::backoff::{Backoff, BackoffConfig};
use crate::client::{
    self, ClientOptions, ConnectFailure, ConnectionError, Reply, RequestId, SendError,
};
use crate::command::Command;
use crate::error::ServerError;

/// How a [`Session`] connects and how long its calls may take.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SessionConfig {
    /// How the server is named in errors and logs (`host:port`, or `user-supplied stream`).
    pub server: String,
    /// Options of each connection (password, wid for consumers, reply timeout, frame limit). Its
    /// `handshake_timeout` is replaced by what is left of `connect_timeout` when a socket opens.
    pub options: ClientOptions,
    /// One attempt: socket, TLS and handshake. Default 10 s.
    pub connect_timeout: Duration,
    /// How long a call may wait for a connection before it is sent. Default 10 s.
    pub request_timeout: Duration,
    /// Open a new socket after a drop (`false` for a stream the user supplied). Default `true`.
    pub reconnect: bool,
    /// How reconnect delays grow.
    pub backoff: BackoffConfig,
    /// Seed of the backoff's jitter.
    pub seed: u64,
}

impl SessionConfig {
    /// A configuration with the defaults (10 s timeouts, reconnect, default backoff, seed 0).
    pub fn new(server: impl Into<String>, options: ClientOptions) -> Self {
        SessionConfig {
            server: server.into(),
            options,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            reconnect: true,
            backoff: BackoffConfig::default(),
            seed: 0,
        }
    }
}

/// Identifies one call of a session (increasing from 0, never reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

/// What the session asks of its driver, or tells it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// Open a socket (TCP, then TLS for `tcp+tls://`) to the server; report
    /// [`Session::handle_connected`] or [`Session::handle_connect_failed`].
    Connect,
    /// Close the socket (after writing what [`Session::poll_transmit`] gave), or abort its opening.
    Disconnect,
    /// The handshake completed (for logs).
    Ready,
    /// An attempt to connect failed (for logs); `retry_at` is the earliest the next attempt may
    /// start (the backoff), if any.
    ConnectFailed {
        /// Why.
        error: ConnectionError,
        /// The earliest the next attempt may start, when the error is transient.
        retry_at: Option<Instant>,
    },
    /// A call is answered.
    Answer {
        /// Which call.
        call: CallId,
        /// The server's reply (or error reply), or why there is none.
        result: CallResult,
    },
    /// The session is closed: no socket, no call pending. Emitted once; the only events after it
    /// are the answers ([`Error::Closed`]) to calls made after it.
    Closed,
}

/// The client session machine. See the [module documentation](self).
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    backoff: Backoff,
    /// The latest time given: time never runs backwards inside the session.
    now: Instant,
    link: Link,
    /// The connection in `link` completed its handshake.
    ready: bool,
    /// The ready connection answered something: it is not an overloaded server's (`too many
    /// connections` comes first or never), and the backoff is reset.
    proven: bool,
    /// The earliest time of the next attempt after a failed one (`None`: at once).
    retry_at: Option<Instant>,
    /// Why the last attempt failed (cleared once a connection is ready).
    last_error: Option<ConnectionError>,
    /// `reconnect: false` and the only socket is gone: why.
    dead: Option<ConnectionError>,
    /// How many `Connect` were emitted.
    sockets: u64,
    /// `close` was called.
    closing: bool,
    /// `Event::Closed` was emitted.
    closed: bool,
    /// Calls waiting for a ready connection, oldest first.
    waiting: VecDeque<Waiting>,
    /// Calls sent on the current connection and not answered, oldest first.
    in_flight: VecDeque<InFlight>,
    /// `connect` calls waiting for the current attempt.
    connect_calls: Vec<CallId>,
    /// `close` calls waiting for the connection to close.
    close_calls: Vec<CallId>,
    events: VecDeque<Event>,
    next_call: u64,
}

/// The socket, as far as the session knows.
#[derive(Debug)]
enum Link {
    /// No socket.
    None,
    /// `Connect` was emitted; the attempt must complete by `deadline` (what the handshake gets is
    /// what is left of it). The session gives up on a socket not reported open at `backstop`, a
    /// little later, so that a driver that bounds its own steps by the same budget reports its
    /// failure first, naming the phase.
    Opening {
        deadline: Option<Instant>,
        backstop: Option<Instant>,
    },
    /// The socket is open; its protocol.
    Open(Box<client::Connection>),
}

/// A call waiting for a connection.
#[derive(Debug)]
struct Waiting {
    call: CallId,
    command: Command,
    /// When it stops waiting (`made + request_timeout`; `None`: never).
    deadline: Option<Instant>,
}

/// A call sent on the current connection.
#[derive(Debug)]
struct InFlight {
    request: RequestId,
    call: CallId,
    verb: &'static str,
    /// Kept until the connection answered something, so the calls an overloaded server refused
    /// unread (`too many connections`) can wait for the next connection.
    command: Option<Command>,
    deadline: Option<Instant>,
}

/// What an attempt that timed out waited for.
const ATTEMPT_TIMEOUT: &str = "the socket to open";
/// How long after the connect budget the session gives up on a socket the driver did not report.
const OPENING_GRACE: Duration = Duration::from_millis(250);
/// What a call that timed out before it was sent waited for.
const CALL_TIMEOUT: &str = "a connection";

impl Session {
    /// A session with no socket yet.
    pub fn new(config: SessionConfig, now: Instant) -> Session {
        let backoff = Backoff::new(config.backoff.clone(), config.seed);
        Session {
            config,
            backoff,
            now,
            link: Link::None,
            ready: false,
            proven: false,
            retry_at: None,
            last_error: None,
            dead: None,
            sockets: 0,
            closing: false,
            closed: false,
            waiting: VecDeque::new(),
            in_flight: VecDeque::new(),
            connect_calls: Vec::new(),
            close_calls: Vec::new(),
            events: VecDeque::new(),
            next_call: 0,
        }
    }

    /// The server's name, as errors give it.
    pub fn server(&self) -> &str {
        &self.config.server
    }

    /// Connect now; the returned call is answered `Ok(Ok(Reply::Ok))` once the handshake completed,
    /// or with the first attempt's error (no retry). An attempt starts at once when there is no
    /// socket (a scheduled backoff retry is not waited for); one in progress is joined; with a
    /// ready connection the answer comes at once.
    pub fn connect(&mut self, now: Instant) -> CallId {
        let now = self.tick(now);
        let call = self.next_call_id();
        if self.closing || self.closed {
            self.answer(call, Err(Error::Closed));
        } else if let Some(error) = self.dead.clone() {
            let error = self.connection_error(error);
            self.answer(call, Err(error));
        } else {
            match &self.link {
                Link::Open(_) if self.ready => self.answer(call, Ok(Ok(Reply::Ok))),
                Link::Open(_) | Link::Opening { .. } => self.connect_calls.push(call),
                Link::None => {
                    self.connect_calls.push(call);
                    self.start_attempt(now);
                }
            }
        }
        self.step(now);
        call
    }

    /// Sends `command`; the answer comes as [`Event::Answer`]. `Command::End` is [`Session::close`].
    pub fn call(&mut self, command: Command, now: Instant) -> CallId {
        if matches!(command, Command::End) {
            return self.close(now);
        }
        let now = self.tick(now);
        let call = self.next_call_id();
        if self.closing || self.closed {
            self.answer(call, Err(Error::Closed));
        } else if let Some(error) = self.dead.clone() {
            let error = self.connection_error(error);
            self.answer(call, Err(error));
        } else if self.ready {
            self.send(call, command, None, now);
        } else {
            // Encoding is the validation: a call that cannot be sent is answered now, not when a
            // connection is ready.
            let mut scratch = BytesMut::new();
            match command.encode(&mut scratch) {
                Err(e) => self.answer(call, Err(Error::Encode(e))),
                Ok(()) => self.waiting.push_back(Waiting {
                    call,
                    command,
                    deadline: now.checked_add(self.config.request_timeout),
                }),
            }
        }
        self.step(now);
        call
    }

    /// Says END and closes; the returned call is answered once the connection has closed.
    pub fn close(&mut self, now: Instant) -> CallId {
        let now = self.tick(now);
        let call = self.next_call_id();
        if self.closed {
            self.answer(call, Err(Error::Closed));
            return call;
        }
        self.close_calls.push(call);
        if self.closing {
            return call;
        }
        self.closing = true;
        self.retry_at = None;
        for w in std::mem::take(&mut self.waiting) {
            self.answer(w.call, Err(Error::Closed));
        }
        for c in std::mem::take(&mut self.connect_calls) {
            self.answer(c, Err(Error::Closed));
        }
        match std::mem::replace(&mut self.link, Link::None) {
            Link::None => self.finish_close(false),
            Link::Opening { .. } => self.finish_close(true),
            Link::Open(mut conn) => {
                if self.ready && conn.send(&Command::End, now).is_ok() {
                    // END goes out after the calls already sent; their replies still come.
                    self.link = Link::Open(conn);
                } else {
                    // A handshake in progress: nothing was sent, nothing to say END after.
                    self.ready = false;
                    self.unknown_outcomes(&ConnectionError::Closed);
                    self.finish_close(true);
                }
            }
        }
        call
    }

    /// The socket asked for by [`Event::Connect`] is open (TCP and TLS): the server's HI is next.
    pub fn handle_connected(&mut self, now: Instant) {
        let now = self.tick(now);
        if let Link::Opening { deadline, .. } = self.link {
            let mut options = self.config.options.clone();
            options.handshake_timeout =
                deadline.map_or(Duration::MAX, |d| d.saturating_duration_since(now));
            self.link = Link::Open(Box::new(client::Connection::new(options, now)));
            self.ready = false;
            self.proven = false;
        }
        self.step(now);
    }

    /// Opening the socket asked for by [`Event::Connect`] failed.
    pub fn handle_connect_failed(&mut self, failure: ConnectFailure, now: Instant) {
        let now = self.tick(now);
        if matches!(self.link, Link::Opening { .. }) {
            self.link = Link::None;
            self.attempt_failed(ConnectionError::Connect(failure), now);
        }
        self.step(now);
    }

    /// Bytes read from the socket.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) {
        let now = self.tick(now);
        if let Link::Open(conn) = &mut self.link {
            conn.handle_input(data, now);
            self.pump(now);
        }
        self.step(now);
    }

    /// The socket reached EOF.
    pub fn handle_eof(&mut self, now: Instant) {
        let now = self.tick(now);
        if let Link::Open(conn) = &mut self.link {
            conn.handle_eof(now);
            self.pump(now);
        }
        self.step(now);
    }

    /// Reading from or writing to the socket failed; `reason` says how.
    pub fn handle_transport_error(&mut self, reason: &str, now: Instant) {
        let now = self.tick(now);
        if let Link::Open(conn) = &mut self.link {
            conn.handle_transport_error(reason);
            self.pump(now);
        }
        self.step(now);
    }

    /// Time passed; call at (or after) [`Session::poll_timeout`]. Spurious calls are harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.tick(now);
        match &mut self.link {
            Link::Opening { backstop, .. } if backstop.is_some_and(|d| now >= d) => {
                self.link = Link::None;
                self.attempt_failed(ConnectionError::Timeout(ATTEMPT_TIMEOUT), now);
            }
            Link::Open(conn) => {
                conn.handle_timeout(now);
                self.pump(now);
            }
            _ => {}
        }
        self.step(now);
    }

    /// Bytes to write to the socket: everything queued since the last call, as one buffer.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        match &mut self.link {
            Link::Open(conn) => conn.poll_transmit(),
            _ => None,
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] must be called next; `None` when nothing is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let link = match &self.link {
            Link::None if !self.waiting.is_empty() => self.retry_at,
            Link::None => None,
            Link::Opening { backstop, .. } => *backstop,
            Link::Open(conn) => conn.poll_timeout(),
        };
        // Deadlines grow with the order of the calls (time never runs backwards here).
        let call = self.waiting.front().and_then(|w| w.deadline);
        match (link, call) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Calls made and not answered yet.
    pub fn pending_calls(&self) -> usize {
        self.waiting.len()
            + self.in_flight.len()
            + self.connect_calls.len()
            + self.close_calls.len()
    }

    /// Whether a connection is ready for calls (handshake done, not closing).
    pub fn is_ready(&self) -> bool {
        self.ready && !self.closing
    }

    /// Whether bytes are due on the socket: a handshake in progress, replies to calls, or the
    /// server's EOF after END. A driver that can only read its socket on demand (a stream it cannot
    /// share with a reader thread) reads while this holds.
    pub fn awaits_input(&self) -> bool {
        matches!(self.link, Link::Open(_))
            && (!self.ready || !self.in_flight.is_empty() || self.closing)
    }

    /// Whether [`Event::Closed`] was emitted.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn tick(&mut self, now: Instant) -> Instant {
        if now > self.now {
            self.now = now;
        }
        self.now
    }

    fn next_call_id(&mut self) -> CallId {
        let id = CallId(self.next_call);
        self.next_call = self.next_call.wrapping_add(1);
        id
    }

    fn answer(&mut self, call: CallId, result: CallResult) {
        self.events.push_back(Event::Answer { call, result });
    }

    fn connection_error(&self, source: ConnectionError) -> Error {
        Error::Connection {
            server: self.config.server.clone(),
            source,
        }
    }

    /// Whether another `Connect` may be emitted.
    fn may_connect(&self) -> bool {
        !self.closing
            && !self.closed
            && self.dead.is_none()
            && (self.config.reconnect || self.sockets == 0)
    }

    fn start_attempt(&mut self, now: Instant) {
        self.retry_at = None;
        self.sockets = self.sockets.saturating_add(1);
        let deadline = now.checked_add(self.config.connect_timeout);
        self.link = Link::Opening {
            deadline,
            backstop: deadline.and_then(|d| d.checked_add(OPENING_GRACE)),
        };
        self.ready = false;
        self.proven = false;
        self.events.push_back(Event::Connect);
    }

    /// What every input ends with: calls past their deadline are answered, and an attempt starts
    /// when calls wait, there is no socket and the backoff allows it.
    fn step(&mut self, now: Instant) {
        if self.closed || self.closing {
            return;
        }
        self.expire_waiting(|deadline| deadline <= now);
        if !matches!(self.link, Link::None) || self.waiting.is_empty() {
            return;
        }
        if !self.may_connect() {
            // Unreachable (calls are answered when the session stops connecting); answer anyway.
            let source = self.dead.clone().unwrap_or(ConnectionError::Closed);
            self.expire_all(&source);
            return;
        }
        match self.retry_at {
            Some(retry) if retry > now => {
                // Calls that would time out before the retry are answered now.
                self.expire_waiting(|deadline| deadline <= retry);
            }
            _ => self.start_attempt(now),
        }
    }

    /// Answers the waiting calls whose deadline `due` says has come, with the last attempt's error
    /// (or a timeout when none failed).
    fn expire_waiting(&mut self, due: impl Fn(Instant) -> bool) {
        if !self.waiting.iter().any(|w| w.deadline.is_some_and(&due)) {
            return;
        }
        let source = self
            .last_error
            .clone()
            .unwrap_or(ConnectionError::Timeout(CALL_TIMEOUT));
        let (expired, kept): (VecDeque<Waiting>, VecDeque<Waiting>) =
            std::mem::take(&mut self.waiting)
                .into_iter()
                .partition(|w| w.deadline.is_some_and(&due));
        self.waiting = kept;
        for w in expired {
            let error = self.connection_error(source.clone());
            self.answer(w.call, Err(error));
        }
    }

    /// Answers every waiting call with `source`.
    fn expire_all(&mut self, source: &ConnectionError) {
        for w in std::mem::take(&mut self.waiting) {
            let error = self.connection_error(source.clone());
            self.answer(w.call, Err(error));
        }
    }

    /// Sends one call on the ready connection. A connection that closed meanwhile (its `Closed`
    /// is next in [`Session::pump`]) leaves the call waiting.
    fn send(&mut self, call: CallId, command: Command, deadline: Option<Instant>, now: Instant) {
        let Link::Open(conn) = &mut self.link else {
            self.waiting.push_front(Waiting {
                call,
                command,
                deadline,
            });
            return;
        };
        match conn.send(&command, now) {
            Ok(request) => {
                let verb = command.verb();
                self.in_flight.push_back(InFlight {
                    request,
                    call,
                    verb,
                    // Only needed to wait again after `too many connections`.
                    deadline: match (self.proven, deadline) {
                        (true, _) => None,
                        (false, Some(d)) => Some(d),
                        (false, None) => now.checked_add(self.config.request_timeout),
                    },
                    command: (!self.proven).then_some(command),
                });
            }
            Err(SendError::Encode(e)) => self.answer(call, Err(Error::Encode(e))),
            Err(_) => self.waiting.push_front(Waiting {
                call,
                command,
                deadline,
            }),
        }
    }

    /// Turns the connection's events into the session's.
    fn pump(&mut self, now: Instant) {
        loop {
            let event = match &mut self.link {
                Link::Open(conn) => conn.poll_event(),
                _ => None,
            };
            let Some(event) = event else {
                return;
            };
            match event {
                client::Event::Ready => self.on_ready(now),
                client::Event::Reply { id, result } => self.on_reply(id, result),
                client::Event::Closed { error, .. } => self.on_closed(error, now),
            }
        }
    }

    fn on_ready(&mut self, now: Instant) {
        self.ready = true;
        self.proven = false;
        self.last_error = None;
        self.events.push_back(Event::Ready);
        let usable = matches!(&self.link, Link::Open(conn) if !conn.is_closed());
        if usable {
            for c in std::mem::take(&mut self.connect_calls) {
                self.answer(c, Ok(Ok(Reply::Ok)));
            }
        }
        // Pipelined, in order, right behind the handshake.
        let waiting = std::mem::take(&mut self.waiting);
        let mut rest = waiting.into_iter();
        while let Some(w) = rest.next() {
            self.send(w.call, w.command, w.deadline, now);
            if !self.waiting.is_empty() {
                // The connection refused it (closed meanwhile): the rest waits too.
                self.waiting.extend(rest);
                break;
            }
        }
    }

    fn on_reply(&mut self, id: RequestId, result: Result<Reply, ServerError>) {
        if !self.proven {
            self.proven = true;
            self.backoff.reset();
            for f in &mut self.in_flight {
                f.command = None;
            }
        }
        let index = match self.in_flight.front() {
            Some(f) if f.request == id => Some(0),
            _ => self.in_flight.iter().position(|f| f.request == id),
        };
        if let Some(f) = index.and_then(|i| self.in_flight.remove(i)) {
            self.answer(f.call, Ok(result));
        }
    }

    fn on_closed(&mut self, error: Option<ConnectionError>, now: Instant) {
        self.link = Link::None;
        if !self.ready {
            // The handshake failed: nothing was sent.
            self.attempt_failed(error.unwrap_or(ConnectionError::Eof), now);
            return;
        }
        self.ready = false;
        let overloaded =
            !self.proven && matches!(error, Some(ConnectionError::TooManyConnections(_)));
        let source = error.unwrap_or(ConnectionError::Closed);
        if overloaded {
            // The server refused the connection before reading any command (docs/protocol.md#overload-after-ok):
            // the calls sent on it were not executed, and wait for the next connection.
            let mut back = Vec::new();
            for f in std::mem::take(&mut self.in_flight) {
                match f.command {
                    Some(command) if !self.closing => back.push(Waiting {
                        call: f.call,
                        command,
                        deadline: f.deadline,
                    }),
                    _ => {
                        let error = self.connection_error(source.clone());
                        self.answer(f.call, Err(error));
                    }
                }
            }
            for w in back.into_iter().rev() {
                self.waiting.push_front(w);
            }
            if self.closing {
                self.finish_close(true);
            } else {
                self.attempt_failed(source, now);
            }
            return;
        }
        // The connection was ready: whatever happens next starts a new streak.
        self.backoff.reset();
        self.retry_at = None;
        self.unknown_outcomes(&source);
        for c in std::mem::take(&mut self.connect_calls) {
            let error = self.connection_error(source.clone());
            self.answer(c, Err(error));
        }
        if self.closing {
            self.finish_close(true);
            return;
        }
        self.events.push_back(Event::Disconnect);
        if !self.config.reconnect {
            self.expire_all(&source);
            self.dead = Some(source);
        }
    }

    /// Every call in flight gets [`Error::OutcomeUnknown`]: the server may have executed it.
    fn unknown_outcomes(&mut self, source: &ConnectionError) {
        for f in std::mem::take(&mut self.in_flight) {
            let error = Error::OutcomeUnknown {
                server: self.config.server.clone(),
                command: f.verb,
                source: source.clone(),
            };
            self.answer(f.call, Err(error));
        }
    }

    /// An attempt failed before its connection was ready (the socket is already gone from `link`).
    fn attempt_failed(&mut self, error: ConnectionError, now: Instant) {
        self.ready = false;
        self.events.push_back(Event::Disconnect);
        let delay = self.backoff.next_delay();
        self.last_error = Some(error.clone());
        let mut answers = Vec::new();
        for c in std::mem::take(&mut self.connect_calls) {
            answers.push((c, error.clone()));
        }
        let retry_at = if self.closing {
            None
        } else if !self.config.reconnect {
            self.dead = Some(error.clone());
            None
        } else {
            // Also after a permanent error: the next call's attempt waits for it.
            self.retry_at = now.checked_add(delay);
            if error.is_transient() {
                self.retry_at
            } else {
                None
            }
        };
        // A call waits for one attempt at most: a server that is down is reported within the
        // connect timeout, not after retries until the call's deadline.
        let failed = std::mem::take(&mut self.waiting);
        answers.extend(failed.into_iter().map(|w| (w.call, error.clone())));
        self.events
            .push_back(Event::ConnectFailed { error, retry_at });
        for (call, source) in answers {
            let error = self.connection_error(source);
            self.answer(call, Err(error));
        }
        if self.closing {
            self.finish_close(false);
        }
    }

    /// The close is complete: its calls are answered, the socket goes (`disconnect`: it exists),
    /// and `Closed` is emitted.
    fn finish_close(&mut self, disconnect: bool) {
        if self.closed {
            return;
        }
        for c in std::mem::take(&mut self.close_calls) {
            self.answer(c, Ok(Ok(Reply::Ok)));
        }
        if disconnect {
            self.events.push_back(Event::Disconnect);
        }
        self.link = Link::None;
        self.ready = false;
        self.closed = true;
        self.events.push_back(Event::Closed);
    }
}
