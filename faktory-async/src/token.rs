//! A runtime-neutral cancellation token, and the wrapper that stops a job's task when the worker
//! is gone.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use event_listener::{Event, EventListener};

/// A signal that fires once and stays fired: [`JobContext::cancellation`](crate::JobContext), or a
/// worker's shutdown signal (`token.clone().cancelled_owned()`).
///
/// Clones share the signal. Waiting is a plain future (built on `event-listener`), so it works on
/// any runtime.
///
/// ```
/// use faktory_async::CancellationToken;
///
/// let token = CancellationToken::new();
/// let waiter = token.clone();
/// std::thread::spawn(move || token.cancel());
/// futures_lite::future::block_on(waiter.cancelled());
/// assert!(waiter.is_cancelled());
/// ```
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
        Cancelled {
            inner: &self.inner,
            listener: None,
        }
        .await;
    }

    /// Completes once the token fired; owns a clone of the token (for `'static` uses such as
    /// [`WorkerBuilder::shutdown_signal`](crate::WorkerBuilder::shutdown_signal)).
    pub async fn cancelled_owned(self) {
        self.cancelled().await;
    }
}

impl fmt::Debug for CancellationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancellationToken")
            .field("is_cancelled", &self.is_cancelled())
            .finish()
    }
}

/// Waits for a token; registers a listener only when it has to wait.
struct Cancelled<'a> {
    inner: &'a TokenInner,
    listener: Option<EventListener>,
}

impl Future for Cancelled<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        poll_token(self.inner, &mut self.listener, cx)
    }
}

fn poll_token(
    inner: &TokenInner,
    listener: &mut Option<EventListener>,
    cx: &mut Context<'_>,
) -> Poll<()> {
    loop {
        if inner.cancelled.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        match listener {
            Some(l) => {
                if Pin::new(l).poll(cx).is_pending() {
                    return Poll::Pending;
                }
                *listener = None;
            }
            // Listen, then look again: a cancel between the two is not missed.
            None => *listener = Some(inner.event.listen()),
        }
    }
}

/// Runs `inner` until it completes or `stop` fires (then drops it). The listener on `stop` is only
/// made once `inner` has to wait, so a job that finishes on its first poll costs no registration.
///
/// When `stop` fires, `inner` is polled once more before it is dropped: a job whose own token was
/// cancelled before (the worker gave up on it) then gets to see that cancellation even if the
/// executor had not scheduled it since, so what it does on cancellation (log, release, roll back)
/// happens deterministically up to its next wait.
pub(crate) struct Abortable<F> {
    inner: Pin<Box<F>>,
    stop: CancellationToken,
    listener: Option<EventListener>,
    started: bool,
}

impl<F: Future<Output = ()>> Abortable<F> {
    pub(crate) fn new(inner: F, stop: CancellationToken) -> Self {
        Abortable {
            inner: Box::pin(inner),
            stop,
            listener: None,
            started: false,
        }
    }
}

impl<F: Future<Output = ()>> Future for Abortable<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let stopped = this.stop.is_cancelled();
        // Stopped before it ever ran: not started at all. Otherwise one last poll (see above).
        if stopped && !this.started {
            return Poll::Ready(());
        }
        this.started = true;
        if this.inner.as_mut().poll(cx).is_ready() || stopped {
            return Poll::Ready(());
        }
        poll_token(&this.stop.inner, &mut this.listener, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future;
    use std::sync::atomic::AtomicUsize;

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
        std::thread::sleep(std::time::Duration::from_millis(20));
        token.cancel();
        for w in waiters {
            w.join().unwrap();
        }
        assert!(token.is_cancelled());
        // Later waits return at once; cancelling again is harmless.
        token.cancel();
        future::block_on(token.cancelled());
        assert!(format!("{token:?}").contains("true"));
    }

    #[test]
    fn abortable_runs_to_completion_or_stops_when_told() {
        let stop = CancellationToken::new();
        let ran = Arc::new(AtomicUsize::new(0));
        let r = Arc::clone(&ran);
        future::block_on(Abortable::new(
            async move {
                r.fetch_add(1, Ordering::SeqCst);
            },
            stop.clone(),
        ));
        assert_eq!(ran.load(Ordering::SeqCst), 1);

        let stopper = stop.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            stopper.cancel();
        });
        // A job that never finishes is dropped once `stop` fires, after one last poll in which it
        // sees its own cancellation.
        let (own, seen) = (CancellationToken::new(), Arc::new(AtomicUsize::new(0)));
        let (o, s) = (own.clone(), Arc::clone(&seen));
        let canceller = own;
        future::block_on(Abortable::new(
            async move {
                let mut polls = 0;
                std::future::poll_fn(|_| {
                    polls += 1;
                    if polls == 1 {
                        // What the worker does before it stops: cancel the job's own token.
                        canceller.cancel();
                    }
                    if o.is_cancelled() && polls > 1 {
                        s.fetch_add(1, Ordering::SeqCst);
                    }
                    Poll::<()>::Pending
                })
                .await;
            },
            stop.clone(),
        ));
        t.join().unwrap();
        assert_eq!(
            seen.load(Ordering::SeqCst),
            1,
            "the last poll saw the cancellation"
        );
        // Already stopped: the job is not even polled.
        let r = Arc::clone(&ran);
        future::block_on(Abortable::new(
            async move {
                r.fetch_add(1, Ordering::SeqCst);
            },
            stop,
        ));
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }
}
