//! A worker with graceful shutdown on SIGTERM or Ctrl-C (built in): running jobs get the grace
//! period, then what still runs is FAILed (so it is retried soon) and the worker says goodbye to
//! the server. It exits non-zero when the stop was not clean (the server refused the worker, or
//! outcomes were left unconfirmed).
//!
//! ```sh
//! FAKTORY_URL=tcp://localhost:7419 cargo run -p faktory-tokio --example worker
//! ```
#![allow(clippy::print_stdout)]

use std::process::ExitCode;
use std::time::Duration;

use faktory_tokio::{BoxError, Job, JobContext, Worker};

#[tokio::main]
async fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    // What the crates log (RUST_LOG=faktory_proto=debug shows reconnects; errors by default).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let worker = Worker::builder()
        .register("SendEmail", |job: Job| async move {
            let (to, subject): (String, String) = job.args_as()?;
            println!("sending {subject:?} to {to}");
            Ok::<(), BoxError>(())
        })
        .register_with_context("Resize", |job: Job, ctx: JobContext| async move {
            let (file, width): (String, u32) = job.args_as()?;
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(50)) => println!("resized {file} to {width}px"),
                () = ctx.cancellation().cancelled() => println!("gave up on {file}"),
            }
            Ok::<(), BoxError>(())
        })
        .register_blocking("Checksum", |job: Job, _ctx: JobContext| {
            let (data,): (String,) = job.args_as()?;
            println!("checksum of {} bytes", data.len());
            Ok::<(), BoxError>(())
        })
        .queues(["mail", "default"])
        .concurrency(10)
        .grace_period(Duration::from_secs(25))
        .build()?;
    println!("worker {} running; Ctrl-C or SIGTERM to stop", worker.wid());
    let report = worker.run().await;
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
