//! The runtime trait: what the client and the worker need from an async runtime, and helpers the
//! runtime implementations share (socket options) or the drivers use (deadlines, a re-armable
//! timer).

use std::fmt::Debug;
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// What [`Client`](crate::Client) and [`Worker`](crate::Worker) need from an async runtime: spawn a
/// task, run a closure on a thread that may block, sleep until an instant, open a TCP connection.
///
/// Everything else (resolving host names, socket options, TLS, the protocol) is done once in this
/// crate. `faktory-tokio` and `faktory-async-std` implement it in a few dozen lines; implement it
/// yourself to run on another runtime.
///
/// ```
/// use std::future::Future;
/// use std::net::SocketAddr;
/// use std::time::Instant;
///
/// /// A runtime on async-io's reactor and async-global-executor's thread pool.
/// #[derive(Clone, Debug, Default)]
/// struct Global;
///
/// impl faktory_async::Runtime for Global {
///     type Tcp = async_net::TcpStream;
///     type Sleep = async_io::Timer;
///
///     fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
///         async_global_executor::spawn(task).detach();
///     }
///
///     fn spawn_blocking<T: Send + 'static>(
///         &self,
///         f: impl FnOnce() -> T + Send + 'static,
///     ) -> impl Future<Output = Option<T>> + Send + 'static {
///         let task = blocking::unblock(f);
///         async move { Some(task.await) }
///     }
///
///     fn sleep_until(&self, deadline: Instant) -> async_io::Timer {
///         async_io::Timer::at(deadline)
///     }
///
///     fn connect_tcp(
///         &self,
///         addr: SocketAddr,
///     ) -> impl Future<Output = std::io::Result<async_net::TcpStream>> + Send + 'static {
///         async move {
///             let stream = async_net::TcpStream::connect(addr).await?;
///             faktory_async::configure_tcp(&stream)?;
///             Ok(stream)
///         }
///     }
/// }
///
/// // Then: faktory_async::Client::<Global>::connect_to("tcp://localhost:7419").await
/// ```
pub trait Runtime: Clone + Debug + Send + Sync + 'static {
    /// A connected TCP stream, with the futures-io traits (tokio's through
    /// `tokio_util::compat`).
    type Tcp: futures_io::AsyncRead + futures_io::AsyncWrite + Send + Unpin + 'static;

    /// A timer that completes at an instant (its output is ignored: tokio's `Sleep` gives `()`,
    /// `async_io::Timer` the instant it fired).
    type Sleep: Future + Send + 'static;

    /// Runs `task` in the background, to completion (the crate stops its own tasks when it needs
    /// to).
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static);

    /// Runs `f` on a thread where blocking is fine (blocking job handlers, DNS resolution). `None`
    /// when the runtime dropped it before it ran to completion (the crate catches panics itself).
    fn spawn_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> impl Future<Output = Option<T>> + Send + 'static;

    /// A timer that completes at `deadline` (at once if it has passed).
    fn sleep_until(&self, deadline: Instant) -> Self::Sleep;

    /// Moves a timer made by [`Runtime::sleep_until`] to a new deadline (completed or not). The
    /// default replaces it; runtimes whose timers can be re-armed in place should do that.
    fn reset_sleep(&self, mut sleep: Pin<&mut Self::Sleep>, deadline: Instant) {
        sleep.set(self.sleep_until(deadline));
    }

    /// The socket of a connected TCP stream, for options set after connecting: a worker sets its
    /// receive low-water mark, so that the `+OK` of an ACK does not wake it before the job
    /// behind it arrives (Linux; see `faktory_proto::worker`, "Reading less often"). The
    /// default, `None`, leaves the socket alone.
    #[cfg(unix)]
    fn tcp_socket(tcp: &Self::Tcp) -> Option<std::os::fd::BorrowedFd<'_>> {
        let _ = tcp;
        None
    }

    /// Opens a TCP connection to `addr`. Implementations should call [`configure_tcp`] on the
    /// connected socket.
    fn connect_tcp(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = io::Result<Self::Tcp>> + Send + 'static;

    /// The process's termination requests, one item per signal: SIGTERM (what systemd, Docker and
    /// Kubernetes send) and SIGINT (Ctrl-C) on Unix. A [`Worker`](crate::Worker) that handles
    /// signals (the default) shuts down gracefully on the first and stops waiting for running jobs
    /// on the second. `None` (the default implementation): the runtime cannot listen for signals.
    /// Build one with [`termination_signals`].
    fn termination_signals(&self) -> Option<TerminationSignals> {
        None
    }
}

/// A stream of termination requests (see [`Runtime::termination_signals`]).
pub type TerminationSignals = Pin<Box<dyn futures_core::Stream<Item = ()> + Send + 'static>>;

/// Makes [`TerminationSignals`] from a poll function: `Ready(Some(()))` for each signal,
/// `Ready(None)` when no more can come, `Pending` (with the waker registered) otherwise.
pub fn termination_signals(
    poll: impl FnMut(&mut Context<'_>) -> Poll<Option<()>> + Send + 'static,
) -> TerminationSignals {
    // Boxed, so the closure never has to be pinned in place.
    struct PollFn<F>(Box<F>);
    impl<F: FnMut(&mut Context<'_>) -> Poll<Option<()>>> futures_core::Stream for PollFn<F> {
        type Item = ();
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
            (self.0)(cx)
        }
    }
    Box::pin(PollFn(Box::new(poll)))
}

/// How long a TCP connection may stay idle before the OS starts probing the peer.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);

