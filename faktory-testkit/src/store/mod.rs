//! The server's state and command semantics, as a pure, synchronous machine.
//!
//! [`Store`] does no I/O and never reads a clock: every call takes the current time as a
//! [`UnixTime`]. The network layer ([`crate::TestServer`]) feeds it parsed commands and answers with
//! the [`Reply`] it gets back; tests can also drive it directly.
//!
//! It follows the real Faktory 1.10 (docs/protocol.md, sections *Commands* to *Workers* and
//! *Traps*, and the transcripts in `faktory-proto/tests/data`), quirks included:
//! - PUSH/PUSHB validation in the server's order with its exact texts; PUSHB answers a map of
//!   `jid → message` without the `ERR ` prefix, and duplicate jids collapse.
//! - `retry` missing or null takes the *current* default, and a PUSH carrying `"retry":N` changes that
//!   default for every later job (docs/protocol.md#the-retry-default-leaks; PUSHB reads it but does
//!   not change it).
//! - `total_processed` counts ACKs of reserved jobs *and* failures (as the transcripts show).
//! - FLUSH empties queues, sets, the persisted working set and the counters, while known queue names,
//!   paused flags and in-memory reservations survive (docs/protocol.md#flush).
//! - Periodic tasks (docs/protocol.md#periodic-tasks) run on ticks one second apart, phased on the
//!   start time, each task when `unix_seconds % period == 0`.

mod job;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use faktory_proto::command::{
    Ack, Beat, Command, CommandError, Fail, MutateFilter, MutateOp, MutateTarget, Mutation,
    QueueSelector, WorkerState, job_args_missing,
};
use faktory_proto::handshake::Hello;
use faktory_proto::job::{Job, is_valid_queue_name};
use faktory_proto::time::UnixTime;
use serde_json::Value;

use crate::gojson::{self, ObjectWriter};
use crate::gotime;
use faktory_proto::backoff::SplitMix64 as Rng;

use job::StoredFailure;
pub(crate) use job::StoredJob;

/// The default `retry` of a fresh server.
pub const DEFAULT_RETRY: i64 = 25;
/// Dead jobs are kept this long (180 days).
pub const DEAD_TTL_SECS: i64 = 180 * 24 * 3600;
/// A worker without a BEAT for longer than this is reaped (with all its connections).
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default reservation when a job has no `reserve_for` (30 minutes).
pub const DEFAULT_RESERVE_SECS: i64 = 1800;
/// The version INFO reports.
pub const FAKTORY_VERSION: &str = "1.10.0";
/// The most entries kept in each of the ACK and FAIL logs (oldest dropped first).
pub const LOG_LIMIT: usize = 100_000;

/// A connection, as the store knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// How the `R` of the retry delay (`retry_count⁴ + 15 + R × (retry_count + 1)`) is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryJitter {
    /// Uniform in `0..=29`, from a generator seeded by [`StoreConfig::seed`] (the real server).
    Random,
    /// Always this value (clamped to `0..=29`), for exact schedules in tests.
    Fixed(u32),
}

/// Options of a [`Store`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StoreConfig {
    /// Seed of the retry jitter.
    pub seed: u64,
    /// How the retry jitter is drawn.
    pub jitter: RetryJitter,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            seed: 0x5EED_FA17_0000_0001,
            jitter: RetryJitter::Random,
        }
    }
}

/// What to answer a command with.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reply {
    /// `+OK`.
    Ok,
    /// `-ERR <message>`.
    Error(String),
    /// A bulk string.
    Bulk(Vec<u8>),
    /// `$-1`.
    Null,
    /// No reply: close the connection (END).
    Close,
}

/// The result of executing a command.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Answer now.
    Reply(Reply),
    /// A FETCH found nothing: wait for a push (retrying [`Store::try_fetch`]) until the block timeout,
    /// then answer `$-1`.
    Block(FetchWait),
}

/// A blocked FETCH.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchWait {
    /// The unpaused queues, in priority order; empty when nothing can be fetched (quiet worker, all
    /// queues paused): the FETCH then only waits for the timeout.
    pub queues: Vec<String>,
}

/// A job in the scheduled, retry or dead set.
#[derive(Clone, Debug, PartialEq)]
pub struct SetEntry {
    /// Its score: when it is due (scheduled, retries) or purged (dead).
    pub at: UnixTime,
    /// The job as a client would fetch it.
    pub job: Job,
}

/// A reserved job.
#[derive(Clone, Debug, PartialEq)]
pub struct ReservationInfo {
    /// The job.
    pub job: Job,
    /// The worker it was fetched for (empty for a producer connection).
    pub wid: String,
    /// When it was fetched.
    pub reserved_at: UnixTime,
    /// When the reservation expires.
    pub expires_at: UnixTime,
    /// `false` once a FLUSH removed it from the persisted working set: it then never expires.
    pub persisted: bool,
}

/// A worker record.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerInfo {
    /// The worker id.
    pub wid: String,
    /// Running, quiet or terminate (sticky, monotonic).
    pub state: WorkerState,
    /// The last BEAT (or the first HELLO).
    pub last_beat: UnixTime,
    /// From the first HELLO.
    pub hostname: Option<String>,
    /// From the first HELLO.
    pub pid: Option<u32>,
    /// From the first HELLO.
    pub labels: Vec<String>,
    /// From the last BEAT (0 when it had none).
    pub rss_kb: u64,
    /// The connections attached to it.
    pub connections: Vec<ConnId>,
    /// The connection whose HELLO created the record (the only one the server refuses FETCH to when quiet).
    pub creator: ConnId,
}

/// One ACK, as logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckRecord {
    /// The acknowledged jid.
    pub jid: String,
    /// Whether a reservation existed (the server answers `+OK` either way).
    pub known: bool,
    /// When.
    pub at: UnixTime,
}

/// Why a job failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailReason {
    /// A FAIL command.
    Fail,
    /// The reservation expired.
    ReservationExpired,
}

