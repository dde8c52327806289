//! Job handlers: registration types, the per-job context with its cancellation token, and running a
//! handler to an outcome.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use faktory_proto::Timestamp;
use faktory_proto::api::{self, HandlerError, JobMeta, MissingState, StateMap};
use faktory_proto::job::Job;
use faktory_proto::request;
use faktory_proto::worker::{Outcome, PANIC_ERRTYPE, PushError};
use serde::de::DeserializeOwned;

/// The error type handlers may return: anything convertible to a boxed error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a handler or a middleware returns: `Ok(())` ACKs the job, an error FAILs it (retried per
/// the job's `retry`).
pub type HandlerResult = Result<(), HandlerError>;

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

// -------------------------------------------------------------------------------------------------
// the context

/// A follow-up job for the engine thread, and where its answer goes.
pub(crate) type PushCall = (Job, Sender<Result<(), PushError>>);

/// Where [`JobContext::push`] sends jobs.
#[derive(Clone)]
pub(crate) enum Pusher {
    /// The worker's engine thread, over the worker's own connections.
    Worker(Sender<crate::worker::Msg>),
    /// Recorded, for tests ([`JobContext::for_test`], [`Worker::run_job`](crate::Worker::run_job)).
    Recorder(Arc<Mutex<Vec<Job>>>),
}

/// What every job of one worker shares: the state, and where pushes go.
#[derive(Clone)]
pub(crate) struct WorkerShared {
    pub(crate) state: StateMap,
    pub(crate) pusher: Pusher,
}

impl WorkerShared {
    pub(crate) fn recorder(state: StateMap) -> Self {
        WorkerShared {
            state,
            pusher: Pusher::Recorder(Arc::default()),
        }
    }
}

/// What a handler and a middleware can see besides the job: its jid, jobtype, custom fields and
/// batch, the worker's shared state ([`JobContext::state`]), a way to push follow-up jobs over the
/// worker's own connections ([`JobContext::push`]), and a cancellation token that is set when the
/// worker gives up on the job (terminate's grace period ended, or local shutdown's). A job whose
/// token is set has already been FAILed; stop as soon as you can (a thread cannot be stopped from
/// outside).
///
/// In tests, [`JobContext::for_test`] makes one without a worker:
///
/// ```
/// use faktory_blocking::{Job, JobContext};
///
/// let job = Job::builder("Signup").custom("bid", "b-1").build().unwrap();
/// let ctx = JobContext::for_test(&job).with_state(42u32);
/// assert_eq!(ctx.jid(), job.jid);
/// assert_eq!(ctx.batch_id(), Some("b-1"));
/// assert_eq!(*ctx.state::<u32>().unwrap(), 42);
/// let jid = ctx.push(Job::with_args("Welcome", ("ada",)).unwrap()).unwrap();
/// assert_eq!(ctx.pushed()[0].jid, jid); // recorded, not sent
/// ```
#[derive(Clone)]
pub struct JobContext {
    meta: JobMeta,
    cancel: CancellationToken,
    shared: Arc<WorkerShared>,
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("job", &self.meta)
            .field("cancelled", &self.cancel.is_cancelled())
            .finish_non_exhaustive()
    }
}

/// The job's jid, jobtype, custom fields and batch id ([`JobMeta::jid`], [`JobMeta::batch_id`], …).
impl std::ops::Deref for JobContext {
    type Target = JobMeta;

    fn deref(&self) -> &JobMeta {
        &self.meta
    }
}

/// How long [`JobContext::push`] waits for the server's answer at most.
const PUSH_TIMEOUT: Duration = Duration::from_secs(60);

impl JobContext {
    pub(crate) fn new(job: &Job, cancel: CancellationToken, shared: Arc<WorkerShared>) -> Self {
        JobContext {
            meta: JobMeta::of(job),
            cancel,
            shared,
        }
    }

