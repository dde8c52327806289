//! The client's I/O thread: it owns the socket's write half and the
//! `faktory_proto::client::Connection`, and hands each reply to the caller waiting for it.
//!
//! Everything the thread reacts to arrives on one `std::sync::mpsc` channel: requests from the
//! `Client` handles (each with its own reply channel), bytes / EOF / errors from the reader thread
//! of the current socket, and the news that every handle is gone. The thread waits on that channel
//! no longer than the machine's deadline (`recv_timeout`). Requests waiting in the channel are all
//! encoded before the next write, so concurrent calls are pipelined on the one connection and
//! matched FIFO by the machine. All protocol decisions are the machine's.
//!
//! A stream given by the user (other than a `TcpStream`) cannot be read by a second thread while
//! this one writes, so it is read on this thread, only while replies are due.

use std::io::{self, ErrorKind, Read};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use faktory_proto::adapter::Calls;
use faktory_proto::backoff::{Backoff, BackoffConfig};
use faktory_proto::client::{ClientOptions, Connection, ConnectionError, Event, Reply};
use faktory_proto::command::Command;
use faktory_proto::ops;

use crate::error::Error;
use crate::transport::{Opened, Probe, ReadEvent, Target, Writer};

/// What a call gets back: the server's reply (or its error), or why there was none.
pub(crate) use faktory_proto::adapter::CallResult;

/// One call waiting in the channel.
pub(crate) struct Request {
    pub(crate) command: Command,
    pub(crate) reply: Sender<CallResult>,
}

/// What the I/O thread reacts to.
pub(crate) enum Msg {
    /// A call (boxed: a `Command` is large).
    Request(Box<Request>),
    /// Bytes from the reader thread of connection number `.0`.
    Input(u64, Bytes),
    /// EOF on connection `.0`.
    Eof(u64),
    /// A read error on connection `.0`.
    IoError(u64, io::Error),
    /// Every `Client` handle is gone: say END and stop.
    Dropped,
}

/// Where connections come from.
pub(crate) enum Source {
    /// Dial this address (again after a drop).
    Target(Target),
    /// A stream the user gave: used once, never re-opened.
    Stream(Option<Opened>),
}

/// Opens connections and carries them through the handshake.
pub(crate) struct Connector {
    pub(crate) source: Source,
    pub(crate) options: ClientOptions,
    pub(crate) connect_timeout: Duration,
    /// How long a call may spend reconnecting before it fails; also the write timeout.
    pub(crate) request_timeout: Duration,
    /// Where reader threads send what they read.
    pub(crate) tx: Sender<Msg>,
    pub(crate) next_gen: u64,
}

impl Connector {
    fn describe(&self) -> String {
        match &self.source {
            Source::Target(t) => t.authority(),
            Source::Stream(_) => "user-supplied stream".to_owned(),
        }
    }

    /// One connection attempt, through the handshake, bounded by the connect timeout.
    pub(crate) fn connect(&mut self) -> Result<Live, Error> {
        let deadline = Instant::now() + self.connect_timeout;
        let mut stream = match &mut self.source {
            Source::Target(t) => t.open(deadline)?,
            Source::Stream(s) => s.take().ok_or(Error::Connection(ConnectionError::Eof))?,
        };
        let mut options = self.options.clone();
        options.handshake_timeout = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_default();
        let mut conn = Connection::new(options, Instant::now());
        stream.set_write_timeout(Some(self.request_timeout))?;
        match handshake(&mut conn, &mut stream) {
            Ok(()) => {
                tracing::debug!(server = %self.describe(), "faktory connection ready");
            }
            Err(e) => {
                tracing::debug!(server = %self.describe(), error = %e, "faktory handshake failed");
                return Err(e);
            }
        }
        let gen_id = self.next_gen;
        self.next_gen = self.next_gen.wrapping_add(1);
        let link = match stream.split() {
            Ok((reader, writer)) => {
                let tx = self.tx.clone();
                let spawned = std::thread::Builder::new()
                    .name("faktory-client-reader".into())
                    .spawn(move || {
                        crate::transport::read_loop(reader, |event| {
                            let msg = match event {
                                ReadEvent::Data(b) => Msg::Input(gen_id, b),
                                ReadEvent::Eof => Msg::Eof(gen_id),
                                ReadEvent::Error(e) => Msg::IoError(gen_id, e),
                            };
                            tx.send(msg).is_ok()
                        });
                    });
                if let Err(e) = spawned {
                    return Err(Error::Io(e));
                }
                Link::Duplex(writer)
            }
            Err(stream) => Link::Half {
                stream,
                buf: vec![0u8; 16 * 1024],
            },
        };
        Ok(Live {
            gen_id,
            conn,
            link,
            calls: Calls::new(),
        })
    }

