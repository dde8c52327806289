//! The handshake: the server's `HI`, the client's `HELLO`, and the password hash (PROTOCOL.md §2).
//!
//! CONTRACT (skeleton; the implementation fills the bodies):
//! - [`password_hash`]: `d = SHA256(password ++ salt)`, then `i - 1` more rounds of `SHA256(d)` over the
//!   raw digest; lowercase hex. `i <= 1` means one round. Both vectors of PROTOCOL.md §2.3 and the
//!   live one of §12 pass.
//! - [`Hi::parse`] takes the text of the `+HI …` simple string (`HI {json}`).
//! - [`Hello`] serializes in the order `v, hostname, pid, labels, wid, pwdhash, username`, skipping
//!   absent fields.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u8 = 2;

/// A password, redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(p: impl Into<String>) -> Self {
        Password(p.into())
    }
    /// The password itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl From<&str> for Password {
    fn from(s: &str) -> Self {
        Password::new(s)
    }
}

impl From<String> for Password {
    fn from(s: String) -> Self {
        Password::new(s)
    }
}

/// The server's greeting: `+HI {"v":2[,"i":N,"s":"salt"]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hi {
    /// Protocol version (always 2 on current servers).
    pub v: i64,
    /// Hash iterations, present when the server has a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub i: Option<u32>,
    /// Salt, present when the server has a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s: Option<String>,
}

/// A greeting that is not `HI {json}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HiError {
    /// The text does not start with `HI `.
    #[error("server greeting does not start with \"HI \"")]
    NotHi,
    /// The JSON is invalid.
    #[error("server greeting JSON is invalid: {0}")]
    Json(String),
}

impl Hi {
    /// Parses the text of the `+HI …` simple string.
    pub fn parse(text: &[u8]) -> Result<Hi, HiError> {
        let _ = text;
        unimplemented!("Hi::parse")
    }
    /// Whether the server wants a password hash.
    pub fn requires_password(&self) -> bool {
        self.s.is_some() || self.i.is_some()
    }
}

/// The client's `HELLO` payload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol version: send 2 (absent or < 2 makes the server expect a single-round hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<u8>,
    /// Display only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Display only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Display only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// Worker id: non-empty makes this a worker connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wid: Option<String>,
    /// The password hash, when the server asked for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pwdhash: Option<String>,
    /// Ignored by Faktory (for proxies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// The iterated SHA-256 password hash, lowercase hex.
pub fn password_hash(password: &str, salt: &str, iterations: u32) -> String {
    let _ = (password, salt, iterations);
    unimplemented!("password_hash")
}
