//! The client's task: one per client, driving a [`Session`]. It takes calls from the channel,
//! opens and closes the socket the session asks for, moves bytes, sleeps until the session's
//! deadline and hands each answer to its caller. Every decision is the session's.

use std::collections::HashMap;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use faktory_proto::api::{self, CallResult, Error, ReadBuffer};
use faktory_proto::client::{ConnectFailure, ConnectPhase};
use faktory_proto::command::Command;
use faktory_proto::session::{CallId, Event, Session};
use futures_channel::{mpsc, oneshot};
use futures_core::Stream;

use crate::runtime::{self, Runtime, Timer};
use crate::socket::{Closing, Input, Socket, poll_closing};
use crate::transport::{BoxStream, Dialer, Opened, Opening};

/// What a caller asks of the session.
// Moved once, into the channel's node: boxing the command would cost an allocation per call.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Op {
    /// A request.
    Call(Command),
    /// Connect now (the builder's eager connect).
    Connect,
    /// END and close.
    Close,
}

/// One message on the channel: what to do and where the answer goes.
pub(crate) struct Call {
    pub(crate) op: Op,
    pub(crate) reply: oneshot::Sender<CallResult>,
}

/// Where sockets come from.
pub(crate) enum Source<R: Runtime> {
    /// Dial the server (again after a drop).
    Dial(Arc<Dialer<R>>),
    /// The stream the user gave, used once (the session does not reconnect).
    Stream(Option<BoxStream>),
}

