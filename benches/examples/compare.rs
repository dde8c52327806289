//! `compare`: our tokio client (`faktory-tokio`) against the `faktory` crate 0.13 from crates.io,
//! on the same workloads, against ONE testkit process, interleaved A B A B over several rounds;
//! prints medians and ratios, and whether each target of issue #8 is met.
//!
//! ```sh
//! cargo run --release -p faktory-benches --example compare
//! cargo run --release -p faktory-benches --example compare -- --rounds 3 --only work
//! ```
//!
//! Every client run is a child process of its own (this executable re-run as `ours …` or
//! `theirs …`), so its CPU time and peak RSS are its own; the testkit is a third process (this
//! executable re-run as `serve-testkit`), whose CPU the driver reads around each run. See
//! `benches/README.md` for the scenarios and how to read the output.
//!
//! The `faktory` crate is a dev-dependency of `faktory-benches` only (default features: no TLS
//! library), which is why this is an example and not part of the `faktory-bench` binary.
#![forbid(unsafe_code)]
#![allow(missing_docs)]

use std::io::Write;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use faktory_benches::BoxError;
use faktory_benches::cli::{self, Mode, Options, Parsed};
use faktory_benches::measure;
use faktory_benches::monitor::Monitor;
use faktory_benches::report::{Measurement, thousands};
use faktory_benches::server::{Target, TestkitChild};
use faktory_benches::signal::{Either, race};
use faktory_benches::tokio_rt;
use faktory_benches::workloads::{self, PushCtx, Who, WorkCtx, WorkOutcome, WorkParams};
use faktory_tokio::CancellationToken;

const THEIRS: &str = "faktory-rs 0.13";

const USAGE: &str = "\
usage: compare [--rounds R (5)] [--work-jobs N (50000)] [--push-jobs N (20000)]
               [--bulk-jobs N (50000)] [--only work,push,pushb100,pushb1000] [--json-out FILE]
               [--quick (1 round, 1/10 of the jobs)]

Runs our tokio client and the `faktory` crate on the same workloads against one testkit process,
interleaved A B A B, and prints medians and ratios.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve-testkit") => cli::main_with(args),
        Some("ours") => cli::main_with(args.into_iter().skip(1)),
        Some("theirs") => theirs_main(args.into_iter().skip(1)),
        _ => match parse_driver(&args) {
            Ok(Some(d)) => match drive(&d) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln_safe(&format!("compare: {e}"));
                    ExitCode::FAILURE
                }
            },
            Ok(None) => {
                println_safe(USAGE);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln_safe(&format!("compare: {e}\n\n{USAGE}"));
                ExitCode::from(2)
            }
        },
    }
}