    /// Connects, retrying transient failures with backoff until `deadline`.
    fn reconnect(&mut self, backoff: &mut Backoff, deadline: Instant) -> Result<Live, Error> {
        loop {
            let error = match self.connect() {
                Ok(live) => {
                    backoff.reset();
                    return Ok(live);
                }
                Err(e) => e,
            };
            let retry = error.is_transient_connect() && matches!(self.source, Source::Target(_));
            let delay = backoff.next_delay();
            if !retry || Instant::now() + delay >= deadline {
                return Err(error);
            }
            tracing::debug!(server = %self.describe(), %error, ?delay, "faktory reconnect failed; retrying");
            std::thread::sleep(delay);
        }
    }
}

/// Drives a fresh connection through the handshake on this thread, reading with timeouts (the
/// blocking loop of the `faktory_proto` crate docs).
fn handshake(conn: &mut Connection, stream: &mut Opened) -> Result<(), Error> {
    let mut buf = vec![0u8; 4096];
    loop {
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Ready => return Ok(()),
                Event::Closed { error, .. } => {
                    return Err(error.unwrap_or(ConnectionError::Eof).into());
                }
                _ => {}
            }
        }
        let mut wrote = true;
        while let Some(bytes) = conn.poll_transmit() {
            trace_wire("faktory send", &bytes);
            if let Err(e) = io::Write::write_all(stream, &bytes) {
                conn.handle_io_error(&e);
                wrote = false;
                break;
            }
        }
        if !wrote {
            continue;
        }
        let now = Instant::now();
        match conn.poll_timeout() {
            Some(deadline) if deadline <= now => {
                conn.handle_timeout(now);
                continue;
            }
            Some(deadline) => stream.set_read_timeout(Some(deadline - now))?,
            None => stream.set_read_timeout(None)?,
        }
        read_once(conn, stream, &mut buf);
    }
}

/// One blocking read into the machine; a read timeout becomes a timer tick.
fn read_once(conn: &mut Connection, stream: &mut Opened, buf: &mut [u8]) {
    match stream.read(buf) {
        Ok(0) => conn.handle_eof(Instant::now()),
        Ok(n) => {
            let data = buf.get(..n).unwrap_or_default();
            trace_wire("faktory recv", data);
            conn.handle_input(data, Instant::now());
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            let now = Instant::now();
            if conn.poll_timeout().is_some_and(|t| t <= now) {
                conn.handle_timeout(now);
            }
        }
        Err(e) if e.kind() == ErrorKind::Interrupted => {}
        Err(e) => conn.handle_io_error(&e),
    }
}

fn trace_wire(what: &'static str, bytes: &[u8]) {
    if tracing::enabled!(tracing::Level::TRACE) {
        tracing::trace!(wire = %ops::wire_for_log(bytes), "{what}");
    }
}

enum Link {
    /// A reader thread feeds the channel; this thread writes.
    Duplex(Writer),
    /// A user's stream: read here, only while replies are due.
    Half { stream: Opened, buf: Vec<u8> },
}

/// A handshaken connection and its socket.
pub(crate) struct Live {
    /// Tells this connection's reader messages from those of earlier ones.
    gen_id: u64,
    conn: Connection,
    link: Link,
    calls: Calls<Sender<CallResult>>,
}

/// What waiting brought.
enum Wait {
    Msg(Msg),
    /// Something was handled already (a read, a timer).
    Handled,
    Disconnected,
}

impl Live {
    /// Writes everything the machine queued.
    fn flush(&mut self) {
        while let Some(bytes) = self.conn.poll_transmit() {
            trace_wire("faktory send", &bytes);
            let written = match &mut self.link {
                Link::Duplex(w) => w.write_all(&bytes),
                Link::Half { stream, .. } => io::Write::write_all(stream, &bytes),
            };
            if let Err(e) = written {
                self.conn.handle_io_error(&e);
                return;
            }
        }
    }

    /// Whether the machine waits for bytes from the server.
    fn expects_input(&self) -> bool {
        !self.conn.is_ready() || self.conn.in_flight() > 0 || self.calls.is_closing()
    }

