//! A producer on async-std: pushes one job, a scheduled job and a batch of jobs.
//!
//! ```sh
//! FAKTORY_URL=tcp://localhost:7419 cargo run -p faktory-async-std --example async_std_producer
//! ```
#![allow(clippy::print_stdout)]

use std::time::{Duration, SystemTime};

use faktory_async_std::{Client, Job};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // What the crates log (RUST_LOG=faktory_proto=debug shows reconnects; errors by default).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    async_std::task::block_on(async {
        let client = Client::connect().await?; // FAKTORY_PROVIDER / FAKTORY_URL / tcp://localhost:7419

        client
            .push(
                Job::builder("SendEmail")
                    .args(("ada@example.com", "Welcome!"))
                    .queue("mail")
                    .build()?,
            )
            .await?;

        let in_an_hour = SystemTime::now() + Duration::from_secs(3600);
        client
            .push(
                Job::builder("SendReminder")
                    .args(("ada@example.com",))
                    .at(in_an_hour)
                    .build()?,
            )
            .await?;

        let jobs = (0..100)
            .map(|i| Job::with_args("Resize", (format!("img-{i}.png"), 640)))
            .collect::<Result<Vec<_>, _>>()?;
        let refused = client.push_bulk(jobs).await?;
        println!("pushed 102 jobs, {} refused", refused.len());
        client.close().await?;
        Ok(())
    })
}
