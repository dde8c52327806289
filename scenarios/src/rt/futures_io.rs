//! faktory-async-std, under smol (`smol::block_on`, clients and workers spawning on smol's
//! executor through a `Spawner`) and under async-std (`async_std::task::block_on`, the crate's
//! default spawner, which is async-std's executor).

use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use faktory_async_std::{AsyncStream, Spawner};
use faktory_proto::api::Error;
use futures_lite::io::{AsyncRead, AsyncWrite};

use crate::harness::{ClientSpec, Harness, Task, UserStream, WorkerSpec};
use crate::rt::asynk;

// Clients and workers hand a `Spawner` to other threads.
const _: fn() = || {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<Spawner>();
};

/// An executor faktory-async-std runs under: the parts of its harness that differ.
pub trait Executor: 'static {
    /// Its name.
    const NAME: &'static str;
    /// Its TCP stream type.
    type Tcp: AsyncStream;
    /// The other executor's TCP stream type (wrapped in an opaque stream).
    type OtherTcp: AsyncStream;

    /// Runs a scenario on it.
    fn block_on<F: Future>(f: F) -> F::Output;
    /// Spawns a task on it.
    fn spawn<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> Task<T>;
    /// The spawner clients and workers get.
    fn spawner() -> Spawner;
    /// Connects its TCP stream.
    fn tcp(addr: SocketAddr) -> impl Future<Output = io::Result<Self::Tcp>> + Send;
    /// Connects the other executor's TCP stream.
    fn other_tcp(addr: SocketAddr) -> impl Future<Output = io::Result<Self::OtherTcp>> + Send;
}

/// The faktory-async-std harness under executor `E`: [`Smol`] or [`AsyncStd`].
pub struct FuturesIo<E>(PhantomData<E>);

impl<E> std::fmt::Debug for FuturesIo<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FuturesIo")
    }
}

/// faktory-async-std under smol.
pub type Smol = FuturesIo<SmolExecutor>;
/// faktory-async-std under async-std.
pub type AsyncStd = FuturesIo<AsyncStdExecutor>;

impl<E: Executor> Harness for FuturesIo<E> {
    const NAME: &'static str = E::NAME;
    const HANDLERS_OUTLIVE_THE_WORKER: bool = false;

    type Client = faktory_async_std::Client;
    type Worker = faktory_async_std::Worker;
    type Stop = faktory_async_std::CancellationToken;
    type JobContext = faktory_async_std::JobContext;
    type Token = faktory_async_std::CancellationToken;

    fn block_on<F: Future>(scenario: F) -> F::Output {
        E::block_on(scenario)
    }

    fn spawn<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> Task<T> {
        E::spawn(f)
    }

    async fn sleep(d: Duration) {
        // An async-io timer: smol and async-std both drive them.
        smol::Timer::after(d).await;
    }

    fn connect_to(url: &str) -> impl Future<Output = Result<Self::Client, Error>> + Send {
        // The default spawner, whatever the executor.
        faktory_async_std::Client::connect_to(url)
    }

    async fn connect(spec: ClientSpec) -> Result<Self::Client, Error> {
        let builder = asynk::client_builder(&spec, E::spawner().into())?;
        match spec.stream {
            None => builder.connect().await,
            Some((addr, UserStream::Tcp)) => {
                let tcp = E::tcp(addr).await.expect("TCP connect");
                builder.connect_with_stream(tcp).await
            }
            Some((addr, UserStream::Opaque)) => {
                let tcp = E::other_tcp(addr).await.expect("TCP connect");
                builder.connect_with_stream(Opaque(tcp)).await
            }
        }
    }

    fn worker(spec: WorkerSpec) -> Result<(Self::Worker, Self::Stop), Error> {
        asynk::worker::<Self, _>(spec, faktory_async_std::AsyncStd::from(E::spawner()))
    }
}

/// smol: `smol::block_on`, `smol::spawn`, and a spawner onto smol's executor.
#[derive(Debug)]
pub struct SmolExecutor;

impl Executor for SmolExecutor {
    const NAME: &'static str = "smol";
    type Tcp = smol::net::TcpStream;
    type OtherTcp = async_std::net::TcpStream;

    fn block_on<F: Future>(f: F) -> F::Output {
        smol::block_on(f)
    }

    fn spawn<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> Task<T> {
        Task::new(f, smol::spawn)
    }

    fn spawner() -> Spawner {
        Spawner::new(|task| smol::spawn(task).detach())
    }

    fn tcp(addr: SocketAddr) -> impl Future<Output = io::Result<Self::Tcp>> + Send {
        smol::net::TcpStream::connect(addr)
    }

    async fn other_tcp(addr: SocketAddr) -> io::Result<Self::OtherTcp> {
        async_std::net::TcpStream::connect(addr).await
    }
}

/// async-std: `async_std::task::block_on`, `async_std::task::spawn`, and the crate's default
/// spawner (async-std's executor).
#[derive(Debug)]
pub struct AsyncStdExecutor;

impl Executor for AsyncStdExecutor {
    const NAME: &'static str = "async-std";
    type Tcp = async_std::net::TcpStream;
    type OtherTcp = smol::net::TcpStream;

    fn block_on<F: Future>(f: F) -> F::Output {
        async_std::task::block_on(f)
    }

    fn spawn<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> Task<T> {
        Task::new(f, async_std::task::spawn)
    }

    fn spawner() -> Spawner {
        Spawner::default()
    }

    async fn tcp(addr: SocketAddr) -> io::Result<Self::Tcp> {
        async_std::net::TcpStream::connect(addr).await
    }

    fn other_tcp(addr: SocketAddr) -> impl Future<Output = io::Result<Self::OtherTcp>> + Send {
        smol::net::TcpStream::connect(addr)
    }
}

/// A stream that only implements the futures-io traits.
struct Opaque<S>(S);

impl<S: AsyncRead + Unpin> AsyncRead for Opaque<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Opaque<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}
