//! Job handlers: registration types, the per-job context with its cancellation token, and running a
//! handler to an outcome.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use faktory_proto::api;
use faktory_proto::job::Job;
use faktory_proto::worker::Outcome;
use serde_json::{Map, Value};

/// The error type handlers may return: anything convertible to a boxed error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A flag that is set once and can be waited for: the worker sets a job's token when it gives up
/// on the job. Cheap to clone (clones share the flag).
#[derive(Clone, Default)]
pub struct CancellationToken {
    inner: Arc<TokenInner>,
}

#[derive(Default)]
struct TokenInner {
    cancelled: Mutex<bool>,
    changed: Condvar,
}

impl std::fmt::Debug for CancellationToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancellationToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl CancellationToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the flag and wakes everyone waiting for it.
    pub fn cancel(&self) {
        let mut c = lock(&self.inner.cancelled);
        if !*c {
            *c = true;
            self.inner.changed.notify_all();
        }
    }

    /// Whether the flag is set.
    pub fn is_cancelled(&self) -> bool {
        *lock(&self.inner.cancelled)
    }

    /// Blocks until the flag is set.
    pub fn wait(&self) {
        let mut c = lock(&self.inner.cancelled);
        while !*c {
            c = self
                .inner
                .changed
                .wait(c)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Blocks until the flag is set or `timeout` passes; returns whether it is set. A handler that
    /// would sleep can wait on its token instead, to stop early when cancelled.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let end = Instant::now().checked_add(timeout);
        let mut c = lock(&self.inner.cancelled);
        while !*c {
            let left = match end {
                Some(end) => match end.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return false,
                },
                None => Duration::from_secs(3600),
            };
            c = self
                .inner
                .changed
                .wait_timeout(c, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

/// What a handler can see besides its job: the jid, the custom fields, and a cancellation token
/// that is set when the worker gives up on the job (terminate's grace period ended, or local
/// shutdown's). A job whose token is set has already been FAILed; stop as soon as you can (a
/// thread cannot be stopped from outside).
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

    /// Set when the worker stops waiting for this job.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Whether the worker stopped waiting for this job.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

/// A registered handler, type-erased: it runs the user's function and turns its result into an
/// outcome (panics are caught by [`run_to_outcome`]).
pub(crate) type Handler = dyn Fn(Job, JobContext) -> Outcome + Send + Sync + 'static;

/// Wraps a user's handler: its error becomes a FAIL with the error's type name, message and source
/// chain (see `faktory_proto::api::failed_outcome`).
pub(crate) fn erase<F, E>(handler: F) -> Arc<Handler>
where
    F: Fn(Job, JobContext) -> Result<(), E> + Send + Sync + 'static,
    E: Into<BoxError> + 'static,
{
    Arc::new(move |job, ctx| match handler(job, ctx) {
        Ok(()) => Outcome::Ok,
        Err(e) => {
            let type_name = std::any::type_name::<E>();
            let error: BoxError = e.into();
            api::failed_outcome(type_name, &*error)
        }
    })
}

/// Runs a handler to its outcome: Ok, the error it returned, or the panic it raised.
pub(crate) fn run_to_outcome(handler: &Handler, job: Job, ctx: JobContext) -> Outcome {
    match std::panic::catch_unwind(AssertUnwindSafe(|| handler(job, ctx))) {
        Ok(outcome) => outcome,
        Err(payload) => api::panicked_outcome(&*payload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_wakes_waiters() {
        let t = CancellationToken::new();
        assert!(!t.is_cancelled());
        assert!(!t.wait_timeout(Duration::from_millis(1)));
        let t2 = t.clone();
        let waiter = std::thread::spawn(move || {
            t2.wait();
            t2.is_cancelled()
        });
        t.cancel();
        assert!(waiter.join().unwrap());
        assert!(t.wait_timeout(Duration::ZERO));
    }

    #[derive(Debug)]
    struct Oops;
    impl std::fmt::Display for Oops {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("oops")
        }
    }
    impl std::error::Error for Oops {}

    #[test]
    fn errors_and_panics_become_outcomes() {
        let job = Job::new("T", vec![]);
        let ctx = JobContext::new(&job, CancellationToken::new());
        let ok = erase(|_j: Job, _c: JobContext| Ok::<(), Oops>(()));
        assert_eq!(run_to_outcome(&*ok, job.clone(), ctx.clone()), Outcome::Ok);
        let err = erase(|_j: Job, _c: JobContext| Err::<(), Oops>(Oops));
        assert_eq!(
            run_to_outcome(&*err, job.clone(), ctx.clone()),
            Outcome::Failed {
                errtype: "Oops".into(),
                message: "oops".into(),
                backtrace: vec![],
            }
        );
        let boom = erase(|_j: Job, _c: JobContext| -> Result<(), Oops> { panic!("kaboom") });
        assert_eq!(
            run_to_outcome(&*boom, job, ctx),
            Outcome::Panicked {
                message: "kaboom".into()
            }
        );
    }
}
