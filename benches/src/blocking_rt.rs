//! `--runtime blocking`: the workloads on `faktory-blocking` (threads, no async runtime): `push`
//! with `--concurrency` threads sharing one `Client`, `work` with the worker on its own thread,
//! `load` with one thread per connection.

use std::sync::atomic::Ordering;

use faktory_blocking::{BoxError as HandlerError, Client, Fail, Job, ShutdownHandle, Worker};

use crate::BoxError;
use crate::cli::{Mode, Options};
use crate::monitor::{RUN_FIELD, bench_job};
use crate::report::Measurement;
use crate::server::Target;
use crate::workloads::{
    self, LOAD_JOBTYPE, LOAD_QUEUES, LoadCtx, PushCtx, Who, WorkCtx, WorkOutcome, WorkParams,
    load_fails, load_queue,
};

/// The client's name in reports.
pub const CLIENT: &str = "faktory-blocking";

/// Runs `opts` on threads.
pub fn run(opts: &Options, target: &Target) -> Result<Measurement, BoxError> {
    let who = Who {
        client: CLIENT,
        runtime: "blocking",
    };
    match &opts.mode {
        Mode::Load { jobs, threads } => {
            workloads::measure_load(who, opts, target, *jobs, *threads, load_body)
        }
        Mode::Push {
            n,
            concurrency,
            bulk,
        } => workloads::measure_push(who, opts, target, *n, *concurrency, *bulk, push_body),
        Mode::Work { .. } => {
            let params = WorkParams::of(&opts.mode).ok_or("not work")?;
            workloads::measure_work(who, opts, target, params, work_body)
        }
        other => Err(format!("{} is not a measurement of a client", other.name()).into()),
    }
}

fn join_all(
    handles: Vec<std::thread::ScopedJoinHandle<'_, Result<(), BoxError>>>,
) -> Result<(), BoxError> {
    for h in handles {
        h.join().map_err(|_| "a thread panicked")??;
    }
    Ok(())
}

fn push_body(ctx: &PushCtx<'_>) -> Result<(), BoxError> {
    let client = Client::connect_to(ctx.url)?;
    let claimed = std::sync::atomic::AtomicU64::new(0);
    let step = ctx.bulk.unwrap_or(1) as u64;
    std::thread::scope(|s| {
        let handles = (0..ctx.concurrency)
            .map(|_| {
                s.spawn(|| {
                    loop {
                        let first = claimed.fetch_add(step, Ordering::Relaxed);
                        if first >= ctx.n {
                            return Ok(());
                        }
                        if ctx.watch.expired() {
                            return Err("push: gave up at the timeout".into());
                        }
                        match ctx.bulk {
                            None => {
                                client.push(bench_job(ctx.jobtype, ctx.queue, ctx.run_id)?)?;
                                ctx.done.fetch_add(1, Ordering::Relaxed);
                            }
                            Some(b) => {
                                let count = (ctx.n - first).min(b as u64);
                                let jobs = (0..count)
                                    .map(|_| bench_job(ctx.jobtype, ctx.queue, ctx.run_id))
                                    .collect::<Result<Vec<_>, _>>()?;
                                let refused = client.push_bulk(jobs)?;
                                if !refused.is_empty() {
                                    return Err(format!(
                                        "PUSHB: the server refused {} jobs",
                                        refused.len()
                                    )
                                    .into());
                                }
                                ctx.done.fetch_add(count, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        join_all(handles)
    })?;
    client.close()?;
    Ok(())
}

fn work_body(ctx: &WorkCtx<'_>) -> Result<WorkOutcome, BoxError> {
    let stop = ShutdownHandle::new();
    let counter = ctx.counter.clone();
    let mut fetch_connections = None;
    let worker = Worker::builder()
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
        .register(ctx.jobtype, move |job: Job| {
            counter.count(job.custom_value(RUN_FIELD).and_then(|v| v.as_str()));
            Ok::<(), HandlerError>(())
        })
        .shutdown_signal(stop.clone())
        .build()?;
    let stopped = std::sync::Arc::clone(&ctx.stopped);
    let running = std::thread::Builder::new()
        .name("fk-worker".into())
        .spawn(move || {
            let report = worker.run();
            stopped.store(true, Ordering::Release);
            report
        })?;
    let reached = ctx.watch.reached_blocking();
    match reached {
        Ok(at) => ctx.meter.stop_at(at, ctx.target),
        Err(_) => ctx.meter.stop(ctx.target),
    }
    stop.shutdown();
    let report = running.join();
    reached?;
    let report = report.map_err(|_| "the worker thread panicked")?;
    Ok(workloads::outcome_of(fetch_connections, &report))
}

fn load_body(ctx: &LoadCtx<'_>) -> Result<(), BoxError> {
    let clients = (0..ctx.threads)
        .map(|_| Client::connect_to(ctx.url))
        .collect::<Result<Vec<_>, _>>()?;
    std::thread::scope(|s| {
        let handles = clients
            .into_iter()
            .enumerate()
            .zip(ctx.generators())
            .map(|((i, client), mut rng)| {
                s.spawn(move || {
                    if i < ctx.pushers {
                        while ctx.pushed.fetch_add(1, Ordering::Relaxed) < ctx.jobs {
                            let queue = load_queue(&mut rng);
                            client.push(bench_job(LOAD_JOBTYPE, queue, None)?)?;
                            ctx.done.fetch_add(1, Ordering::Relaxed);
                        }
                    } else {
                        while ctx.fetched.fetch_add(1, Ordering::Relaxed) < ctx.jobs {
                            let job = loop {
                                if ctx.watch.expired() {
                                    return Err("gave up at the timeout".into());
                                }
                                if let Some(job) = client.fetch(&LOAD_QUEUES)? {
                                    break job;
                                }
                            };
                            if load_fails(&mut rng) {
                                client.fail(Fail::new(
                                    job.jid,
                                    "LoadTestError",
                                    "the 1% of load that fails",
                                    Vec::new(),
                                ))?;
                            } else {
                                client.ack(&job.jid)?;
                            }
                            ctx.done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    client.close()?;
                    Ok(())
                })
            })
            .collect();
        join_all(handles)
    })
}