/// Where a failed job went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailOutcome {
    /// Into the retry set, due at this time.
    Retry(UnixTime),
    /// Into the dead set.
    Dead,
    /// Discarded (`retry: 0`).
    Discarded,
    /// The reservation had been flushed: nothing happened.
    Ignored,
}

/// One failure, as logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailRecord {
    /// The failed jid.
    pub jid: String,
    /// The error type, as stored (trimmed, cut to 100 bytes).
    pub errtype: String,
    /// The message, as stored (trimmed, cut to 1000 bytes).
    pub message: String,
    /// The backtrace, as stored (at most 50 lines).
    pub backtrace: Vec<String>,
    /// FAIL or expiry.
    pub reason: FailReason,
    /// What happened to the job.
    pub outcome: FailOutcome,
    /// When.
    pub at: UnixTime,
}

/// Why a job could not be loaded or pushed (the server's message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushError(pub String);

impl std::fmt::Display for PushError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PushError {}

#[derive(Clone, Debug)]
struct Reservation {
    job: StoredJob,
    wid: String,
    since: UnixTime,
    expiry: UnixTime,
    persisted: bool,
}

#[derive(Clone, Debug)]
struct WorkerRecord {
    state: WorkerState,
    last_beat: UnixTime,
    hostname: Option<String>,
    pid: Option<u32>,
    labels: Vec<String>,
    rss_kb: u64,
    conns: BTreeSet<ConnId>,
    creator: ConnId,
}

#[derive(Clone, Debug, Default)]
struct ConnRecord {
    wid: Option<String>,
}

/// A sorted set of jobs (scheduled, retries, dead), ties kept in insertion order.
#[derive(Clone, Debug, Default)]
struct SortedSet {
    seq: u64,
    entries: BTreeMap<(i128, u64), StoredJob>,
}

impl SortedSet {
    fn insert(&mut self, at: UnixTime, job: StoredJob) {
        self.seq += 1;
        self.entries.insert((gotime::to_nanos(at), self.seq), job);
    }
    fn len(&self) -> usize {
        self.entries.len()
    }
    fn clear(&mut self) {
        self.entries.clear();
    }
    fn pop_due(&mut self, now: UnixTime) -> Option<StoredJob> {
        let key = *self.entries.keys().next()?;
        if key.0 <= gotime::to_nanos(now) {
            self.entries.remove(&key)
        } else {
            None
        }
    }
    fn list(&self) -> Vec<SetEntry> {
        self.entries
            .iter()
            .map(|(k, j)| SetEntry {
                at: gotime::from_nanos(k.0),
                job: j.to_job(),
            })
            .collect()
    }
    fn bytes(&self) -> usize {
        self.entries.values().map(StoredJob::approx_size).sum()
    }
}

#[derive(Clone, Debug, Default)]
struct SetTaskStats {
    cycles: u64,
    enqueued: u64,
}

#[derive(Clone, Debug, Default)]
struct Stats {
    commands: u64,
    scheduled: SetTaskStats,
    retries: SetTaskStats,
    dead: SetTaskStats,
    busy_reaped: u64,
    workers_reaped: u64,
}

/// The state of a Faktory server: queues, sets, reservations, workers, counters.
#[derive(Debug)]
pub struct Store {
    config: StoreConfig,
    rng: Rng,
    started_at: UnixTime,
    next_tick: UnixTime,
    // "Redis": survives restart, FLUSH empties it.
    queues: BTreeMap<String, VecDeque<StoredJob>>,
    known_persisted: BTreeSet<String>,
    paused_persisted: BTreeSet<String>,
    scheduled: SortedSet,
    retries: SortedSet,
    dead: SortedSet,
    processed: u64,
    failures: u64,
    // In memory: FLUSH leaves it, restart resets it.
    known: BTreeSet<String>,
    paused: BTreeSet<String>,
    reservations: HashMap<String, Reservation>,
    workers: BTreeMap<String, WorkerRecord>,
    conns: BTreeMap<ConnId, ConnRecord>,
    next_conn: u64,
    default_retry: i64,
    stats: Stats,
    enqueue_count: u64,
    // Test logs.
    acks: VecDeque<AckRecord>,
    fails: VecDeque<FailRecord>,
}

fn push_bounded<T>(log: &mut VecDeque<T>, item: T) {
    if log.len() >= LOG_LIMIT {
        log.pop_front();
    }
    log.push_back(item);
}

/// Cuts `s` to at most `max` bytes like Go's `s[0:max]`; the bytes of a character split by the cut
/// each become U+FFFD, which is what a client sees once the server re-encodes the job.
fn cut_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = s.get(..end).unwrap_or_default().to_owned();
    for _ in end..max {
        out.push('\u{fffd}');
    }
    out
}

fn state_reply(state: WorkerState) -> Reply {
    match state {
        WorkerState::Running => Reply::Ok,
        other => Reply::Bulk(format!("{{\"state\":\"{}\"}}", other.as_str()).into_bytes()),
    }
}

impl Store {
    /// A fresh server started at `now`.
    pub fn new(config: StoreConfig, now: UnixTime) -> Self {
        let rng = Rng::new(config.seed);
        Store {
            config,
            rng,
            started_at: now,
            next_tick: gotime::add_secs(now, 1),
            queues: BTreeMap::new(),
            known_persisted: BTreeSet::new(),
            paused_persisted: BTreeSet::new(),
            scheduled: SortedSet::default(),
            retries: SortedSet::default(),
            dead: SortedSet::default(),
            processed: 0,
            failures: 0,
            known: BTreeSet::new(),
            paused: BTreeSet::new(),
            reservations: HashMap::new(),
            workers: BTreeMap::new(),
            conns: BTreeMap::new(),
            next_conn: 1,
            default_retry: DEFAULT_RETRY,
            stats: Stats::default(),
            enqueue_count: 0,
            acks: VecDeque::new(),
            fails: VecDeque::new(),
        }
    }

