//! The producer (and consumer) client.
//!
//! # Design
//!
//! One I/O thread per client owns the socket's write half and the
//! `faktory_proto::client::Connection`; a reader thread per socket forwards what it reads. Callers
//! (any number of threads, through clones of one `Client`) send their request over an
//! `std::sync::mpsc` channel with a reply channel of their own, and block on that reply channel. The
//! I/O thread encodes every request waiting in its channel before it writes, so concurrent calls
//! are pipelined on one connection; the machine matches replies FIFO. See `driver.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use faktory_proto::ServerError;
use faktory_proto::adapter::ClientSettings;
use faktory_proto::client::{ClientOptions, Reply};
use faktory_proto::command::Command;
use faktory_proto::job::Job;
use faktory_proto::ops;

use crate::driver::{CallResult, Connector, Msg, Request, Source};
use crate::error::Error;
use crate::transport::{Opened, Stream, Target};

/// A Faktory client: push jobs, inspect and steer the server. Every call blocks the calling thread
/// until its reply arrives.
///
/// `Client` is `Clone`, `Send` and `Sync`; clones share one connection, and concurrent calls from
/// several threads are pipelined on it in order (one I/O thread owns the connection; callers hand
/// it their requests over a channel and wait on a reply channel each). If the connection drops, the
/// next call reconnects (with backoff, within the request timeout); a call that was in flight when
/// it dropped fails with [`Error::OutcomeUnknown`] and is never re-sent silently. Dropping the last
/// clone sends END from the I/O thread (bounded to a second) and never blocks the dropping thread.
///
/// ```no_run
/// # fn demo() -> Result<(), faktory_blocking::Error> {
/// use faktory_blocking::{Client, Job};
///
/// let client = Client::connect()?; // FAKTORY_PROVIDER / FAKTORY_URL / tcp://localhost:7419
/// client.push(Job::with_args("SendEmail", ("ada@example.com",))?)?;
/// client.close()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

struct Shared {
    tx: Sender<Msg>,
    closed: AtomicBool,
    wid: Option<String>,
    /// How long a caller waits for its reply at most, whatever the I/O thread is doing (it may be
    /// blocked reading a user-supplied stream that has no timeouts).
    backstop: Duration,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Never blocks: the I/O thread says END and exits.
        let _ = self.tx.send(Msg::Dropped);
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("wid", &self.shared.wid)
            .field("closed", &self.shared.closed.load(Ordering::Relaxed))
            .finish()
    }
}

