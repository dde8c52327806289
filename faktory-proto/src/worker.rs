//! The worker engine: the whole behaviour of a worker process as a deterministic sans-IO machine.
//!
//! Status: being written (issue "faktory-proto: the worker engine").
