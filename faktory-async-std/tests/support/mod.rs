//! Support for the adapter scenario tests: the two runtimes, which server to run against (the
//! testkit runs on its own tokio runtime thread), unique names, a TLS proxy, a garbage server.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    unreachable_pub
)]

use std::future::Future;
use std::net::SocketAddr;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_io::Timer;
use faktory_async_std::Spawner;
use faktory_testkit::{TestServer, TestServerBuilder};
use futures_lite::{AsyncReadExt, AsyncWriteExt, future};

// -------------------------------------------------------------------------------------------------
// runtimes

/// A runtime the scenarios run under: its `block_on`, its `spawn`, and the [`Spawner`] clients and
/// workers get.
pub trait Rt: 'static {
    /// Runs a scenario to completion on this runtime.
    fn block_on<F: Future>(f: F) -> F::Output;
    /// Spawns a task on this runtime.
    fn spawn<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> Handle<T>;
    /// The spawner for the crate's background tasks under this runtime.
    fn spawner() -> Spawner;
}

/// smol: `smol::block_on`, `smol::spawn`, and an explicit spawner onto smol's executor.
pub struct SmolRt;

impl Rt for SmolRt {
    fn block_on<F: Future>(f: F) -> F::Output {
        smol::block_on(f)
    }

    fn spawn<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> Handle<T> {
        Handle::new(f, |f| Box::pin(smol::spawn(f)))
    }

    fn spawner() -> Spawner {
        Spawner::new(|task| smol::spawn(task).detach())
    }
}

/// async-std: `async_std::task::block_on`, `async_std::task::spawn`, and the crate's default
/// spawner (which is async-std's executor).
pub struct AsyncStdRt;

impl Rt for AsyncStdRt {
    fn block_on<F: Future>(f: F) -> F::Output {
        async_std::task::block_on(f)
    }

    fn spawn<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> Handle<T> {
        Handle::new(f, |f| Box::pin(async_std::task::spawn(f)))
    }

    fn spawner() -> Spawner {
        Spawner::default()
    }
}

/// A spawned task: await it for its output; `is_finished` tells whether it completed.
pub struct Handle<T> {
    task: Pin<Box<dyn Future<Output = T> + Send>>,
    done: Arc<AtomicBool>,
}

impl<T: Send + 'static> Handle<T> {
    fn new<F>(
        f: F,
        spawn: impl FnOnce(
            Pin<Box<dyn Future<Output = T> + Send>>,
        ) -> Pin<Box<dyn Future<Output = T> + Send>>,
    ) -> Self
    where
        F: Future<Output = T> + Send + 'static,
    {
        let done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&done);
        let task = spawn(Box::pin(async move {
            let out = f.await;
            flag.store(true, Ordering::SeqCst);
            out
        }));
        Handle { task, done }
    }

    pub fn is_finished(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }
}

impl<T> Future for Handle<T> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        self.task.as_mut().poll(cx)
    }
}

/// Sleeps (an `async-io` timer: both runtimes drive them).
pub async fn sleep(d: Duration) {
    Timer::after(d).await;
}

/// `f`'s output, or `None` once `d` passed.
pub async fn timeout<T>(d: Duration, f: impl Future<Output = T>) -> Option<T> {
    future::or(async { Some(f.await) }, async {
        sleep(d).await;
        None
    })
    .await
}

/// Runs `f` on the background executor (for the support servers).
fn background(f: impl Future<Output = ()> + Send + 'static) {
    Spawner::global().spawn(f);
}

// -------------------------------------------------------------------------------------------------
// the testkit, on its own tokio runtime

fn tokio_rt() -> &'static tokio::runtime::Runtime {
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

/// Runs `f` on the testkit's tokio runtime and waits for it from any executor.
pub async fn on_tokio<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> T {
    tokio_rt().spawn(f).await.expect("testkit task")
}

/// A testkit server running on the tokio runtime thread.
pub struct Kit(Arc<TestServer>);

impl Deref for Kit {
    type Target = TestServer;
    fn deref(&self) -> &TestServer {
        &self.0
    }
}

impl Kit {
    /// Starts `builder` on the tokio runtime.
    pub async fn start(builder: TestServerBuilder) -> Kit {
        let server = on_tokio(builder.start()).await.expect("testkit starts");
        Kit(Arc::new(server))
    }

    /// `TestServer::restart`, on the tokio runtime.
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

    /// A testkit server whatever `FAKTORY_URL` says (for scenarios that need fault injection).
    pub async fn kit_only(name: &str) -> Option<Kit> {
        match Server::start().await {
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

// -------------------------------------------------------------------------------------------------
// support servers (async-net and futures-rustls, on the background executor)

/// A server that answers every connection with `bytes`, then keeps the socket open.
pub async fn garbage_server(bytes: &'static [u8]) -> SocketAddr {
    let listener = async_net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    background(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            background(async move {
                let _ = sock.write_all(bytes).await;
                let mut sink = [0u8; 1024];
                // Keep it open for a while so a client that waits would hang, not see EOF.
                let _ = timeout(Duration::from_secs(30), async {
                    while sock.read(&mut sink).await.map(|n| n > 0).unwrap_or(false) {}
                })
                .await;
            });
        }
    });
    addr
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
    let acceptor = futures_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = async_net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    background(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            background(async move {
                let Ok(tls) = acceptor.accept(sock).await else {
                    return;
                };
                let Ok(plain) = async_net::TcpStream::connect(backend).await else {
                    return;
                };
                let (tls_read, tls_write) = futures_lite::io::split(tls);
                let up = pipe(tls_read, plain.clone());
                let down = pipe(plain, tls_write);
                future::zip(up, down).await;
            });
        }
    });
    (addr, cert_der)
}

/// Copies `from` to `to` until EOF or an error, then closes `to`.
async fn pipe(
    from: impl futures_lite::AsyncRead + Unpin,
    mut to: impl futures_lite::AsyncWrite + Unpin,
) {
    let _ = futures_lite::io::copy(from, &mut to).await;
    let _ = to.close().await;
}

/// Polls `cond` every 10 ms until it holds or `limit` passes; returns whether it held.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        sleep(Duration::from_millis(10)).await;
    }
}
