//! The command line of `faktory-bench` (parsed by hand: no argument-parsing dependency).

use std::fmt;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use crate::BoxError;
use crate::report::Measurement;
use crate::server::{self, Target};

/// The usage text.
pub const USAGE: &str = "\
usage: faktory-bench [OPTIONS] MODE ARGS

modes:
  load JOBS THREADS           the Faktory load test: THREADS/2 connections PUSH one job at a time
                              (SomeJob, args [1,\"string\",3], a random queue of queue0..queue4), the
                              others FETCH from all five and ACK 99% / FAIL 1%, until JOBS pushes and
                              JOBS fetches are done
  push N                      push N jobs, one per call, with --concurrency calls in flight on one
                              client (default 1: each call awaited before the next)
       [--concurrency K]
       [--bulk B]             PUSHB batches of B jobs instead (--concurrency batches in flight)
  work N                      a worker with a no-op handler drains N jobs from --queue and exits as
                              soon as N are acknowledged (exit 1 if not within --timeout)
       [--concurrency C]      worker concurrency (default 10)
       [--prefill]            push the N jobs first (not measured)
       [--fetches-per-connection F] [--max-fetch-connections M]
                              override the worker engine's connection settings

options:
  --queue Q                   queue for push and work (default bench)
  --jobtype T                 jobtype for push and work (default Noop)
  --runtime R                 tokio (default), blocking, smol or async-std
  --spawn-testkit             run the testkit server in a child process (client and server CPU
                              apart); otherwise FAKTORY_URL, else the testkit in this process
  --json                      print one JSON object instead of a line
  --no-progress               no progress line (it is drawn only on a terminal anyway)
  --timeout SECS              give up after this long (default 120)
  -h, --help                  this text

Prints jobs/s, client CPU seconds (user+sys, /proc/self/stat), peak RSS (VmHWM) and connections.";

/// The client runtime (adapter) to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// `faktory-tokio`.
    Tokio,
    /// `faktory-blocking`.
    Blocking,
    /// `faktory-async-std` on smol.
    Smol,
    /// `faktory-async-std` on async-std.
    AsyncStd,
}

impl Runtime {
    /// Parses `tokio`, `blocking`, `smol` or `async-std`.
    pub fn parse(s: &str) -> Result<Runtime, String> {
        match s {
            "tokio" => Ok(Runtime::Tokio),
            "blocking" => Ok(Runtime::Blocking),
            "smol" => Ok(Runtime::Smol),
            "async-std" | "async_std" => Ok(Runtime::AsyncStd),
            other => Err(format!(
                "--runtime {other}: expected tokio, blocking, smol or async-std"
            )),
        }
    }

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
    /// The hidden child side of `--spawn-testkit`.
    ServeTestkit {
        /// Port (0: any).
        port: u16,
        /// Empty-FETCH timeout.
        fetch_timeout: Duration,
    },
}

impl Mode {
    /// `load`, `push`, `work` or `serve-testkit`.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Load { .. } => "load",
            Mode::Push { .. } => "push",
            Mode::Work { .. } => "work",
            Mode::ServeTestkit { .. } => "serve-testkit",
        }
    }

    /// Jobs the mode is about.
    pub fn jobs(&self) -> u64 {
        match self {
            Mode::Load { jobs, .. } => *jobs,
            Mode::Push { n, .. } | Mode::Work { n, .. } => *n,
            Mode::ServeTestkit { .. } => 0,
        }
    }
}

/// Everything the command line says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The mode.
    pub mode: Mode,
    /// `--queue` (push, work).
    pub queue: String,
    /// `--jobtype` (push, work).
    pub jobtype: String,
    /// `--runtime`.
    pub runtime: Runtime,
    /// `--json`.
    pub json: bool,
    /// `--spawn-testkit`.
    pub spawn_testkit: bool,
    /// Draw the progress line (on a terminal).
    pub progress: bool,
    /// `--timeout`.
    pub timeout: Duration,
}

/// The result of parsing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Run this.
    Run(Options),
    /// Print the usage.
    Help,
}

fn number<T: std::str::FromStr>(what: &str, s: &str) -> Result<T, String>
where
    T::Err: fmt::Display,
{
    let clean: String = s.chars().filter(|c| *c != '_' && *c != ',').collect();
    clean
        .parse()
        .map_err(|e| format!("{what}: {s:?} is not a valid number ({e})"))
}

fn positive<T: std::str::FromStr + PartialEq + Default>(what: &str, s: &str) -> Result<T, String>
where
    T::Err: fmt::Display,
{
    let v: T = number(what, s)?;
    if v == T::default() {
        return Err(format!("{what} must be at least 1"));
    }
    Ok(v)
}

