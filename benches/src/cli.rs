//! The command line of `faktory-bench` (clap, derive): the modes are subcommands, the options that
//! every mode shares are global (before or after the mode), `--name value` or `--name=value`.

use std::fmt;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use faktory_testkit::Pace;

use crate::BoxError;
use crate::report::Measurement;
use crate::server::{self, Target};

/// The client runtime (adapter) to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Runtime {
    /// `faktory-tokio`.
    Tokio,
    /// `faktory-blocking`.
    Blocking,
    /// `faktory-async-std` on smol.
    Smol,
    /// `faktory-async-std` on async-std.
    #[value(name = "async-std", alias = "async_std")]
    AsyncStd,
}

impl Runtime {
    /// The name `--runtime` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Tokio => "tokio",
            Runtime::Blocking => "blocking",
            Runtime::Smol => "smol",
            Runtime::AsyncStd => "async-std",
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The connection counts `calibrate` measures by default, and the real server's FETCH+ACK jobs/s
/// at each (a raw-socket client keeping one FETCH outstanding per connection; a real Faktory 1.10
/// with its Redis and the client on one 2-core machine, medians of 3 runs).
pub const REAL_SERVER_RAW: &[(usize, f64)] = &[
    (1, 3_300.0),
    (2, 5_400.0),
    (4, 8_500.0),
    (6, 9_200.0),
    (10, 11_900.0),
    (16, 12_100.0),
];

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `load JOBS THREADS`.
    Load {
        /// Pushes (and fetches) to do.
        jobs: u64,
        /// Connections: half push, half fetch.
        threads: usize,
    },
    /// `push N`.
    Push {
        /// Jobs to push.
        n: u64,
        /// Calls in flight.
        concurrency: usize,
        /// PUSHB batch size.
        bulk: Option<usize>,
    },
    /// `work N`.
    Work {
        /// Jobs to process.
        n: u64,
        /// Worker concurrency.
        concurrency: usize,
        /// Push the jobs first.
        prefill: bool,
        /// Engine override.
        fetches_per_connection: Option<usize>,
        /// Engine override.
        max_fetch_connections: Option<usize>,
    },
    /// `raw N`: the raw-socket FETCH/ACK client.
    Raw {
        /// Jobs to fetch and ACK.
        n: u64,
        /// Connections (threads), one FETCH outstanding on each.
        connections: usize,
        /// Push the jobs first.
        prefill: bool,
    },
    /// `calibrate`: the raw client against the modelled testkit, beside the real server's figures.
    Calibrate {
        /// Jobs per point.
        jobs: u64,
        /// Rounds (the median is reported).
        rounds: usize,
        /// Connection counts to measure.
        connections: Vec<usize>,
    },
    /// The hidden child side of `--spawn-testkit`.
    ServeTestkit {
        /// Port (0: any).
        port: u16,
        /// Empty-FETCH timeout.
        fetch_timeout: Duration,
    },
}

impl Mode {
    /// `load`, `push`, `work`, `raw`, `calibrate` or `serve-testkit`.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Load { .. } => "load",
            Mode::Push { .. } => "push",
            Mode::Work { .. } => "work",
            Mode::Raw { .. } => "raw",
            Mode::Calibrate { .. } => "calibrate",
            Mode::ServeTestkit { .. } => "serve-testkit",
        }
    }

    /// Jobs the mode is about.
    pub fn jobs(&self) -> u64 {
        match self {
            Mode::Load { jobs, .. } | Mode::Calibrate { jobs, .. } => *jobs,
            Mode::Push { n, .. } | Mode::Work { n, .. } | Mode::Raw { n, .. } => *n,
            Mode::ServeTestkit { .. } => 0,
        }
    }
}

/// Everything the command line says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The mode.
    pub mode: Mode,
    /// `--queue` (push, work, raw).
    pub queue: String,
    /// `--jobtype` (push, work).
    pub jobtype: String,
    /// `--runtime`.
    pub runtime: Runtime,
    /// `--json`.
    pub json: bool,
    /// `--spawn-testkit`.
    pub spawn_testkit: bool,
    /// `--pace`: the testkit's modelled pace (`None`: answers at once).
    pub pace: Option<Pace>,
    /// Draw the progress line (on a terminal).
    pub progress: bool,
    /// `--timeout`.
    pub timeout: Duration,
    /// `--run-id`: marks the jobs of a run (`push`, the prefill), and `work` counts only the jobs
    /// so marked. `None`: a prefill makes one up; `work` without `--prefill` counts every job.
    pub run_id: Option<String>,
    /// `--seed`: the random picks of `load` (`None`: a random seed, reported).
    pub seed: Option<u64>,
}

