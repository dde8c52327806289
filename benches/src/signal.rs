//! A one-shot value set from a thread and awaited from any executor (or waited for by a thread),
//! and a `race` of two futures: the glue between the watch thread and the workloads of every
//! runtime, without a runtime-specific timer or channel.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// A value set once; later sets are ignored.
#[derive(Debug)]
pub struct Signal<T> {
    state: Mutex<State<T>>,
    cond: Condvar,
}

#[derive(Debug)]
struct State<T> {
    value: Option<T>,
    wakers: Vec<Waker>,
}

impl<T: Clone> Default for Signal<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone> Signal<T> {
    /// An unset signal.
    pub fn new() -> Self {
        Signal {
            state: Mutex::new(State {
                value: None,
                wakers: Vec::new(),
            }),
            cond: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the value (the first set wins) and wakes every waiter.
    pub fn set(&self, value: T) {
        let wakers = {
            let mut s = self.lock();
            if s.value.is_some() {
                return;
            }
            s.value = Some(value);
            std::mem::take(&mut s.wakers)
        };
        self.cond.notify_all();
        for w in wakers {
            w.wake();
        }
    }

    /// The value, if set.
    pub fn get(&self) -> Option<T> {
        self.lock().value.clone()
    }

    /// Blocks the thread until the value is set, or `timeout` passes.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<T> {
        let guard = self.lock();
        let (guard, _) = self
            .cond
            .wait_timeout_while(guard, timeout, |s| s.value.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        guard.value.clone()
    }

    /// Completes with the value once it is set.
    pub fn wait(&self) -> SignalWait<'_, T> {
        SignalWait { signal: self }
    }
}

/// The future of [`Signal::wait`].
#[derive(Debug)]
pub struct SignalWait<'a, T> {
    signal: &'a Signal<T>,
}

impl<T: Clone> Future for SignalWait<'_, T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut s = self.signal.lock();
        match &s.value {
            Some(v) => Poll::Ready(v.clone()),
            None => {
                if !s.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    s.wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

/// Which of two raced futures finished first.
#[derive(Debug, PartialEq, Eq)]
pub enum Either<A, B> {
    /// The first.
    Left(A),
    /// The second.
    Right(B),
}

/// Polls `a` then `b` until one completes (`a` wins a tie).
pub async fn race<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(x) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(x));
        }
        if let Poll::Ready(y) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(y));
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn set_from_a_thread_wakes_a_future_and_a_thread() {
        let s = Arc::new(Signal::<u32>::new());
        assert_eq!(s.get(), None);
        assert_eq!(s.wait_timeout(Duration::from_millis(1)), None);
        let s2 = Arc::clone(&s);
        let t = std::thread::spawn(move || {
            s2.set(7);
            s2.set(8);
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(rt.block_on(s.wait()), 7);
        assert_eq!(s.wait_timeout(Duration::from_secs(5)), Some(7));
        t.join().unwrap();
    }

    #[test]
    fn race_takes_the_first() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let s = Signal::<()>::new();
        let out = rt.block_on(race(async { 1 }, s.wait()));
        assert_eq!(out, Either::Left(1));
        s.set(());
        let out = rt.block_on(race(std::future::pending::<u8>(), s.wait()));
        assert_eq!(out, Either::Right(()));
    }
}
