//! Executor-neutral plumbing: the [`Spawner`] that runs background tasks, the
//! [`CancellationToken`], and timeouts on `async-io` timers.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_io::Timer;
use event_listener::Event;
use futures_lite::future;

/// A boxed, sendable future: what the crate hands to a [`Spawner`].
pub type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Runs the crate's background tasks: a [`Client`](crate::Client)'s connection task, a
/// [`Worker`](crate::Worker)'s socket tasks and its job handlers.
///
/// The default, [`Spawner::global`], is the multi-threaded executor of `async-global-executor`
/// (the one async-std itself spawns on). Give your own to keep everything on your executor:
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
/// crate cancels its own tasks when it needs to.
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

/// A signal that fires once and stays fired: [`JobContext::cancellation`](crate::JobContext), or a
/// worker's shutdown signal (`token.clone().cancelled_owned()`).
///
/// Clones share the signal. Waiting is a plain future (built on `event-listener`), so it works on
/// any executor.
#[derive(Clone, Default)]
pub struct CancellationToken {
    inner: Arc<TokenInner>,
}

#[derive(Default)]
struct TokenInner {
    cancelled: AtomicBool,
    event: Event,
}

impl CancellationToken {
    /// A token that has not fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires the token: every waiter wakes, and every later wait returns at once.
    pub fn cancel(&self) {
        if !self.inner.cancelled.swap(true, Ordering::AcqRel) {
            self.inner.event.notify(usize::MAX);
        }
    }

    /// Whether the token fired.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::Acquire)
    }

    /// Completes once the token fired.
    pub async fn cancelled(&self) {
        wait(&self.inner).await;
    }

    /// Completes once the token fired; owns a clone of the token (for `'static` uses such as
    /// [`WorkerBuilder::shutdown_signal`](crate::WorkerBuilder::shutdown_signal)).
    pub async fn cancelled_owned(self) {
        wait(&self.inner).await;
    }
}

async fn wait(inner: &TokenInner) {
    loop {
        if inner.cancelled.load(Ordering::Acquire) {
            return;
        }
        let listener = inner.event.listen();
        if inner.cancelled.load(Ordering::Acquire) {
            return;
        }
        listener.await;
    }
}

impl fmt::Debug for CancellationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancellationToken")
            .field("is_cancelled", &self.is_cancelled())
            .finish()
    }
}

/// The time limit passed.
#[derive(Debug)]
pub(crate) struct Elapsed;

/// `now + d`, or `None` (no limit) when that does not fit in an `Instant`.
pub(crate) fn deadline_after(d: Duration) -> Option<Instant> {
    Instant::now().checked_add(d)
}

/// Sleeps until `deadline` (forever when `None`).
pub(crate) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => {
            Timer::at(at).await;
        }
        None => future::pending::<()>().await,
    }
}

/// Runs `fut` until `deadline` (no limit when `None`).
pub(crate) async fn timeout_at<F: Future>(
    deadline: Option<Instant>,
    fut: F,
) -> Result<F::Output, Elapsed> {
    future::or(async { Ok(fut.await) }, async {
        sleep_until(deadline).await;
        Err(Elapsed)
    })
    .await
}

/// Runs `fut` for at most `d`.
pub(crate) async fn timeout<F: Future>(d: Duration, fut: F) -> Result<F::Output, Elapsed> {
    timeout_at(deadline_after(d), fut).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_wakes_every_waiter_and_stays_fired() {
        let token = CancellationToken::new();
        assert!(!token.is_cancelled());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let t = token.clone();
                std::thread::spawn(move || future::block_on(t.cancelled_owned()))
            })
            .collect();
        token.cancel();
        for w in waiters {
            w.join().unwrap();
        }
        assert!(token.is_cancelled());
        // Later waits return at once; cancelling again is harmless.
        token.cancel();
        future::block_on(token.cancelled());
    }

    #[test]
    fn timeout_expires_only_when_the_future_is_late() {
        let fast = future::block_on(timeout(Duration::from_secs(60), async { 7 }));
        assert!(matches!(fast, Ok(7)));
        let slow = future::block_on(timeout(Duration::from_millis(1), future::pending::<()>()));
        assert!(slow.is_err());
        assert!(deadline_after(Duration::MAX).is_none(), "no overflow panic");
    }

    #[test]
    fn spawner_runs_tasks() {
        let (tx, rx) = async_channel::bounded(1);
        Spawner::global().spawn(async move {
            let _ = tx.send(42).await;
        });
        assert_eq!(future::block_on(rx.recv()).unwrap(), 42);
    }
}
