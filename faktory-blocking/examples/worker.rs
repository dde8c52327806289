//! A worker with graceful shutdown on SIGTERM or Ctrl-C (built in, with `signal-hook`): running
//! jobs get the grace period, then what still runs is FAILed (so it is retried soon) and the worker
//! says goodbye to the server. A second signal stops waiting for running jobs. It exits non-zero
//! when the stop was not clean (the server refused the worker, or outcomes were left unconfirmed).
//!
//! `STOP_AFTER_SECS` stops it after that many seconds (a stop of your own, through the worker's
//! `ShutdownHandle`, which any thread may call).
//!
//! ```sh
//! FAKTORY_URL=tcp://localhost:7419 cargo run -p faktory-blocking --example blocking_worker
//! ```
#![allow(clippy::print_stdout)]

use std::process::ExitCode;
use std::time::Duration;

use faktory_blocking::{Job, JobContext, Worker};

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    // What the crates log (RUST_LOG=faktory_proto=debug shows reconnects; errors by default).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let worker = Worker::builder()
        // Typed args: `Ok(())` needs no turbofish, `?` takes any error.
        .register("SendEmail", |(to, subject): (String, String)| {
            println!("sending {subject:?} to {to}");
            Ok(())
        })
        .register("Resize", |(file, width): (String, u32), ctx: JobContext| {
            // Work in steps and stop early once the worker gives up on the job.
            if ctx.cancellation().wait_timeout(Duration::from_millis(50)) {
                println!("gave up on {file}");
            } else {
                println!("resized {file} to {width}px");
            }
            Ok(())
        })
        // The whole job, for handlers that read custom fields or several arg shapes.
        .register("Audit", |job: Job| {
            println!("audit {} {:?}", job.jid, job.args);
            Ok::<(), std::io::Error>(())
        })
        .queues(["mail", "default"])
        .concurrency(10)
        .grace_period(Duration::from_secs(25))
        .build()?;

    if let Some(secs) = std::env::var("STOP_AFTER_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        let stop = worker.shutdown_handle();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(secs));
            stop.shutdown();
        });
    }

    println!("worker {} running; Ctrl-C or SIGTERM to stop", worker.wid());
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
