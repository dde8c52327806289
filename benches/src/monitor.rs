//! Watching a run from the outside, the same way for every client and runtime measured:
//!
//! - [`Monitor`]: a connection of its own (a `faktory-blocking` client: no async runtime, so it
//!   fits every mode), opened before the run, so it is part of the connection baseline;
//! - [`watched`]: runs the workload while a thread samples the connection count every 100 ms (the
//!   in-process testkit's handle, else INFO's `connections`) and, for `work`, gives up when the
//!   timeout expires or the worker stops before the [`JobCounter`] has counted the run's jobs;
//! - [`JobCounter`]: the no-op handlers count the jobs of this run (marked with [`RUN_FIELD`]);
//!   the N-th one ends the measured phase;
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

/// The custom field that marks the jobs of one run (`"custom":{"faktory_bench_run":"ID"}`): the
/// `work` handlers count only the jobs that carry the run's id, so jobs left over from earlier
/// runs (or returned by an expired reservation) are not counted.
pub const RUN_FIELD: &str = "faktory_bench_run";

/// The job every mode pushes: `jobtype`, args `[1,"string",3]`, `queue`, and `reserve_for` 600 s
/// (the `faktory` crate 0.13 cannot decode a fetched job without `reserve_for`: its worker stops
/// with "missing field `reserve_for`", so prefilled jobs carry it for both clients); with
/// `run_id`, marked with [`RUN_FIELD`].
pub fn bench_job(jobtype: &str, queue: &str, run_id: Option<&str>) -> Result<Job, JobError> {
    let mut b = Job::builder(jobtype)
        .queue(queue)
        .args((1, "string", 3))
        .reserve_for(600);
    if let Some(id) = run_id {
        b = b.custom(RUN_FIELD, id);
    }
    b.build()
}

/// A run id nobody else has: the process id, the time and a random number.
pub fn new_run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{:x}-{:x}-{:x}",
        std::process::id(),
        nanos,
        fastrand::u32(..)
    )
}

/// Counts the jobs a `work` handler ran: those of this run ([`RUN_FIELD`] equal to the run id),
/// or every job when there is no run id. The N-th job of the run records when it ran, which ends
/// the measured phase. Cheap to clone (one `Arc`); the handler calls [`JobCounter::count`].
#[derive(Clone, Debug)]
pub struct JobCounter {
    inner: Arc<CounterInner>,
}

#[derive(Debug)]
struct CounterInner {
    run_id: Option<String>,
    n: u64,
    ran: Arc<AtomicU64>,
    others: AtomicU64,
    reached: Signal<Result<Instant, String>>,
}

impl JobCounter {
    /// A counter waiting for `n` jobs of `run_id` (of any run when `None`).
    pub fn new(run_id: Option<String>, n: u64) -> JobCounter {
        JobCounter {
            inner: Arc::new(CounterInner {
                run_id,
                n,
                ran: Arc::new(AtomicU64::new(0)),
                others: AtomicU64::new(0),
                reached: Signal::new(),
            }),
        }
    }

