//! `--runtime smol` and `--runtime async-std`: the workloads on `faktory-async-std`, driven by
//! `smol::block_on` with tasks (and the adapter's background tasks) on smol's global executor, or
//! by `async_std::task::block_on` with tasks on async-std's executor (the adapter's default
//! spawner).

use std::future::Future;
use std::pin::Pin;

use faktory_async_std::Spawner;

use crate::BoxError;
use crate::cli::{Mode, Options, Runtime};
use crate::report::Measurement;
use crate::server::Target;
use crate::workloads::{self, Who, WorkParams};

/// The client's name in reports.
pub const CLIENT: &str = "faktory-async-std";

/// Which executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsyncExec {
    /// smol's global executor.
    Smol,
    /// async-std's executor.
    AsyncStd,
}

impl workloads::Exec for AsyncExec {
    fn spawn<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Pin<Box<dyn Future<Output = Option<T>> + Send>> {
        match self {
            AsyncExec::Smol => {
                let task = smol::spawn(fut);
                Box::pin(async move { Some(task.await) })
            }
            AsyncExec::AsyncStd => {
                let handle = async_std::task::spawn(fut);
                Box::pin(async move { Some(handle.await) })
            }
        }
    }
}

impl AsyncExec {
    fn block_on<T>(self, fut: impl Future<Output = T>) -> T {
        match self {
            AsyncExec::Smol => smol::block_on(fut),
            AsyncExec::AsyncStd => async_std::task::block_on(fut),
        }
    }

    fn spawner(self) -> Option<Spawner> {
        match self {
            AsyncExec::Smol => Some(Spawner::new(|task| smol::spawn(task).detach())),
            AsyncExec::AsyncStd => None,
        }
    }
}

fn configure_client(
    exec: &AsyncExec,
    builder: faktory_async_std::ClientBuilder,
) -> faktory_async_std::ClientBuilder {
    match exec.spawner() {
        Some(s) => builder.runtime(s),
        None => builder,
    }
}

fn configure_worker(
    exec: &AsyncExec,
    builder: faktory_async_std::WorkerBuilder,
) -> faktory_async_std::WorkerBuilder {
    match exec.spawner() {
        Some(s) => builder.runtime(s),
        None => builder,
    }
}

mod bodies {
    use super::{AsyncExec, configure_client, configure_worker};
    crate::workloads::async_bodies!(faktory_async_std, AsyncExec);
}

/// Runs `opts` on smol or async-std (`runtime` says which).
pub fn run(opts: &Options, target: &Target, runtime: Runtime) -> Result<Measurement, BoxError> {
    let exec = match runtime {
        Runtime::Smol => AsyncExec::Smol,
        Runtime::AsyncStd => AsyncExec::AsyncStd,
        other => return Err(format!("{other} is not an async-std/smol runtime").into()),
    };
    let who = Who {
        client: CLIENT,
        runtime: runtime.as_str(),
    };
    match &opts.mode {
        Mode::Load { jobs, threads } => {
            workloads::measure_load(who, opts, target, *jobs, *threads, |ctx| {
                exec.block_on(bodies::load_body(&exec, ctx))
            })
        }
        Mode::Push {
            n,
            concurrency,
            bulk,
        } => workloads::measure_push(who, opts, target, *n, *concurrency, *bulk, |ctx| {
            exec.block_on(bodies::push_body(&exec, ctx))
        }),
        Mode::Work { .. } => {
            let params = WorkParams::of(&opts.mode).ok_or("not work")?;
            workloads::measure_work(who, opts, target, params, |ctx| {
                exec.block_on(bodies::work_body(&exec, ctx))
            })
        }
        other => Err(format!("{} is not a measurement of a client", other.name()).into()),
    }
}
