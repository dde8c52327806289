//! Opening sockets: resolve, TCP (on the runtime), TLS (futures-rustls), each step bounded by the
//! connect timeout and reported as a [`ConnectFailure`] naming its phase.

use std::future::Future;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use faktory_proto::client::{ConnectFailure, ConnectPhase};
use futures_io::{AsyncRead, AsyncWrite};

use crate::runtime::{self, Runtime};

/// Any duplex byte stream a client can run over (a TCP stream, a TLS stream, an in-memory pipe):
/// the futures-io traits. A tokio stream becomes one with `tokio_util::compat`
/// (`faktory_tokio::compat`).
pub trait AsyncStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> AsyncStream for T {}

/// A boxed [`AsyncStream`].
pub(crate) type BoxStream = Box<dyn AsyncStream>;

/// A socket being opened.
pub(crate) type Opening = Pin<Box<dyn Future<Output = Result<BoxStream, ConnectFailure>> + Send>>;

#[cfg(feature = "tls")]
pub use faktory_proto::tls::TlsConfig;

/// How a `tcp+tls://` connection is set up: the rustls configuration (built once) and the name
/// the certificate must carry.
#[cfg(feature = "tls")]
struct TlsSetup {
    connector: Result<futures_rustls::TlsConnector, String>,
    name: Result<rustls::pki_types::ServerName<'static>, String>,
}

/// Opens connections to one server.
pub(crate) struct Dialer<R: Runtime> {
    rt: R,
    host: String,
    port: u16,
    connect_timeout: Duration,
    /// `None` for `tcp://`; for `tcp+tls://`, the TLS setup or why there is none.
    #[cfg(feature = "tls")]
    tls: Option<TlsSetup>,
    #[cfg(not(feature = "tls"))]
    tls: bool,
}

impl<R: Runtime> std::fmt::Debug for Dialer<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// How the TLS settings arrive at a [`Dialer`]: a [`TlsConfig`] with the feature, nothing without.
#[cfg(feature = "tls")]
pub(crate) type TlsSettings = TlsConfig;
/// How the TLS settings arrive at a [`Dialer`]: a [`TlsConfig`] with the feature, nothing without.
#[cfg(not(feature = "tls"))]
pub(crate) type TlsSettings = ();

impl<R: Runtime> Dialer<R> {
    pub(crate) fn new(
        rt: R,
        url: &faktory_proto::config::ServerUrl,
        tls: &TlsSettings,
        connect_timeout: Duration,
    ) -> Arc<Self> {
        #[cfg(feature = "tls")]
        let tls = url.tls.then(|| TlsSetup {
            connector: tls
                .client_config()
                .map(futures_rustls::TlsConnector::from)
                .map_err(|e| e.to_string()),
            name: faktory_proto::tls::server_name(&url.host).map_err(|e| e.to_string()),
        });
        #[cfg(not(feature = "tls"))]
        let tls = {
            let () = *tls;
            url.tls
        };
        Arc::new(Dialer {
            rt,
            host: url.host.clone(),
            port: url.port,
            connect_timeout,
            tls,
        })
    }

