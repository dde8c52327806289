//! `compare`: our tokio client (`faktory-tokio`) against the `faktory` crate 0.13 from crates.io,
//! and our worker against the raw-socket client (the CPU floor), on the same workloads against ONE
//! testkit process answering at a real server's modelled pace (`faktory_testkit::Pace::real_server`;
//! `--instant`: at once), interleaved A B A B over several rounds; prints medians and ratios, and
//! whether each target is met.
//!
//! ```sh
//! cargo run --release -p faktory-benches --example compare
//! cargo run --release -p faktory-benches --example compare -- --rounds 3 --only work,raw
//! ```
//!
//! Every client run is a child process of its own (this executable re-run as `ours …`, which is
//! `faktory-bench …`, or `theirs …`), so its CPU time and peak RSS are its own; the testkit is a
//! third process (this executable re-run as `serve-testkit`), whose CPU the driver reads around
//! each run. See `benches/README.md` for the scenarios and how to read the output.
//!
//! The `faktory` crate is a dev-dependency of `faktory-benches` only (default features: no TLS
//! library), which is why this is an example and not part of the `faktory-bench` binary.
#![forbid(unsafe_code)]
#![allow(missing_docs)]

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use faktory_benches::BoxError;
use faktory_benches::cli::{self, Mode, Options, REAL_SERVER_RAW, say_err, say_out};
use faktory_benches::measure;
use faktory_benches::monitor::{Monitor, RUN_FIELD};
use faktory_benches::report::{Measurement, thousands};
use faktory_benches::server::{
    Target, TestkitChild, describe_pace, parse_pace, serve_testkit_args,
};
use faktory_benches::signal::{Either, race};
use faktory_benches::tokio_rt;
use faktory_benches::workloads::{
    self, LOAD_JOBTYPE, LOAD_QUEUES, LoadCtx, PushCtx, Who, WorkCtx, WorkOutcome, WorkParams,
};
use faktory_testkit::Pace;
use faktory_tokio::CancellationToken;