    /// A context for `job` outside any worker, for tests: no state (add some with
    /// [`JobContext::with_state`]), a token that is never set unless you cancel it, and
    /// [`JobContext::push`] records the jobs instead of sending them ([`JobContext::pushed`]).
    pub fn for_test(job: &Job) -> Self {
        JobContext::new(
            job,
            CancellationToken::new(),
            Arc::new(WorkerShared::recorder(StateMap::default())),
        )
    }

    /// This context with `value` as state of type `T` (as [`WorkerBuilder::state`] gives it), for
    /// tests.
    ///
    /// [`WorkerBuilder::state`]: crate::WorkerBuilder::state
    #[must_use]
    pub fn with_state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        Arc::make_mut(&mut self.shared).state.insert(value);
        self
    }

    /// The worker's state of type `T` ([`WorkerBuilder::state`]); an error (which `?` turns into
    /// a FAIL with errtype `MissingState`) when the worker has none of that type.
    ///
    /// [`WorkerBuilder::state`]: crate::WorkerBuilder::state
    pub fn state<T: Send + Sync + 'static>(&self) -> Result<&T, MissingState> {
        self.shared.state.get::<T>()
    }

    /// Pushes a follow-up job over the worker's own connections (no `Client` needed) and returns
    /// its jid once the server accepted it. The job gets `retry` 25 unless it has one, and its
    /// relative times (`JobBuilder::after`, `expires_in`) are resolved now. A context from
    /// [`JobContext::for_test`] records the job instead ([`JobContext::pushed`]).
    ///
    /// Fails with [`PushError::Invalid`] for a job that does not validate (nothing is sent),
    /// [`PushError::Server`] when the server refused it (`-NOTUNIQUE …`), [`PushError::Stopped`]
    /// once the worker has stopped, [`PushError::NoConnection`] when no connection was ready in
    /// time, and [`PushError::OutcomeUnknown`] when the connection failed with the PUSH in flight
    /// (the server may have the job; it is not re-sent). Under `?` in a handler it FAILs the job.
    pub fn push(&self, job: Job) -> Result<String, PushError> {
        let mut job = job;
        // Reading the clock formats a timestamp: only for a job that needs it.
        if job.run_after.is_some() || job.expires_after.is_some() {
            job.resolve_relative(Timestamp::now());
        }
        request::prepare_push(&mut job).map_err(|e| PushError::Invalid(Arc::new(e)))?;
        let jid = job.jid.clone();
        match &self.shared.pusher {
            Pusher::Recorder(jobs) => {
                lock(jobs).push(job);
                Ok(jid)
            }
            Pusher::Worker(tx) => {
                let (reply, answer) = mpsc::channel();
                tx.send(crate::worker::Msg::Push(Box::new((job, reply))))
                    .map_err(|_| PushError::Stopped)?;
                answer
                    .recv_timeout(PUSH_TIMEOUT)
                    .map_err(|_| PushError::Stopped)??;
                Ok(jid)
            }
        }
    }

    /// The jobs [`JobContext::push`] recorded (a context from [`JobContext::for_test`] or
    /// [`Worker::run_job`](crate::Worker::run_job)); empty in a worker.
    pub fn pushed(&self) -> Vec<Job> {
        match &self.shared.pusher {
            Pusher::Recorder(jobs) => lock(jobs).clone(),
            Pusher::Worker(_) => Vec::new(),
        }
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

// -------------------------------------------------------------------------------------------------
// handler shapes

/// A handler error of any type `E` as a [`HandlerError`] whose errtype names `E` (or, for a boxed
/// error, what is in the box: see [`api::errtype`]).
fn boxed_handler_error<E: Into<BoxError> + 'static>(error: E) -> HandlerError {
    let type_name = std::any::type_name::<E>();
    let error: BoxError = error.into();
    let errtype = api::errtype(type_name, &*error);
    HandlerError::from_boxed(error).with_errtype(errtype)
}

