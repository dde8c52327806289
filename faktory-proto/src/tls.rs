//! How `tcp+tls://` connections verify the server: the rustls client configuration every adapter
//! builds its TLS sessions from (feature `tls`).
//!
//! It lives here, and not in an adapter, because the async adapters and `faktory-blocking` both need
//! it and neither depends on the other; rustls is itself a sans-IO state machine, so this module adds
//! no I/O to the crate. The sessions themselves (handshake over a socket, reads and writes) are the
//! adapters'.
//!
//! ```
//! use faktory_proto::tls::TlsConfig;
//!
//! // The default: verify against the Mozilla roots bundled by `webpki-roots`.
//! let config = TlsConfig::default().client_config().expect("builds");
//! assert!(config.alpn_protocols.is_empty());
//! let name = faktory_proto::tls::server_name("faktory.example.com").expect("a DNS name");
//! # let _ = name;
//! ```

use std::sync::Arc;

use rustls::pki_types::ServerName;

use crate::client::{ConnectFailure, ConnectPhase};

/// How to verify the server's certificate on `tcp+tls://` URLs.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum TlsConfig {
    /// Verify against the Mozilla roots bundled by `webpki-roots` (the default).
    #[default]
    WebpkiRoots,
    /// Verify against the operating system's trust store (feature `native-roots`).
    #[cfg(feature = "native-roots")]
    NativeRoots,
    /// Verify against these roots (for a private CA or a self-signed server certificate).
    RootStore(rustls::RootCertStore),
    /// Use this rustls configuration as it is (client certificates, custom verifiers, …).
    ClientConfig(Arc<rustls::ClientConfig>),
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsConfig::WebpkiRoots => f.write_str("TlsConfig::WebpkiRoots"),
            #[cfg(feature = "native-roots")]
            TlsConfig::NativeRoots => f.write_str("TlsConfig::NativeRoots"),
            TlsConfig::RootStore(r) => write!(f, "TlsConfig::RootStore({} roots)", r.len()),
            TlsConfig::ClientConfig(_) => f.write_str("TlsConfig::ClientConfig(..)"),
        }
    }
}

/// Why a TLS configuration could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// The operating system's trust store has no certificate rustls can use.
    #[error("no usable certificates in the native trust store")]
    NoNativeRoots,
    /// rustls refused the configuration.
    #[error("TLS configuration refused: {0}")]
    Rustls(String),
    /// The host cannot be a TLS server name (it is neither a DNS name nor an IP address).
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
}

impl TlsConfig {
    /// The rustls client configuration (ring provider, safe default protocol versions, no client
    /// certificate), or the one given as [`TlsConfig::ClientConfig`].
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, TlsConfigError> {
        let roots = match self {
            TlsConfig::ClientConfig(c) => return Ok(Arc::clone(c)),
            TlsConfig::WebpkiRoots => rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
            #[cfg(feature = "native-roots")]
            TlsConfig::NativeRoots => {
                let mut store = rustls::RootCertStore::empty();
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = store.add(cert);
                }
                if store.is_empty() {
                    return Err(TlsConfigError::NoNativeRoots);
                }
                store
            }
            TlsConfig::RootStore(r) => r.clone(),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsConfigError::Rustls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

/// A failed TLS handshake as the machines take it: certificate problems are permanent (another
/// attempt cannot fix them); a server that answers in plain text gets a hint, since that is the
/// usual cause (a `tcp+tls://` URL pointed at a plain Faktory port); anything else is transient.
///
/// ```
/// use faktory_proto::client::ConnectPhase;
/// use faktory_proto::tls::handshake_failure;
///
/// let plain = rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
/// let failure = handshake_failure(&plain);
/// assert_eq!(failure.phase, ConnectPhase::Tls);
/// assert!(failure.reason.contains("tcp://"), "{}", failure.reason);
/// ```
pub fn handshake_failure(error: &rustls::Error) -> ConnectFailure {
    use rustls::AlertDescription as A;
    use rustls::Error as E;
    match error {
        E::InvalidCertificate(_)
        | E::NoCertificatesPresented
        | E::UnsupportedNameType
        | E::InvalidCertRevocationList(_) => ConnectFailure::permanent(
            ConnectPhase::Tls,
            format!(
                "the server's certificate does not verify: {error} (a private CA or a self-signed \
                 certificate needs TlsConfig::RootStore)"
            ),
        ),
        E::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType
            | rustls::InvalidMessage::UnknownProtocolVersion,
        ) => ConnectFailure::permanent(
            ConnectPhase::Tls,
            format!(
                "{error}: the server does not speak TLS on this port (is it a plain Faktory? use \
                 tcp:// instead of tcp+tls://)"
            ),
        ),
        // The server refuses what we offer (versions, our certificate): every attempt would.
        E::PeerIncompatible(_) => ConnectFailure::permanent(ConnectPhase::Tls, error.to_string()),
        E::AlertReceived(
            A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA
            | A::CertificateRequired
            | A::ProtocolVersion
            | A::HandshakeFailure,
        ) => ConnectFailure::permanent(ConnectPhase::Tls, error.to_string()),
        other => ConnectFailure::transient(ConnectPhase::Tls, other.to_string()),
    }
}

/// A TLS handshake that failed with `error` (an I/O error's inner error, as futures-rustls and
/// rustls's `Stream` report them): [`handshake_failure`] when it is a rustls error, else a
/// transient failure with `fallback` (the I/O error's text: a reset, an EOF).
pub fn failure_of(
    error: Option<&(dyn std::error::Error + Send + Sync + 'static)>,
    fallback: impl FnOnce() -> String,
) -> ConnectFailure {
    match error.and_then(|e| e.downcast_ref::<rustls::Error>()) {
        Some(tls) => handshake_failure(tls),
        None => ConnectFailure::transient(ConnectPhase::Tls, fallback()),
    }
}

/// The server name a TLS session to `host` verifies the certificate against.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsConfigError> {
    ServerName::try_from(host.to_owned()).map_err(|_| TlsConfigError::ServerName(host.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_configs_and_names() {
        assert!(TlsConfig::default().client_config().is_ok());
        let empty = TlsConfig::RootStore(rustls::RootCertStore::empty());
        assert!(empty.client_config().is_ok());
        assert!(format!("{empty:?}").contains("0 roots"));
        assert!(server_name("127.0.0.1").is_ok());
        assert_eq!(
            server_name("not a host!").unwrap_err(),
            TlsConfigError::ServerName("not a host!".into())
        );
    }

    #[test]
    fn handshake_failures_are_classified() {
        let cert = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let f = handshake_failure(&cert);
        assert!(f.permanent && f.reason.contains("RootStore"), "{f}");
        let plain = rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        let f = handshake_failure(&plain);
        assert!(f.permanent && f.reason.contains("use tcp://"), "{f}");
        assert_eq!(
            f.to_string(),
            format!("TLS handshake failed: {}", f.reason),
            "the phase leads the message"
        );
        let other = rustls::Error::HandshakeNotComplete;
        assert!(!handshake_failure(&other).permanent);
    }
}
