//! Errors shared across the crate.
//!
//! Errors are split by origin: local misuse (a command that cannot be encoded, a job that does not
//! validate), server replies ([`ServerError`]: the code token and the message of a `-CODE message`
//! frame), and connection failures (`client::ConnectionError`: framing, EOF, timeouts, handshake).

use std::fmt;

/// An error reply from the server: `-<CODE> <message>`.
///
/// `code` is `ERR` for ordinary failures; Enterprise middleware uses other codes such as `NOTUNIQUE`.
/// Message texts are not a stable API (most changed case in 1.6.1; docs/protocol.md#error-replies):
/// match on [`ServerError::code`], or use the helpers here, which match case-insensitively on
/// prefixes.
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ServerError {
    /// The first word of the error line (`ERR`, `NOTUNIQUE`, …).
    pub code: String,
    /// The rest of the line after the first space (may be empty).
    pub message: String,
}

impl ServerError {
    /// Builds an error from its code and message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ServerError {
            code: code.into(),
            message: message.into(),
        }
    }

    /// Splits an error line (without the leading `-` and the CRLF) at its first space.
    pub fn from_line(line: &[u8]) -> Self {
        let text = String::from_utf8_lossy(line);
        match text.split_once(' ') {
            Some((code, msg)) => ServerError::new(code, msg),
            None => ServerError::new(text.into_owned(), String::new()),
        }
    }

    fn message_starts_with(&self, prefix: &str) -> bool {
        self.message
            .get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
    }

    /// `-ERR unknown worker <wid>` (or the pre-1.6.1 `Unknown worker`).
    pub fn is_unknown_worker(&self) -> bool {
        self.code == "ERR" && self.message_starts_with("unknown worker")
    }

    /// `-ERR Job not found <jid>`: a FAIL for a job that is not reserved (already settled or expired).
    pub fn is_job_not_found(&self) -> bool {
        self.code == "ERR" && self.message_starts_with("job not found")
    }

    /// `-ERR too many connections: N`, sent right after the handshake by an overloaded server.
    pub fn is_too_many_connections(&self) -> bool {
        self.code == "ERR" && self.message_starts_with("too many connections")
    }

    /// `-ERR Invalid password`.
    pub fn is_invalid_password(&self) -> bool {
        self.code == "ERR" && self.message_starts_with("invalid password")
    }

    /// `-NOTUNIQUE …` (Enterprise unique jobs).
    pub fn is_not_unique(&self) -> bool {
        self.code == "NOTUNIQUE"
    }

    /// `-ERR … only available in Faktory Enterprise`.
    pub fn is_enterprise_only(&self) -> bool {
        self.code == "ERR"
            && self
                .message
                .contains("only available in Faktory Enterprise")
    }

    /// `-ERR shutdown in progress`.
    pub fn is_shutdown(&self) -> bool {
        self.code == "ERR" && self.message_starts_with("shutdown in progress")
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "server error {}", self.code)
        } else {
            write!(f, "server error {}: {}", self.code, self.message)
        }
    }
}

impl fmt::Debug for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerError({} {:?})", self.code, self.message)
    }
}

impl std::error::Error for ServerError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_code_and_message() {
        let e = ServerError::from_line(b"ERR Job not found probe-jid-fail001");
        assert_eq!(e.code, "ERR");
        assert!(e.is_job_not_found());
        let e = ServerError::from_line(b"NOTUNIQUE Job not unique");
        assert!(e.is_not_unique());
        let e = ServerError::from_line(b"ERR Unknown worker w1");
        assert!(e.is_unknown_worker());
        let e = ServerError::from_line(b"ERR");
        assert_eq!(e.message, "");
    }
}