/// The args of `job` as `A` (`A` = [`Job`]: the job itself).
fn decode<A: DeserializeOwned + 'static>(job: Job) -> Result<A, HandlerError> {
    if TypeId::of::<A>() == TypeId::of::<Job>() {
        let mut slot = Some(job);
        return (&mut slot as &mut dyn Any)
            .downcast_mut::<Option<A>>()
            .and_then(Option::take)
            .ok_or_else(|| HandlerError::msg("internal: the job could not be handed over"));
    }
    Ok(job.args_as::<A>()?)
}

/// Which closure shape a handler has, for [`Handler`]. You never name these: the compiler picks
/// the one that fits the closure.
pub mod shape {
    use std::marker::PhantomData;

    /// `Fn(Job)`, returning any error type.
    #[derive(Debug)]
    pub struct JobOnly;
    /// `Fn(Job, JobContext)`, returning any error type.
    #[derive(Debug)]
    pub struct JobWithContext;
    /// `Fn(A)` with `A` the deserialized args, returning `HandlerError`.
    #[derive(Debug)]
    pub struct Args<A>(PhantomData<fn() -> A>);
    /// `Fn(A, JobContext)` with `A` the deserialized args, returning `HandlerError`.
    #[derive(Debug)]
    pub struct ArgsWithContext<A>(PhantomData<fn() -> A>);
}

mod sealed {
    pub trait Sealed<M> {}
}

/// A job handler, as [`WorkerBuilder::register`](crate::WorkerBuilder::register) (and
/// `register_blocking`, the same here) takes it: a closure (or function) of one of these shapes.
///
/// | shape | returns |
/// |---|---|
/// | `Fn(Job)` | `Result<(), E>`, `E` any error (`BoxError`, `io::Error`, your type) |
/// | `Fn(Job, JobContext)` | `Result<(), E>`, as above |
/// | `Fn(A)`, `A` the args deserialized (a tuple, a struct, a map, a `Vec`) | `Result<(), HandlerError>` |
/// | `Fn(A, JobContext)` | `Result<(), HandlerError>` |
///
/// With typed args the error type is fixed ([`HandlerError`]), so `Ok(())` needs no turbofish and
/// `?` works on any error. Args that do not decode FAIL the job with errtype `JobError`. Annotate
/// the closure's argument types (`|job: Job|`, `|(to, n): (String, u32)|`): the compiler picks
/// the shape from them. A handler that takes the whole `Job` may return `HandlerError` too (write
/// `Ok::<(), HandlerError>(())`: with a `Job` the error type is not fixed).
///
/// ```no_run
/// use faktory_blocking::{BoxError, Job, JobContext, Worker, WorkerBuilder};
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct Signup {
///     email: String,
/// }
///
/// fn worker() -> WorkerBuilder {
///     Worker::builder()
///         .register("Mail", |(to, n): (String, u32)| {
///             println!("mail {n} to {to}");
///             Ok(())
///         })
///         .register("Signup", |s: Signup, ctx: JobContext| {
///             println!("{} signed up ({})", s.email, ctx.jid());
///             Ok(())
///         })
///         .register("Raw", |job: Job| {
///             println!("{:?}", job.args);
///             Ok::<(), BoxError>(())
///         })
/// }
/// ```
pub trait Handler<M>: sealed::Sealed<M> + Send + Sync + 'static {
    #[doc(hidden)]
    fn call(&self, job: Job, ctx: JobContext) -> HandlerResult;
}

impl<F, E> sealed::Sealed<shape::JobOnly> for F
where
    F: Fn(Job) -> Result<(), E> + Send + Sync + 'static,
    E: Into<BoxError> + 'static,
{
}

impl<F, E> Handler<shape::JobOnly> for F
where
    F: Fn(Job) -> Result<(), E> + Send + Sync + 'static,
    E: Into<BoxError> + 'static,
{
    fn call(&self, job: Job, _ctx: JobContext) -> HandlerResult {
        self(job).map_err(boxed_handler_error)
    }
}

impl<F, E> sealed::Sealed<shape::JobWithContext> for F
where
    F: Fn(Job, JobContext) -> Result<(), E> + Send + Sync + 'static,
    E: Into<BoxError> + 'static,
{
}

