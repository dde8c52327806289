//! Job handlers: registration types, the per-job context, and running a handler to an outcome.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use faktory_proto::job::Job;
use faktory_proto::ops;
use faktory_proto::worker::Outcome;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

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

/// A failure as the worker reports it.
pub(crate) struct Failure {
    errtype: String,
    message: String,
    backtrace: Vec<String>,
}

impl Failure {
    fn from_error<E: Into<BoxError>>(error: E) -> Self {
        let errtype = short_type_name(std::any::type_name::<E>());
        let error: BoxError = error.into();
        let message = error.to_string();
        let mut backtrace = Vec::new();
        let mut source = error.source();
        while let Some(s) = source {
            backtrace.push(format!("caused by: {s}"));
            source = s.source();
        }
        Failure {
            errtype,
            message,
            backtrace,
        }
    }
}

fn short_type_name(full: &str) -> String {
    // `alloc::boxed::Box<dyn core::error::Error + …>` and `my_crate::MyError<T>` → last segment
    // before any generics.
    let head = full.split('<').next().unwrap_or(full);
    let name = head.rsplit("::").next().unwrap_or(head);
    if name.is_empty() { full.to_owned() } else { name.to_owned() }
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
            match tokio::task::spawn_blocking(move || f(job, ctx).map_err(Failure::from_error)).await {
                Ok(r) => r,
                Err(e) if e.is_panic() => {
                    let payload = e.into_panic();
                    std::panic::resume_unwind(payload)
                }
                Err(_) => Err(Failure {
                    errtype: "Cancelled".into(),
                    message: "blocking handler was cancelled by the runtime".into(),
                    backtrace: Vec::new(),
                }),
            }
        })
    }
}

/// Polls a future, turning a panic into `Err(message)`.
struct CatchUnwind {
    inner: BoxFuture,
}

impl Future for CatchUnwind {
    type Output = Result<Result<(), Failure>, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.inner;
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(r)) => Poll::Ready(Ok(r)),
            Err(payload) => Poll::Ready(Err(ops::panic_message(&*payload))),
        }
    }
}

/// Runs a handler to its outcome: Ok, the error it returned, or the panic it raised.
pub(crate) async fn run_to_outcome(handler: &dyn Handler, job: Job, ctx: JobContext) -> Outcome {
    let fut = handler.call(job, ctx);
    match (CatchUnwind { inner: fut }).await {
        Ok(Ok(())) => Outcome::Ok,
        Ok(Err(f)) => Outcome::Failed {
            errtype: f.errtype,
            message: f.message,
            backtrace: f.backtrace,
        },
        Err(message) => Outcome::Panicked { message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_are_shortened() {
        assert_eq!(short_type_name("std::io::error::Error"), "Error");
        assert_eq!(short_type_name("my::Thing<u8>"), "Thing");
        assert_eq!(short_type_name("Plain"), "Plain");
    }
}
