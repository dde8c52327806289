//! Test harness for the worker engine: the engine wired to an in-memory, scripted Faktory server in
//! virtual time. The server speaks the wire protocol byte for byte (hand-written RESP replies, a
//! line parser), runs one command at a time per connection like the real one (a FETCH on empty
//! queues blocks that connection for `fetch_block`, and wakes when a job is pushed), keeps
//! reservations across restarts, and answers ACK/FAIL/BEAT with the real server's replies.
//!
//! The harness plays the adapter: it connects sockets when asked, writes every transmit, runs jobs
//! with a scripted duration and outcome, and records every event with its time.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use faktory_proto::client::{ConnectFailure, ConnectPhase};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use faktory_proto::job::Job;
use faktory_proto::worker::{
    Confirmation, ConnId, Event, JobToken, Lifecycle, Outcome, PushError, PushId, StopReport,
    Worker, WorkerConfig,
};
use serde_json::Value;

/// What the server does with a connection's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Reads and answers.
    Normal,
    /// Does not read: lines pile up unprocessed.
    Frozen,
    /// Reads and executes, but the replies are lost.
    BlackHole,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RecState {
    Running,
    Quiet,
    Terminate,
}

#[derive(Debug)]
pub struct SConn {
    pub partial: Vec<u8>,
    pub lines: VecDeque<String>,
    pub hello: Option<Option<String>>,
    pub mode: Mode,
    /// A FETCH blocked until this time, over these queues.
    pub blocked: Option<(Instant, Vec<String>)>,
    pub out: Vec<u8>,
    /// FETCH lines received and not yet answered.
    pub unanswered_fetches: usize,
    /// The server closed it (END, rejected HELLO); the worker gets EOF unless it closed it itself.
    pub closed: bool,
    pub ended: bool,
    /// The worker reported the connection failed (reply timeout, protocol violation): its close
    /// is not a choice, so a FETCH left on it does not count against the engine.
    pub broken: bool,
}

/// Everything the server keeps apart from connections.
#[derive(Debug, Default)]
pub struct Store {
    pub queues: BTreeMap<String, VecDeque<Vec<u8>>>,
    pub reserved: HashMap<String, Vec<u8>>,
    pub acks: Vec<String>,
    pub fails: Vec<Value>,
    pub not_found: usize,
    pub records: HashMap<String, RecState>,
    /// Every command line but HELLO, when it arrived: (time, connection, line).
    pub lines: Vec<(Instant, ConnId, String)>,
    /// Every BEAT payload: (time, connection, payload).
    pub beats: Vec<(Instant, ConnId, Value)>,
    /// The queue list of every FETCH.
    pub fetches: Vec<Vec<String>>,
    pub fetch_block: Duration,
    /// ACK/FAIL/BEAT lines that arrived behind an unanswered FETCH on the same connection.
    pub behind_fetch: usize,
    /// Connections the worker closed while a FETCH on them was unanswered.
    pub closed_with_fetch: usize,
    /// Jobs reserved by a FETCH of a connection the worker had closed.
    pub stranded: Vec<String>,
    /// Answer HELLO with `-ERR Invalid password`.
    pub reject_hello: bool,
    /// Answer every ACK with this error instead of `+OK`.
    pub ack_error: Option<String>,
    /// Every PUSH payload executed: (time, connection, job). The job is queued too.
    pub pushed: Vec<(Instant, ConnId, Value)>,
    /// Answer every PUSH with this error line (`NOTUNIQUE Job not unique`) instead of `+OK`.
    pub push_error: Option<String>,
}

#[derive(Debug)]
pub struct FakeServer {
    pub up: bool,
    pub conns: BTreeMap<ConnId, SConn>,
    pub store: Store,
}

fn bulk(body: &[u8]) -> Vec<u8> {
    let mut v = format!("${}\r\n", body.len()).into_bytes();
    v.extend_from_slice(body);
    v.extend_from_slice(b"\r\n");
    v
}

