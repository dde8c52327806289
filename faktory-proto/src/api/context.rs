//! What the async and the blocking adapters' clients and job contexts share: the client middleware
//! and what happens to a job before it is pushed ([`PushPrep`]), the worker's shared state by type
//! ([`StateMap`], [`MissingState`]), what a job's context knows of its job ([`JobMeta`]), and what
//! running one job without a server gave ([`JobRun`]).

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::Error;
use crate::Timestamp;
use crate::job::{Job, JobDefaults};
use crate::request::PushBulkPlan;
use crate::worker::Outcome;

/// A client middleware: runs on every job before it is pushed (`push`, `push_bulk`,
/// `push_in_batch`), in the order added with `ClientBuilder::middleware`. It can change the job
/// (add custom fields, set a queue) or refuse it by returning an error: the job is not sent, `push`
/// returns the error, `push_bulk` reports it for that job's jid.
///
/// A closure `Fn(&mut Job) -> Result<(), Error>` is one:
///
/// ```
/// use faktory_proto::api::{ClientMiddleware, Error, PushPrep};
/// use faktory_proto::{Job, Timestamp};
///
/// let request_id = "req-42";
/// let mut prep = PushPrep::default();
/// // Every job carries the request that caused it.
/// prep.add_middleware(move |job: &mut Job| {
///     job.custom
///         .get_or_insert_with(Default::default)
///         .insert("request_id".into(), request_id.into());
///     Ok(())
/// });
/// // Refuse jobs without a queue of their own.
/// prep.add_middleware(|job: &mut Job| match job.queue {
///     Some(_) => Ok(()),
///     None => Err(Error::PushRefused("jobs must name their queue".into())),
/// });
/// let mut job = Job::builder("Mail").queue("mail").build().unwrap();
/// prep.prepare(&mut job, Timestamp::now).unwrap();
/// assert_eq!(job.custom_value("request_id"), Some(&"req-42".into()));
/// assert!(prep.prepare(&mut Job::new("Mail", vec![]), Timestamp::now).is_err());
/// ```
pub trait ClientMiddleware: Send + Sync + 'static {
    /// Looks at `job` before it is pushed, and may change it; an error refuses it.
    fn before_push(&self, job: &mut Job) -> Result<(), Error>;
}

impl<F> ClientMiddleware for F
where
    F: Fn(&mut Job) -> Result<(), Error> + Send + Sync + 'static,
{
    fn before_push(&self, job: &mut Job) -> Result<(), Error> {
        self(job)
    }
}

/// What happens to every job a client pushes, before it is sent: the defaults of its jobtype
/// (`ClientBuilder::job_defaults`), then the [`ClientMiddleware`] in the order added, then its
/// times relative to the push (`JobBuilder::after`, `expires_in`) resolved against now.
#[derive(Clone, Default)]
pub struct PushPrep {
    layers: Vec<Arc<dyn ClientMiddleware>>,
    defaults: HashMap<String, JobDefaults>,
}

impl fmt::Debug for PushPrep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushPrep")
            .field("middleware", &self.layers.len())
            .field("job_defaults", &self.defaults)
            .finish()
    }
}

impl PushPrep {
    /// Adds a middleware after those added before.
    pub fn add_middleware(&mut self, layer: impl ClientMiddleware) {
        self.layers.push(Arc::new(layer));
    }

    /// Gives `jobtype` these defaults (replacing earlier ones for it).
    pub fn set_job_defaults(&mut self, jobtype: impl Into<String>, defaults: JobDefaults) {
        self.defaults.insert(jobtype.into(), defaults);
    }

    /// The jobtype's defaults, the middleware in order, then the times relative to the push
    /// resolved against `now()` (called only for a job that has such times: reading the clock
    /// formats a timestamp).
    pub fn prepare(&self, job: &mut Job, now: impl FnOnce() -> Timestamp) -> Result<(), Error> {
        if let Some(defaults) = self.defaults.get(&job.jobtype) {
            job.apply_defaults(defaults);
        }
        for layer in &self.layers {
            layer.before_push(job)?;
        }
        if job.run_after.is_some() || job.expires_after.is_some() {
            job.resolve_relative(now());
        }
        Ok(())
    }

    /// A bulk push's plan: every job [prepared](PushPrep::prepare), then split into PUSHB
    /// commands ([`PushBulkPlan::new`]); a job the middleware refused is in the plan's `refused`
    /// (jid → error) and not sent.
    pub fn plan_bulk(
        &self,
        jobs: impl IntoIterator<Item = Job>,
        now: impl Fn() -> Timestamp,
    ) -> PushBulkPlan {
        let mut refused = BTreeMap::new();
        let jobs: Vec<Job> = jobs
            .into_iter()
            .filter_map(|mut job| match self.prepare(&mut job, &now) {
                Ok(()) => Some(job),
                Err(e) => {
                    refused.insert(job.jid, e.to_string());
                    None
                }
            })
            .collect();
        let mut plan = PushBulkPlan::new(jobs);
        plan.refused.append(&mut refused);
        plan
    }
}

/// Values given to `WorkerBuilder::state`, by type, shared by every job of a worker.
#[derive(Clone, Default)]
pub struct StateMap(HashMap<TypeId, Arc<dyn Any + Send + Sync>>);

impl fmt::Debug for StateMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateMap")
            .field("values", &self.0.len())
            .finish()
    }
}

