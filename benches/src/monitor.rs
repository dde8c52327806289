//! Watching a run from the outside, the same way for every client and runtime measured:
//!
//! - [`Monitor`]: a connection of its own (a `faktory-blocking` client: no async runtime, so it
//!   fits every mode), opened before the run, so it is part of the connection baseline;
//! - [`watched`]: runs the workload while a thread samples the connection count every 100 ms (the
//!   in-process testkit's handle, else INFO's `connections`) and, for `work`, polls INFO's
//!   `total_processed` until the run's jobs are acknowledged (every 10 ms, then every millisecond
//!   once the handler has seen them all);
//! - [`Meter`]: wall time, client CPU, server CPU and peak RSS of the measured phase.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use faktory_blocking::Client;
use faktory_proto::Job;
use faktory_proto::job::JobError;

use crate::BoxError;
use crate::measure::{self, CpuMark};
use crate::report::Measurement;
use crate::server::Target;
use crate::signal::{Signal, SignalWait};

/// How often connections are sampled during a run.
const CONN_SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// The job every mode pushes: `jobtype`, args `[1,"string",3]`, `queue`, and `reserve_for` 600 s
/// (the `faktory` crate 0.13 cannot decode a fetched job without `reserve_for`: its worker stops
/// with "missing field `reserve_for`", so prefilled jobs carry it for both clients).
pub fn bench_job(jobtype: &str, queue: &str) -> Result<Job, JobError> {
    Job::builder(jobtype)
        .queue(queue)
        .args((1, "string", 3))
        .reserve_for(600)
        .build()
}

/// A monitoring connection.
#[derive(Debug)]
pub struct Monitor {
    client: Client,
}

/// What INFO says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Live connections.
    pub connections: u64,
    /// ACKs since the server started.
    pub processed: u64,
    /// FAILs since the server started.
    pub failures: u64,
}

impl Monitor {
    /// Connects to `url`.
    pub fn connect(url: &str) -> Result<Monitor, BoxError> {
        Ok(Monitor {
            client: Client::connect_to(url)?,
        })
    }

    /// The monitoring client (for cleaning up).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// One INFO.
    pub fn snapshot(&self) -> Result<Snapshot, BoxError> {
        let info = self.client.info()?;
        Ok(Snapshot {
            connections: info.server.connections,
            processed: info.faktory.total_processed,
            failures: info.faktory.total_failures,
        })
    }

    /// Jobs in `queue` now.
    pub fn queue_len(&self, queue: &str) -> Result<u64, BoxError> {
        let info = self.client.info()?;
        Ok(info.faktory.queues.get(queue).copied().unwrap_or(0))
    }

    /// Live connections now: the testkit handle's count when in-process, else INFO's.
    pub fn connections(&self, target: &Target) -> Result<u64, BoxError> {
        match target.connection_count() {
            Some(n) => Ok(n),
            None => Ok(self.snapshot()?.connections),
        }
    }

    /// Pushes `n` [`bench_job`]s to `queue`, PUSHB 1,000 at a time (generated chunk by chunk, so
    /// the prefill does not inflate this process's memory).
    pub fn prefill(&self, n: u64, queue: &str, jobtype: &str) -> Result<(), BoxError> {
        let mut left = n;
        while left > 0 {
            let chunk = left.min(1_000);
            let jobs = (0..chunk)
                .map(|_| bench_job(jobtype, queue))
                .collect::<Result<Vec<_>, _>>()?;
            let refused = self.client.push_bulk(jobs)?;
            if !refused.is_empty() {
                return Err(format!("prefill: the server refused {} jobs", refused.len()).into());
            }
            left -= chunk;
        }
        Ok(())
    }
}

/// For `work`: acknowledged jobs to wait for.
#[derive(Debug, Clone)]
pub struct ProcessedGoal {
    /// INFO's `total_processed` before the run.
    pub base: u64,
    /// Jobs to be acknowledged.
    pub n: u64,
    /// Jobs the handler has seen (bumped by the workload).
    pub handled: Arc<AtomicU64>,
    /// Set by the workload when the worker's `run` returned.
    pub stopped: Arc<AtomicBool>,
}

/// What the workload can wait for while [`watched`] runs.
#[derive(Debug, Default)]
pub struct Watch {
    reached: Signal<Result<Instant, String>>,
    deadline: Signal<()>,
    stop: AtomicBool,
}

impl Watch {
    /// Completes when the [`ProcessedGoal`] is reached (with when), or cannot be (why): the
    /// timeout expired or the worker stopped.
    pub fn reached(&self) -> SignalWait<'_, Result<Instant, String>> {
        self.reached.wait()
    }

    /// [`Watch::reached`] for threads.
    pub fn reached_blocking(&self) -> Result<Instant, String> {
        loop {
            if let Some(r) = self.reached.wait_timeout(Duration::from_secs(1)) {
                return r;
            }
        }
    }

    /// Completes when the run's timeout expired.
    pub fn deadline(&self) -> SignalWait<'_, ()> {
        self.deadline.wait()
    }

    /// Whether the run's timeout expired.
    pub fn expired(&self) -> bool {
        self.deadline.get().is_some()
    }
}

