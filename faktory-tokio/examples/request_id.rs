//! A request id carried from the producer into the job's tracing span: a client middleware adds
//! `custom.request_id` to every job pushed while a request is handled, and a worker middleware
//! enters a span with it, so everything the handler logs (and the follow-up jobs it pushes, through
//! the same fields) can be found by the request that caused it.
//!
//! Uses the Faktory server named by `FAKTORY_URL` when it is set; otherwise starts the in-memory
//! `faktory-testkit` server in this process.
//!
//! ```sh
//! RUST_LOG=info cargo run -p faktory-tokio --example request_id
//! ```
#![allow(clippy::print_stdout)]

use std::time::Duration;

use faktory_tokio::{
    CancellationToken, Client, HandlerResult, Job, JobContext, Middleware, Next, Worker,
};
use tracing::Instrument;

tokio::task_local! {
    /// The request being handled (a web framework's request extension, in real code).
    static REQUEST_ID: String;
}

/// Worker middleware: runs the job inside a `request` span carrying the producer's request id.
struct RequestSpan;

impl Middleware for RequestSpan {
    async fn call(&self, job: Job, ctx: JobContext, next: Next) -> HandlerResult {
        let request_id = job
            .custom_value("request_id")
            .and_then(|id| id.as_str())
            .unwrap_or("none")
            .to_owned();
        let span = tracing::info_span!("request", request_id = %request_id);
        next.run(job, ctx).instrument(span).await
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let (url, _server) = match std::env::var("FAKTORY_URL") {
        Ok(url) if !url.is_empty() => (url, None),
        _ => {
            let server = faktory_testkit::TestServer::start().await?;
            (server.url(), Some(server))
        }
    };
    let queue = format!("request-id-{}", std::process::id());

    // Producer: every job pushed while a request is handled carries its id.
    let client = Client::builder()
        .url(&url)?
        .middleware(|job: &mut Job| {
            if let Ok(id) = REQUEST_ID.try_with(Clone::clone) {
                job.custom
                    .get_or_insert_with(Default::default)
                    .insert("request_id".into(), id.into());
            }
            Ok(())
        })
        .connect()
        .await?;
    let push = client.push(
        Job::builder("Signup")
            .args(("ada@example.com",))
            .queue(&queue)
            .build()?,
    );
    let jid = REQUEST_ID.scope("req-7f3a".to_owned(), push).await?;
    println!("pushed {jid} while handling request req-7f3a");

    // Worker: the handler's logs (and faktory's own job span) sit inside `request{request_id=..}`.
    let stop = CancellationToken::new();
    let done = stop.clone();
    let worker = Worker::builder()
        .url(&url)?
        .queues([queue.as_str()])
        .middleware(RequestSpan)
        .register("Signup", move |(email,): (String,), ctx: JobContext| {
            let done = done.clone();
            async move {
                tracing::info!(%email, jid = ctx.jid(), "creating the account");
                done.cancel();
                Ok(())
            }
        })
        .shutdown_signal(stop.cancelled_owned())
        .build()?;
    let report = tokio::time::timeout(Duration::from_secs(30), worker.run()).await?;
    client.close().await?;
    println!("worker stopped (clean: {})", report.is_clean());
    Ok(())
}
