//! The workloads on `faktory-tokio` (`--runtime tokio`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use faktory_tokio::{BoxError as HandlerError, CancellationToken, Client, Fail, Job, Worker};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::BoxError;
use crate::cli::{Mode, Options};
use crate::measure::{self, CpuMark};
use crate::monitor::{self, ConnPeak, Monitor, bench_job};
use crate::progress::Progress;
use crate::report::Measurement;
use crate::rng::SplitMix64;
use crate::server::{ServerKind, Target};

/// The client's name in reports.
pub const CLIENT: &str = "faktory-tokio";

/// The queues of `load`.
pub const LOAD_QUEUES: [&str; 5] = ["queue0", "queue1", "queue2", "queue3", "queue4"];

/// The jobtype of `load`.
pub const LOAD_JOBTYPE: &str = "SomeJob";

/// The multi-thread runtime every client measurement runs on (one worker thread per core).
pub fn client_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name("fk-client")
        .enable_all()
        .build()
}

/// Runs `opts` on a fresh tokio runtime.
pub fn run(opts: &Options, target: &Target) -> Result<Measurement, BoxError> {
    let rt = client_runtime()?;
    let out = rt.block_on(async {
        match &opts.mode {
            Mode::Load { jobs, threads } => load(opts, target, *jobs, *threads).await,
            Mode::Push {
                n,
                concurrency,
                bulk,
            } => push(opts, target, *n, *concurrency, *bulk).await,
            Mode::Work {
                n,
                concurrency,
                prefill,
                fetches_per_connection,
                max_fetch_connections,
            } => {
                let engine = EngineOverrides {
                    fetches_per_connection: *fetches_per_connection,
                    max_fetch_connections: *max_fetch_connections,
                };
                work(opts, target, *n, *concurrency, *prefill, engine).await
            }
            Mode::ServeTestkit { .. } => Err("serve-testkit is not a measurement".into()),
        }
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    out
}

/// What is measured around a phase: time, client CPU, server CPU.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    start: Instant,
    cpu: CpuMark,
    server_cpu: Option<f64>,
}

impl Phase {
    /// Marks the start (call right before the measured work).
    pub fn start(target: &Target) -> Phase {
        Phase {
            server_cpu: target.server_cpu_seconds(),
            cpu: CpuMark::now(),
            start: Instant::now(),
        }
    }

    /// When it started.
    pub fn started(&self) -> Instant {
        self.start
    }

    /// Ends the phase at `end` and fills the figures of `m` (`jobs` must be set by the caller).
    pub fn finish(&self, end: Instant, target: &Target, m: &mut Measurement) {
        let cpu = CpuMark::now();
        m.seconds = end.duration_since(self.start).as_secs_f64();
        m.cpu_seconds = cpu.client_since(&self.cpu);
        m.server_cpu_seconds = match (self.server_cpu, target.server_cpu_seconds()) {
            (Some(a), Some(b)) => Some((b - a).max(0.0)),
            _ => None,
        };
        m.peak_rss_kb = measure::peak_rss_kb();
        if let Some(c) = target.caveat() {
            m.notes.push(c.to_owned());
        }
    }
}

fn new_measurement(mode: &str, target: &Target) -> Measurement {
    Measurement::new(mode, CLIENT, "tokio", target.kind().as_str())
}

async fn push(
    opts: &Options,
    target: &Target,
    n: u64,
    concurrency: usize,
    bulk: Option<usize>,
) -> Result<Measurement, BoxError> {
    let monitor = Monitor::connect(target.url()).await?;
    let before = monitor.queue_len(&opts.queue).await?;
    let mut peak = ConnPeak::baseline(&monitor, target).await?;
    let client = Client::connect_to(target.url()).await?;
    let done = Arc::new(AtomicU64::new(0));
    let progress = Progress::start("push", Arc::clone(&done), n, opts.progress);
    let phase = Phase::start(target);
    let claimed = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        let (client, claimed, done) = (client.clone(), Arc::clone(&claimed), Arc::clone(&done));
        let (queue, jobtype) = (opts.queue.clone(), opts.jobtype.clone());
        tasks.spawn(async move {
            match bulk {
                None => push_one_by_one(&client, &claimed, &done, n, &jobtype, &queue).await,
                Some(b) => push_batches(&client, &claimed, &done, n, b, &jobtype, &queue).await,
            }
        });
    }
    let all = monitor::sampling(&monitor, target, &mut peak, async {
        let joined = tokio::time::timeout(opts.timeout, async {
            while let Some(r) = tasks.join_next().await {
                r??;
            }
            Ok::<(), BoxError>(())
        })
        .await;
        match joined {
            Ok(r) => r,
            Err(_) => Err(format!(
                "push: gave up after {:?} with {} of {n} jobs pushed",
                opts.timeout,
                done.load(Ordering::Relaxed)
            )
            .into()),
        }
    })
    .await;
    let end = Instant::now();
    peak.sample(&monitor, target).await;
    let mut m = new_measurement("push", target);
    phase.finish(end, target, &mut m);
    progress.finish();
    all?;
    client.close().await?;
    if target.kind() != ServerKind::External {
        let after = monitor.queue_len(&opts.queue).await?;
        if after != before + n {
            return Err(format!(
                "push: the queue holds {after} jobs, expected {} (before) + {n}",
                before
            )
            .into());
        }
    }
    m.jobs = n;
    m.connections = Some(peak.used());
    m.param("concurrency", concurrency as u64)
        .param("queue", opts.queue.as_str());
    if let Some(b) = bulk {
        m.param("bulk", b as u64);
    }
    Ok(m)
}

