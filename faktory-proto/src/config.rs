//! `FAKTORY_URL` / `FAKTORY_PROVIDER` parsing (PROTOCOL.md §1.1). Reading the environment is the
//! adapters' job (they pass a lookup function); parsing is here.
//!
//! CONTRACT (skeleton): `tcp://[:password@]host[:port]` and `tcp+tls://…`; default port 7419;
//! default URL `tcp://localhost:7419`; the password is URL-unescaped (`%xx`); the username is kept
//! (forwarded in HELLO) but not used; IPv6 hosts in brackets; anything else is a typed error.

use std::fmt;

use crate::handshake::Password;

/// The default Faktory port.
pub const DEFAULT_PORT: u16 = 7419;
/// The URL used when neither `FAKTORY_PROVIDER` nor `FAKTORY_URL` is set.
pub const DEFAULT_URL: &str = "tcp://localhost:7419";

/// A parsed server URL.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerUrl {
    /// Whether to speak TLS (`tcp+tls://`).
    pub tls: bool,
    /// Host name or IP (without brackets for IPv6).
    pub host: String,
    /// Port (7419 by default).
    pub port: u16,
    /// The password, if any.
    pub password: Option<Password>,
    /// The username, if any (forwarded in HELLO, ignored by Faktory).
    pub username: Option<String>,
}

impl fmt::Debug for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerUrl")
            .field("tls", &self.tls)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("username", &self.username)
            .finish()
    }
}

/// A URL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Not `tcp://` or `tcp+tls://`.
    #[error("unsupported URL scheme in {0:?}: use tcp:// or tcp+tls://")]
    Scheme(String),
    /// The host part is missing or malformed.
    #[error("invalid host in Faktory URL")]
    Host,
    /// The port is not a number in 1..=65535.
    #[error("invalid port in Faktory URL")]
    Port,
    /// A `%xx` escape is malformed.
    #[error("invalid percent-escape in Faktory URL")]
    Escape,
    /// `FAKTORY_PROVIDER` names a variable that is not set.
    #[error("FAKTORY_PROVIDER names {0}, which is not set")]
    MissingProviderVar(String),
}

impl ServerUrl {
    /// Parses a Faktory URL.
    pub fn parse(url: &str) -> Result<ServerUrl, ConfigError> {
        let _ = url;
        unimplemented!("ServerUrl::parse")
    }

    /// Resolves the URL from the environment as every official client does: `FAKTORY_PROVIDER` names
    /// the variable holding the URL, else `FAKTORY_URL`, else [`DEFAULT_URL`].
    pub fn from_env_with(lookup: impl Fn(&str) -> Option<String>) -> Result<ServerUrl, ConfigError> {
        let _ = lookup;
        unimplemented!("ServerUrl::from_env_with")
    }

    /// `host:port`, with brackets around IPv6 literals.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}