const THEIRS: &str = "faktory-rs 0.13";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve-testkit") => cli::main_with(args),
        Some("ours") => cli::main_with(args.into_iter().skip(1)),
        Some("theirs") => theirs_main(args.into_iter().skip(1)),
        _ => {
            let driver =
                match DriverArgs::try_parse_from(std::iter::once("compare".to_owned()).chain(args))
                {
                    Ok(d) => d.plan(),
                    Err(e) => {
                        let _ = e.print();
                        return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
                    }
                };
            cli::init_logging();
            match drive(&driver) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    say_err(&format!("compare: {e}"));
                    ExitCode::FAILURE
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The `faktory` crate's side (child process `theirs …`, same arguments as `faktory-bench`).
// ---------------------------------------------------------------------------------------------

fn theirs_main(args: impl Iterator<Item = String>) -> ExitCode {
    let opts = match cli::parse(args) {
        Ok(o) => o,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    cli::init_logging();
    let result =
        Target::choose(opts.spawn_testkit, opts.pace).and_then(|target| theirs_run(&opts, &target));
    match result {
        Ok(m) => {
            cli::print_measurement(&m, opts.json);
            ExitCode::SUCCESS
        }
        Err(e) => {
            say_err(&format!("compare theirs {}: {e}", opts.mode.name()));
            ExitCode::FAILURE
        }
    }
}

fn theirs_run(opts: &Options, target: &Target) -> Result<Measurement, BoxError> {
    let rt = tokio_rt::client_runtime()?;
    let who = Who {
        client: THEIRS,
        runtime: "tokio",
    };
    let out = match &opts.mode {
        Mode::Push {
            n,
            concurrency: 1,
            bulk,
        } => workloads::measure_push(who, opts, target, *n, 1, *bulk, |ctx| {
            rt.block_on(theirs_push(ctx))
        }),
        Mode::Push { .. } => Err(
            "the faktory crate's Client takes &mut self for every call: it \
             cannot have calls in flight together (use --concurrency 1)"
                .into(),
        ),
        Mode::Work {
            fetches_per_connection: None,
            max_fetch_connections: None,
            ..
        } => match WorkParams::of(&opts.mode) {
            Some(params) => workloads::measure_work(who, opts, target, params, |ctx| {
                rt.block_on(theirs_work(ctx))
            }),
            None => Err("not work".into()),
        },
        Mode::Load { jobs, threads } => {
            workloads::measure_load(who, opts, target, *jobs, *threads, |ctx| {
                rt.block_on(theirs_load(ctx))
            })
        }
        other => Err(format!("{} is not offered for the faktory crate", other.name()).into()),
    };
    // The faktory crate's Client sends END from Drop with block_in_place: everything of theirs
    // has been dropped inside the runtime above; do not wait for stray tasks.
    rt.shutdown_background();
    out
}

#[allow(clippy::needless_pass_by_value)] // used as `map_err(their_error)`
fn their_error(e: faktory::Error) -> BoxError {
    format!("faktory crate: {e:?}").into()
}

fn their_job(jobtype: &str, queue: &str, run_id: Option<&str>) -> faktory::Job {
    let mut job = faktory::Job::new(
        jobtype,
        vec![
            serde_json::Value::from(1),
            serde_json::Value::from("string"),
            serde_json::Value::from(3),
        ],
    )
    .on_queue(queue);
    job.reserve_for = Some(Duration::from_secs(600));
    if let Some(id) = run_id {
        job.custom.insert(RUN_FIELD.to_owned(), id.into());
    }
    job
}

async fn theirs_push(ctx: &PushCtx<'_>) -> Result<(), BoxError> {
    let mut client = faktory::Client::connect_to(ctx.url)
        .await
        .map_err(their_error)?;
    let pushing = async {
        let mut left = ctx.n;
        while left > 0 {
            match ctx.bulk {
                None => {
                    client
                        .enqueue(their_job(ctx.jobtype, ctx.queue, ctx.run_id))
                        .await
                        .map_err(their_error)?;
                    left -= 1;
                    ctx.done.fetch_add(1, Ordering::Relaxed);
                }
                Some(b) => {
                    let count = left.min(b as u64);
                    let jobs: Vec<faktory::Job> = (0..count)
                        .map(|_| their_job(ctx.jobtype, ctx.queue, ctx.run_id))
                        .collect();
                    let (_, errors) = client.enqueue_many(jobs).await.map_err(their_error)?;
                    if let Some(errors) = errors {
                        return Err(format!("PUSHB refused {} jobs", errors.len()).into());
                    }
                    left -= count;
                    ctx.done.fetch_add(count, Ordering::Relaxed);
                }
            }
        }
        Ok::<(), BoxError>(())
    };
    let out = match race(pushing, ctx.watch.deadline()).await {
        Either::Left(r) => r,
        Either::Right(()) => Err("push: gave up at the timeout".into()),
    };
    drop(client); // sends END (inside the runtime, as its Drop needs)
    out
}

/// The faktory crate's worker. What its API allows for counting acknowledged jobs: the handler
/// counts the run's jobs as ours does, and the clock stops at the N-th; its `run` returns
/// `StopDetails`, whose `workers_still_running` are the jobs its graceful shutdown FAILed (those
/// whose ACK was still in flight among them: the shutdown does not wait for it). It does not report
/// ACKs the server did not confirm, so the run fails only if `run` returns an error; the FAILed
/// count is reported as `shutdown_failed`, and the server's own count as `info_acks`.
async fn theirs_work(ctx: &WorkCtx<'_>) -> Result<WorkOutcome, BoxError> {
    let counter = ctx.counter.clone();
    let stop = CancellationToken::new();
    let mut worker = faktory::Worker::builder::<std::io::Error>()
        .workers(ctx.concurrency)
        .register_fn(ctx.jobtype, move |job| {
            counter.count(
                job.custom
                    .get(RUN_FIELD)
                    .and_then(serde_json::Value::as_str),
            );
            std::future::ready(Ok::<(), std::io::Error>(()))
        })
        .with_graceful_shutdown(stop.clone().cancelled_owned())
        .shutdown_timeout(Duration::from_secs(5))
        .connect_to(ctx.url)
        .await
        .map_err(their_error)?;
    let queue = ctx.queue.to_owned();
    let stopped = Arc::clone(&ctx.stopped);
    let running = tokio::spawn(async move {
        let out = worker.run(&[queue.as_str()]).await;
        drop(worker);
        stopped.store(true, Ordering::Release);
        out
    });
    let reached = ctx.watch.reached().await;
    match reached {
        Ok(at) => ctx.meter.stop_at(at, ctx.target),
        Err(_) => ctx.meter.stop(ctx.target),
    }
    stop.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(15), running).await;
    if let Err(e) = reached {
        return Err(format!("{e}; the worker's run returned {stopped:?}").into());
    }
    let mut outcome = WorkOutcome::default();
    match stopped {
        Ok(Ok(Ok(details))) => {
            let failed = details.workers_still_running as u64;
            outcome.shutdown_failed = Some(failed);
            if failed > 0 {
                outcome.notes.push(format!(
                    "its graceful shutdown FAILed {failed} jobs still running or ACKing"
                ));
            }
        }
        Ok(Ok(Err(e))) => outcome.unclean = Some(format!("its run returned {e:?}")),
        Ok(Err(e)) => return Err(format!("worker task failed: {e}").into()),
        Err(_) => return Err("worker did not stop within 15 s of shutdown".into()),
    }
    Ok(outcome)
}

/// The load test on the faktory crate, as close to ours as its API allows: the pushers are
/// `Client`s (`enqueue`, one job at a time); the fetchers are one-slot `Worker`s driven by
/// `run_one` (FETCH, the handler, then ACK, or FAIL when the handler fails 1% of the time), since
/// its `Client` has no FETCH/ACK/FAIL of its own.
async fn theirs_load(ctx: &LoadCtx<'_>) -> Result<(), BoxError> {
    enum Conn {
        Push(faktory::Client),
        Fetch(faktory::Worker<std::io::Error>),
    }
    let mut conns = Vec::with_capacity(ctx.threads);
    let mut generators = ctx.generators();
    for i in 0..ctx.threads {
        if i < ctx.pushers {
            conns.push(Conn::Push(
                faktory::Client::connect_to(ctx.url)
                    .await
                    .map_err(their_error)?,
            ));
        } else {
            let rng = Arc::new(Mutex::new(
                generators
                    .get_mut(i)
                    .map_or_else(fastrand::Rng::new, |g| g.fork()),
            ));
            let worker = faktory::Worker::builder::<std::io::Error>()
                .register_fn(LOAD_JOBTYPE, move |_job| {
                    let fail = workloads::load_fails(
                        &mut rng.lock().unwrap_or_else(PoisonError::into_inner),
                    );
                    std::future::ready(if fail {
                        Err(std::io::Error::other("the 1% of load that fails"))
                    } else {
                        Ok(())
                    })
                })
                .connect_to(ctx.url)
                .await
                .map_err(their_error)?;
            conns.push(Conn::Fetch(worker));
        }
    }
    let jobs = ctx.jobs;
    let tasks: Vec<_> = conns
        .into_iter()
        .zip(generators)
        .map(|(conn, mut rng)| {
            let done = Arc::clone(&ctx.done);
            match conn {
                Conn::Push(mut client) => {
                    let pushed = Arc::clone(&ctx.pushed);
                    tokio::spawn(async move {
                        while pushed.fetch_add(1, Ordering::Relaxed) < jobs {
                            let queue = workloads::load_queue(&mut rng);
                            client
                                .enqueue(their_job(LOAD_JOBTYPE, queue, None))
                                .await
                                .map_err(their_error)?;
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        drop(client);
                        Ok::<(), BoxError>(())
                    })
                }
                Conn::Fetch(mut worker) => {
                    let fetched = Arc::clone(&ctx.fetched);
                    tokio::spawn(async move {
                        while fetched.fetch_add(1, Ordering::Relaxed) < jobs {
                            while !worker.run_one(0, &LOAD_QUEUES).await.map_err(their_error)? {}
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        drop(worker);
                        Ok::<(), BoxError>(())
                    })
                }
            }
        })
        .collect();
    let all = async {
        for t in tasks {
            t.await.map_err(|e| format!("a load task failed: {e}"))??;
        }
        Ok::<(), BoxError>(())
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

// ---------------------------------------------------------------------------------------------
// The driver.
// ---------------------------------------------------------------------------------------------

/// The scenarios, in the order they run within a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Worker, concurrency 10: ours vs the faktory crate.
    Work,
    /// Worker, concurrency 50: ours vs the faktory crate.
    Work50,
    /// The raw-socket client, 10 connections.
    Raw,
    /// PUSH one job per call.
    Push,
    /// PUSHB batches of 100.
    Pushb100,
    /// PUSHB batches of 1,000.
    Pushb1000,
    /// Faktory's load test.
    Load,
}

const ALL: [Scenario; 7] = [
    Scenario::Work,
    Scenario::Work50,
    Scenario::Raw,
    Scenario::Push,
    Scenario::Pushb100,
    Scenario::Pushb1000,
    Scenario::Load,
];

fn positive_count(s: &str) -> Result<u64, String> {
    let v: u64 = s
        .replace('_', "")
        .parse()
        .map_err(|e| format!("{s:?} is not a number ({e})"))?;
    if v == 0 {
        return Err("must be at least 1".into());
    }
    Ok(v)
}

/// Our client against the `faktory` crate 0.13 and the raw-socket client, on the same workloads
/// against one testkit process answering at a real server's modelled pace, interleaved A B A B;
/// prints medians, ratios and targets.
#[derive(Debug, Parser)]
#[command(name = "compare")]
struct DriverArgs {
    /// Rounds (medians of the rounds are compared) [default: 5; --quick: 1].
    #[arg(long, value_parser = positive_count)]
    rounds: Option<u64>,
    /// Prefilled jobs per worker and raw-client run [default: 30000; --quick: 3000].
    #[arg(long, value_name = "N", value_parser = positive_count)]
    work_jobs: Option<u64>,
    /// Jobs per PUSH run [default: 30000; --quick: 3000].
    #[arg(long, value_name = "N", value_parser = positive_count)]
    push_jobs: Option<u64>,
    /// Jobs per PUSHB run [default: 30000; --quick: 3000].
    #[arg(long, value_name = "N", value_parser = positive_count)]
    bulk_jobs: Option<u64>,
    /// Jobs of the load test [default: 30000; --quick: 3000].
    #[arg(long, value_name = "N", value_parser = positive_count)]
    load_jobs: Option<u64>,
    /// Connections of the load test (half push, half fetch).
    #[arg(long, value_name = "T", default_value = "10", value_parser = positive_count)]
    load_threads: u64,
    /// Only these scenarios (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Scenario>,
    /// Write every run and every target verdict as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json_out: Option<PathBuf>,
    /// 1 round and 1/10 of the jobs (a check that everything runs, not a measurement).
    #[arg(long)]
    quick: bool,
    /// The testkit answers at once, not at the modelled pace of a real server.
    #[arg(long, conflicts_with = "pace")]
    instant: bool,
    /// The testkit's modelled pace [default: real].
    #[arg(long, value_name = "real|PER_US:SHARED_US[:KNEE:CROWD_NS]", value_parser = parse_pace)]
    pace: Option<Pace>,
}

/// What the driver does, defaults applied.
#[derive(Debug, Clone)]
struct Plan {
    rounds: usize,
    work_jobs: u64,
    push_jobs: u64,
    bulk_jobs: u64,
    load_jobs: u64,
    load_threads: u64,
    only: Vec<Scenario>,
    json_out: Option<PathBuf>,
    pace: Option<Pace>,
}

impl DriverArgs {
    fn plan(self) -> Plan {
        let jobs = |given: Option<u64>| given.unwrap_or(if self.quick { 3_000 } else { 30_000 });
        Plan {
            rounds: self
                .rounds
                .map_or(if self.quick { 1 } else { 5 }, |r| r as usize),
            work_jobs: jobs(self.work_jobs),
            push_jobs: jobs(self.push_jobs),
            bulk_jobs: jobs(self.bulk_jobs),
            load_jobs: jobs(self.load_jobs),
            load_threads: self.load_threads.max(2),
            only: if self.only.is_empty() {
                ALL.to_vec()
            } else {
                ALL.iter()
                    .copied()
                    .filter(|s| self.only.contains(s))
                    .collect()
            },
            json_out: self.json_out,
            pace: if self.instant {
                None
            } else {
                Some(self.pace.unwrap_or_else(Pace::real_server))
            },
        }
    }
}

/// One child run: which client, the arguments after `ours`/`theirs`.
#[derive(Debug, Clone)]
struct Run {
    scenario: Scenario,
    side: &'static str,
    label: &'static str,
    args: Vec<String>,
    /// Jobs the driver pushes to the run's queue first (marked with the run's id).
    prefill: u64,
    /// Whether the child is told the run id (`work`: it counts only those jobs).
    counts_run: bool,
}

const OURS_C10: &str = "ours, C=10";
const THEIRS_C10: &str = "faktory, C=10";
const OURS_C50: &str = "ours, C=50";
const THEIRS_C50: &str = "faktory, C=50";
const RAW10: &str = "raw, 10 conns";

fn runs_of(scenario: Scenario, p: &Plan) -> Vec<Run> {
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    let w = p.work_jobs.to_string();
    let push = p.push_jobs.to_string();
    let b = p.bulk_jobs.to_string();
    let (lj, lt) = (p.load_jobs.to_string(), p.load_threads.to_string());
    let run = |side, label, args: Vec<String>| Run {
        scenario,
        side,
        label,
        args,
        prefill: 0,
        counts_run: false,
    };
    let worker = |side, label, args: Vec<String>| Run {
        prefill: p.work_jobs,
        counts_run: true,
        ..run(side, label, args)
    };
    match scenario {
        Scenario::Work => vec![
            worker("ours", OURS_C10, s(&["work", &w, "--concurrency", "10"])),
            worker(
                "theirs",
                THEIRS_C10,
                s(&["work", &w, "--concurrency", "10"]),
            ),
        ],
        Scenario::Work50 => vec![
            worker("ours", OURS_C50, s(&["work", &w, "--concurrency", "50"])),
            worker(
                "theirs",
                THEIRS_C50,
                s(&["work", &w, "--concurrency", "50"]),
            ),
        ],
        Scenario::Raw => vec![Run {
            prefill: p.work_jobs,
            ..run("ours", RAW10, s(&["raw", &w, "--connections", "10"]))
        }],
        Scenario::Push => vec![
            run(
                "ours",
                "ours, 64 in flight",
                s(&["push", &push, "--concurrency", "64"]),
            ),
            run("theirs", "faktory, sequential", s(&["push", &push])),
            run(
                "ours",
                "ours, one at a time",
                s(&["push", &push, "--concurrency", "1"]),
            ),
        ],
        Scenario::Pushb100 => vec![
            run("ours", "ours, PUSHB 100", s(&["push", &b, "--bulk", "100"])),
            run(
                "theirs",
                "faktory, PUSHB 100",
                s(&["push", &b, "--bulk", "100"]),
            ),
        ],
        Scenario::Pushb1000 => vec![
            run(
                "ours",
                "ours, PUSHB 1000",
                s(&["push", &b, "--bulk", "1000"]),
            ),
            run(
                "theirs",
                "faktory, PUSHB 1000",
                s(&["push", &b, "--bulk", "1000"]),
            ),
        ],
        Scenario::Load => vec![
            run("ours", "ours, load", s(&["load", &lj, &lt])),
            run("theirs", "faktory, load", s(&["load", &lj, &lt])),
        ],
    }
}

#[derive(Debug, Clone)]
struct Record {
    round: usize,
    label: &'static str,
    m: Measurement,
    /// Server CPU over the whole child run, seconds.
    server_cpu: Option<f64>,
    load: String,
}

fn scenario_name(s: Scenario) -> String {
    s.to_possible_value()
        .map_or_else(|| format!("{s:?}"), |v| v.get_name().to_owned())
}

fn drive(p: &Plan) -> Result<bool, BoxError> {
    let exe = std::env::current_exe()?;
    let testkit = TestkitChild::spawn(&exe, &serve_testkit_args(p.pace))?;
    let url = testkit.url().to_owned();
    let monitor = Monitor::connect(&url)?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load_start = measure::load_average().unwrap_or_default();
    say_out(&format!(
        "compare: {ours} vs {THEIRS} and the raw-socket client, one testkit process (pid {pid}, \
         {url}, pace {pace}), {rounds} rounds, A B interleaved; {cores} cores, load average \
         {load_start}",
        ours = tokio_rt::CLIENT,
        pid = testkit.pid(),
        pace = describe_pace(p.pace),
        rounds = p.rounds,
    ));
    let mut records: Vec<Record> = Vec::new();
    let mut failures = 0usize;
    for round in 1..=p.rounds {
        for &scenario in &p.only {
            for run in runs_of(scenario, p) {
                let name = scenario_name(run.scenario);
                let queue = format!("cmp-{name}-{round}-{}", run.side);
                let run_id = format!("{queue}-{:x}", std::process::id());
                if run.prefill > 0 {
                    monitor.prefill(run.prefill, &queue, "Noop", Some(&run_id))?;
                }
                let load = measure::load_average().unwrap_or_default();
                let cpu0 = testkit.cpu_seconds();
                let result = run_child(&exe, &run, &queue, run.counts_run.then_some(&run_id), &url);
                let cpu1 = testkit.cpu_seconds();
                let left = monitor.queue_len(&queue).unwrap_or(u64::MAX);
                monitor.client().queue_remove(&[queue.as_str()])?;
                if run.scenario == Scenario::Load {
                    monitor.client().queue_remove(&LOAD_QUEUES)?;
                }
                match result {
                    Ok(m) => {
                        let server_cpu = cpu0.zip(cpu1).map(|(a, b)| b - a);
                        let rec = Record {
                            round,
                            label: run.label,
                            m,
                            server_cpu,
                            load,
                        };
                        say_out(&format!("  round {round}: {}", record_line(&rec)));
                        if run.prefill > 0 && left != 0 {
                            say_out(&format!(
                                "    warning: {left} jobs were left in {queue} after the run"
                            ));
                        }
                        records.push(rec);
                    }
                    Err(e) => {
                        failures += 1;
                        say_out(&format!("  round {round}: {}: FAILED: {e}", run.label));
                    }
                }
            }
        }
    }
    let load_end = measure::load_average().unwrap_or_default();
    say_out(&format!("load average at the end: {load_end}\n"));
    let summary = summarize(p, &records);
    say_out(&summary.text);
    if let Some(path) = &p.json_out {
        let doc = serde_json::json!({
            "ours": tokio_rt::CLIENT,
            "theirs": THEIRS,
            "pace_us": describe_pace(p.pace),
            "rounds": p.rounds,
            "cores": cores,
            "load_average_start": load_start,
            "load_average_end": load_end,
            "runs": records.iter().map(|r| {
                let mut v = r.m.to_json();
                if let serde_json::Value::Object(o) = &mut v {
                    o.insert("round".into(), r.round.into());
                    o.insert("label".into(), r.label.into());
                    o.insert("server_cpu_seconds_whole_run".into(), r.server_cpu.into());
                    o.insert("load_average".into(), r.load.clone().into());
                }
                v
            }).collect::<Vec<_>>(),
            "targets": summary.targets,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
        say_out(&format!("raw figures written to {}", path.display()));
    }
    drop(monitor);
    drop(testkit);
    Ok(failures == 0)
}

fn run_child(
    exe: &std::path::Path,
    run: &Run,
    queue: &str,
    run_id: Option<&String>,
    url: &str,
) -> Result<Measurement, BoxError> {
    let mut cmd = Command::new(exe);
    cmd.arg(run.side).args(&run.args).args([
        "--queue",
        queue,
        "--json",
        "--no-progress",
        "--timeout",
        "120",
    ]);
    if let Some(id) = run_id {
        cmd.args(["--run-id", id]);
    }
    let out = cmd
        .env("FAKTORY_URL", url)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("exit {}; stdout: {}", out.status, stdout.trim()).into());
    }
    let line = stdout.lines().last().unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(line)?;
    Measurement::from_json(&v).ok_or_else(|| format!("unreadable result {line:?}").into())
}

fn record_line(r: &Record) -> String {
    let m = &r.m;
    let shutdown = m
        .params
        .get("shutdown_seconds")
        .and_then(serde_json::Value::as_f64)
        .map_or(String::new(), |s| format!("  shutdown {s:.2} s"));
    let param = |k: &str| m.params.get(k).and_then(serde_json::Value::as_u64);
    let mut remarks = String::new();
    if let Some(f) = param("shutdown_failed").filter(|f| *f > 0) {
        remarks.push_str(&format!("  [its shutdown FAILed {f} jobs]"));
    }
    if let Some(a) = param("info_acks").filter(|a| *a < m.jobs) {
        remarks.push_str(&format!("  [the server counted {a} ACKs]"));
    }
    format!(
        "{:<22} {:>9} jobs/s  CPU {:>6} us/job  RSS {:>7} kB  conns {:>2}  server CPU {:>6} \
         us/job{shutdown}  (load {}){remarks}",
        r.label,
        thousands(m.jobs_per_sec()),
        m.cpu_us_per_job()
            .map_or("n/a".into(), |c| format!("{c:.2}")),
        m.peak_rss_kb.map_or("n/a".into(), |k| thousands(k as f64)),
        m.connections.map_or("n/a".into(), |c| c.to_string()),
        r.server_cpu.map_or("n/a".into(), |c| format!(
            "{:.2}",
            c * 1e6 / m.jobs.max(1) as f64
        )),
        r.load,
    )
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v.get(mid).copied()
    } else {
        Some((v.get(mid - 1)? + v.get(mid)?) / 2.0)
    }
}

struct Summary {
    text: String,
    targets: Vec<serde_json::Value>,
}

#[derive(Clone, Copy, Debug)]
enum Metric {
    Rate,
    CpuPerJob,
    Rss,
    Conns,
    Shutdown,
    ServerCpu,
}

impl Metric {
    fn name(self) -> &'static str {
        match self {
            Metric::Rate => "jobs/s",
            Metric::CpuPerJob => "client CPU us/job",
            Metric::Rss => "peak RSS kB",
            Metric::Conns => "connections",
            Metric::Shutdown => "shutdown s",
            Metric::ServerCpu => "server CPU us/job",
        }
    }

    fn of(self, r: &Record) -> Option<f64> {
        match self {
            Metric::Rate => Some(r.m.jobs_per_sec()),
            Metric::CpuPerJob => r.m.cpu_us_per_job(),
            Metric::Rss => r.m.peak_rss_kb.map(|k| k as f64),
            Metric::Conns => r.m.connections.map(|c| c as f64),
            Metric::Shutdown => {
                r.m.params
                    .get("shutdown_seconds")
                    .and_then(serde_json::Value::as_f64)
            }
            Metric::ServerCpu => r.server_cpu.map(|c| c * 1e6 / r.m.jobs.max(1) as f64),
        }
    }

    /// Whether a ratio of two medians means something (not for shutdown times: an absolute
    /// bound applies, and a worker that does not wait for its FETCHes shuts down in no time).
    fn has_ratio(self) -> bool {
        !matches!(self, Metric::Shutdown)
    }

    fn fmt(self, x: f64) -> String {
        match self {
            Metric::CpuPerJob | Metric::ServerCpu | Metric::Shutdown => format!("{x:.2}"),
            _ => thousands(x),
        }
    }
}

/// A target: the ratio ours / theirs against a bound, or our own median against one.
#[derive(Clone, Copy, Debug)]
enum Goal {
    RatioAtLeast(f64),
    RatioAtMost(f64),
    OursAtMost(f64),
    None,
}

/// One line of a section: a metric, its target, and the target's name in the JSON.
type Row = (Metric, Goal, &'static str);

/// The verdict of `goal` for medians `a` (ours) and ratio `ratio`: the bound's text and whether
/// it is met (`None`: no target, or no figures).
fn verdict(goal: Goal, a: Option<f64>, ratio: Option<f64>) -> Option<(String, bool)> {
    match (goal, a, ratio) {
        (Goal::RatioAtLeast(t), _, Some(r)) => Some((format!(">= {t}x"), r >= t)),
        (Goal::RatioAtMost(t), _, Some(r)) => Some((format!("<= {t}x"), r <= t)),
        (Goal::OursAtMost(t), Some(a), _) => Some((format!("<= {t}"), a <= t)),
        _ => None,
    }
}

fn summarize(p: &Plan, records: &[Record]) -> Summary {
    let mut text = String::from(
        "== medians of the rounds above; ratio = A / B of the medians (the verdict), paired = \
         median of the per-round ratios ==\n",
    );
    let mut targets = Vec::new();
    let mut verdicts: Vec<(String, bool)> = Vec::new();
    let mut section = |title: &str, ours: &str, theirs: &str, rows: &[Row], text: &mut String| {
        text.push_str(&format!(
            "\n{title}\n  {:<20} {:>20} {:>20} {:>8} {:>8}   target\n",
            "", ours, theirs, "ratio", "paired"
        ));
        for &(metric, goal, target_name) in rows {
            let pick = |label: &str| {
                median(
                    records
                        .iter()
                        .filter(|r| r.label == label)
                        .filter_map(|r| metric.of(r))
                        .collect(),
                )
            };
            let (a, b) = (pick(ours), pick(theirs));
            let ratio = a
                .zip(b)
                .filter(|_| metric.has_ratio())
                .and_then(|(a, b)| (b > 0.0).then(|| a / b));
            // The median of the per-round ratios (the runs of a round ran close together, under
            // the same machine load): a check on the ratio of the medians.
            let paired = median(
                (1..=p.rounds)
                    .filter_map(|round| {
                        let of = |label: &str| {
                            records
                                .iter()
                                .find(|r| r.round == round && r.label == label)
                                .and_then(|r| metric.of(r))
                        };
                        of(ours)
                            .zip(of(theirs))
                            .filter(|_| metric.has_ratio())
                            .and_then(|(a, b)| (b > 0.0).then(|| a / b))
                    })
                    .collect(),
            );
            let v = verdict(goal, a, ratio);
            let verdict_text = match &v {
                Some((bound, ok)) => format!("{bound:<8} {}", if *ok { "met" } else { "MISSED" }),
                None => String::new(),
            };
            text.push_str(&format!(
                "  {:<20} {:>20} {:>20} {:>8} {:>8}   {}\n",
                metric.name(),
                a.map_or("n/a".into(), |x| metric.fmt(x)),
                b.map_or("n/a".into(), |x| metric.fmt(x)),
                ratio.map_or("".into(), |r| format!("{r:.2}x")),
                paired.map_or("".into(), |r| format!("{r:.2}x")),
                verdict_text
            ));
            match v {
                Some((bound, ok)) => {
                    verdicts.push((target_name.to_owned(), ok));
                    targets.push(serde_json::json!({
                        "target": target_name,
                        "metric": metric.name(),
                        "ours": ours, "theirs": theirs,
                        "ours_median": a, "theirs_median": b, "ratio": ratio,
                        "paired_ratio": paired, "bound": bound, "met": ok,
                    }));
                }
                None if !matches!(goal, Goal::None) => {
                    verdicts.push((format!("{target_name} (no figures)"), false));
                }
                None => {}
            }
        }
    };
    let only = |s: Scenario| p.only.contains(&s);
    let work = thousands(p.work_jobs as f64);
    if only(Scenario::Work) {
        section(
            &format!("worker C=10, {work} prefilled no-op jobs"),
            OURS_C10,
            THEIRS_C10,
            &[
                (
                    Metric::Rate,
                    Goal::RatioAtLeast(1.05),
                    "worker C=10 jobs/s >= 1.05x faktory",
                ),
                (
                    Metric::CpuPerJob,
                    Goal::RatioAtMost(0.9),
                    "worker C=10 client CPU/job <= 0.9x faktory",
                ),
                (
                    Metric::Rss,
                    Goal::RatioAtMost(1.0),
                    "worker C=10 peak RSS <= 1.0x faktory",
                ),
                (
                    Metric::Shutdown,
                    Goal::OursAtMost(2.1),
                    "worker C=10 idle graceful shutdown <= 2.1 s",
                ),
                (Metric::Conns, Goal::None, ""),
                (Metric::ServerCpu, Goal::None, ""),
            ],
            &mut text,
        );
    }
    if only(Scenario::Work) && only(Scenario::Raw) {
        section(
            &format!(
                "worker C=10 vs the raw-socket client (10 connections: the CPU floor), {work} jobs"
            ),
            OURS_C10,
            RAW10,
            &[
                (
                    Metric::CpuPerJob,
                    Goal::RatioAtMost(1.0),
                    "worker C=10 client CPU/job <= 1.0x raw client",
                ),
                (Metric::Rate, Goal::None, ""),
                (Metric::Conns, Goal::None, ""),
                (Metric::ServerCpu, Goal::None, ""),
            ],
            &mut text,
        );
    }
    if only(Scenario::Raw) {
        let raw = |metric: Metric| {
            median(
                records
                    .iter()
                    .filter(|r| r.label == RAW10)
                    .filter_map(|r| metric.of(r))
                    .collect(),
            )
        };
        let real = REAL_SERVER_RAW
            .iter()
            .find(|(c, _)| *c == 10)
            .map_or(0.0, |(_, r)| *r);
        if let Some(rate) = raw(Metric::Rate) {
            text.push_str(&format!(
                "\nraw-socket client, 10 connections, {work} jobs: {} jobs/s ({:.2}x the real \
                 server's {} with this client), client CPU {} us/job\n",
                thousands(rate),
                rate / real,
                thousands(real),
                raw(Metric::CpuPerJob).map_or("n/a".into(), |c| format!("{c:.2}")),
            ));
        }
    }
    if only(Scenario::Work50) {
        section(
            &format!("worker C=50, {work} prefilled no-op jobs"),
            OURS_C50,
            THEIRS_C50,
            &[
                (
                    Metric::Rate,
                    Goal::RatioAtLeast(1.0),
                    "worker C=50 jobs/s >= 1.0x faktory",
                ),
                (
                    Metric::Conns,
                    Goal::OursAtMost(12.0),
                    "worker C=50 connections <= 12",
                ),
                (Metric::CpuPerJob, Goal::None, ""),
                (Metric::Rss, Goal::None, ""),
                (Metric::Shutdown, Goal::None, ""),
                (Metric::ServerCpu, Goal::None, ""),
            ],
            &mut text,
        );
    }
    let tracked: [Row; 3] = [
        (Metric::Rate, Goal::None, ""),
        (Metric::CpuPerJob, Goal::None, ""),
        (Metric::ServerCpu, Goal::None, ""),
    ];
    let push = thousands(p.push_jobs as f64);
    if only(Scenario::Push) {
        section(
            &format!("push {push} jobs one per call: ours 64 in flight vs faktory sequential"),
            "ours, 64 in flight",
            "faktory, sequential",
            &tracked,
            &mut text,
        );
        section(
            &format!("push {push} jobs one per call, each awaited (both)"),
            "ours, one at a time",
            "faktory, sequential",
            &tracked,
            &mut text,
        );
    }
    let bulk = thousands(p.bulk_jobs as f64);
    for (s, ours, theirs, size) in [
        (
            Scenario::Pushb100,
            "ours, PUSHB 100",
            "faktory, PUSHB 100",
            "100",
        ),
        (
            Scenario::Pushb1000,
            "ours, PUSHB 1000",
            "faktory, PUSHB 1000",
            "1,000",
        ),
    ] {
        if only(s) {
            section(
                &format!("PUSHB {bulk} jobs in batches of {size} (both)"),
                ours,
                theirs,
                &tracked,
                &mut text,
            );
        }
    }
    if only(Scenario::Load) {
        section(
            &format!(
                "Faktory's load test, {} jobs, {} connections (faktory: pushers are Clients, \
                 fetchers one-slot Workers)",
                thousands(p.load_jobs as f64),
                p.load_threads
            ),
            "ours, load",
            "faktory, load",
            &tracked,
            &mut text,
        );
    }
    let met = verdicts.iter().filter(|(_, ok)| *ok).count();
    text.push_str(&format!("\ntargets: {met} of {} met\n", verdicts.len()));
    for (name, ok) in &verdicts {
        text.push_str(&format!(
            "  {:<6} {name}\n",
            if *ok { "met" } else { "MISSED" }
        ));
    }
    Summary { text, targets }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(args: &[&str]) -> Plan {
        DriverArgs::try_parse_from(std::iter::once(&"compare").chain(args))
            .unwrap()
            .plan()
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn driver_arguments() {
        let p = plan(&[]);
        assert_eq!((p.rounds, p.work_jobs, p.push_jobs), (5, 30_000, 30_000));
        assert_eq!(p.only, ALL);
        assert_eq!(p.pace, Some(Pace::real_server()));
        let p = plan(&["--rounds", "3", "--only=push,work", "--instant"]);
        assert_eq!((p.rounds, p.only.len()), (3, 2));
        assert_eq!(p.only, [Scenario::Work, Scenario::Push]);
        assert_eq!(p.pace, None);
        let p = plan(&["--quick", "--work-jobs", "1_000", "--pace", "10:20"]);
        assert_eq!((p.rounds, p.work_jobs, p.bulk_jobs), (1, 1_000, 3_000));
        assert_eq!(
            p.pace,
            Some(Pace::new(
                Duration::from_micros(10),
                Duration::from_micros(20)
            ))
        );
        for bad in [
            &["--only", "nope"][..],
            &["--rounds", "0"],
            &["--instant", "--pace", "real"],
            &["--frobnicate"],
        ] {
            assert!(
                DriverArgs::try_parse_from(std::iter::once(&"compare").chain(bad)).is_err(),
                "{bad:?}"
            );
        }
        let help = DriverArgs::try_parse_from(["compare", "--help"]).unwrap_err();
        assert_eq!(help.exit_code(), 0);

        let p = plan(&["--push-jobs", "20000"]);
        let r = runs_of(Scenario::Push, &p);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].args, ["push", "20000", "--concurrency", "64"]);
        let w = runs_of(Scenario::Work50, &p);
        assert!(w.iter().all(|r| r.prefill == 30_000 && r.counts_run));
        assert_eq!(w[1].side, "theirs");
        let raw = runs_of(Scenario::Raw, &p);
        assert_eq!(raw[0].args, ["raw", "30000", "--connections", "10"]);
        assert!(!raw[0].counts_run);
        assert_eq!(runs_of(Scenario::Load, &p)[1].args, ["load", "30000", "10"]);
        assert_eq!(scenario_name(Scenario::Pushb1000), "pushb1000");
    }

    #[test]
    fn verdicts() {
        assert_eq!(
            verdict(Goal::RatioAtLeast(1.05), None, Some(1.1)),
            Some((">= 1.05x".into(), true))
        );
        assert_eq!(
            verdict(Goal::RatioAtMost(0.9), None, Some(0.95)),
            Some(("<= 0.9x".into(), false))
        );
        assert_eq!(
            verdict(Goal::OursAtMost(2.1), Some(2.05), None),
            Some(("<= 2.1".into(), true))
        );
        assert_eq!(verdict(Goal::OursAtMost(12.0), None, Some(1.0)), None);
        assert_eq!(verdict(Goal::None, Some(1.0), Some(1.0)), None);
    }

    #[test]
    fn a_summary_names_every_target() {
        let p = plan(&["--rounds", "1"]);
        let rec = |label: &'static str, rate: f64, cpu: f64, conns: u64, shutdown: f64| {
            let mut m = Measurement::new("work", "x", "tokio", "spawned");
            m.jobs = 30_000;
            m.seconds = 30_000.0 / rate;
            m.cpu_seconds = Some(cpu * 30_000.0 / 1e6);
            m.peak_rss_kb = Some(5_000);
            m.connections = Some(conns);
            m.param("shutdown_seconds", shutdown);
            Record {
                round: 1,
                label,
                m,
                server_cpu: None,
                load: String::new(),
            }
        };
        let records = [
            rec(OURS_C10, 12_000.0, 20.0, 11, 2.0),
            rec(THEIRS_C10, 11_000.0, 28.0, 11, 2.2),
            rec(RAW10, 12_500.0, 25.0, 10, 0.0),
            rec(OURS_C50, 11_000.0, 22.0, 11, 2.0),
            rec(THEIRS_C50, 10_000.0, 24.0, 51, 2.2),
        ];
        let s = summarize(&p, &records);
        for t in [
            "worker C=10 jobs/s >= 1.05x faktory",
            "worker C=10 client CPU/job <= 0.9x faktory",
            "worker C=10 client CPU/job <= 1.0x raw client",
            "worker C=10 peak RSS <= 1.0x faktory",
            "worker C=10 idle graceful shutdown <= 2.1 s",
            "worker C=50 jobs/s >= 1.0x faktory",
            "worker C=50 connections <= 12",
        ] {
            assert!(s.text.contains(t), "{t} missing:\n{}", s.text);
        }
        assert_eq!(s.targets.len(), 7, "{}", s.text);
        assert!(s.text.contains("targets: 7 of 7 met"), "{}", s.text);
        assert!(s.text.contains("raw-socket client, 10 connections"));
    }
}