impl FakeServer {
    pub fn new() -> Self {
        FakeServer {
            up: true,
            conns: BTreeMap::new(),
            store: Store {
                fetch_block: Duration::from_secs(2),
                ..Store::default()
            },
        }
    }

    pub fn push(&mut self, queue: &str, job: &Job) {
        self.push_raw(queue, serde_json::to_vec(job).unwrap());
    }

    pub fn push_raw(&mut self, queue: &str, body: Vec<u8>) {
        self.store
            .queues
            .entry(queue.to_owned())
            .or_default()
            .push_back(body);
    }

    pub fn queued(&self) -> usize {
        self.store.queues.values().map(VecDeque::len).sum()
    }

    pub fn accept(&mut self, id: ConnId) {
        self.conns.insert(
            id,
            SConn {
                partial: Vec::new(),
                lines: VecDeque::new(),
                hello: None,
                mode: Mode::Normal,
                blocked: None,
                out: b"+HI {\"v\":2}\r\n".to_vec(),
                unanswered_fetches: 0,
                closed: false,
                ended: false,
                broken: false,
            },
        );
    }

    pub fn receive(&mut self, id: ConnId, bytes: &[u8], now: Instant) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.closed {
            return;
        }
        c.partial.extend_from_slice(bytes);
        while let Some(pos) = c.partial.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = c.partial.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8(line).expect("client lines are UTF-8");
            let verb = line.split(' ').next().unwrap_or("").to_owned();
            if verb != "HELLO" {
                self.store.lines.push((now, id, line.clone()));
            }
            match verb.as_str() {
                "FETCH" => c.unanswered_fetches += 1,
                "ACK" | "FAIL" | "BEAT" | "PUSH" if c.unanswered_fetches > 0 => {
                    self.store.behind_fetch += 1;
                }
                _ => {}
            }
            c.lines.push_back(line);
        }
    }

    /// Runs every connection as far as it can go at `now`.
    pub fn process(&mut self, now: Instant) {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            let c = self.conns.get_mut(&id).unwrap();
            Self::run_conn(&mut self.store, id, c, now, false);
        }
    }

    fn run_conn(store: &mut Store, id: ConnId, c: &mut SConn, now: Instant, closing: bool) {
        if c.closed || (c.mode == Mode::Frozen && !closing) {
            return;
        }
        loop {
            if let Some((deadline, queues)) = c.blocked.clone() {
                if let Some(body) = Self::pop_job(store, &queues) {
                    c.blocked = None;
                    c.unanswered_fetches -= 1;
                    if closing {
                        store.stranded.push(jid_of(&body));
                    }
                    Self::reply(c, &bulk(&body));
                } else if deadline <= now {
                    c.blocked = None;
                    c.unanswered_fetches -= 1;
                    Self::reply(c, b"$-1\r\n");
                } else {
                    return;
                }
            }
            let Some(line) = c.lines.pop_front() else {
                return;
            };
            Self::execute(store, id, c, &line, now, closing);
            if c.closed {
                return;
            }
        }
    }

    fn pop_job(store: &mut Store, queues: &[String]) -> Option<Vec<u8>> {
        for q in queues {
            if let Some(body) = store.queues.get_mut(q).and_then(VecDeque::pop_front) {
                store.reserved.insert(jid_of(&body), body.clone());
                return Some(body);
            }
        }
        None
    }

    fn reply(c: &mut SConn, bytes: &[u8]) {
        if c.mode != Mode::BlackHole {
            c.out.extend_from_slice(bytes);
        }
    }

    fn execute(
        store: &mut Store,
        id: ConnId,
        c: &mut SConn,
        line: &str,
        now: Instant,
        closing: bool,
    ) {
        let (verb, payload) = line.split_once(' ').unwrap_or((line, ""));
        if c.hello.is_none() {
            assert_eq!(verb, "HELLO", "first line must be HELLO: {line}");
            if store.reject_hello {
                Self::reply(c, b"-ERR Invalid password\r\n");
                c.closed = true;
                return;
            }
            let v: Value = serde_json::from_str(payload).expect("HELLO JSON");
            let wid = v.get("wid").and_then(Value::as_str).map(str::to_owned);
            if let Some(w) = &wid {
                store.records.entry(w.clone()).or_insert(RecState::Running);
            }
            c.hello = Some(wid);
            Self::reply(c, b"+OK\r\n");
            return;
        }
        match verb {
            "FETCH" => {
                let queues: Vec<String> = payload.split(' ').map(str::to_owned).collect();
                assert!(!queues.is_empty() && !payload.is_empty(), "bare FETCH");
                store.fetches.push(queues.clone());
                c.blocked = Some((now + store.fetch_block, queues));
            }
            "ACK" => {
                let v: Value = serde_json::from_str(payload).expect("ACK JSON");
                let jid = v["jid"].as_str().expect("ACK jid").to_owned();
                if let Some(err) = &store.ack_error {
                    Self::reply(c, format!("-ERR {err}\r\n").as_bytes());
                    return;
                }
                store.reserved.remove(&jid);
                store.acks.push(jid);
                Self::reply(c, b"+OK\r\n");
            }
            "FAIL" => {
                let v: Value = serde_json::from_str(payload).expect("FAIL JSON");
                let jid = v["jid"].as_str().expect("FAIL jid").to_owned();
                assert!(v["errtype"].as_str().unwrap().len() <= 100);
                assert!(v["message"].as_str().unwrap().len() <= 1000);
                if store.reserved.remove(&jid).is_some() {
                    store.fails.push(v);
                    Self::reply(c, b"+OK\r\n");
                } else {
                    store.not_found += 1;
                    Self::reply(c, format!("-ERR Job not found {jid}\r\n").as_bytes());
                }
            }
            "BEAT" => {
                let v: Value = serde_json::from_str(payload).expect("BEAT JSON");
                let wid = v["wid"].as_str().expect("BEAT wid").to_owned();
                store.beats.push((now, id, v.clone()));
                let Some(state) = store.records.get_mut(&wid) else {
                    Self::reply(c, format!("-ERR unknown worker {wid}\r\n").as_bytes());
                    return;
                };
                let reported = match v.get("current_state").and_then(Value::as_str) {
                    Some("quiet") => Some(RecState::Quiet),
                    Some("terminate") => Some(RecState::Terminate),
                    _ => None,
                };
                if let Some(r) = reported {
                    if r > *state {
                        *state = r;
                    }
                }
                let reply = match *state {
                    RecState::Running => b"+OK\r\n".to_vec(),
                    RecState::Quiet => bulk(br#"{"state":"quiet"}"#),
                    RecState::Terminate => bulk(br#"{"state":"terminate"}"#),
                };
                Self::reply(c, &reply);
            }
            "PUSH" => {
                let v: Value = serde_json::from_str(payload).expect("PUSH JSON");
                if let Some(err) = &store.push_error {
                    Self::reply(c, format!("-{err}\r\n").as_bytes());
                    return;
                }
                let queue = v
                    .get("queue")
                    .and_then(Value::as_str)
                    .unwrap_or("default")
                    .to_owned();
                store
                    .queues
                    .entry(queue)
                    .or_default()
                    .push_back(payload.as_bytes().to_vec());
                store.pushed.push((now, id, v));
                Self::reply(c, b"+OK\r\n");
            }
            "END" => {
                c.closed = true;
                c.ended = true;
            }
            other => panic!("unexpected command {other:?} from the worker"),
        }
        let _ = closing;
    }

    /// Drops the worker record of `wid` when no connection carries it any more.
    fn forget_records(&mut self) {
        let live: BTreeSet<String> = self
            .conns
            .values()
            .filter(|c| !c.closed)
            .filter_map(|c| c.hello.clone().flatten())
            .collect();
        self.store.records.retain(|w, _| live.contains(w));
    }

    /// The worker closed `id`: the server still executes what it had received (like the real one),
    /// and counts FETCHes left unanswered.
    pub fn client_closed(&mut self, id: ConnId, now: Instant) {
        if let Some(mut c) = self.conns.remove(&id) {
            if !c.closed {
                Self::run_conn(&mut self.store, id, &mut c, now, true);
                if c.unanswered_fetches > 0 && !c.broken {
                    self.store.closed_with_fetch += 1;
                    // The blocked FETCH may still take a job nobody will run.
                    if let Some((_, queues)) = &c.blocked {
                        if let Some(body) = Self::pop_job(&mut self.store, queues) {
                            self.store.stranded.push(jid_of(&body));
                        }
                    }
                }
            }
        }
        self.forget_records();
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns
            .values()
            .filter(|c| !c.closed && c.mode != Mode::Frozen)
            .filter_map(|c| c.blocked.as_ref().map(|(t, _)| *t))
            .min()
    }

    pub fn take_output(&mut self) -> Vec<(ConnId, Vec<u8>)> {
        self.conns
            .iter_mut()
            .filter(|(_, c)| !c.out.is_empty())
            .map(|(id, c)| (*id, std::mem::take(&mut c.out)))
            .collect()
    }

    /// Connections the server closed on its own (not after END): the worker must see EOF.
    pub fn take_server_closed(&mut self) -> Vec<ConnId> {
        let ids: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.closed && c.out.is_empty() && !c.ended)
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            self.conns.remove(id);
        }
        if !ids.is_empty() {
            self.forget_records();
        }
        ids
    }
}

