//! Job handlers: the handler shapes `register` and `register_blocking` take, the per-job context,
//! the middleware chain, and running a job to its outcome.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use faktory_proto::Timestamp;
use faktory_proto::api::{self, HandlerError, JobMeta, MissingState, StateMap};
use faktory_proto::job::Job;
use faktory_proto::request;
use faktory_proto::worker::{Outcome, PANIC_ERRTYPE, PushError};
use futures_channel::{mpsc, oneshot};
use serde::de::DeserializeOwned;

use crate::runtime::Runtime;
use crate::token::CancellationToken;

/// The error type handlers may return: anything convertible to a boxed error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a handler or a middleware returns: `Ok(())` ACKs the job, an error FAILs it (retried per
/// the job's `retry`).
pub type HandlerResult = Result<(), HandlerError>;

/// A boxed handler or middleware future.
pub(crate) type JobFuture = Pin<Box<dyn Future<Output = HandlerResult> + Send + 'static>>;

// -------------------------------------------------------------------------------------------------
// the context

/// A follow-up job for the worker's driver, and where its answer goes.
pub(crate) type PushCall = (Job, oneshot::Sender<Result<(), PushError>>);

/// Where [`JobContext::push`] sends jobs.
#[derive(Clone)]
pub(crate) enum Pusher {
    /// The worker's driver, over the worker's own connections.
    Worker(mpsc::UnboundedSender<PushCall>),
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
/// worker's own connections ([`JobContext::push`]), and a cancellation token that fires when the
/// worker gives up on the job (terminate's grace period ended, or local shutdown's). A job whose
/// token fired has already been FAILed; stop as soon as you can.
///
/// In tests, [`JobContext::for_test`] makes one without a worker:
///
/// ```
/// use faktory_async::{Job, JobContext};
///
/// # futures_lite::future::block_on(async {
/// let job = Job::builder("Signup").custom("bid", "b-1").build().unwrap();
/// let ctx = JobContext::for_test(&job).with_state(42u32);
/// assert_eq!(ctx.jid(), job.jid);
/// assert_eq!(ctx.batch_id(), Some("b-1"));
/// assert_eq!(*ctx.state::<u32>().unwrap(), 42);
/// let jid = ctx.push(Job::with_args("Welcome", ("ada",)).unwrap()).await.unwrap();
/// assert_eq!(ctx.pushed()[0].jid, jid); // recorded, not sent
/// # });
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

impl JobContext {
    pub(crate) fn new(job: &Job, cancel: CancellationToken, shared: Arc<WorkerShared>) -> Self {
        JobContext {
            meta: JobMeta::of(job),
            cancel,
            shared,
        }
    }

    /// A context no handler reads (see [`start_job`]): nothing copied from the job.
    pub(crate) fn unseen(cancel: CancellationToken, shared: Arc<WorkerShared>) -> Self {
        JobContext {
            meta: JobMeta::default(),
            cancel,
            shared,
        }
    }

    /// A context for `job` outside any worker, for tests: no state (add some with
    /// [`JobContext::with_state`]), a token that never fires unless you cancel it, and
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
    pub async fn push(&self, job: Job) -> Result<String, PushError> {
        let mut job = job;
        // Reading the clock formats a timestamp: only for a job that needs it.
        if job.run_after.is_some() || job.expires_after.is_some() {
            job.resolve_relative(Timestamp::now());
        }
        request::prepare_push(&mut job).map_err(|e| PushError::Invalid(Arc::new(e)))?;
        let jid = job.jid.clone();
        match &self.shared.pusher {
            Pusher::Recorder(jobs) => {
                jobs.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(job);
                Ok(jid)
            }
            Pusher::Worker(tx) => {
                let (reply, answer) = oneshot::channel();
                tx.unbounded_send((job, reply))
                    .map_err(|_| PushError::Stopped)?;
                answer.await.map_err(|_| PushError::Stopped)??;
                Ok(jid)
            }
        }
    }

