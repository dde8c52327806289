//! A worker on smol, with graceful shutdown on SIGTERM or Ctrl-C (built in, with `async-signal`):
//! running jobs get the grace period, then what still runs is FAILed (so it is retried soon) and the
//! worker says goodbye to the server. A second signal stops waiting for running jobs. It exits
//! non-zero when the stop was not clean (the server refused the worker, or outcomes were left
//! unconfirmed). Handlers and sockets run on smol's executor (on async-std, leave `.runtime(..)`
//! out: the default spawner runs them on async-std's executor).
//!
//! ```sh
//! FAKTORY_URL=tcp://localhost:7419 cargo run -p faktory-async-std --example async_std_worker
//! ```
#![allow(clippy::print_stdout)]

use std::process::ExitCode;
use std::time::Duration;

use faktory_async_std::{Job, JobContext, Spawner, Worker};
use futures_lite::future;

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    // What the crates log (RUST_LOG=faktory_proto=debug shows reconnects; errors by default).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    smol::block_on(async {
        let worker = Worker::builder()
            .runtime(Spawner::new(|task| smol::spawn(task).detach()))
            // Typed args: `Ok(())` needs no turbofish, `?` takes any error.
            .register("SendEmail", |(to, subject): (String, String)| async move {
                println!("sending {subject:?} to {to}");
                Ok(())
            })
            .register(
                "Resize",
                |(file, width): (String, u32), ctx: JobContext| async move {
                    let work = async {
                        smol::Timer::after(Duration::from_millis(50)).await;
                        println!("resized {file} to {width}px");
                    };
                    let give_up = async {
                        ctx.cancellation().cancelled().await;
                        println!("gave up on {file}");
                    };
                    future::or(work, give_up).await;
                    Ok(())
                },
            )
            // Blocking work runs on the blocking pool; the whole job, with any error type.
            .register_blocking("Checksum", |job: Job| {
                let (data,): (String,) = job.args_as()?;
                println!("checksum of {} bytes", data.len());
                Ok::<(), faktory_async_std::BoxError>(())
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
    })
}