    /// `host:port`, as errors and logs name the server.
    pub(crate) fn authority(&self) -> String {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => format!("[{}]:{}", self.host, self.port),
            _ => format!("{}:{}", self.host, self.port),
        }
    }

    /// Opens a socket, bounded by the connect timeout, as a future the driver polls.
    pub(crate) fn dial(self: &Arc<Self>) -> Opening {
        let this = Arc::clone(self);
        Box::pin(async move { this.open().await })
    }

    async fn open(&self) -> Result<BoxStream, ConnectFailure> {
        let deadline = runtime::after(Instant::now(), self.connect_timeout);
        let addrs = self.resolve(deadline).await?;
        let mut last = ConnectFailure::transient(ConnectPhase::Resolve, "no address");
        for addr in addrs {
            match runtime::timeout_at(&self.rt, deadline, self.rt.connect_tcp(addr)).await {
                Some(Ok(tcp)) => return self.secure(tcp, deadline).await,
                Some(Err(e)) => last = ConnectFailure::transient(ConnectPhase::Tcp, e.to_string()),
                None => return Err(self.timed_out(ConnectPhase::Tcp)),
            }
        }
        Err(last)
    }

    fn timed_out(&self, phase: ConnectPhase) -> ConnectFailure {
        ConnectFailure::transient(phase, format!("timed out after {:?}", self.connect_timeout))
    }

    /// The addresses to try: the host itself when it is an IP address, else what the system's
    /// resolver says (on a blocking thread).
    async fn resolve(&self, deadline: Instant) -> Result<Vec<SocketAddr>, ConnectFailure> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, self.port)]);
        }
        let target = (self.host.clone(), self.port);
        let lookup = self.rt.spawn_blocking(move || {
            target
                .to_socket_addrs()
                .map(Iterator::collect::<Vec<SocketAddr>>)
        });
        match runtime::timeout_at(&self.rt, deadline, lookup).await {
            Some(Some(Ok(addrs))) if !addrs.is_empty() => Ok(addrs),
            Some(Some(Ok(_))) => Err(ConnectFailure::transient(
                ConnectPhase::Resolve,
                format!("{} resolved to no address", self.host),
            )),
            Some(Some(Err(e))) => Err(ConnectFailure::transient(
                ConnectPhase::Resolve,
                e.to_string(),
            )),
            Some(None) => Err(ConnectFailure::transient(
                ConnectPhase::Resolve,
                "the runtime dropped the lookup",
            )),
            None => Err(self.timed_out(ConnectPhase::Resolve)),
        }
    }

    #[cfg(feature = "tls")]
    async fn secure(&self, tcp: R::Tcp, deadline: Instant) -> Result<BoxStream, ConnectFailure> {
        let Some(setup) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        let permanent = |reason: &String| ConnectFailure::permanent(ConnectPhase::Tls, reason);
        let connector = setup.connector.as_ref().map_err(permanent)?;
        let name = setup.name.as_ref().map_err(permanent)?;
        let handshake = connector.connect(name.clone(), tcp);
        match runtime::timeout_at(&self.rt, deadline, handshake).await {
            Some(Ok(tls)) => Ok(Box::new(tls)),
            Some(Err(e)) => Err(tls_failure(&e)),
            None => Err(self.timed_out(ConnectPhase::Tls)),
        }
    }

    #[cfg(not(feature = "tls"))]
    async fn secure(&self, tcp: R::Tcp, _deadline: Instant) -> Result<BoxStream, ConnectFailure> {
        if self.tls {
            return Err(ConnectFailure::permanent(
                ConnectPhase::Tls,
                "tcp+tls:// needs the `tls` feature",
            ));
        }
        Ok(Box::new(tcp))
    }
}

/// A failed TLS handshake: permanent when the server's certificate is the problem (another attempt
/// would meet the same certificate), transient otherwise (reset, EOF, …).
#[cfg(feature = "tls")]
fn tls_failure(error: &std::io::Error) -> ConnectFailure {
    use rustls::Error as E;
    let certificate = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<E>())
        .is_some_and(|e| {
            matches!(
                e,
                E::InvalidCertificate(_)
                    | E::NoCertificatesPresented
                    | E::UnsupportedNameType
                    | E::InvalidCertRevocationList(_)
            )
        });
    let reason = error.to_string();
    if certificate {
        ConnectFailure::permanent(ConnectPhase::Tls, reason)
    } else {
        ConnectFailure::transient(ConnectPhase::Tls, reason)
    }
}

#[cfg(all(test, feature = "tls"))]
mod tests {
    use super::*;

    #[test]
    fn certificate_errors_are_permanent_other_tls_errors_are_not() {
        let bad = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let f = tls_failure(&bad);
        assert!(f.permanent);
        assert_eq!(f.phase, ConnectPhase::Tls);
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(!tls_failure(&reset).permanent);
    }
}