async fn push_one_by_one(
    client: &Client,
    claimed: &AtomicU64,
    done: &AtomicU64,
    n: u64,
    jobtype: &str,
    queue: &str,
) -> Result<(), BoxError> {
    while claimed.fetch_add(1, Ordering::Relaxed) < n {
        client.push(bench_job(jobtype, queue)?).await?;
        done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

async fn push_batches(
    client: &Client,
    claimed: &AtomicU64,
    done: &AtomicU64,
    n: u64,
    batch: usize,
    jobtype: &str,
    queue: &str,
) -> Result<(), BoxError> {
    loop {
        let first = claimed.fetch_add(batch as u64, Ordering::Relaxed);
        if first >= n {
            return Ok(());
        }
        let count = (n - first).min(batch as u64);
        let jobs = (0..count)
            .map(|_| bench_job(jobtype, queue))
            .collect::<Result<Vec<Job>, _>>()?;
        let refused = client.push_bulk(jobs).await?;
        if !refused.is_empty() {
            return Err(format!("PUSHB: the server refused {} jobs", refused.len()).into());
        }
        done.fetch_add(count, Ordering::Relaxed);
    }
}

/// Overrides of the worker engine's connection settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineOverrides {
    /// `WorkerConfig::fetches_per_connection`.
    pub fetches_per_connection: Option<usize>,
    /// `WorkerConfig::max_fetch_connections`.
    pub max_fetch_connections: Option<usize>,
}

async fn work(
    opts: &Options,
    target: &Target,
    n: u64,
    concurrency: usize,
    prefill: bool,
    engine: EngineOverrides,
) -> Result<Measurement, BoxError> {
    let monitor = Monitor::connect(target.url()).await?;
    if prefill {
        monitor.prefill(n, &opts.queue, &opts.jobtype).await?;
    }
    let rss_reset = measure::reset_peak_rss();
    let base = monitor.snapshot().await?.processed;
    let mut peak = ConnPeak::baseline(&monitor, target).await?;
    let handled = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    let progress = Progress::start("work", Arc::clone(&handled), n, opts.progress);
    let phase = Phase::start(target);
    let counter = Arc::clone(&handled);
    let mut fetch_connections = 0;
    let worker = Worker::builder()
        .url(target.url())?
        .queues([opts.queue.as_str()])
        .concurrency(concurrency)
        .config(|c| {
            if let Some(f) = engine.fetches_per_connection {
                c.fetches_per_connection = f;
            }
            if let Some(m) = engine.max_fetch_connections {
                c.max_fetch_connections = m;
            }
            fetch_connections = c.fetch_connections();
        })
        .register(opts.jobtype.as_str(), move |_job: Job| {
            counter.fetch_add(1, Ordering::Relaxed);
            std::future::ready(Ok::<(), HandlerError>(()))
        })
        .shutdown_signal(stop.clone().cancelled_owned())
        .build()?;
    let running = tokio::spawn(worker.run());
    let reached = monitor::wait_processed(
        &monitor,
        target,
        &mut peak,
        base,
        n,
        &handled,
        phase.started() + opts.timeout,
        || running.is_finished(),
    )
    .await;
    let end = Instant::now();
    let mut m = new_measurement("work", target);
    phase.finish(end, target, &mut m);
    peak.sample(&monitor, target).await;
    progress.finish();
    stop.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(40), running).await;
    reached?;
    match stopped {
        Ok(Ok(report)) if report.is_clean() => {}
        Ok(Ok(report)) => m
            .notes
            .push(format!("worker stopped unclean: {:?}", report.reason)),
        Ok(Err(e)) => return Err(format!("worker task failed: {e}").into()),
        Err(_) => return Err("worker did not stop within 40 s of shutdown".into()),
    }
    if !rss_reset {
        m.notes
            .push("could not reset VmHWM after the prefill: peak RSS includes it".into());
    }
    m.jobs = n;
    m.connections = Some(peak.used());
    m.param("concurrency", concurrency as u64)
        .param("fetch_connections", fetch_connections as u64)
        .param("queue", opts.queue.as_str());
    if let Some(f) = engine.fetches_per_connection {
        m.param("fetches_per_connection", f as u64);
    }
    if let Some(c) = engine.max_fetch_connections {
        m.param("max_fetch_connections", c as u64);
    }
    Ok(m)
}