pub fn jid_of(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("jid").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default()
}

/// How the scripted adapter runs a job.
#[derive(Clone, Debug)]
pub enum Run {
    /// Finishes after this long with this outcome.
    After(Duration, Outcome),
    /// Never finishes.
    Never,
}

pub type Runner = Box<dyn FnMut(&Job) -> Run>;

/// An answer to a push, with when it came.
pub type PushAnswer = (Duration, Result<(), PushError>);

pub struct Harness {
    pub base: Instant,
    pub now: Instant,
    pub worker: Worker,
    pub server: FakeServer,
    pub events: Vec<(Duration, Event)>,
    pub runner: Runner,
    pub running: BTreeMap<JobToken, Job>,
    pub scheduled: BTreeMap<JobToken, (Instant, Outcome)>,
    /// Outcomes the engine accepted.
    pub finished: BTreeMap<JobToken, (String, Outcome)>,
    pub run_jobs: BTreeMap<JobToken, Job>,
    pub cancelled: Vec<JobToken>,
    pub confirmations: BTreeMap<JobToken, Vec<Confirmation>>,
    pub open: BTreeSet<ConnId>,
    pub opened: Vec<(Duration, ConnId)>,
    pub stopped: Option<StopReport>,
    /// Every answer to a push, with when it came.
    pub push_answers: BTreeMap<PushId, Vec<PushAnswer>>,
    /// Chunk size for server → worker bytes (to exercise incremental decoding); 0 = whole.
    pub chunk: usize,
    /// Hand the worker what arrives in one pass (server output, EOFs, finished jobs) inside
    /// `begin_batch`/`end_batch`, as the adapters do, instead of one input at a time.
    pub batch: bool,
}

