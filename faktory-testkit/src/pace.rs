//! The real server's pace, modelled: with [`Pace`], each connection's commands are answered one at
//! a time and each only after a service time, so that throughput grows with connections and
//! plateaus the way a real Faktory's does.
//!
//! # The model
//!
//! A real Faktory 1.10 runs one goroutine per connection and one command at a time on it, each a
//! round trip to its Redis. Its FETCH+ACK throughput with one FETCH outstanding per connection,
//! measured on a 2-core machine with server, Redis and client together, is about 3.3k jobs/s on 1
//! connection, 5.4k on 2, 8.5k on 4 and 11.9k on 10, where it plateaus. A small closed queueing
//! network fits that curve: every command spends
//! - [`Pace::per_command`] in a delay of its own connection (its goroutine, the network), which
//!   connections do not share, then
//! - [`Pace::shared`] in one stage that all connections share and that serves one command at a time,
//!   first come first served (the single-threaded Redis and the saturated cores).
//!
//! One connection then does a command every `per_command + shared`; many connections are bounded
//! by `1 / shared` commands per second. [`Pace::real_server`] is calibrated so that a raw-socket
//! FETCH/ACK client (`faktory-bench raw`) sees the table above within 25% at 1, 4 and 10
//! connections (see the benches README for the command and the figures).
//!
//! # How
//!
//! The service end of each command is computed when the command arrives (arrivals come in time
//! order and every command has the same delay, so first come first served at the shared stage is
//! arrival order): `done = max(stage_free, arrival + per_command) + shared`. One timer thread wakes
//! the connection tasks at their `done` instants: tokio's timer has a 1 ms granularity, far coarser
//! than the 100-300 µs being modelled. The thread sleeps until shortly before the earliest instant,
//! spins the last 60 µs (a sleeping thread wakes tens of µs late), and wakes every task that is
//! due, so its own lateness delays the answers but does not accumulate in the schedule. The
//! spinning costs the test server CPU, as a real server and its Redis cost theirs.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// The service times of the modelled server (see the [module documentation](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pace {
    /// Time a command spends in its connection's own delay, not shared with other connections.
    pub per_command: Duration,
    /// Time a command occupies the stage all connections share, one command at a time.
    pub shared: Duration,
}

impl Pace {
    /// A pace with these service times.
    pub fn new(per_command: Duration, shared: Duration) -> Self {
        Pace {
            per_command,
            shared,
        }
    }

    /// Calibrated against measurements of a real Faktory 1.10 on a 2-core machine (about 300 µs per
    /// FETCH+ACK pair on one connection, a plateau near 12k pairs per second): with the raw-socket
    /// client of the load tool (`faktory-bench calibrate`), 50 µs and 40 µs gave 3.0k, 5.8k, 9.0k
    /// and 11.4k jobs/s on 1, 2, 4 and 10 connections, against the real server's 3.3k, 5.4k, 8.5k
    /// and 11.9k. The service times are below what the model alone would give (150 µs per command
    /// on one connection), because waking the connection's task and the client's own turn add to
    /// every command here as they do there.
    pub fn real_server() -> Self {
        Pace::new(Duration::from_micros(50), Duration::from_micros(40))
    }
}

#[derive(Debug)]
struct State {
    /// When the shared stage is free again.
    stage_free: Instant,
    /// Tasks to wake, in order of their (non-decreasing) instants.
    due: VecDeque<(Instant, oneshot::Sender<()>)>,
    stopped: bool,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    wake: Condvar,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Schedules commands through the model and wakes their tasks; stops its thread when dropped.
#[derive(Debug)]
pub(crate) struct Pacer {
    pace: Pace,
    inner: Arc<Inner>,
}

impl Pacer {
    /// A pacer with its timer thread.
    pub(crate) fn start(pace: Pace) -> std::io::Result<Pacer> {
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                stage_free: Instant::now(),
                due: VecDeque::new(),
                stopped: false,
            }),
            wake: Condvar::new(),
        });
        let thread_inner = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("faktory-testkit-pace".into())
            .spawn(move || timer_thread(&thread_inner))?;
        Ok(Pacer { pace, inner })
    }

    /// A command arrives now: completes when the model has served it.
    pub(crate) fn serve(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let arrival = Instant::now();
        let mut state = lock(&self.inner.state);
        let start = state.stage_free.max(arrival + self.pace.per_command);
        let done = start + self.pace.shared;
        state.stage_free = done;
        let first = state.due.is_empty();
        state.due.push_back((done, tx));
        drop(state);
        if first {
            self.inner.wake.notify_one();
        }
        rx
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        lock(&self.inner.state).stopped = true;
        self.inner.wake.notify_one();
    }
}

/// How long before a wake-up the timer thread stops sleeping and spins: a sleeping thread wakes
/// tens of microseconds late (the kernel's timer slack), as much as the service times modelled.
const SPIN: Duration = Duration::from_micros(60);

fn timer_thread(inner: &Inner) {
    let mut state = lock(&inner.state);
    loop {
        if state.stopped {
            return;
        }
        let now = Instant::now();
        while state.due.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, tx)) = state.due.pop_front() {
                let _ = tx.send(());
            }
        }
        state = match state.due.front().map(|(at, _)| *at) {
            Some(at) if at.saturating_duration_since(now) <= SPIN => {
                // Close to it: spin without the lock (arrivals keep coming in meanwhile).
                drop(state);
                while Instant::now() < at {
                    std::hint::spin_loop();
                }
                lock(&inner.state)
            }
            Some(at) => {
                let wait = at.saturating_duration_since(now) - SPIN;
                inner
                    .wake
                    .wait_timeout(state, wait)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
            None => inner
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_connection_pays_both_stages_and_many_share_one() {
        let pace = Pace::new(Duration::from_millis(4), Duration::from_millis(2));
        let pacer = Pacer::start(pace).unwrap();
        // One connection, three commands in a row: 3 × (4 + 2) ms.
        let t = Instant::now();
        for _ in 0..3 {
            pacer.serve().await.unwrap();
        }
        let one = t.elapsed();
        assert!(one >= Duration::from_millis(18), "{one:?}");
        assert!(one < Duration::from_millis(60), "{one:?}");
        // Twenty commands arriving at once: the shared stage serves them one at a time, so the last
        // is done 4 + 20 × 2 ms after they arrived.
        let t = Instant::now();
        let all: Vec<_> = (0..20).map(|_| pacer.serve()).collect();
        for rx in all {
            rx.await.unwrap();
        }
        let many = t.elapsed();
        assert!(many >= Duration::from_millis(44), "{many:?}");
        assert!(many < Duration::from_millis(120), "{many:?}");
    }
}
