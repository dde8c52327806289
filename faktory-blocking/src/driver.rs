//! The client's I/O thread: it drives the client's `faktory_proto::session::Session` (reconnects,
//! backoff, deadlines, which caller gets which answer, END and the closed state are all the
//! session's), opens the sockets the session asks for, writes what it gives, and hands each
//! answer to the caller waiting for it.
//!
//! Everything the thread reacts to arrives on one `std::sync::mpsc` channel: calls from the
//! `Client` handles (each with its own reply channel), bytes / EOF / errors from the reader thread
//! of the current socket, and the news that every handle is gone. The thread waits on that channel
//! no longer than the session's deadline (`recv_timeout`). Calls waiting in the channel are all
//! handed to the session before the next write, so concurrent calls are pipelined on the one
//! connection.
//!
//! Sockets are opened on this thread when the session says `Connect` (TCP bounded by the connect
//! timeout, then TLS), and the outcome is reported at once. A stream given by the user (other than
//! a `TcpStream`) cannot be read by a second thread while this one writes, so it is read on this
//! thread, only while the session awaits bytes.

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use faktory_proto::api::{CallResult, ReadBuffer, wire_for_log};
use faktory_proto::client::{ConnectFailure, ConnectPhase};
use faktory_proto::command::Command;
use faktory_proto::session::{CallId, Event, Session};

use crate::transport::{Opened, Probe, ReadEvent, Target, Writer};

/// What the I/O thread reacts to.
pub(crate) enum Msg {
    /// A call (boxed: a `Command` is large) and where its answer goes.
    Call(Box<Command>, Sender<CallResult>),
    /// An eager connect.
    Connect(Sender<CallResult>),
    /// `Client::close`.
    Close(Sender<CallResult>),
    /// Bytes from the reader thread of socket number `.0`.
    Input(u64, Bytes),
    /// EOF on socket `.0`.
    Eof(u64),
    /// A read error on socket `.0`.
    IoError(u64, io::Error),
    /// Every `Client` handle is gone: say END and stop.
    Dropped,
}

/// Where sockets come from.
pub(crate) enum Source {
    /// Dial this address (again after a drop).
    Target(Target),
    /// A stream the user gave: used once (the session has `reconnect: false`).
    Stream(Option<Opened>),
}

enum Link {
    /// A reader thread feeds the channel; this thread writes.
    Duplex(Writer),
    /// A user's stream: read here, only while the session awaits bytes.
    Half { stream: Opened, buf: ReadBuffer },
}

/// How long the I/O thread keeps going after the last `Client` handle is gone (to say END and see
/// the server close).
const DROP_GRACE: Duration = Duration::from_secs(1);

/// The most messages handled before the session's output is written again.
const BATCH: usize = 256;

/// The I/O thread's state.
pub(crate) struct Driver {
    session: Session,
    source: Source,
    /// Bounds every write to a socket.
    write_timeout: Duration,
    /// Where reader threads send what they read.
    tx: Sender<Msg>,
    /// Who waits for which call.
    waiters: HashMap<CallId, Sender<CallResult>>,
    link: Option<Link>,
    /// Tells the current socket's reader messages from those of earlier ones.
    generation: u64,
    /// Every handle is gone: the thread stops at this time at the latest.
    give_up_at: Option<Instant>,
}

/// What waiting brought.
enum Wait {
    Msg(Msg),
    /// Something was handled already (a read, a timer).
    Handled,
    /// Stop the thread.
    Stop,
}

impl Driver {
    pub(crate) fn new(
        session: Session,
        source: Source,
        write_timeout: Duration,
        tx: Sender<Msg>,
    ) -> Self {
        Driver {
            session,
            source,
            write_timeout,
            tx,
            waiters: HashMap::new(),
            link: None,
            generation: 0,
            give_up_at: None,
        }
    }

    /// Writes everything the session queued, to the current socket.
    fn flush(&mut self) {
        while let Some(bytes) = self.session.poll_transmit() {
            trace_wire("faktory send", &bytes);
            let written = match &mut self.link {
                Some(Link::Duplex(w)) => w.write_all(&bytes),
                Some(Link::Half { stream, .. }) => {
                    io::Write::write_all(stream, &bytes).and_then(|()| io::Write::flush(stream))
                }
                None => Ok(()),
            };
            if let Err(e) = written {
                self.session
                    .handle_transport_error(&e.to_string(), Instant::now());
                return;
            }
        }
    }

