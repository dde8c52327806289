//! [`TestServerHost`]: a [`TestServer`] on a tokio runtime of its own, for tests that have none.

use std::future::Future;
use std::io;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};

use crate::server::{TestServer, TestServerBuilder, wait_until_idle};

/// How long dropping a host waits for the server's tasks to stop (outside any tokio runtime).
const SHUTDOWN_PATIENCE: Duration = Duration::from_secs(2);

/// A [`TestServer`] running on a tokio runtime of its own (one worker thread), for tests that
/// have no tokio runtime: blocking tests (`faktory-blocking`), smol and async-std tests.
///
/// It derefs to the [`TestServer`], so every inspection, loading, operator and fault method is at
/// hand; the async ones (waits, restarts, refusing connections) need the host's runtime: run them
/// with [`TestServerHost::block_on`]. [`TestServerHost::wait_until_idle`] blocks the calling
/// thread; [`TestServerHost::wait_until_idle_async`] is a future any executor can poll. Dropping
/// the host stops the server and its runtime.
///
/// Start it with [`TestServer::start_hosted`] or [`TestServerBuilder::start_hosted`]. Inside a
/// tokio runtime, use [`TestServer`] itself: the blocking methods here panic there (tokio forbids
/// blocking a runtime thread).
///
/// A blocking test, with no async runtime of its own:
///
/// ```
/// use std::io::{BufRead, BufReader, Write};
/// use std::net::TcpStream;
/// use std::time::Duration;
///
/// use faktory_testkit::TestServer;
/// use faktory_testkit::proto::job::Job;
///
/// # fn main() -> std::io::Result<()> {
/// let server = TestServer::start_hosted()?;
/// server.push(Job::builder("Resize").jid("resize-0001").build().unwrap()).unwrap();
/// assert_eq!(server.queue("default").len(), 1);
///
/// // The code under test talks to server.url(); here, a worker in raw protocol: FETCH, then ACK.
/// let mut conn = BufReader::new(TcpStream::connect(server.addr())?);
/// let mut line = String::new();
/// conn.read_line(&mut line)?; // +HI
/// conn.get_mut().write_all(b"HELLO {\"v\":2}\r\nFETCH default\r\n")?;
/// for _ in 0..3 {
///     line.clear();
///     conn.read_line(&mut line)?; // +OK, $<length>, the job
/// }
/// assert!(!server.wait_until_idle(Duration::from_millis(50)), "the job is reserved");
/// conn.get_mut().write_all(b"ACK {\"jid\":\"resize-0001\"}\r\n")?;
///
/// assert!(server.wait_until_idle(Duration::from_secs(5)));
/// assert_eq!(server.acked(), vec!["resize-0001"]);
/// // Async methods run on the host's runtime.
/// server.block_on(server.wait_for_connections(1));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TestServerHost {
    server: TestServer,
    handle: Handle,
    /// Taken by `Drop` only.
    runtime: Option<Runtime>,
}

impl TestServerHost {
    /// Builds the runtime and starts `builder`'s server on it.
    pub(crate) fn start(builder: TestServerBuilder) -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("faktory-testkit")
            .enable_all()
            .build()?;
        let server = runtime.block_on(builder.start())?;
        Ok(TestServerHost {
            server,
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
    }

    /// The server.
    pub fn server(&self) -> &TestServer {
        &self.server
    }

    /// A handle to the host's runtime (to spawn helpers next to the server).
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Runs `future` to completion on the host's runtime, blocking the calling thread: the way to
    /// call [`TestServer`]'s async methods (`host.block_on(host.restart())`).
    ///
    /// # Panics
    ///
    /// When called from async code running on a tokio runtime (tokio does not allow blocking
    /// there).
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.handle.block_on(future)
    }

    /// [`TestServer::wait_until_idle`], blocking the calling thread: `true` once every queue is
    /// empty and no job is reserved, `false` when that did not happen within `limit`.
    ///
    /// # Panics
    ///
    /// When called from async code running on a tokio runtime (there, await
    /// [`TestServer::wait_until_idle`]).
    pub fn wait_until_idle(&self, limit: Duration) -> bool {
        self.block_on(self.server.wait_until_idle(limit))
    }

    /// [`TestServer::wait_until_idle`] as a future that any executor can poll (smol, async-std):
    /// the wait runs on the host's runtime. `false` also when the host is dropped meanwhile.
    pub fn wait_until_idle_async(
        &self,
        limit: Duration,
    ) -> impl Future<Output = bool> + Send + 'static {
        let shared = Arc::clone(self.server.shared());
        let waiting = self
            .handle
            .spawn(async move { wait_until_idle(&shared, limit).await });
        async move { waiting.await.unwrap_or(false) }
    }
}

impl Deref for TestServerHost {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        &self.server
    }
}

impl Drop for TestServerHost {
    fn drop(&mut self) {
        // Dropping the runtime drops every task of the server (its listener and connections);
        // `TestServer`'s own drop (aborting them) follows and finds nothing left to do.
        if let Some(runtime) = self.runtime.take() {
            if Handle::try_current().is_ok() {
                // Blocking is not allowed inside a runtime.
                runtime.shutdown_background();
            } else {
                runtime.shutdown_timeout(SHUTDOWN_PATIENCE);
            }
        }
    }
}

impl TestServer {
    /// Starts a server with the defaults on a tokio runtime of its own ([`TestServerHost`]), for
    /// tests without a tokio runtime. Call it outside any tokio runtime.
    pub fn start_hosted() -> io::Result<TestServerHost> {
        TestServer::builder().start_hosted()
    }
}

impl TestServerBuilder {
    /// Binds and starts serving on a tokio runtime of its own (one worker thread), for tests
    /// without a tokio runtime (blocking, smol, async-std); see [`TestServerHost`]. Call it
    /// outside any tokio runtime.
    pub fn start_hosted(self) -> io::Result<TestServerHost> {
        TestServerHost::start(self)
    }
}
