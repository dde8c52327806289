//! Shared code of the criterion benches, the `faktory-bench` load tool and the `compare` harness
//! (`examples/compare.rs`): measuring CPU, RSS and connections, choosing or spawning the server,
//! the workloads on `faktory-tokio`, and printing results. See `benches/README.md`.
#![forbid(unsafe_code)]

pub mod async_std_rt;
pub mod blocking_rt;
pub mod calibrate;
pub mod cli;
pub mod measure;
pub mod monitor;
pub mod progress;
pub mod raw;
pub mod report;
pub mod server;
pub mod signal;
pub mod tokio_rt;
pub mod workloads;

/// The error type of the tool: any error, with a message worth printing.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