/// A count: digits, optionally grouped with `_` or `,` (`100_000`).
fn count(s: &str) -> Result<u64, String> {
    let clean: String = s.chars().filter(|c| *c != '_' && *c != ',').collect();
    clean
        .parse()
        .map_err(|e| format!("{s:?} is not a valid number ({e})"))
}

/// A count of at least 1.
fn positive(s: &str) -> Result<u64, String> {
    match count(s)? {
        0 => Err("must be at least 1".into()),
        v => Ok(v),
    }
}

/// A size of at least 1.
fn positive_usize(s: &str) -> Result<usize, String> {
    usize::try_from(positive(s)?).map_err(|e| e.to_string())
}

fn seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|e| format!("{s:?} is not a number of seconds ({e})"))?;
    if !(secs > 0.0 && secs.is_finite()) {
        return Err("must be a positive number of seconds".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

fn non_empty(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(s.to_owned())
}

const AFTER_HELP: &str = "\
Where the server is: FAKTORY_URL if set (a real Faktory), else --spawn-testkit (the in-memory
testkit in a child process: client and server CPU apart), else the testkit in this process.

Prints jobs/s, client CPU seconds (user+sys, /proc/self/stat), peak RSS (VmHWM) and connections
(--json: one JSON object). RUST_LOG=faktory_proto=debug logs the clients' reconnects and re-sent
ACKs on stderr. See benches/README.md.";

/// Load, push and worker throughput of the Faktory clients of this workspace.
#[derive(Debug, Parser)]
#[command(name = "faktory-bench", after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    mode: ModeCmd,
    #[command(flatten)]
    global: GlobalArgs,
}

#[derive(Debug, Args)]
struct GlobalArgs {
    /// Queue for push, work and raw.
    #[arg(long, global = true, default_value = "bench", value_parser = non_empty)]
    queue: String,
    /// Jobtype for push and work.
    #[arg(long, global = true, default_value = "Noop", value_parser = non_empty)]
    jobtype: String,
    /// The client to measure: faktory-tokio, faktory-blocking, or faktory-async-std on smol or
    /// async-std.
    #[arg(long, global = true, value_enum, default_value_t = Runtime::Tokio)]
    runtime: Runtime,
    /// Run the testkit server in a child process (client and server CPU apart).
    #[arg(long, global = true)]
    spawn_testkit: bool,
    /// The testkit answers at a real server's modelled pace: `real` or PER_US:SHARED_US[:KNEE:CROWD_NS].
    ///
    /// Each connection's commands are answered one at a time, each after PER_US of its own plus
    /// SHARED_US in a stage all connections share, plus CROWD_NS there for every busy connection
    /// beyond KNEE (faktory_testkit::Pace). Default: at once
    /// (`calibrate`: real). Not with FAKTORY_URL.
    #[arg(long, global = true, value_name = "real|PER_US:SHARED_US[:KNEE:CROWD_NS]", value_parser = server::parse_pace)]
    pace: Option<Pace>,
    /// Print one JSON object instead of a line.
    #[arg(long, global = true)]
    json: bool,
    /// No progress line (it is drawn only when stderr is a terminal anyway).
    #[arg(long, global = true)]
    no_progress: bool,
    /// Give up (exit 1) after this many seconds.
    #[arg(long, global = true, value_name = "SECS", default_value = "120", value_parser = seconds)]
    timeout: Duration,
    /// Mark the run's jobs with this id (push, prefill); work counts only the jobs so marked.
    #[arg(long, global = true, value_name = "ID", value_parser = non_empty)]
    run_id: Option<String>,
    /// Seed of load's random picks (queues, the 1% FAILs).
    #[arg(long, global = true, value_parser = count)]
    seed: Option<u64>,
}