pub fn config(concurrency: usize) -> WorkerConfig {
    let mut c = WorkerConfig::default();
    c.concurrency = concurrency;
    c.wid = Some("wid-test-0001".to_owned());
    c.hostname = Some("test-host".to_owned());
    c.pid = Some(4242);
    c.seed = Some(7);
    c
}

pub fn job(n: usize) -> Job {
    Job::builder("Work")
        .jid(format!("jid-{n:08}"))
        .args(vec![n])
        .build()
        .unwrap()
}

pub fn ok_after(ms: u64) -> Runner {
    Box::new(move |_| Run::After(Duration::from_millis(ms), Outcome::Ok))
}

impl Harness {
    pub fn new(config: WorkerConfig, runner: Runner) -> Self {
        Self::new_with(config, runner, |_| {})
    }

    /// Like [`Harness::new`], with the server prepared by `setup` before the worker connects.
    pub fn new_with(
        config: WorkerConfig,
        runner: Runner,
        setup: impl FnOnce(&mut FakeServer),
    ) -> Self {
        let base = Instant::now();
        let worker = Worker::new(config, base).expect("valid config");
        let mut server = FakeServer::new();
        setup(&mut server);
        let mut h = Harness {
            base,
            now: base,
            worker,
            server,
            events: Vec::new(),
            runner,
            running: BTreeMap::new(),
            scheduled: BTreeMap::new(),
            finished: BTreeMap::new(),
            run_jobs: BTreeMap::new(),
            cancelled: Vec::new(),
            confirmations: BTreeMap::new(),
            open: BTreeSet::new(),
            opened: Vec::new(),
            stopped: None,
            push_answers: BTreeMap::new(),
            chunk: 0,
            batch: false,
        };
        h.settle();
        h
    }