    /// Waits for the next thing to happen, no longer than the machine's deadline.
    fn wait(&mut self, rx: &Receiver<Msg>) -> Wait {
        let expects_input = self.expects_input();
        if let Link::Half { stream, buf } = &mut self.link {
            if expects_input {
                // Pipeline what is already waiting before blocking in read.
                match rx.try_recv() {
                    Ok(msg) => return Wait::Msg(msg),
                    Err(TryRecvError::Disconnected) => return Wait::Disconnected,
                    Err(TryRecvError::Empty) => {}
                }
                let now = Instant::now();
                let timeout = self.conn.poll_timeout().map(|t| {
                    t.saturating_duration_since(now)
                        .max(Duration::from_millis(1))
                });
                let _ = stream.set_read_timeout(timeout);
                read_once(&mut self.conn, stream, buf);
                return Wait::Handled;
            }
        }
        let now = Instant::now();
        let got = match self.conn.poll_timeout() {
            Some(deadline) if deadline <= now => {
                self.conn.handle_timeout(now);
                return Wait::Handled;
            }
            Some(deadline) => rx.recv_timeout(deadline - now),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match got {
            Ok(msg) => Wait::Msg(msg),
            Err(RecvTimeoutError::Timeout) => {
                self.conn.handle_timeout(Instant::now());
                Wait::Handled
            }
            Err(RecvTimeoutError::Disconnected) => Wait::Disconnected,
        }
    }

    /// Before a request goes out on an idle connection: whether the server closed it meanwhile
    /// (restart, idle reaping) and the reader thread has not said so yet. Sending on such a
    /// connection would fail the request with an unknown outcome although the server never saw it;
    /// the caller reconnects instead.
    fn found_closed(&mut self) -> bool {
        if self.conn.in_flight() > 0 || self.calls.is_closing() {
            return false;
        }
        let Link::Duplex(writer) = &self.link else {
            return false;
        };
        match writer.probe() {
            Probe::Alive => return false,
            Probe::Eof => self.conn.handle_eof(Instant::now()),
            Probe::Error(e) => self.conn.handle_io_error(&e),
        }
        !self.dispatch()
    }

    fn submit(&mut self, request: Request) {
        let Request { command, reply } = request;
        if let Some((w, r)) = self
            .calls
            .submit(&mut self.conn, &command, reply, Instant::now())
        {
            let _ = w.send(r);
        }
    }

    fn handle_read(&mut self, msg: Msg) {
        let now = Instant::now();
        match msg {
            Msg::Input(g, bytes) if g == self.gen_id => {
                trace_wire("faktory recv", &bytes);
                self.conn.handle_input(&bytes, now);
            }
            Msg::Eof(g) if g == self.gen_id => self.conn.handle_eof(now),
            Msg::IoError(g, e) if g == self.gen_id => self.conn.handle_io_error(&e),
            _ => {}
        }
    }

    /// Hands out replies; returns `false` once the connection is finished.
    fn dispatch(&mut self) -> bool {
        match self.calls.dispatch(&mut self.conn, |w, r| {
            let _ = w.send(r);
        }) {
            None => true,
            Some(error) => {
                if let Some(e) = &error {
                    tracing::info!(error = %e, "faktory connection lost");
                }
                false
            }
        }
    }

    /// Sends END and closes, bounded in time; used when every `Client` handle is gone.
    fn close(mut self) {
        if self.conn.send(&Command::End, Instant::now()).is_err() {
            return;
        }
        let mut out = Vec::new();
        while let Some(b) = self.conn.poll_transmit() {
            out.extend_from_slice(&b);
        }
        match &mut self.link {
            Link::Duplex(w) => {
                w.set_write_timeout(Some(Duration::from_secs(1)));
                let _ = w.write_all(&out);
            }
            Link::Half { stream, .. } => {
                let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                let _ = io::Write::write_all(stream, &out);
                let _ = io::Write::flush(stream);
            }
        }
        if let Link::Duplex(w) = self.link {
            w.close();
        }
    }
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ u64::from(std::process::id()).rotate_left(32)
}

/// The most messages handled before the machine's output is written again.
const BATCH: usize = 256;

/// The I/O thread: runs until every `Client` handle is dropped.
pub(crate) fn run(rx: &Receiver<Msg>, mut connector: Connector, first: Live) {
    let mut live = Some(first);
    let mut backoff = Backoff::new(BackoffConfig::default(), seed());
    // END was sent by `close()`: later calls fail instead of reconnecting.
    let mut ended = false;
    loop {
        if let Some(l) = live.as_mut() {
            l.flush();
            if !l.dispatch() {
                live = None;
                continue;
            }
        }
        let first_msg = match live.as_mut() {
            Some(l) => match l.wait(rx) {
                Wait::Msg(m) => m,
                Wait::Handled => continue,
                Wait::Disconnected => return,
            },
            None => match rx.recv() {
                Ok(m) => m,
                Err(_) => return,
            },
        };
        let mut next = Some(first_msg);
        let mut handled = 0;
        while let Some(msg) = next.take() {
            match msg {
                Msg::Request(request) => {
                    if live.as_mut().is_some_and(Live::found_closed) {
                        live = None;
                    }
                    if ended {
                        let _ = request.reply.send(Err(Error::Closed));
                    } else if let Some(l) = live.as_mut() {
                        if !request.command.expects_reply() {
                            ended = true;
                        }
                        l.submit(*request);
                    } else if !request.command.expects_reply() {
                        ended = true;
                        let _ = request.reply.send(Ok(Ok(Reply::Ok)));
                    } else {
                        let deadline = Instant::now() + connector.request_timeout;
                        match connector.reconnect(&mut backoff, deadline) {
                            Ok(mut fresh) => {
                                fresh.submit(*request);
                                live = Some(fresh);
                            }
                            Err(e) => {
                                let _ = request.reply.send(Err(e));
                            }
                        }
                    }
                }
                Msg::Dropped => {
                    if let Some(l) = live.take() {
                        if !ended {
                            l.close();
                        }
                    }
                    return;
                }
                read => {
                    if let Some(l) = live.as_mut() {
                        l.handle_read(read);
                    }
                }
            }
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
