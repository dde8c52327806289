//! The three measurements, independent of the client library: what is set up before, watched
//! during and checked after each run. A client library supplies only the body (push these jobs,
//! run this worker, …); the runtime modules ([`crate::tokio_rt`], [`crate::async_std_rt`],
//! [`crate::blocking_rt`]) and the `compare` example's `faktory` crate side are such bodies.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use crate::BoxError;
use crate::cli::{Mode, Options};
use crate::measure;
use crate::monitor::{JobCounter, Meter, Monitor, RunGoal, Watch, watched};
use crate::progress::Progress;
use crate::report::Measurement;
use crate::server::{ServerKind, Target};

/// The queues of `load`.
pub const LOAD_QUEUES: [&str; 5] = ["queue0", "queue1", "queue2", "queue3", "queue4"];

/// The jobtype of `load`.
pub const LOAD_JOBTYPE: &str = "SomeJob";

/// A task spawner of an async runtime.
pub trait Exec: Sync {
    /// Spawns `fut`; the returned future completes with its output (`None` if it panicked).
    fn spawn<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Pin<Box<dyn Future<Output = Option<T>> + Send>>;
}

/// Who is measured.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    /// The client library (`faktory-tokio`, …).
    pub client: &'a str,
    /// The runtime (`tokio`, …).
    pub runtime: &'a str,
}

/// Overrides of the worker engine's connection settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineOverrides {
    /// `WorkerConfig::fetches_per_connection`.
    pub fetches_per_connection: Option<usize>,
    /// `WorkerConfig::max_fetch_connections`.
    pub max_fetch_connections: Option<usize>,
}

/// What a `push` body gets.
#[derive(Debug)]
pub struct PushCtx<'a> {
    /// The server.
    pub url: &'a str,
    /// Queue and jobtype of the jobs.
    pub queue: &'a str,
    /// Jobtype.
    pub jobtype: &'a str,
    /// Jobs to push.
    pub n: u64,
    /// Calls in flight.
    pub concurrency: usize,
    /// PUSHB batch size.
    pub bulk: Option<usize>,
    /// Mark the jobs with this run id (`--run-id`), for a later `work --run-id`.
    pub run_id: Option<&'a str>,
    /// Jobs pushed so far (the body bumps it; the progress line reads it).
    pub done: Arc<AtomicU64>,
    /// The run's timeout.
    pub watch: &'a Watch,
}

/// Runs a `push` measurement: the body pushes `n` jobs (connecting its client first); afterwards
/// the queue must have grown by exactly `n` (on a server of ours).
pub fn measure_push(
    who: Who<'_>,
    opts: &Options,
    target: &Target,
    n: u64,
    concurrency: usize,
    bulk: Option<usize>,
    body: impl FnOnce(&PushCtx<'_>) -> Result<(), BoxError>,
) -> Result<Measurement, BoxError> {
    let monitor = Monitor::connect(target.url())?;
    let before = monitor.queue_len(&opts.queue)?;
    let done = Arc::new(AtomicU64::new(0));
    let progress = Progress::start("push", Arc::clone(&done), n, opts.progress);
    let meter = Meter::start(target);
    let (result, connections) = watched(&monitor, target, opts.timeout, None, |watch| {
        let ctx = PushCtx {
            url: target.url(),
            queue: &opts.queue,
            jobtype: &opts.jobtype,
            n,
            concurrency,
            bulk,
            run_id: opts.run_id.as_deref(),
            done: Arc::clone(&done),
            watch,
        };
        let r = body(&ctx);
        meter.stop(target);
        r
    })?;
    progress.finish();
    result?;
    let mut m = Measurement::new("push", who.client, who.runtime, target.kind().as_str());
    meter.fill(target, &mut m);
    if target.kind() != ServerKind::External {
        let after = monitor.queue_len(&opts.queue)?;
        if after != before + n {
            return Err(
                format!("push: the queue holds {after} jobs, expected {before} + {n}").into(),
            );
        }
    }
    m.jobs = n;
    m.connections = Some(connections);
    m.param("concurrency", concurrency as u64)
        .param("queue", opts.queue.as_str());
    if let Some(b) = bulk {
        m.param("bulk", b as u64);
    }
    if let Some(id) = &opts.run_id {
        m.param("run_id", id.as_str());
    }
    Ok(m)
}

/// What a `work` body gets.
#[derive(Debug)]
pub struct WorkCtx<'a> {
    /// The server.
    pub url: &'a str,
    /// The queue to drain.
    pub queue: &'a str,
    /// The jobtype to register.
    pub jobtype: &'a str,
    /// Worker concurrency.
    pub concurrency: usize,
    /// Engine overrides (the body applies them, or refuses them if it cannot).
    pub engine: EngineOverrides,
    /// The handler calls [`JobCounter::count`] for every job, with the job's
    /// [`crate::monitor::RUN_FIELD`].
    pub counter: JobCounter,
    /// The body sets this when the worker's run returned.
    pub stopped: Arc<AtomicBool>,
    /// Wait on [`Watch::reached`], then call [`Meter::stop_at`] before shutting the worker down.
    pub watch: &'a Watch,
    /// The phase's meter.
    pub meter: &'a Meter,
    /// The server (for [`Meter::stop_at`]).
    pub target: &'a Target,
}

