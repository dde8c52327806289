//! A worker on smol, with graceful shutdown when Enter is pressed (or stdin closes): running jobs
//! get the grace period, then what still runs is FAILed (so it is retried soon) and the worker
//! says goodbye to the server. Handlers and sockets run on smol's executor.
//!
//! ```sh
//! FAKTORY_URL=tcp://localhost:7419 cargo run -p faktory-async-std --example async_std_worker
//! ```
#![allow(clippy::print_stdout)]

use std::process::ExitCode;
use std::time::Duration;

use faktory_async_std::{BoxError, Job, JobContext, Spawner, Worker};
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
            .register("SendEmail", |job: Job| async move {
                let (to, subject): (String, String) = job.args_as()?;
                println!("sending {subject:?} to {to}");
                Ok::<(), BoxError>(())
            })
            .register_with_context("Resize", |job: Job, ctx: JobContext| async move {
                let (file, width): (String, u32) = job.args_as()?;
                let work = async {
                    smol::Timer::after(Duration::from_millis(50)).await;
                    println!("resized {file} to {width}px");
                };
                let give_up = async {
                    ctx.cancellation().cancelled().await;
                    println!("gave up on {file}");
                };
                future::or(work, give_up).await;
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
            .shutdown_signal(async {
                // Reading stdin blocks: do it on the blocking pool.
                let _ = smol::unblock(|| std::io::stdin().read_line(&mut String::new())).await;
            })
            .build()?;
        println!("worker {} running; press Enter to stop", worker.wid());
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
