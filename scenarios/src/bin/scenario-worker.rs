//! A worker process for the scenarios that need one (termination signals, exit codes): the same
//! program a user writes, on the runtime named by its first argument.
//!
//! ```text
//! scenario-worker RUNTIME URL QUEUE JOB_MS GRACE_MS
//! ```
//! RUNTIME is `tokio`, `smol`, `async-std` or `blocking`. Every job of type `Busy` on QUEUE sleeps
//! JOB_MS milliseconds. The worker handles SIGTERM and SIGINT (the default). It prints
//! `STOPPED clean=<bool> reason=<reason>` and exits 0 when the stop was clean, 1 otherwise (a
//! server that refused the worker, outcomes left unconfirmed), 2 on bad arguments.
#![allow(clippy::print_stdout, clippy::print_stderr, missing_docs)]

use std::process::ExitCode;
use std::time::Duration;

use faktory_scenarios::{
    Blocking, Handler, Harness, Registration, Shutdown, Smol, Step, Tokio, WorkerApi, WorkerSpec,
};

fn run<H: Harness>(url: &str, queue: &str, job: Duration, grace: Duration) -> ExitCode {
    let spec = WorkerSpec::new(url, queue)
        .grace_period(grace)
        .concurrency(2)
        // No stop token: only the server or a termination signal stops it.
        .shutdown(Shutdown::ServerOnly)
        .handler(
            "Busy",
            Handler::new(Registration::Plain).then(Step::Sleep(job)),
        );
    let report = H::block_on(async move {
        let (worker, _stop) = H::worker(spec).map_err(|e| e.to_string())?;
        Ok::<_, String>(H::spawn(WorkerApi::run(worker)).await)
    });
    match report {
        Ok(report) => {
            println!(
                "STOPPED clean={} reason={:?}",
                report.is_clean(),
                report.reason
            );
            if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("scenario-worker: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [runtime, url, queue, job_ms, grace_ms] = args.as_slice() else {
        eprintln!("usage: scenario-worker RUNTIME URL QUEUE JOB_MS GRACE_MS");
        return ExitCode::from(2);
    };
    let (Ok(job_ms), Ok(grace_ms)) = (job_ms.parse(), grace_ms.parse()) else {
        eprintln!("scenario-worker: JOB_MS and GRACE_MS are milliseconds");
        return ExitCode::from(2);
    };
    let (job, grace) = (
        Duration::from_millis(job_ms),
        Duration::from_millis(grace_ms),
    );
    match runtime.as_str() {
        "tokio" => run::<Tokio>(url, queue, job, grace),
        "smol" => run::<Smol>(url, queue, job, grace),
        "async-std" => run::<faktory_scenarios::AsyncStd>(url, queue, job, grace),
        "blocking" => run::<Blocking>(url, queue, job, grace),
        other => {
            eprintln!("scenario-worker: unknown runtime {other:?}");
            ExitCode::from(2)
        }
    }
}
