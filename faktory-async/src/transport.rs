//! Opening sockets: resolve, TCP (on the runtime), TLS (futures-rustls), each step bounded by the
//! connect timeout and reported as a [`ConnectFailure`] naming its phase.

use std::future::Future;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use faktory_proto::client::{ConnectFailure, ConnectPhase};
use futures_io::{AsyncRead, AsyncWrite};

use crate::lowat::ReadThreshold;
use crate::runtime::{self, Runtime};

/// Any duplex byte stream a client can run over (a TCP stream, a TLS stream, an in-memory pipe):
/// the futures-io traits. A tokio stream becomes one with `tokio_util::compat`
/// (`faktory_tokio::compat`).
pub trait AsyncStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> AsyncStream for T {}

/// A boxed [`AsyncStream`].
pub(crate) type BoxStream = Box<dyn AsyncStream>;

/// An open socket: its stream, and for a worker's socket a handle to set its receive low-water
/// mark.
pub(crate) struct Opened {
    pub(crate) stream: BoxStream,
    pub(crate) threshold: Option<ReadThreshold>,
}

impl Opened {
    /// A stream without a low-water mark handle.
    pub(crate) fn plain(stream: BoxStream) -> Self {
        Opened {
            stream,
            threshold: None,
        }
    }
}

/// A socket being opened.
pub(crate) type Opening = Pin<Box<dyn Future<Output = Result<Opened, ConnectFailure>> + Send>>;

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

    /// Opens a socket, bounded by the connect timeout, as a future the driver polls. With
    /// `read_threshold`, a plain TCP socket comes with a handle to set its receive low-water mark
    /// (where the runtime and the platform allow).
    pub(crate) fn dial(self: &Arc<Self>, read_threshold: bool) -> Opening {
        let this = Arc::clone(self);
        Box::pin(async move { this.open(read_threshold).await })
    }

    async fn open(&self, read_threshold: bool) -> Result<Opened, ConnectFailure> {
        self.check_tls()?;
        let deadline = runtime::after(Instant::now(), self.connect_timeout);
        let addrs = self.resolve(deadline).await?;
        let mut last = ConnectFailure::transient(ConnectPhase::Resolve, "no address");
        for addr in addrs {
            match runtime::timeout_at(&self.rt, deadline, self.rt.connect_tcp(addr)).await {
                Some(Ok(tcp)) => {
                    // Not under TLS: a record only decrypts once whole, so bytes on the socket
                    // are no measure of the replies read.
                    let threshold = (read_threshold && !self.is_tls())
                        .then(|| ReadThreshold::of::<R>(&tcp))
                        .flatten();
                    let stream = self.secure(tcp, deadline).await?;
                    return Ok(Opened { stream, threshold });
                }
                Some(Err(e)) => last = ConnectFailure::transient(ConnectPhase::Tcp, e.to_string()),
                None => return Err(self.timed_out(ConnectPhase::Tcp)),
            }
        }
        Err(last)
    }

    #[cfg(feature = "tls")]
    fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    #[cfg(not(feature = "tls"))]
    fn is_tls(&self) -> bool {
        self.tls
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

    /// A TLS setup that cannot work fails the attempt before any lookup or connect.
    #[cfg(feature = "tls")]
    fn check_tls(&self) -> Result<(), ConnectFailure> {
        let permanent = |reason: &String| ConnectFailure::permanent(ConnectPhase::Tls, reason);
        if let Some(setup) = &self.tls {
            setup.connector.as_ref().map_err(permanent)?;
            setup.name.as_ref().map_err(permanent)?;
        }
        Ok(())
    }

    #[cfg(not(feature = "tls"))]
    fn check_tls(&self) -> Result<(), ConnectFailure> {
        if self.tls {
            return Err(ConnectFailure::permanent(
                ConnectPhase::Tls,
                "tcp+tls:// needs the `tls` feature",
            ));
        }
        Ok(())
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
        Ok(Box::new(tcp))
    }
}