    pub fn t(&self) -> Duration {
        self.now - self.base
    }

    pub fn at(&self, d: Duration) -> Instant {
        self.base + d
    }

    fn on_event(&mut self, ev: Event) {
        let t = self.t();
        match &ev {
            Event::OpenConnection(id) => {
                assert!(self.open.insert(*id), "connection id reused");
                self.opened.push((t, *id));
                if self.server.up {
                    self.server.accept(*id);
                    self.worker.handle_connected(*id, self.now);
                } else {
                    let e = ConnectFailure::transient(ConnectPhase::Tcp, "Connection refused");
                    self.worker.handle_connect_failed(*id, &e, self.now);
                }
            }
            Event::CloseConnection(id) => {
                assert!(
                    self.open.remove(id),
                    "close of a connection not open: {id:?}"
                );
                self.server.client_closed(*id, self.now);
            }
            Event::ConnectionFailed { conn, .. } => {
                if let Some(c) = self.server.conns.get_mut(conn) {
                    c.broken = true;
                }
            }
            Event::RunJob { token, job } => {
                assert!(self.run_jobs.insert(*token, (**job).clone()).is_none());
                self.running.insert(*token, (**job).clone());
                match (self.runner)(job) {
                    Run::After(d, outcome) => {
                        self.scheduled.insert(*token, (self.now + d, outcome));
                    }
                    Run::Never => {}
                }
            }
            Event::CancelJob(token) => {
                self.scheduled.remove(token);
                self.running.remove(token);
                self.cancelled.push(*token);
            }
            Event::JobConfirmed {
                token,
                confirmation,
                ..
            } => {
                self.confirmations
                    .entry(*token)
                    .or_default()
                    .push(confirmation.clone());
            }
            Event::Stopped(report) => {
                assert!(self.stopped.is_none(), "Stopped twice");
                self.stopped = Some(report.clone());
            }
            Event::Pushed { id, result } => {
                self.push_answers
                    .entry(*id)
                    .or_default()
                    .push((t, result.clone()));
            }
            _ => {}
        }
        self.events.push((t, ev));
    }

