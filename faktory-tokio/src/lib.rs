//! # faktory-tokio
//!
//! Faktory `Client` and `Worker` on tokio sockets, with TLS. All protocol and worker decisions come
//! from [`faktory_proto`]; this crate moves bytes, sleeps until deadlines and runs handlers.
//!
//! Status: not yet implemented (see the project's issue list).
#![forbid(unsafe_code)]

pub use faktory_proto as proto;