/// A failed TLS handshake, classified once in `faktory_proto::tls` (certificate problems and a
/// plain-text server are permanent, with a hint).
#[cfg(feature = "tls")]
fn tls_failure(error: &std::io::Error) -> ConnectFailure {
    faktory_proto::tls::failure_of(error.get_ref(), || error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testrt::TestRt;
    use faktory_proto::config::ServerUrl;
    use futures_lite::future::block_on;
    use std::sync::atomic::Ordering;

    fn dialer(rt: TestRt, url: &str, timeout: Duration) -> Arc<Dialer<TestRt>> {
        let url = ServerUrl::parse(url).unwrap();
        Dialer::new(rt, &url, &TlsSettings::default(), timeout)
    }

    #[test]
    fn opens_ip_literals_and_resolved_names() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let rt = TestRt::default();
        let ip = dialer(
            rt.clone(),
            &format!("tcp://127.0.0.1:{port}"),
            Duration::from_secs(5),
        );
        assert_eq!(ip.authority(), format!("127.0.0.1:{port}"));
        assert!(block_on(ip.dial(false)).is_ok());
        let named = dialer(
            rt,
            &format!("tcp://localhost:{port}"),
            Duration::from_secs(5),
        );
        // localhost may resolve to ::1 first; some address answers.
        let _ = block_on(named.dial(false));
        let v6 = dialer(
            TestRt::default(),
            "tcp://[::1]:7419",
            Duration::from_secs(1),
        );
        assert_eq!(v6.authority(), "[::1]:7419");
    }

    #[test]
    fn failures_name_their_phase() {
        // A port nobody listens on: refused, transient.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let rt = TestRt::default();
        let refused = dialer(
            rt.clone(),
            &format!("tcp://127.0.0.1:{port}"),
            Duration::from_secs(5),
        );
        let f = block_on(refused.dial(false)).err().unwrap();
        assert_eq!(f.phase, ConnectPhase::Tcp);
        assert!(!f.permanent);
        // A connect that never completes: bounded by the connect timeout.
        rt.hang_connects.store(true, Ordering::SeqCst);
        let slow = dialer(
            rt,
            &format!("tcp://127.0.0.1:{port}"),
            Duration::from_millis(50),
        );
        let f = block_on(slow.dial(false)).err().unwrap();
        assert_eq!(f.phase, ConnectPhase::Tcp);
        assert!(f.reason.contains("timed out"), "{f}");
        // A name that does not resolve.
        let nowhere = dialer(
            TestRt::default(),
            "tcp://no-such-host.invalid:7419",
            Duration::from_secs(5),
        );
        let f = block_on(nowhere.dial(false)).err().unwrap();
        assert_eq!(f.phase, ConnectPhase::Resolve);
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_handshake_failures() {
        // A server that answers the ClientHello with plain text: a TLS error, worth retrying.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut sock, _)) = listener.accept() {
                use std::io::Write;
                let _ = sock.write_all(b"+HI {\"v\":2}\r\n");
            }
        });
        let plain = dialer(
            TestRt::default(),
            &format!("tcp+tls://localhost:{port}"),
            Duration::from_secs(5),
        );
        let f = block_on(plain.dial(false)).err().unwrap();
        assert_eq!(f.phase, ConnectPhase::Tls);
        // A host that cannot be a TLS server name: permanent, before any lookup or TCP connect.
        let mut url = ServerUrl::parse("tcp+tls://localhost:7419").unwrap();
        url.host = "bad host!".into();
        let bad = Dialer::new(
            TestRt::default(),
            &url,
            &TlsConfig::default(),
            Duration::from_secs(5),
        );
        let f = block_on(bad.dial(false)).err().unwrap();
        assert_eq!(f.phase, ConnectPhase::Tls);
        assert!(f.permanent, "{f}");
    }

    #[cfg(feature = "tls")]
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