    /// The jobs [`JobContext::push`] recorded (a context from [`JobContext::for_test`] or
    /// [`Worker::run_job`](crate::Worker::run_job)); empty in a worker.
    pub fn pushed(&self) -> Vec<Job> {
        match &self.shared.pusher {
            Pusher::Recorder(jobs) => jobs.lock().unwrap_or_else(PoisonError::into_inner).clone(),
            Pusher::Worker(_) => Vec::new(),
        }
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

// -------------------------------------------------------------------------------------------------
// handler shapes

/// A handler error of any type `E` as a [`HandlerError`] whose errtype names `E` (or, for a boxed
/// error, what is in the box: see [`api::errtype`]).
pub(crate) fn boxed_handler_error<E: Into<BoxError> + 'static>(error: E) -> HandlerError {
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

/// Which closure shape a handler has, for [`Handler`] and [`BlockingHandler`]. You never name
/// these: the compiler picks the one that fits the closure.
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
    /// Marks the blocking shapes apart from the async ones.
    #[derive(Debug)]
    pub struct Blocking;
}

mod sealed {
    pub trait Sealed<M> {
        /// Whether the handler takes the job's context: one that does not, run with no
        /// middleware, gets a context that is never built from the job (nothing would read it).
        const TAKES_CONTEXT: bool = true;
    }
}

/// An async job handler, as [`WorkerBuilder::register`](crate::WorkerBuilder::register) takes
/// it: a closure (or function) of one of these shapes, returning a future.
///
/// | shape | its future's output |
/// |---|---|
/// | `Fn(Job)` | `Result<(), E>`, `E` any error (`BoxError`, `io::Error`, your type, `HandlerError`) |
/// | `Fn(Job, JobContext)` | `Result<(), E>`, as above |
/// | `Fn(A)`, `A` the args deserialized (a tuple, a struct, a map, a `Vec`) | `Result<(), HandlerError>` |
/// | `Fn(A, JobContext)` | `Result<(), HandlerError>` |
///
/// With typed args the error type is fixed ([`HandlerError`]), so `Ok(())` needs no turbofish and
/// `?` works on any error. Args that do not decode FAIL the job with errtype `JobError`. Annotate
/// the closure's argument types (`|job: Job|`, `|(to, n): (String, u32)|`): the compiler picks
/// the shape from them.
///
/// ```no_run
/// use faktory_async::{BoxError, Job, JobContext, Runtime, Worker};
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct Signup {
///     email: String,
/// }
///
/// fn worker<R: Runtime + Default>() -> faktory_async::WorkerBuilder<R> {
///     Worker::<R>::builder()
///         .register("Mail", |(to, n): (String, u32)| async move {
///             println!("mail {n} to {to}");
///             Ok(())
///         })
///         .register("Signup", |s: Signup, ctx: JobContext| async move {
///             println!("{} signed up ({})", s.email, ctx.jid());
///             Ok(())
///         })
///         .register("Raw", |job: Job| async move {
///             println!("{:?}", job.args);
///             Ok::<(), BoxError>(())
///         })
/// }
/// ```
pub trait Handler<M>: sealed::Sealed<M> + Send + Sync + 'static {
    #[doc(hidden)]
    fn call(&self, job: Job, ctx: JobContext) -> JobFuture;
}

impl<F, Fut, E> sealed::Sealed<shape::JobOnly> for F
where
    F: Fn(Job) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    const TAKES_CONTEXT: bool = false;
}

impl<F, Fut, E> Handler<shape::JobOnly> for F
where
    F: Fn(Job) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    fn call(&self, job: Job, _ctx: JobContext) -> JobFuture {
        let fut = self(job);
        Box::pin(async move { fut.await.map_err(boxed_handler_error) })
    }
}

