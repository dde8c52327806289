//! The runtime: the [`Spawner`] that runs background tasks, and [`AsyncStd`], the
//! `faktory_async::Runtime` on async-io's reactor and timers and the `blocking` thread pool.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use async_io::Timer;

/// A boxed, sendable future: what the crate hands to a [`Spawner`].
pub type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Runs the crate's background tasks: a [`Client`](crate::Client)'s task, a
/// [`Worker`](crate::Worker)'s job handlers.
///
/// The default, [`Spawner::global`], is the multi-threaded executor of `async-global-executor`
/// (the one async-std itself spawns on). Give your own to keep everything on your executor (a
/// `Spawner` converts into the runtime [`AsyncStd`] that `ClientBuilder::runtime` and
/// `WorkerBuilder::runtime` take):
///
/// ```no_run
/// use faktory_async_std::Spawner;
///
/// // smol: its global executor.
/// let on_smol = Spawner::new(|task| smol::spawn(task).detach());
/// // async-std: its task pool (the same executor as the default).
/// let on_async_std = Spawner::new(|task| {
///     async_std::task::spawn(task);
/// });
/// # let _ = (on_smol, on_async_std);
/// ```
///
/// The spawned tasks must run to completion (detach them, do not drop a handle that cancels): the
/// crate stops its own tasks when it needs to.
#[derive(Clone)]
pub struct Spawner(Arc<dyn Fn(BoxFuture) + Send + Sync + 'static>);

impl Spawner {
    /// A spawner that calls `spawn` with each task.
    pub fn new(spawn: impl Fn(BoxFuture) + Send + Sync + 'static) -> Self {
        Spawner(Arc::new(spawn))
    }

    /// The default: `async-global-executor`'s thread pool (as many threads as CPUs, or
    /// `ASYNC_GLOBAL_EXECUTOR_THREADS`).
    ///
    /// It works under `smol::block_on`, `async_std::task::block_on` and any other executor because
    /// the pool runs on its own threads, and everything the tasks wait on (sockets, timers) is
    /// driven by `async-io`'s process-wide reactor, which smol, async-std and the pool all share.
    /// Under async-std it *is* async-std's executor (`async_std::task::spawn` spawns there too).
    pub fn global() -> Self {
        Spawner::new(|task| async_global_executor::spawn(task).detach())
    }

    /// Runs `task` on this spawner.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        (self.0)(Box::pin(task));
    }
}

impl Default for Spawner {
    fn default() -> Self {
        Spawner::global()
    }
}

impl fmt::Debug for Spawner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Spawner(..)")
    }
}

/// The smol / async-std runtime for `faktory-async`: tasks on a [`Spawner`] (default:
/// [`Spawner::global`]), blocking handlers and DNS lookups on the `blocking` crate's thread pool
/// (the one behind `smol::unblock` and `async_std::task::spawn_blocking`), `async-io` timers and
/// `async-net` TCP.
#[derive(Clone, Debug, Default)]
pub struct AsyncStd {
    spawner: Spawner,
}

impl AsyncStd {
    /// The runtime with tasks on `spawner`.
    pub fn new(spawner: Spawner) -> Self {
        AsyncStd { spawner }
    }

    /// Where its tasks run.
    pub fn spawner(&self) -> &Spawner {
        &self.spawner
    }
}

impl From<Spawner> for AsyncStd {
    fn from(spawner: Spawner) -> Self {
        AsyncStd::new(spawner)
    }
}

impl faktory_async::Runtime for AsyncStd {
    type Tcp = async_net::TcpStream;
    type Sleep = Timer;

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.spawner.spawn(task);
    }

    fn spawn_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> impl Future<Output = Option<T>> + Send + 'static {
        let task = blocking::unblock(f);
        async move { Some(task.await) }
    }

    fn sleep_until(&self, deadline: Instant) -> Timer {
        Timer::at(deadline)
    }

    fn reset_sleep(&self, mut sleep: Pin<&mut Timer>, deadline: Instant) {
        sleep.set_at(deadline);
    }

    fn termination_signals(&self) -> Option<faktory_async::TerminationSignals> {
        use async_signal::{Signal, Signals};
        use futures_core::Stream;
        let mut signals = Signals::new([Signal::Term, Signal::Int]).ok()?;
        Some(faktory_async::termination_signals(move |cx| {
            Pin::new(&mut signals)
                .poll_next(cx)
                .map(|signal| signal.map(|_| ()))
        }))
    }

    #[cfg(unix)]
    fn tcp_socket(tcp: &async_net::TcpStream) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        Some(tcp.as_fd())
    }

    #[allow(clippy::manual_async_fn)] // an `async fn` would borrow `self`: not 'static
    fn connect_tcp(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = io::Result<async_net::TcpStream>> + Send + 'static {
        async move {
            let stream = async_net::TcpStream::connect(addr).await?;
            faktory_async::configure_tcp(&stream)?;
            Ok(stream)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faktory_async::Runtime;

    #[test]
    fn spawner_and_runtime_run_tasks() {
        let (tx, rx) = std::sync::mpsc::channel();
        let rt = AsyncStd::from(Spawner::global());
        rt.spawn(async move {
            let _ = tx.send(42);
        });
        assert_eq!(rx.recv().unwrap(), 42);
        let out = async_io::block_on(rt.spawn_blocking(|| 7));
        assert_eq!(out, Some(7));
        let start = Instant::now();
        let mut timer = rt.sleep_until(start + std::time::Duration::from_secs(3600));
        rt.reset_sleep(Pin::new(&mut timer), start);
        async_io::block_on(timer);
        assert!(format!("{rt:?}").contains("Spawner"));
    }
}
