//! `FAKTORY_URL` / `FAKTORY_PROVIDER` parsing (docs/protocol.md#server-url). Reading the
//! environment is the adapters' job (they pass a lookup function); parsing is here.
//!
//! CONTRACT: `tcp://[:password@]host[:port]` and `tcp+tls://…`; default port 7419;
//! default URL `tcp://localhost:7419`; the password is URL-unescaped (`%xx`); the username is kept
//! (forwarded in HELLO) but not used; IPv6 hosts in brackets; anything else is a typed error.
//!
//! Details: the scheme is matched case-insensitively; a path, query or fragment after the
//! authority is ignored (as the Go client ignores it); the userinfo ends at the last `@`; an empty
//! username or password is none. `FAKTORY_PROVIDER` set to an empty string counts as unset; set to
//! something containing `:` (a URL instead of a variable name) it is
//! [`ConfigError::ProviderNotAName`].

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
    /// The host part is missing or malformed (the value, as written).
    #[error("invalid host {0:?} in Faktory URL: expected a host name, an IPv4 address or [IPv6]")]
    Host(String),
    /// The port is not a number in 1..=65535 (the value, as written).
    #[error("invalid port {0:?} in Faktory URL: expected a number from 1 to 65535")]
    Port(String),
    /// A `%xx` escape in the user info is malformed (not shown: it is part of the password).
    #[error("invalid percent-escape in the password or user name of the Faktory URL")]
    Escape,
    /// `FAKTORY_PROVIDER` names a variable that is not set.
    #[error("FAKTORY_PROVIDER names {0}, which is not set")]
    MissingProviderVar(String),
    /// `FAKTORY_PROVIDER` holds a URL; it must hold the *name* of the variable with the URL
    /// (e.g. `FAKTORY_PROVIDER=FOO_URL`, `FOO_URL=tcp://:pw@host:7419`).
    #[error("FAKTORY_PROVIDER must name the variable holding the URL, not hold a URL")]
    ProviderNotAName,
}

impl ServerUrl {
    /// Parses a Faktory URL.
    pub fn parse(url: &str) -> Result<ServerUrl, ConfigError> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| ConfigError::Scheme(redact(url)))?;
        let tls = if scheme.eq_ignore_ascii_case("tcp") {
            false
        } else if scheme.eq_ignore_ascii_case("tcp+tls") {
            true
        } else {
            return Err(ConfigError::Scheme(redact(url)));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(u) => {
                let (user, pass) = match u.split_once(':') {
                    Some((user, pass)) => (user, Some(pass)),
                    None => (u, None),
                };
                let user = Some(percent_decode(user)?).filter(|s| !s.is_empty());
                let pass = match pass {
                    Some(p) => Some(percent_decode(p)?).filter(|s| !s.is_empty()),
                    None => None,
                };
                (user, pass.map(Password::new))
            }
        };
        let (host, port) = split_host_port(hostport)?;
        Ok(ServerUrl {
            tls,
            host,
            port,
            password,
            username,
        })
    }

    /// Resolves the URL from the environment as every official client does: `FAKTORY_PROVIDER` names
    /// the variable holding the URL, else `FAKTORY_URL`, else [`DEFAULT_URL`].
    pub fn from_env_with(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<ServerUrl, ConfigError> {
        if let Some(provider) = lookup("FAKTORY_PROVIDER").filter(|p| !p.is_empty()) {
            if provider.contains(':') {
                return Err(ConfigError::ProviderNotAName);
            }
            return match lookup(&provider) {
                Some(url) => ServerUrl::parse(&url),
                None => Err(ConfigError::MissingProviderVar(provider)),
            };
        }
        match lookup("FAKTORY_URL").filter(|u| !u.is_empty()) {
            Some(url) => ServerUrl::parse(&url),
            None => ServerUrl::parse(DEFAULT_URL),
        }
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

/// The URL with its userinfo (which may hold the password) removed, for error messages.
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(end);
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://<redacted>@{host}{tail}"),
                None => url.to_owned(),
            }
        }
        None => match url.rsplit_once('@') {
            Some((_, host)) => format!("<redacted>@{host}"),
            None => url.to_owned(),
        },
    }
}