/// Runs `body` while a thread samples connections and watches `goal`; returns the body's output
/// and how many connections the run added at most (above the count just before `body` started,
/// which includes the monitor's own).
pub fn watched<R>(
    monitor: &Monitor,
    target: &Target,
    timeout: Duration,
    goal: Option<&ProcessedGoal>,
    body: impl FnOnce(&Watch) -> R,
) -> Result<(R, u64), BoxError> {
    let baseline = monitor.connections(target)?;
    let watch = Watch::default();
    let deadline = Instant::now() + timeout;
    let (out, peak) = std::thread::scope(|s| {
        let thread = std::thread::Builder::new()
            .name("fk-watch".into())
            .spawn_scoped(s, || watch_loop(monitor, target, &watch, goal, deadline));
        let out = body(&watch);
        watch.stop.store(true, Ordering::Release);
        let peak = match thread {
            Ok(t) => t.join().unwrap_or(baseline),
            Err(_) => baseline,
        };
        (out, peak)
    });
    Ok((out, peak.saturating_sub(baseline)))
}

fn watch_loop(
    monitor: &Monitor,
    target: &Target,
    watch: &Watch,
    goal: Option<&ProcessedGoal>,
    deadline: Instant,
) -> u64 {
    let mut peak = 0;
    let mut next_sample = Instant::now();
    loop {
        let now = Instant::now();
        if now >= next_sample {
            if let Ok(c) = monitor.connections(target) {
                peak = peak.max(c);
            }
            next_sample = now + CONN_SAMPLE_EVERY;
        }
        if watch.stop.load(Ordering::Acquire) {
            break;
        }
        if now >= deadline {
            watch.deadline.set(());
        }
        let mut pause = Duration::from_millis(10);
        if let Some(g) = goal.filter(|_| watch.reached.get().is_none()) {
            let local = g.handled.load(Ordering::Relaxed);
            let acked = || {
                monitor
                    .snapshot()
                    .map(|s| s.processed.saturating_sub(g.base))
            };
            if local >= g.n {
                pause = Duration::from_millis(1);
                match acked() {
                    Ok(a) if a >= g.n => watch.reached.set(Ok(Instant::now())),
                    Ok(_) => {}
                    Err(e) => watch.reached.set(Err(format!("INFO failed: {e}"))),
                }
            }
            let why = if g.stopped.load(Ordering::Acquire) {
                Some("the worker stopped")
            } else if now >= deadline {
                Some("the timeout expired")
            } else {
                None
            };
            if let (Some(why), None) = (why, watch.reached.get()) {
                let acked = acked().map_or_else(|e| format!("? ({e})"), |a| a.to_string());
                watch.reached.set(Err(format!(
                    "gave up: {local} of {} jobs handled, {acked} acknowledged when {why}",
                    g.n
                )));
            }
        }
        std::thread::sleep(pause);
    }
    if let Ok(c) = monitor.connections(target) {
        peak = peak.max(c);
    }
    peak
}

/// Time, client CPU, server CPU and peak RSS of a measured phase.
#[derive(Debug)]
pub struct Meter {
    start: Instant,
    cpu: CpuMark,
    server_cpu: Option<f64>,
    end: OnceLock<End>,
}

#[derive(Debug, Clone, Copy)]
struct End {
    at: Instant,
    cpu: CpuMark,
    server_cpu: Option<f64>,
    peak_rss_kb: Option<u64>,
}

impl Meter {
    /// Starts measuring now.
    pub fn start(target: &Target) -> Meter {
        Meter {
            server_cpu: target.server_cpu_seconds(),
            cpu: CpuMark::now(),
            start: Instant::now(),
            end: OnceLock::new(),
        }
    }

    /// When it started.
    pub fn started(&self) -> Instant {
        self.start
    }

    /// Ends the phase now (the first call wins).
    pub fn stop(&self, target: &Target) {
        self.stop_at(Instant::now(), target);
    }

    /// Ends the phase at `at` (when the goal was seen reached), reading the counters now (the
    /// first call wins).
    pub fn stop_at(&self, at: Instant, target: &Target) {
        let _ = self.end.set(End {
            at,
            cpu: CpuMark::now(),
            server_cpu: target.server_cpu_seconds(),
            peak_rss_kb: measure::peak_rss_kb(),
        });
    }

    /// When the phase ended, if it did.
    pub fn ended_at(&self) -> Option<Instant> {
        self.end.get().map(|e| e.at)
    }

    /// Fills `m`'s seconds, CPU and RSS (ending the phase now if it was not ended).
    pub fn fill(&self, target: &Target, m: &mut Measurement) {
        self.stop(target);
        let Some(end) = self.end.get() else {
            return;
        };
        m.seconds = end.at.duration_since(self.start).as_secs_f64();
        m.cpu_seconds = end.cpu.client_since(&self.cpu);
        m.server_cpu_seconds = self
            .server_cpu
            .zip(end.server_cpu)
            .map(|(a, b)| (b - a).max(0.0));
        m.peak_rss_kb = end.peak_rss_kb;
        if let Some(c) = target.caveat() {
            m.notes.push(c.to_owned());
        }
    }
}
