//! One socket as a driver polls it: being opened, open (bytes queued for it, reads into the
//! driver's buffer), or being closed (flush what is queued, then close, bounded in time).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use faktory_proto::client::ConnectFailure;
use futures_io::{AsyncRead, AsyncWrite};

use crate::lowat::ReadThreshold;
use crate::transport::{BoxStream, Opening};

/// What a poll of a socket's input side brought.
pub(crate) enum Input<'a> {
    /// Nothing yet (the waker is registered).
    Pending,
    /// The socket is open.
    Connected,
    /// Opening it failed.
    ConnectFailed(ConnectFailure),
    /// Bytes from the server (a slice of the driver's read buffer).
    Data(&'a [u8]),
    /// The server closed its side.
    Eof,
    /// Reading failed.
    Error(String),
}

enum State {
    Opening(Opening),
    Open(BoxStream),
    /// EOF or an I/O error was reported (the stream is dropped); the machine will close it.
    Done,
}

/// A socket and the bytes queued for it.
pub(crate) struct Socket {
    state: State,
    out: Bytes,
    needs_flush: bool,
    /// Its receive low-water mark, when it has a handle for it (a worker's socket, on Linux).
    threshold: Option<ReadThreshold>,
}

impl Socket {
    pub(crate) fn opening(opening: Opening) -> Self {
        Socket {
            state: State::Opening(opening),
            out: Bytes::new(),
            needs_flush: false,
            threshold: None,
        }
    }

    /// Queues bytes for the socket: they go out with the next [`Socket::poll_write`], in one write
    /// when the kernel takes them.
    pub(crate) fn queue(&mut self, bytes: Bytes) {
        if self.out.is_empty() {
            self.out = bytes;
        } else {
            let mut joined = BytesMut::with_capacity(self.out.len() + bytes.len());
            joined.extend_from_slice(&self.out);
            joined.extend_from_slice(&bytes);
            self.out = joined.freeze();
        }
    }

    /// Polls the opening, or reads once into `buf`.
    pub(crate) fn poll_input<'a>(&mut self, cx: &mut Context<'_>, buf: &'a mut [u8]) -> Input<'a> {
        match &mut self.state {
            State::Opening(opening) => match opening.as_mut().poll(cx) {
                Poll::Ready(Ok(opened)) => {
                    self.state = State::Open(opened.stream);
                    self.threshold = opened.threshold;
                    Input::Connected
                }
                Poll::Ready(Err(failure)) => {
                    self.state = State::Done;
                    Input::ConnectFailed(failure)
                }
                Poll::Pending => Input::Pending,
            },
            State::Open(stream) => loop {
                // `Pending` only when the stream said so (its waker is registered then): an
                // interrupted read is retried at once.
                break match Pin::new(&mut *stream).poll_read(cx, buf) {
                    Poll::Ready(Ok(0)) => {
                        self.finish();
                        Input::Eof
                    }
                    Poll::Ready(Ok(n)) => Input::Data(buf.get(..n).unwrap_or_default()),
                    Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Poll::Ready(Err(e)) => {
                        self.finish();
                        Input::Error(e.to_string())
                    }
                    Poll::Pending => Input::Pending,
                };
            },
            State::Done => Input::Pending,
        }
    }

    /// Writes what is queued (one write when the kernel takes it all) and flushes. `Err` with the
    /// reason when writing failed (report it to the machine; the socket is done).
    pub(crate) fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<(), String> {
        let State::Open(stream) = &mut self.state else {
            return Ok(());
        };
        match write_out(stream, &mut self.out, &mut self.needs_flush, cx) {
            Poll::Ready(Err(e)) => {
                self.finish();
                Err(e.to_string())
            }
            _ => Ok(()),
        }
    }

    /// Sets the socket's receive low-water mark (see [`ReadThreshold`]), if it has a handle for
    /// it. If the kernel refuses, the handle is dropped and the socket reads as before.
    pub(crate) fn set_read_threshold(&mut self, bytes: usize) {
        if let Some(threshold) = &mut self.threshold {
            if let Err(e) = threshold.set(bytes) {
                tracing::debug!(error = %e, "faktory: the receive low-water mark cannot be set");
                self.threshold = None;
            }
        }
    }

