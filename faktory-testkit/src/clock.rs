//! The server's clock: real, manual (stepped by the test), or sped up.
//!
//! Everything with a *server* meaning runs on this clock: job timestamps, `at`, reservations, the
//! retry schedule, heartbeats, the periodic tasks and the 2 s handshake deadline. The FETCH block
//! timeout and fault delays are wall-clock durations (tests keep them short).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use faktory_proto::time::UnixTime;
use tokio::sync::watch;

use crate::gotime;

#[derive(Debug)]
enum Kind {
    Real,
    Manual(Mutex<UnixTime>),
    Scaled {
        origin_real: Instant,
        origin: UnixTime,
        factor: f64,
    },
}

#[derive(Debug)]
struct Inner {
    kind: Kind,
    anchor_instant: Instant,
    anchor_unix: UnixTime,
    changed: watch::Sender<u64>,
}

/// A server clock. Cloning shares it.
#[derive(Clone, Debug)]
pub struct Clock {
    inner: Arc<Inner>,
}

/// The clock cannot be stepped (it is not manual), or would go backwards.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClockError {
    /// Only a manual clock can be stepped.
    NotManual,
    /// A manual clock only moves forward.
    Backwards,
}

impl std::fmt::Display for ClockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClockError::NotManual => f.write_str("only a manual clock can be stepped"),
            ClockError::Backwards => f.write_str("a manual clock only moves forward"),
        }
    }
}

impl std::error::Error for ClockError {}

fn lock(m: &Mutex<UnixTime>) -> MutexGuard<'_, UnixTime> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Clock {
    fn with_kind(kind: Kind, now: UnixTime) -> Self {
        let (changed, _) = watch::channel(0);
        Clock {
            inner: Arc::new(Inner {
                kind,
                anchor_instant: Instant::now(),
                anchor_unix: now,
                changed,
            }),
        }
    }

    /// The system clock.
    pub fn real() -> Self {
        Self::with_kind(Kind::Real, UnixTime::from_system_time(SystemTime::now()))
    }

    /// A clock that stands still at `start` until [`Clock::advance`] or [`Clock::set`] moves it.
    pub fn manual(start: UnixTime) -> Self {
        Self::with_kind(Kind::Manual(Mutex::new(start)), start)
    }

    /// A manual clock starting at the current system time.
    pub fn manual_now() -> Self {
        Self::manual(UnixTime::from_system_time(SystemTime::now()))
    }

    /// A clock starting at the current system time and running `factor` times faster
    /// (`60.0`: a minute per second). Non-positive or non-finite factors mean 1.
    pub fn scaled(factor: f64) -> Self {
        let factor = if factor.is_finite() && factor > 0.0 {
            factor
        } else {
            1.0
        };
        let now = UnixTime::from_system_time(SystemTime::now());
        Self::with_kind(
            Kind::Scaled {
                origin_real: Instant::now(),
                origin: now,
                factor,
            },
            now,
        )
    }

    /// Whether this is a manual clock.
    pub fn is_manual(&self) -> bool {
        matches!(self.inner.kind, Kind::Manual(_))
    }

    /// The current server time.
    pub fn now(&self) -> UnixTime {
        match &self.inner.kind {
            Kind::Real => UnixTime::from_system_time(SystemTime::now()),
            Kind::Manual(t) => *lock(t),
            Kind::Scaled {
                origin_real,
                origin,
                factor,
            } => {
                let real = origin_real.elapsed().as_secs_f64() * factor;
                gotime::add(*origin, Duration::from_secs_f64(real.min(1e12)))
            }
        }
    }

    /// Moves a manual clock forward by `d`. (Use [`crate::TestServer::advance`] to also run the
    /// server's due periodic tasks before returning.)
    pub fn advance(&self, d: Duration) -> Result<UnixTime, ClockError> {
        let Kind::Manual(t) = &self.inner.kind else {
            return Err(ClockError::NotManual);
        };
        let now = {
            let mut g = lock(t);
            *g = gotime::add(*g, d);
            *g
        };
        self.inner.changed.send_modify(|n| *n = n.wrapping_add(1));
        Ok(now)
    }

    /// Sets a manual clock to `t` (not earlier than now).
    pub fn set(&self, to: UnixTime) -> Result<(), ClockError> {
        let Kind::Manual(t) = &self.inner.kind else {
            return Err(ClockError::NotManual);
        };
        {
            let mut g = lock(t);
            if gotime::to_nanos(to) < gotime::to_nanos(*g) {
                return Err(ClockError::Backwards);
            }
            *g = to;
        }
        self.inner.changed.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    /// Waits until the clock reads `t` or later.
    pub async fn sleep_until(&self, t: UnixTime) {
        match &self.inner.kind {
            Kind::Real => tokio::time::sleep(gotime::since(t, self.now())).await,
            Kind::Scaled { factor, .. } => {
                let d = gotime::since(t, self.now()).as_secs_f64() / factor;
                tokio::time::sleep(Duration::from_secs_f64(d.min(1e9))).await;
            }
            Kind::Manual(_) => {
                let mut rx = self.inner.changed.subscribe();
                loop {
                    rx.borrow_and_update();
                    if gotime::to_nanos(self.now()) >= gotime::to_nanos(t) {
                        return;
                    }
                    if rx.changed().await.is_err() {
                        // Cannot happen while `self` holds the sender; never busy-loop anyway.
                        std::future::pending::<()>().await;
                    }
                }
            }
        }
    }

    /// The `Instant` that stands for server time `t` (for the sans-IO connection, which counts in
    /// `Instant`s): the clock's creation instant plus the server time elapsed since.
    pub(crate) fn instant_at(&self, t: UnixTime) -> Instant {
        self.inner.anchor_instant + gotime::since(t, self.inner.anchor_unix)
    }

    /// The `Instant` standing for now.
    pub(crate) fn instant_now(&self) -> Instant {
        self.instant_at(self.now())
    }

    /// The server time an `Instant` of [`Clock::instant_at`] stands for.
    pub(crate) fn unix_at(&self, i: Instant) -> UnixTime {
        gotime::add(
            self.inner.anchor_unix,
            i.saturating_duration_since(self.inner.anchor_instant),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_clock_steps_and_wakes_sleepers() {
        let start = UnixTime {
            secs: 1_000,
            nanos: 5,
        };
        let c = Clock::manual(start);
        assert!(c.is_manual());
        assert_eq!(c.now(), start);
        let c2 = c.clone();
        let target = UnixTime {
            secs: 1_010,
            nanos: 5,
        };
        let sleeper = tokio::spawn(async move { c2.sleep_until(target).await });
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        c.advance(Duration::from_secs(5)).unwrap();
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        c.advance(Duration::from_secs(5)).unwrap();
        sleeper.await.unwrap();
        assert_eq!(c.set(start), Err(ClockError::Backwards));
        let i = c.instant_now();
        assert_eq!(c.unix_at(i), c.now());
        assert_eq!(c.instant_at(start) + Duration::from_secs(10), i);
    }

    #[test]
    fn real_and_scaled_clocks_cannot_be_stepped() {
        assert_eq!(
            Clock::real().advance(Duration::from_secs(1)),
            Err(ClockError::NotManual)
        );
        let s = Clock::scaled(1000.0);
        let a = s.now();
        std::thread::sleep(Duration::from_millis(5));
        assert!(
            gotime::since(s.now(), a) >= Duration::from_secs(4),
            "five ms at 1000x is five seconds"
        );
    }
}