    /// A handler ran a job whose [`RUN_FIELD`] is `run` (`None`: the job has none, or it is not
    /// a string).
    pub fn count(&self, run: Option<&str>) {
        let c = &self.inner;
        if let Some(want) = &c.run_id {
            if run != Some(want.as_str()) {
                c.others.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        if c.ran.fetch_add(1, Ordering::Relaxed) + 1 == c.n {
            c.reached.set(Ok(Instant::now()));
        }
    }

    /// Jobs of the run that were run so far.
    pub fn ran(&self) -> u64 {
        self.inner.ran.load(Ordering::Relaxed)
    }

    /// The shared count of [`JobCounter::ran`] (for the progress line).
    pub fn ran_shared(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.inner.ran)
    }

    /// Jobs run that were not of the run (left over from others).
    pub fn others(&self) -> u64 {
        self.inner.others.load(Ordering::Relaxed)
    }

    /// Jobs the run is about.
    pub fn n(&self) -> u64 {
        self.inner.n
    }

    /// The run id counted (`None`: every job).
    pub fn run_id(&self) -> Option<&str> {
        self.inner.run_id.as_deref()
    }

    fn give_up(&self, why: String) {
        self.inner.reached.set(Err(why));
    }
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

    /// Pushes `n` [`bench_job`]s (marked with `run_id`) to `queue`, PUSHB 1,000 at a time
    /// (generated chunk by chunk, so the prefill does not inflate this process's memory).
    pub fn prefill(
        &self,
        n: u64,
        queue: &str,
        jobtype: &str,
        run_id: Option<&str>,
    ) -> Result<(), BoxError> {
        let mut left = n;
        while left > 0 {
            let chunk = left.min(1_000);
            let jobs = (0..chunk)
                .map(|_| bench_job(jobtype, queue, run_id))
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

/// For `work`: the jobs to wait for.
#[derive(Debug, Clone)]
pub struct RunGoal {
    /// What the handlers count.
    pub counter: JobCounter,
    /// Set by the workload when the worker's `run` returned.
    pub stopped: Arc<AtomicBool>,
}

/// What the workload can wait for while [`watched`] runs.
#[derive(Debug)]
pub struct Watch {
    goal: Option<JobCounter>,
    deadline: Signal<()>,
    stop: AtomicBool,
}

impl Watch {
    fn new(goal: Option<JobCounter>) -> Watch {
        Watch {
            goal,
            deadline: Signal::new(),
            stop: AtomicBool::new(false),
        }
    }

    /// Completes when the [`RunGoal`]'s N-th job ran (with when), or cannot (why): the timeout
    /// expired or the worker stopped. Never completes without a goal.
    pub fn reached(&self) -> impl std::future::Future<Output = Result<Instant, String>> + '_ {
        let wait = self.goal.as_ref().map(|g| g.inner.reached.wait());
        async move {
            match wait {
                Some(w) => w.await,
                None => std::future::pending().await,
            }
        }
    }

    /// [`Watch::reached`] for threads.
    pub fn reached_blocking(&self) -> Result<Instant, String> {
        let Some(goal) = &self.goal else {
            return Err("no goal to wait for".into());
        };
        loop {
            if let Some(r) = goal.inner.reached.wait_timeout(Duration::from_secs(1)) {
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
    goal: Option<&RunGoal>,
    body: impl FnOnce(&Watch) -> R,
) -> Result<(R, u64), BoxError> {
    let baseline = monitor.connections(target)?;
    let watch = Watch::new(goal.map(|g| g.counter.clone()));
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
    goal: Option<&RunGoal>,
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
        if let Some(g) = goal {
            let why = if g.stopped.load(Ordering::Acquire) {
                Some("the worker stopped")
            } else if now >= deadline {
                Some("the timeout expired")
            } else {
                None
            };
            if let Some(why) = why {
                let c = &g.counter;
                let others = match c.run_id() {
                    Some(_) => format!(" (and {} jobs of other runs)", c.others()),
                    None => String::new(),
                };
                c.give_up(format!(
                    "gave up: {} of {} jobs run{others} when {why}",
                    c.ran(),
                    c.n()
                ));
            }
        }
        std::thread::sleep(Duration::from_millis(10));
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
        if let Some(p) = target.pace() {
            m.param("pace_us", crate::server::describe_pace(Some(p)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counter_counts_the_runs_jobs_and_records_the_nth() {
        let c = JobCounter::new(Some("r1".into()), 3);
        c.count(Some("r1"));
        c.count(None);
        c.count(Some("r0"));
        c.count(Some("r1"));
        assert_eq!((c.ran(), c.others()), (2, 2));
        assert!(c.inner.reached.get().is_none());
        c.count(Some("r1"));
        assert!(matches!(c.inner.reached.get(), Some(Ok(_))));
        // Later jobs count, and do not move the instant; giving up afterwards changes nothing.
        let at = c.inner.reached.get();
        c.count(Some("r1"));
        c.give_up("late".into());
        assert_eq!(c.ran(), 4);
        assert_eq!(c.inner.reached.get(), at);

        let any = JobCounter::new(None, 2);
        any.count(None);
        any.count(Some("whatever"));
        assert_eq!((any.ran(), any.others()), (2, 0));
        assert!(matches!(any.inner.reached.get(), Some(Ok(_))));

        let short = JobCounter::new(Some("r".into()), 5);
        short.count(Some("r"));
        short.give_up("timeout".into());
        assert_eq!(short.inner.reached.get(), Some(Err("timeout".into())));
    }

    #[test]
    fn jobs_carry_the_run_id() {
        let j = bench_job("Noop", "q", Some("abc")).unwrap();
        assert_eq!(
            j.custom_value(RUN_FIELD).and_then(|v| v.as_str()),
            Some("abc")
        );
        assert!(bench_job("Noop", "q", None).unwrap().custom.is_none());
        assert_ne!(new_run_id(), new_run_id());
    }
}
