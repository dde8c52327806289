//! # faktory-tokio
//!
//! Faktory `Client` and `Worker` on tokio sockets, with TLS (rustls). All protocol and worker
//! decisions come from [`faktory_proto`]; this crate moves bytes, sleeps until deadlines and runs
//! handlers.
//!
//! ```no_run
//! # async fn demo() -> Result<(), faktory_tokio::Error> {
//! use faktory_tokio::{Client, Job};
//!
//! // FAKTORY_PROVIDER / FAKTORY_URL, else tcp://localhost:7419
//! let client = Client::connect().await?;
//! client.push(Job::with_args("SendEmail", ("ada@example.com", 42))?).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod client;
mod driver;
mod error;
mod handler;
mod transport;
mod worker;

pub use client::{Client, ClientBuilder};
pub use error::Error;
pub use faktory_proto::worker::{Lifecycle, Outcome, Queues, StopReason, StopReport, WorkerConfig};
pub use handler::{BoxError, JobContext};
pub use tokio_util::sync::CancellationToken;
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