fn println_safe(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

fn eprintln_safe(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

// ---------------------------------------------------------------------------------------------
// The `faktory` crate's side (child process `theirs …`, same arguments as `faktory-bench`).
// ---------------------------------------------------------------------------------------------

fn theirs_main(args: impl Iterator<Item = String>) -> ExitCode {
    let opts = match cli::parse(args) {
        Ok(Parsed::Run(o)) => o,
        Ok(Parsed::Help) => {
            println_safe(cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln_safe(&format!("compare theirs: {e}"));
            return ExitCode::from(2);
        }
    };
    let result = Target::choose(opts.spawn_testkit).and_then(|target| theirs_run(&opts, &target));
    match result {
        Ok(m) => {
            cli::print_measurement(&m, opts.json);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln_safe(&format!("compare theirs {}: {e}", opts.mode.name()));
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

fn their_job(jobtype: &str, queue: &str) -> faktory::Job {
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
                        .enqueue(their_job(ctx.jobtype, ctx.queue))
                        .await
                        .map_err(their_error)?;
                    left -= 1;
                    ctx.done.fetch_add(1, Ordering::Relaxed);
                }
                Some(b) => {
                    let count = left.min(b as u64);
                    let jobs: Vec<faktory::Job> = (0..count)
                        .map(|_| their_job(ctx.jobtype, ctx.queue))
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

async fn theirs_work(ctx: &WorkCtx<'_>) -> Result<WorkOutcome, BoxError> {
    let counter = Arc::clone(&ctx.handled);
    let stop = CancellationToken::new();
    let mut worker = faktory::Worker::builder::<std::io::Error>()
        .workers(ctx.concurrency)
        .register_fn(ctx.jobtype, move |_job| {
            counter.fetch_add(1, Ordering::Relaxed);
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
        Ok(Ok(Ok(_details))) => {}
        Ok(Ok(Err(e))) => outcome.notes.push(format!("worker stopped with {e:?}")),
        Ok(Err(e)) => return Err(format!("worker task failed: {e}").into()),
        Err(_) => return Err("worker did not stop within 15 s of shutdown".into()),
    }
    Ok(outcome)
}

// ---------------------------------------------------------------------------------------------
// The driver.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Driver {
    rounds: usize,
    work_jobs: u64,
    push_jobs: u64,
    bulk_jobs: u64,
    only: Vec<String>,
    json_out: Option<String>,
}

const SCENARIOS: [&str; 4] = ["work", "push", "pushb100", "pushb1000"];

fn parse_driver(args: &[String]) -> Result<Option<Driver>, String> {
    let mut d = Driver {
        rounds: 5,
        work_jobs: 50_000,
        push_jobs: 20_000,
        bulk_jobs: 50_000,
        only: SCENARIOS.iter().map(|s| (*s).to_owned()).collect(),
        json_out: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let num = |s: String| -> Result<u64, String> {
            s.replace('_', "")
                .parse::<u64>()
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| format!("{name}: {s:?} is not a positive number"))
        };
        match name {
            "-h" | "--help" => return Ok(None),
            "--rounds" => d.rounds = num(value()?)? as usize,
            "--work-jobs" => d.work_jobs = num(value()?)?,
            "--push-jobs" => d.push_jobs = num(value()?)?,
            "--bulk-jobs" => d.bulk_jobs = num(value()?)?,
            "--json-out" => d.json_out = Some(value()?),
            "--only" => {
                let list: Vec<String> = value()?.split(',').map(|s| s.trim().to_owned()).collect();
                if let Some(bad) = list.iter().find(|s| !SCENARIOS.contains(&s.as_str())) {
                    return Err(format!("--only: unknown scenario {bad:?}"));
                }
                d.only = list;
            }
            "--quick" => {
                d.rounds = 1;
                d.work_jobs = 5_000;
                d.push_jobs = 2_000;
                d.bulk_jobs = 5_000;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Some(d))
}

/// One child run: which client, the arguments after `ours`/`theirs`.
#[derive(Debug, Clone)]
struct Run {
    scenario: &'static str,
    side: &'static str,
    label: &'static str,
    args: Vec<String>,
    prefill: u64,
}

fn runs_of(scenario: &'static str, d: &Driver) -> Vec<Run> {
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    let w = d.work_jobs.to_string();
    let p = d.push_jobs.to_string();
    let b = d.bulk_jobs.to_string();
    match scenario {
        "work" => vec![
            Run {
                scenario,
                side: "ours",
                label: "ours, C=10",
                args: s(&["work", &w, "--concurrency", "10"]),
                prefill: d.work_jobs,
            },
            Run {
                scenario,
                side: "theirs",
                label: "faktory, C=10",
                args: s(&["work", &w, "--concurrency", "10"]),
                prefill: d.work_jobs,
            },
        ],
        "push" => vec![
            Run {
                scenario,
                side: "ours",
                label: "ours, 64 in flight",
                args: s(&["push", &p, "--concurrency", "64"]),
                prefill: 0,
            },
            Run {
                scenario,
                side: "theirs",
                label: "faktory, sequential",
                args: s(&["push", &p]),
                prefill: 0,
            },
            Run {
                scenario,
                side: "ours",
                label: "ours, one at a time",
                args: s(&["push", &p, "--concurrency", "1"]),
                prefill: 0,
            },
        ],
        "pushb100" => vec![
            Run {
                scenario,
                side: "ours",
                label: "ours, PUSHB 100",
                args: s(&["push", &b, "--bulk", "100"]),
                prefill: 0,
            },
            Run {
                scenario,
                side: "theirs",
                label: "faktory, PUSHB 100",
                args: s(&["push", &b, "--bulk", "100"]),
                prefill: 0,
            },
        ],
        _ => vec![
            Run {
                scenario,
                side: "ours",
                label: "ours, PUSHB 1000",
                args: s(&["push", &b, "--bulk", "1000"]),
                prefill: 0,
            },
            Run {
                scenario,
                side: "theirs",
                label: "faktory, PUSHB 1000",
                args: s(&["push", &b, "--bulk", "1000"]),
                prefill: 0,
            },
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

fn drive(d: &Driver) -> Result<bool, BoxError> {
    let exe = std::env::current_exe()?;
    let testkit = TestkitChild::spawn(&exe, &["serve-testkit", "--port", "0"])?;
    let url = testkit.url().to_owned();
    let monitor = Monitor::connect(&url)?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load_start = measure::load_average().unwrap_or_default();
    println_safe(&format!(
        "compare: {ours} vs {THEIRS}, one testkit process (pid {pid}, {url}), {rounds} rounds, \
         A B interleaved; {cores} cores, load average {load_start}",
        ours = tokio_rt::CLIENT,
        pid = testkit.pid(),
        rounds = d.rounds,
    ));
    let mut records: Vec<Record> = Vec::new();
    let mut failures = 0usize;
    for round in 1..=d.rounds {
        for scenario in SCENARIOS.iter().filter(|s| d.only.iter().any(|o| o == *s)) {
            for run in runs_of(scenario, d) {
                let queue = format!("cmp-{}-{}-{}", run.scenario, round, run.side);
                if run.prefill > 0 {
                    monitor.prefill(run.prefill, &queue, "Noop")?;
                }
                let load = measure::load_average().unwrap_or_default();
                let cpu0 = testkit.cpu_seconds();
                let result = run_child(&exe, &run, &queue, &url);
                let cpu1 = testkit.cpu_seconds();
                let left = monitor.queue_len(&queue).unwrap_or(u64::MAX);
                monitor.client().queue_remove(&[queue.as_str()])?;
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
                        println_safe(&format!("  round {round}: {}", record_line(&rec)));
                        if run.prefill > 0 && left != 0 {
                            println_safe(&format!(
                                "    warning: {left} jobs were left in {queue} after the run"
                            ));
                        }
                        records.push(rec);
                    }
                    Err(e) => {
                        failures += 1;
                        println_safe(&format!("  round {round}: {}: FAILED: {e}", run.label));
                    }
                }
            }
        }
    }
    let load_end = measure::load_average().unwrap_or_default();
    println_safe(&format!("load average at the end: {load_end}\n"));
    let summary = summarize(d, &records);
    println_safe(&summary.text);
    if let Some(path) = &d.json_out {
        let doc = serde_json::json!({
            "ours": tokio_rt::CLIENT,
            "theirs": THEIRS,
            "rounds": d.rounds,
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
        println_safe(&format!("raw figures written to {path}"));
    }
    drop(monitor);
    drop(testkit);
    Ok(failures == 0)
}

fn run_child(
    exe: &std::path::Path,
    run: &Run,
    queue: &str,
    url: &str,
) -> Result<Measurement, BoxError> {
    let out = Command::new(exe)
        .arg(run.side)
        .args(&run.args)
        .args([
            "--queue",
            queue,
            "--json",
            "--no-progress",
            "--timeout",
            "120",
        ])
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
    format!(
        "{:<22} {:>9} jobs/s  CPU {:>6} us/job  RSS {:>7} kB  conns {:>2}  server CPU {:>6} us/job  (load {})",
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

#[derive(Clone, Copy)]
enum Metric {
    Rate,
    CpuPerJob,
    Rss,
    Conns,
    ServerCpu,
}

impl Metric {
    fn name(self) -> &'static str {
        match self {
            Metric::Rate => "jobs/s",
            Metric::CpuPerJob => "client CPU us/job",
            Metric::Rss => "peak RSS kB",
            Metric::Conns => "connections",
            Metric::ServerCpu => "server CPU us/job",
        }
    }

    fn of(self, r: &Record) -> Option<f64> {
        match self {
            Metric::Rate => Some(r.m.jobs_per_sec()),
            Metric::CpuPerJob => r.m.cpu_us_per_job(),
            Metric::Rss => r.m.peak_rss_kb.map(|k| k as f64),
            Metric::Conns => r.m.connections.map(|c| c as f64),
            Metric::ServerCpu => r.server_cpu.map(|c| c * 1e6 / r.m.jobs.max(1) as f64),
        }
    }

    fn fmt(self, x: f64) -> String {
        match self {
            Metric::CpuPerJob | Metric::ServerCpu => format!("{x:.2}"),
            _ => thousands(x),
        }
    }
}

/// A target: ratio ours/theirs compared to a bound, or connections below a bound.
#[derive(Clone, Copy)]
enum Goal {
    AtLeast(f64),
    AtMost(f64),
    FewerThan(f64),
    None,
}

fn summarize(d: &Driver, records: &[Record]) -> Summary {
    let mut text = String::from(
        "== medians of the rounds above; ratio = ours / faktory of the medians (the verdict), \
         paired = median of the per-round ratios ==\n",
    );
    let mut targets = Vec::new();
    let mut section = |title: &str,
                       ours: &str,
                       theirs: &str,
                       rows: &[(Metric, Goal, &str)],
                       text: &mut String| {
        text.push_str(&format!(
            "\n{title}\n  {:<20} {:>14} {:>14} {:>8} {:>8}   target\n",
            "", ours, theirs, "ratio", "paired"
        ));
        for (metric, goal, target_name) in rows {
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
            let ratio = a.zip(b).and_then(|(a, b)| (b > 0.0).then(|| a / b));
            // The median of the per-round ratios (the two runs of a round ran back to back, under
            // the same machine load): a check on the ratio of the medians.
            let paired = median(
                (1..=d.rounds)
                    .filter_map(|round| {
                        let of = |label: &str| {
                            records
                                .iter()
                                .find(|r| r.round == round && r.label == label)
                                .and_then(|r| metric.of(r))
                        };
                        of(ours)
                            .zip(of(theirs))
                            .and_then(|(a, b)| (b > 0.0).then(|| a / b))
                    })
                    .collect(),
            );
            let verdict = match (goal, a, ratio) {
                (Goal::AtLeast(t), _, Some(r)) => Some((format!(">= {t}x"), r >= *t)),
                (Goal::AtMost(t), _, Some(r)) => Some((format!("<= {t}x"), r <= *t)),
                (Goal::FewerThan(t), Some(a), _) => Some((format!("< {t}"), a < *t)),
                _ => None,
            };
            let verdict_text = match &verdict {
                Some((bound, ok)) => format!("{bound:<8} {}", if *ok { "met" } else { "MISSED" }),
                None => String::new(),
            };
            text.push_str(&format!(
                "  {:<20} {:>14} {:>14} {:>8} {:>8}   {}\n",
                metric.name(),
                a.map_or("n/a".into(), |x| metric.fmt(x)),
                b.map_or("n/a".into(), |x| metric.fmt(x)),
                ratio.map_or("".into(), |r| format!("{r:.2}x")),
                paired.map_or("".into(), |r| format!("{r:.2}x")),
                verdict_text
            ));
            if let Some((bound, ok)) = verdict {
                targets.push(serde_json::json!({
                    "target": target_name,
                    "metric": metric.name(),
                    "ours": ours, "theirs": theirs,
                    "ours_median": a, "theirs_median": b, "ratio": ratio, "paired_ratio": paired,
                    "bound": bound, "met": ok,
                }));
            }
        }
    };
    let only = |s: &str| d.only.iter().any(|o| o == s);
    if only("work") {
        section(
            &format!(
                "worker C=10, {} prefilled no-op jobs",
                thousands(d.work_jobs as f64)
            ),
            "ours, C=10",
            "faktory, C=10",
            &[
                (Metric::Rate, Goal::AtLeast(1.5), "worker jobs/s >= 1.5x"),
                (
                    Metric::CpuPerJob,
                    Goal::AtMost(0.5),
                    "worker CPU/job <= 0.5x",
                ),
                (Metric::Rss, Goal::AtMost(1.0), "worker peak RSS <= 1.0x"),
                (
                    Metric::Conns,
                    Goal::FewerThan(11.0),
                    "worker connections < C+1",
                ),
                (Metric::ServerCpu, Goal::None, ""),
            ],
            &mut text,
        );
    }
    if only("push") {
        section(
            &format!(
                "push {} jobs one per call: ours 64 in flight vs faktory sequential",
                thousands(d.push_jobs as f64)
            ),
            "ours, 64 in flight",
            "faktory, sequential",
            &[
                (Metric::Rate, Goal::AtLeast(3.0), "push 64 in flight >= 3x"),
                (Metric::CpuPerJob, Goal::None, ""),
                (Metric::Rss, Goal::None, ""),
                (Metric::ServerCpu, Goal::None, ""),
            ],
            &mut text,
        );
        section(
            &format!(
                "push {} jobs one per call, each awaited (both)",
                thousands(d.push_jobs as f64)
            ),
            "ours, one at a time",
            "faktory, sequential",
            &[
                (
                    Metric::Rate,
                    Goal::AtLeast(1.1),
                    "push one at a time >= 1.1x",
                ),
                (Metric::CpuPerJob, Goal::None, ""),
                (Metric::Rss, Goal::None, ""),
                (Metric::ServerCpu, Goal::None, ""),
            ],
            &mut text,
        );
    }
    for (s, b) in [("pushb100", "100"), ("pushb1000", "1000")] {
        if only(s) {
            section(
                &format!(
                    "PUSHB {} jobs in batches of {b} (both)",
                    thousands(d.bulk_jobs as f64)
                ),
                if b == "100" {
                    "ours, PUSHB 100"
                } else {
                    "ours, PUSHB 1000"
                },
                if b == "100" {
                    "faktory, PUSHB 100"
                } else {
                    "faktory, PUSHB 1000"
                },
                &[
                    (
                        Metric::Rate,
                        Goal::AtLeast(1.0),
                        if b == "100" {
                            "PUSHB 100 >= 1.0x"
                        } else {
                            "PUSHB 1000 >= 1.0x"
                        },
                    ),
                    (Metric::CpuPerJob, Goal::None, ""),
                    (Metric::Rss, Goal::None, ""),
                    (Metric::ServerCpu, Goal::None, ""),
                ],
                &mut text,
            );
        }
    }
    Summary { text, targets }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn driver_arguments() {
        let d = parse_driver(&["--rounds".into(), "3".into(), "--only=work,push".into()])
            .unwrap()
            .unwrap();
        assert_eq!((d.rounds, d.only.len()), (3, 2));
        assert!(parse_driver(&["--only".into(), "nope".into()]).is_err());
        assert!(parse_driver(&["--rounds".into(), "0".into()]).is_err());
        assert!(parse_driver(&["--help".into()]).unwrap().is_none());
        let r = runs_of("push", &d);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].args, ["push", "20000", "--concurrency", "64"]);
    }
}
