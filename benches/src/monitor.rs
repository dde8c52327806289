//! Watching the server during a run: connection counts (the in-process testkit's handle, else
//! INFO's `connections`) and acknowledged jobs (INFO's `total_processed`), on a connection of its
//! own that exists before the run starts (so it is part of the baseline, not of the count).
//!
//! Used for every client measured, ours and the `faktory` crate alike.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use faktory_tokio::{Client, Job};
use tokio::time::Instant;

use crate::BoxError;
use crate::server::Target;

/// How often connections are sampled during a run.
const CONN_SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// A monitoring connection.
#[derive(Debug, Clone)]
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
    pub async fn connect(url: &str) -> Result<Monitor, BoxError> {
        Ok(Monitor {
            client: Client::connect_to(url).await?,
        })
    }

    /// The monitoring client (for prefilling and cleaning up).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// One INFO.
    pub async fn snapshot(&self) -> Result<Snapshot, BoxError> {
        let info = self.client.info().await?;
        Ok(Snapshot {
            connections: info.server.connections,
            processed: info.faktory.total_processed,
            failures: info.faktory.total_failures,
        })
    }

    /// Jobs in `queue` now.
    pub async fn queue_len(&self, queue: &str) -> Result<u64, BoxError> {
        let info = self.client.info().await?;
        Ok(info.faktory.queues.get(queue).copied().unwrap_or(0))
    }

    /// Live connections now: the testkit handle's count when in-process, else INFO's.
    pub async fn connections(&self, target: &Target) -> Result<u64, BoxError> {
        match target.connection_count() {
            Some(n) => Ok(n),
            None => Ok(self.snapshot().await?.connections),
        }
    }

    /// Pushes `n` jobs of `jobtype` with args `[1,"string",3]` to `queue`, PUSHB 1,000 at a time
    /// (generated chunk by chunk, so the prefill does not inflate this process's memory).
    pub async fn prefill(&self, n: u64, queue: &str, jobtype: &str) -> Result<(), BoxError> {
        let mut left = n;
        while left > 0 {
            let chunk = left.min(1_000);
            let jobs = (0..chunk)
                .map(|_| bench_job(jobtype, queue))
                .collect::<Result<Vec<_>, _>>()?;
            let refused = self.client.push_bulk(jobs).await?;
            if !refused.is_empty() {
                return Err(format!("prefill: the server refused {} jobs", refused.len()).into());
            }
            left -= chunk;
        }
        Ok(())
    }
}

/// The job every mode pushes: `jobtype`, args `[1,"string",3]`, `queue`, and `reserve_for` 600 s
/// (the `faktory` crate 0.13 cannot decode a fetched job without `reserve_for`: its worker stops
/// with "missing field `reserve_for`", so prefilled jobs carry it for both clients).
pub fn bench_job(jobtype: &str, queue: &str) -> Result<Job, faktory_tokio::proto::job::JobError> {
    Job::builder(jobtype)
        .queue(queue)
        .args((1, "string", 3))
        .reserve_for(600)
        .build()
}

/// Highest connection count seen, above a baseline taken before the run.
#[derive(Debug, Clone, Copy)]
pub struct ConnPeak {
    baseline: u64,
    peak: u64,
    last_sample: Option<Instant>,
}

impl ConnPeak {
    /// Takes the baseline now (the monitor's own connection included).
    pub async fn baseline(monitor: &Monitor, target: &Target) -> Result<ConnPeak, BoxError> {
        let baseline = monitor.connections(target).await?;
        Ok(ConnPeak {
            baseline,
            peak: baseline,
            last_sample: None,
        })
    }

    /// Samples now.
    pub async fn sample(&mut self, monitor: &Monitor, target: &Target) {
        if let Ok(n) = monitor.connections(target).await {
            self.peak = self.peak.max(n);
        }
        self.last_sample = Some(Instant::now());
    }

    /// Samples if the last sample is older than 100 ms.
    pub async fn sample_if_due(&mut self, monitor: &Monitor, target: &Target) {
        if self
            .last_sample
            .is_none_or(|t| t.elapsed() >= CONN_SAMPLE_EVERY)
        {
            self.sample(monitor, target).await;
        }
    }

    /// Connections the run added at most.
    pub fn used(&self) -> u64 {
        self.peak.saturating_sub(self.baseline)
    }
}

/// Runs `fut` while sampling connections every 100 ms; returns its output and the peak.
pub async fn sampling<F: std::future::Future>(
    monitor: &Monitor,
    target: &Target,
    peak: &mut ConnPeak,
    fut: F,
) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    loop {
        tokio::select! {
            out = &mut fut => return out,
            () = tokio::time::sleep(CONN_SAMPLE_EVERY) => peak.sample(monitor, target).await,
        }
    }
}

/// Waits until INFO's `total_processed` has grown by `n` since `base` (ACKs of a worker that
/// reports handled jobs in `handled`), sampling connections meanwhile. Polls INFO every 20 ms
/// until `handled` reaches `n`, then every millisecond. Returns when it got there; an error at
/// `deadline`, or as soon as `stopped()` says the worker is no longer running.
#[allow(clippy::too_many_arguments)]
pub async fn wait_processed(
    monitor: &Monitor,
    target: &Target,
    peak: &mut ConnPeak,
    base: u64,
    n: u64,
    handled: &AtomicU64,
    deadline: Instant,
    stopped: impl Fn() -> bool,
) -> Result<Instant, BoxError> {
    loop {
        peak.sample_if_due(monitor, target).await;
        let local = handled.load(Ordering::Relaxed);
        if local >= n && monitor.snapshot().await?.processed.saturating_sub(base) >= n {
            return Ok(Instant::now());
        }
        let gave_up = if stopped() {
            Some("the worker stopped")
        } else if Instant::now() >= deadline {
            Some("the timeout expired")
        } else {
            None
        };
        if let Some(why) = gave_up {
            let acked = monitor.snapshot().await?.processed.saturating_sub(base);
            return Err(format!(
                "work: gave up: {local} of {n} jobs handled, {acked} acknowledged when {why}"
            )
            .into());
        }
        let pause = if local >= n { 1 } else { 20 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}
