//! Quickstart: pushes 10,000 jobs and runs a worker over them, with a progress bar and a summary.
//!
//! Uses the Faktory server named by `FAKTORY_URL` when it is set; otherwise starts the in-memory
//! `faktory-testkit` server in this process (a test double, not a production server) and says so.
//!
//! ```sh
//! cargo run --release -p faktory-tokio --example quickstart
//! FAKTORY_URL=tcp://localhost:7419 cargo run --release -p faktory-tokio --example quickstart
//! ```
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use faktory_tokio::{BoxError, CancellationToken, Client, Job, Worker};

const JOBS: usize = 10_000;
const CONCURRENCY: usize = 20;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // What the crates log (RUST_LOG=faktory_proto=debug shows reconnects; errors by default).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let (url, _server) = match std::env::var("FAKTORY_URL") {
        Ok(url) if !url.is_empty() => {
            println!("Using the Faktory server at FAKTORY_URL={url}");
            (url, None)
        }
        _ => {
            let server = faktory_testkit::TestServer::start().await?;
            println!(
                "FAKTORY_URL is not set: started the in-process faktory-testkit server at {} \
                 (a test double; set FAKTORY_URL to use a real Faktory)",
                server.url()
            );
            (server.url(), Some(server))
        }
    };
    let queue = format!("quickstart-{}", std::process::id());

    // Producer: push 10,000 jobs with PUSHB (1,000 per command, pipelined).
    let client = Client::connect_to(&url).await?;
    let t0 = Instant::now();
    let jobs: Vec<Job> = (0..JOBS)
        .map(|i| {
            Job::builder("Greet")
                .args((format!("user-{i}"), i))
                .queue(&queue)
                .build()
        })
        .collect::<Result<_, _>>()?;
    let refused = client.push_bulk(jobs).await?;
    assert!(refused.is_empty(), "server refused jobs: {refused:?}");
    let push_secs = t0.elapsed().as_secs_f64();
    println!("pushed {JOBS} jobs to queue {queue:?} in {push_secs:.2} s");

    // Worker: run them all, then shut down gracefully.
    let done = Arc::new(AtomicUsize::new(0));
    let finished_at: Arc<std::sync::OnceLock<Instant>> = Arc::default();
    let stop = CancellationToken::new();
    let (done2, stop2, finished2) = (Arc::clone(&done), stop.clone(), Arc::clone(&finished_at));
    let worker = Worker::builder()
        .url(&url)?
        .queues([queue.clone()])
        .concurrency(CONCURRENCY)
        .register("Greet", move |job: Job| {
            let (done, stop, finished) =
                (Arc::clone(&done2), stop2.clone(), Arc::clone(&finished2));
            async move {
                let (_name, _n): (String, usize) = job.args_as()?;
                if done.fetch_add(1, Ordering::Relaxed) + 1 == JOBS {
                    let _ = finished.set(Instant::now());
                    stop.cancel();
                }
                Ok::<(), BoxError>(())
            }
        })
        .shutdown_signal(stop.clone().cancelled_owned())
        .build()?;
    let t1 = Instant::now();
    let progress = tokio::spawn(progress_bar(Arc::clone(&done), t1));
    let report = worker.run().await;
    progress.abort();
    let total_secs = t1.elapsed().as_secs_f64();
    let secs = finished_at
        .get()
        .map_or(total_secs, |t| t.duration_since(t1).as_secs_f64());
    let processed = done.load(Ordering::Relaxed);
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    let info = client.info().await?;
    let left = info.faktory.queues.get(&queue).copied().unwrap_or(0);
    client.queue_remove(&[queue.as_str()]).await?;
    client.close().await?;

    println!(
        "worker: {processed} jobs in {secs:.2} s = {:.0} jobs/s at concurrency {CONCURRENCY}; \
         graceful shutdown took {:.2} s more (outstanding FETCHes are answered before any connection closes)",
        processed as f64 / secs,
        total_secs - secs
    );
    println!(
        "stopped: {:?}; every outcome confirmed: {}; jobs left in the queue: {left}",
        report.reason,
        report.is_clean()
    );
    if processed != JOBS || !report.is_clean() || left != 0 {
        return Err("quickstart did not process every job".into());
    }
    println!("quickstart OK");
    Ok(())
}

async fn progress_bar(done: Arc<AtomicUsize>, start: Instant) {
    let tty = std::io::stderr().is_terminal();
    loop {
        tokio::time::sleep(Duration::from_millis(if tty { 100 } else { 1000 })).await;
        let n = done.load(Ordering::Relaxed);
        if n >= JOBS && !tty {
            return;
        }
        let rate = n as f64 / start.elapsed().as_secs_f64().max(1e-9);
        let width = 40;
        let filled = n * width / JOBS;
        let line = format!(
            "[{}{}] {n}/{JOBS} jobs, {rate:.0} jobs/s",
            "#".repeat(filled),
            " ".repeat(width - filled)
        );
        if tty {
            eprint!("\r{line}");
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("{line}");
        }
    }
}
