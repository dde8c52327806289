//! One socket as a driver polls it: being opened, open (bytes queued for it, reads into the
//! driver's buffer), or being closed (flush what is queued, then close, bounded in time).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use faktory_proto::client::ConnectFailure;
use futures_io::{AsyncRead, AsyncWrite};

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
}

impl Socket {
    pub(crate) fn opening(opening: Opening) -> Self {
        Socket {
            state: State::Opening(opening),
            out: Bytes::new(),
            needs_flush: false,
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
                Poll::Ready(Ok(stream)) => {
                    self.state = State::Open(stream);
                    Input::Connected
                }
                Poll::Ready(Err(failure)) => {
                    self.state = State::Done;
                    Input::ConnectFailed(failure)
                }
                Poll::Pending => Input::Pending,
            },
            State::Open(stream) => match Pin::new(stream).poll_read(cx, buf) {
                Poll::Ready(Ok(0)) => {
                    self.finish();
                    Input::Eof
                }
                Poll::Ready(Ok(n)) => Input::Data(buf.get(..n).unwrap_or_default()),
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => Input::Pending,
                Poll::Ready(Err(e)) => {
                    self.finish();
                    Input::Error(e.to_string())
                }
                Poll::Pending => Input::Pending,
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

    fn finish(&mut self) {
        self.state = State::Done;
        self.out = Bytes::new();
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
