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
//! by `1 / shared` commands per second.
//!
//! A real server also slows down when many connections are busy at once: each is a goroutine,
//! and on two cores their scheduling and the Redis pool's contention come out of the same CPU. On
//! the real server above, the `faktory` crate's worker at concurrency 50 (51 connections) ran
//! 10.4k jobs/s, below its 11.0-12.6k at concurrency 10 (11 connections) and below the 12.1k of
//! the raw client on 16 connections. The model has this as a crowding term: each command's time
//! in the shared stage grows by [`Pace::crowd_cost`] for every command in the model beyond
//! [`Pace::crowd_knee`] (a connection has at most one: its commands are served one at a time).
//! Up to the knee it changes nothing, so the calibration at 1 to 16 connections stands. [`Pace::real_server`] is calibrated so that a raw-socket
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
    /// How many commands may be in the model at once before the shared stage slows down.
    pub crowd_knee: usize,
    /// Extra shared-stage time per command in the model beyond [`Pace::crowd_knee`].
    pub crowd_cost: Duration,
}

impl Pace {
    /// A pace with these service times, without crowding.
    pub fn new(per_command: Duration, shared: Duration) -> Self {
        Pace {
            per_command,
            shared,
            crowd_knee: 0,
            crowd_cost: Duration::ZERO,
        }
    }

    /// This pace, with the shared stage slowing down by `cost` per command in the model beyond
    /// `knee` (see the [module documentation](self)).
    pub fn with_crowding(mut self, knee: usize, cost: Duration) -> Self {
        self.crowd_knee = knee;
        self.crowd_cost = cost;
        self
    }

    /// The shared-stage time of a command that arrives with `in_model` commands in the model
    /// (itself included).
    fn shared_time(&self, in_model: usize) -> Duration {
        let crowd = u32::try_from(in_model.saturating_sub(self.crowd_knee)).unwrap_or(u32::MAX);
        self.shared + self.crowd_cost.saturating_mul(crowd)
    }

    /// Calibrated against measurements of a real Faktory 1.10 on a 2-core machine (about 300 µs per
    /// FETCH+ACK pair on one connection, a plateau near 12k pairs per second): with the raw-socket
    /// client of the load tool (`faktory-bench calibrate`), 50 µs and 40 µs gave 3.0k, 5.8k, 9.0k
    /// and 11.4k jobs/s on 1, 2, 4 and 10 connections, against the real server's 3.3k, 5.4k, 8.5k
    /// and 11.9k. The service times are below what the model alone would give (150 µs per command
    /// on one connection), because waking the connection's task and the client's own turn add to
    /// every command here as they do there.
    ///
    /// Crowding starts beyond 16 commands in the model, at 150 ns per command: 51 busy
    /// connections make the shared stage about 13% slower, which is the drop from the 10-16
    /// connection plateau (11.9-12.1k) to what 51 connections of the `faktory` crate got
    /// (10.4k).
    pub fn real_server() -> Self {
        Pace::new(Duration::from_micros(50), Duration::from_micros(40))
            .with_crowding(16, Duration::from_nanos(150))
    }
}

/// `PER_COMMAND_US:SHARED_US`, with `:KNEE:CROWD_NS` when the pace has crowding: what
/// [`Pace::from_str`](std::str::FromStr) reads back.
impl std::fmt::Display for Pace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}",
            self.per_command.as_micros(),
            self.shared.as_micros()
        )?;
        if !self.crowd_cost.is_zero() {
            write!(f, ":{}:{}", self.crowd_knee, self.crowd_cost.as_nanos())?;
        }
        Ok(())
    }
}

/// A pace that [`Pace::from_str`](std::str::FromStr) could not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsePaceError(String);

impl std::fmt::Display for ParsePaceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "expected `real`, PER_COMMAND_US:SHARED_US or PER_COMMAND_US:SHARED_US:KNEE:CROWD_NS, \
             got {:?}",
            self.0
        )
    }
}

impl std::error::Error for ParsePaceError {}

/// `real` ([`Pace::real_server`]), `PER_COMMAND_US:SHARED_US`, or
/// `PER_COMMAND_US:SHARED_US:KNEE:CROWD_NS` (with crowding).
impl std::str::FromStr for Pace {
    type Err = ParsePaceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim() == "real" {
            return Ok(Pace::real_server());
        }
        let bad = || ParsePaceError(text.to_owned());
        let parts: Vec<u64> = text
            .split(':')
            .map(|v| v.trim().parse::<u64>().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        match parts[..] {
            [per, shared] => Ok(Pace::new(
                Duration::from_micros(per),
                Duration::from_micros(shared),
            )),
            [per, shared, knee, crowd] => Ok(Pace::new(
                Duration::from_micros(per),
                Duration::from_micros(shared),
            )
            .with_crowding(
                usize::try_from(knee).map_err(|_| bad())?,
                Duration::from_nanos(crowd),
            )),
            _ => Err(bad()),
        }
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
        let done = start + self.pace.shared_time(state.due.len() + 1);
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

    #[test]
    fn crowding_slows_the_shared_stage_beyond_the_knee_only() {
        let p = Pace::new(Duration::from_micros(50), Duration::from_micros(40))
            .with_crowding(16, Duration::from_nanos(150));
        assert_eq!(p.shared_time(1), Duration::from_micros(40));
        assert_eq!(p.shared_time(16), Duration::from_micros(40));
        assert_eq!(p.shared_time(17), Duration::from_nanos(40_150));
        assert_eq!(p.shared_time(51), Duration::from_nanos(40_000 + 35 * 150));
        assert_eq!(
            Pace::new(Duration::ZERO, Duration::from_micros(7)).shared_time(500),
            Duration::from_micros(7)
        );
    }

    #[test]
    fn a_pace_reads_back_what_it_prints() {
        for p in [
            Pace::real_server(),
            Pace::new(Duration::from_micros(20), Duration::from_micros(45)),
        ] {
            assert_eq!(p.to_string().parse::<Pace>(), Ok(p), "{p}");
        }
        assert_eq!("real".parse::<Pace>(), Ok(Pace::real_server()));
        assert_eq!(Pace::real_server().to_string(), "50:40:16:150");
        for bad in ["", "5", "5:x", "1:2:3", "1:2:3:4:5", "-1:2"] {
            let err = bad.parse::<Pace>().unwrap_err();
            assert!(err.to_string().contains("expected `real`"), "{bad}: {err}");
        }
    }
}