#[derive(Debug, Subcommand)]
enum ModeCmd {
    /// Faktory's own load test: JOBS pushes and JOBS fetches over THREADS connections.
    ///
    /// THREADS/2 connections PUSH one job at a time (SomeJob, args [1,"string",3], a random queue
    /// of queue0..queue4), the others FETCH from all five and ACK 99% / FAIL 1%, until JOBS pushes
    /// and JOBS fetches are done. jobs/s is JOBS / seconds.
    Load {
        /// Pushes (and fetches) to do.
        #[arg(value_parser = positive)]
        jobs: u64,
        /// Connections: half push, half fetch (at least 2).
        #[arg(value_parser = positive_usize)]
        threads: usize,
    },
    /// Push N jobs on one client: one per call, or PUSHB batches (--bulk).
    ///
    /// One job per call with --concurrency calls in flight (default 1: each call awaited before the
    /// next), or PUSHB batches of --bulk jobs (--concurrency batches in flight). On a testkit the
    /// queue must hold exactly N more jobs afterwards.
    Push {
        /// Jobs to push.
        #[arg(value_parser = positive)]
        n: u64,
        /// Calls (or batches) in flight.
        #[arg(long, default_value = "1", value_parser = positive_usize)]
        concurrency: usize,
        /// PUSHB batches of B jobs instead of one job per call.
        #[arg(long, value_name = "B", value_parser = positive_usize)]
        bulk: Option<usize>,
    },
    /// A worker with a no-op handler runs N jobs of this run from --queue.
    ///
    /// Only the run's own jobs count (marked by --prefill or --run-id; without either, every job).
    /// The clock stops when the handler ran the N-th; the worker then shuts down gracefully and
    /// must report every ACK confirmed: exit 1 otherwise, or if N are not run within --timeout.
    Work {
        /// Jobs to run.
        #[arg(value_parser = positive)]
        n: u64,
        /// Worker concurrency.
        #[arg(long, default_value = "10", value_parser = positive_usize)]
        concurrency: usize,
        /// Push the N jobs first (not measured).
        #[arg(long)]
        prefill: bool,
        /// Override the worker engine's FETCHes per connection.
        #[arg(long, value_name = "F", value_parser = positive_usize)]
        fetches_per_connection: Option<usize>,
        /// Override the worker engine's cap on fetch connections.
        #[arg(long, value_name = "M", value_parser = positive_usize)]
        max_fetch_connections: Option<usize>,
    },
    /// The raw-socket client, the cheapest possible worker: fetch and ACK N jobs.
    ///
    /// One thread and one blocking socket per connection, one FETCH outstanding on each, each ACK
    /// sent with the next FETCH in one write; until N ACKs were answered (exit 1 if fewer).
    Raw {
        /// Jobs to fetch and ACK.
        #[arg(value_parser = positive)]
        n: u64,
        /// Connections (threads).
        #[arg(long, default_value = "10", value_parser = positive_usize)]
        connections: usize,
        /// Push the N jobs first (not measured).
        #[arg(long)]
        prefill: bool,
    },
    /// The raw client against a spawned paced testkit, beside the real server's figures.
    ///
    /// Runs `raw` against a testkit child at --pace (default real) at each connection count, and
    /// prints the medians beside what the same client did against a real Faktory (3.3k, 5.4k,
    /// 8.5k, 11.9k jobs/s at 1, 2, 4, 10 connections), the ratio, and whether each is within 25%.
    /// FAKTORY_URL is ignored.
    Calibrate {
        /// Prefilled jobs per point.
        #[arg(long, default_value = "20000", value_parser = positive)]
        jobs: u64,
        /// Rounds (the median of each point is reported).
        #[arg(long, default_value = "3", value_parser = positive_usize)]
        rounds: usize,
        /// Connection counts, comma-separated.
        #[arg(
            long,
            value_name = "LIST",
            value_delimiter = ',',
            default_value = "1,2,4,10",
            value_parser = positive_usize
        )]
        connections: Vec<usize>,
    },
    /// (internal) serve a testkit until stdin closes; the child of --spawn-testkit.
    #[command(hide = true)]
    ServeTestkit {
        /// Port (0: any free one).
        #[arg(long, default_value = "0")]
        port: u16,
        /// How long an empty FETCH blocks.
        #[arg(long, value_name = "MS", default_value = "2000", value_parser = count)]
        fetch_timeout_ms: u64,
    },
}

impl Cli {
    fn into_options(self) -> Result<Options, String> {
        let g = self.global;
        let mode = match self.mode {
            ModeCmd::Load { jobs, threads } => {
                if threads < 2 {
                    return Err("load needs at least 2 THREADS (half push, half fetch)".into());
                }
                Mode::Load { jobs, threads }
            }
            ModeCmd::Push {
                n,
                concurrency,
                bulk,
            } => Mode::Push {
                n,
                concurrency,
                bulk,
            },
            ModeCmd::Work {
                n,
                concurrency,
                prefill,
                fetches_per_connection,
                max_fetch_connections,
            } => Mode::Work {
                n,
                concurrency,
                prefill,
                fetches_per_connection,
                max_fetch_connections,
            },
            ModeCmd::Raw {
                n,
                connections,
                prefill,
            } => Mode::Raw {
                n,
                connections,
                prefill,
            },
            ModeCmd::Calibrate {
                jobs,
                rounds,
                connections,
            } => Mode::Calibrate {
                jobs,
                rounds,
                connections,
            },
            ModeCmd::ServeTestkit {
                port,
                fetch_timeout_ms,
            } => Mode::ServeTestkit {
                port,
                fetch_timeout: Duration::from_millis(fetch_timeout_ms),
            },
        };
        Ok(Options {
            mode,
            queue: g.queue,
            jobtype: g.jobtype,
            runtime: g.runtime,
            json: g.json,
            spawn_testkit: g.spawn_testkit,
            pace: g.pace,
            progress: !g.no_progress,
            timeout: g.timeout,
            run_id: g.run_id,
            seed: g.seed,
        })
    }
}

