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

pub use client::{Client, ClientBuilder, ClientMiddleware};
pub use error::Error;
#[cfg(feature = "tls")]
pub use faktory_proto::tls::TlsConfig;
pub use handler::{
    BoxError, CancellationToken, Handler, HandlerResult, JobContext, Middleware, MissingState,
    Next, shape,
};
pub use shutdown::ShutdownHandle;
pub use transport::Stream;
pub use worker::{JobRun, Worker, WorkerBuilder};

pub use faktory_proto as proto;
pub use faktory_proto::prelude::*;
#[cfg(feature = "tls")]
pub use rustls;
