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
use crate::monitor::{Meter, Monitor, ProcessedGoal, Watch, watched};
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
    /// The handler bumps this for every job.
    pub handled: Arc<AtomicU64>,
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
    /// Remarks (an unclean stop, …).
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

/// Runs a `work` measurement: the jobs are prefilled if asked (not measured, and VmHWM is reset
/// after it), then the body runs a worker until the watch says `n` jobs were acknowledged.
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
    if prefill {
        monitor.prefill(n, &opts.queue, &opts.jobtype)?;
    }
    let rss_reset = measure::reset_peak_rss();
    let rss_at_start = measure::rss_kb();
    let goal = ProcessedGoal {
        base: monitor.snapshot()?.processed,
        n,
        handled: Arc::new(AtomicU64::new(0)),
        stopped: Arc::new(AtomicBool::new(false)),
    };
    let progress = Progress::start("work", Arc::clone(&goal.handled), n, opts.progress);
    let meter = Meter::start(target);
    let (handled, stopped) = (Arc::clone(&goal.handled), Arc::clone(&goal.stopped));
    let (result, connections) = watched(&monitor, target, opts.timeout, Some(&goal), |watch| {
        body(&WorkCtx {
            url: target.url(),
            queue: &opts.queue,
            jobtype: &opts.jobtype,
            concurrency,
            engine,
            handled,
            stopped,
            watch,
            meter: &meter,
            target,
        })
    })?;
    let shutdown = meter.ended_at().map(|at| at.elapsed().as_secs_f64());
    progress.finish();
    let outcome = result.map_err(|e| format!("work: {e}"))?;
    let mut m = Measurement::new("work", who.client, who.runtime, target.kind().as_str());
    meter.fill(target, &mut m);
    m.notes.extend(outcome.notes);
    if !rss_reset {
        m.notes
            .push("could not reset VmHWM after the prefill: peak RSS includes it".into());
    }
    m.jobs = n;
    m.connections = Some(connections);
    m.param("concurrency", concurrency as u64)
        .param("queue", opts.queue.as_str())
        .param("rss_at_start_kb", rss_at_start)
        .param(
            "shutdown_seconds",
            shutdown.map(|s| (s * 1000.0).round() / 1000.0),
        );
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
    /// The run's timeout.
    pub watch: &'a Watch,
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
        .param("fetchers", (threads - pushers) as u64);
    Ok(m)
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
                                        .push($crate::monitor::bench_job(&jobtype, &queue)?)
                                        .await?;
                                    done.fetch_add(1, Ordering::Relaxed);
                                }
                                Some(b) => {
                                    let count = (n - first).min(b as u64);
                                    let jobs = (0..count)
                                        .map(|_| $crate::monitor::bench_job(&jobtype, &queue))
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
            let counter = std::sync::Arc::clone(&ctx.handled);
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
                .register(ctx.jobtype, move |_job: $krate::Job| {
                    counter.fetch_add(1, Ordering::Relaxed);
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
            let mut outcome = $crate::workloads::WorkOutcome {
                fetch_connections,
                notes: Vec::new(),
            };
            match report {
                Some(r) if r.is_clean() => {}
                Some(r) => outcome
                    .notes
                    .push(format!("worker stopped unclean: {:?}", r.reason)),
                None => return Err("the worker task panicked".into()),
            }
            Ok(outcome)
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
                .map(|(i, client)| {
                    let done = std::sync::Arc::clone(&ctx.done);
                    let mut rng = $crate::rng::SplitMix64::from_entropy(i as u64);
                    if i < ctx.pushers {
                        let pushed = std::sync::Arc::clone(&ctx.pushed);
                        exec.spawn(async move {
                            while pushed.fetch_add(1, Ordering::Relaxed) < jobs {
                                let queue = LOAD_QUEUES
                                    .get(rng.below(LOAD_QUEUES.len()))
                                    .copied()
                                    .unwrap_or("queue0");
                                client
                                    .push($crate::monitor::bench_job(LOAD_JOBTYPE, queue)?)
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
                                if rng.percent(1) {
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
