//! Support for the adapter scenario tests: which server to run against, unique names, a TLS proxy,
//! a garbage server. The testkit and the helper servers run on one tokio runtime owned by this
//! module (tokio is a dev-dependency only); the code under test never sees it.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    unreachable_pub
)]

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use faktory_testkit::{TestServer, TestServerBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The runtime the testkit and the helper servers run on, on threads of its own.
pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("testkit")
            .enable_all()
            .build()
            .expect("test runtime")
    })
}

/// A testkit server running on [`rt`]; its blocking-friendly methods shadow the async ones.
pub struct Kit(TestServer);

impl Kit {
    /// A testkit server with a short FETCH block (100 ms).
    pub fn start() -> Kit {
        Kit::start_with(TestServer::builder().fetch_timeout(Duration::from_millis(100)))
    }

    /// A testkit server from `builder`.
    pub fn start_with(builder: TestServerBuilder) -> Kit {
        Kit(rt().block_on(builder.start()).expect("testkit starts"))
    }

    /// Restarts the server (see `TestServer::restart`).
    pub fn restart(&self) -> std::io::Result<()> {
        rt().block_on(self.0.restart())
    }
}

impl Deref for Kit {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        &self.0
    }
}

/// The server a scenario runs against: the in-memory testkit, or the real Faktory named by
/// `FAKTORY_URL` when that is set.
pub enum Server {
    /// The testkit (inspection and fault injection available).
    Kit(Kit),
    /// A real server at this URL.
    Real(String),
}

impl Server {
    /// The testkit with a short FETCH block (100 ms), or the real server from `FAKTORY_URL`.
    pub fn start() -> Server {
        match std::env::var("FAKTORY_URL") {
            Ok(url) if !url.is_empty() => Server::Real(url),
            _ => Server::Kit(Kit::start()),
        }
    }

    /// A testkit server whatever `FAKTORY_URL` says (for scenarios that need fault injection).
    pub fn kit_only(name: &str) -> Option<Kit> {
        match Server::start() {
            Server::Kit(k) => Some(k),
            Server::Real(_) => {
                println!("SKIPPED {name}: needs the testkit (fault injection or operator actions)");
                None
            }
        }
    }

    pub fn url(&self) -> String {
        match self {
            Server::Kit(k) => k.url(),
            Server::Real(u) => u.clone(),
        }
    }

    pub fn kit(&self) -> Option<&Kit> {
        match self {
            Server::Kit(k) => Some(k),
            Server::Real(_) => None,
        }
    }
}

/// A queue name no other test (or earlier run against a real server) uses.
pub fn unique_queue(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("t-{tag}-{}-{n}-{}", std::process::id(), t % 1_000_000_007)
}

/// A server that answers every connection with `bytes`, then keeps the socket open.
pub fn garbage_server(bytes: &'static [u8]) -> SocketAddr {
    let listener = rt().block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    rt().spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = sock.write_all(bytes).await;
                let mut sink = [0u8; 1024];
                // Keep it open for a while so a client that waits would hang, not see EOF.
                let _ = tokio::time::timeout(Duration::from_secs(30), async {
                    while sock.read(&mut sink).await.map(|n| n > 0).unwrap_or(false) {}
                })
                .await;
            });
        }
    });
    addr
}

/// A self-signed certificate for `localhost` and a TLS-terminating proxy (rustls server side) that
/// forwards to `backend`: returns the proxy's address and the certificate (DER) to trust.
pub fn tls_proxy(backend: SocketAddr) -> (SocketAddr, Vec<u8>) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_der: Vec<u8> = cert.cert.der().to_vec();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(cert_der.clone())], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = rt().block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    rt().spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(sock).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (addr, cert_der)
}

/// Polls `cond` every 10 ms until it holds or `limit` passes; returns whether it held.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `f` on a thread and returns its result, or panics if it takes longer than `limit` (the
/// blocking form of `tokio::time::timeout` around a call that must not hang).
pub fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).expect("no hang")
}
