//! The error type: the one shared by every runtime adapter ([`faktory_proto::api::Error`]).

pub use faktory_proto::api::Error;
