//! faktory-tokio: each scenario on a current-thread tokio runtime of its own (what `#[tokio::test]`
//! gives), tasks with `tokio::spawn`, tokio's timer.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use faktory_proto::api::Error;
use faktory_tokio::TokioAsyncReadCompatExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::harness::{ClientSpec, Harness, Task, UserStream, WorkerSpec};
use crate::rt::asynk;

/// The faktory-tokio harness.
#[derive(Debug)]
pub struct Tokio;

impl Harness for Tokio {
    const NAME: &'static str = "tokio";
    const HANDLERS_OUTLIVE_THE_WORKER: bool = false;

    type Client = faktory_tokio::Client;
    type Worker = faktory_tokio::Worker;
    type Stop = faktory_tokio::CancellationToken;
    type JobContext = faktory_tokio::JobContext;
    type Token = faktory_tokio::CancellationToken;

    fn block_on<F: Future>(scenario: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
            .block_on(scenario)
    }

    fn spawn<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> Task<T> {
        Task::new(f, |f| {
            let handle = tokio::spawn(f);
            async move {
                match handle.await {
                    Ok(out) => out,
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                }
            }
        })
    }

    fn sleep(d: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(d)
    }

    fn connect_to(url: &str) -> impl Future<Output = Result<Self::Client, Error>> + Send {
        faktory_tokio::Client::connect_to(url)
    }

    async fn connect(spec: ClientSpec) -> Result<Self::Client, Error> {
        let builder = asynk::client_builder(&spec, faktory_tokio::Tokio)?;
        // A tokio stream goes in through the futures-io compat layer faktory-tokio re-exports.
        match spec.stream {
            None => builder.connect().await,
            Some((addr, UserStream::Tcp)) => {
                let tcp = TcpStream::connect(addr).await.expect("TCP connect");
                builder.connect_with_stream(tcp.compat()).await
            }
            Some((addr, UserStream::Opaque)) => {
                let tcp = TcpStream::connect(addr).await.expect("TCP connect");
                builder.connect_with_stream(Opaque(tcp).compat()).await
            }
        }
    }

    fn worker(spec: WorkerSpec) -> Result<(Self::Worker, Self::Stop), Error> {
        asynk::worker::<Self, _>(spec, faktory_tokio::Tokio)
    }
}

/// A stream that only implements tokio's I/O traits.
struct Opaque(TcpStream);

impl AsyncRead for Opaque {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Opaque {
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

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
