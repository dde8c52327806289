//! The task that owns one socket and its `faktory_proto::client::Connection`.
//!
//! It moves bytes between the two, sleeps until the machine's deadline, and hands each reply to the
//! caller that is waiting for it. Concurrent calls share the connection by pipelining: every request
//! waiting in the channel is encoded into one write. All protocol decisions are the machine's.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_io::Timer;
use bytes::{Buf, Bytes};
use faktory_proto::adapter::Calls;
use faktory_proto::backoff::{Backoff, BackoffConfig};
use faktory_proto::client::{ClientOptions, Connection, ConnectionError, Event, Reply};
use faktory_proto::command::Command;
use faktory_proto::ops;
use futures_io::{AsyncRead, AsyncWrite};
use futures_lite::{AsyncWriteExt, Stream, StreamExt};

use crate::error::Error;
use crate::rt;
use crate::transport::{BoxStream, Target};

/// What a call gets back: the server's reply (or its error), or why there was none.
pub(crate) use faktory_proto::adapter::CallResult;

/// Where a call's reply goes (a channel of capacity 1, used once).
pub(crate) type ReplyTx = async_channel::Sender<CallResult>;

/// The connection task's end of the request channel.
pub(crate) type RequestRx = Pin<Box<async_channel::Receiver<Request>>>;

/// One call waiting in the channel.
pub(crate) struct Request {
    pub(crate) command: Command,
    pub(crate) reply: ReplyTx,
}

/// Where connections come from.
pub(crate) enum Source {
    /// Dial this address (again after a drop).
    Target(Target),
    /// A stream the user gave: used once, never re-opened.
    Stream(Option<BoxStream>),
}

/// Opens connections and carries them through the handshake.
pub(crate) struct Connector {
    pub(crate) source: Source,
    pub(crate) options: ClientOptions,
    /// How long a call may spend reconnecting before it fails.
    pub(crate) request_timeout: Duration,
}

impl Connector {
    fn describe(&self) -> String {
        match &self.source {
            Source::Target(t) => t.authority(),
            Source::Stream(_) => "user-supplied stream".to_owned(),
        }
    }

    /// One connection attempt, through the handshake.
    pub(crate) async fn connect(&mut self) -> Result<Live, Error> {
        let stream = match &mut self.source {
            Source::Target(t) => t.open().await?,
            Source::Stream(s) => s.take().ok_or(Error::Connection(ConnectionError::Eof))?,
        };
        let conn = Connection::new(self.options.clone(), Instant::now());
        let mut live = Live::new(stream, conn);
        loop {
            live.step(None).await;
            while let Some(event) = live.conn.poll_event() {
                match event {
                    Event::Ready => {
                        tracing::debug!(server = %self.describe(), "faktory connection ready");
                        return Ok(live);
                    }
                    Event::Closed { error, .. } => {
                        let error = error.unwrap_or(ConnectionError::Eof);
                        tracing::debug!(server = %self.describe(), %error, "faktory handshake failed");
                        return Err(error.into());
                    }
                    _ => {}
                }
            }
        }
    }

    /// Connects, retrying transient failures with backoff until `deadline`.
    async fn reconnect(
        &mut self,
        backoff: &mut Backoff,
        deadline: Option<Instant>,
    ) -> Result<Live, Error> {
        loop {
            let error = match rt::timeout_at(deadline, self.connect()).await {
                Ok(Ok(live)) => {
                    backoff.reset();
                    return Ok(live);
                }
                Ok(Err(e)) => e,
                Err(rt::Elapsed) => return Err(Error::ConnectTimeout(self.describe())),
            };
            let retry = error.is_transient_connect() && matches!(self.source, Source::Target(_));
            let delay = backoff.next_delay();
            let too_late = deadline.is_some_and(|d| {
                Instant::now()
                    .checked_add(delay)
                    .is_none_or(|retry_at| retry_at >= d)
            });
            if !retry || too_late {
                return Err(error);
            }
            tracing::debug!(server = %self.describe(), %error, ?delay, "faktory reconnect failed; retrying");
            Timer::after(delay).await;
        }
    }
}

/// A handshaken connection and its socket.
pub(crate) struct Live {
    /// Boxed: the machine is large, and every future that holds a `Live` would carry it.
    conn: Box<Connection>,
    stream: BoxStream,
    rbuf: Vec<u8>,
    out: Bytes,
    /// Bytes were written since the last flush (TLS and user streams may buffer).
    needs_flush: bool,
    timer: Timer,
    calls: Calls<ReplyTx>,
}

#[allow(clippy::large_enum_variant)] // a short-lived stack value, moved once
enum Step {
    Io,
    Request(Option<Request>),
}

impl Live {
    fn new(stream: BoxStream, conn: Connection) -> Self {
        Live {
            conn: Box::new(conn),
            stream,
            rbuf: vec![0; 16 * 1024],
            out: Bytes::new(),
            needs_flush: false,
            timer: Timer::never(),
            calls: Calls::new(),
        }
    }

