//! # faktory-testkit
//!
//! An in-memory, Faktory-compatible server with fault injection, for tests and local development.
//! **It is a test double, not a production server**: nothing is persisted, there are no limits, and
//! only the behaviour of the open-source Faktory 1.10 that a client can observe is reproduced.
//!
//! - [`TestServer`]: listens on 127.0.0.1, speaks the Faktory Work Protocol through
//!   [`faktory_proto::server::Connection`], and is the handle tests use to pre-load jobs, inspect
//!   queues, sets, reservations, workers and logs, act as an operator (quiet / terminate), move time
//!   and inject faults ([`Fault`], refused connections, restarts).
//! - [`TestServerHost`] ([`TestServer::start_hosted`]): the same server on a tokio runtime of its
//!   own, for tests that have none (blocking, smol, async-std).
//! - [`TestServer::wait_until_idle`]: wait until every queue is empty and every reservation is
//!   settled.
//! - [`Clock`]: the server clock, real, manual (stepped by the test) or sped up. A 60 s heartbeat
//!   reaping, a reservation expiry or a retry schedule take no wall time with a manual clock.
//! - [`Pace`]: optionally, the pace of a real server (commands answered one at a time per
//!   connection, each after a service time), for benchmarks that must not be tuned on a server that
//!   answers instantly.
//! - [`store::Store`]: the server's state and semantics as a pure, synchronous machine (no I/O,
//!   time passed in), usable on its own.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::time::Duration;
//! use faktory_testkit::{Clock, TestServer};
//! use faktory_testkit::proto::job::Job;
//!
//! let server = TestServer::builder()
//!     .clock(Clock::manual_now())
//!     .fetch_timeout(Duration::from_millis(100))
//!     .start()
//!     .await?;
//! server.push(Job::builder("Email").args(("ada@example.com",)).build().unwrap()).unwrap();
//! // Point the code under test at server.url(), run it, then look:
//! assert_eq!(server.queue("default").len(), 1);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub use faktory_proto as proto;

pub mod clock;
mod glob;
mod gojson;
mod gotime;
mod host;
pub mod pace;
mod server;
pub mod store;

pub use clock::{Clock, ClockError};
pub use faktory_proto::time::UnixTime;
pub use host::TestServerHost;
pub use pace::{Pace, ParsePaceError};
pub use server::{ConnectionInfo, Fault, TestServer, TestServerBuilder};
pub use store::{
    AckRecord, ConnId, FailOutcome, FailReason, FailRecord, PushError, ReservationInfo,
    RetryJitter, SetEntry, WorkerInfo,
};
