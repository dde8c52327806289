//! # faktory-proto
//!
//! The Faktory Work Protocol as pure state machines: bytes, time and user intents go in; bytes,
//! deadlines and events come out. No sockets, no async, no clock reads, no threads. The runtime
//! adapters (`faktory-tokio`, `faktory-async-std`, `faktory-blocking`) move bytes between sockets and
//! these machines; the test server (`faktory-testkit`) drives the server side.
//!
//! Modules:
//! - [`resp`]: incremental RESP2 frames.
//! - [`command`]: every FWP command, encoded by clients and parsed by servers.
//! - [`job`]: the job payload, its builder and typed args.
//! - [`time`]: timestamps with 0–9 fraction digits.
//! - [`handshake`]: `HI`, `HELLO` and the password hash.
//! - [`info`]: typed documents the server answers with (INFO, QUEUE LATENCY, BATCH STATUS, TRACK GET).
//! - [`client`]: the client connection machine.
//! - [`ops`]: typed results for each client request, shared by the adapters.
//! - [`server`]: the server connection machine.
//! - [`config`]: `FAKTORY_URL` / `FAKTORY_PROVIDER` parsing.
//! - [`worker`]: the worker engine.
//! - [`backoff`]: reconnect backoff and a seeded RNG, shared by the client adapters and the worker.
//! - [`error`]: error types shared by the modules.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod backoff;
pub mod client;
pub mod command;
pub mod config;
pub mod error;
pub mod handshake;
pub mod info;
pub mod job;
pub mod ops;
pub mod resp;
pub mod server;
pub mod time;
pub mod worker;

pub use error::ServerError;
pub use job::{Failure, Job, JobBuilder, JobError};
pub use time::Timestamp;
