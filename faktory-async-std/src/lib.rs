//! # faktory-async-std
//!
//! Faktory `Client` and `Worker` for **smol and async-std alike**: on the futures-io traits and
//! `async-io`'s process-wide reactor (`async-net` sockets, `async-io` timers), never on one
//! executor's internals, so a smol user and an async-std user depend on the same crate. The
//! implementation is `faktory-async`'s, written once for every runtime; this crate picks the
//! runtime ([`AsyncStd`]) and re-exports the API under the names every adapter shares (those of
//! `faktory-tokio`). All protocol and worker decisions come from
//! `faktory-proto` (re-exported as [`proto`]).
//!
//! Background tasks (a client's task, a worker's job handlers) run on a [`Spawner`]. The default
//! is `async-global-executor`'s thread pool, which works under `smol::block_on`,
//! `async_std::task::block_on` or any other executor (see [`Spawner::global`]); give
//! `ClientBuilder::runtime` / `WorkerBuilder::runtime` your own to keep them on your executor.
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
//!             .runtime(Spawner::new(|task| smol::spawn(task).detach()))
//!             .connect()
//!             .await?;
//!         client.push(Job::with_args("SendEmail", ("ada@example.com", 42))?).await?;
//!         client.close().await?;
//!
//!         let worker = Worker::builder()
//!             .runtime(Spawner::new(|task| smol::spawn(task).detach()))
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
//!
//! Testing against a server, with no Faktory installed: `faktory_testkit::TestServerHost` runs the
//! in-memory test server on a runtime of its own, and `wait_until_idle_async` (a future any
//! executor polls) waits until every queue is empty and every reservation is settled:
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//!
//! use faktory_async_std::{CancellationToken, Client, Job, JobContext, Spawner, Worker};
//! use faktory_testkit::TestServer;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A short FETCH block, so the idle worker stops quickly at the end.
//! let server = TestServer::builder().fetch_timeout(Duration::from_millis(100)).start_hosted()?;
//! smol::block_on(async {
//!     let client = Client::connect_to(&server.url()).await?;
//!     for n in 1..=3u32 {
//!         client.push(Job::with_args("Add", (n,))?).await?;
//!     }
//!     let stop = CancellationToken::new();
//!     let worker = Worker::builder()
//!         .runtime(Spawner::new(|task| smol::spawn(task).detach()))
//!         .url(&server.url())?
//!         .handle_signals(false) // a test is not a process of its own
//!         .state(AtomicU32::new(0))
//!         .register("Add", |(n,): (u32,), ctx: JobContext| async move {
//!             ctx.state::<AtomicU32>()?.fetch_add(n, Ordering::Relaxed);
//!             Ok(())
//!         })
//!         .shutdown_signal(stop.clone().cancelled_owned())
//!         .build()?;
//!     let running = smol::spawn(worker.run());
//!     assert!(server.wait_until_idle_async(Duration::from_secs(10)).await, "every job settled");
//!     assert_eq!(server.acked().len(), 3);
//!     stop.cancel();
//!     let report = running.await;
//!     assert!(report.is_clean(), "{report:?}");
//!     Ok(())
//! })
//! # }
//! ```
#![forbid(unsafe_code)]

mod rt;

pub use rt::{AsyncStd, BoxFuture, Spawner};

/// A Faktory client on smol / async-std: see [`faktory_async::Client`].
pub type Client = faktory_async::Client<AsyncStd>;
/// Configures and connects a [`Client`]: see [`faktory_async::ClientBuilder`].
pub type ClientBuilder = faktory_async::ClientBuilder<AsyncStd>;
/// A Faktory worker on smol / async-std: see [`faktory_async::Worker`].
pub type Worker = faktory_async::Worker<AsyncStd>;
/// Configures a [`Worker`]: see [`faktory_async::WorkerBuilder`].
pub type WorkerBuilder = faktory_async::WorkerBuilder<AsyncStd>;

pub use faktory_async::reexports::*;