impl StateMap {
    /// Keeps `value` as the state of type `T` (replacing an earlier one of that type).
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.0.insert(TypeId::of::<T>(), Arc::new(value));
    }

    /// The state of type `T`, or the error a handler's `?` turns into a FAIL.
    pub fn get<T: Send + Sync + 'static>(&self) -> Result<&T, MissingState> {
        self.0
            .get(&TypeId::of::<T>())
            .and_then(|v| v.downcast_ref::<T>())
            .ok_or(MissingState(std::any::type_name::<T>()))
    }
}

/// A state type the worker was not given (`JobContext::state`). As a handler error, the job is
/// FAILed with errtype `MissingState` (and retried, so a deploy that adds the state fixes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingState(&'static str);

impl fmt::Display for MissingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no state of type {} was given to WorkerBuilder::state",
            self.0
        )
    }
}

impl std::error::Error for MissingState {}

/// What a job's context knows of its job: jid, jobtype, custom fields and batch. Every adapter's
/// `JobContext` dereferences to it, so `ctx.jid()` and `ctx.batch_id()` work on each.
///
/// The default is empty (no jid, no jobtype, no custom fields): what a context that no handler
/// sees is built with.
#[derive(Debug, Clone, Default)]
pub struct JobMeta {
    jid: String,
    jobtype: String,
    custom: Option<Map<String, Value>>,
}

impl JobMeta {
    /// What `job` tells its context.
    pub fn of(job: &Job) -> Self {
        JobMeta {
            jid: job.jid.clone(),
            jobtype: job.jobtype.clone(),
            custom: job.custom.clone(),
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

    /// The batch the job belongs to (Enterprise: its `custom.bid`), if any.
    pub fn batch_id(&self) -> Option<&str> {
        self.custom.as_ref()?.get("bid")?.as_str()
    }
}

/// What a worker's `run_job` did (a job run through the middleware and its handler, with no
/// server): the outcome the worker would report (ACK for [`Outcome::Ok`], FAIL otherwise) and the
/// jobs pushed through `JobContext::push` (recorded, not sent).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct JobRun {
    /// ACK ([`Outcome::Ok`]) or FAIL, with errtype, message and backtrace.
    pub outcome: Outcome,
    /// The jobs the handler (or a middleware) pushed.
    pub pushed: Vec<Job>,
}

impl JobRun {
    /// What a run gave: its outcome and the jobs it pushed.
    pub fn new(outcome: Outcome, pushed: Vec<Job>) -> Self {
        JobRun { outcome, pushed }
    }

    /// Whether the job would be ACKed.
    pub fn is_ok(&self) -> bool {
        self.outcome == Outcome::Ok
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    #[test]
    fn defaults_then_middleware_in_order_then_relative_times() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (first, second) = (Arc::clone(&seen), Arc::clone(&seen));
        let mut prep = PushPrep::default();
        prep.set_job_defaults(
            "Mail",
            JobDefaults::new().queue("mail").retry(3).reserve_for(60),
        );
        prep.add_middleware(move |job: &mut Job| {
            // Sees the defaults already applied.
            first.lock().unwrap().push(format!("first {}", job.queue()));
            job.custom
                .get_or_insert_with(Default::default)
                .insert("request_id".into(), "r1".into());
            Ok(())
        });
        prep.add_middleware(move |job: &mut Job| {
            second
                .lock()
                .unwrap()
                .push(format!("second {:?}", job.custom_value("request_id")));
            Ok(())
        });
        prep.add_middleware(|job: &mut Job| match job.jobtype.as_str() {
            "Forbidden" => Err(Error::PushRefused("forbidden jobtype".into())),
            _ => Ok(()),
        });
        let mut job = Job::builder("Mail")
            .retry(9)
            .after(Duration::from_secs(60))
            .build()
            .unwrap();
        prep.prepare(&mut job, Timestamp::now).unwrap();
        assert_eq!(job.queue(), "mail");
        assert_eq!(
            (job.retry, job.reserve_for),
            (Some(9), Some(60)),
            "the job's own retry wins"
        );
        assert!(job.at.is_some(), "`after` resolved into `at` at push");
        assert_eq!(job.run_after, None);
        assert_eq!(
            *seen.lock().unwrap(),
            ["first mail", "second Some(String(\"r1\"))"]
        );
        let refused = prep.prepare(
            &mut Job::builder("Forbidden").build().unwrap(),
            Timestamp::now,
        );
        assert!(matches!(refused, Err(Error::PushRefused(ref r)) if r == "forbidden jobtype"));
        // A job without relative times never reads the clock.
        let mut other = Job::builder("Other").build().unwrap();
        prep.prepare(&mut other, || unreachable!("no clock read"))
            .unwrap();
        assert_eq!((other.queue(), other.retry), ("default", None));
    }

    #[test]
    fn state_by_type_and_the_missing_state_error() {
        let mut state = StateMap::default();
        state.insert(42u32);
        state.insert("name");
        assert_eq!(*state.get::<u32>().unwrap(), 42);
        assert_eq!(*state.get::<&str>().unwrap(), "name");
        let missing = state.get::<u64>().unwrap_err();
        assert_eq!(
            missing.to_string(),
            "no state of type u64 was given to WorkerBuilder::state"
        );
    }

    #[test]
    fn job_meta_reads_the_batch_from_custom_bid() {
        let job = Job::builder("Signup").custom("bid", "b-1").build().unwrap();
        let meta = JobMeta::of(&job);
        assert_eq!(meta.jid(), job.jid);
        assert_eq!(meta.jobtype(), "Signup");
        assert_eq!(meta.batch_id(), Some("b-1"));
        assert_eq!(JobMeta::of(&Job::new("X", vec![])).batch_id(), None);
    }
}
