//! The task that owns one socket and its `faktory_proto::client::Connection`.
//!
//! It moves bytes between the two, sleeps until the machine's deadline, and hands each reply to the
//! caller that is waiting for it. Concurrent calls share the connection by pipelining: every request
//! waiting in the channel is encoded into one write. All protocol decisions are the machine's.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use faktory_proto::adapter::Calls;
use faktory_proto::backoff::{Backoff, BackoffConfig};
use faktory_proto::client::{ClientOptions, Connection, ConnectionError, Event, Reply};
use faktory_proto::command::Command;
use faktory_proto::ops;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::error::Error;
use crate::transport::{BoxStream, Target};

/// What a call gets back: the server's reply (or its error), or why there was none.
pub(crate) use faktory_proto::adapter::CallResult;

/// One call waiting in the channel.
pub(crate) struct Request {
    pub(crate) command: Command,
    pub(crate) reply: oneshot::Sender<CallResult>,
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
        let conn = Connection::new(self.options.clone(), Instant::now().into_std());
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
    async fn reconnect(&mut self, backoff: &mut Backoff, deadline: Instant) -> Result<Live, Error> {
        loop {
            let error = match tokio::time::timeout_at(deadline, self.connect()).await {
                Ok(Ok(live)) => {
                    backoff.reset();
                    return Ok(live);
                }
                Ok(Err(e)) => e,
                Err(_) => return Err(Error::ConnectTimeout(self.describe())),
            };
            let retry = error.is_transient_connect() && matches!(self.source, Source::Target(_));
            let delay = backoff.next_delay();
            if !retry || Instant::now() + delay >= deadline {
                return Err(error);
            }
            tracing::debug!(server = %self.describe(), %error, ?delay, "faktory reconnect failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }
}

/// A handshaken connection and its socket.
pub(crate) struct Live {
    conn: Connection,
    reader: ReadHalf<BoxStream>,
    writer: WriteHalf<BoxStream>,
    rbuf: BytesMut,
    out: Bytes,
    calls: Calls<oneshot::Sender<CallResult>>,
}

#[allow(clippy::large_enum_variant)] // a short-lived stack value, moved once
enum Step {
    Io,
    Request(Option<Request>),
}

impl Live {
    fn new(stream: BoxStream, conn: Connection) -> Self {
        let (reader, writer) = tokio::io::split(stream);
        Live {
            conn,
            reader,
            writer,
            rbuf: BytesMut::with_capacity(16 * 1024),
            out: Bytes::new(),
            calls: Calls::new(),
        }
    }

    /// Waits for one thing to happen: bytes in, bytes out, a deadline, or (when given) a request.
    async fn step(&mut self, rx: Option<&mut mpsc::UnboundedReceiver<Request>>) -> Step {
        if self.out.is_empty() {
            if let Some(bytes) = self.conn.poll_transmit() {
                if tracing::enabled!(tracing::Level::TRACE) {
                    tracing::trace!(wire = %ops::wire_for_log(&bytes), "faktory send");
                }
                self.out = bytes;
            }
        }
        if self.rbuf.capacity() - self.rbuf.len() < 4096 {
            self.rbuf.reserve(16 * 1024);
        }
        let deadline = self.conn.poll_timeout();
        let far = Instant::now() + Duration::from_secs(3600);
        let recv = async {
            match rx {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            read = self.reader.read_buf(&mut self.rbuf) => {
                let now = Instant::now().into_std();
                match read {
                    Ok(0) => self.conn.handle_eof(now),
                    Ok(_) => {
                        if tracing::enabled!(tracing::Level::TRACE) {
                            tracing::trace!(wire = %ops::wire_for_log(&self.rbuf), "faktory recv");
                        }
                        self.conn.handle_input(&self.rbuf, now);
                        self.rbuf.clear();
                    }
                    Err(e) => self.conn.handle_io_error(&e),
                }
                Step::Io
            }
            written = self.writer.write(&self.out), if !self.out.is_empty() => {
                match written {
                    Ok(0) => self.conn.handle_io_error(&std::io::ErrorKind::WriteZero.into()),
                    Ok(n) => self.out.advance(n),
                    Err(e) => self.conn.handle_io_error(&e),
                }
                Step::Io
            }
            () = tokio::time::sleep_until(deadline.map_or(far, Instant::from_std)), if deadline.is_some() => {
                self.conn.handle_timeout(Instant::now().into_std());
                Step::Io
            }
            request = recv => Step::Request(request),
        }
    }

    fn submit(&mut self, request: Request) {
        let Request { command, reply } = request;
        if let Some((w, r)) =
            self.calls
                .submit(&mut self.conn, &command, reply, Instant::now().into_std())
        {
            let _ = w.send(r);
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

    /// Sends END and flushes, bounded in time; used when every `Client` handle is gone.
    async fn close(mut self) {
        if self
            .conn
            .send(&Command::End, Instant::now().into_std())
            .is_ok()
        {
            let mut out = std::mem::take(&mut self.out).to_vec();
            while let Some(b) = self.conn.poll_transmit() {
                out.extend_from_slice(&b);
            }
            let flush = async {
                self.writer.write_all(&out).await?;
                self.writer.shutdown().await
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), flush).await;
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
pub(crate) async fn run(
    mut rx: mpsc::UnboundedReceiver<Request>,
    mut connector: Connector,
    first: Live,
) {
    let mut live = Some(first);
    let mut backoff = Backoff::new(BackoffConfig::default(), seed());
    loop {
        let Some(l) = live.as_mut() else {
            let Some(request) = rx.recv().await else {
                return;
            };
            if !request.command.expects_reply() {
                let _ = request.reply.send(Ok(Ok(Reply::Ok)));
                continue;
            }
            let deadline = Instant::now() + connector.request_timeout;
            match connector.reconnect(&mut backoff, deadline).await {
                Ok(mut fresh) => {
                    fresh.submit(request);
                    live = Some(fresh);
                }
                Err(e) => {
                    let _ = request.reply.send(Err(e));
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
