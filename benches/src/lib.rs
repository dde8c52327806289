//! Shared helpers for the criterion benches and the `faktory-bench` load tool.
#![forbid(unsafe_code)]
