//! # faktory-async
//!
//! The Faktory [`Client`] and [`Worker`] for any async runtime, written once: generic over a small
//! [`Runtime`] trait (spawn a task, run blocking code, sleep until an instant, open a TCP
//! connection) and the futures-io stream traits, with TLS on rustls. Pick a runtime with a thin
//! crate: `faktory-tokio` (`faktory_tokio::Client` is `Client<faktory_tokio::Tokio>`) or
//! `faktory-async-std` (smol and async-std), or implement [`Runtime`] yourself.
//!
//! All protocol and worker decisions come from [`faktory_proto`]'s machines: the client session
//! (reconnect with backoff, per-call deadlines, calls in flight at a drop, END) and the worker
//! engine (connections, FETCH scheduling, heartbeat, quiet and terminate, shutdown, re-sending
//! unconfirmed ACK/FAIL). This crate moves bytes between sockets and those machines, sleeps until
//! their deadlines and runs handlers.
//!
//! A producer and a worker, for any runtime:
//!
//! ```no_run
//! use faktory_async::{CancellationToken, Client, Error, Job, JobContext, Next, Runtime, Worker};
//!
//! async fn produce_and_work<R: Runtime + Default>() -> Result<(), Error> {
//!     // FAKTORY_PROVIDER / FAKTORY_URL, else tcp://localhost:7419
//!     let client = Client::<R>::connect().await?;
//!     let jid = client.push(Job::with_args("SendEmail", ("ada@example.com", 42))?).await?;
//!     client.close().await?;
//!
//!     let stop = CancellationToken::new(); // stop.cancel() shuts the worker down gracefully
//!     let worker = Worker::<R>::builder()
//!         .state(String::from("noreply@example.com")) // shared by every job
//!         .middleware(|job: Job, ctx: JobContext, next: Next| async move {
//!             println!("running {}", job.jid);
//!             next.run(job, ctx).await
//!         })
//!         .register("SendEmail", |(to, n): (String, u32), ctx: JobContext| async move {
//!             let from = ctx.state::<String>()?;
//!             println!("mail {n} from {from} to {to}");
//!             Ok(())
//!         })
//!         .concurrency(20)
//!         .shutdown_signal(stop.cancelled_owned())
//!         .build()?;
//!     let report = worker.run().await;
//!     println!("{jid} done; stopped: {:?} (clean: {})", report.reason, report.is_clean());
//!     Ok(())
//! }
//! ```
//!
//! ## Handlers, middleware, state
//!
//! - [`WorkerBuilder::register`] takes a closure of any [`Handler`] shape: the [`Job`] or its args
//!   deserialized (a tuple, a struct, a map), with or without the [`JobContext`]; typed handlers
//!   return [`HandlerError`] (`?` takes any error). [`WorkerBuilder::register_blocking`] takes the
//!   same shapes as plain functions ([`BlockingHandler`]), run on the runtime's blocking threads.
//! - [`WorkerBuilder::middleware`] adds a [`Middleware`] around every job (the first added is the
//!   outermost): it sees the job, its context and the result of [`Next::run`], and can change the
//!   job, short-circuit, or turn an error into a retry or a discard.
//! - [`WorkerBuilder::state`] shares values by type; [`JobContext::state`] gives them back.
//! - [`JobContext::push`] pushes follow-up jobs over the worker's own connections;
//!   `ctx.batch_id()` ([`JobMeta::batch_id`], through `JobContext`) names the job's batch.
//! - [`ClientBuilder::middleware`] runs a [`ClientMiddleware`] on every pushed job;
//!   [`ClientBuilder::job_defaults`] gives a jobtype its queue, retry and reservation.
//!
//! ## Testing handlers
//!
//! [`Worker::run_job`] runs a job through the middleware and its handler without a server and
//! gives a [`JobRun`]: the outcome (ACK or FAIL) and the jobs it pushed.
//! [`JobContext::for_test`] makes a context to call a handler function directly.
//!
//! ## How it runs
//!
//! - A [`Client`] is one task on the runtime, driving a
//!   [`Session`](faktory_proto::session::Session): calls arrive on a channel, every call waiting is
//!   handed to the session before the next write (concurrent calls are pipelined in one write),
//!   replies are read into one reused buffer and given to the session as a slice.
//! - A [`Worker`] is one task too (the future [`Worker::run`] returns): it owns the engine and
//!   every connection's socket and polls them itself, one write per socket per turn; each job runs
//!   as its own task, blocking handlers on [`Runtime::spawn_blocking`]. On Linux each socket's
//!   receive low-water mark follows what the server still owes it, so the `+OK` of an ACK does
//!   not wake the worker before the job of the FETCH sent with it ([`Runtime::tcp_socket`]).
//! - Sockets get `TCP_NODELAY` and keepalive ([`configure_tcp`]); host names are resolved on a
//!   blocking thread; each attempt (resolve, TCP, TLS, handshake) is bounded by the connect
//!   timeout.
// One `unsafe` block, allowed in `lowat` (a setsockopt that neither std nor socket2 offers).
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

mod client;
mod handler;
mod lowat;
mod runtime;
mod socket;
#[cfg(test)]
mod testrt;
mod token;
mod transport;
mod worker;

pub use client::{Client, ClientBuilder};
pub use faktory_proto::api::ClientMiddleware;
pub use faktory_proto::api::{JobMeta, JobRun, MissingState};
/// Why a [`JobContext::push`] did not succeed.
pub use faktory_proto::worker::PushError;
pub use handler::{
    BlockingHandler, BoxError, Handler, HandlerResult, JobContext, Middleware, Next, shape,
};
pub use runtime::{Runtime, TerminationSignals, configure_tcp, termination_signals};
pub use token::CancellationToken;
pub use transport::AsyncStream;
#[cfg(feature = "tls")]
pub use transport::TlsConfig;
pub use worker::{Worker, WorkerBuilder};

/// What every runtime shim re-exports besides its own type aliases (`faktory-tokio` and
/// `faktory-async-std` say `pub use faktory_async::reexports::*;`), so the shims offer the same
/// names without listing them twice.
pub mod reexports {
    pub use crate::{
        AsyncStream, BlockingHandler, BoxError, CancellationToken, ClientMiddleware, Handler,
        HandlerResult, JobContext, JobRun, Middleware, MissingState, Next, proto, shape,
    };
    #[cfg(feature = "tls")]
    pub use crate::{TlsConfig, rustls};
    pub use faktory_proto::prelude::*;
}

pub use faktory_proto as proto;
pub use faktory_proto::prelude::*;
#[cfg(feature = "tls")]
pub use rustls;