    /// Waits for one thing to happen: bytes in, bytes out, a deadline, or (when given) a request.
    async fn step(&mut self, mut rx: Option<&mut RequestRx>) -> Step {
        if self.out.is_empty() {
            if let Some(bytes) = self.conn.poll_transmit() {
                if tracing::enabled!(tracing::Level::TRACE) {
                    tracing::trace!(wire = %ops::wire_for_log(&bytes), "faktory send");
                }
                self.out = bytes;
            }
        }
        let deadline = self.conn.poll_timeout();
        if let Some(at) = deadline {
            self.timer.set_at(at);
        }
        poll_fn(|cx| self.poll_step(cx, deadline.is_some(), rx.as_deref_mut())).await
    }

    /// One poll of [`Live::step`], in priority order: read, write (then flush), deadline, request.
    fn poll_step(
        &mut self,
        cx: &mut Context<'_>,
        timed: bool,
        rx: Option<&mut RequestRx>,
    ) -> Poll<Step> {
        match Pin::new(&mut self.stream).poll_read(cx, &mut self.rbuf) {
            Poll::Ready(Ok(0)) => {
                self.conn.handle_eof(Instant::now());
                return Poll::Ready(Step::Io);
            }
            Poll::Ready(Ok(n)) => {
                let data = self.rbuf.get(..n).unwrap_or_default();
                if tracing::enabled!(tracing::Level::TRACE) {
                    tracing::trace!(wire = %ops::wire_for_log(data), "faktory recv");
                }
                self.conn.handle_input(data, Instant::now());
                return Poll::Ready(Step::Io);
            }
            Poll::Ready(Err(e)) => {
                self.conn.handle_io_error(&e);
                return Poll::Ready(Step::Io);
            }
            Poll::Pending => {}
        }
        if !self.out.is_empty() {
            match Pin::new(&mut self.stream).poll_write(cx, &self.out) {
                Poll::Ready(Ok(0)) => {
                    self.conn
                        .handle_io_error(&std::io::ErrorKind::WriteZero.into());
                    return Poll::Ready(Step::Io);
                }
                Poll::Ready(Ok(n)) => {
                    self.out.advance(n.min(self.out.len()));
                    self.needs_flush = true;
                    return Poll::Ready(Step::Io);
                }
                Poll::Ready(Err(e)) => {
                    self.conn.handle_io_error(&e);
                    return Poll::Ready(Step::Io);
                }
                Poll::Pending => {}
            }
        } else if self.needs_flush {
            match Pin::new(&mut self.stream).poll_flush(cx) {
                Poll::Ready(Ok(())) => {
                    self.needs_flush = false;
                    return Poll::Ready(Step::Io);
                }
                Poll::Ready(Err(e)) => {
                    self.conn.handle_io_error(&e);
                    return Poll::Ready(Step::Io);
                }
                Poll::Pending => {}
            }
        }
        if timed && Pin::new(&mut self.timer).poll(cx).is_ready() {
            self.conn.handle_timeout(Instant::now());
            return Poll::Ready(Step::Io);
        }
        if let Some(rx) = rx {
            if let Poll::Ready(request) = rx.as_mut().poll_next(cx) {
                return Poll::Ready(Step::Request(request));
            }
        }
        Poll::Pending
    }

    fn submit(&mut self, request: Request) {
        let Request { command, reply } = request;
        if let Some((w, r)) = self
            .calls
            .submit(&mut self.conn, &command, reply, Instant::now())
        {
            let _ = w.try_send(r);
        }
    }

    /// Hands out replies; returns `false` once the connection is finished.
    fn dispatch(&mut self) -> bool {
        match self.calls.dispatch(&mut self.conn, |w, r| {
            let _ = w.try_send(r);
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

    /// Sends END and flushes, bounded in time; used when every `Client` handle is gone.
    async fn close(mut self) {
        if self.conn.send(&Command::End, Instant::now()).is_ok() {
            let mut out = std::mem::take(&mut self.out).to_vec();
            while let Some(b) = self.conn.poll_transmit() {
                out.extend_from_slice(&b);
            }
            let stream = &mut self.stream;
            let flush = async {
                stream.write_all(&out).await?;
                stream.close().await
            };
            let _ = rt::timeout(Duration::from_secs(1), flush).await;
        }
    }
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ u64::from(std::process::id()).rotate_left(32)
}

/// The connection task: runs until every `Client` handle is dropped.
pub(crate) async fn run(mut rx: RequestRx, mut connector: Connector, first: Live) {
    let mut live = Some(first);
    let mut backoff = Backoff::new(BackoffConfig::default(), seed());
    loop {
        let Some(l) = live.as_mut() else {
            let Some(request) = rx.next().await else {
                return;
            };
            if !request.command.expects_reply() {
                let _ = request.reply.try_send(Ok(Ok(Reply::Ok)));
                continue;
            }
            let deadline = rt::deadline_after(connector.request_timeout);
            match connector.reconnect(&mut backoff, deadline).await {
                Ok(mut fresh) => {
                    fresh.submit(request);
                    live = Some(fresh);
                }
                Err(e) => {
                    let _ = request.reply.try_send(Err(e));
                }
            }
            continue;
        };
        match l.step(Some(&mut rx)).await {
            Step::Io => {}
            Step::Request(Some(request)) => {
                l.submit(request);
                while let Ok(more) = rx.try_recv() {
                    l.submit(more);
                }
            }
            Step::Request(None) => {
                if let Some(l) = live.take() {
                    l.close().await;
                }
                return;
            }
        }
        if !l.dispatch() {
            live = None;
        }
    }
}
