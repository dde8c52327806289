//! Job handlers: registration types, the per-job context, and running a handler to an outcome.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::rt::CancellationToken;
use faktory_proto::job::Job;
use faktory_proto::ops;
use faktory_proto::worker::Outcome;
use serde_json::{Map, Value};

/// The error type handlers may return: anything convertible to a boxed error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a handler can see besides its job: the jid, the custom fields, and a cancellation token
/// that fires when the worker gives up on the job (terminate's grace period ended, or local
/// shutdown's). A job whose token fired has already been FAILed; stop as soon as you can.
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

type BoxFuture = Pin<Box<dyn Future<Output = Result<(), Failure>> + Send + 'static>>;

/// A failure as the worker reports it (see `faktory_proto::ops::failed_outcome`).
pub(crate) struct Failure(Outcome);

impl Failure {
    fn from_error<E: Into<BoxError>>(error: E) -> Self {
        let type_name = std::any::type_name::<E>();
        let error: BoxError = error.into();
        Failure(ops::failed_outcome(type_name, &*error))
    }
}

/// A registered handler, type-erased.
pub(crate) trait Handler: Send + Sync + 'static {
    fn call(&self, job: Job, ctx: JobContext) -> BoxFuture;
}

pub(crate) struct AsyncHandler<F>(pub(crate) F);

impl<F, Fut, E> Handler for AsyncHandler<F>
where
    F: Fn(Job, JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    fn call(&self, job: Job, ctx: JobContext) -> BoxFuture {
        let fut = (self.0)(job, ctx);
        Box::pin(async move { fut.await.map_err(Failure::from_error) })
    }
}

pub(crate) struct BlockingHandler<F>(pub(crate) Arc<F>);

impl<F, E> Handler for BlockingHandler<F>
where
    F: Fn(Job, JobContext) -> Result<(), E> + Send + Sync + 'static,
    E: Into<BoxError> + 'static,
{
    fn call(&self, job: Job, ctx: JobContext) -> BoxFuture {
        let f = Arc::clone(&self.0);
        Box::pin(async move {
            // On the `blocking` crate's thread pool (the one smol's `unblock` and async-std's
            // `spawn_blocking` use). The panic is caught on that thread and raised again here, so
            // it is reported like a panic of an async handler.
            let result = blocking::unblock(move || {
                std::panic::catch_unwind(AssertUnwindSafe(|| {
                    f(job, ctx).map_err(Failure::from_error)
                }))
            })
            .await;
            match result {
                Ok(r) => r,
                Err(payload) => std::panic::resume_unwind(payload),
            }
        })
    }
}

/// Polls a future, turning a panic into its outcome.
struct CatchUnwind {
    inner: BoxFuture,
}

impl Future for CatchUnwind {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let inner = &mut self.inner;
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(Ok(()))) => Poll::Ready(Outcome::Ok),
            Ok(Poll::Ready(Err(Failure(outcome)))) => Poll::Ready(outcome),
            Err(payload) => Poll::Ready(ops::panicked_outcome(&*payload)),
        }
    }
}

/// Runs a handler to its outcome: Ok, the error it returned, or the panic it raised.
pub(crate) async fn run_to_outcome(handler: &dyn Handler, job: Job, ctx: JobContext) -> Outcome {
    CatchUnwind {
        inner: handler.call(job, ctx),
    }
    .await
}