impl<F, Fut, E> sealed::Sealed<shape::JobWithContext> for F
where
    F: Fn(Job, JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<BoxError> + 'static,
{
}

impl<F, Fut, E> Handler<shape::JobWithContext> for F
where
    F: Fn(Job, JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    fn call(&self, job: Job, ctx: JobContext) -> JobFuture {
        let fut = self(job, ctx);
        Box::pin(async move { fut.await.map_err(boxed_handler_error) })
    }
}

impl<F, Fut, A> sealed::Sealed<shape::Args<A>> for F
where
    F: Fn(A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
    A: DeserializeOwned + 'static,
{
    const TAKES_CONTEXT: bool = false;
}

impl<F, Fut, A> Handler<shape::Args<A>> for F
where
    F: Fn(A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
    A: DeserializeOwned + 'static,
{
    fn call(&self, job: Job, _ctx: JobContext) -> JobFuture {
        match decode::<A>(job) {
            Ok(args) => Box::pin(self(args)),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }
}

impl<F, Fut, A> sealed::Sealed<shape::ArgsWithContext<A>> for F
where
    F: Fn(A, JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
    A: DeserializeOwned + 'static,
{
}

impl<F, Fut, A> Handler<shape::ArgsWithContext<A>> for F
where
    F: Fn(A, JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
    A: DeserializeOwned + 'static,
{
    fn call(&self, job: Job, ctx: JobContext) -> JobFuture {
        match decode::<A>(job) {
            Ok(args) => Box::pin(self(args, ctx)),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }
}

/// A blocking job handler, as
/// [`WorkerBuilder::register_blocking`](crate::WorkerBuilder::register_blocking) takes it: the
/// shapes of [`Handler`], returning the result itself instead of a future. It runs on the
/// runtime's blocking threads ([`Runtime::spawn_blocking`]).
///
/// ```no_run
/// use faktory_async::{Job, JobContext, Runtime, Worker};
///
/// fn worker<R: Runtime + Default>() -> faktory_async::WorkerBuilder<R> {
///     Worker::<R>::builder()
///         .register_blocking("Checksum", |(data,): (String,)| {
///             println!("{} bytes", data.len());
///             Ok(())
///         })
///         .register_blocking("Legacy", |job: Job, ctx: JobContext| {
///             println!("{} {:?}", ctx.jid(), job.args);
///             Ok::<(), std::io::Error>(())
///         })
/// }
/// ```
pub trait BlockingHandler<M>: sealed::Sealed<(M, shape::Blocking)> + Send + Sync + 'static {
    #[doc(hidden)]
    fn call(&self, job: Job, ctx: JobContext) -> HandlerResult;
}

impl<F, E> sealed::Sealed<(shape::JobOnly, shape::Blocking)> for F
where
    F: Fn(Job) -> Result<(), E> + Send + Sync + 'static,
    E: Into<BoxError> + 'static,
{
}

impl<F, E> BlockingHandler<shape::JobOnly> for F
where
    F: Fn(Job) -> Result<(), E> + Send + Sync + 'static,
    E: Into<BoxError> + 'static,
{
    fn call(&self, job: Job, _ctx: JobContext) -> HandlerResult {
        self(job).map_err(boxed_handler_error)
    }
}

impl<F, E> sealed::Sealed<(shape::JobWithContext, shape::Blocking)> for F
where
    F: Fn(Job, JobContext) -> Result<(), E> + Send + Sync + 'static,
    E: Into<BoxError> + 'static,
{
}

impl<F, E> BlockingHandler<shape::JobWithContext> for F
where
    F: Fn(Job, JobContext) -> Result<(), E> + Send + Sync + 'static,
    E: Into<BoxError> + 'static,
{
    fn call(&self, job: Job, ctx: JobContext) -> HandlerResult {
        self(job, ctx).map_err(boxed_handler_error)
    }
}

impl<F, A> sealed::Sealed<(shape::Args<A>, shape::Blocking)> for F
where
    F: Fn(A) -> HandlerResult + Send + Sync + 'static,
    A: DeserializeOwned + 'static,
{
}

impl<F, A> BlockingHandler<shape::Args<A>> for F
where
    F: Fn(A) -> HandlerResult + Send + Sync + 'static,
    A: DeserializeOwned + 'static,
{
    fn call(&self, job: Job, _ctx: JobContext) -> HandlerResult {
        self(decode::<A>(job)?)
    }
}

impl<F, A> sealed::Sealed<(shape::ArgsWithContext<A>, shape::Blocking)> for F
where
    F: Fn(A, JobContext) -> HandlerResult + Send + Sync + 'static,
    A: DeserializeOwned + 'static,
{
}

impl<F, A> BlockingHandler<shape::ArgsWithContext<A>> for F
where
    F: Fn(A, JobContext) -> HandlerResult + Send + Sync + 'static,
    A: DeserializeOwned + 'static,
{
    fn call(&self, job: Job, ctx: JobContext) -> HandlerResult {
        self(decode::<A>(job)?, ctx)
    }
}

// -------------------------------------------------------------------------------------------------
// registered handlers, type-erased

/// A registered handler, its shape erased (blocking ones bound to the runtime at build time).
pub(crate) trait Dispatch: Send + Sync + 'static {
    fn call(&self, job: Job, ctx: JobContext) -> JobFuture;

    /// Whether the handler reads the context it is given.
    fn takes_context(&self) -> bool {
        true
    }
}

/// An async handler of shape `M`.
pub(crate) struct AsyncDispatch<H, M>(pub(crate) H, pub(crate) PhantomData<fn() -> M>);

impl<H: Handler<M>, M: 'static> Dispatch for AsyncDispatch<H, M> {
    fn call(&self, job: Job, ctx: JobContext) -> JobFuture {
        self.0.call(job, ctx)
    }

    fn takes_context(&self) -> bool {
        <H as sealed::Sealed<M>>::TAKES_CONTEXT
    }
}

/// A blocking handler, not yet bound to a runtime.
pub(crate) trait UnboundBlocking: Send + Sync + 'static {
    fn call(&self, job: Job, ctx: JobContext) -> HandlerResult;
}

pub(crate) struct BlockingShape<H, M>(pub(crate) H, pub(crate) PhantomData<fn() -> M>);

impl<H: BlockingHandler<M>, M: 'static> UnboundBlocking for BlockingShape<H, M> {
    fn call(&self, job: Job, ctx: JobContext) -> HandlerResult {
        self.0.call(job, ctx)
    }
}

/// A blocking handler on runtime `R`'s blocking threads.
pub(crate) struct BlockingDispatch<R> {
    pub(crate) handler: Arc<dyn UnboundBlocking>,
    pub(crate) rt: R,
}

impl<R: Runtime> Dispatch for BlockingDispatch<R> {
    fn call(&self, job: Job, ctx: JobContext) -> JobFuture {
        let f = Arc::clone(&self.handler);
        let rt = self.rt.clone();
        Box::pin(async move {
            // The panic is caught on the blocking thread and reported like an async handler's.
            let ran = rt
                .spawn_blocking(move || {
                    std::panic::catch_unwind(AssertUnwindSafe(|| f.call(job, ctx)))
                })
                .await;
            match ran {
                Some(Ok(result)) => result,
                Some(Err(payload)) => Err(panic_error(&*payload)),
                None => Err(
                    HandlerError::msg("blocking handler was cancelled by the runtime")
                        .with_errtype("Cancelled"),
                ),
            }
        })
    }
}

/// A handler as registered, before `build` binds the blocking ones to the runtime.
pub(crate) enum Registered {
    Async(Arc<dyn Dispatch>),
    Blocking(Arc<dyn UnboundBlocking>),
}

impl Registered {
    pub(crate) fn bind<R: Runtime>(self, rt: &R) -> Arc<dyn Dispatch> {
        match self {
            Registered::Async(d) => d,
            Registered::Blocking(handler) => Arc::new(BlockingDispatch {
                handler,
                rt: rt.clone(),
            }),
        }
    }
}

/// A panic as a handler error (errtype `panic`), for the middleware around the handler.
fn panic_error(payload: &(dyn Any + Send)) -> HandlerError {
    HandlerError::msg(api::panic_message(payload)).with_errtype(PANIC_ERRTYPE)
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
/// Implement it for a type, or pass a closure `Fn(Job, JobContext, Next) -> impl Future`:
///
/// ```no_run
/// use std::time::Instant;
/// use faktory_async::{HandlerError, HandlerResult, Job, JobContext, Middleware, Next, Runtime, Worker};
///
/// /// Logs how long each job took.
/// struct Timing;
///
/// impl Middleware for Timing {
///     async fn call(&self, job: Job, ctx: JobContext, next: Next) -> HandlerResult {
///         let started = Instant::now();
///         let jobtype = job.jobtype.clone();
///         let result = next.run(job, ctx).await;
///         println!("{jobtype} took {:?} (ok: {})", started.elapsed(), result.is_ok());
///         result
///     }
/// }
///
/// #[derive(Debug)]
/// struct Permanent;
/// # impl std::fmt::Display for Permanent {
/// #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("permanent") }
/// # }
/// # impl std::error::Error for Permanent {}
///
/// fn worker<R: Runtime + Default>() -> faktory_async::WorkerBuilder<R> {
///     Worker::<R>::builder()
///         .middleware(Timing)
///         // A closure: jobs marked `skip` are ACKed without running; a `Permanent` error is
///         // logged and the job discarded (ACKed) instead of retried.
///         .middleware(|job: Job, ctx: JobContext, next: Next| async move {
///             if job.custom_value("skip").is_some() {
///                 return Ok(());
///             }
///             match next.run(job, ctx).await {
///                 Err(e) if e.errtype() == "Permanent" => {
///                     eprintln!("discarding: {e}");
///                     Ok(())
///                 }
///                 other => other,
///             }
///         })
///         .register("Charge", |(amount,): (u32,)| async move {
///             if amount == 0 {
///                 return Err(Permanent.into());
///             }
///             Ok(())
///         })
/// }
/// ```
pub trait Middleware: Send + Sync + 'static {
    /// Runs around the rest of the chain (`next`).
    fn call(
        &self,
        job: Job,
        ctx: JobContext,
        next: Next,
    ) -> impl Future<Output = HandlerResult> + Send;
}

impl<F, Fut> Middleware for F
where
    F: Fn(Job, JobContext, Next) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    fn call(
        &self,
        job: Job,
        ctx: JobContext,
        next: Next,
    ) -> impl Future<Output = HandlerResult> + Send {
        self(job, ctx, next)
    }
}

/// [`Middleware`], object-safe.
pub(crate) trait DynMiddleware: Send + Sync + 'static {
    fn call_boxed<'a>(
        &'a self,
        job: Job,
        ctx: JobContext,
        next: Next,
    ) -> Pin<Box<dyn Future<Output = HandlerResult> + Send + 'a>>;
}

