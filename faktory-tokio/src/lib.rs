//! # faktory-tokio
//!
//! The Faktory [`Client`] and [`Worker`] on tokio, with TLS (rustls). The implementation is
//! `faktory-async`'s, written once for every runtime; this crate picks tokio ([`Tokio`]: tasks on
//! `tokio::spawn`, blocking handlers on `spawn_blocking`, tokio's timers and TCP) and re-exports
//! the API under the names every adapter shares. All protocol and worker decisions come from
//! `faktory-proto` (re-exported as [`proto`]).
//!
//! Use it inside a tokio runtime (`#[tokio::main]`, `Runtime::block_on`, …): the client's and the
//! worker's tasks are spawned on the current one.
//!
//! ```no_run
//! use faktory_tokio::{Client, Job, Worker};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), faktory_tokio::Error> {
//!     // FAKTORY_PROVIDER / FAKTORY_URL, else tcp://localhost:7419
//!     let client = Client::connect().await?;
//!     client.push(Job::with_args("SendEmail", ("ada@example.com", 42))?).await?;
//!
//!     let worker = Worker::builder()
//!         .register("SendEmail", |(to, n): (String, u32)| async move {
//!             println!("mail {n} to {to}");
//!             Ok(())
//!         })
//!         .build()?; // stops gracefully on SIGTERM or Ctrl-C
//!     let report = worker.run().await;
//!     println!("stopped: {:?}", report.reason);
//!     if !report.is_clean() {
//!         std::process::exit(1); // refused by the server, or outcomes left unconfirmed
//!     }
//!     Ok(())
//! }
//! ```
//!
//! Handlers take their args typed (a tuple, a struct) or the whole [`Job`], with or without the
//! [`JobContext`]; middleware wraps every job; state is shared by type. Test them without a
//! server with [`Worker::run_job`](faktory_async::Worker::run_job):
//!
//! ```
//! use faktory_tokio::{HandlerError, Job, JobContext, Next, Outcome, Worker};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let worker = Worker::builder()
//!     .state(10u32)
//!     .middleware(|job: Job, ctx: JobContext, next: Next| async move {
//!         if job.custom_value("skip").is_some() {
//!             return Ok(()); // ACKed without running
//!         }
//!         next.run(job, ctx).await
//!     })
//!     .register("Add", |(a,): (u32,), ctx: JobContext| async move {
//!         let b = ctx.state::<u32>()?;
//!         ctx.push(Job::with_args("Print", (a + b,))?).await?;
//!         Ok(())
//!     })
//!     .register("Check", |(n,): (u32,)| async move {
//!         if n == 0 {
//!             return Err(HandlerError::msg("zero").with_errtype("Zero"));
//!         }
//!         Ok(())
//!     })
//!     .build()
//!     .unwrap();
//! let run = worker.run_job(Job::with_args("Add", (32,)).unwrap()).await;
//! assert_eq!(run.outcome, Outcome::Ok);
//! assert_eq!(run.pushed[0].args, [serde_json::json!(42)]);
//! let run = worker.run_job(Job::with_args("Check", (0,)).unwrap()).await;
//! assert!(matches!(run.outcome, Outcome::Failed { ref errtype, .. } if errtype == "Zero"));
//! # });
//! ```
//!
//! Testing against a server, with no Faktory installed: `faktory_testkit::TestServer` is the
//! in-memory test server, and `wait_until_idle` waits until every queue is empty and every
//! reservation is settled (ACKed or FAILed):
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//!
//! use faktory_testkit::TestServer;
//! use faktory_tokio::{CancellationToken, Client, Job, JobContext, Worker};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A short FETCH block, so the idle worker stops quickly at the end.
//! let server = TestServer::builder().fetch_timeout(Duration::from_millis(100)).start().await?;
//! let client = Client::connect_to(&server.url()).await?;
//! for n in 1..=3u32 {
//!     client.push(Job::with_args("Add", (n,))?).await?;
//! }
//! let stop = CancellationToken::new();
//! let worker = Worker::builder()
//!     .url(&server.url())?
//!     .handle_signals(false) // a test is not a process of its own
//!     .state(AtomicU32::new(0))
//!     .register("Add", |(n,): (u32,), ctx: JobContext| async move {
//!         ctx.state::<AtomicU32>()?.fetch_add(n, Ordering::Relaxed);
//!         Ok(())
//!     })
//!     .shutdown_signal(stop.clone().cancelled_owned())
//!     .build()?;
//! let running = tokio::spawn(worker.run());
//! assert!(server.wait_until_idle(Duration::from_secs(10)).await, "every job settled");
//! assert_eq!(server.acked().len(), 3);
//! stop.cancel();
//! let report = running.await?;
//! assert!(report.is_clean(), "{report:?}");
//! # Ok(()) }
//! ```
//!
//! A client over a stream you opened yourself takes the futures-io traits; wrap a tokio stream
//! with [`TokioAsyncReadCompatExt::compat`]:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use faktory_tokio::{Client, TokioAsyncReadCompatExt};
//!
//! let tcp = tokio::net::TcpStream::connect("localhost:7419").await?;
//! let client = Client::builder().connect_with_stream(tcp.compat()).await?;
//! # let _ = client; Ok(()) }
//! ```
#![forbid(unsafe_code)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
#[cfg(unix)]
use std::task::Poll;
use std::time::Instant;

