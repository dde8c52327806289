//! # faktory-blocking
//!
//! Faktory `Client` and `Worker` on `std::net` sockets and threads, with TLS (rustls), and no async
//! runtime anywhere in the dependency tree. The API is `faktory-tokio`'s, as blocking calls. All
//! protocol and worker decisions come from [`faktory_proto`]; this crate moves bytes, waits until
//! deadlines and runs handlers on threads.
//!
//! ```no_run
//! # fn demo() -> Result<(), faktory_blocking::Error> {
//! use faktory_blocking::{Client, Job};
//!
//! // FAKTORY_PROVIDER / FAKTORY_URL, else tcp://localhost:7419
//! let client = Client::connect()?;
//! client.push(Job::with_args("SendEmail", ("ada@example.com", 42))?)?;
//! # Ok(()) }
//! ```
//!
//! ## Handlers, middleware, state, tests
//!
//! The API of the async crates, as blocking calls: [`WorkerBuilder::register`] takes any
//! [`Handler`] shape (the [`Job`] or its args deserialized, with or without the [`JobContext`];
//! typed handlers return [`HandlerError`]); [`WorkerBuilder::middleware`] wraps every job in a
//! [`Middleware`] (first added = outermost); [`WorkerBuilder::state`] shares values by type
//! ([`JobContext::state`]); [`JobContext::push`] pushes follow-up jobs over the worker's own
//! connections; [`ClientBuilder::middleware`] and [`ClientBuilder::job_defaults`] shape every
//! pushed job. [`Worker::run_job`] runs a job through the middleware and its handler without a
//! server:
//!
//! ```
//! use faktory_blocking::{HandlerError, Job, JobContext, Next, Outcome, Worker};
//!
//! let worker = Worker::builder()
//!     .state(10u32)
//!     .middleware(|job: Job, ctx: JobContext, next: Next| {
//!         if job.custom_value("skip").is_some() {
//!             return Ok(()); // ACKed without running
//!         }
//!         next.run(job, ctx)
//!     })
//!     .register("Add", |(a,): (u32,), ctx: JobContext| {
//!         let b = ctx.state::<u32>()?;
//!         ctx.push(Job::with_args("Print", (a + b,))?)?;
//!         Ok(())
//!     })
//!     .register("Check", |(n,): (u32,)| {
//!         if n == 0 {
//!             return Err(HandlerError::msg("zero").with_errtype("Zero"));
//!         }
//!         Ok(())
//!     })
//!     .build()
//!     .unwrap();
//! let run = worker.run_job(Job::with_args("Add", (32,)).unwrap());
//! assert_eq!(run.outcome, Outcome::Ok);
//! assert_eq!(run.pushed[0].args, [serde_json::json!(42)]);
//! let run = worker.run_job(Job::with_args("Check", (0,)).unwrap());
//! assert!(matches!(run.outcome, Outcome::Failed { ref errtype, .. } if errtype == "Zero"));
//! ```
//!
//! Against a server, with no Faktory installed: `faktory_testkit::TestServerHost` runs the
//! in-memory test server on a runtime of its own, and `wait_until_idle` waits until every queue is
//! empty and every reservation is settled (ACKed or FAILed):
//!
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//!
//! use faktory_blocking::{Client, Job, JobContext, Worker};
//! use faktory_testkit::TestServer;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A short FETCH block, so the idle worker stops quickly at the end.
//! let server = TestServer::builder().fetch_timeout(Duration::from_millis(100)).start_hosted()?;
//! let client = Client::connect_to(&server.url())?;
//! for n in 1..=3u32 {
//!     client.push(Job::with_args("Add", (n,))?)?;
//! }
//!
//! let worker = Worker::builder()
//!     .url(&server.url())?
//!     .handle_signals(false) // a test is not a process of its own
//!     .state(AtomicU32::new(0))
//!     .register("Add", |(n,): (u32,), ctx: JobContext| {
//!         ctx.state::<AtomicU32>()?.fetch_add(n, Ordering::Relaxed);
//!         Ok(())
//!     })
//!     .build()?;
//! let stop = worker.shutdown_handle();
//! let running = std::thread::spawn(move || worker.run());
//!
//! assert!(server.wait_until_idle(Duration::from_secs(10)), "every job settled");
//! assert_eq!(server.acked().len(), 3);
//! stop.shutdown();
//! let report = running.join().unwrap();
//! assert!(report.is_clean(), "{report:?}");
//! # Ok(()) }
//! ```
//!
//! ## Threads
//!
//! - A [`Client`] has one I/O thread that drives its `faktory_proto::session::Session` (reconnects,
//!   backoff, deadlines, unknown outcomes, END) and owns its socket, and one reader thread per socket;
//!   callers on any number of threads hand it requests over a channel and block on their own reply
//!   channel, so concurrent calls are pipelined on one connection.
//! - A [`Worker`] runs its engine on the thread that calls [`Worker::run`], one reader thread per
//!   connection (the engine opens a few: see `faktory_proto::worker`), and at most `concurrency`
//!   handler threads. Stop it with a [`ShutdownHandle`].
//!
//! ## Sockets
//!
//! TCP_NODELAY and TCP keepalive are set on every socket (keepalive through `socket2`, since
//! `std::net` has no setter for it: a server that vanished without closing, behind a NAT or a
//! firewall that forgot the flow, is noticed by the kernel even on an idle connection); connects
//! are bounded by the connect timeout, writes by the request timeout, replies by the protocol
//! machines' deadlines.
//!
//! ## Errors
//!
//! [`Error`] is `faktory_proto::api::Error`, the error of every adapter. A connection that could
//! not be made is [`Error::Connection`] whose source says which step failed (resolving, TCP, TLS,
//! the handshake, a timeout); a call in flight when a connection dropped is
//! [`Error::OutcomeUnknown`].
#![forbid(unsafe_code)]

mod client;
mod driver;
mod error;
mod handler;
mod shutdown;
mod transport;
mod worker;

pub use client::{Client, ClientBuilder};
pub use error::Error;
pub use faktory_proto::api::ClientMiddleware;
pub use faktory_proto::api::{JobMeta, JobRun, MissingState};
#[cfg(feature = "tls")]
pub use faktory_proto::tls::TlsConfig;
/// Why a [`JobContext::push`] did not succeed.
pub use faktory_proto::worker::PushError;
pub use handler::{
    BoxError, CancellationToken, Handler, HandlerResult, JobContext, Middleware, Next, shape,
};
pub use shutdown::ShutdownHandle;
pub use transport::Stream;
pub use worker::{Worker, WorkerBuilder};

pub use faktory_proto as proto;
pub use faktory_proto::prelude::*;
#[cfg(feature = "tls")]
pub use rustls;