    fn finish(&mut self) {
        self.state = State::Done;
        self.out = Bytes::new();
        self.threshold = None;
    }

    /// The machine closed the socket: what is left to do (flush what is queued, then close), if
    /// anything.
    pub(crate) fn close(self, deadline: Instant) -> Option<Closing> {
        match self.state {
            State::Open(stream) => Some(Closing {
                stream,
                out: self.out,
                needs_flush: self.needs_flush,
                deadline,
            }),
            // Opening: dropping the future aborts it. Done: the peer is gone or the socket broke.
            State::Opening(_) | State::Done => None,
        }
    }
}

/// Writes `out` until it is empty or the socket pushes back, then flushes.
fn write_out(
    stream: &mut BoxStream,
    out: &mut Bytes,
    needs_flush: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    while !out.is_empty() {
        match Pin::new(&mut *stream).poll_write(cx, out) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => {
                out.advance(n.min(out.len()));
                *needs_flush = true;
            }
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
    }
    if *needs_flush {
        match Pin::new(&mut *stream).poll_flush(cx) {
            Poll::Ready(Ok(())) => *needs_flush = false,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
    }
    Poll::Ready(Ok(()))
}

/// A socket the machine closed: its last bytes (END) are flushed, then it is closed, unless its
/// deadline passes first.
pub(crate) struct Closing {
    stream: BoxStream,
    out: Bytes,
    needs_flush: bool,
    deadline: Instant,
}

impl Closing {
    /// When the driver gives up on it.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// `Ready` once it is closed (or failed: nothing more can be done for it).
    pub(crate) fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match write_out(&mut self.stream, &mut self.out, &mut self.needs_flush, cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut self.stream).poll_close(cx).map(|_| ()),
            Poll::Ready(Err(_)) => Poll::Ready(()),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Polls every closing socket; drops those that closed or whose deadline passed.
pub(crate) fn poll_closing(closing: &mut Vec<Closing>, now: Instant, cx: &mut Context<'_>) {
    closing.retain_mut(|c| c.deadline > now && c.poll_close(cx).is_pending());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    use std::task::Waker;

    /// A scripted stream: reads come from `input` (then Pending, or EOF once `eof`); each write
    /// takes at most `take` bytes and is recorded.
    #[derive(Default)]
    struct Mock {
        input: VecDeque<Vec<u8>>,
        eof: bool,
        take: Option<usize>,
        fail_writes: bool,
        stall_writes: bool,
        log: Arc<Mutex<Log>>,
    }

    #[derive(Default, Debug)]
    struct Log {
        writes: Vec<Vec<u8>>,
        flushes: usize,
        closed: bool,
    }

    impl AsyncRead for Mock {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            match self.input.pop_front() {
                Some(chunk) => {
                    buf[..chunk.len()].copy_from_slice(&chunk);
                    Poll::Ready(Ok(chunk.len()))
                }
                None if self.eof => Poll::Ready(Ok(0)),
                None => Poll::Pending,
            }
        }
    }

    impl AsyncWrite for Mock {
        fn poll_write(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            if self.fail_writes {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            if self.stall_writes {
                return Poll::Pending;
            }
            let n = self.take.map_or(buf.len(), |t| t.min(buf.len()));
            self.log.lock().unwrap().writes.push(buf[..n].to_vec());
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.log.lock().unwrap().flushes += 1;
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.log.lock().unwrap().closed = true;
            Poll::Ready(Ok(()))
        }
    }

    fn open(mock: Mock) -> Socket {
        let stream: BoxStream = Box::new(mock);
        let opened = crate::transport::Opened::plain(stream);
        let mut socket = Socket::opening(Box::pin(std::future::ready(Ok(opened))));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(
            socket.poll_input(&mut cx, &mut [0; 16]),
            Input::Connected
        ));
        socket
    }

    #[test]
    fn queued_buffers_go_out_in_one_write() {
        let mock = Mock::default();
        let log = Arc::clone(&mock.log);
        let mut socket = open(mock);
        let mut cx = Context::from_waker(Waker::noop());
        socket.queue(Bytes::from_static(b"ACK {}\r\n"));
        socket.queue(Bytes::from_static(b"FETCH q\r\n"));
        socket.poll_write(&mut cx).unwrap();
        socket.poll_write(&mut cx).unwrap();
        let log = log.lock().unwrap();
        assert_eq!(log.writes, vec![b"ACK {}\r\nFETCH q\r\n".to_vec()]);
        assert_eq!(log.flushes, 1, "one flush per write, none when idle");
    }

    #[test]
    fn a_partial_write_keeps_the_rest_and_close_flushes_it() {
        let mock = Mock {
            take: Some(4),
            ..Mock::default()
        };
        let log = Arc::clone(&mock.log);
        let mut socket = open(mock);
        let mut cx = Context::from_waker(Waker::noop());
        socket.queue(Bytes::from_static(b"END\r\n"));
        socket.queue(Bytes::from_static(b"xyz"));
        // `take` 4: the mock accepts every write partially, so the loop drains it in steps.
        socket.poll_write(&mut cx).unwrap();
        let mut closing = socket
            .close(Instant::now() + std::time::Duration::from_secs(1))
            .unwrap();
        assert!(closing.poll_close(&mut cx).is_ready());
        let log = log.lock().unwrap();
        assert_eq!(log.writes.concat(), b"END\r\nxyz".to_vec());
        assert!(log.closed);
    }

    #[test]
    fn reads_then_eof_then_nothing_to_close() {
        let mock = Mock {
            input: VecDeque::from([b"+OK\r\n".to_vec()]),
            eof: true,
            ..Mock::default()
        };
        let mut socket = open(mock);
        let mut cx = Context::from_waker(Waker::noop());
        let mut buf = [0u8; 64];
        assert!(matches!(
            socket.poll_input(&mut cx, &mut buf),
            Input::Data(b"+OK\r\n")
        ));
        assert!(matches!(socket.poll_input(&mut cx, &mut buf), Input::Eof));
        assert!(matches!(
            socket.poll_input(&mut cx, &mut buf),
            Input::Pending
        ));
        socket.queue(Bytes::from_static(b"late"));
        socket.poll_write(&mut cx).unwrap();
        assert!(
            socket.close(Instant::now()).is_none(),
            "a finished socket is just dropped"
        );
    }

    #[test]
    fn write_errors_and_connect_failures_are_reported() {
        let mock = Mock {
            fail_writes: true,
            ..Mock::default()
        };
        let mut socket = open(mock);
        let mut cx = Context::from_waker(Waker::noop());
        socket.queue(Bytes::from_static(b"INFO\r\n"));
        assert!(socket.poll_write(&mut cx).is_err());
        assert!(matches!(
            socket.poll_input(&mut cx, &mut [0; 8]),
            Input::Pending
        ));

        let failure =
            ConnectFailure::transient(faktory_proto::client::ConnectPhase::Tcp, "refused");
        let mut socket = Socket::opening(Box::pin(std::future::ready(Err(failure.clone()))));
        match socket.poll_input(&mut cx, &mut [0; 8]) {
            Input::ConnectFailed(f) => assert_eq!(f, failure),
            _ => panic!("expected the connect failure"),
        }
        assert!(socket.close(Instant::now()).is_none());
    }

    #[test]
    fn closing_sockets_are_dropped_at_their_deadline() {
        let mut cx = Context::from_waker(Waker::noop());
        let now = Instant::now();
        let stuck = Mock {
            stall_writes: true,
            ..Mock::default()
        };
        let mut socket = open(stuck);
        socket.queue(Bytes::from_static(b"END\r\n"));
        let deadline = now + std::time::Duration::from_secs(1);
        let mut closing: Vec<Closing> = socket.close(deadline).into_iter().collect();
        poll_closing(&mut closing, now, &mut cx);
        assert_eq!(closing.len(), 1, "still flushing before its deadline");
        assert_eq!(closing[0].deadline(), deadline);
        poll_closing(&mut closing, deadline, &mut cx);
        assert!(closing.is_empty(), "at its deadline: given up");
    }
}