/// Configures and connects a [`Client`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ClientBuilder {
    settings: ClientSettings,
    #[cfg(feature = "tls")]
    tls: crate::transport::TlsConfig,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientBuilder {
    faktory_proto::__client_builder_setters!();

    /// A builder with the defaults: the server from the environment, 10 s timeouts.
    pub fn new() -> Self {
        ClientBuilder {
            settings: ClientSettings::default(),
            #[cfg(feature = "tls")]
            tls: crate::transport::TlsConfig::default(),
        }
    }

    /// How certificates are verified on `tcp+tls://` (webpki roots by default).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::transport::TlsConfig) -> Self {
        self.tls = tls;
        self
    }

    /// Connects to the server (URL, or the environment) and completes the handshake.
    pub fn connect(self) -> Result<Client, Error> {
        let resolved = self.settings.resolve(|k| std::env::var(k).ok())?;
        let target = Target {
            host: resolved.url.host.clone(),
            port: resolved.url.port,
            tls: resolved.url.tls,
            #[cfg(feature = "tls")]
            tls_config: self.tls.clone(),
            connect_timeout: resolved.connect_timeout,
        };
        self.start(Source::Target(target), resolved.options)
    }

    /// Runs the client over a stream you opened yourself (custom TLS, a proxy, an in-memory pipe).
    /// Such a client cannot reconnect: once the stream fails, calls fail.
    ///
    /// A `std::net::TcpStream` is read by its own thread, like the client's own sockets. Any other
    /// stream cannot be read by one thread while another writes it, so the I/O thread reads it only
    /// while replies are due: a server that closes an idle connection is noticed by the next call
    /// (which then fails with [`Error::OutcomeUnknown`]), and reply deadlines are enforced only as
    /// far as the stream's own read timeouts allow (give it some if it can have them; the callers
    /// stop waiting after twice the request timeout in any case).
    pub fn connect_with_stream<S: Stream>(self, stream: S) -> Result<Client, Error> {
        let options = self.settings.options.clone();
        let opened = Opened::from_user(stream)?;
        self.start(Source::Stream(Some(opened)), options)
    }

    fn start(self, source: Source, options: ClientOptions) -> Result<Client, Error> {
        let wid = options.wid.clone();
        let (tx, rx) = crate::driver::channel();
        let mut connector = Connector {
            source,
            options,
            connect_timeout: self.settings.connect_timeout,
            request_timeout: self.settings.request_timeout,
            tx: tx.clone(),
            next_gen: 0,
        };
        let first = connector.connect()?;
        std::thread::Builder::new()
            .name("faktory-client".into())
            .spawn(move || crate::driver::run(&rx, connector, first))?;
        Ok(Client {
            shared: Arc::new(Shared {
                tx,
                closed: AtomicBool::new(false),
                wid,
                backstop: self
                    .settings
                    .connect_timeout
                    .saturating_add(self.settings.request_timeout.saturating_mul(2))
                    .saturating_add(Duration::from_secs(1)),
            }),
        })
    }
}

impl Client {
    /// Connects to the server named by `FAKTORY_PROVIDER` / `FAKTORY_URL` (default
    /// `tcp://localhost:7419`).
    pub fn connect() -> Result<Client, Error> {
        ClientBuilder::new().connect()
    }

    /// Connects to `url` (`tcp://[:password@]host:port` or `tcp+tls://…`).
    pub fn connect_to(url: &str) -> Result<Client, Error> {
        ClientBuilder::new().url(url)?.connect()
    }

    /// A [`ClientBuilder`].
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    fn submit(&self, command: Command) -> Result<Receiver<CallResult>, Error> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let (tx, rx) = mpsc::channel();
        self.shared
            .tx
            .send(Msg::Request(Box::new(Request { command, reply: tx })))
            .map_err(|_| Error::Closed)?;
        Ok(rx)
    }

    fn wait(&self, rx: &Receiver<CallResult>) -> CallResult {
        match rx.recv_timeout(self.shared.backstop) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => Err(Error::Timeout),
            Err(RecvTimeoutError::Disconnected) => Err(Error::Closed),
        }
    }

    fn call(&self, command: Command) -> Result<Result<Reply, ServerError>, Error> {
        let rx = self.submit(command)?;
        self.wait(&rx)
    }

    /// Pushes many jobs with PUSHB, at most 1,000 per command, all pipelined. Returns jid → error for
    /// the jobs that were refused (empty when all were pushed); jobs that fail local validation are
    /// reported there too and not sent.
    pub fn push_bulk(
        &self,
        jobs: impl IntoIterator<Item = Job>,
    ) -> Result<BTreeMap<String, String>, Error> {
        let mut plan = ops::PushBulkPlan::new(jobs);
        let receivers: Vec<_> = std::mem::take(&mut plan.commands)
            .into_iter()
            .map(|c| self.submit(c))
            .collect::<Result<_, _>>()?;
        for rx in receivers {
            plan.absorb(self.wait(&rx)?)?;
        }
        Ok(plan.refused)
    }

    faktory_proto::__client_methods!(;);

    /// Sends END and closes the connection; later calls fail with [`Error::Closed`].
    pub fn close(&self) -> Result<(), Error> {
        let rx = self.submit(Command::End)?;
        self.shared.closed.store(true, Ordering::Release);
        let _ = self.wait(&rx);
        Ok(())
    }
}
