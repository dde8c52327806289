//! The error type of this crate.

use std::io;

use faktory_proto::ServerError;
use faktory_proto::client::ConnectionError;
use faktory_proto::command::EncodeError;
use faktory_proto::config::ConfigError;
use faktory_proto::job::JobError;
use faktory_proto::ops::ReplyError;

/// Everything that can go wrong talking to Faktory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `FAKTORY_URL` / `FAKTORY_PROVIDER` or a URL given in code is invalid.
    #[error("invalid Faktory URL: {0}")]
    Config(#[from] ConfigError),
    /// The TCP connection could not be made.
    #[error("could not connect to {addr}: {source}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// The socket error.
        source: io::Error,
    },
    /// Connecting (TCP, TLS and handshake) took too long.
    #[error("connecting to {0} timed out")]
    ConnectTimeout(String),
    /// TLS setup or negotiation failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The connection failed (handshake refused, bad password, protocol violation, server gone).
    #[error(transparent)]
    Connection(ConnectionError),
    /// The connection broke while this request was in flight: the server may or may not have
    /// executed it. It is never re-sent silently (a PUSH could be doubled).
    #[error("connection lost while {command} was in flight, its outcome is unknown: {source}")]
    OutcomeUnknown {
        /// The verb of the request.
        command: &'static str,
        /// Why the connection broke.
        source: ConnectionError,
    },
    /// The server answered with an error (`-ERR …`, `-NOTUNIQUE …`).
    #[error(transparent)]
    Server(ServerError),
    /// The server's reply did not fit the request.
    #[error(transparent)]
    Reply(ReplyError),
    /// The command cannot be encoded (bad queue name, …).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The job is invalid.
    #[error(transparent)]
    Job(#[from] JobError),
    /// The request got no reply in time.
    #[error("request timed out")]
    Timeout,
    /// The worker configuration is invalid.
    #[error("invalid worker configuration: {0}")]
    WorkerConfig(faktory_proto::worker::ConfigError),
    /// The API was used in a way that cannot work (the message says how).
    #[error("{0}")]
    Usage(&'static str),
    /// The client was closed with `close()`.
    #[error("client is closed")]
    Closed,
    /// An I/O error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<ReplyError> for Error {
    fn from(e: ReplyError) -> Self {
        match e {
            ReplyError::Server(s) => Error::Server(s),
            other => Error::Reply(other),
        }
    }
}

impl From<ConnectionError> for Error {
    fn from(e: ConnectionError) -> Self {
        match e {
            ConnectionError::Timeout(_) => Error::Timeout,
            other => Error::Connection(other),
        }
    }
}

impl Error {
    /// The server's error, when the server answered with one.
    pub fn server_error(&self) -> Option<&ServerError> {
        match self {
            Error::Server(e) => Some(e),
            _ => None,
        }
    }
}