use tokio::net::TcpStream;

/// The tokio runtime for `faktory-async`: tasks on `tokio::spawn` (the current runtime),
/// blocking handlers and DNS lookups on `tokio::task::spawn_blocking`, tokio's timers and TCP
/// (through `tokio_util::compat`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Tokio;

impl faktory_async::Runtime for Tokio {
    type Tcp = Compat<TcpStream>;
    type Sleep = tokio::time::Sleep;

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        tokio::spawn(task);
    }

    fn spawn_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> impl Future<Output = Option<T>> + Send + 'static {
        let task = tokio::task::spawn_blocking(f);
        async move { task.await.ok() }
    }

    fn sleep_until(&self, deadline: Instant) -> tokio::time::Sleep {
        tokio::time::sleep_until(deadline.into())
    }

    fn reset_sleep(&self, sleep: Pin<&mut tokio::time::Sleep>, deadline: Instant) {
        sleep.reset(deadline.into());
    }

    #[cfg(unix)]
    fn termination_signals(&self) -> Option<faktory_async::TerminationSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        let (mut term, mut int) = (
            signal(SignalKind::terminate()).ok()?,
            signal(SignalKind::interrupt()).ok()?,
        );
        Some(faktory_async::termination_signals(move |cx| {
            match (term.poll_recv(cx), int.poll_recv(cx)) {
                (Poll::Ready(Some(())), _) | (_, Poll::Ready(Some(()))) => Poll::Ready(Some(())),
                (Poll::Ready(None), Poll::Ready(None)) => Poll::Ready(None),
                _ => Poll::Pending,
            }
        }))
    }

    #[cfg(unix)]
    fn tcp_socket(tcp: &Compat<TcpStream>) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        Some(tcp.get_ref().as_fd())
    }

    #[allow(clippy::manual_async_fn)] // an `async fn` would borrow `self`: not 'static
    fn connect_tcp(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = io::Result<Compat<TcpStream>>> + Send + 'static {
        async move {
            let stream = TcpStream::connect(addr).await?;
            faktory_async::configure_tcp(&stream)?;
            Ok(stream.compat())
        }
    }
}

/// A Faktory client on tokio: see [`faktory_async::Client`].
pub type Client = faktory_async::Client<Tokio>;
/// Configures and connects a [`Client`]: see [`faktory_async::ClientBuilder`].
pub type ClientBuilder = faktory_async::ClientBuilder<Tokio>;
/// A Faktory worker on tokio: see [`faktory_async::Worker`].
pub type Worker = faktory_async::Worker<Tokio>;
/// Configures a [`Worker`]: see [`faktory_async::WorkerBuilder`].
pub type WorkerBuilder = faktory_async::WorkerBuilder<Tokio>;

pub use faktory_async::reexports::*;

/// The README's examples, compiled as doc tests of this crate.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
/// Turns a tokio stream into the futures-io stream [`ClientBuilder::connect_with_stream`] takes.
pub use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};