impl<F, E> Handler<shape::JobWithContext> for F
where
    F: Fn(Job, JobContext) -> Result<(), E> + Send + Sync + 'static,
    E: Into<BoxError> + 'static,
{
    fn call(&self, job: Job, ctx: JobContext) -> HandlerResult {
        self(job, ctx).map_err(boxed_handler_error)
    }
}

impl<F, A> sealed::Sealed<shape::Args<A>> for F
where
    F: Fn(A) -> HandlerResult + Send + Sync + 'static,
    A: DeserializeOwned + 'static,
{
}

impl<F, A> Handler<shape::Args<A>> for F
where
    F: Fn(A) -> HandlerResult + Send + Sync + 'static,
    A: DeserializeOwned + 'static,
{
    fn call(&self, job: Job, _ctx: JobContext) -> HandlerResult {
        self(decode::<A>(job)?)
    }
}

impl<F, A> sealed::Sealed<shape::ArgsWithContext<A>> for F
where
    F: Fn(A, JobContext) -> HandlerResult + Send + Sync + 'static,
    A: DeserializeOwned + 'static,
{
}

impl<F, A> Handler<shape::ArgsWithContext<A>> for F
where
    F: Fn(A, JobContext) -> HandlerResult + Send + Sync + 'static,
    A: DeserializeOwned + 'static,
{
    fn call(&self, job: Job, ctx: JobContext) -> HandlerResult {
        self(decode::<A>(job)?, ctx)
    }
}

/// A registered handler, its shape erased.
pub(crate) trait Dispatch: Send + Sync + 'static {
    fn call(&self, job: Job, ctx: JobContext) -> HandlerResult;
}

pub(crate) struct Shaped<H, M>(pub(crate) H, pub(crate) PhantomData<fn() -> M>);

impl<H: Handler<M>, M: 'static> Dispatch for Shaped<H, M> {
    fn call(&self, job: Job, ctx: JobContext) -> HandlerResult {
        self.0.call(job, ctx)
    }
}

// -------------------------------------------------------------------------------------------------
// middleware

/// A worker middleware: a layer around every job's handler, added with
/// [`WorkerBuilder::middleware`](crate::WorkerBuilder::middleware) (the first added is the
/// outermost). It sees the job and its [`JobContext`] and decides what happens: call
/// `next.run(job, ctx)` (the rest of the chain, then the handler) and look at its result, change
/// the job first, not call `next` at all (short-circuit), or change the result: an `Err` FAILs the
/// job (retried per its `retry`), `Ok(())` ACKs it (a discarded error: log it).
///
/// A handler's panic reaches a middleware as an error with errtype `panic`. The job's span
/// (`faktory.job`, with jid, jobtype and queue) is entered around the whole chain.
///
/// Implement it for a type, or pass a closure `Fn(Job, JobContext, Next) -> HandlerResult`:
///
/// ```no_run
/// use std::time::Instant;
/// use faktory_blocking::{HandlerResult, Job, JobContext, Middleware, Next, Worker, WorkerBuilder};
///
/// /// Logs how long each job took.
/// struct Timing;
///
/// impl Middleware for Timing {
///     fn call(&self, job: Job, ctx: JobContext, next: Next) -> HandlerResult {
///         let started = Instant::now();
///         let jobtype = job.jobtype.clone();
///         let result = next.run(job, ctx);
///         println!("{jobtype} took {:?} (ok: {})", started.elapsed(), result.is_ok());
///         result
///     }
/// }
///
/// fn worker() -> WorkerBuilder {
///     Worker::builder()
///         .middleware(Timing)
///         // A closure: jobs marked `skip` are ACKed without running; an error named `Permanent`
///         // is logged and the job discarded (ACKed) instead of retried.
///         .middleware(|job: Job, ctx: JobContext, next: Next| {
///             if job.custom_value("skip").is_some() {
///                 return Ok(());
///             }
///             match next.run(job, ctx) {
///                 Err(e) if e.errtype() == "Permanent" => {
///                     eprintln!("discarding: {e}");
///                     Ok(())
///                 }
///                 other => other,
///             }
///         })
/// }
/// ```
pub trait Middleware: Send + Sync + 'static {
    /// Runs around the rest of the chain (`next`).
    fn call(&self, job: Job, ctx: JobContext, next: Next) -> HandlerResult;
}