    /// Restarts the server at `now`, keeping what Faktory keeps in Redis: queues, sets, counters,
    /// paused flags and persisted reservations survive; connections, worker records, in-memory-only
    /// reservations, task statistics, the command count and the leaked `retry` default do not.
    pub fn restart(&mut self, now: UnixTime) {
        self.conns.clear();
        self.workers.clear();
        self.reservations.retain(|_, r| r.persisted);
        self.known = self.known_persisted.clone();
        self.paused = self.paused_persisted.clone();
        self.default_retry = DEFAULT_RETRY;
        self.stats = Stats::default();
        self.started_at = now;
        self.next_tick = gotime::add_secs(now, 1);
    }

    /// When the server (last) started.
    pub fn started_at(&self) -> UnixTime {
        self.started_at
    }

    /// Increases every time a job lands on a queue (blocked FETCHes should retry).
    pub fn enqueue_count(&self) -> u64 {
        self.enqueue_count
    }

    // ----------------------------------------------------------------------------------------------
    // connections and workers

    /// A connection was accepted.
    pub fn connect(&mut self) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        self.conns.insert(id, ConnRecord::default());
        id
    }

    /// The connection's HELLO succeeded: a non-empty `wid` registers it with that worker record
    /// (created, with `hostname`/`pid`/`labels` and a first heartbeat, if it does not exist).
    pub fn hello(&mut self, conn: ConnId, hello: &Hello, now: UnixTime) {
        let wid = hello.wid.clone().filter(|w| !w.is_empty());
        if let Some(rec) = self.conns.get_mut(&conn) {
            rec.wid.clone_from(&wid);
        } else {
            return;
        }
        if let Some(wid) = wid {
            let w = self.workers.entry(wid).or_insert_with(|| WorkerRecord {
                state: WorkerState::Running,
                last_beat: now,
                hostname: hello.hostname.clone(),
                pid: hello.pid,
                labels: hello.labels.clone().unwrap_or_default(),
                rss_kb: 0,
                conns: BTreeSet::new(),
                creator: conn,
            });
            w.conns.insert(conn);
        }
    }

    /// The connection closed (any reason). The last connection of a worker deletes its record.
    pub fn disconnect(&mut self, conn: ConnId) {
        let Some(rec) = self.conns.remove(&conn) else {
            return;
        };
        if let Some(wid) = rec.wid {
            let empty = match self.workers.get_mut(&wid) {
                Some(w) => {
                    w.conns.remove(&conn);
                    w.conns.is_empty()
                }
                None => false,
            };
            if empty {
                self.workers.remove(&wid);
            }
        }
    }

    /// Live connections.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Whether the connection is still registered (reaping removes connections at once).
    pub fn is_connected(&self, conn: ConnId) -> bool {
        self.conns.contains_key(&conn)
    }

    /// The wid a connection gave in its HELLO.
    pub fn connection_wid(&self, conn: ConnId) -> Option<&str> {
        self.conns.get(&conn).and_then(|c| c.wid.as_deref())
    }

    /// Makes a worker quiet, as the operator's "Quiet" button does. `false` if no such worker.
    pub fn quiet(&mut self, wid: &str) -> bool {
        match self.workers.get_mut(wid) {
            Some(w) => {
                if w.state == WorkerState::Running {
                    w.state = WorkerState::Quiet;
                }
                true
            }
            None => false,
        }
    }

    /// Makes a worker terminate, as the operator's "Stop" button does. `false` if no such worker.
    pub fn terminate(&mut self, wid: &str) -> bool {
        match self.workers.get_mut(wid) {
            Some(w) => {
                w.state = WorkerState::Terminate;
                true
            }
            None => false,
        }
    }

    /// Every worker record.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        self.workers
            .iter()
            .map(|(wid, w)| WorkerInfo {
                wid: wid.clone(),
                state: w.state,
                last_beat: w.last_beat,
                hostname: w.hostname.clone(),
                pid: w.pid,
                labels: w.labels.clone(),
                rss_kb: w.rss_kb,
                connections: w.conns.iter().copied().collect(),
                creator: w.creator,
            })
            .collect()
    }

    /// One worker record.
    pub fn worker(&self, wid: &str) -> Option<WorkerInfo> {
        self.workers().into_iter().find(|w| w.wid == wid)
    }

    // ----------------------------------------------------------------------------------------------
    // commands

    /// A line the parser rejected: counts as a command (unless the verb is unknown) and gives the text
    /// to answer after `-ERR `.
    pub fn invalid(&mut self, err: &CommandError) -> String {
        if !matches!(err, CommandError::UnknownCommand(_)) {
            self.stats.commands += 1;
        }
        err.to_string()
    }

    /// Counts an END (the connection machine closes on it without handing it out as a command).
    pub fn note_end(&mut self) {
        self.stats.commands += 1;
    }

    /// Executes one command from `conn`.
    pub fn execute(&mut self, conn: ConnId, cmd: Command, now: UnixTime) -> Outcome {
        if matches!(cmd, Command::Hello(_)) {
            // Only valid as the handshake; not a known verb afterwards (and not counted).
            return Outcome::Reply(Reply::Error("unknown command HELLO".to_owned()));
        }
        self.stats.commands += 1;
        let reply = match cmd {
            Command::End => Reply::Close,
            Command::Flush => {
                self.flush();
                Reply::Ok
            }
            Command::Info => Reply::Bulk(self.info_json(now).into_bytes()),
            Command::Push(job) => match self.push_command(*job, now) {
                Ok(()) => Reply::Ok,
                Err(e) => Reply::Error(e),
            },
            Command::PushBulk(jobs) => Reply::Bulk(self.push_bulk(jobs, now).into_bytes()),
            Command::Fetch(queues) => return self.fetch(conn, &queues, now),
            Command::Ack(Ack { jid }) => {
                self.ack(&jid, now);
                Reply::Ok
            }
            Command::Fail(f) => match self.fail(f, now) {
                Ok(()) => Reply::Ok,
                Err(e) => Reply::Error(e),
            },
            Command::Beat(b) => self.beat(&b, now),
            Command::QueuePause(sel) => {
                for q in self.select(&sel) {
                    self.paused.insert(q.clone());
                    self.paused_persisted.insert(q);
                }
                Reply::Ok
            }
            Command::QueueResume(sel) => {
                for q in self.select(&sel) {
                    self.paused.remove(&q);
                    self.paused_persisted.remove(&q);
                }
                Reply::Ok
            }
            Command::QueueRemove(sel) => {
                for q in self.select(&sel) {
                    self.remove_queue(&q);
                }
                Reply::Ok
            }
            Command::QueueLatency(names) => match self.latency(&names, now) {
                Ok(body) => Reply::Bulk(body.into_bytes()),
                Err(e) => Reply::Error(e),
            },
            Command::Mutate(m) => {
                self.mutate(&m, now);
                Reply::Ok
            }
            Command::BatchNew(_)
            | Command::BatchOpen(_)
            | Command::BatchCommit(_)
            | Command::BatchStatus(_) => {
                Reply::Error(CommandError::BatchEnterpriseOnly.to_string())
            }
            Command::TrackSet(_) | Command::TrackGet(_) => {
                Reply::Error(CommandError::TrackEnterpriseOnly.to_string())
            }
            other => Reply::Error(format!("unknown command {}", other.verb())),
        };
        Outcome::Reply(reply)
    }

    fn select(&self, sel: &QueueSelector) -> Vec<String> {
        match sel {
            QueueSelector::All => self.known.iter().cloned().collect(),
            QueueSelector::Names(names) => names
                .iter()
                .filter(|n| self.known.contains(*n))
                .cloned()
                .collect(),
        }
    }

    fn remove_queue(&mut self, q: &str) {
        self.queues.remove(q);
        self.known.remove(q);
        self.known_persisted.remove(q);
        self.paused.remove(q);
        self.paused_persisted.remove(q);
    }

    /// FLUSH: everything "in Redis" goes; known queue names, paused flags and in-memory reservations
    /// stay (docs/protocol.md#flush).
    pub fn flush(&mut self) {
        self.queues.clear();
        self.known_persisted.clear();
        self.paused_persisted.clear();
        self.scheduled.clear();
        self.retries.clear();
        self.dead.clear();
        self.processed = 0;
        self.failures = 0;
        for r in self.reservations.values_mut() {
            r.persisted = false;
        }
    }

    fn push_command(&mut self, job: Job, now: UnixTime) -> Result<(), String> {
        // docs/protocol.md#the-retry-default-leaks: the decoder writes an explicit retry through
        // the pointer to the global default.
        if let Some(r) = job.retry {
            self.default_retry = r;
        }
        self.push_job(job, None, now)
    }

    fn push_bulk(&mut self, jobs: Vec<Job>, now: UnixTime) -> String {
        let created = gotime::format(now);
        let mut errors: BTreeMap<String, String> = BTreeMap::new();
        for job in jobs {
            let jid = job.jid.clone();
            if let Err(e) = self.push_job(job, Some(&created), now) {
                errors.insert(jid, e);
            }
        }
        let mut out = String::new();
        let map: serde_json::Map<String, Value> = errors
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        gojson::write_map(&mut out, map.iter());
        out
    }

    /// The server's push path (validation in order, then schedule or enqueue).
    fn push_job(
        &mut self,
        job: Job,
        created_at: Option<&str>,
        now: UnixTime,
    ) -> Result<(), String> {
        let args_missing = job_args_missing(&job);
        let mut job = StoredJob::from_job(job);
        if job.retry.is_none() {
            job.retry = Some(self.default_retry);
        }
        if job.jid.len() < 8 {
            return Err("jobs must have a reasonable jid parameter".to_owned());
        }
        if job.jobtype.is_empty() {
            return Err("jobs must have a jobtype parameter".to_owned());
        }
        if args_missing {
            return Err("jobs must have an args parameter".to_owned());
        }
        if job.reserve_for > faktory_proto::job::MAX_RESERVE_FOR {
            return Err("jobs cannot be reserved for more than one day".to_owned());
        }
        if job.created_at.is_empty() {
            job.created_at = created_at.map_or_else(|| gotime::format(now), str::to_owned);
        }
        if job.queue.is_empty() {
            job.queue = faktory_proto::job::DEFAULT_QUEUE.to_owned();
        }
        if !job.at.is_empty() {
            let t = gotime::parse_rfc3339_go(&job.at).map_err(|e| {
                format!(
                    "invalid timestamp for 'at': {}: {}",
                    gotime::go_quote(&job.at),
                    e
                )
            })?;
            if gotime::to_nanos(t) > gotime::to_nanos(now) {
                // The queue name is not validated here (docs/protocol.md#push, step 10).
                self.scheduled.insert(t, job);
                return Ok(());
            }
        }
        self.enqueue(job, now, true)
    }

    fn ensure_known(&mut self, q: &str) {
        if !self.known.contains(q) {
            self.known.insert(q.to_owned());
        }
        if !self.known_persisted.contains(q) {
            self.known_persisted.insert(q.to_owned());
        }
    }

    fn enqueue(&mut self, mut job: StoredJob, now: UnixTime, refresh: bool) -> Result<(), String> {
        if !is_valid_queue_name(&job.queue) {
            return Err(format!(
                "cannot get {} queue: queue names must match \\A[a-zA-Z0-9._-]+\\z",
                gotime::go_quote(&job.queue)
            ));
        }
        let q = job.queue.clone();
        self.ensure_known(&q);
        if refresh {
            job.enqueued_at = gotime::format(now);
        }
        self.queues.entry(q).or_default().push_back(job);
        self.enqueue_count += 1;
        Ok(())
    }

    fn fetch(&mut self, conn: ConnId, queues: &[String], now: UnixTime) -> Outcome {
        if queues.is_empty() {
            return Outcome::Reply(Reply::Error(CommandError::FetchWithoutQueue.to_string()));
        }
        // The quiet flag lives on the record the connection's own HELLO created
        // (docs/protocol.md#quiet-is-enforced-on-one-connection-only).
        if let Some(wid) = self.connection_wid(conn) {
            if let Some(w) = self.workers.get(wid) {
                if w.creator == conn && w.state != WorkerState::Running {
                    return Outcome::Block(FetchWait { queues: Vec::new() });
                }
            }
        }
        let active: Vec<String> = queues
            .iter()
            .filter(|q| !self.paused.contains(*q))
            .cloned()
            .collect();
        let wait = FetchWait { queues: active };
        match self.try_fetch(conn, &wait, now) {
            Some(body) => Outcome::Reply(Reply::Bulk(body)),
            None => Outcome::Block(wait),
        }
    }

    /// Retries a blocked FETCH: pops from the first non-empty queue and reserves the job.
    pub fn try_fetch(&mut self, conn: ConnId, wait: &FetchWait, now: UnixTime) -> Option<Vec<u8>> {
        for q in &wait.queues {
            let job = self.queues.get_mut(q).and_then(VecDeque::pop_front);
            if let Some(job) = job {
                let body = job.to_go_json().into_bytes();
                let wid = self.connection_wid(conn).unwrap_or_default().to_owned();
                self.reserve(wid, job, now);
                return Some(body);
            }
        }
        None
    }

    fn reserve(&mut self, wid: String, job: StoredJob, now: UnixTime) {
        let secs = match job.reserve_for {
            0 => DEFAULT_RESERVE_SECS,
            r => r.clamp(60, faktory_proto::job::MAX_RESERVE_FOR),
        };
        let expiry = gotime::add_secs(now, secs);
        self.reservations.insert(
            job.jid.clone(),
            Reservation {
                job,
                wid,
                since: now,
                expiry,
                persisted: true,
            },
        );
    }

    fn ack(&mut self, jid: &str, now: UnixTime) {
        let known = self.reservations.remove(jid).is_some();
        if known {
            self.processed += 1;
        }
        push_bounded(
            &mut self.acks,
            AckRecord {
                jid: jid.to_owned(),
                known,
                at: now,
            },
        );
    }

    fn fail(&mut self, f: Fail, now: UnixTime) -> Result<(), String> {
        if f.jid.is_empty() {
            return Err(CommandError::MissingJid.to_string());
        }
        let errtype = match f.errtype.trim() {
            "" => "unknown".to_owned(),
            t => cut_bytes(t, 100),
        };
        let message = match f.message.trim() {
            "" => "unknown".to_owned(),
            m => cut_bytes(m, 1000),
        };
        let mut backtrace = f.backtrace;
        backtrace.truncate(50);
        let Some(res) = self.reservations.remove(&f.jid) else {
            return Err(format!("Job not found {}", f.jid));
        };
        let outcome = if res.persisted {
            self.process_failure(res.job, &errtype, &message, backtrace.clone(), now)
        } else {
            FailOutcome::Ignored
        };
        push_bounded(
            &mut self.fails,
            FailRecord {
                jid: f.jid,
                errtype,
                message,
                backtrace,
                reason: FailReason::Fail,
                outcome,
                at: now,
            },
        );
        Ok(())
    }

    /// The retry decision (docs/protocol.md#retries-and-the-dead-set).
    fn process_failure(
        &mut self,
        mut job: StoredJob,
        errtype: &str,
        message: &str,
        backtrace: Vec<String>,
        now: UnixTime,
    ) -> FailOutcome {
        self.failures += 1;
        self.processed += 1;
        let retry = *job.retry.get_or_insert(self.default_retry);
        let failure = match job.failure.take() {
            Some(mut f) => {
                f.retry_count = f.retry_count.saturating_add(1);
                if f.remaining > 0 {
                    f.remaining -= 1;
                }
                f.message = message.to_owned();
                f.errtype = errtype.to_owned();
                f.backtrace = backtrace;
                f
            }
            None => StoredFailure {
                retry_count: 0,
                remaining: retry,
                failed_at: gotime::format(now),
                next_at: String::new(),
                message: message.to_owned(),
                errtype: errtype.to_owned(),
                backtrace,
            },
        };
        let count = failure.retry_count;
        job.failure = Some(failure);
        if retry == 0 {
            return FailOutcome::Discarded;
        }
        if count < retry {
            let r = match self.config.jitter {
                RetryJitter::Random => i128::from(self.rng.below(30)),
                RetryJitter::Fixed(n) => i128::from(n.min(29)),
            };
            let c = i128::from(count);
            let secs = c.saturating_mul(c).saturating_mul(c).saturating_mul(c) + 15 + r * (c + 1);
            let secs = i64::try_from(secs).unwrap_or(i64::MAX / 2);
            let when = gotime::add_secs(now, secs);
            if let Some(f) = job.failure.as_mut() {
                f.next_at = gotime::format(when);
            }
            self.retries.insert(when, job);
            FailOutcome::Retry(when)
        } else {
            self.dead.insert(gotime::add_secs(now, DEAD_TTL_SECS), job);
            FailOutcome::Dead
        }
    }

    fn beat(&mut self, b: &Beat, now: UnixTime) -> Reply {
        let Some(w) = self.workers.get_mut(&b.wid) else {
            return Reply::Error(format!("unknown worker {}", b.wid));
        };
        w.last_beat = now;
        w.rss_kb = b.rss_kb.unwrap_or(0);
        match b.current_state {
            Some(WorkerState::Quiet) if w.state == WorkerState::Running => {
                w.state = WorkerState::Quiet;
            }
            Some(WorkerState::Terminate) => w.state = WorkerState::Terminate,
            _ => {}
        }
        state_reply(w.state)
    }

    fn latency(&self, names: &[String], now: UnixTime) -> Result<String, String> {
        let mut out = String::from("{");
        let uniq: BTreeSet<&String> = names.iter().collect();
        for (i, name) in uniq.into_iter().enumerate() {
            let secs = match self.queues.get(name).and_then(VecDeque::front) {
                Some(job) => {
                    let t = gotime::parse_rfc3339_go(&job.enqueued_at)
                        .map_err(|e| format!("QUEUE: {e}"))?;
                    gotime::seconds_between(now, t)
                }
                None => 0.0,
            };
            if i > 0 {
                out.push(',');
            }
            gojson::write_str(&mut out, name);
            out.push(':');
            out.push_str(&gojson::format_f64(secs));
        }
        out.push('}');
        Ok(out)
    }

    fn mutate(&mut self, m: &Mutation, now: UnixTime) {
        let set = match m.target {
            MutateTarget::Retries => &mut self.retries,
            MutateTarget::Scheduled => &mut self.scheduled,
            MutateTarget::Dead => &mut self.dead,
        };
        if m.cmd == MutateOp::Clear || (m.cmd == MutateOp::Discard && m.filter.is_none()) {
            set.clear();
            return;
        }
        let filter = m.filter.clone().unwrap_or_default();
        let keys: Vec<(i128, u64)> = set
            .entries
            .iter()
            .filter(|(_, j)| filter_matches(&filter, &j.to_go_json()))
            .map(|(k, _)| *k)
            .collect();
        let mut taken = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(j) = set.entries.remove(&k) {
                taken.push(j);
            }
        }
        match m.cmd {
            MutateOp::Kill => {
                for j in taken {
                    self.dead.insert(gotime::add_secs(now, DEAD_TTL_SECS), j);
                }
            }
            MutateOp::Requeue => {
                for j in taken {
                    // Unchanged: enqueued_at is not refreshed. An invalid queue name loses the job.
                    let _ = self.enqueue(j, now, false);
                }
            }
            _ => {}
        }
    }

    // ----------------------------------------------------------------------------------------------
    // periodic tasks

    /// When the next periodic tick is due (ticks are one second apart, phased on the start time; only
    /// those on a multiple of 5 s run anything).
    pub fn next_tick(&mut self) -> UnixTime {
        let rem = self.next_tick.secs.rem_euclid(5);
        if rem != 0 {
            self.next_tick.secs += 5 - rem;
        }
        self.next_tick
    }

    /// Runs every periodic tick due up to `now`. Returns the connections to close (reaped workers').
    pub fn advance(&mut self, now: UnixTime) -> Vec<ConnId> {
        let mut closed = Vec::new();
        let now_n = gotime::to_nanos(now);
        loop {
            let t = self.next_tick();
            let t_n = gotime::to_nanos(t);
            if t_n > now_n {
                break;
            }
            // Ticks strictly before the next event only count cycles: skip them in bulk.
            let limit = self.earliest_event().map_or(now_n, |e| now_n.min(e - 1));
            if t_n < limit {
                let n = i64::try_from((limit - t_n) / (5 * 1_000_000_000)).unwrap_or(i64::MAX / 10);
                if n > 1 {
                    self.count_idle_ticks(t.secs, n);
                    self.next_tick.secs += 5 * n;
                    continue;
                }
            }
            closed.extend(self.run_tick(t));
            self.next_tick.secs += 5;
        }
        closed
    }

    /// The earliest time at which a periodic task would change something.
    fn earliest_event(&self) -> Option<i128> {
        let first = |s: &SortedSet| s.entries.keys().next().map(|k| k.0);
        let expiry = self
            .reservations
            .values()
            .filter(|r| r.persisted)
            .map(|r| gotime::to_nanos(r.expiry))
            .min();
        let beat = self
            .workers
            .values()
            .map(|w| gotime::to_nanos(w.last_beat) + HEARTBEAT_TIMEOUT.as_nanos() as i128 + 1)
            .min();
        [
            first(&self.scheduled),
            first(&self.retries),
            first(&self.dead),
            expiry,
            beat,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Accounts for `n` idle ticks at `first, first + 5, …` (all multiples of 5 s).
    fn count_idle_ticks(&mut self, first: i64, n: i64) {
        let n_u = u64::try_from(n).unwrap_or(0);
        self.stats.scheduled.cycles += n_u;
        self.stats.retries.cycles += n_u;
        let last = first + 5 * (n - 1);
        let x0 = first + (60 - first.rem_euclid(60)) % 60;
        if x0 <= last {
            self.stats.dead.cycles += u64::try_from((last - x0) / 60 + 1).unwrap_or(0);
        }
    }

    fn run_tick(&mut self, t: UnixTime) -> Vec<ConnId> {
        let s = t.secs;
        let mut closed = Vec::new();
        if s.rem_euclid(5) == 0 {
            self.stats.scheduled.cycles += 1;
            while let Some(job) = self.scheduled.pop_due(t) {
                // A bad queue name loses the job silently
                // (docs/protocol.md#scheduled-jobs-with-bad-queue-names-vanish).
                if self.enqueue(job, t, true).is_ok() {
                    self.stats.scheduled.enqueued += 1;
                }
            }
            self.stats.retries.cycles += 1;
            while let Some(job) = self.retries.pop_due(t) {
                if self.enqueue(job, t, true).is_ok() {
                    self.stats.retries.enqueued += 1;
                }
            }
        }
        if s.rem_euclid(60) == 0 {
            self.stats.dead.cycles += 1;
            for _ in 0..100 {
                if self.dead.pop_due(t).is_none() {
                    break;
                }
                self.stats.dead.enqueued += 1;
            }
        }
        if s.rem_euclid(15) == 0 {
            self.expire_reservations(t);
            closed = self.reap_workers(t);
        }
        closed
    }

    fn expire_reservations(&mut self, t: UnixTime) {
        let now = gotime::to_nanos(t);
        let mut due: Vec<(i128, String)> = self
            .reservations
            .iter()
            .filter(|(_, r)| r.persisted && gotime::to_nanos(r.expiry) <= now)
            .map(|(jid, r)| (gotime::to_nanos(r.expiry), jid.clone()))
            .collect();
        due.sort();
        for (_, jid) in due {
            if let Some(res) = self.reservations.remove(&jid) {
                self.stats.busy_reaped += 1;
                let errtype = "ReservationExpired";
                let message = "Faktory job reservation expired";
                let outcome = self.process_failure(res.job, errtype, message, Vec::new(), t);
                push_bounded(
                    &mut self.fails,
                    FailRecord {
                        jid,
                        errtype: errtype.to_owned(),
                        message: message.to_owned(),
                        backtrace: Vec::new(),
                        reason: FailReason::ReservationExpired,
                        outcome,
                        at: t,
                    },
                );
            }
        }
    }

    fn reap_workers(&mut self, t: UnixTime) -> Vec<ConnId> {
        let dead: Vec<String> = self
            .workers
            .iter()
            .filter(|(_, w)| gotime::since(t, w.last_beat) > HEARTBEAT_TIMEOUT)
            .map(|(wid, _)| wid.clone())
            .collect();
        let mut closed = Vec::new();
        for wid in dead {
            if let Some(w) = self.workers.remove(&wid) {
                self.stats.workers_reaped += 1;
                for c in w.conns {
                    self.conns.remove(&c);
                    closed.push(c);
                }
            }
        }
        closed
    }

    // ----------------------------------------------------------------------------------------------
    // INFO

    /// The INFO document, shaped like the real server's (four top-level keys; `tasks` as in 1.10;
    /// `wall_time_sec` is always 0 here).
    pub fn info_json(&self, now: UnixTime) -> String {
        let mut out = String::with_capacity(700);
        let mut top = ObjectWriter::new(&mut out);
        top.str("now", &gotime::format(now));
        top.str("server_utc_time", &gotime::format_hms(now));

        let mut fk = String::new();
        let mut f = ObjectWriter::new(&mut fk);
        let mut queues = String::new();
        let mut qw = ObjectWriter::new(&mut queues);
        let mut total_enqueued: usize = 0;
        for q in &self.known {
            let n = self.queues.get(q).map_or(0, VecDeque::len);
            total_enqueued += n;
            qw.int(q, i64::try_from(n).unwrap_or(i64::MAX));
        }
        qw.finish();
        f.raw("queues", &queues);
        let persisted_working = self.reservations.values().filter(|r| r.persisted).count();
        let mut sets = String::new();
        let mut sw = ObjectWriter::new(&mut sets);
        sw.int("dead", len_i64(self.dead.len()));
        sw.int("retries", len_i64(self.retries.len()));
        sw.int("scheduled", len_i64(self.scheduled.len()));
        sw.int("working", len_i64(persisted_working));
        sw.finish();
        f.raw("sets", &sets);

        let mut tasks = String::new();
        let mut tw = ObjectWriter::new(&mut tasks);
        tw.raw(
            "Busy",
            &small_obj(&[
                ("reaped", u64_i64(self.stats.busy_reaped)),
                ("size", len_i64(self.reservations.len())),
            ]),
        );
        tw.raw("Dead", &set_task(&self.stats.dead, self.dead.len()));
        tw.raw(
            "Retries",
            &set_task(&self.stats.retries, self.retries.len()),
        );
        tw.raw(
            "Scheduled",
            &set_task(&self.stats.scheduled, self.scheduled.len()),
        );
        tw.raw(
            "Workers",
            &small_obj(&[
                ("reaped", u64_i64(self.stats.workers_reaped)),
                ("size", len_i64(self.workers.len())),
            ]),
        );
        tw.finish();
        f.raw("tasks", &tasks);
        f.int("total_failures", u64_i64(self.failures));
        f.int("total_processed", u64_i64(self.processed));
        f.int("total_enqueued", len_i64(total_enqueued));
        f.int("total_queues", len_i64(self.known.len()));
        f.finish();
        top.raw("faktory", &fk);

        let mut srv = String::new();
        let mut s = ObjectWriter::new(&mut srv);
        s.str("description", "Faktory");
        s.str("faktory_version", FAKTORY_VERSION);
        s.int(
            "uptime",
            i64::try_from(gotime::since(now, self.started_at).as_secs()).unwrap_or(i64::MAX),
        );
        s.int("connections", len_i64(self.conns.len()));
        s.int("command_count", u64_i64(self.stats.commands));
        s.int(
            "used_memory_mb",
            len_i64(self.approx_bytes().div_ceil(1 << 20)),
        );
        s.finish();
        top.raw("server", &srv);
        top.finish();
        out
    }

    fn approx_bytes(&self) -> usize {
        self.queues
            .values()
            .flat_map(|q| q.iter())
            .map(StoredJob::approx_size)
            .sum::<usize>()
            + self.scheduled.bytes()
            + self.retries.bytes()
            + self.dead.bytes()
            + self
                .reservations
                .values()
                .map(|r| r.job.approx_size())
                .sum::<usize>()
    }

    // ----------------------------------------------------------------------------------------------
    // loading and inspection (for tests)

    /// Pushes a job as PUSH would (validation, defaults, `at`), without changing the `retry` default.
    /// Times relative to the push ([`Job::run_after`], [`Job::expires_after`]) are resolved with
    /// `now`, as a client does when it pushes.
    pub fn push(&mut self, job: Job, now: UnixTime) -> Result<(), PushError> {
        self.push_job(resolved(job, now), None, now)
            .map_err(PushError)
    }

    /// Puts a job on its queue now, whatever its `at` (defaults filled in as a push would).
    pub fn enqueue_now(&mut self, job: Job, now: UnixTime) -> Result<(), PushError> {
        let mut job = resolved(job, now);
        job.at = None;
        self.push_job(job, None, now).map_err(PushError)
    }

    /// Adds a job to the scheduled set, due at `at`.
    pub fn add_scheduled(&mut self, job: Job, at: UnixTime, now: UnixTime) {
        let j = self.prepared(job, now);
        self.scheduled.insert(at, j);
    }

    /// Adds a job to the retry set, due at `at`.
    pub fn add_retry(&mut self, job: Job, at: UnixTime, now: UnixTime) {
        let j = self.prepared(job, now);
        self.retries.insert(at, j);
    }

    /// Adds a job to the dead set, purged at `at`.
    pub fn add_dead(&mut self, job: Job, at: UnixTime, now: UnixTime) {
        let j = self.prepared(job, now);
        self.dead.insert(at, j);
    }

    fn prepared(&self, job: Job, now: UnixTime) -> StoredJob {
        let mut j = StoredJob::from_job(resolved(job, now));
        if j.retry.is_none() {
            j.retry = Some(self.default_retry);
        }
        if j.created_at.is_empty() {
            j.created_at = gotime::format(now);
        }
        if j.queue.is_empty() {
            j.queue = faktory_proto::job::DEFAULT_QUEUE.to_owned();
        }
        j
    }

    /// Makes a queue known (INFO lists it) without jobs.
    pub fn ensure_queue(&mut self, name: &str) -> Result<(), PushError> {
        if !is_valid_queue_name(name) {
            return Err(PushError(format!(
                "cannot get {} queue: queue names must match \\A[a-zA-Z0-9._-]+\\z",
                gotime::go_quote(name)
            )));
        }
        self.ensure_known(name);
        Ok(())
    }

    /// Pauses (`true`) or resumes a known queue; `false` if the queue is unknown.
    pub fn set_paused(&mut self, name: &str, paused: bool) -> bool {
        if !self.known.contains(name) {
            return false;
        }
        if paused {
            self.paused.insert(name.to_owned());
            self.paused_persisted.insert(name.to_owned());
        } else {
            self.paused.remove(name);
            self.paused_persisted.remove(name);
        }
        true
    }

    /// Whether FETCH skips this queue.
    pub fn is_paused(&self, name: &str) -> bool {
        self.paused.contains(name)
    }

    /// The current `retry` default (25, or the last explicit `retry` of a PUSH,
    /// docs/protocol.md#the-retry-default-leaks).
    pub fn default_retry(&self) -> i64 {
        self.default_retry
    }

    /// Sets the `retry` default, as an earlier PUSH with `"retry":n` would have
    /// (docs/protocol.md#the-retry-default-leaks).
    pub fn set_default_retry(&mut self, n: i64) {
        self.default_retry = n;
    }

    /// The jobs of a queue, next to be fetched first.
    pub fn queue_jobs(&self, name: &str) -> Vec<Job> {
        self.queues
            .get(name)
            .map(|q| q.iter().map(StoredJob::to_job).collect())
            .unwrap_or_default()
    }

    /// Whether the server is idle: every queue is empty and no job is reserved (scheduled, retry
    /// and dead sets are not looked at).
    pub fn is_idle(&self) -> bool {
        self.queues.values().all(VecDeque::is_empty) && self.reservations.is_empty()
    }

    /// Every known queue and its size.
    pub fn queue_sizes(&self) -> BTreeMap<String, usize> {
        self.known
            .iter()
            .map(|q| (q.clone(), self.queues.get(q).map_or(0, VecDeque::len)))
            .collect()
    }

    /// The scheduled set, earliest first.
    pub fn scheduled(&self) -> Vec<SetEntry> {
        self.scheduled.list()
    }

    /// The retry set, earliest first.
    pub fn retries(&self) -> Vec<SetEntry> {
        self.retries.list()
    }

    /// The dead set, earliest purge first.
    pub fn dead(&self) -> Vec<SetEntry> {
        self.dead.list()
    }

    /// Reserved jobs, earliest expiry first.
    pub fn reservations(&self) -> Vec<ReservationInfo> {
        let mut v: Vec<ReservationInfo> = self
            .reservations
            .values()
            .map(|r| ReservationInfo {
                job: r.job.to_job(),
                wid: r.wid.clone(),
                reserved_at: r.since,
                expires_at: r.expiry,
                persisted: r.persisted,
            })
            .collect();
        v.sort_by_key(|r| (gotime::to_nanos(r.expires_at), r.job.jid.clone()));
        v
    }

    /// Jids acknowledged while reserved, oldest first.
    pub fn acked(&self) -> Vec<String> {
        self.acks
            .iter()
            .filter(|a| a.known)
            .map(|a| a.jid.clone())
            .collect()
    }

    /// Every ACK received, including those for unknown jids.
    pub fn ack_log(&self) -> Vec<AckRecord> {
        self.acks.iter().cloned().collect()
    }

    /// Every failure (FAIL of a reserved job, reservation expiry), oldest first.
    pub fn failures(&self) -> Vec<FailRecord> {
        self.fails.iter().cloned().collect()
    }

    /// Cumulative ACKs and failures (INFO's `total_processed`).
    pub fn total_processed(&self) -> u64 {
        self.processed
    }

    /// Cumulative failures (INFO's `total_failures`).
    pub fn total_failures(&self) -> u64 {
        self.failures
    }

    /// Commands executed since the (re)start (INFO's `command_count`).
    pub fn command_count(&self) -> u64 {
        self.stats.commands
    }
}

fn len_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn u64_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn small_obj(fields: &[(&str, i64)]) -> String {
    let mut s = String::new();
    let mut w = ObjectWriter::new(&mut s);
    for (k, v) in fields {
        w.int(k, *v);
    }
    w.finish();
    s
}

fn set_task(stats: &SetTaskStats, size: usize) -> String {
    let mut s = String::new();
    let mut w = ObjectWriter::new(&mut s);
    w.int("cycles", u64_i64(stats.cycles));
    w.int("enqueued", u64_i64(stats.enqueued));
    w.int("size", len_i64(size));
    w.float("wall_time_sec", 0.0);
    w.finish();
    s
}

/// MUTATE's filter over a stored payload (docs/protocol.md#mutate).
fn filter_matches(filter: &MutateFilter, payload: &str) -> bool {
    let jobtype = filter.jobtype.as_deref().filter(|t| !t.is_empty());
    let regexp = filter.regexp.as_deref().filter(|r| !r.is_empty());
    if !filter.jids.is_empty() {
        return filter
            .jids
            .iter()
            .any(|jid| payload.contains(&format!("\"jid\":\"{jid}\"")));
    }
    if let Some(re) = regexp {
        if !crate::glob::matches(re.as_bytes(), payload.as_bytes()) {
            return false;
        }
        return jobtype.is_none_or(|t| payload.contains(&format!("\"jobtype\":\"{t}\"")));
    }
    if let Some(t) = jobtype {
        return crate::glob::matches(
            format!("*\"jobtype\":\"{t}\"*").as_bytes(),
            payload.as_bytes(),
        );
    }
    true
}

/// `job` with its times relative to the push resolved at `now` (a client does this when it pushes).
fn resolved(mut job: Job, now: UnixTime) -> Job {
    job.resolve_relative(faktory_proto::time::Timestamp::from_unix(now));
    job
}

#[cfg(test)]
mod tests;