/// Parses the arguments after the program name. Options may come before or after the mode, as
/// `--name value` or `--name=value`.
pub fn parse<I, S>(args: I) -> Result<Parsed, String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut it = args.into_iter().map(Into::into);
    let mut positional: Vec<String> = Vec::new();
    let mut queue = "bench".to_owned();
    let mut jobtype = "Noop".to_owned();
    let mut runtime = Runtime::Tokio;
    let mut json = false;
    let mut spawn_testkit = false;
    let mut progress = true;
    let mut timeout = Duration::from_secs(120);
    let mut concurrency: Option<usize> = None;
    let mut bulk: Option<usize> = None;
    let mut prefill = false;
    let mut fpc: Option<usize> = None;
    let mut mfc: Option<usize> = None;
    let mut port: u16 = 0;
    let mut fetch_timeout = Duration::from_secs(2);
    while let Some(arg) = it.next() {
        if !arg.starts_with("--") && arg != "-h" {
            positional.push(arg);
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--queue" => queue = value()?,
            "--jobtype" => jobtype = value()?,
            "--runtime" => runtime = Runtime::parse(&value()?)?,
            "--json" => json = true,
            "--spawn-testkit" => spawn_testkit = true,
            "--no-progress" => progress = false,
            "--timeout" => {
                let secs: f64 = number("--timeout", &value()?)?;
                if !(secs > 0.0 && secs.is_finite()) {
                    return Err("--timeout must be a positive number of seconds".into());
                }
                timeout = Duration::from_secs_f64(secs);
            }
            "--concurrency" => concurrency = Some(positive("--concurrency", &value()?)?),
            "--bulk" => bulk = Some(positive("--bulk", &value()?)?),
            "--prefill" => prefill = true,
            "--fetches-per-connection" => {
                fpc = Some(positive("--fetches-per-connection", &value()?)?);
            }
            "--max-fetch-connections" => {
                mfc = Some(positive("--max-fetch-connections", &value()?)?);
            }
            "--port" => port = number("--port", &value()?)?,
            "--fetch-timeout-ms" => {
                fetch_timeout = Duration::from_millis(number("--fetch-timeout-ms", &value()?)?);
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    if queue.is_empty() || jobtype.is_empty() {
        return Err("--queue and --jobtype must not be empty".into());
    }
    let mut pos = positional.iter().map(String::as_str);
    let mode_name = pos.next().ok_or("no mode given (load, push or work)")?;
    let mut arg = |what: &str| {
        pos.next()
            .map(str::to_owned)
            .ok_or_else(|| format!("{mode_name} needs {what}"))
    };
    let mode = match mode_name {
        "load" => {
            let jobs = positive("JOBS", &arg("JOBS")?)?;
            let threads: usize = positive("THREADS", &arg("THREADS")?)?;
            if threads < 2 {
                return Err("load needs at least 2 THREADS (half push, half fetch)".into());
            }
            Mode::Load { jobs, threads }
        }
        "push" => Mode::Push {
            n: positive("N", &arg("N")?)?,
            concurrency: concurrency.unwrap_or(1),
            bulk,
        },
        "work" => Mode::Work {
            n: positive("N", &arg("N")?)?,
            concurrency: concurrency.unwrap_or(10),
            prefill,
            fetches_per_connection: fpc,
            max_fetch_connections: mfc,
        },
        "serve-testkit" => Mode::ServeTestkit {
            port,
            fetch_timeout,
        },
        other => return Err(format!("unknown mode {other:?} (load, push or work)")),
    };
    let extra: Vec<&str> = pos.collect();
    if !extra.is_empty() {
        return Err(format!("unexpected arguments: {}", extra.join(" ")));
    }
    let misplaced = match &mode {
        Mode::Load { .. } if concurrency.is_some() || bulk.is_some() => {
            Some("--concurrency/--bulk")
        }
        Mode::Work { .. } if bulk.is_some() => Some("--bulk"),
        Mode::Load { .. } | Mode::Push { .. } if prefill || fpc.is_some() || mfc.is_some() => {
            Some("--prefill/--fetches-per-connection/--max-fetch-connections")
        }
        _ => None,
    };
    if let Some(flags) = misplaced {
        return Err(format!("{flags} do not apply to {}", mode.name()));
    }
    Ok(Parsed::Run(Options {
        mode,
        queue,
        jobtype,
        runtime,
        json,
        spawn_testkit,
        progress,
        timeout,
    }))
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

fn say_err(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
}

/// Runs the measurement `opts` describes against `target`, on the runtime it names.
pub fn run_on(opts: &Options, target: &Target) -> Result<Measurement, BoxError> {
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
    S: Into<String>,
{
    let opts = match parse(args) {
        Ok(Parsed::Run(o)) => o,
        Ok(Parsed::Help) => {
            let _ = writeln!(std::io::stdout().lock(), "{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            say_err(&format!("faktory-bench: {e}\n\n{USAGE}"));
            return ExitCode::from(2);
        }
    };
    if let Mode::ServeTestkit {
        port,
        fetch_timeout,
    } = opts.mode
    {
        return match server::serve_testkit(port, fetch_timeout) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                say_err(&format!("faktory-bench serve-testkit: {e}"));
                ExitCode::FAILURE
            }
        };
    }
    let result = Target::choose(opts.spawn_testkit).and_then(|target| run_on(&opts, &target));
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
        match parse(args.iter().copied()).unwrap() {
            Parsed::Run(o) => o,
            Parsed::Help => panic!("help"),
        }
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

        let o = run(&["load", "30000", "10", "--jobtype", "X"]);
        assert_eq!(
            o.mode,
            Mode::Load {
                jobs: 30_000,
                threads: 10
            }
        );
        assert_eq!(o.mode.jobs(), 30_000);

        let o = run(&["serve-testkit", "--port", "7420"]);
        assert_eq!(
            o.mode,
            Mode::ServeTestkit {
                port: 7420,
                fetch_timeout: Duration::from_secs(2)
            }
        );
        assert_eq!(parse(["--help"]).unwrap(), Parsed::Help);
        assert_eq!(parse(["push", "1", "-h"]).unwrap(), Parsed::Help);
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
            &["push", "10", "--queue", ""],
            &["push", "10", "--frobnicate"],
        ] {
            assert!(parse(bad.iter().copied()).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn every_runtime_is_accepted() {
        for (name, rt) in [
            ("tokio", Runtime::Tokio),
            ("blocking", Runtime::Blocking),
            ("smol", Runtime::Smol),
            ("async-std", Runtime::AsyncStd),
        ] {
            assert_eq!(run(&["push", "1", "--runtime", name]).runtime, rt);
            assert_eq!(rt.as_str(), name);
        }
    }
}