async fn load(
    opts: &Options,
    target: &Target,
    jobs: u64,
    threads: usize,
) -> Result<Measurement, BoxError> {
    let monitor = Monitor::connect(target.url()).await?;
    let mut peak = ConnPeak::baseline(&monitor, target).await?;
    let pushers = threads / 2;
    let fetchers = threads - pushers;
    let mut clients = Vec::with_capacity(threads);
    for _ in 0..threads {
        clients.push(Client::connect_to(target.url()).await?);
    }
    let done = Arc::new(AtomicU64::new(0));
    let pushed = Arc::new(AtomicU64::new(0));
    let fetched = Arc::new(AtomicU64::new(0));
    let progress = Progress::start("load", Arc::clone(&done), 2 * jobs, opts.progress);
    let phase = Phase::start(target);
    let mut tasks = JoinSet::new();
    for (i, client) in clients.into_iter().enumerate() {
        let (done, pushed, fetched) =
            (Arc::clone(&done), Arc::clone(&pushed), Arc::clone(&fetched));
        let mut rng = SplitMix64::from_entropy(i as u64);
        if i < pushers {
            tasks.spawn(async move {
                while pushed.fetch_add(1, Ordering::Relaxed) < jobs {
                    let queue = LOAD_QUEUES
                        .get(rng.below(LOAD_QUEUES.len()))
                        .copied()
                        .unwrap_or("queue0");
                    client.push(bench_job(LOAD_JOBTYPE, queue)?).await?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                client.close().await?;
                Ok::<(), BoxError>(())
            });
        } else {
            tasks.spawn(async move {
                while fetched.fetch_add(1, Ordering::Relaxed) < jobs {
                    let job = loop {
                        if let Some(job) = client.fetch(&LOAD_QUEUES).await? {
                            break job;
                        }
                    };
                    if rng.percent(1) {
                        client
                            .fail(Fail::new(
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
                Ok::<(), BoxError>(())
            });
        }
    }
    let all = monitor::sampling(&monitor, target, &mut peak, async {
        let joined = tokio::time::timeout(opts.timeout, async {
            while let Some(r) = tasks.join_next().await {
                r??;
            }
            Ok::<(), BoxError>(())
        })
        .await;
        joined.unwrap_or_else(|_| {
            Err(format!(
                "load: gave up after {:?}: {} pushes and fetches done of {}",
                opts.timeout,
                done.load(Ordering::Relaxed),
                2 * jobs
            )
            .into())
        })
    })
    .await;
    let end = Instant::now();
    let mut m = new_measurement("load", target);
    phase.finish(end, target, &mut m);
    progress.finish();
    all?;
    m.jobs = jobs;
    m.connections = Some(peak.used().max(threads as u64));
    m.param("threads", threads as u64)
        .param("pushers", pushers as u64)
        .param("fetchers", fetchers as u64);
    Ok(m)
}
