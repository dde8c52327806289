//! Pushes made over the worker's own connections ([`Worker::push`](super::Worker::push)).

use std::sync::Arc;
use std::time::Duration;

use crate::client::ConnectionError;
use crate::error::ServerError;
use crate::job::JobError;

/// Identifies one [`Worker::push`](super::Worker::push); never reused. Its answer is the
/// [`Event::Pushed`](super::Event::Pushed) with the same id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PushId(pub u64);

/// Why a [`Worker::push`](super::Worker::push) did not succeed.
///
/// Only [`PushError::OutcomeUnknown`] leaves a doubt: the server may have the job. In every other
/// case the job was refused ([`PushError::Invalid`], [`PushError::Server`]) or never sent
/// ([`PushError::NoConnection`], [`PushError::Stopped`], [`PushError::Encode`]), so pushing it
/// again cannot double it.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The job does not validate, or still has a time relative to its push
    /// ([`request::prepare_push`](crate::request::prepare_push)); nothing was sent.
    #[error("job not pushed: {0}")]
    Invalid(#[source] Arc<JobError>),
    /// The server answered with an error (`-ERR …`, Enterprise's `-NOTUNIQUE Job not unique`):
    /// the job was not accepted.
    #[error("job not pushed: the server answered {0}")]
    Server(ServerError),
    /// No connection to the server was ready for the PUSH within `waited` (the connection
    /// options' `reply_timeout`); nothing was sent.
    #[error("job not pushed: no connection to the server was ready within {waited:?}")]
    NoConnection {
        /// How long the push waited.
        waited: Duration,
    },
    /// The worker stopped before the PUSH could be sent; nothing was sent.
    #[error("job not pushed: the worker stopped before it could be sent")]
    Stopped,
    /// The connection failed (or the worker stopped) after the PUSH was sent and before the
    /// server answered: the server may or may not have the job. It is never re-sent (a PUSH
    /// could be doubled).
    #[error("the connection was lost while the PUSH was in flight, its outcome is unknown: {0}")]
    OutcomeUnknown(ConnectionError),
    /// The server's reply to the PUSH was not `+OK` (the job may have been accepted).
    #[error("unexpected reply to PUSH: {0}")]
    UnexpectedReply(String),
    /// The PUSH command could not be encoded; nothing was sent.
    #[error("job not pushed: {0}")]
    Encode(String),
}

impl PartialEq for PushError {
    /// Equal variants with equal contents ([`PushError::Invalid`] compares the errors' messages).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (PushError::Invalid(a), PushError::Invalid(b)) => a.to_string() == b.to_string(),
            (PushError::Server(a), PushError::Server(b)) => a == b,
            (PushError::NoConnection { waited: a }, PushError::NoConnection { waited: b }) => {
                a == b
            }
            (PushError::Stopped, PushError::Stopped) => true,
            (PushError::OutcomeUnknown(a), PushError::OutcomeUnknown(b)) => a == b,
            (PushError::UnexpectedReply(a), PushError::UnexpectedReply(b))
            | (PushError::Encode(a), PushError::Encode(b)) => a == b,
            _ => false,
        }
    }
}

impl PushError {
    /// The server's error, when it answered with one.
    pub fn server_error(&self) -> Option<&ServerError> {
        match self {
            PushError::Server(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the server may have the job although the push did not succeed
    /// ([`PushError::OutcomeUnknown`], [`PushError::UnexpectedReply`]).
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(
            self,
            PushError::OutcomeUnknown(_) | PushError::UnexpectedReply(_)
        )
    }
}

/// A push not yet answered.
#[derive(Debug)]
pub(super) struct PendingPush {
    /// The PUSH to send; `None` once sent.
    pub(super) command: Option<crate::command::Command>,
    /// When it was made.
    pub(super) since: std::time::Instant,
    /// Answered [`PushError::NoConnection`] at this time if still unsent (`None`: never).
    pub(super) deadline: Option<std::time::Instant>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_errors_say_whether_the_server_may_have_the_job() {
        let invalid = PushError::Invalid(Arc::new(JobError::EmptyJobtype));
        assert_eq!(
            invalid.to_string(),
            "job not pushed: jobtype must not be empty"
        );
        assert!(std::error::Error::source(&invalid).is_some());
        assert_eq!(
            invalid,
            PushError::Invalid(Arc::new(JobError::EmptyJobtype))
        );
        let server = PushError::Server(ServerError::new("NOTUNIQUE", "Job not unique"));
        assert_eq!(
            server.server_error().map(|e| e.code.as_str()),
            Some("NOTUNIQUE")
        );
        assert!(server.to_string().contains("Job not unique"), "{server}");
        let waited = PushError::NoConnection {
            waited: Duration::from_secs(10),
        };
        assert!(waited.to_string().contains("10s"), "{waited}");
        for not_sent in [&invalid, &server, &waited, &PushError::Stopped] {
            assert!(!not_sent.is_outcome_unknown(), "{not_sent}");
        }
        let unknown = PushError::OutcomeUnknown(ConnectionError::Eof);
        assert!(unknown.is_outcome_unknown());
        assert!(unknown.to_string().contains("unknown"), "{unknown}");
        assert_ne!(unknown, PushError::Stopped);
    }
}
