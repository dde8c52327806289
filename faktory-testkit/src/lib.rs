//! # faktory-testkit
//!
//! An in-memory, Faktory-compatible server with fault injection, for tests and local development.
//! **It is a test double, not a production server.**
#![forbid(unsafe_code)]

pub use faktory_proto as proto;

pub mod clock;
mod glob;
mod gojson;
mod gotime;
mod rng;
pub mod store;