/// What a `work` body reports besides success.
#[derive(Debug, Default)]
pub struct WorkOutcome {
    /// Fetch connections the worker was configured with, if the library says.
    pub fetch_connections: Option<usize>,
    /// Outcomes (ACKs) the worker's stop report lists as not confirmed by the server; `None` when
    /// the library does not say.
    pub unconfirmed: Option<u64>,
    /// Running jobs the worker's shutdown FAILed, when the library says (the `faktory` crate).
    pub shutdown_failed: Option<u64>,
    /// Why the worker's stop was not clean (unconfirmed ACKs, abandoned FETCHes, an error), if it
    /// was not: the run fails.
    pub unclean: Option<String>,
    /// Remarks.
    pub notes: Vec<String>,
}

/// The parameters of `work`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkParams {
    /// Jobs to process.
    pub n: u64,
    /// Worker concurrency.
    pub concurrency: usize,
    /// Push the jobs first.
    pub prefill: bool,
    /// Engine overrides.
    pub engine: EngineOverrides,
}

impl WorkParams {
    /// The parameters of a [`Mode::Work`] (`None` for other modes).
    pub fn of(mode: &Mode) -> Option<WorkParams> {
        match *mode {
            Mode::Work {
                n,
                concurrency,
                prefill,
                fetches_per_connection,
                max_fetch_connections,
            } => Some(WorkParams {
                n,
                concurrency,
                prefill,
                engine: EngineOverrides {
                    fetches_per_connection,
                    max_fetch_connections,
                },
            }),
            _ => None,
        }
    }
}

/// The run id of a `work` or `raw` run: `--run-id`, else a new one when the run prefills its own
/// jobs, else none (every job counts).
pub fn run_id_of(opts: &Options, prefill: bool) -> Option<String> {
    match &opts.run_id {
        Some(id) => Some(id.clone()),
        None if prefill => Some(crate::monitor::new_run_id()),
        None => None,
    }
}

