//! The error type: the one shared by every runtime adapter ([`faktory_proto::adapter::Error`]).

pub use faktory_proto::adapter::Error;
