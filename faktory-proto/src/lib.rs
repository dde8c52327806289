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
//! - [`job`]: the job payload, its builder, typed args, Enterprise options, per-jobtype defaults.
//! - [`time`]: timestamps with 0–9 fraction digits.
//! - [`handshake`]: `HI`, `HELLO` and the password hash.
//! - [`info`]: typed documents the server answers with (INFO, QUEUE LATENCY, BATCH STATUS, TRACK GET).
//! - [`client`]: the client connection machine (one socket).
//! - [`session`]: the client session machine (a client's connection over time: reconnect with
//!   backoff, per-call deadlines, END).
//! - [`request`]: typed requests, each a command with its reply parser.
//! - [`worker`]: the worker engine.
//! - [`config`]: `FAKTORY_URL` / `FAKTORY_PROVIDER` parsing.
//! - [`backoff`]: reconnect backoff and a seeded RNG, shared by the machines.
//! - [`error`]: error types shared by the modules.
//! - `server` (feature `server`): the server connection machine, for test servers and proxies.
//!
//! Not protocol, but shared by every runtime adapter (the async crate and `faktory-blocking`):
//! - [`api`]: the error users see, settings resolution, the error type of handlers
//!   ([`api::HandlerError`]), outcomes of handler errors and panics.
//! - `tls` (feature `tls`): the rustls client configuration.
//!
//! ## Driving a connection
//!
//! A complete blocking client over `std::net::TcpStream`: connect, handshake, PUSH a job, read
//! the replies, END. The loop is the same for every adapter: after each input, write what
//! [`client::Connection::poll_transmit`] gives and handle what
//! [`client::Connection::poll_event`] gives; sleep in `read` no longer than
//! [`client::Connection::poll_timeout`] and report the deadline with
//! [`client::Connection::handle_timeout`]. The connection decides everything else (the HELLO and
//! its password hash, holding the PUSH until the handshake completes, matching replies, poisoning
//! itself on a timeout or a protocol violation).
//!
//! ```no_run
//! use std::io::{ErrorKind, Read, Write};
//! use std::net::TcpStream;
//! use std::time::Instant;
//!
//! use faktory_proto::Job;
//! use faktory_proto::client::{ClientOptions, Connection, Event, Reply};
//! use faktory_proto::command::Command;
//! use faktory_proto::config::ServerUrl;
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let url = ServerUrl::parse("tcp://:s3cret-pw@localhost:7419")?;
//!     let mut stream = TcpStream::connect(url.authority())?;
//!     stream.set_nodelay(true)?;
//!
//!     let mut options = ClientOptions::default();
//!     options.password = url.password.clone();
//!     let mut conn = Connection::new(options, Instant::now());
//!
//!     // Commands may be queued at once: they are sent right after the server's +OK.
//!     let job = Job::builder("SendEmail").args(("ada@example.com", 42)).queue("mail").build()?;
//!     let push = conn.send(&Command::Push(Box::new(job)), Instant::now())?;
//!
//!     let mut buf = vec![0u8; 64 * 1024];
//!     loop {
//!         // 1. Handle what happened (this may queue more commands).
//!         while let Some(event) = conn.poll_event() {
//!             match event {
//!                 Event::Ready => println!("handshake done"),
//!                 Event::Reply { id, result } if id == push => {
//!                     match result {
//!                         Ok(Reply::Ok) => println!("pushed"),
//!                         Ok(other) => println!("unexpected reply {other:?}"),
//!                         // A -ERR reply: the connection stays usable.
//!                         Err(server_error) => println!("refused: {server_error}"),
//!                     }
//!                     // END gets no reply; the server closes and we see a clean Closed.
//!                     conn.send(&Command::End, Instant::now())?;
//!                 }
//!                 Event::Reply { .. } => {}
//!                 Event::Closed { error: None, .. } => return Ok(()),
//!                 Event::Closed { error: Some(e), unanswered } => {
//!                     // Timeouts, EOF, framing errors: never reuse the connection.
//!                     eprintln!("{} request(s) with unknown outcome", unanswered.len());
//!                     return Err(e.into());
//!                 }
//!                 _ => {}
//!             }
//!         }
//!         // 2. Write everything queued (HELLO, commands, END), as one buffer.
//!         while let Some(bytes) = conn.poll_transmit() {
//!             stream.write_all(&bytes)?;
//!         }
//!         // 3. Wait for bytes, but no longer than the next deadline.
//!         let now = Instant::now();
//!         match conn.poll_timeout() {
//!             Some(deadline) if deadline <= now => {
//!                 conn.handle_timeout(now);
//!                 continue;
//!             }
//!             Some(deadline) => stream.set_read_timeout(Some(deadline - now))?,
//!             None => stream.set_read_timeout(None)?,
//!         }
//!         match stream.read(&mut buf) {
//!             Ok(0) => conn.handle_eof(Instant::now()),
//!             Ok(n) => conn.handle_input(&buf[..n], Instant::now()),
//!             Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
//!                 conn.handle_timeout(Instant::now());
//!             }
//!             Err(e) if e.kind() == ErrorKind::Interrupted => {}
//!             Err(e) => conn.handle_transport_error(&e.to_string()),
//!         }
//!     }
//! }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod api;
pub mod backoff;
pub mod client;
pub mod command;
pub mod config;
pub mod error;
pub mod handshake;
pub mod info;
pub mod job;
pub mod request;
pub mod resp;
#[cfg(feature = "server")]
pub mod server;
pub mod session;
pub mod time;
#[cfg(feature = "tls")]
pub mod tls;
pub mod worker;

/// The protocol types every adapter re-exports at its root (`faktory_tokio::Job`,
/// `faktory_blocking::StopReport`, …): jobs, the payloads of the commands a client sends, the
/// documents the server answers with, the worker's outcomes and reports, and the error users see.
pub mod prelude {
    pub use crate::api::{Error, HandlerError};
    pub use crate::command::{
        BatchNew, Fail, MutateFilter, MutateOp, MutateTarget, Mutation, TrackSet, WorkerState,
    };
    pub use crate::info::{BatchStatus, Info, QueueLatency, TrackInfo};
    pub use crate::job::{JobDefaults, UniqueUntil};
    pub use crate::worker::{Lifecycle, Outcome, Queues, StopReason, StopReport, WorkerConfig};
    pub use crate::{Job, JobBuilder, ServerError, Timestamp};
}

pub use error::ServerError;
pub use job::{Failure, Job, JobBuilder, JobError};
pub use time::Timestamp;