/// Runs a `work` measurement: the jobs are prefilled if asked (not measured, and VmHWM is reset
/// after it), then the body runs a worker until its handler has run `n` jobs of this run (the
/// measured phase ends there), and shuts it down gracefully. The run fails unless the worker's
/// stop was clean and `n` jobs were acknowledged (run, less the unconfirmed).
pub fn measure_work(
    who: Who<'_>,
    opts: &Options,
    target: &Target,
    params: WorkParams,
    body: impl FnOnce(&WorkCtx<'_>) -> Result<WorkOutcome, BoxError>,
) -> Result<Measurement, BoxError> {
    let WorkParams {
        n,
        concurrency,
        prefill,
        engine,
    } = params;
    let monitor = Monitor::connect(target.url())?;
    let run_id = run_id_of(opts, prefill);
    if prefill {
        monitor.prefill(n, &opts.queue, &opts.jobtype, run_id.as_deref())?;
    }
    let rss_reset = measure::reset_peak_rss();
    let rss_at_start = measure::rss_kb();
    let info_before = monitor.snapshot()?;
    let goal = RunGoal {
        counter: JobCounter::new(run_id.clone(), n),
        stopped: Arc::new(AtomicBool::new(false)),
    };
    let progress = Progress::start("work", goal.counter.ran_shared(), n, opts.progress);
    let meter = Meter::start(target);
    let (counter, stopped) = (goal.counter.clone(), Arc::clone(&goal.stopped));
    let (result, connections) = watched(&monitor, target, opts.timeout, Some(&goal), |watch| {
        body(&WorkCtx {
            url: target.url(),
            queue: &opts.queue,
            jobtype: &opts.jobtype,
            concurrency,
            engine,
            counter,
            stopped,
            watch,
            meter: &meter,
            target,
        })
    })?;
    let shutdown = meter.ended_at().map(|at| at.elapsed().as_secs_f64());
    progress.finish();
    let outcome = result.map_err(|e| format!("work: {e}"))?;
    let ran = goal.counter.ran();
    // The server's view, a cross-check: ACKs = processed - failures over the run (on a shared
    // server, other clients' too; a real server counts expired reservations as processed).
    let info_after = monitor.snapshot().ok();
    let info_failures = info_after.map(|a| a.failures.saturating_sub(info_before.failures));
    let info_acks = info_after.map(|a| {
        a.processed
            .saturating_sub(info_before.processed)
            .saturating_sub(info_failures.unwrap_or(0))
    });
    if let Some(why) = &outcome.unclean {
        return Err(format!(
            "work: {ran} of {n} jobs run, but the worker's stop was not clean: {why}"
        )
        .into());
    }
    let acknowledged = ran.min(n).saturating_sub(outcome.unconfirmed.unwrap_or(0));
    if acknowledged < n {
        return Err(format!(
            "work: only {acknowledged} of {n} jobs acknowledged ({ran} run, {} unconfirmed)",
            outcome.unconfirmed.unwrap_or(0)
        )
        .into());
    }
    let mut m = Measurement::new("work", who.client, who.runtime, target.kind().as_str());
    meter.fill(target, &mut m);
    m.notes.extend(outcome.notes);
    if !rss_reset {
        m.notes
            .push("could not reset VmHWM after the prefill: peak RSS includes it".into());
    }
    if let Some(f) = outcome.shutdown_failed {
        m.param("shutdown_failed", f);
    }
    if info_acks.is_some_and(|a| a < n) && target.kind() != crate::server::ServerKind::External {
        m.notes.push(format!(
            "the server counted {} ACKs (INFO) for {n} jobs",
            info_acks.unwrap_or(0)
        ));
    }
    m.jobs = n;
    m.connections = Some(connections);
    m.param("concurrency", concurrency as u64)
        .param("queue", opts.queue.as_str())
        .param("ran", ran)
        .param("acknowledged", acknowledged)
        .param("unconfirmed", outcome.unconfirmed)
        .param("info_acks", info_acks)
        .param("info_failures", info_failures)
        .param("rss_at_start_kb", rss_at_start)
        .param(
            "shutdown_seconds",
            shutdown.map(|s| (s * 1000.0).round() / 1000.0),
        );
    match &run_id {
        Some(id) => {
            m.param("run_id", id.as_str())
                .param("other_jobs", goal.counter.others());
        }
        None => m.notes.push(
            "no --run-id and no --prefill: every job of the queue counted as the run's".into(),
        ),
    }
    if let Some(f) = outcome.fetch_connections {
        m.param("fetch_connections", f as u64);
    }
    if let Some(f) = engine.fetches_per_connection {
        m.param("fetches_per_connection", f as u64);
    }
    if let Some(c) = engine.max_fetch_connections {
        m.param("max_fetch_connections", c as u64);
    }
    Ok(m)
}

/// What a `load` body gets.
#[derive(Debug)]
pub struct LoadCtx<'a> {
    /// The server.
    pub url: &'a str,
    /// Pushes (and fetches) to do.
    pub jobs: u64,
    /// Connections in all.
    pub threads: usize,
    /// Of which pushing (the first ones).
    pub pushers: usize,
    /// Pushes and fetches done (progress).
    pub done: Arc<AtomicU64>,
    /// Push slots claimed.
    pub pushed: Arc<AtomicU64>,
    /// Fetch slots claimed.
    pub fetched: Arc<AtomicU64>,
    /// Seed of the random picks (queues, FAILs); each connection forks its own generator from it.
    pub seed: u64,
    /// The run's timeout.
    pub watch: &'a Watch,
}