    /// Handles the session's events; returns `false` once the session is closed.
    fn handle_events(&mut self) -> bool {
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::Connect => self.open(),
                Event::Disconnect => {
                    if let Some(Link::Duplex(w)) = self.link.take() {
                        w.close();
                    }
                }
                Event::Answer { call, result } => {
                    if let Some(w) = self.waiters.remove(&call) {
                        let _ = w.send(result);
                    }
                }
                Event::Ready => {
                    tracing::debug!(server = %self.session.server(), "faktory connection ready");
                }
                Event::ConnectFailed { error, retry_at } => {
                    let retry_in = retry_at.map(|t| t.saturating_duration_since(Instant::now()));
                    tracing::info!(server = %self.session.server(), %error, ?retry_in, "faktory connect failed");
                }
                Event::Closed => {
                    tracing::debug!(server = %self.session.server(), "faktory client closed");
                }
                _ => {}
            }
        }
        !self.session.is_closed()
    }

    /// Opens the socket the session asked for, on this thread, and reports how it went.
    fn open(&mut self) {
        let opened = match &mut self.source {
            Source::Target(t) => t.open(Instant::now() + t.connect_timeout),
            Source::Stream(s) => s.take().ok_or_else(|| {
                ConnectFailure::permanent(ConnectPhase::Tcp, "the user's stream was used already")
            }),
        };
        let mut opened = match opened {
            Ok(o) => o,
            Err(failure) => {
                self.session.handle_connect_failed(failure, Instant::now());
                return;
            }
        };
        if let Err(e) = opened.set_write_timeout(Some(self.write_timeout)) {
            let failure = ConnectFailure::transient(ConnectPhase::Tcp, e.to_string());
            self.session.handle_connect_failed(failure, Instant::now());
            return;
        }
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        let link = match opened.split() {
            Ok((reader, writer)) => {
                let tx = self.tx.clone();
                let spawned = std::thread::Builder::new()
                    .name("faktory-client-reader".into())
                    .spawn(move || {
                        crate::transport::read_loop(reader, |event| {
                            let msg = match event {
                                ReadEvent::Data(b) => Msg::Input(generation, b),
                                ReadEvent::Eof => Msg::Eof(generation),
                                ReadEvent::Error(e) => Msg::IoError(generation, e),
                            };
                            tx.send(msg).is_ok()
                        });
                    });
                if let Err(e) = spawned {
                    let failure = ConnectFailure::transient(
                        ConnectPhase::Tcp,
                        format!("cannot start a reader thread: {e}"),
                    );
                    self.session.handle_connect_failed(failure, Instant::now());
                    return;
                }
                Link::Duplex(writer)
            }
            Err(stream) => Link::Half {
                stream,
                buf: ReadBuffer::new(),
            },
        };
        self.link = Some(link);
        self.session.handle_connected(Instant::now());
    }

    /// Before a call goes out on an idle connection: whether the server closed it meanwhile
    /// (restart, idle reaping) and the reader thread has not said so yet. Sending on such a
    /// connection would fail the call with an unknown outcome although the server never saw it;
    /// with the EOF reported first, the session reconnects instead.
    fn probe_idle(&mut self) {
        if !self.session.is_ready() || self.session.pending_calls() > 0 {
            return;
        }
        let Some(Link::Duplex(writer)) = &self.link else {
            return;
        };
        match writer.probe() {
            Probe::Alive => {}
            Probe::Eof => self.session.handle_eof(Instant::now()),
            Probe::Error(e) => self
                .session
                .handle_transport_error(&e.to_string(), Instant::now()),
        }
    }

    fn handle(&mut self, msg: Msg) {
        let now = Instant::now();
        match msg {
            Msg::Call(command, reply) => {
                self.probe_idle();
                let call = self.session.call(*command, now);
                self.waiters.insert(call, reply);
            }
            Msg::Connect(reply) => {
                let call = self.session.connect(now);
                self.waiters.insert(call, reply);
            }
            Msg::Close(reply) => {
                let call = self.session.close(now);
                self.waiters.insert(call, reply);
            }
            Msg::Input(g, bytes) if self.current(g) => {
                trace_wire("faktory recv", &bytes);
                self.session.handle_input(&bytes, now);
            }
            Msg::Eof(g) if self.current(g) => self.session.handle_eof(now),
            Msg::IoError(g, e) if self.current(g) => {
                self.session.handle_transport_error(&e.to_string(), now);
            }
            Msg::Dropped => {
                self.session.close(now);
                self.give_up_at = Some(now + DROP_GRACE);
            }
            // From a socket that is gone.
            Msg::Input(..) | Msg::Eof(_) | Msg::IoError(..) => {}
        }
    }

    fn current(&self, generation: u64) -> bool {
        generation == self.generation && self.link.is_some()
    }

    /// Waits for the next thing to happen, no longer than the session's deadline.
    fn wait(&mut self, rx: &Receiver<Msg>) -> Wait {
        let now = Instant::now();
        if self.give_up_at.is_some_and(|t| now >= t) {
            tracing::debug!(server = %self.session.server(), "faktory client gave up waiting for the server's close");
            return Wait::Stop;
        }
        let deadline = match (self.session.poll_timeout(), self.give_up_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if deadline.is_some_and(|d| d <= now) {
            self.session.handle_timeout(now);
            return Wait::Handled;
        }
        if self.give_up_at.is_some() && matches!(self.link, Some(Link::Half { .. })) {
            // Reading a user's stream cannot be bounded in time: END was written, stop here.
            return Wait::Stop;
        }
        let awaits_input = self.session.awaits_input();
        if let Some(Link::Half { stream, buf }) = &mut self.link {
            if awaits_input {
                // Pipeline what is already waiting before blocking in read.
                match rx.try_recv() {
                    Ok(msg) => return Wait::Msg(msg),
                    Err(TryRecvError::Disconnected) => return Wait::Stop,
                    Err(TryRecvError::Empty) => {}
                }
                let timeout = deadline.map(|t| {
                    t.saturating_duration_since(now)
                        .max(Duration::from_millis(1))
                });
                let _ = stream.set_read_timeout(timeout);
                let result = stream.read(buf.space());
                let now = Instant::now();
                match result {
                    Ok(0) => self.session.handle_eof(now),
                    Ok(n) => {
                        let data = buf.space().get(..n).unwrap_or_default();
                        trace_wire("faktory recv", data);
                        self.session.handle_input(data, now);
                        buf.read(n);
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        self.session.handle_timeout(now);
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => self.session.handle_transport_error(&e.to_string(), now),
                }
                return Wait::Handled;
            }
        }
        let got = match deadline {
            Some(deadline) => rx.recv_timeout(deadline - now),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match got {
            Ok(msg) => Wait::Msg(msg),
            Err(RecvTimeoutError::Timeout) => {
                self.session.handle_timeout(Instant::now());
                Wait::Handled
            }
            Err(RecvTimeoutError::Disconnected) => Wait::Stop,
        }
    }
}

fn trace_wire(what: &'static str, bytes: &[u8]) {
    if tracing::enabled!(tracing::Level::TRACE) {
        tracing::trace!(wire = %wire_for_log(bytes), "{what}");
    }
}

/// A seed for the session's backoff jitter.
pub(crate) fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ u64::from(std::process::id()).rotate_left(32)
}

/// The I/O thread: runs until the session is closed (by `Client::close`, or once every `Client`
/// handle is gone, bounded by a second).
pub(crate) fn run(rx: &Receiver<Msg>, mut driver: Driver) {
    loop {
        // 1. Write every transmit before handling events (a Disconnect comes after END was
        //    written).
        driver.flush();
        // 2. Events.
        if !driver.handle_events() {
            return;
        }
        // 3. Wait, then take what else is waiting.
        let first = match driver.wait(rx) {
            Wait::Msg(m) => m,
            Wait::Handled => continue,
            Wait::Stop => return,
        };
        let mut next = Some(first);
        let mut handled = 0;
        while let Some(msg) = next.take() {
            driver.handle(msg);
            handled += 1;
            if handled < BATCH {
                next = rx.try_recv().ok();
            }
        }
    }
}

/// Creates the channel the I/O thread listens on.
pub(crate) fn channel() -> (Sender<Msg>, Receiver<Msg>) {
    mpsc::channel()
}