    /// Moves bytes and events until nothing happens at the current time.
    pub fn settle(&mut self) {
        for _ in 0..1_000_000 {
            let mut progress = false;
            let mut drained = BTreeSet::new();
            while let Some((id, bytes)) = self.worker.poll_transmit() {
                assert!(self.open.contains(&id), "bytes for a closed connection");
                assert!(
                    drained.insert(id),
                    "two buffers for connection {id:?} in one drain"
                );
                self.server.receive(id, &bytes, self.now);
                progress = true;
            }
            while let Some(ev) = self.worker.poll_event() {
                progress = true;
                self.on_event(ev);
            }
            self.server.process(self.now);
            if self.batch {
                self.worker.begin_batch();
            }
            for (id, bytes) in self.server.take_output() {
                progress = true;
                if self.chunk == 0 {
                    self.worker.handle_input(id, &bytes, self.now);
                } else {
                    for piece in bytes.chunks(self.chunk) {
                        self.worker.handle_input(id, piece, self.now);
                    }
                }
            }
            for id in self.server.take_server_closed() {
                progress = true;
                self.worker.handle_eof(id, self.now);
            }
            // With a batch, the next pass's poll_transmit ends it.
            if !progress {
                self.worker.end_batch();
                return;
            }
        }
        panic!("the harness did not settle");
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.worker.poll_timeout(),
            self.server.next_deadline(),
            self.scheduled.values().map(|(t, _)| *t).min(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn fire(&mut self) {
        let due: Vec<JobToken> = self
            .scheduled
            .iter()
            .filter(|(_, (t, _))| *t <= self.now)
            .map(|(k, _)| *k)
            .collect();
        if self.batch {
            self.worker.begin_batch();
        }
        for token in due {
            let (_, outcome) = self.scheduled.remove(&token).unwrap();
            self.running.remove(&token);
            let jid = self.run_jobs[&token].jid.clone();
            if self
                .worker
                .handle_job_finished(token, outcome.clone(), self.now)
            {
                self.finished.insert(token, (jid, outcome));
            }
            if !self.batch {
                self.settle();
            }
        }
        self.server.process(self.now);
        self.settle();
        if self.worker.poll_timeout().is_some_and(|t| t <= self.now) {
            self.worker.handle_timeout(self.now);
        }
        self.settle();
    }

    /// Runs the world until `until` (virtual time).
    pub fn run_until(&mut self, until: Instant) {
        let mut same = 0u32;
        loop {
            self.settle();
            match self.next_deadline() {
                Some(d) if d <= until => {
                    if d > self.now {
                        self.now = d;
                        same = 0;
                    } else {
                        same += 1;
                        assert!(same < 10_000, "livelock at {:?}", self.t());
                    }
                    self.fire();
                }
                _ => {
                    if until > self.now {
                        self.now = until;
                    }
                    self.fire();
                    return;
                }
            }
        }
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Runs until `cond` holds (checked after every step) or `limit` passes; returns whether it held.
    pub fn run_until_cond(
        &mut self,
        limit: Duration,
        mut cond: impl FnMut(&Harness) -> bool,
    ) -> bool {
        let until = self.now + limit;
        let mut same = 0u32;
        loop {
            self.settle();
            if cond(self) {
                return true;
            }
            match self.next_deadline() {
                Some(d) if d <= until => {
                    if d > self.now {
                        self.now = d;
                        same = 0;
                    } else {
                        same += 1;
                        assert!(same < 10_000, "livelock at {:?}", self.t());
                    }
                    self.fire();
                }
                _ => {
                    self.now = until.max(self.now);
                    self.fire();
                    return cond(self);
                }
            }
        }
    }

    pub fn run_until_stopped(&mut self, limit: Duration) -> StopReport {
        assert!(
            self.run_until_cond(limit, |h| h.stopped.is_some()),
            "worker did not stop within {limit:?}; lifecycle {:?}",
            self.worker.lifecycle()
        );
        self.stopped.clone().unwrap()
    }

    /// Pushes `job` through the worker now (as a handler would), then settles.
    pub fn push(&mut self, job: Job) -> PushId {
        let id = self.worker.push(job, self.now);
        self.settle();
        id
    }

    /// The one answer to push `id`, if it came.
    pub fn push_answer(&self, id: PushId) -> Option<&Result<(), PushError>> {
        self.push_answers
            .get(&id)
            .map(|answers| &answers.first().expect("an answer").1)
    }

    pub fn shutdown(&mut self) {
        self.worker.shutdown(self.now);
        self.settle();
    }

    /// Finishes a running job now (for jobs scripted with [`Run::Never`]).
    pub fn finish_job(&mut self, token: JobToken, outcome: Outcome) -> bool {
        self.scheduled.remove(&token);
        self.running.remove(&token);
        let jid = self.run_jobs[&token].jid.clone();
        let ok = self
            .worker
            .handle_job_finished(token, outcome.clone(), self.now);
        if ok {
            self.finished.insert(token, (jid, outcome));
        }
        self.settle();
        ok
    }

    /// The server crashes: every connection is dropped, new connections are refused, the worker
    /// records are lost; queues and reservations survive (they live in Redis).
    pub fn crash_server(&mut self) {
        self.server.up = false;
        let ids: Vec<ConnId> = self.server.conns.keys().copied().collect();
        self.server.conns.clear();
        self.server.store.records.clear();
        for id in ids {
            self.worker.handle_eof(id, self.now);
        }
        self.settle();
    }

    pub fn start_server(&mut self) {
        self.server.up = true;
    }

    /// The connection drops (the worker sees EOF); what the server had not read is lost.
    pub fn drop_conn(&mut self, id: ConnId) {
        self.server.conns.remove(&id);
        self.server.forget_records_pub();
        self.worker.handle_eof(id, self.now);
        self.settle();
    }

    /// The server reaps the worker: record deleted, every connection of it closed.
    pub fn reap(&mut self, wid: &str) {
        let ids: Vec<ConnId> = self
            .server
            .conns
            .iter()
            .filter(|(_, c)| c.hello.clone().flatten().as_deref() == Some(wid))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.drop_conn(id);
        }
    }

    pub fn set_mode(&mut self, id: ConnId, mode: Mode) {
        if let Some(c) = self.server.conns.get_mut(&id) {
            c.mode = mode;
        }
    }

    pub fn operator(&mut self, state: RecState) {
        let wid = self.worker.wid().to_owned();
        if let Some(s) = self.server.store.records.get_mut(&wid) {
            if state > *s {
                *s = state;
            }
        }
    }

    pub fn control_conn(&self) -> Option<ConnId> {
        self.open
            .iter()
            .copied()
            .find(|id| self.worker.is_control_connection(*id))
    }

    pub fn fetch_conns(&self) -> Vec<ConnId> {
        self.open
            .iter()
            .copied()
            .filter(|id| !self.worker.is_control_connection(*id))
            .collect()
    }

    pub fn state_changes(&self) -> Vec<(Duration, Lifecycle)> {
        self.events
            .iter()
            .filter_map(|(t, e)| match e {
                Event::StateChanged(s) => Some((*t, *s)),
                _ => None,
            })
            .collect()
    }

    pub fn time_of_state(&self, state: Lifecycle) -> Option<Duration> {
        self.state_changes()
            .into_iter()
            .find(|(_, s)| *s == state)
            .map(|(t, _)| t)
    }

    /// Command lines (verb only) received after `from`.
    pub fn verbs_since(&self, from: Duration) -> Vec<String> {
        self.server
            .store
            .lines
            .iter()
            .filter(|(t, _, _)| *t - self.base >= from)
            .map(|(_, _, l)| l.split(' ').next().unwrap().to_owned())
            .collect()
    }

    /// Checks the invariants every scenario must keep.
    pub fn assert_invariants(&self) {
        assert_eq!(
            self.server.store.behind_fetch, 0,
            "ACK/FAIL/BEAT pipelined behind a FETCH"
        );
        for (token, c) in &self.confirmations {
            assert_eq!(c.len(), 1, "token {token:?} confirmed {} times", c.len());
        }
        for (id, answers) in &self.push_answers {
            assert_eq!(
                answers.len(),
                1,
                "push {id:?} answered {} times",
                answers.len()
            );
        }
        if self.stopped.is_some() {
            assert_eq!(self.worker.pending_pushes(), 0, "pushes left unanswered");
        }
        if let Some(report) = &self.stopped {
            if report.abandoned_fetches == 0 {
                assert_eq!(
                    self.server.store.closed_with_fetch, 0,
                    "closed with a FETCH outstanding"
                );
            }
            if report.is_clean() {
                for token in self.finished.keys() {
                    assert!(
                        self.confirmations.contains_key(token),
                        "finished {token:?} unconfirmed"
                    );
                }
                assert!(
                    self.open.is_empty(),
                    "connections left open: {:?}",
                    self.open
                );
            }
        }
    }
}

impl FakeServer {
    pub fn forget_records_pub(&mut self) {
        self.forget_records();
    }
}