impl<M: Middleware> DynMiddleware for M {
    fn call_boxed<'a>(
        &'a self,
        job: Job,
        ctx: JobContext,
        next: Next,
    ) -> Pin<Box<dyn Future<Output = HandlerResult> + Send + 'a>> {
        Box::pin(self.call(job, ctx, next))
    }
}

/// What runs a job: the middleware, then the handler of its jobtype.
pub(crate) struct Chain {
    pub(crate) layers: Vec<Box<dyn DynMiddleware>>,
    pub(crate) handlers: HashMap<String, Arc<dyn Dispatch>>,
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
    pub async fn run(self, job: Job, ctx: JobContext) -> HandlerResult {
        let Next { chain, index } = self;
        match chain.layers.get(index) {
            Some(layer) => {
                let next = Next {
                    chain: Arc::clone(&chain),
                    index: index + 1,
                };
                layer.call_boxed(job, ctx, next).await
            }
            None => match chain.handlers.get(&job.jobtype) {
                Some(handler) => {
                    let started =
                        std::panic::catch_unwind(AssertUnwindSafe(|| handler.call(job, ctx)));
                    match started {
                        Ok(fut) => match (CatchUnwind { inner: fut }).await {
                            Ok(result) => result,
                            Err(payload) => Err(panic_error(&*payload)),
                        },
                        Err(payload) => Err(panic_error(&*payload)),
                    }
                }
                None => Err(unknown_jobtype(&job.jobtype)),
            },
        }
    }
}

