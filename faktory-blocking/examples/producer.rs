//! A producer: pushes one job, a scheduled job and a batch of jobs, from plain blocking code.
//!
//! ```sh
//! FAKTORY_URL=tcp://localhost:7419 cargo run -p faktory-blocking --example blocking_producer
//! ```
#![allow(clippy::print_stdout)]

use std::time::{Duration, SystemTime};

use faktory_blocking::{Client, Job};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // What the crates log (RUST_LOG=faktory_proto=debug shows reconnects; errors by default).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let client = Client::connect()?; // FAKTORY_PROVIDER / FAKTORY_URL / tcp://localhost:7419

    client.push(
        Job::builder("SendEmail")
            .args(("ada@example.com", "Welcome!"))
            .queue("mail")
            .build()?,
    )?;

    let in_an_hour = SystemTime::now() + Duration::from_secs(3600);
    client.push(
        Job::builder("SendReminder")
            .args(("ada@example.com",))
            .at(in_an_hour)
            .build()?,
    )?;

    // `Client` is Clone + Send + Sync: threads share its one connection, their calls pipelined.
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let client = client.clone();
            std::thread::spawn(move || -> Result<usize, faktory_blocking::Error> {
                let jobs = (0..25)
                    .map(|i| Job::with_args("Resize", (format!("img-{t}-{i}.png"), 640)))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(client.push_bulk(jobs)?.len())
            })
        })
        .collect();
    let mut refused = 0;
    for t in threads {
        refused += t.join().map_err(|_| "a producer thread panicked")??;
    }
    println!("pushed 102 jobs, {refused} refused");
    client.close()?;
    Ok(())
}
