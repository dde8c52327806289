//! A worker with graceful shutdown: running jobs get the grace period, then what still runs is
//! FAILed (so it is retried soon) and the worker says goodbye to the server.
//!
//! This crate takes no signal-handling dependency, so the example stops on Enter (a line on stdin)
//! or after `STOP_AFTER_SECS` seconds (default 60). For Ctrl-C, wire your signal handler to the
//! worker's `ShutdownHandle`, e.g. with the `ctrlc` crate:
//!
//! ```ignore
//! let stop = worker.shutdown_handle();
//! ctrlc::set_handler(move || {
//!     // First Ctrl-C: graceful; a second one: don't wait for running jobs.
//!     if stop.is_shutdown() { stop.shutdown_now() } else { stop.shutdown() }
//! })?;
//! ```
//!
//! ```sh
//! FAKTORY_URL=tcp://localhost:7419 cargo run -p faktory-blocking --example blocking_worker
//! ```
#![allow(clippy::print_stdout)]

use std::process::ExitCode;
use std::time::Duration;

use faktory_blocking::{BoxError, Job, JobContext, Worker};

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    // What the crates log (RUST_LOG=faktory_proto=debug shows reconnects; errors by default).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let worker = Worker::builder()
        .register("SendEmail", |job: Job| {
            let (to, subject): (String, String) = job.args_as()?;
            println!("sending {subject:?} to {to}");
            Ok::<(), BoxError>(())
        })
        .register_with_context("Resize", |job: Job, ctx: JobContext| {
            let (file, width): (String, u32) = job.args_as()?;
            // Work in steps and stop early once the worker gives up on the job.
            if ctx.cancellation().wait_timeout(Duration::from_millis(50)) {
                println!("gave up on {file}");
            } else {
                println!("resized {file} to {width}px");
            }
            Ok::<(), BoxError>(())
        })
        .queues(["mail", "default"])
        .concurrency(10)
        .grace_period(Duration::from_secs(25))
        .build()?;

    let stop = worker.shutdown_handle();
    let stop_after = std::env::var("STOP_AFTER_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    std::thread::spawn(move || {
        // Enter (or stdin closing) stops the worker; so does the timer below.
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        stop.shutdown();
    });
    let stop = worker.shutdown_handle();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(stop_after));
        stop.shutdown();
    });

    println!(
        "worker {} running; press Enter to stop (or wait {stop_after} s)",
        worker.wid()
    );
    let report = worker.run();
    println!(
        "stopped: {:?} (all outcomes confirmed: {})",
        report.reason,
        report.is_clean()
    );
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
