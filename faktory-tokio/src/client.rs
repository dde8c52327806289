//! The producer (and consumer) client.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use faktory_proto::ServerError;
use faktory_proto::adapter::ClientSettings;
use faktory_proto::client::{ClientOptions, Reply};
use faktory_proto::command::Command;
use faktory_proto::job::Job;
use faktory_proto::ops;
use tokio::sync::{mpsc, oneshot};

use crate::driver::{CallResult, Connector, Request, Source};
use crate::error::Error;
use crate::transport::{AsyncStream, Target};

/// A Faktory client: push jobs, inspect and steer the server.
///
/// `Client` is `Clone`, `Send` and `Sync`; clones share one connection, and concurrent calls are
/// pipelined on it in order. If the connection drops, the next call reconnects (with backoff, within
/// the request timeout); a call that was in flight when it dropped fails with
/// [`Error::OutcomeUnknown`] and is never re-sent silently.
///
/// ```no_run
/// # async fn demo() -> Result<(), faktory_tokio::Error> {
/// use faktory_tokio::{Client, Job};
///
/// let client = Client::connect().await?; // FAKTORY_PROVIDER / FAKTORY_URL / tcp://localhost:7419
/// client.push(Job::with_args("SendEmail", ("ada@example.com",))?).await?;
/// client.close().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

struct Shared {
    tx: mpsc::UnboundedSender<Request>,
    closed: AtomicBool,
    wid: Option<String>,
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
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ClientBuilder {
    settings: ClientSettings,
    #[cfg(feature = "tls")]
    tls: crate::transport::TlsConfig,
}

impl ClientBuilder {
    faktory_proto::__client_builder_setters!();

    /// A builder with the defaults: the server from the environment, 10 s timeouts.
    pub fn new() -> Self {
        Self::default()
    }

    /// How certificates are verified on `tcp+tls://` (webpki roots by default).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::transport::TlsConfig) -> Self {
        self.tls = tls;
        self
    }

    /// Connects to the server (URL, or the environment) and completes the handshake.
    pub async fn connect(self) -> Result<Client, Error> {
        let resolved = self.settings.resolve(|k| std::env::var(k).ok())?;
        let target = Target {
            host: resolved.url.host.clone(),
            port: resolved.url.port,
            tls: resolved.url.tls,
            #[cfg(feature = "tls")]
            tls_config: self.tls.clone(),
            connect_timeout: resolved.connect_timeout,
        };
        self.start(Source::Target(target), resolved.options).await
    }

    /// Runs the client over a stream you opened yourself (custom TLS, a proxy, an in-memory pipe).
    /// Such a client cannot reconnect: once the stream fails, calls fail.
    pub async fn connect_with_stream<S: AsyncStream>(self, stream: S) -> Result<Client, Error> {
        let options = self.settings.options.clone();
        self.start(Source::Stream(Some(Box::new(stream))), options)
            .await
    }

    async fn start(self, source: Source, options: ClientOptions) -> Result<Client, Error> {
        let wid = options.wid.clone();
        let connect_timeout = self.settings.connect_timeout;
        let mut connector = Connector {
            source,
            options,
            request_timeout: self.settings.request_timeout,
        };
        let first = match tokio::time::timeout(connect_timeout, connector.connect()).await {
            Ok(r) => r?,
            Err(_) => return Err(Error::Timeout),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(crate::driver::run(rx, connector, first));
        Ok(Client {
            shared: Arc::new(Shared {
                tx,
                closed: AtomicBool::new(false),
                wid,
            }),
        })
    }
}

impl Client {
    /// Connects to the server named by `FAKTORY_PROVIDER` / `FAKTORY_URL` (default
    /// `tcp://localhost:7419`).
    pub async fn connect() -> Result<Client, Error> {
        ClientBuilder::new().connect().await
    }

    /// Connects to `url` (`tcp://[:password@]host:port` or `tcp+tls://…`).
    pub async fn connect_to(url: &str) -> Result<Client, Error> {
        ClientBuilder::new().url(url)?.connect().await
    }

    /// A [`ClientBuilder`].
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    fn submit(&self, command: Command) -> Result<oneshot::Receiver<CallResult>, Error> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let (tx, rx) = oneshot::channel();
        self.shared
            .tx
            .send(Request { command, reply: tx })
            .map_err(|_| Error::Closed)?;
        Ok(rx)
    }

    async fn call(&self, command: Command) -> Result<Result<Reply, ServerError>, Error> {
        let rx = self.submit(command)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Pushes many jobs with PUSHB, at most 1,000 per command, all pipelined. Returns jid → error for
    /// the jobs that were refused (empty when all were pushed); jobs that fail local validation are
    /// reported there too and not sent.
    pub async fn push_bulk(
        &self,
        jobs: impl IntoIterator<Item = Job>,
    ) -> Result<BTreeMap<String, String>, Error> {
        let mut plan = ops::PushBulkPlan::new(jobs);
        let receivers: Vec<_> = std::mem::take(&mut plan.commands)
            .into_iter()
            .map(|c| self.submit(c))
            .collect::<Result<_, _>>()?;
        for rx in receivers {
            plan.absorb(rx.await.map_err(|_| Error::Closed)??)?;
        }
        Ok(plan.refused)
    }

    faktory_proto::__client_methods!(async; .await);

    /// Sends END and closes the connection; later calls fail with [`Error::Closed`].
    pub async fn close(&self) -> Result<(), Error> {
        let rx = self.submit(Command::End)?;
        self.shared.closed.store(true, Ordering::Release);
        let _ = rx.await;
        Ok(())
    }
}
