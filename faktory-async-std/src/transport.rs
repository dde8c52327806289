//! Sockets: TCP with nodelay, TLS with futures-rustls, or a stream the user supplies.

use std::io;
use std::time::Duration;

use async_net::TcpStream;
use futures_io::{AsyncRead, AsyncWrite};

use crate::error::Error;
use crate::rt;

/// Any duplex byte stream the client can run over (an `async_net::TcpStream`, an
/// `async_std::net::TcpStream`, a TLS stream, an in-memory pipe): the futures-io traits.
pub trait AsyncStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> AsyncStream for T {}

/// A boxed [`AsyncStream`].
pub(crate) type BoxStream = Box<dyn AsyncStream>;

/// How to verify the server's certificate on `tcp+tls://` URLs.
#[cfg(feature = "tls")]
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum TlsConfig {
    /// Verify against the Mozilla roots bundled by `webpki-roots` (the default).
    #[default]
    WebpkiRoots,
    /// Verify against the operating system's trust store.
    #[cfg(feature = "native-roots")]
    NativeRoots,
    /// Verify against these roots (for a private CA or a self-signed server certificate).
    RootStore(rustls::RootCertStore),
    /// Use this rustls configuration as it is (client certificates, custom verifiers, …).
    ClientConfig(std::sync::Arc<rustls::ClientConfig>),
}

#[cfg(feature = "tls")]
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

#[cfg(feature = "tls")]
impl TlsConfig {
    pub(crate) fn client_config(&self) -> Result<std::sync::Arc<rustls::ClientConfig>, Error> {
        use std::sync::Arc;
        let roots = match self {
            TlsConfig::ClientConfig(c) => return Ok(Arc::clone(c)),
            TlsConfig::WebpkiRoots => rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
            #[cfg(feature = "native-roots")]
            TlsConfig::NativeRoots => {
                let mut store = rustls::RootCertStore::empty();
                let found = rustls_native_certs::load_native_certs();
                for cert in found.certs {
                    let _ = store.add(cert);
                }
                if store.is_empty() {
                    return Err(Error::Tls(
                        "no usable certificates in the native trust store".into(),
                    ));
                }
                store
            }
            TlsConfig::RootStore(r) => r.clone(),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

/// Opens a TCP connection with TCP_NODELAY (Faktory is request/reply: Nagle would stall every
/// pipelined write), trying each address the host resolves to.
pub(crate) async fn connect_tcp(host: &str, port: u16) -> Result<TcpStream, Error> {
    let authority = format!("{host}:{port}");
    let addrs = async_net::resolve((host, port))
        .await
        .map_err(|source| Error::Connect {
            addr: authority.clone(),
            source,
        })?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "host resolved to no address");
    for addr in addrs {
        let attempt = async {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok::<_, io::Error>(stream)
        };
        match attempt.await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(Error::Connect {
        addr: authority,
        source: last,
    })
}

/// Where and how to connect.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: bool,
    #[cfg(feature = "tls")]
    pub(crate) tls_config: TlsConfig,
    pub(crate) connect_timeout: Duration,
}

impl Target {
    pub(crate) fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// TCP (and TLS) connection, bounded by the connect timeout.
    pub(crate) async fn open(&self) -> Result<BoxStream, Error> {
        // Boxed: the TLS handshake future is large (rustls state).
        match rt::timeout(self.connect_timeout, Box::pin(self.open_inner())).await {
            Ok(r) => r,
            Err(rt::Elapsed) => Err(Error::ConnectTimeout(self.authority())),
        }
    }

    async fn open_inner(&self) -> Result<BoxStream, Error> {
        let tcp = connect_tcp(&self.host, self.port).await?;
        if !self.tls {
            return Ok(Box::new(tcp));
        }
        #[cfg(feature = "tls")]
        {
            use rustls::pki_types::ServerName;
            let config = self.tls_config.client_config()?;
            let name = ServerName::try_from(self.host.clone())
                .map_err(|e| Error::Tls(format!("invalid server name {:?}: {e}", self.host)))?;
            let connector = futures_rustls::TlsConnector::from(config);
            let tls = connector
                .connect(name, tcp)
                .await
                .map_err(|e| Error::Tls(e.to_string()))?;
            Ok(Box::new(tls))
        }
        #[cfg(not(feature = "tls"))]
        {
            drop(tcp);
            Err(Error::Tls(
                "tcp+tls:// needs the `tls` feature of faktory-async-std".into(),
            ))
        }
    }
}
