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
//!             Event::Closed       => stop: nothing more will happen,
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
//!   emits [`Event::Connect`]. Every `Connect` is matched by exactly one [`Event::Disconnect`];
//!   at most one socket exists at a time. An attempt (socket, TLS and handshake) must complete
//!   within `connect_timeout`: the session enforces it (the handshake's own deadline is what is left
//!   of it once the socket is open), and adapters should bound the socket and TLS steps by it too,
//!   so the failure they report names its [`ConnectPhase`](crate::client::ConnectPhase).
//! - **Calls.** Each call gets exactly one [`Event::Answer`]. Calls made while no connection is
//!   ready wait, in order, and are sent (pipelined) the moment the handshake completes. A call
//!   waits at most `request_timeout` from the moment it was made until it is sent: then it is
//!   answered with [`Error::Connection`] carrying the last connect failure (or a timeout when no
//!   attempt has failed yet). Once sent, its reply deadline is the connection's `reply_timeout`.
//!   A server error reply (`-ERR …`) is `Ok(Err(ServerError))` for that call only.
//! - **Failures before ready.** A failed attempt (connect failure, handshake refused, attempt
//!   timed out) emits [`Event::ConnectFailed`] and `Disconnect`. A pending [`Session::connect`] is
//!   answered with the error at once (an eager connect fails fast, so a wrong URL is noticed). If
//!   the error is permanent ([`ConnectionError::is_transient`] is false: a refused password, not a
//!   Faktory server, a certificate that does not verify), every waiting call is answered with it.
//!   Otherwise, while calls wait, the next attempt is scheduled after the backoff delay; calls
//!   whose deadline comes before that retry are answered with the error right away. No call
//!   waiting: no retry (the next call connects again).
//! - **A drop.** When a ready connection fails (EOF, I/O error, reply timeout, protocol
//!   violation), every call sent on it and not answered gets [`Error::OutcomeUnknown`]: the server
//!   may have executed it, so it is never re-sent. The next call opens a new socket at once; the
//!   backoff applies from the second failed attempt in a row, and is reset once a connection is
//!   ready.
//! - **No reconnect.** With `reconnect: false` (a stream the user supplied), the first socket is the
//!   only one: once it is gone, waiting and later calls are answered with [`Error::Connection`]
//!   carrying the error that ended it, and no further `Connect` is emitted.
//! - **Close.** [`Session::close`] sends END after the calls already sent (they still get their
//!   replies) and answers the close call with `Ok(Ok(Reply::Ok))` once the connection has closed
//!   (the server's EOF, or the connection's own END deadline); then `Disconnect` (if a socket
//!   exists) and [`Event::Closed`], the last event. Calls still waiting for a connection are
//!   answered with [`Error::Closed`]; so is every later call. A second `close` is answered when the
//!   first one is. With no socket, `Closed` comes at once.
//!
//! Errors name the server: every [`Error::Connection`] and [`Error::OutcomeUnknown`] carries
//! [`SessionConfig::server`].

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::api::{CallResult, Error};
use crate::backoff::BackoffConfig;
use crate::client::{self, ClientOptions, ConnectFailure, ConnectionError};
use crate::command::Command;

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
    /// An attempt to connect failed (for logs); `retry_at` is when the next one starts, if any.
    ConnectFailed {
        /// Why.
        error: ConnectionError,
        /// The next attempt, when calls are waiting and the error is transient.
        retry_at: Option<Instant>,
    },
    /// A call is answered.
    Answer {
        /// Which call.
        call: CallId,
        /// The server's reply (or error reply), or why there is none.
        result: CallResult,
    },
    /// The session is closed: nothing more will happen. Emitted once, last.
    Closed,
}

/// The client session machine. See the [module documentation](self).
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
}

impl Session {
    /// A session with no socket yet.
    pub fn new(config: SessionConfig, now: Instant) -> Session {
        let _ = now;
        Session { config }
    }

    /// The server's name, as errors give it.
    pub fn server(&self) -> &str {
        &self.config.server
    }

    /// Connect now; the returned call is answered `Ok(Ok(Reply::Ok))` once the handshake completed,
    /// or with the first attempt's error (no retry).
    pub fn connect(&mut self, now: Instant) -> CallId {
        let _ = now;
        CallId(0)
    }

    /// Sends `command` (END: use [`Session::close`]); the answer comes as [`Event::Answer`].
    pub fn call(&mut self, command: Command, now: Instant) -> CallId {
        let _ = (command, now);
        CallId(0)
    }

    /// Says END and closes; the returned call is answered once the connection has closed.
    pub fn close(&mut self, now: Instant) -> CallId {
        let _ = now;
        CallId(0)
    }

    /// The socket asked for by [`Event::Connect`] is open (TCP and TLS): the server's HI is next.
    pub fn handle_connected(&mut self, now: Instant) {
        let _ = now;
    }

    /// Opening the socket asked for by [`Event::Connect`] failed.
    pub fn handle_connect_failed(&mut self, failure: ConnectFailure, now: Instant) {
        let _ = (failure, now);
    }

    /// Bytes read from the socket.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) {
        let _ = (data, now);
    }

    /// The socket reached EOF.
    pub fn handle_eof(&mut self, now: Instant) {
        let _ = now;
    }

    /// Reading from or writing to the socket failed; `reason` says how.
    pub fn handle_transport_error(&mut self, reason: &str, now: Instant) {
        let _ = (reason, now);
    }

    /// Time passed; call at (or after) [`Session::poll_timeout`]. Spurious calls are harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
    }

    /// Bytes to write to the socket: everything queued since the last call, as one buffer.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        None
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        None
    }

    /// When [`Session::handle_timeout`] must be called next; `None` when nothing is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// Calls made and not answered yet.
    pub fn pending_calls(&self) -> usize {
        0
    }

    /// Whether [`Event::Closed`] was emitted.
    pub fn is_closed(&self) -> bool {
        false
    }

    #[allow(dead_code)]
    fn unused(&self) -> (Option<client::Connection>, Option<Error>) {
        (None, None)
    }
}
