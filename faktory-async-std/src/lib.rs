//! # faktory-async-std
//!
//! Faktory `Client` and `Worker` for **smol and async-std alike**: written against the futures-io
//! traits (`futures-lite`, `async-io`, `async-net`), never against one executor's internals, so a
//! smol user and an async-std user depend on the same crate. All protocol and worker decisions come
//! from [`faktory_proto`]; this crate moves bytes, sleeps until deadlines (`async-io` timers) and runs
//! handlers. The API is the one of `faktory-tokio`, with the same names and types.
//!
//! Background tasks (a client's connection task, a worker's sockets and handlers) run on a
//! [`Spawner`]. The default is `async-global-executor`'s thread pool, which works under
//! `smol::block_on`, `async_std::task::block_on` or any other executor (see [`Spawner::global`]);
//! give `ClientBuilder::spawner` / `WorkerBuilder::spawner` your own to keep them on your executor.
//!
//! On smol:
//!
//! ```no_run
//! use faktory_async_std::{Client, Job, Spawner, Worker};
//!
//! fn main() -> Result<(), faktory_async_std::Error> {
//!     smol::block_on(async {
//!         // FAKTORY_PROVIDER / FAKTORY_URL, else tcp://localhost:7419
//!         let client = Client::builder()
//!             .spawner(Spawner::new(|task| smol::spawn(task).detach()))
//!             .connect()
//!             .await?;
//!         client.push(Job::with_args("SendEmail", ("ada@example.com", 42))?).await?;
//!         client.close().await?;
//!
//!         let worker = Worker::builder()
//!             .spawner(Spawner::new(|task| smol::spawn(task).detach()))
//!             .register("SendEmail", |job: Job| async move {
//!                 let (to, n): (String, u32) = job.args_as()?;
//!                 println!("mail {n} to {to}");
//!                 Ok::<(), faktory_async_std::BoxError>(())
//!             })
//!             .build()?;
//!         let report = worker.run().await;
//!         println!("stopped: {:?}", report.reason);
//!         Ok(())
//!     })
//! }
//! ```
//!
//! On async-std (the default spawner is async-std's own executor):
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use faktory_async_std::{CancellationToken, Client, Job, Worker};
//!
//! fn main() -> Result<(), faktory_async_std::Error> {
//!     async_std::task::block_on(async {
//!         let client = Client::connect_to("tcp://localhost:7419").await?;
//!         client.push(Job::with_args("Resize", ("img.png", 640))?).await?;
//!
//!         let stop = CancellationToken::new();
//!         let stopper = stop.clone();
//!         async_std::task::spawn(async move {
//!             async_std::task::sleep(Duration::from_secs(60)).await;
//!             stopper.cancel(); // graceful shutdown after a minute
//!         });
//!         let worker = Worker::builder()
//!             .url("tcp://localhost:7419")?
//!             .concurrency(20)
//!             .register_blocking("Resize", |job: Job, _ctx| {
//!                 let (path, width): (String, u32) = job.args_as()?;
//!                 println!("resizing {path} to {width}px");
//!                 Ok::<(), faktory_async_std::BoxError>(())
//!             })
//!             .shutdown_signal(stop.cancelled_owned())
//!             .build()?;
//!         let report = worker.run().await;
//!         assert!(report.is_clean());
//!         Ok(())
//!     })
//! }
//! ```
#![forbid(unsafe_code)]

mod client;
mod driver;
mod error;
mod handler;
mod rt;
mod transport;
mod worker;

pub use client::{Client, ClientBuilder};
pub use error::Error;
pub use faktory_proto::worker::{Lifecycle, Outcome, Queues, StopReason, StopReport, WorkerConfig};
pub use handler::{BoxError, JobContext};
pub use rt::{BoxFuture, CancellationToken, Spawner};
pub use transport::AsyncStream;
#[cfg(feature = "tls")]
pub use transport::TlsConfig;
pub use worker::{Worker, WorkerBuilder};

pub use faktory_proto as proto;
pub use faktory_proto::command::{
    BatchNew, Fail, MutateFilter, MutateOp, MutateTarget, Mutation, TrackSet, WorkerState,
};
pub use faktory_proto::info::{BatchStatus, Info, QueueLatency, TrackInfo};
pub use faktory_proto::{Job, JobBuilder, ServerError, Timestamp};
#[cfg(feature = "tls")]
pub use rustls;
