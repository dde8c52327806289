//! Job handlers: registration types, the per-job context, and running a handler to an outcome.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use faktory_proto::api;
use faktory_proto::job::Job;
use faktory_proto::worker::Outcome;
use serde_json::{Map, Value};

use crate::runtime::Runtime;
use crate::token::CancellationToken;

/// The error type handlers may return: anything convertible to a boxed error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a handler can see besides its job: the jid, the jobtype, the custom fields, and a
/// cancellation token that fires when the worker gives up on the job (terminate's grace period
/// ended, or local shutdown's). A job whose token fired has already been FAILed; stop as soon as
/// you can.
#[derive(Clone, Debug)]
pub struct JobContext {
    jid: String,
    jobtype: String,
    custom: Option<Map<String, Value>>,
    cancel: CancellationToken,
}

impl JobContext {
    pub(crate) fn new(job: &Job, cancel: CancellationToken) -> Self {
        JobContext {
            jid: job.jid.clone(),
            jobtype: job.jobtype.clone(),
            custom: job.custom.clone(),
            cancel,
        }
    }

    /// The job's id.
    pub fn jid(&self) -> &str {
        &self.jid
    }

    /// The job's type.
    pub fn jobtype(&self) -> &str {
        &self.jobtype
    }

    /// The job's custom fields.
    pub fn custom(&self) -> Option<&Map<String, Value>> {
        self.custom.as_ref()
    }

    /// Fires when the worker stops waiting for this job.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Whether the worker stopped waiting for this job.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

pub(crate) type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), Failure>> + Send + 'static>>;

/// A failure as the worker reports it (see [`api::failed_outcome`]).
pub(crate) struct Failure(Outcome);

impl Failure {
    fn from_error<E: Into<BoxError>>(error: E) -> Self {
        let type_name = std::any::type_name::<E>();
        let error: BoxError = error.into();
        Failure(api::failed_outcome(type_name, &*error))
    }
}

/// A registered handler, type-erased.
pub(crate) trait Handler<R: Runtime>: Send + Sync + 'static {
    fn call(&self, rt: &R, job: Job, ctx: JobContext) -> HandlerFuture;
}

/// An async handler (`register`, `register_with_context`).
pub(crate) struct AsyncHandler<F>(pub(crate) F);

impl<R, F, Fut, E> Handler<R> for AsyncHandler<F>
where
    R: Runtime,
    F: Fn(Job, JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    fn call(&self, _rt: &R, job: Job, ctx: JobContext) -> HandlerFuture {
        let fut = (self.0)(job, ctx);
        Box::pin(async move { fut.await.map_err(Failure::from_error) })
    }
}

/// A blocking handler (`register_blocking`), run on the runtime's blocking threads.
pub(crate) struct BlockingHandler<F>(pub(crate) Arc<F>);

impl<R, F, E> Handler<R> for BlockingHandler<F>
where
    R: Runtime,
    F: Fn(Job, JobContext) -> Result<(), E> + Send + Sync + 'static,
    E: Into<BoxError> + 'static,
{
    fn call(&self, rt: &R, job: Job, ctx: JobContext) -> HandlerFuture {
        let f = Arc::clone(&self.0);
        let rt = rt.clone();
        Box::pin(async move {
            // The panic is caught on the blocking thread and reported like an async handler's.
            let ran = rt
                .spawn_blocking(move || {
                    std::panic::catch_unwind(AssertUnwindSafe(|| {
                        f(job, ctx).map_err(Failure::from_error)
                    }))
                })
                .await;
            match ran {
                Some(Ok(result)) => result,
                Some(Err(payload)) => Err(Failure(api::panicked_outcome(&*payload))),
                None => Err(Failure(Outcome::failed(
                    "Cancelled",
                    "blocking handler was cancelled by the runtime",
                ))),
            }
        })
    }
}

/// Polls a handler's future, turning a panic into its outcome.
struct CatchUnwind {
    inner: HandlerFuture,
}

impl Future for CatchUnwind {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let inner = &mut self.inner;
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(Ok(()))) => Poll::Ready(Outcome::Ok),
            Ok(Poll::Ready(Err(Failure(outcome)))) => Poll::Ready(outcome),
            Err(payload) => Poll::Ready(api::panicked_outcome(&*payload)),
        }
    }
}

/// Runs a handler to its outcome: Ok, the error it returned, or the panic it raised. No handler:
/// the unknown-jobtype FAIL.
pub(crate) async fn run_to_outcome<R: Runtime>(
    handler: Option<Arc<dyn Handler<R>>>,
    rt: &R,
    job: Job,
    ctx: JobContext,
) -> Outcome {
    match handler {
        Some(h) => {
            // A panic while *creating* the future (in the closure itself) is caught too.
            match std::panic::catch_unwind(AssertUnwindSafe(|| h.call(rt, job, ctx))) {
                Ok(inner) => CatchUnwind { inner }.await,
                Err(payload) => api::panicked_outcome(&*payload),
            }
        }
        None => api::unknown_jobtype_outcome(&job.jobtype),
    }
}
