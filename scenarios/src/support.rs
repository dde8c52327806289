//! What every runtime's scenarios share: which server to run against (the testkit runs on a tokio
//! runtime of its own, on its own threads, whatever runtime the scenario runs under), unique
//! names, a TLS proxy, a garbage server, and polling with the harness's timer.

use std::future::Future;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use faktory_proto::worker::StopReport;
use faktory_testkit::{TestServer, TestServerBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::harness::{Harness, Task};

/// How long anything may take before a scenario gives up on it.
pub const LONG: Duration = Duration::from_secs(30);

// -------------------------------------------------------------------------------------------------
// the testkit, on its own tokio runtime

fn testkit_runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("testkit")
            .enable_all()
            .build()
            .expect("tokio runtime for the testkit")
    })
}

/// Runs `f` on the testkit's tokio runtime and waits for it from any executor (or none).
pub async fn on_tokio<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> T {
    testkit_runtime().spawn(f).await.expect("testkit task")
}

/// A testkit server running on the testkit's tokio runtime.
pub struct Kit(Arc<TestServer>);

impl Deref for Kit {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        &self.0
    }
}

impl Kit {
    /// Starts `builder` on the testkit's runtime.
    pub async fn start(builder: TestServerBuilder) -> Kit {
        let server = on_tokio(builder.start()).await.expect("testkit starts");
        Kit(Arc::new(server))
    }

    /// `TestServer::restart`, on the testkit's runtime.
    pub async fn restart(&self) -> std::io::Result<()> {
        let server = Arc::clone(&self.0);
        on_tokio(async move { server.restart().await }).await
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
    pub async fn start() -> Server {
        match std::env::var("FAKTORY_URL") {
            Ok(url) if !url.is_empty() => Server::Real(url),
            _ => Server::Kit(
                Kit::start(TestServer::builder().fetch_timeout(Duration::from_millis(100))).await,
            ),
        }
    }

    /// The testkit, for scenarios that need fault injection or operator actions; against a real
    /// server prints `SKIPPED <name>` and gives `None`.
    pub async fn kit_only(name: &str) -> Option<Kit> {
        match Server::start().await {
            Server::Kit(k) => Some(k),
            Server::Real(_) => {
                println!("SKIPPED {name}: needs the testkit (fault injection or operator actions)");
                None
            }
        }
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        match self {
            Server::Kit(k) => k.url(),
            Server::Real(u) => u.clone(),
        }
    }

    /// The testkit, if that is the server.
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

// -------------------------------------------------------------------------------------------------
// helper servers (tokio, on the testkit's runtime)

/// A server that answers every connection with `bytes`, then keeps the socket open.
pub async fn garbage_server(bytes: &'static [u8]) -> SocketAddr {
    on_tokio(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
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
    })
    .await
}

/// A self-signed certificate for `localhost` and a TLS-terminating proxy that forwards to
/// `backend`: returns the proxy's address and the certificate (DER) to trust.
pub async fn tls_proxy(backend: SocketAddr) -> (SocketAddr, Vec<u8>) {
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
    let addr = on_tokio(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
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
        addr
    })
    .await;
    (addr, cert_der)
}

// -------------------------------------------------------------------------------------------------
// waiting, on the harness's timer

/// Polls `cond` every 10 ms until it holds or `limit` passes; returns whether it held.
pub async fn eventually<H: Harness>(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        H::sleep(Duration::from_millis(10)).await;
    }
}

/// `f`'s output, or `None` if it did not complete within `limit` (it runs as a task of its own,
/// so this also bounds a blocking call).
pub async fn timeout<H: Harness, T: Send + 'static>(
    limit: Duration,
    f: impl Future<Output = T> + Send + 'static,
) -> Option<T> {
    let task = H::spawn(f);
    if eventually::<H>(limit, || task.is_finished()).await {
        Some(task.await)
    } else {
        None
    }
}

/// The worker's report, failing the scenario if it does not stop within `limit`.
pub async fn join_within<H: Harness>(run: Task<StopReport>, limit: Duration) -> StopReport {
    assert!(
        eventually::<H>(limit, || run.is_finished()).await,
        "the worker stops within {limit:?}"
    );
    run.await
}

/// An address whose TCP connects hang (a listener with a full accept queue: the kernel drops the
/// SYNs, as for a host that does not answer), and what keeps it so (drop it to release).
pub fn unresponsive_address() -> (SocketAddr, Vec<std::net::TcpStream>, socket2::Socket) {
    use socket2::{Domain, Socket, Type};
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket");
    listener
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    listener.listen(0).expect("listen");
    let addr = listener
        .local_addr()
        .expect("its address")
        .as_socket()
        .expect("an IP address");
    // Fill the accept queue (never accepted).
    let mut held = Vec::new();
    for _ in 0..4 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => held.push(s),
            Err(_) => break,
        }
    }
    (addr, held, listener)
}