/// Sets the socket options every Faktory connection wants: `TCP_NODELAY` (Faktory is
/// request/reply: Nagle's algorithm would hold back every pipelined write until the previous one
/// is acknowledged) and TCP keepalive after 60 s idle (a producer's connection may stay idle for
/// hours and the server never closes it; only keepalive notices a peer that vanished).
#[cfg(unix)]
pub fn configure_tcp<S: std::os::fd::AsFd>(socket: &S) -> io::Result<()> {
    set_options(&socket2::SockRef::from(socket))
}

/// Sets the socket options every Faktory connection wants: `TCP_NODELAY` (Faktory is
/// request/reply: Nagle's algorithm would hold back every pipelined write until the previous one
/// is acknowledged) and TCP keepalive after 60 s idle (a producer's connection may stay idle for
/// hours and the server never closes it; only keepalive notices a peer that vanished).
#[cfg(windows)]
pub fn configure_tcp<S: std::os::windows::io::AsSocket>(socket: &S) -> io::Result<()> {
    set_options(&socket2::SockRef::from(socket))
}

fn set_options(socket: &socket2::SockRef<'_>) -> io::Result<()> {
    socket.set_tcp_nodelay(true)?;
    socket.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(KEEPALIVE_IDLE))
}

/// `now + d`, saturating at a far deadline instead of overflowing.
pub(crate) fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(86_400 * 365)))
        .unwrap_or(now)
}

/// Runs `fut` until `deadline`: `None` when the deadline came first.
pub(crate) async fn timeout_at<R: Runtime, F: Future>(
    rt: &R,
    deadline: Instant,
    fut: F,
) -> Option<F::Output> {
    let mut fut = pin!(fut);
    let mut sleep = pin!(rt.sleep_until(deadline));
    poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

/// A driver's timer: one runtime timer, re-armed as deadlines change.
///
/// An armed deadline earlier than the one asked for is kept (the driver then wakes early, finds
/// nothing due and asks again): the machines move their earliest deadline forward with almost every
/// reply, and re-arming a runtime timer each time would cost more than the rare early wake-up.
pub(crate) struct Timer<R: Runtime> {
    sleep: Option<Pin<Box<R::Sleep>>>,
    /// The deadline the timer is armed for; `None` once it fired.
    armed: Option<Instant>,
}

impl<R: Runtime> Timer<R> {
    pub(crate) fn new() -> Self {
        Timer {
            sleep: None,
            armed: None,
        }
    }

    /// Arms the timer for `deadline` (see the type's docs) and polls it: `Ready` when it fired.
    pub(crate) fn poll_at(&mut self, rt: &R, deadline: Instant, cx: &mut Context<'_>) -> Poll<()> {
        let sleep = match &mut self.sleep {
            Some(sleep) => {
                if self.armed.is_none_or(|armed| armed > deadline) {
                    rt.reset_sleep(sleep.as_mut(), deadline);
                    self.armed = Some(deadline);
                }
                sleep
            }
            None => {
                self.armed = Some(deadline);
                self.sleep.insert(Box::pin(rt.sleep_until(deadline)))
            }
        };
        match sleep.as_mut().poll(cx) {
            Poll::Ready(_) => {
                self.armed = None;
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The earlier of two optional deadlines.
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testrt::TestRt;
    use std::sync::atomic::Ordering;
    use std::task::Waker;

    #[test]
    fn timer_keeps_an_earlier_deadline_and_rearms_for_an_earlier_one() {
        let rt = TestRt::default();
        let mut cx = Context::from_waker(Waker::noop());
        let mut timer = Timer::<TestRt>::new();
        let now = Instant::now();
        let resets = || rt.resets.load(Ordering::SeqCst);
        assert!(
            timer
                .poll_at(&rt, now + Duration::from_secs(10), &mut cx)
                .is_pending()
        );
        // A later deadline keeps the armed one (an early wake-up is cheaper than a re-arm).
        assert!(
            timer
                .poll_at(&rt, now + Duration::from_secs(20), &mut cx)
                .is_pending()
        );
        assert_eq!(resets(), 0);
        // An earlier one re-arms.
        assert!(
            timer
                .poll_at(&rt, now + Duration::from_secs(5), &mut cx)
                .is_pending()
        );
        assert_eq!(resets(), 1);
        // A deadline that passed fires at once; after firing, the next deadline re-arms.
        assert!(timer.poll_at(&rt, now, &mut cx).is_ready());
        assert_eq!(resets(), 2);
        assert!(
            timer
                .poll_at(&rt, now + Duration::from_secs(3600), &mut cx)
                .is_pending()
        );
        assert_eq!(resets(), 3);
    }

    #[test]
    fn timeout_at_and_after() {
        let rt = TestRt::default();
        let far = after(Instant::now(), Duration::from_secs(60));
        assert_eq!(
            futures_lite::future::block_on(timeout_at(&rt, far, async { 7 })),
            Some(7)
        );
        let near = after(Instant::now(), Duration::from_millis(5));
        let late = timeout_at(&rt, near, std::future::pending::<()>());
        assert_eq!(futures_lite::future::block_on(late), None);
        let now = Instant::now();
        assert!(
            after(now, Duration::MAX) > now,
            "saturates, no overflow panic"
        );
        assert_eq!(earliest(Some(now), None), Some(now));
        assert_eq!(earliest(None, Some(far)), Some(far));
        assert_eq!(earliest(Some(far), Some(now)), Some(now));
        assert_eq!(earliest(None, None), None);
    }

    #[test]
    fn configure_tcp_sets_nodelay_and_keepalive() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        configure_tcp(&stream).unwrap();
        let sock = socket2::SockRef::from(&stream);
        assert!(sock.tcp_nodelay().unwrap());
        assert!(sock.keepalive().unwrap());
    }
}