fn unknown_jobtype(jobtype: &str) -> HandlerError {
    HandlerError::msg(format!("no handler registered for jobtype {jobtype:?}"))
        .with_errtype(api::UNKNOWN_JOBTYPE_ERRTYPE)
}

/// Polls a future, catching a panic.
struct CatchUnwind<F> {
    inner: F,
}

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.inner;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(&mut *inner).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// Starts a job: the future of its middleware chain and handler (created, not yet polled), or its
/// outcome when there is nothing to run (no handler for its jobtype, a panic while creating the
/// handler's future). Without middleware that future is the handler's own box: nothing else is
/// allocated.
///
/// `ctx(&job, seen)` makes the job's context; `seen` is `false` when nothing will read it (no
/// middleware, and a handler that takes no context), so it need not be built from the job.
pub(crate) fn start_job(
    chain: &Arc<Chain>,
    job: Job,
    ctx: impl FnOnce(&Job, bool) -> JobContext,
) -> Result<JobFuture, Outcome> {
    if !chain.layers.is_empty() {
        let next = Next {
            chain: Arc::clone(chain),
            index: 0,
        };
        let ctx = ctx(&job, true);
        return Ok(Box::pin(next.run(job, ctx)));
    }
    let Some(handler) = chain.handlers.get(&job.jobtype) else {
        return Err(api::unknown_jobtype_outcome(&job.jobtype));
    };
    let ctx = ctx(&job, handler.takes_context());
    std::panic::catch_unwind(AssertUnwindSafe(|| handler.call(job, ctx)))
        .map_err(|payload| api::panicked_outcome(&*payload))
}