fn split_host_port(hostport: &str) -> Result<(String, u16), ConfigError> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let bad_host = || ConfigError::Host(hostport.to_owned());
        let (v6, after) = rest.split_once(']').ok_or_else(bad_host)?;
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad_host());
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| ConfigError::Port(p.to_owned()))?,
            ),
        };
        (v6, port)
    } else {
        let (host, port) = match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        };
        let valid = !host.is_empty()
            && host.chars().all(|c| {
                !c.is_whitespace() && !c.is_control() && !matches!(c, '[' | ']' | '@' | '%' | '\\')
            });
        if !valid {
            return Err(ConfigError::Host(host.to_owned()));
        }
        (host, port)
    };
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => match p.parse::<u16>()
        {
            Ok(n) if n > 0 => n,
            _ => return Err(ConfigError::Port(p.to_owned())),
        },
        Some(p) => return Err(ConfigError::Port(p.to_owned())),
    };
    Ok((host.to_owned(), port))
}

fn percent_decode(s: &str) -> Result<String, ConfigError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(ConfigError::Escape)?;
            let hex = std::str::from_utf8(hex).map_err(|_| ConfigError::Escape)?;
            if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(ConfigError::Escape);
            }
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ConfigError::Escape)?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ConfigError::Escape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn parses_plain_tls_password_and_defaults() {
        let u = ServerUrl::parse("tcp://localhost:7419").unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port), (false, "localhost", 7419));
        assert!(u.password.is_none() && u.username.is_none());
        let u = ServerUrl::parse("tcp+tls://:s3cret@faktory.example.com").unwrap();
        assert!(u.tls);
        assert_eq!(u.port, DEFAULT_PORT);
        assert_eq!(u.password.as_ref().map(Password::expose), Some("s3cret"));
        assert_eq!(u.authority(), "faktory.example.com:7419");
        let u = ServerUrl::parse("tcp://bob:p%40ss%3Aword@10.0.0.1:7500/").unwrap();
        assert_eq!(u.username.as_deref(), Some("bob"));
        assert_eq!(u.password.as_ref().map(Password::expose), Some("p@ss:word"));
        assert_eq!((u.host.as_str(), u.port), ("10.0.0.1", 7500));
        // The userinfo ends at the last '@'.
        let u = ServerUrl::parse("tcp://:a@b@host").unwrap();
        assert_eq!(u.password.as_ref().map(Password::expose), Some("a@b"));
        assert_eq!(u.host, "host");
        let u = ServerUrl::parse("TCP://h").unwrap();
        assert_eq!(u.host, "h");
        assert!(ServerUrl::parse("tcp://:@h").unwrap().password.is_none());
    }

    #[test]
    fn parses_ipv6() {
        let u = ServerUrl::parse("tcp://[::1]:7419").unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.authority(), "[::1]:7419");
        let u = ServerUrl::parse("tcp+tls://:pw@[2001:db8::2]").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("2001:db8::2", 7419));
        assert!(matches!(
            ServerUrl::parse("tcp://[::1"),
            Err(ConfigError::Host(_))
        ));
        assert!(matches!(
            ServerUrl::parse("tcp://[nothex]:1"),
            Err(ConfigError::Host(_))
        ));
        assert!(matches!(
            ServerUrl::parse("tcp://[::1]7419"),
            Err(ConfigError::Port(_))
        ));
    }

    #[test]
    fn rejects_bad_urls_with_typed_errors() {
        assert!(matches!(
            ServerUrl::parse("http://localhost:7419"),
            Err(ConfigError::Scheme(_))
        ));
        assert!(matches!(
            ServerUrl::parse("localhost:7419"),
            Err(ConfigError::Scheme(_))
        ));
        assert!(matches!(
            ServerUrl::parse("redis://h"),
            Err(ConfigError::Scheme(_))
        ));
        assert!(matches!(
            ServerUrl::parse("tcp://localhost:0"),
            Err(ConfigError::Port(_))
        ));
        assert!(matches!(
            ServerUrl::parse("tcp://localhost:65536"),
            Err(ConfigError::Port(_))
        ));
        assert!(matches!(
            ServerUrl::parse("tcp://localhost:port"),
            Err(ConfigError::Port(_))
        ));
        assert!(matches!(
            ServerUrl::parse("tcp://localhost:"),
            Err(ConfigError::Port(_))
        ));
        assert!(matches!(
            ServerUrl::parse("tcp://localhost:+1"),
            Err(ConfigError::Port(_))
        ));
        assert!(matches!(
            ServerUrl::parse("tcp://:7419"),
            Err(ConfigError::Host(_))
        ));
        // The offending value is in the message.
        let e = ServerUrl::parse("tcp://h:notaport").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid port \"notaport\" in Faktory URL: expected a number from 1 to 65535"
        );
        let e = ServerUrl::parse("tcp://a b:7419").unwrap_err();
        assert!(e.to_string().contains("\"a b\""), "{e}");
        assert!(matches!(
            ServerUrl::parse("tcp://"),
            Err(ConfigError::Host(_))
        ));
        assert!(matches!(
            ServerUrl::parse("tcp://a b"),
            Err(ConfigError::Host(_))
        ));
        assert_eq!(ServerUrl::parse("tcp://:p%4@h"), Err(ConfigError::Escape));
        assert_eq!(ServerUrl::parse("tcp://:p%zz@h"), Err(ConfigError::Escape));
        assert_eq!(ServerUrl::parse("tcp://:p%ff@h"), Err(ConfigError::Escape));
        // The password never shows in an error.
        let e = ServerUrl::parse("http://:hunter2@h").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(
            !format!("{:?}", ServerUrl::parse("tcp://:hunter2@h").unwrap()).contains("hunter2")
        );
    }

    #[test]
    fn environment_resolution() {
        let u = ServerUrl::from_env_with(env(&[])).unwrap();
        assert_eq!((u.host.as_str(), u.port, u.tls), ("localhost", 7419, false));
        let u = ServerUrl::from_env_with(env(&[("FAKTORY_URL", "tcp://:pw@f:1234")])).unwrap();
        assert_eq!((u.host.as_str(), u.port), ("f", 1234));
        let u = ServerUrl::from_env_with(env(&[
            ("FAKTORY_PROVIDER", "MY_FAKTORY"),
            ("MY_FAKTORY", "tcp+tls://:x%40y@prov:7000"),
            ("FAKTORY_URL", "tcp://ignored"),
        ]))
        .unwrap();
        assert_eq!((u.host.as_str(), u.port, u.tls), ("prov", 7000, true));
        assert_eq!(u.password.as_ref().map(Password::expose), Some("x@y"));
        assert_eq!(
            ServerUrl::from_env_with(env(&[
                ("FAKTORY_PROVIDER", "NOPE"),
                ("FAKTORY_URL", "tcp://f")
            ])),
            Err(ConfigError::MissingProviderVar("NOPE".into()))
        );
        assert_eq!(
            ServerUrl::from_env_with(env(&[("FAKTORY_PROVIDER", "tcp://:pw@h")])),
            Err(ConfigError::ProviderNotAName)
        );
        let u =
            ServerUrl::from_env_with(env(&[("FAKTORY_PROVIDER", ""), ("FAKTORY_URL", "tcp://f")]))
                .unwrap();
        assert_eq!(u.host, "f");
        assert!(matches!(
            ServerUrl::from_env_with(env(&[("FAKTORY_URL", "ftp://x")])),
            Err(ConfigError::Scheme(_))
        ));
    }
}
