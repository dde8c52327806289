//! # faktory-async-std
//!
//! Faktory `Client` and `Worker` on futures-io sockets, for smol and async-std alike. All protocol
//! and worker decisions come from [`faktory_proto`].
//!
//! Status: not yet implemented (see the project's issue list).
#![forbid(unsafe_code)]

pub use faktory_proto as proto;
