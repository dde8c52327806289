//! The handle that stops a worker.

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use crate::handler::lock;
use crate::worker::Msg;

/// Stops a [`Worker`](crate::Worker) from another thread: [`ShutdownHandle::shutdown`] is a
/// graceful shutdown (running jobs get the grace period, then what still runs is FAILed so it is
/// retried soon, and the worker says END), [`ShutdownHandle::shutdown_now`] ends the grace period
/// at once (a second Ctrl-C). It wakes the worker at once; it may be called before the worker
/// runs, and one handle may stop several workers.
///
/// A worker fires its handle on SIGTERM and SIGINT by itself (see
/// [`WorkerBuilder::handle_signals`](crate::WorkerBuilder::handle_signals)); call it from any
/// thread of yours for other reasons to stop. The calls take a mutex, so call them from a thread,
/// not from inside a raw signal handler.
#[derive(Clone, Default)]
pub struct ShutdownHandle {
    inner: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// 0: running, 1: shut down gracefully, 2: shut down now.
    level: u8,
    /// The channels of the workers using this handle.
    wakers: Vec<Sender<Msg>>,
}

impl std::fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = lock(&self.inner);
        f.debug_struct("ShutdownHandle")
            .field("level", &s.level)
            .field("workers", &s.wakers.len())
            .finish()
    }
}

impl ShutdownHandle {
    /// A handle that has not fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Shuts the workers down gracefully.
    pub fn shutdown(&self) {
        self.fire(1);
    }

    /// Shuts the workers down without waiting for running jobs: they are FAILed and their
    /// cancellation tokens set at once.
    pub fn shutdown_now(&self) {
        self.fire(2);
    }

    /// Whether [`ShutdownHandle::shutdown`] or [`ShutdownHandle::shutdown_now`] was called.
    pub fn is_shutdown(&self) -> bool {
        lock(&self.inner).level > 0
    }

    fn fire(&self, level: u8) {
        let mut s = lock(&self.inner);
        s.level = s.level.max(level);
        let now = level > 1;
        s.wakers.retain(|w| w.send(Msg::Shutdown { now }).is_ok());
    }

    /// Adds a worker's channel; returns the level already reached.
    pub(crate) fn register(&self, tx: Sender<Msg>) -> u8 {
        let mut s = lock(&self.inner);
        s.wakers.push(tx);
        s.level
    }
}

/// Fires `handle` on SIGTERM and SIGINT (the first: [`ShutdownHandle::shutdown`], the next:
/// [`ShutdownHandle::shutdown_now`]) from a thread of its own, until the returned guard is dropped.
/// `None` when the handlers cannot be installed (then only the handle stops the worker).
#[cfg(unix)]
pub(crate) fn on_termination_signals(handle: &ShutdownHandle) -> Option<SignalGuard> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGTERM, SIGINT]) {
        Ok(s) => s,
        Err(error) => {
            tracing::warn!(%error, "faktory worker: cannot listen for SIGTERM/SIGINT");
            return None;
        }
    };
    let close = signals.handle();
    let handle = handle.clone();
    let thread = std::thread::Builder::new()
        .name("faktory-signals".into())
        .spawn(move || {
            for (n, _) in signals.forever().enumerate() {
                if n == 0 {
                    tracing::info!(
                        "faktory worker: termination signal, shutting down (a second one stops \
                         waiting for running jobs)"
                    );
                    handle.shutdown();
                } else {
                    tracing::warn!(
                        "faktory worker: second termination signal, running jobs are FAILed now"
                    );
                    handle.shutdown_now();
                }
            }
        })
        .ok()?;
    Some(SignalGuard {
        close,
        thread: Some(thread),
    })
}

/// No signal handling off Unix: the handle stops the worker.
#[cfg(not(unix))]
pub(crate) fn on_termination_signals(_handle: &ShutdownHandle) -> Option<SignalGuard> {
    None
}

/// Removes the signal handlers (and ends their thread) when dropped.
pub(crate) struct SignalGuard {
    #[cfg(unix)]
    close: signal_hook::iterator::Handle,
    #[cfg(unix)]
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            self.close.close();
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
}