/// Polls a started job once, in place (most jobs finish in their first poll, and need no box of
/// their own then): `Ready` with its outcome, or `Pending` with the future to run on.
pub(crate) fn poll_started(
    started: Result<JobFuture, Outcome>,
    cx: &mut Context<'_>,
) -> Result<Outcome, JobFuture> {
    let mut fut = match started {
        Ok(fut) => fut,
        Err(outcome) => return Ok(outcome),
    };
    match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
        Ok(Poll::Pending) => Err(fut),
        Ok(Poll::Ready(result)) => Ok(api::run_outcome(Ok(result))),
        Err(payload) => Ok(api::run_outcome(Err(payload))),
    }
}

/// Runs a started job to its outcome: `Ok` is ACK, an error its FAIL, a panic a FAIL with errtype
/// `panic`.
pub(crate) async fn finish_job(started: Result<JobFuture, Outcome>) -> Outcome {
    let fut = match started {
        Ok(fut) => fut,
        Err(outcome) => return outcome,
    };
    api::run_outcome((CatchUnwind { inner: fut }).await)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures_lite::future::block_on;
    use serde::Deserialize;
    use serde_json::json;

    use super::*;
    use crate::testrt::TestRt;
    use crate::{Worker, WorkerBuilder};
    use serde_json::Value;

    fn builder() -> WorkerBuilder<TestRt> {
        WorkerBuilder::with_runtime(TestRt::default())
    }

    fn run(worker: &Worker<TestRt>, job: Job) -> Outcome {
        block_on(worker.run_job(job)).outcome
    }

    /// What `start_job` says of the context of a job of `jobtype` on `worker`: whether anything
    /// reads it.
    fn context_seen(worker: &Worker<TestRt>, jobtype: &str) -> bool {
        let mut seen = None;
        let job = Job::with_args(jobtype, ("a",)).unwrap();
        let started = start_job(&worker.chain, job, |job, s| {
            seen = Some(s);
            JobContext::for_test(job)
        });
        assert!(started.is_ok(), "{jobtype} has a handler");
        seen.expect("a context was asked for")
    }

    #[test]
    fn a_context_is_built_from_the_job_only_when_something_reads_it() {
        let worker = builder()
            .register("Job", |_job: Job| async { Ok::<(), BoxError>(()) })
            .register("Args", |(_s,): (String,)| async { Ok(()) })
            .register("JobCtx", |_job: Job, ctx: JobContext| async move {
                assert!(!ctx.jid().is_empty());
                Ok::<(), BoxError>(())
            })
            .register("ArgsCtx", |(_s,): (String,), _ctx: JobContext| async {
                Ok(())
            })
            .register_blocking("Blocking", |_job: Job| Ok::<(), BoxError>(()))
            .build()
            .unwrap();
        assert!(!context_seen(&worker, "Job"));
        assert!(!context_seen(&worker, "Args"));
        assert!(context_seen(&worker, "JobCtx"));
        assert!(context_seen(&worker, "ArgsCtx"));
        assert!(context_seen(&worker, "Blocking"));
        assert_eq!(
            run(&worker, Job::with_args("JobCtx", ("a",)).unwrap()),
            Outcome::Ok
        );
        // With middleware, every context is read (the middleware gets it).
        let worker = builder()
            .middleware(|job: Job, ctx: JobContext, next: Next| next.run(job, ctx))
            .register("Job", |_job: Job| async { Ok::<(), BoxError>(()) })
            .build()
            .unwrap();
        assert!(context_seen(&worker, "Job"));
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

    #[test]
    fn every_handler_shape_registers_and_runs() {
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let (s1, s2, s3, s4, s5, s6) = (
            seen.clone(),
            seen.clone(),
            seen.clone(),
            seen.clone(),
            seen.clone(),
            seen.clone(),
        );
        let worker = builder()
            .register("Job", move |job: Job| {
                let seen = s1.clone();
                async move {
                    seen.lock().unwrap().push(format!("job {}", job.args.len()));
                    Ok::<(), BoxError>(())
                }
            })
            .register("JobCtx", move |job: Job, ctx: JobContext| {
                let seen = s2.clone();
                async move {
                    assert_eq!(ctx.jid(), job.jid);
                    seen.lock().unwrap().push("jobctx".into());
                    Ok::<(), std::io::Error>(())
                }
            })
            .register("Tuple", move |(to, n): (String, u32)| {
                let seen = s3.clone();
                async move {
                    seen.lock().unwrap().push(format!("{to} {n}"));
                    Ok(())
                }
            })
            .register("Struct", move |s: Signup, ctx: JobContext| {
                let seen = s4.clone();
                async move {
                    let _: u16 = "7".parse()?; // `?` on any error
                    seen.lock().unwrap().push(format!(
                        "{} {:?} {}",
                        s.email,
                        s.plan,
                        ctx.jobtype()
                    ));
                    Ok(())
                }
            })
            .register("JobHandlerError", |job: Job| async move {
                // The whole job, and `?` on any error with its exact errtype.
                let _: Vec<Value> = job.args_as()?;
                Ok::<(), HandlerError>(())
            })
            .register("TypedJob", move |args: Vec<Value>| {
                let seen = s5.clone();
                async move {
                    seen.lock()
                        .unwrap()
                        .push(format!("typed {} args", args.len()));
                    Ok(())
                }
            })
            .register_blocking("Blocking", move |(n,): (u8,), ctx: JobContext| {
                s6.lock()
                    .unwrap()
                    .push(format!("blocking {n} {}", ctx.jobtype()));
                Ok(())
            })
            .register_blocking("BlockingJob", |_job: Job| {
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
        assert_eq!(run(&worker, Job::new("TypedJob", vec![])), Outcome::Ok);
        assert_eq!(
            run(&worker, Job::new("Blocking", vec![json!(9)])),
            Outcome::Ok
        );
        let failed = run(&worker, Job::new("BlockingJob", vec![]));
        assert_eq!(errtype(&failed), "io::Error");
        let bad_args = run(&worker, Job::new("Tuple", vec![json!(1)]));
        assert_eq!(errtype(&bad_args), "JobError");
        assert_eq!(
            *seen.lock().unwrap(),
            [
                "job 1",
                "jobctx",
                "ada 3",
                "a@b Some(\"pro\") Struct",
                "typed 0 args",
                "blocking 9 Blocking"
            ]
        );
    }

    #[test]
    fn middleware_runs_in_order_and_can_change_the_job_and_the_result() {
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
        let worker = builder()
            .middleware(move |job: Job, ctx: JobContext, next: Next| {
                let log = l1.clone();
                async move {
                    log.lock().unwrap().push("outer in".into());
                    let r = next.run(job, ctx).await;
                    log.lock().unwrap().push(format!("outer out {}", r.is_ok()));
                    // Permanent errors are discarded (ACKed).
                    match r {
                        Err(e) if e.errtype() == "Permanent" => Ok(()),
                        other => other,
                    }
                }
            })
            .middleware(move |mut job: Job, ctx: JobContext, next: Next| {
                let log = l2.clone();
                async move {
                    log.lock().unwrap().push("inner in".into());
                    if job.custom_value("skip").is_some() {
                        return Ok(()); // short-circuit
                    }
                    job.args.push(json!("added"));
                    next.run(job, ctx).await
                }
            })
            .register("Echo", move |job: Job| {
                let log = l3.clone();
                async move {
                    log.lock().unwrap().push(format!("handler {:?}", job.args));
                    Ok::<(), BoxError>(())
                }
            })
            .register("Permanent", |_args: Vec<Value>| async {
                Err(HandlerError::msg("no such user").with_errtype("Permanent"))
            })
            .register("Retry", |_job: Job| async {
                Err::<(), BoxError>("try later".into())
            })
            .register("Panics", |_job: Job| async {
                panic!("boom");
                #[allow(unreachable_code)]
                Ok::<(), BoxError>(())
            })
            .build()
            .unwrap();
        assert_eq!(run(&worker, Job::new("Echo", vec![])), Outcome::Ok);
        assert_eq!(
            std::mem::take(&mut *log.lock().unwrap()),
            [
                "outer in",
                "inner in",
                "handler [String(\"added\")]",
                "outer out true"
            ]
        );
        let skip = Job::builder("Echo").custom("skip", true).build().unwrap();
        assert_eq!(run(&worker, skip), Outcome::Ok);
        assert_eq!(
            std::mem::take(&mut *log.lock().unwrap()),
            ["outer in", "inner in", "outer out true"]
        );
        // `Permanent` got args [] + "added": `()` does not decode from one arg... so use Retry.
        assert_eq!(
            errtype(&run(&worker, Job::new("Retry", vec![]))),
            "StringError"
        );
        assert_eq!(
            std::mem::take(&mut *log.lock().unwrap()),
            ["outer in", "inner in", "outer out false"]
        );
        let panicked = run(&worker, Job::new("Panics", vec![]));
        assert_eq!(errtype(&panicked), "panic", "{panicked:?}");
        assert_eq!(
            std::mem::take(&mut *log.lock().unwrap()),
            ["outer in", "inner in", "outer out false"],
            "the middleware saw the panic as an error"
        );
        let unknown = run(&worker, Job::new("Nobody", vec![]));
        assert_eq!(errtype(&unknown), "UnknownJobtype");
    }

    #[test]
    fn state_and_pushes_reach_handlers() {
        let worker = builder()
            .state(String::from("hello"))
            .state(7u64)
            .register("Greet", |(name,): (String,), ctx: JobContext| async move {
                let greeting = ctx.state::<String>()?;
                let n = ctx.state::<u64>()?;
                ctx.push(Job::with_args("Print", (format!("{greeting} {name}"), n))?)
                    .await?;
                Ok(())
            })
            .register("NeedsMore", |_job: Job, ctx: JobContext| async move {
                ctx.state::<Vec<u8>>()?;
                Ok::<(), MissingState>(())
            })
            .build()
            .unwrap();
        let run = block_on(worker.run_job(Job::with_args("Greet", ("ada",)).unwrap()));
        assert!(run.is_ok(), "{run:?}");
        assert_eq!(run.pushed.len(), 1);
        assert_eq!(run.pushed[0].args, [json!("hello ada"), json!(7)]);
        let missing = block_on(worker.run_job(Job::new("NeedsMore", vec![]))).outcome;
        assert_eq!(errtype(&missing), "MissingState");
    }

    #[test]
    fn a_test_context_records_pushes_and_carries_state() {
        let job = Job::builder("X").custom("bid", "B1").build().unwrap();
        let ctx = JobContext::for_test(&job).with_state(1u8);
        assert_eq!(ctx.batch_id(), Some("B1"));
        assert_eq!(*ctx.state::<u8>().unwrap(), 1);
        assert!(ctx.state::<u16>().is_err());
        let jid = block_on(ctx.push(Job::new("Y", vec![]))).unwrap();
        assert_eq!(ctx.pushed()[0].jid, jid);
        let mut bad = Job::new("Y", vec![]);
        bad.jid = "short".into();
        assert!(block_on(ctx.push(bad)).is_err());
        assert!(format!("{ctx:?}").contains(&job.jid));
    }
}