impl<F> Middleware for F
where
    F: Fn(Job, JobContext, Next) -> HandlerResult + Send + Sync + 'static,
{
    fn call(&self, job: Job, ctx: JobContext, next: Next) -> HandlerResult {
        self(job, ctx, next)
    }
}

/// What runs a job: the middleware, then the handler of its jobtype.
pub(crate) struct Chain {
    pub(crate) layers: Vec<Box<dyn Middleware>>,
    pub(crate) handlers: HashMap<String, Box<dyn Dispatch>>,
}

/// The rest of the chain, as a [`Middleware`] gets it: [`Next::run`] runs the next middleware, or
/// the handler of the job's jobtype (as the job is then: a middleware may change it).
pub struct Next {
    chain: Arc<Chain>,
    index: usize,
}

impl std::fmt::Debug for Next {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Next")
            .field(
                "remaining_layers",
                &self.chain.layers.len().saturating_sub(self.index),
            )
            .finish()
    }
}

impl Next {
    /// Runs the rest of the chain for `job`: its result is the job's, unless you change it.
    pub fn run(self, job: Job, ctx: JobContext) -> HandlerResult {
        let Next { chain, index } = self;
        match chain.layers.get(index) {
            Some(layer) => {
                let next = Next {
                    chain: Arc::clone(&chain),
                    index: index + 1,
                };
                layer.call(job, ctx, next)
            }
            None => match chain.handlers.get(&job.jobtype) {
                Some(handler) => {
                    match std::panic::catch_unwind(AssertUnwindSafe(|| handler.call(job, ctx))) {
                        Ok(result) => result,
                        Err(payload) => Err(panic_error(&*payload)),
                    }
                }
                None => Err(HandlerError::msg(format!(
                    "no handler registered for jobtype {:?}",
                    job.jobtype
                ))
                .with_errtype(api::UNKNOWN_JOBTYPE_ERRTYPE)),
            },
        }
    }
}

/// A panic as a handler error (errtype `panic`), for the middleware around the handler.
fn panic_error(payload: &(dyn Any + Send)) -> HandlerError {
    HandlerError::msg(api::panic_message(payload)).with_errtype(PANIC_ERRTYPE)
}

