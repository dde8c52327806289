//! `--runtime tokio`: the workloads on `faktory-tokio`, on a multi-thread tokio runtime (one worker
//! thread per core).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::BoxError;
use crate::cli::{Mode, Options};
use crate::report::Measurement;
use crate::server::Target;
use crate::workloads::{self, Who, WorkParams};

/// The client's name in reports.
pub const CLIENT: &str = "faktory-tokio";

/// The multi-thread runtime client measurements run on.
pub fn client_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name("fk-client")
        .enable_all()
        .build()
}

/// Spawns on the current tokio runtime.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioExec;

impl workloads::Exec for TokioExec {
    fn spawn<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Pin<Box<dyn Future<Output = Option<T>> + Send>> {
        let handle = tokio::spawn(fut);
        Box::pin(async move { handle.await.ok() })
    }
}

fn configure_client(
    _exec: &TokioExec,
    builder: faktory_tokio::ClientBuilder,
) -> faktory_tokio::ClientBuilder {
    builder
}

fn configure_worker(
    _exec: &TokioExec,
    builder: faktory_tokio::WorkerBuilder,
) -> faktory_tokio::WorkerBuilder {
    builder
}

mod bodies {
    use super::{TokioExec, configure_client, configure_worker};
    crate::workloads::async_bodies!(faktory_tokio, TokioExec);
}

/// Runs `opts` on a fresh tokio runtime.
pub fn run(opts: &Options, target: &Target) -> Result<Measurement, BoxError> {
    let rt = client_runtime()?;
    let exec = TokioExec;
    let who = Who {
        client: CLIENT,
        runtime: "tokio",
    };
    let out = match &opts.mode {
        Mode::Load { jobs, threads } => {
            workloads::measure_load(who, opts, target, *jobs, *threads, |ctx| {
                rt.block_on(bodies::load_body(&exec, ctx))
            })
        }
        Mode::Push {
            n,
            concurrency,
            bulk,
        } => workloads::measure_push(who, opts, target, *n, *concurrency, *bulk, |ctx| {
            rt.block_on(bodies::push_body(&exec, ctx))
        }),
        Mode::Work { .. } => {
            let params = WorkParams::of(&opts.mode).ok_or("not work")?;
            workloads::measure_work(who, opts, target, params, |ctx| {
                rt.block_on(bodies::work_body(&exec, ctx))
            })
        }
        other => Err(format!("{} is not a measurement of a client", other.name()).into()),
    };
    rt.shutdown_timeout(Duration::from_secs(1));
    out
}