/// How long a socket the session closed may take to flush its last bytes (END).
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the task keeps going once every `Client` handle is gone (END, then the server's EOF).
const DROP_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Turns with progress per poll before the task yields to the runtime.
const TURNS_PER_POLL: usize = 32;

/// Runs the client's task until the session is closed (or, once every handle is gone, for at most
/// [`DROP_CLOSE_TIMEOUT`]).
pub(crate) async fn run<R: Runtime>(
    rt: R,
    session: Session,
    calls: mpsc::UnboundedReceiver<Call>,
    source: Source<R>,
) {
    let mut driver = Driver {
        rt,
        session,
        calls: Some(calls),
        waiting: HashMap::new(),
        source,
        socket: None,
        closing: Vec::new(),
        timer: Timer::new(),
        rbuf: ReadBuffer::new(),
        give_up_at: None,
        closed: false,
    };
    poll_fn(|cx| driver.poll(cx)).await;
    tracing::debug!(server = %driver.session.server(), "faktory client task finished");
}

struct Driver<R: Runtime> {
    rt: R,
    session: Session,
    /// `None` once every `Client` handle is gone.
    calls: Option<mpsc::UnboundedReceiver<Call>>,
    waiting: HashMap<CallId, oneshot::Sender<CallResult>>,
    source: Source<R>,
    socket: Option<Socket>,
    closing: Vec<Closing>,
    timer: Timer<R>,
    rbuf: ReadBuffer,
    give_up_at: Option<Instant>,
    closed: bool,
}

impl<R: Runtime> Driver<R> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        for _ in 0..TURNS_PER_POLL {
            let now = Instant::now();
            // 1. Inputs: every call waiting (so they all go out in the next write), the socket, time.
            let mut progress = self.take_calls(cx, now);
            progress |= self.read(cx, now);
            if self.session.poll_timeout().is_some_and(|t| t <= now) {
                self.session.handle_timeout(now);
                progress = true;
            }
            // 2. Outputs: bytes first (a Disconnect comes after the last bytes for its socket).
            while let Some(bytes) = self.session.poll_transmit() {
                if tracing::enabled!(tracing::Level::TRACE) {
                    tracing::trace!(wire = %api::wire_for_log(&bytes), "faktory send");
                }
                if let Some(socket) = &mut self.socket {
                    socket.queue(bytes);
                }
            }
            while let Some(event) = self.session.poll_event() {
                // A new socket's opening future must be polled (that registers its wake-up).
                progress |= matches!(event, Event::Connect);
                self.handle_event(event, now);
            }
            // 3. One write per socket.
            if let Some(socket) = &mut self.socket {
                if let Err(reason) = socket.poll_write(cx) {
                    self.session.handle_transport_error(&reason, now);
                    progress = true;
                }
            }
            poll_closing(&mut self.closing, now, cx);
            if self.closed && self.closing.is_empty() {
                return Poll::Ready(());
            }
            if self.give_up_at.is_some_and(|t| t <= now) {
                tracing::debug!(server = %self.session.server(), "faktory client: closing took too long; giving up");
                self.answer_waiting();
                return Poll::Ready(());
            }
            if progress {
                continue;
            }
            // 4. Sleep until the next deadline (or until a call, bytes or a socket wake the task).
            let mut deadline = runtime::earliest(self.session.poll_timeout(), self.give_up_at);
            for c in &self.closing {
                deadline = runtime::earliest(deadline, Some(c.deadline()));
            }
            match deadline {
                Some(at) if self.timer.poll_at(&self.rt, at, cx).is_ready() => continue,
                _ => return Poll::Pending,
            }
        }
        // Plenty done: let the runtime run other tasks, then continue.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Hands every call waiting in the channel to the session.
    fn take_calls(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let Some(calls) = &mut self.calls else {
            return false;
        };
        let mut progress = false;
        loop {
            match Pin::new(&mut *calls).poll_next(cx) {
                Poll::Ready(Some(Call { op, reply })) => {
                    let id = match op {
                        Op::Call(command) => self.session.call(command, now),
                        Op::Connect => self.session.connect(now),
                        Op::Close => self.session.close(now),
                    };
                    self.waiting.insert(id, reply);
                    progress = true;
                }
                Poll::Ready(None) => {
                    // Every `Client` handle is gone: say END and close, within a bound.
                    self.calls = None;
                    if !self.closed {
                        let _ = self.session.close(now);
                    }
                    self.give_up_at = Some(runtime::after(now, DROP_CLOSE_TIMEOUT));
                    return true;
                }
                Poll::Pending => return progress,
            }
        }
    }

    /// Polls the socket being opened, or reads once.
    fn read(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let Some(socket) = &mut self.socket else {
            return false;
        };
        let mut read = 0;
        match socket.poll_input(cx, self.rbuf.space()) {
            Input::Pending => return false,
            Input::Connected => {
                tracing::debug!(server = %self.session.server(), "faktory socket open");
                self.session.handle_connected(now);
            }
            Input::ConnectFailed(failure) => self.session.handle_connect_failed(failure, now),
            Input::Data(data) => {
                if tracing::enabled!(tracing::Level::TRACE) {
                    tracing::trace!(wire = %api::wire_for_log(data), "faktory recv");
                }
                read = data.len();
                self.session.handle_input(data, now);
            }
            Input::Eof => self.session.handle_eof(now),
            Input::Error(reason) => self.session.handle_transport_error(&reason, now),
        }
        self.rbuf.read(read);
        true
    }

    fn handle_event(&mut self, event: Event, now: Instant) {
        let server = self.session.server();
        match event {
            Event::Connect => {
                tracing::debug!(%server, "faktory connecting");
                let opening: Opening = match &mut self.source {
                    Source::Dial(dialer) => dialer.dial(false),
                    Source::Stream(stream) => {
                        let stream = stream.take().ok_or_else(|| {
                            ConnectFailure::permanent(
                                ConnectPhase::Tcp,
                                "the user-supplied stream is gone (no reconnect)",
                            )
                        });
                        Box::pin(std::future::ready(stream.map(Opened::plain)))
                    }
                };
                self.socket = Some(Socket::opening(opening));
            }
            Event::Disconnect => {
                tracing::debug!(%server, "faktory socket closed");
                if let Some(socket) = self.socket.take() {
                    let deadline = runtime::after(now, CLOSE_FLUSH_TIMEOUT);
                    self.closing.extend(socket.close(deadline));
                }
            }
            Event::Ready => tracing::debug!(%server, "faktory connection ready"),
            Event::ConnectFailed { error, retry_at } => {
                let retry_in = retry_at.map(|t| t.saturating_duration_since(now));
                tracing::info!(%server, %error, ?retry_in, "faktory connect failed");
            }
            Event::Answer { call, result } => {
                if let Some(reply) = self.waiting.remove(&call) {
                    let _ = reply.send(result);
                }
            }
            Event::Closed => {
                self.closed = true;
                self.answer_waiting();
            }
            _ => {}
        }
    }

    /// Answers every call still waiting with [`Error::Closed`] (the session answers each call, so
    /// this only matters when the task gives up).
    fn answer_waiting(&mut self) {
        for (_, reply) in self.waiting.drain() {
            let _ = reply.send(Err(Error::Closed));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::mpsc as std_mpsc;
    use std::time::Duration;

    use faktory_proto::client::{ConnectPhase, ConnectionError};
    use futures_lite::future::block_on;

    use crate::testrt::TestRt;
    use crate::{Client, ClientBuilder, Error, Job};

    /// A server without a password: +OK to HELLO and PUSH, a JSON document to INFO, closes on END;
    /// reports every line and the EOF it saw.
    fn server() -> (u16, std_mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = std_mpsc::channel();
        std::thread::spawn(move || {
            while let Ok((mut sock, _)) = listener.accept() {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let _ = sock.write_all(b"+HI {\"v\":2}\r\n");
                    let mut lines = BufReader::new(sock.try_clone().unwrap());
                    let mut line = String::new();
                    while lines.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                        let verb = line.split_whitespace().next().unwrap_or("").to_owned();
                        let _ = tx.send(verb.clone());
                        let reply: &[u8] = match verb.as_str() {
                            "END" => break,
                            "INFO" => b"$26\r\n{\"faktory\":{},\"server\":{}}\r\n",
                            _ => b"+OK\r\n",
                        };
                        let _ = sock.write_all(reply);
                        line.clear();
                    }
                    let _ = tx.send("EOF".to_owned());
                });
            }
        });
        (port, rx)
    }

    fn next(seen: &std_mpsc::Receiver<String>) -> String {
        seen.recv_timeout(Duration::from_secs(5)).unwrap()
    }

    #[test]
    fn calls_pipeline_close_says_end_and_later_calls_fail() {
        let (port, seen) = server();
        block_on(async {
            let c = Client::<TestRt>::connect_to(&format!("tcp://127.0.0.1:{port}"))
                .await
                .unwrap();
            assert_eq!(next(&seen), "HELLO");
            let (a, b) = futures_lite::future::zip(c.push(Job::new("A", vec![])), c.info()).await;
            a.unwrap();
            b.unwrap();
            assert_eq!(next(&seen), "PUSH");
            assert_eq!(next(&seen), "INFO");
            c.close().await.unwrap();
            assert_eq!(next(&seen), "END");
            assert_eq!(next(&seen), "EOF");
            assert!(matches!(c.info().await, Err(Error::Closed)));
            assert!(matches!(c.close().await, Err(Error::Closed)));
            assert!(format!("{c:?}").contains("closed: true"));
        });
    }

    #[test]
    fn dropping_the_last_handle_says_end() {
        let (port, seen) = server();
        block_on(async {
            let c = ClientBuilder::with_runtime(TestRt::default())
                .url(&format!("tcp://127.0.0.1:{port}"))
                .unwrap()
                .connect()
                .await
                .unwrap();
            let clone = c.clone();
            drop(c);
            clone.push(Job::new("A", vec![])).await.unwrap();
            drop(clone);
        });
        assert_eq!(next(&seen), "HELLO");
        assert_eq!(next(&seen), "PUSH");
        assert_eq!(next(&seen), "END");
        assert_eq!(next(&seen), "EOF");
    }

    #[test]
    fn a_refused_connect_is_a_typed_error_and_beat_needs_a_wid() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let err = block_on(Client::<TestRt>::connect_to(&format!(
            "tcp://127.0.0.1:{port}"
        )))
        .unwrap_err();
        assert!(
            matches!(
                &err,
                Error::Connection { source: ConnectionError::Connect(f), server }
                    if f.phase == ConnectPhase::Tcp && server == &format!("127.0.0.1:{port}")
            ),
            "{err:?}"
        );
        let (port, _seen) = server();
        block_on(async {
            let c = Client::<TestRt>::connect_to(&format!("tcp://127.0.0.1:{port}"))
                .await
                .unwrap();
            assert!(matches!(c.beat(None, None).await, Err(Error::Usage(_))));
        });
    }
}