/// Runs a job to its outcome: the middleware chain and the handler; `Ok` is ACK, an error its
/// FAIL, a panic a FAIL with errtype `panic`. Without middleware the handler is called directly.
pub(crate) fn run_to_outcome(chain: &Arc<Chain>, job: Job, ctx: JobContext) -> Outcome {
    let ran = if chain.layers.is_empty() {
        let Some(handler) = chain.handlers.get(&job.jobtype) else {
            return api::unknown_jobtype_outcome(&job.jobtype);
        };
        std::panic::catch_unwind(AssertUnwindSafe(|| handler.call(job, ctx)))
    } else {
        let next = Next {
            chain: Arc::clone(chain),
            index: 0,
        };
        std::panic::catch_unwind(AssertUnwindSafe(|| next.run(job, ctx)))
    };
    api::run_outcome(ran)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

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

    use serde::Deserialize;
    use serde_json::json;

    use crate::{Worker, WorkerBuilder};

    fn run(worker: &Worker, job: Job) -> Outcome {
        worker.run_job(job).outcome
    }

    fn errtype(outcome: &Outcome) -> &str {
        match outcome {
            Outcome::Failed { errtype, .. } => errtype,
            Outcome::Panicked { .. } => "panic",
            _ => "",
        }
    }

    #[derive(Deserialize)]
    struct Signup {
        email: String,
        plan: Option<String>,
    }

    fn log() -> (
        Arc<Mutex<Vec<String>>>,
        impl Fn(String) + Clone + Send + Sync + 'static,
    ) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        (log, move |s: String| l.lock().unwrap().push(s))
    }

    fn take(log: &Mutex<Vec<String>>) -> Vec<String> {
        std::mem::take(&mut *log.lock().unwrap())
    }

    #[test]
    fn every_handler_shape_registers_and_runs() {
        let (seen, say) = log();
        let (s1, s2, s3, s4) = (say.clone(), say.clone(), say.clone(), say);
        let worker = WorkerBuilder::new()
            .register("Job", move |job: Job| {
                s1(format!("job {}", job.args.len()));
                Ok::<(), BoxError>(())
            })
            .register("JobCtx", move |job: Job, ctx: JobContext| {
                assert_eq!(ctx.jid(), job.jid);
                s2("jobctx".into());
                Ok::<(), std::io::Error>(())
            })
            .register("Tuple", move |(to, n): (String, u32)| {
                s3(format!("{to} {n}"));
                Ok(())
            })
            .register_blocking("Struct", move |s: Signup, ctx: JobContext| {
                let _: u16 = "7".parse()?;
                s4(format!("{} {:?} {}", s.email, s.plan, ctx.jobtype()));
                Ok(())
            })
            .register("Io", |_job: Job| {
                Err::<(), std::io::Error>(std::io::Error::other("disk full"))
            })
            .build()
            .unwrap();
        assert_eq!(run(&worker, Job::new("Job", vec![json!(1)])), Outcome::Ok);
        assert_eq!(run(&worker, Job::new("JobCtx", vec![])), Outcome::Ok);
        let tuple = Job::with_args("Tuple", ("ada", 3)).unwrap();
        assert_eq!(run(&worker, tuple), Outcome::Ok);
        let signup = Job::new("Struct", vec![json!({"email": "a@b", "plan": "pro"})]);
        assert_eq!(run(&worker, signup), Outcome::Ok);
        assert_eq!(errtype(&run(&worker, Job::new("Io", vec![]))), "io::Error");
        let bad_args = run(&worker, Job::new("Tuple", vec![json!(1)]));
        assert_eq!(errtype(&bad_args), "JobError");
        assert_eq!(
            take(&seen),
            ["job 1", "jobctx", "ada 3", "a@b Some(\"pro\") Struct"]
        );
    }

    #[test]
    fn middleware_runs_in_order_and_can_change_the_job_and_the_result() {
        let (seen, say) = log();
        let (s1, s2, s3) = (say.clone(), say.clone(), say);
        let worker = WorkerBuilder::new()
            .middleware(move |job: Job, ctx: JobContext, next: Next| {
                s1("outer in".into());
                let r = next.run(job, ctx);
                s1(format!("outer out {}", r.is_ok()));
                match r {
                    Err(e) if e.errtype() == "Permanent" => Ok(()),
                    other => other,
                }
            })
            .middleware(move |mut job: Job, ctx: JobContext, next: Next| {
                s2("inner in".into());
                if job.custom_value("skip").is_some() {
                    return Ok(());
                }
                job.args.push(json!("added"));
                next.run(job, ctx)
            })
            .register("Echo", move |job: Job| {
                s3(format!("handler {:?}", job.args));
                Ok::<(), BoxError>(())
            })
            .register("Permanent", |_args: Vec<Value>| {
                Err(HandlerError::msg("no such user").with_errtype("Permanent"))
            })
            .register("Retry", |_job: Job| Err::<(), BoxError>("try later".into()))
            .register("Panics", |_job: Job| -> Result<(), BoxError> {
                panic!("boom")
            })
            .build()
            .unwrap();
        assert_eq!(run(&worker, Job::new("Echo", vec![])), Outcome::Ok);
        assert_eq!(
            take(&seen),
            [
                "outer in",
                "inner in",
                "handler [String(\"added\")]",
                "outer out true"
            ]
        );
        let skip = Job::builder("Echo").custom("skip", true).build().unwrap();
        assert_eq!(run(&worker, skip), Outcome::Ok);
        assert_eq!(take(&seen), ["outer in", "inner in", "outer out true"]);
        assert_eq!(run(&worker, Job::new("Permanent", vec![])), Outcome::Ok);
        assert_eq!(take(&seen), ["outer in", "inner in", "outer out false"]);
        assert_eq!(
            errtype(&run(&worker, Job::new("Retry", vec![]))),
            "StringError"
        );
        take(&seen);
        let panicked = run(&worker, Job::new("Panics", vec![]));
        assert_eq!(errtype(&panicked), "panic", "{panicked:?}");
        assert_eq!(
            take(&seen),
            ["outer in", "inner in", "outer out false"],
            "the middleware saw the panic as an error"
        );
        assert_eq!(
            errtype(&run(&worker, Job::new("Nobody", vec![]))),
            "UnknownJobtype"
        );
    }

    #[test]
    fn without_middleware_errors_panics_and_unknown_jobtypes_become_outcomes() {
        let worker = WorkerBuilder::new()
            .register("Oops", |_job: Job| Err::<(), Oops>(Oops))
            .register("Boom", |_job: Job| -> Result<(), Oops> { panic!("kaboom") })
            .build()
            .unwrap();
        assert_eq!(
            run(&worker, Job::new("Oops", vec![])),
            Outcome::Failed {
                errtype: "Oops".into(),
                message: "oops".into(),
                backtrace: vec![],
            }
        );
        assert_eq!(
            run(&worker, Job::new("Boom", vec![])),
            Outcome::Panicked {
                message: "kaboom".into()
            }
        );
        assert_eq!(
            errtype(&run(&worker, Job::new("Nobody", vec![]))),
            "UnknownJobtype"
        );
    }

    #[test]
    fn state_and_pushes_reach_handlers() {
        let worker = WorkerBuilder::new()
            .state(String::from("hello"))
            .state(7u64)
            .register("Greet", |(name,): (String,), ctx: JobContext| {
                let greeting = ctx.state::<String>()?;
                let n = ctx.state::<u64>()?;
                ctx.push(Job::with_args("Print", (format!("{greeting} {name}"), n))?)?;
                Ok(())
            })
            .register("NeedsMore", |_job: Job, ctx: JobContext| {
                ctx.state::<Vec<u8>>()?;
                Ok::<(), MissingState>(())
            })
            .build()
            .unwrap();
        let run = worker.run_job(Job::with_args("Greet", ("ada",)).unwrap());
        assert!(run.is_ok(), "{run:?}");
        assert_eq!(run.pushed.len(), 1);
        assert_eq!(run.pushed[0].args, [json!("hello ada"), json!(7)]);
        let missing = worker.run_job(Job::new("NeedsMore", vec![])).outcome;
        assert_eq!(errtype(&missing), "MissingState");
    }

    #[test]
    fn a_test_context_records_pushes_and_carries_state() {
        let job = Job::builder("X").custom("bid", "B1").build().unwrap();
        let ctx = JobContext::for_test(&job).with_state(1u8);
        assert_eq!(ctx.batch_id(), Some("B1"));
        assert_eq!(*ctx.state::<u8>().unwrap(), 1);
        assert!(ctx.state::<u16>().is_err());
        let jid = ctx.push(Job::new("Y", vec![])).unwrap();
        assert_eq!(ctx.pushed()[0].jid, jid);
        let mut bad = Job::new("Y", vec![]);
        bad.jid = "short".into();
        assert!(ctx.push(bad).is_err());
        assert!(format!("{ctx:?}").contains(&job.jid));
    }

    #[derive(Debug)]
    struct Oops;
    impl std::fmt::Display for Oops {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("oops")
        }
    }
    impl std::error::Error for Oops {}
}