/// Parses the arguments after the program name. A `--help` is an `Err` whose
/// [`clap::Error::kind`] says so ([`clap::Error::print`] shows it; [`clap::Error::exit_code`] is 0).
pub fn parse<I, S>(args: I) -> Result<Options, clap::Error>
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString> + Clone,
{
    let argv = std::iter::once(std::ffi::OsString::from("faktory-bench"))
        .chain(args.into_iter().map(Into::into));
    let cli = Cli::try_parse_from(argv)?;
    cli.into_options().map_err(|e| {
        use clap::CommandFactory;
        Cli::command().error(clap::error::ErrorKind::ValueValidation, e)
    })
}

/// Prints a measurement as `--json` or the human line says.
pub fn print_measurement(m: &Measurement, json: bool) {
    let mut out = std::io::stdout().lock();
    let _ = if json {
        writeln!(out, "{}", m.to_json())
    } else {
        writeln!(out, "{}", m.human())
    };
    let _ = out.flush();
}

/// Writes `text` and a newline to stderr (a closed stderr is ignored).
pub fn say_err(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
}

/// Writes `text` and a newline to stdout, flushed (a closed stdout is ignored).
pub fn say_out(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// Installs the `tracing` subscriber: `RUST_LOG` filters (default `warn`), output on stderr, so
/// stdout stays the result (`--json`). `RUST_LOG=faktory_proto=debug` shows the clients'
/// reconnects and re-sent ACKs. Installing twice is harmless.
pub fn init_logging() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::builder()
        .with_default_directive(tracing_subscriber::filter::LevelFilter::WARN.into())
        .from_env_lossy();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Runs the measurement `opts` describes against `target`, on the runtime it names (`raw` runs
/// on threads of its own whatever `--runtime` says).
pub fn run_on(opts: &Options, target: &Target) -> Result<Measurement, BoxError> {
    if let Mode::Raw {
        n,
        connections,
        prefill,
    } = opts.mode
    {
        return crate::workloads::measure_raw(opts, target, n, connections, prefill);
    }
    match opts.runtime {
        Runtime::Tokio => crate::tokio_rt::run(opts, target),
        Runtime::Blocking => crate::blocking_rt::run(opts, target),
        Runtime::Smol | Runtime::AsyncStd => crate::async_std_rt::run(opts, target, opts.runtime),
    }
}

/// `faktory-bench`'s main: parses `args` (without the program name), runs, prints.
pub fn main_with<I, S>(args: I) -> ExitCode
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString> + Clone,
{
    let opts = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    init_logging();
    match opts.mode {
        Mode::ServeTestkit {
            port,
            fetch_timeout,
        } => {
            return match server::serve_testkit(port, fetch_timeout, opts.pace) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    say_err(&format!("faktory-bench serve-testkit: {e}"));
                    ExitCode::FAILURE
                }
            };
        }
        Mode::Calibrate { .. } => {
            return match crate::calibrate::run(&opts) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    say_err(&format!("faktory-bench calibrate: {e}"));
                    ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }
    let result =
        Target::choose(opts.spawn_testkit, opts.pace).and_then(|target| run_on(&opts, &target));
    match result {
        Ok(m) => {
            print_measurement(&m, opts.json);
            ExitCode::SUCCESS
        }
        Err(e) => {
            say_err(&format!("faktory-bench {}: {e}", opts.mode.name()));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Options {
        parse(args.iter().copied()).unwrap()
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn modes_and_defaults() {
        let o = run(&["push", "10000"]);
        assert_eq!(
            o.mode,
            Mode::Push {
                n: 10_000,
                concurrency: 1,
                bulk: None
            }
        );
        assert_eq!((o.queue.as_str(), o.jobtype.as_str()), ("bench", "Noop"));
        assert_eq!(o.runtime, Runtime::Tokio);
        assert!(!o.json && !o.spawn_testkit && o.progress);
        assert_eq!(o.pace, None);
        assert_eq!(o.timeout, Duration::from_secs(120));
        assert_eq!((o.run_id.as_deref(), o.seed), (None, None));

        let o = run(&[
            "--json",
            "push",
            "100_000",
            "--concurrency=64",
            "--bulk",
            "1000",
            "--queue",
            "q1",
        ]);
        assert_eq!(
            o.mode,
            Mode::Push {
                n: 100_000,
                concurrency: 64,
                bulk: Some(1000)
            }
        );
        assert!(o.json);
        assert_eq!(o.queue, "q1");

        let o = run(&[
            "work",
            "50000",
            "--concurrency",
            "10",
            "--prefill",
            "--spawn-testkit",
            "--fetches-per-connection",
            "4",
            "--runtime",
            "tokio",
            "--timeout",
            "30",
            "--pace",
            "real",
            "--run-id=r1",
        ]);
        assert_eq!(
            o.mode,
            Mode::Work {
                n: 50_000,
                concurrency: 10,
                prefill: true,
                fetches_per_connection: Some(4),
                max_fetch_connections: None
            }
        );
        assert!(o.spawn_testkit);
        assert_eq!(o.timeout, Duration::from_secs(30));
        assert_eq!(o.pace, Some(Pace::real_server()));
        assert_eq!(o.run_id.as_deref(), Some("r1"));

        let o = run(&["load", "30000", "10", "--jobtype", "X", "--seed", "7"]);
        assert_eq!(
            o.mode,
            Mode::Load {
                jobs: 30_000,
                threads: 10
            }
        );
        assert_eq!(o.mode.jobs(), 30_000);
        assert_eq!(o.seed, Some(7));

        let o = run(&["--pace=120:45", "raw", "20000", "--connections", "4"]);
        assert_eq!(
            o.mode,
            Mode::Raw {
                n: 20_000,
                connections: 4,
                prefill: false
            }
        );
        assert_eq!(
            o.pace,
            Some(Pace::new(
                Duration::from_micros(120),
                Duration::from_micros(45)
            ))
        );
        assert_eq!(
            run(&["raw", "5", "--prefill"]).mode,
            Mode::Raw {
                n: 5,
                connections: 10,
                prefill: true
            }
        );

        assert_eq!(
            run(&["calibrate"]).mode,
            Mode::Calibrate {
                jobs: 20_000,
                rounds: 3,
                connections: vec![1, 2, 4, 10]
            }
        );
        assert_eq!(
            run(&["calibrate", "--connections", "1,16", "--rounds=1"]).mode,
            Mode::Calibrate {
                jobs: 20_000,
                rounds: 1,
                connections: vec![1, 16]
            }
        );

        let o = run(&["serve-testkit", "--port", "7420", "--pace", "real"]);
        assert_eq!(
            o.mode,
            Mode::ServeTestkit {
                port: 7420,
                fetch_timeout: Duration::from_secs(2)
            }
        );
        assert_eq!(o.pace, Some(Pace::real_server()));
        for help in [&["--help"][..], &["push", "1", "-h"], &["work", "--help"]] {
            let e = parse(help.iter().copied()).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp, "{help:?}");
            assert_eq!(e.exit_code(), 0);
        }
    }

    #[test]
    fn mistakes_are_refused() {
        for bad in [
            &[][..],
            &["fly"],
            &["push"],
            &["push", "x"],
            &["push", "0"],
            &["push", "10", "extra"],
            &["push", "10", "--concurrency"],
            &["push", "10", "--concurrency", "0"],
            &["push", "10", "--prefill"],
            &["work", "10", "--bulk", "5"],
            &["load", "10"],
            &["load", "10", "1"],
            &["load", "10", "4", "--concurrency", "3"],
            &["push", "10", "--runtime", "go"],
            &["push", "10", "--timeout", "-1"],
            &["push", "10", "--timeout", "0"],
            &["push", "10", "--queue", ""],
            &["push", "10", "--frobnicate"],
            &["push", "10", "--pace", "fast"],
            &["raw", "10", "--connections", "0"],
            &["calibrate", "--connections", "1,,2"],
        ] {
            let r = parse(bad.iter().copied());
            assert!(r.is_err(), "{bad:?} was accepted");
            assert_ne!(r.unwrap_err().exit_code(), 0, "{bad:?}");
        }
    }

    #[test]
    fn every_runtime_is_accepted() {
        for (name, rt) in [
            ("tokio", Runtime::Tokio),
            ("blocking", Runtime::Blocking),
            ("smol", Runtime::Smol),
            ("async-std", Runtime::AsyncStd),
            ("async_std", Runtime::AsyncStd),
        ] {
            assert_eq!(run(&["push", "1", "--runtime", name]).runtime, rt);
        }
        assert_eq!(Runtime::AsyncStd.as_str(), "async-std");
    }
}