impl LoadCtx<'_> {
    /// One generator per connection, forked from one seeded with [`LoadCtx::seed`].
    pub fn generators(&self) -> Vec<fastrand::Rng> {
        let mut root = fastrand::Rng::with_seed(self.seed);
        (0..self.threads).map(|_| root.fork()).collect()
    }
}

/// A random pick of [`LOAD_QUEUES`].
pub fn load_queue(rng: &mut fastrand::Rng) -> &'static str {
    LOAD_QUEUES
        .get(rng.usize(..LOAD_QUEUES.len()))
        .copied()
        .unwrap_or("queue0")
}

/// Whether this fetched job of `load` is the 1% that FAILs.
pub fn load_fails(rng: &mut fastrand::Rng) -> bool {
    rng.u32(..100) == 0
}

/// Runs a `load` measurement.
pub fn measure_load(
    who: Who<'_>,
    opts: &Options,
    target: &Target,
    jobs: u64,
    threads: usize,
    body: impl FnOnce(&LoadCtx<'_>) -> Result<(), BoxError>,
) -> Result<Measurement, BoxError> {
    let monitor = Monitor::connect(target.url())?;
    let pushers = threads / 2;
    let seed = opts.seed.unwrap_or_else(|| fastrand::u64(..));
    let done = Arc::new(AtomicU64::new(0));
    let progress = Progress::start("load", Arc::clone(&done), 2 * jobs, opts.progress);
    let meter = Meter::start(target);
    let (result, connections) = watched(&monitor, target, opts.timeout, None, |watch| {
        let r = body(&LoadCtx {
            url: target.url(),
            jobs,
            threads,
            pushers,
            done,
            pushed: Arc::new(AtomicU64::new(0)),
            fetched: Arc::new(AtomicU64::new(0)),
            seed,
            watch,
        });
        meter.stop(target);
        r
    })?;
    progress.finish();
    result.map_err(|e| format!("load: {e}"))?;
    let mut m = Measurement::new("load", who.client, who.runtime, target.kind().as_str());
    meter.fill(target, &mut m);
    m.jobs = jobs;
    m.connections = Some(connections);
    m.param("threads", threads as u64)
        .param("pushers", pushers as u64)
        .param("fetchers", (threads - pushers) as u64)
        .param("seed", seed);
    Ok(m)
}

/// Runs a `raw` measurement: the raw-socket client ([`crate::raw`]) with `connections`
/// connections fetches and ACKs `n` jobs from the queue (prefilled first if asked, not measured);
/// the phase ends when the last ACK was answered. Fails unless `n` ACKs were confirmed.
pub fn measure_raw(
    opts: &Options,
    target: &Target,
    n: u64,
    connections: usize,
    prefill: bool,
) -> Result<Measurement, BoxError> {
    let url = faktory_proto::config::ServerUrl::parse(target.url())?;
    let monitor = Monitor::connect(target.url())?;
    if prefill {
        let run_id = run_id_of(opts, true);
        monitor.prefill(n, &opts.queue, &opts.jobtype, run_id.as_deref())?;
    }
    let rss_reset = measure::reset_peak_rss();
    let done = Arc::new(AtomicU64::new(0));
    let progress = Progress::start("raw", Arc::clone(&done), n, opts.progress);
    let meter = Meter::start(target);
    let (result, conns) = watched(&monitor, target, opts.timeout, None, |watch| {
        let r = crate::raw::fetch_ack(&url, &opts.queue, connections, n, &done, &|| {
            watch.expired()
        });
        meter.stop(target);
        r
    })?;
    progress.finish();
    let acked = done.load(std::sync::atomic::Ordering::Relaxed);
    result.map_err(|e| format!("raw: {e} ({acked} of {n} jobs ACKed)"))?;
    if acked < n {
        return Err(format!(
            "raw: only {acked} of {n} jobs ACKed (the queue ran empty, or the timeout expired: \
             --prefill fills it)"
        )
        .into());
    }
    let mut m = Measurement::new("raw", crate::raw::CLIENT, "threads", target.kind().as_str());
    meter.fill(target, &mut m);
    if !rss_reset {
        m.notes
            .push("could not reset VmHWM after the prefill: peak RSS includes it".into());
    }
    m.jobs = n;
    m.connections = Some(conns);
    m.param("fetch_connections", connections as u64)
        .param("queue", opts.queue.as_str())
        .param("acknowledged", acked);
    Ok(m)
}

/// A [`WorkOutcome`] from a stop report of this workspace's workers: clean, or why not.
pub fn outcome_of(
    fetch_connections: Option<usize>,
    report: &faktory_proto::worker::StopReport,
) -> WorkOutcome {
    let unclean = (!report.is_clean()
        || report.reason != faktory_proto::worker::StopReason::Shutdown)
        .then(|| {
            format!(
                "stopped by {:?} with {} unconfirmed ACK/FAILs and {} abandoned FETCHes",
                report.reason,
                report.unconfirmed.len(),
                report.abandoned_fetches
            )
        });
    WorkOutcome {
        fetch_connections,
        unconfirmed: Some(report.unconfirmed.len() as u64),
        shutdown_failed: None,
        unclean,
        notes: Vec::new(),
    }
}

/// The async bodies of `push`, `work` and `load`, for an adapter crate `$krate` with the
/// `faktory-tokio` API (`faktory_tokio`, `faktory_async_std`) and an [`Exec`] type `$exec`. The
/// invoking module provides `configure_client(&$exec, ClientBuilder) -> ClientBuilder` and
/// `configure_worker(&$exec, WorkerBuilder) -> WorkerBuilder` (spawner selection).
macro_rules! async_bodies {
    ($krate:ident, $exec:ty) => {
        use std::sync::atomic::Ordering;

        use $crate::signal::{Either, race};
        use $crate::workloads::{Exec, LOAD_JOBTYPE, LOAD_QUEUES, LoadCtx, PushCtx, WorkCtx};

        async fn connect(exec: &$exec, url: &str) -> Result<$krate::Client, $crate::BoxError> {
            Ok(configure_client(exec, $krate::Client::builder().url(url)?)
                .connect()
                .await?)
        }

        /// The `push` body.
        pub(super) async fn push_body(
            exec: &$exec,
            ctx: &PushCtx<'_>,
        ) -> Result<(), $crate::BoxError> {
            let client = connect(exec, ctx.url).await?;
            let claimed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
            let tasks: Vec<_> = (0..ctx.concurrency)
                .map(|_| {
                    let (client, claimed, done) = (
                        client.clone(),
                        std::sync::Arc::clone(&claimed),
                        std::sync::Arc::clone(&ctx.done),
                    );
                    let (queue, jobtype) = (ctx.queue.to_owned(), ctx.jobtype.to_owned());
                    let run_id = ctx.run_id.map(str::to_owned);
                    let (n, bulk) = (ctx.n, ctx.bulk);
                    exec.spawn(async move {
                        loop {
                            let first =
                                claimed.fetch_add(bulk.unwrap_or(1) as u64, Ordering::Relaxed);
                            if first >= n {
                                return Ok::<(), $crate::BoxError>(());
                            }
                            match bulk {
                                None => {
                                    client
                                        .push($crate::monitor::bench_job(
                                            &jobtype,
                                            &queue,
                                            run_id.as_deref(),
                                        )?)
                                        .await?;
                                    done.fetch_add(1, Ordering::Relaxed);
                                }
                                Some(b) => {
                                    let count = (n - first).min(b as u64);
                                    let jobs = (0..count)
                                        .map(|_| {
                                            $crate::monitor::bench_job(
                                                &jobtype,
                                                &queue,
                                                run_id.as_deref(),
                                            )
                                        })
                                        .collect::<Result<Vec<_>, _>>()?;
                                    let refused = client.push_bulk(jobs).await?;
                                    if !refused.is_empty() {
                                        return Err(format!(
                                            "PUSHB: the server refused {} jobs",
                                            refused.len()
                                        )
                                        .into());
                                    }
                                    done.fetch_add(count, Ordering::Relaxed);
                                }
                            }
                        }
                    })
                })
                .collect();
            let all = async {
                for t in tasks {
                    t.await.ok_or("a push task panicked")??;
                }
                Ok::<(), $crate::BoxError>(())
            };
            match race(all, ctx.watch.deadline()).await {
                Either::Left(r) => r?,
                Either::Right(()) => {
                    return Err(format!(
                        "push: gave up at the timeout with {} of {} jobs pushed",
                        ctx.done.load(Ordering::Relaxed),
                        ctx.n
                    )
                    .into());
                }
            }
            client.close().await?;
            Ok(())
        }

        /// The `work` body.
        pub(super) async fn work_body(
            exec: &$exec,
            ctx: &WorkCtx<'_>,
        ) -> Result<$crate::workloads::WorkOutcome, $crate::BoxError> {
            let stop = $krate::CancellationToken::new();
            let counter = ctx.counter.clone();
            let mut fetch_connections = None;
            let builder = $krate::Worker::builder()
                .url(ctx.url)?
                .queues([ctx.queue])
                .concurrency(ctx.concurrency)
                .config(|c| {
                    if let Some(f) = ctx.engine.fetches_per_connection {
                        c.fetches_per_connection = f;
                    }
                    if let Some(m) = ctx.engine.max_fetch_connections {
                        c.max_fetch_connections = m;
                    }
                    fetch_connections = Some(c.fetch_connections());
                })
                .register(ctx.jobtype, move |job: $krate::Job| {
                    counter.count(
                        job.custom_value($crate::monitor::RUN_FIELD)
                            .and_then(|v| v.as_str()),
                    );
                    std::future::ready(Ok::<(), $krate::BoxError>(()))
                })
                .shutdown_signal(stop.clone().cancelled_owned());
            let worker = configure_worker(exec, builder).build()?;
            let stopped = std::sync::Arc::clone(&ctx.stopped);
            let running = exec.spawn(async move {
                let report = worker.run().await;
                stopped.store(true, Ordering::Release);
                report
            });
            let reached = ctx.watch.reached().await;
            match reached {
                Ok(at) => ctx.meter.stop_at(at, ctx.target),
                Err(_) => ctx.meter.stop(ctx.target),
            }
            stop.cancel();
            let report = running.await;
            reached?;
            let report = report.ok_or("the worker task panicked")?;
            Ok($crate::workloads::outcome_of(fetch_connections, &report))
        }

        /// The `load` body.
        pub(super) async fn load_body(
            exec: &$exec,
            ctx: &LoadCtx<'_>,
        ) -> Result<(), $crate::BoxError> {
            let mut clients = Vec::with_capacity(ctx.threads);
            for _ in 0..ctx.threads {
                clients.push(connect(exec, ctx.url).await?);
            }
            let jobs = ctx.jobs;
            let tasks: Vec<_> = clients
                .into_iter()
                .enumerate()
                .zip(ctx.generators())
                .map(|((i, client), mut rng)| {
                    let done = std::sync::Arc::clone(&ctx.done);
                    if i < ctx.pushers {
                        let pushed = std::sync::Arc::clone(&ctx.pushed);
                        exec.spawn(async move {
                            while pushed.fetch_add(1, Ordering::Relaxed) < jobs {
                                let queue = $crate::workloads::load_queue(&mut rng);
                                client
                                    .push($crate::monitor::bench_job(LOAD_JOBTYPE, queue, None)?)
                                    .await?;
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                            client.close().await?;
                            Ok::<(), $crate::BoxError>(())
                        })
                    } else {
                        let fetched = std::sync::Arc::clone(&ctx.fetched);
                        exec.spawn(async move {
                            while fetched.fetch_add(1, Ordering::Relaxed) < jobs {
                                let job = loop {
                                    if let Some(job) = client.fetch(&LOAD_QUEUES).await? {
                                        break job;
                                    }
                                };
                                if $crate::workloads::load_fails(&mut rng) {
                                    client
                                        .fail($krate::Fail::new(
                                            job.jid,
                                            "LoadTestError",
                                            "the 1% of load that fails",
                                            Vec::new(),
                                        ))
                                        .await?;
                                } else {
                                    client.ack(&job.jid).await?;
                                }
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                            client.close().await?;
                            Ok::<(), $crate::BoxError>(())
                        })
                    }
                })
                .collect();
            let all = async {
                for t in tasks {
                    t.await.ok_or("a load task panicked")??;
                }
                Ok::<(), $crate::BoxError>(())
            };
            match race(all, ctx.watch.deadline()).await {
                Either::Left(r) => r,
                Either::Right(()) => Err(format!(
                    "gave up at the timeout: {} pushes and fetches done of {}",
                    ctx.done.load(Ordering::Relaxed),
                    2 * ctx.jobs
                )
                .into()),
            }
        }
    };
}

pub(crate) use async_bodies;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Runtime, parse, run_on};

    fn options(args: &[&str]) -> Options {
        let mut all = vec!["--no-progress", "--timeout", "60"];
        all.extend_from_slice(args);
        parse(all).unwrap()
    }

    #[test]
    fn work_counts_the_runs_own_jobs_and_every_ack_is_confirmed() {
        let target = Target::in_process(None).unwrap();
        let monitor = Monitor::connect(target.url()).unwrap();
        for (i, runtime) in [Runtime::Tokio, Runtime::Blocking].into_iter().enumerate() {
            let queue = format!("wq{i}");
            // Leftovers of an earlier run, ahead of this run's jobs in the queue.
            monitor
                .prefill(5, &queue, "Noop", Some("an-earlier-run"))
                .unwrap();
            let mut opts = options(&["work", "20", "--prefill", "--queue", &queue]);
            opts.runtime = runtime;
            let m = run_on(&opts, &target).unwrap();
            assert_eq!(m.jobs, 20);
            assert_eq!(m.params["ran"], 20, "{runtime}: {m:?}");
            assert_eq!(m.params["acknowledged"], 20, "{runtime}: {m:?}");
            assert_eq!(m.params["unconfirmed"], 0, "{runtime}: {m:?}");
            assert_eq!(m.params["other_jobs"], 5, "{runtime}: {m:?}");
            assert!(m.params["shutdown_seconds"].as_f64().is_some());
            assert_eq!(monitor.queue_len(&queue).unwrap(), 0);
        }
    }

    #[test]
    fn load_and_raw_run_to_the_end() {
        let target = Target::in_process(None).unwrap();
        let m = run_on(&options(&["load", "60", "4", "--seed", "3"]), &target).unwrap();
        assert_eq!((m.jobs, &m.params["seed"]), (60, &serde_json::json!(3)));
        let m = run_on(
            &options(&[
                "raw",
                "30",
                "--prefill",
                "--connections",
                "3",
                "--queue",
                "rq",
            ]),
            &target,
        )
        .unwrap();
        assert_eq!(m.params["acknowledged"], 30);
        assert!(
            run_on(&options(&["raw", "5", "--queue", "empty"]), &target).is_err(),
            "an empty queue cannot give 5 jobs"
        );
    }
}
