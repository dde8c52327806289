//! # faktory-blocking
//!
//! Faktory `Client` and `Worker` on `std::net` and threads, with no async runtime. All protocol and
//! worker decisions come from [`faktory_proto`].
//!
//! Status: not yet implemented (see the project's issue list).
#![forbid(unsafe_code)]

pub use faktory_proto as proto;
