//! The worker engine: the whole behaviour of a worker process as a deterministic sans-IO machine.
//!
//! [`Worker`] owns the connections of one worker process and makes every decision: which
//! connections to open and what each carries, when to FETCH and from which queues, when to BEAT,
//! how to react to quiet and terminate, how to shut down, how to reconnect, and how to make sure
//! every finished job's ACK or FAIL reaches the server. The adapters (tokio, smol/async-std,
//! blocking) move bytes between sockets and the engine, sleep until [`Worker::poll_timeout`], run
//! the jobs it hands out, and hold no Faktory logic. No clock reads, no threads; randomness comes
//! only from a generator seeded by [`WorkerConfig::seed`].
//!
//! # Driving the engine
//!
//! ```text
//! let mut w = Worker::new(config, now())?;          // queues OpenConnection(control)
//! loop {
//!     // 1. Write every transmit BEFORE handling events: a CloseConnection(c) event always comes
//!     //    after the last bytes (e.g. END) for c were queued here.
//!     while let Some((c, bytes)) = w.poll_transmit() { socket(c).write_all(bytes) }
//!     // 2. Events.
//!     while let Some(ev) = w.poll_event() {
//!         match ev {
//!             OpenConnection(c)  => start connecting socket c (TCP/TLS to the server URL);
//!                                   later w.handle_connected(c, now()) or
//!                                   w.handle_connect_failed(c, &failure, now()),
//!             CloseConnection(c) => flush and close socket c (or abort its connect); forget c,
//!             RunJob { token, job } => run the handler; when it returns
//!                                   w.handle_job_finished(token, Outcome::…, now()),
//!             CancelJob(token)   => abort the job if possible (its outcome will be ignored),
//!             Pushed { id, result } => hand result to whoever called w.push(job, now()),
//!             Stopped(report)    => return report,
//!             _                  => log (JobConfirmed, JobSkipped, ConnectionFailed, …),
//!         }
//!     }
//!     // 3. Wait for the first of: bytes on socket c → w.handle_input(c, &buf, now());
//!     //    EOF → w.handle_eof(c, now()); read/write error → w.handle_transport_error(c, &e.to_string(), now());
//!     //    a job finished; the user's stop signal → w.shutdown(now());
//!     //    the deadline w.poll_timeout() → w.handle_timeout(now()).
//!     //    Call w.set_rss_kb(..) now and then (before each heartbeat is fine).
//! }
//! ```
//!
//! Every [`Event::OpenConnection`] is matched by exactly one [`Event::CloseConnection`] for the same
//! id, also when the connect failed; input for a closed id is ignored. The connect and the handshake
//! together must finish within [`ClientOptions::handshake_timeout`](crate::client::ClientOptions).
//!
//! # Connections
//!
//! - The **control connection** is opened first; its HELLO registers the wid, and it stays open for
//!   the worker's life (docs/protocol.md#a-heartbeat-needs-a-connection-that-carries-the-wid). It
//!   carries BEAT and never FETCH, so BEATs never wait behind a FETCH that blocks for 2 s. While
//!   it is being reopened, BEAT goes to a fetch connection that has no FETCH outstanding, if there
//!   is one.
//! - **Fetch connections** are opened once the control connection is ready, with the same wid:
//!   `ceil(concurrency / fetches_per_connection)` of them, capped by `max_fetch_connections`.
//!   Defaults: one FETCH per connection and at most 11 fetch connections, so concurrency 1 → 1,
//!   10 → 10, ≥ 11 → 11 fetch connections (12 with the control one). The reasoning, from a real
//!   Faktory 1.10 on a 2-core machine (server, Redis and client together):
//!   - The server runs one command at a time per connection (a goroutine per connection, a Redis
//!     round trip per command), about 300 µs per FETCH+ACK pair. A second FETCH pipelined on a
//!     connection waits behind the first and adds nothing; throughput is bought with connections:
//!     a raw-socket client with one FETCH outstanding per connection does about 3.3k jobs/s on 1
//!     connection, 5.4k on 2, 8.5k on 4, 11.9k on 10 and 12.1k on 16, where the two cores are
//!     saturated.
//!   - So at concurrency ≤ 11 every slot gets a connection of its own (what other clients do, and
//!     what the server's curve rewards), and above that more connections buy next to nothing:
//!     concurrency 50 runs on 12 connections, where clients with one connection per slot open 51
//!     (and their users complain about connection counts at scale: each is a goroutine on the
//!     server, and the open-source server refuses more than 2,000). Measured with the default
//!     5 × 2 pipelined FETCHes instead, a worker at concurrency 10 lost about 20% against clients
//!     with one connection per slot.
//!   - Why 11 and not 10, where the server's curve flattens: the 11th is for the worker's own
//!     latency. One task reads every socket in turn, so a job that arrives while others are being
//!     handled waits a few µs for its ACK and refill FETCH, and its connection's server side idles
//!     meanwhile; above concurrency 10 one more connection keeps the server busy through that.
//!     Against the test server at the modelled pace, concurrency 50 ran 3.7-9.8% more jobs/s on
//!     11 fetch connections than on 10 (three interleaved rounds, each won by 11), and 2 FETCHes
//!     pipelined on 10 connections ran 9-17% fewer (an ACK may not wait behind a FETCH, so it
//!     left the connection that brought its job).
//!   - A FETCH on empty queues blocks 2 s, and whatever is pipelined behind it waits too: with one
//!     FETCH per connection, an idle worker shuts down after at most one FETCH block (2 s) plus a
//!     round trip, never two.
//!
//!   The load tool can tune both numbers (`max_fetch_connections`, `fetches_per_connection`), and
//!   the in-memory test server can answer at the real server's modelled pace
//!   (`faktory_testkit::Pace`) to measure them without a real server.
//! - FETCHes are pipelined, never more outstanding in total than free slots
//!   (`concurrency − running − outstanding FETCHes`), spread over the fetch connections with the
//!   fewest outstanding. A FETCH's reply timeout is the connection's `reply_timeout`, but at least
//!   [`MIN_FETCH_REPLY_TIMEOUT`] (the server blocks a FETCH for up to 2 s).
//! - **ACK and FAIL** go to a ready connection that has no FETCH outstanding, so they never wait
//!   behind a blocking FETCH: the connection that brought the job when it is free (its refill FETCH
//!   then follows in the same write: one write and one read per job, the cheapest pattern), else
//!   the least busy one (the control connection always qualifies). A connection whose FETCH
//!   brought a job waits [`REFILL_HOLD`] (250 µs) for that job's outcome before it fetches again:
//!   without that, at a concurrency above the number of connections the refill FETCH would leave
//!   first and every ACK would crowd onto the control connection, which a real server serves one
//!   command at a time.
//! - Quiet and terminate are enforced locally on every connection (the server only enforces them on
//!   the connection that created the worker record,
//!   docs/protocol.md#quiet-is-enforced-on-one-connection-only).
//!
//! # Reading less often
//!
//! An ACK and the refill FETCH leave in one write, and the server answers each on its own: first
//! `+OK` (5 bytes), then, a FETCH later, the job. Woken for each, a worker reads twice per job
//! and goes back to sleep in between. [`Worker::read_threshold`] says how many bytes the server
//! still owes a connection at the least for the replies up to the first FETCH's (3 per reply, the
//! smallest frame, less what of one has arrived): with the pair in flight, 6. An adapter that
//! sets it as the socket's receive low-water mark (`SO_RCVLOWAT`) after each turn is not woken by
//! the `+OK` alone, only once the job arrives behind it, and reads both at once. The threshold
//! never exceeds what the server is bound to send and falls as replies arrive, so a reply is held
//! back at most until the FETCH after it answers: at once while jobs wait, 2 s when the queues are
//! empty (the ACK is confirmed that much later; shutdown waits for that FETCH anyway). It is 1
//! when the first awaited reply is a FETCH's, and when its reply timeout is under 5 s. The async
//! adapter does this on Linux, over plain TCP (a TLS record only decrypts once whole, so bytes on
//! the socket are no measure of replies); against the test server at the modelled pace,
//! concurrency 10, it cut the client's context switches per job by 30% (0.94 to 0.66) and its
//! CPU per job by 14% (see the benches README).
//!
//! # Jobs
//!
//! Each fetched job becomes [`Event::RunJob`] with a [`JobToken`] (jids are not unique on the OSS
//! server). [`Worker::handle_job_finished`] turns the [`Outcome`] into ACK or FAIL; a FAIL carries
//! `errtype` ≤ 100 bytes and `message` ≤ 1000 bytes (cut on a character boundary) and the first
//! `min(job.backtrace, 50)` backtrace lines (none when the job asks for none); a panic is FAIL with
//! errtype `panic`. Each token gets exactly one [`Event::JobConfirmed`] once the server answered.
//!
//! A FETCH reply that does not decode as a job ([`Reply::UndecodableJob`]) is FAILed by jid with
//! errtype `InvalidJob` when a jid could be read ([`Event::JobSkipped`], then `JobConfirmed`); when
//! no jid can be read, nothing can be sent for it and the job returns only when its reservation
//! expires (`reserve_for`, 30 min by default).
//!
//! # Pushing jobs
//!
//! [`Worker::push`] pushes a job over the worker's own connections, so a handler can enqueue
//! follow-up work without a client (and a connection) of its own. The job is prepared like every
//! push ([`request::prepare_push`](crate::request::prepare_push): relative times resolved, valid,
//! `retry` sent); one that is not is answered at once. Each push gets exactly one
//! [`Event::Pushed`] with its [`PushId`]:
//!
//! - The PUSH goes to the least busy ready connection that has no FETCH outstanding, like ACK and
//!   FAIL (the control connection always qualifies), pipelined behind what it already carries;
//!   pushes are sent in the order they were made.
//! - While no such connection is ready (the server is down, the worker is reconnecting), the push
//!   waits, at most the connection options' `reply_timeout`: then [`PushError::NoConnection`].
//!   Nothing was sent.
//! - `+OK` is `Ok(())`; an error reply is [`PushError::Server`] (`-NOTUNIQUE` for a unique job
//!   that is already queued).
//! - A connection that fails after the PUSH was sent and before its reply (a drop, a reply
//!   timeout) makes the outcome unknown, [`PushError::OutcomeUnknown`]: the server may have the
//!   job. Unlike ACK and FAIL, a PUSH is never re-sent: it could be doubled.
//! - Pushes are taken until the worker has stopped, also during a shutdown (jobs running in the
//!   grace period may push), and the engine waits for their replies before END, up to the hard
//!   stop. At the stop, a push never sent is [`PushError::Stopped`], one in flight
//!   [`PushError::OutcomeUnknown`]; a push made after [`Event::Stopped`] is answered
//!   [`PushError::Stopped`] at once.
//!
//! # Heartbeat, quiet and terminate
//!
//! BEAT every `heartbeat_interval` (the first as soon as a control connection is ready),
//! with the `rss_kb` given by [`Worker::set_rss_kb`] and, once not running, `current_state`. At most
//! one BEAT is outstanding. Server replies:
//! - `quiet` → [`Lifecycle::Quiet`]: no more FETCH on any connection, running jobs finish and are
//!   ACKed/FAILed, BEAT continues; the worker does not stop by itself (a quiet process is expected
//!   to be restarted by its operator).
//! - `terminate` → [`Lifecycle::Terminating`]: no more FETCH; running jobs get the grace period;
//!   then [`Lifecycle::Ending`]: what still runs is FAILed (errtype `Shutdown`) and cancelled with
//!   [`Event::CancelJob`]; once every ACK/FAIL is confirmed and no FETCH is outstanding, END on every
//!   connection and [`Event::Stopped`].
//! - `unknown worker` (the server reaped the worker or restarted): the control connection is closed
//!   and reopened with the same wid (its HELLO re-creates the worker record); not a failure.
//!
//! # Local shutdown
//!
//! [`Worker::shutdown`] is terminate started locally: the next BEAT (sent at once) reports
//! `current_state: terminate`, no more FETCH, running jobs get the grace period, then FAIL the rest,
//! wait for their confirmations, END everywhere, [`Event::Stopped`] with [`StopReason::Shutdown`].
//! Before END the engine also waits for the reply to that BEAT, when the control connection is up.
//! [`Worker::quiet`] is quiet started locally (reported in BEAT as `quiet`);
//! [`Worker::shutdown_now`] ends the grace period at once (a second Ctrl-C). The worker stops at
//! the latest `grace_period + shutdown_flush_timeout` after terminate or shutdown.
//!
//! **No connection is closed while a FETCH on it is outstanding**: the server would keep that FETCH
//! blocked for up to 2 s after the close and could reserve a job that nobody runs. The engine waits
//! for each reply. A job it brings during shutdown is **run** while the grace period lasts (a slot is
//! free for it by construction, and running it does not use up one of the job's retries), and
//! FAILed at once with errtype `Shutdown` (so it is retried on the retry schedule, a first failure
//! within a minute, instead of waiting for its reservation to expire) once the grace period
//! is over. The only exception is the hard stop at `grace_period + shutdown_flush_timeout`, when a
//! server that does not answer makes the engine give up; [`StopReport::abandoned_fetches`] counts
//! the FETCHes abandoned then.
//!
//! # Faults
//!
//! A dropped connection, an I/O error, a reply timeout, a protocol violation or an overloaded
//! server (`too many connections`) closes that connection and reopens its role after a backoff
//! (exponential, capped, jittered, per role, reset once a connection of that role is ready again).
//! A refused password, a server that is not Faktory, or a connect failure the adapter reports as
//! permanent ([`ConnectFailure::permanent`], e.g. a TLS certificate that does not verify) before any
//! connection was ever ready stops the worker with [`StopReason::Fatal`]; later it is retried like
//! any fault.
//!
//! ACK and FAIL are kept until the server answered them: those sent on a connection that failed
//! before answering are sent again on another connection or after the reconnect. An ACK of an
//! unknown jid is `+OK` anyway; a re-sent FAIL answered `Job not found` landed the first time, so it
//! counts as confirmed ([`Confirmation::NotFound`]). Other error replies are retried twice, one and
//! two seconds later, then reported as [`Confirmation::Rejected`]. No finished job's outcome is
//! dropped: it is confirmed, or listed in [`StopReport::unconfirmed`].
//!
//! **Left to the server's reservation expiry** (`reserve_for`, then retried as a failure with
//! errtype `ReservationExpired`): a job whose FETCH reply was lost because the connection failed
//! while the FETCH was outstanding (the server may have reserved a job for it; the engine never saw
//! it); an undecodable job without a readable jid; jobs handed out in [`Event::RunJob`] that the
//! adapter never reported back, if the adapter drops the engine before [`Event::Stopped`]; the
//! outcomes in [`StopReport::unconfirmed`] and FETCHes in [`StopReport::abandoned_fetches`] when the
//! server did not answer before the hard stop.
//!
//! [`Reply::UndecodableJob`]: crate::client::Reply::UndecodableJob

mod config;
mod fail;
mod push;
mod queues;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::backoff::{Backoff, SplitMix64};
use crate::client::{
    self, ClientOptions, ConnectFailure, ConnectionError, Reply, RequestId, SendError,
};
use crate::command::{Ack, Beat, Command, Fail, WorkerState};
use crate::error::ServerError;
use crate::job::Job;

pub use config::{
    ConfigError, DEFAULT_CONCURRENCY, DEFAULT_FETCHES_PER_CONNECTION, DEFAULT_GRACE_PERIOD,
    DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_MAX_FETCH_CONNECTIONS, DEFAULT_SHUTDOWN_FLUSH_TIMEOUT,
    Queues, WorkerConfig,
};
pub use fail::{
    MAX_BACKTRACE_LINE_BYTES, MAX_BACKTRACE_LINES, MAX_ERRTYPE_BYTES, MAX_MESSAGE_BYTES,
};
pub use push::{PushError, PushId};

use push::PendingPush;

use queues::QueuePicker;

/// The errtype of FAILs the engine sends for jobs stopped by a shutdown.
pub const SHUTDOWN_ERRTYPE: &str = "Shutdown";
/// The errtype of FAILs for jobs that do not decode.
pub const INVALID_JOB_ERRTYPE: &str = "InvalidJob";
/// The errtype of FAILs for jobs whose handler panicked.
pub const PANIC_ERRTYPE: &str = "panic";

/// How often an ACK/FAIL answered by an error (other than `Job not found`) is sent in all.
const MAX_OUTCOME_SENDS: u32 = 3;
/// How long a fetch connection pauses its FETCHes after one was answered with an error.
const FETCH_ERROR_PAUSE: Duration = Duration::from_secs(1);
/// How long a connection whose FETCH brought a job waits for that job's outcome before it fetches
/// again: a quick job's ACK and the FETCH that refills its slot then leave together, in one write
/// on that connection, instead of the FETCH going first and the ACK to another connection.
pub const REFILL_HOLD: Duration = Duration::from_micros(250);
/// The shortest reply timeout given to a FETCH: the server blocks it for up to 2 s on empty queues,
/// and a FETCH that times out poisons its connection
/// (docs/protocol.md#a-timeout-poisons-the-connection).
pub const MIN_FETCH_REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Identifies one connection (socket) of the worker; never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Identifies one job handed to the adapter (or skipped); never reused. Jids are not used for this
/// because the OSS server does not enforce their uniqueness.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobToken(pub u64);

/// How a job ended, as the adapter reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The handler succeeded: ACK.
    Ok,
    /// The handler returned an error: FAIL.
    Failed {
        /// The error's type (e.g. a type name); cut to 100 bytes.
        errtype: String,
        /// The error's message; cut to 1000 bytes.
        message: String,
        /// Backtrace lines; only as many as the job's `backtrace` field asks for (≤ 50) are sent.
        backtrace: Vec<String>,
    },
    /// The handler panicked: FAIL with errtype `panic`.
    Panicked {
        /// The panic message.
        message: String,
    },
}

impl Outcome {
    /// A failure with no backtrace.
    pub fn failed(errtype: impl Into<String>, message: impl Into<String>) -> Self {
        Outcome::Failed {
            errtype: errtype.into(),
            message: message.into(),
            backtrace: Vec::new(),
        }
    }
}

/// Where the worker is in its life. Moves only forward:
/// `Running → Quiet → Terminating → Ending → Stopped` (Quiet may be skipped).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Lifecycle {
    /// Fetching and running jobs.
    Running,
    /// No more fetching; running jobs finish; BEAT continues. Left only by terminate or shutdown.
    Quiet,
    /// No more fetching; running jobs have until the grace period ends.
    Terminating,
    /// Grace period over (or nothing left to run): unfinished jobs were FAILed; waiting for the last
    /// confirmations, FETCH replies and push replies before END.
    Ending,
    /// Finished; [`Event::Stopped`] was emitted.
    Stopped,
}

/// How the server answered a job's ACK or FAIL.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Confirmation {
    /// ACK answered `+OK` (also for a jid the server no longer knew).
    Acked,
    /// FAIL answered `+OK`.
    Failed,
    /// FAIL answered `Job not found`: the job was already settled (an earlier send landed) or its
    /// reservation expired.
    NotFound,
    /// The server refused the ACK/FAIL three times; the job returns when its reservation expires.
    Rejected(ServerError),
}

/// Why a fetched job was not handed to the adapter.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// Its JSON does not decode as a job.
    Undecodable(String),
    /// It arrived after the shutdown grace period ended.
    ShuttingDown,
}

/// Why the worker stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// [`Worker::shutdown`] was called.
    Shutdown,
    /// The server asked the worker to terminate (operator, BEAT reply).
    Terminated,
    /// The worker cannot work with this server (refused password, not a Faktory server).
    Fatal(ConnectionError),
}

/// An ACK/FAIL the server never confirmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unconfirmed {
    /// The job's token.
    pub token: JobToken,
    /// The job's jid.
    pub jid: String,
    /// Whether it was an ACK (else a FAIL).
    pub ack: bool,
}

/// The end of a worker's life. Check it: [`StopReport::is_clean`] is false when the server refused
/// the worker for good ([`StopReason::Fatal`]: a wrong password, a certificate that does not
/// verify) or when outcomes or FETCHes were left to reservation expiry.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[must_use = "a worker can stop because the server refused it (StopReason::Fatal): check \
              StopReport::is_clean or the reason, and exit non-zero when it is not clean"]
pub struct StopReport {
    /// Why it stopped.
    pub reason: StopReason,
    /// Outcomes the server did not confirm before the hard stop (their jobs return when their
    /// reservations expire).
    pub unconfirmed: Vec<Unconfirmed>,
    /// FETCHes still unanswered at the hard stop.
    pub abandoned_fetches: usize,
}

impl StopReport {
    /// The worker stopped as asked (shutdown or terminate), every outcome was confirmed and no
    /// FETCH was abandoned. False after a [`StopReason::Fatal`] stop: a worker the server refused
    /// did no work, and a process that exits 0 then hides it.
    pub fn is_clean(&self) -> bool {
        !matches!(self.reason, StopReason::Fatal(_))
            && self.unconfirmed.is_empty()
            && self.abandoned_fetches == 0
    }
}

/// What the engine asks of the adapter, or tells it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// Open a connection to the server for this id, then report
    /// [`Worker::handle_connected`] or [`Worker::handle_connect_failed`].
    OpenConnection(ConnId),
    /// Close this connection (after writing the bytes already returned for it by
    /// [`Worker::poll_transmit`]); abort it if it is still connecting.
    CloseConnection(ConnId),
    /// Run this job; report [`Worker::handle_job_finished`] with the token.
    RunJob {
        /// Identifies the job in [`Worker::handle_job_finished`].
        token: JobToken,
        /// The job.
        job: Box<Job>,
    },
    /// The grace period is over and this job was FAILed: abort it if possible. Its outcome, if it
    /// is still reported, is ignored.
    CancelJob(JobToken),
    /// The server answered the job's ACK or FAIL. Emitted exactly once per token that was run (or
    /// skipped with a jid).
    JobConfirmed {
        /// The job's token.
        token: JobToken,
        /// The job's jid.
        jid: String,
        /// The answer.
        confirmation: Confirmation,
    },
    /// A fetched job was not handed to the adapter; when `jid` is known it was FAILed and a
    /// [`Event::JobConfirmed`] follows for `token`.
    JobSkipped {
        /// A fresh token for it.
        token: JobToken,
        /// Its jid, if known.
        jid: Option<String>,
        /// Why.
        reason: SkipReason,
    },
    /// A connection failed (for logs); it is reopened after a backoff when still needed.
    ConnectionFailed {
        /// Which one.
        conn: ConnId,
        /// Why.
        error: ConnectionError,
    },
    /// The server answered a command with an error (for logs); the engine already reacted.
    CommandFailed {
        /// On which connection.
        conn: ConnId,
        /// The command's verb.
        command: &'static str,
        /// The error.
        error: ServerError,
    },
    /// The answer to [`Worker::push`]: emitted exactly once per [`PushId`].
    Pushed {
        /// Which push.
        id: PushId,
        /// `Ok` once the server answered `+OK`.
        result: Result<(), PushError>,
    },
    /// The lifecycle moved on.
    StateChanged(Lifecycle),
    /// The worker is finished; nothing more will happen (but the answers,
    /// `Err(PushError::Stopped)`, to pushes made after it). Emitted once, last.
    Stopped(StopReport),
}

// ---------------------------------------------------------------------------------------------------
// internals

/// The hasher of the maps keyed by [`JobToken`]: one multiplication per key. Tokens are the
/// engine's own counter, never chosen by the server or the network, so the default hasher's
/// defence against crafted keys buys nothing there, and it costs a few hashes per job.
#[derive(Clone, Copy, Debug, Default)]
struct TokenHasher(u64);

impl Hasher for TokenHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        // An odd constant (2^64 / golden ratio): distinct tokens keep distinct low bits (the
        // bucket) and get mixed high bits (the map's tag).
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map keyed by [`JobToken`].
type TokenMap<V> = HashMap<JobToken, V, BuildHasherDefault<TokenHasher>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Control,
    Fetch(usize),
}

#[derive(Clone, Copy, Debug)]
enum Req {
    Fetch,
    Outcome(JobToken),
    Beat { state: Option<WorkerState> },
    Push(PushId),
}

#[derive(Debug)]
struct Conn {
    id: ConnId,
    role: Role,
    client: client::Connection,
    ready: bool,
    requests: VecDeque<(RequestId, Req)>,
    fetches: usize,
    fetch_paused_until: Option<Instant>,
    /// Its last FETCH came back empty: the queues look idle, so it keeps a single FETCH outstanding
    /// (each one may block 2 s, and shutdown waits for every one) until a FETCH brings a job again.
    idle: bool,
    /// Until then it does not FETCH: a job it brought is running, and a quick one's ACK should
    /// leave together with the refill ([`REFILL_HOLD`]).
    refill_hold: Option<Instant>,
    /// Input, a timeout or a send reached it since its events and bytes were last collected.
    touched: bool,
}

impl Conn {
    fn take_request(&mut self, id: RequestId) -> Option<Req> {
        if self.requests.front().is_some_and(|(rid, _)| *rid == id) {
            return self.requests.pop_front().map(|(_, r)| r);
        }
        let pos = self.requests.iter().position(|(rid, _)| *rid == id)?;
        self.requests.remove(pos).map(|(_, r)| r)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    /// Not open, not waiting: opened when wanted.
    Idle,
    /// Reopened (if still wanted) at this time.
    Waiting(Instant),
    /// Open as this connection.
    Open(ConnId),
}

#[derive(Debug)]
struct Slot {
    state: SlotState,
    backoff: Backoff,
}

#[derive(Debug)]
struct RunningJob {
    jid: String,
    jobtype: String,
    backtrace_lines: usize,
    /// The connection whose FETCH brought it.
    conn: ConnId,
}

#[derive(Debug)]
enum OutcomeKind {
    Ack,
    Fail(Fail),
}

#[derive(Debug)]
struct OutcomeRec {
    jid: String,
    kind: OutcomeKind,
    in_flight: bool,
    errors: u32,
    /// The connection that brought the job: its ACK/FAIL goes there when it can.
    home: Option<ConnId>,
}

/// The worker engine. See the [module documentation](self).
#[derive(Debug)]
pub struct Worker {
    wid: String,
    concurrency: usize,
    heartbeat_interval: Duration,
    grace_period: Duration,
    flush_timeout: Duration,
    fetches_per_connection: usize,
    fetch_timeout: Duration,
    max_unconfirmed: usize,
    client_options: ClientOptions,
    picker: QueuePicker,
    /// The FETCH of every connection when its queue list never changes (strict order): built
    /// once instead of for each FETCH.
    fixed_fetch: Option<Command>,
    rng: SplitMix64,

    lifecycle: Lifecycle,
    stop_reason: StopReason,
    grace_deadline: Option<Instant>,
    flush_deadline: Option<Instant>,
    terminate_reported: bool,
    ever_ready: bool,

    conns: Vec<Conn>,
    control: Slot,
    fetch_slots: Vec<Slot>,
    next_conn: u64,
    next_token: u64,
    rotation: usize,

    running: TokenMap<RunningJob>,
    outcomes: TokenMap<OutcomeRec>,
    outcome_queue: VecDeque<JobToken>,
    delayed: Vec<(Instant, JobToken)>,
    outstanding_fetches: usize,

    /// Pushes not answered yet (queued or in flight).
    pushes: BTreeMap<PushId, PendingPush>,
    /// Pushes waiting for a connection, oldest first.
    push_queue: VecDeque<PushId>,
    next_push: u64,

    beat_due: Instant,
    beat_in_flight: bool,
    rss_kb: Option<u64>,

    transmits: VecDeque<(ConnId, Bytes)>,
    events: VecDeque<Event>,

    /// Inside [`Worker::begin_batch`] … [`Worker::end_batch`]: inputs defer their processing.
    batching: bool,
    /// The latest `now` of an input whose processing is deferred (the batch runs at that time).
    deferred: Option<Instant>,
    /// [`Worker::poll_timeout`], computed when the engine last ran.
    timeout: Option<Instant>,
}

/// Logs how a job ended, here once for every adapter: DEBUG on success; on failure WARN with
/// the job's `jid`, `jobtype`, the `errtype` and the `error` message on the event itself (so they
/// show at `RUST_LOG=warn`, where the job's span is not printed).
fn log_outcome(jid: &str, jobtype: &str, outcome: &Outcome) {
    match outcome {
        Outcome::Ok => tracing::debug!(jid, jobtype, "faktory job succeeded"),
        Outcome::Failed {
            errtype, message, ..
        } => {
            tracing::warn!(jid, jobtype, errtype = %errtype, error = %message, "faktory job failed");
        }
        Outcome::Panicked { message } => tracing::warn!(
            jid,
            jobtype,
            errtype = PANIC_ERRTYPE,
            error = %message,
            "faktory job panicked"
        ),
        #[allow(unreachable_patterns)]
        _ => {}
    }
}

/// Queues `bytes` for `conn`, appending to what is already queued for it (one buffer per
/// connection per drain).
fn push_transmit(queue: &mut VecDeque<(ConnId, Bytes)>, conn: ConnId, bytes: Bytes) {
    match queue.iter_mut().find(|(c, _)| *c == conn) {
        Some((_, queued)) => {
            let mut joined = bytes::BytesMut::with_capacity(queued.len() + bytes.len());
            joined.extend_from_slice(queued);
            joined.extend_from_slice(&bytes);
            *queued = joined.freeze();
        }
        None => queue.push_back((conn, bytes)),
    }
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl Worker {
    /// A new worker; its first event is [`Event::OpenConnection`] for the control connection.
    pub fn new(config: WorkerConfig, now: Instant) -> Result<Worker, ConfigError> {
        config.validate()?;
        let fetch_connections = config.fetch_connections();
        let WorkerConfig {
            concurrency,
            queues,
            wid,
            hostname,
            pid,
            labels,
            heartbeat_interval,
            grace_period,
            shutdown_flush_timeout,
            backoff,
            fetches_per_connection,
            seed,
            client: mut client_options,
            ..
        } = config;
        let wid = wid.unwrap_or_else(crate::job::new_wid);
        let seed = seed.unwrap_or_else(|| fnv1a(&wid));
        let mut rng = SplitMix64::new(seed);
        client_options.wid = Some(wid.clone());
        client_options.hostname = hostname;
        client_options.pid = pid;
        client_options.labels = labels;
        let control = Slot {
            state: SlotState::Idle,
            backoff: Backoff::new(backoff.clone(), rng.next_u64()),
        };
        let fetch_slots = (0..fetch_connections)
            .map(|_| Slot {
                state: SlotState::Idle,
                backoff: Backoff::new(backoff.clone(), rng.next_u64()),
            })
            .collect();
        let picker = QueuePicker::new(&queues);
        let mut worker = Worker {
            wid,
            concurrency,
            heartbeat_interval,
            grace_period,
            flush_timeout: shutdown_flush_timeout,
            fetches_per_connection,
            fetch_timeout: client_options.reply_timeout.max(MIN_FETCH_REPLY_TIMEOUT),
            max_unconfirmed: concurrency.saturating_mul(2).saturating_add(16),
            client_options,
            fixed_fetch: picker.fixed().map(|queues| Command::Fetch(queues.to_vec())),
            picker,
            rng,
            lifecycle: Lifecycle::Running,
            stop_reason: StopReason::Shutdown,
            grace_deadline: None,
            flush_deadline: None,
            terminate_reported: false,
            ever_ready: false,
            conns: Vec::new(),
            control,
            fetch_slots,
            next_conn: 0,
            next_token: 0,
            rotation: 0,
            running: TokenMap::default(),
            outcomes: TokenMap::default(),
            outcome_queue: VecDeque::new(),
            delayed: Vec::new(),
            outstanding_fetches: 0,
            pushes: BTreeMap::new(),
            push_queue: VecDeque::new(),
            next_push: 0,
            beat_due: now,
            beat_in_flight: false,
            rss_kb: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            batching: false,
            deferred: None,
            timeout: None,
        };
        worker.open(Role::Control, now);
        worker.timeout = worker.compute_timeout();
        Ok(worker)
    }

    // ----- accessors ------------------------------------------------------------------------------

    /// The worker id used in every HELLO and BEAT.
    pub fn wid(&self) -> &str {
        &self.wid
    }

    /// The current lifecycle state.
    pub fn lifecycle(&self) -> Lifecycle {
        self.lifecycle
    }

    /// Whether [`Event::Stopped`] was emitted.
    pub fn is_stopped(&self) -> bool {
        self.lifecycle == Lifecycle::Stopped
    }

    /// Jobs handed out and not finished (nor cancelled).
    pub fn running_jobs(&self) -> usize {
        self.running.len()
    }

    /// FETCHes sent and not answered.
    pub fn outstanding_fetches(&self) -> usize {
        self.outstanding_fetches
    }

    /// ACK/FAILs not yet confirmed by the server (queued or in flight).
    pub fn unconfirmed_outcomes(&self) -> usize {
        self.outcomes.len()
    }

    /// Pushes made with [`Worker::push`] and not answered yet (waiting for a connection or for
    /// the server's reply).
    pub fn pending_pushes(&self) -> usize {
        self.pushes.len()
    }

    /// Connections currently open or opening.
    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    /// The fewest bytes worth reading on `conn` ([`client::Connection::read_threshold`]): an
    /// adapter that sets it as the socket's receive low-water mark after each turn is woken once
    /// per job instead of once per reply; see [Reading less often](self#reading-less-often).
    /// 1 for a connection the engine does not know.
    pub fn read_threshold(&self, conn: ConnId) -> usize {
        self.conns
            .iter()
            .find(|c| c.id == conn)
            .map_or(1, |c| c.client.read_threshold())
    }

    /// Whether `conn` is the control connection (BEAT) rather than a fetch connection.
    pub fn is_control_connection(&self, conn: ConnId) -> bool {
        self.conns
            .iter()
            .any(|c| c.id == conn && c.role == Role::Control)
    }

    // ----- inputs ---------------------------------------------------------------------------------

    /// Starts a batch of inputs: until [`Worker::end_batch`], each input (`handle_*`, `push`,
    /// `quiet`, `shutdown`…) is recorded but the engine runs once, for all of them, at the end.
    /// A driver that hands over several reads and finished jobs per turn saves a pass over every
    /// connection per input. Inside a batch the accessors ([`Worker::lifecycle`],
    /// [`Worker::running_jobs`]…) reflect what ran before it; [`Worker::poll_transmit`] and
    /// [`Worker::poll_event`] end the batch first, so nothing is ever left unprocessed.
    pub fn begin_batch(&mut self) {
        self.batching = true;
    }

    /// Ends a batch ([`Worker::begin_batch`]): the engine runs for every input of the batch, as of
    /// the latest `now` given to one of them. Without a batch it does nothing.
    pub fn end_batch(&mut self) {
        self.batching = false;
        if let Some(now) = self.deferred.take() {
            self.pump(now);
        }
    }

    /// After an input: run the engine now, or at the end of the batch.
    fn after_input(&mut self, now: Instant) {
        if self.batching {
            self.deferred = Some(self.deferred.map_or(now, |d| d.max(now)));
        } else {
            self.pump(now);
        }
    }

    /// The socket for `conn` is connected (TCP and TLS): the server's HI is expected next.
    pub fn handle_connected(&mut self, conn: ConnId, now: Instant) {
        let _ = conn;
        self.after_input(now);
    }

    /// Connecting `conn` failed; it is closed and its role reopened after a backoff (unless the
    /// failure is permanent and no connection was ever ready: then the worker stops, Fatal).
    pub fn handle_connect_failed(&mut self, conn: ConnId, failure: &ConnectFailure, now: Instant) {
        if let Some(c) = self.conn_mut(conn) {
            c.client.handle_connect_failed(failure.clone());
            c.touched = true;
        }
        self.after_input(now);
    }

    /// Bytes read from `conn`.
    pub fn handle_input(&mut self, conn: ConnId, data: &[u8], now: Instant) {
        if let Some(c) = self.conn_mut(conn) {
            c.client.handle_input(data, now);
            c.touched = true;
        }
        self.after_input(now);
    }

    /// `conn` reached EOF.
    pub fn handle_eof(&mut self, conn: ConnId, now: Instant) {
        if let Some(c) = self.conn_mut(conn) {
            c.client.handle_eof(now);
            c.touched = true;
        }
        self.after_input(now);
    }

    /// Reading from or writing to `conn` failed; `reason` says how (the OS error's text).
    pub fn handle_transport_error(&mut self, conn: ConnId, reason: &str, now: Instant) {
        if let Some(c) = self.conn_mut(conn) {
            c.client.handle_transport_error(reason);
            c.touched = true;
        }
        self.after_input(now);
    }

    /// Time passed; call at (or after) [`Worker::poll_timeout`]. Spurious calls are harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.lifecycle == Lifecycle::Stopped {
            return;
        }
        for c in &mut self.conns {
            if c.client.poll_timeout().is_some_and(|t| t <= now) {
                c.client.handle_timeout(now);
                c.touched = true;
            }
            if c.fetch_paused_until.is_some_and(|t| t <= now) {
                c.fetch_paused_until = None;
            }
            if c.refill_hold.is_some_and(|t| t <= now) {
                c.refill_hold = None;
            }
        }
        if let SlotState::Waiting(t) = self.control.state {
            if t <= now {
                self.control.state = SlotState::Idle;
                self.open(Role::Control, now);
            }
        }
        for slot in &mut self.fetch_slots {
            if let SlotState::Waiting(t) = slot.state {
                if t <= now {
                    slot.state = SlotState::Idle;
                }
            }
        }
        if !self.delayed.is_empty() {
            let mut i = 0;
            while i < self.delayed.len() {
                match self.delayed.get(i) {
                    Some(&(t, token)) if t <= now => {
                        self.delayed.swap_remove(i);
                        self.outcome_queue.push_back(token);
                    }
                    _ => i += 1,
                }
            }
        }
        self.expire_pushes(now);
        self.after_input(now);
    }

    /// The job `token` finished. Returns `false` (and ignores the outcome) when the token is not
    /// running: unknown, already reported, or cancelled by [`Event::CancelJob`].
    pub fn handle_job_finished(&mut self, token: JobToken, outcome: Outcome, now: Instant) -> bool {
        let Some(job) = self.running.remove(&token) else {
            return false;
        };
        log_outcome(&job.jid, &job.jobtype, &outcome);
        let kind = match outcome {
            Outcome::Ok => OutcomeKind::Ack,
            Outcome::Failed {
                errtype,
                message,
                backtrace,
            } => OutcomeKind::Fail(fail::fail_payload(
                &job.jid,
                errtype,
                message,
                backtrace,
                job.backtrace_lines,
            )),
            Outcome::Panicked { message } => OutcomeKind::Fail(fail::fail_payload(
                &job.jid,
                PANIC_ERRTYPE.to_owned(),
                message,
                Vec::new(),
                0,
            )),
        };
        // The job's connection may fetch again: with this outcome, in one write.
        if let Some(c) = self.conn_mut(job.conn) {
            c.refill_hold = None;
        }
        self.queue_outcome_from(token, job.jid, kind, Some(job.conn));
        self.after_input(now);
        true
    }

    /// Pushes `job` over the worker's own connections (a handler pushing a follow-up job, say).
    /// The answer is one [`Event::Pushed`] with the returned id; see the module docs
    /// ([Pushing jobs](self#pushing-jobs)).
    ///
    /// The job is prepared first ([`request::prepare_push`](crate::request::prepare_push): times
    /// relative to the push must already be resolved, the job must validate, `retry` 25 is sent
    /// when unset); a job that does not pass is answered at once with [`PushError::Invalid`], as
    /// is any push once the worker has stopped ([`PushError::Stopped`]). Like after every input,
    /// drain [`Worker::poll_transmit`] and [`Worker::poll_event`] afterwards.
    pub fn push(&mut self, job: Job, now: Instant) -> PushId {
        let id = PushId(self.next_push);
        self.next_push += 1;
        let mut job = job;
        if let Err(e) = crate::request::prepare_push(&mut job) {
            self.answer_push(id, Err(PushError::Invalid(Arc::new(e))));
            return id;
        }
        if self.lifecycle == Lifecycle::Stopped {
            self.answer_push(id, Err(PushError::Stopped));
            return id;
        }
        self.pushes.insert(
            id,
            PendingPush {
                command: Some(Command::Push(Box::new(job))),
                since: now,
                deadline: now.checked_add(self.client_options.reply_timeout),
            },
        );
        self.push_queue.push_back(id);
        self.after_input(now);
        id
    }

    /// The process's resident memory in KiB, sent with the next BEATs.
    pub fn set_rss_kb(&mut self, rss_kb: u64) {
        self.rss_kb = Some(rss_kb);
    }

    /// Quiet started locally (e.g. SIGTSTP): stop fetching, finish running jobs, keep beating; the
    /// next BEAT (sent at once) reports `current_state: quiet`. No effect unless running.
    pub fn quiet(&mut self, now: Instant) {
        if self.lifecycle == Lifecycle::Running {
            self.set_lifecycle(Lifecycle::Quiet);
            self.beat_due = now;
        }
        self.after_input(now);
    }

    /// Stop (a signal, the user's future): terminate started locally. See the module docs. No
    /// effect once terminating.
    pub fn shutdown(&mut self, now: Instant) {
        if matches!(self.lifecycle, Lifecycle::Running | Lifecycle::Quiet) {
            self.enter_terminating(StopReason::Shutdown, true, now);
        }
        self.after_input(now);
    }

    /// Stop without waiting for running jobs (e.g. a second Ctrl-C): like [`Worker::shutdown`], but
    /// the grace period ends now, so running jobs are FAILed and cancelled at once. The engine still
    /// waits for outstanding FETCH replies and for the FAILs' confirmations (at most
    /// `shutdown_flush_timeout`).
    pub fn shutdown_now(&mut self, now: Instant) {
        if matches!(self.lifecycle, Lifecycle::Running | Lifecycle::Quiet) {
            self.enter_terminating(StopReason::Shutdown, true, now);
        }
        if self.lifecycle == Lifecycle::Terminating {
            self.grace_deadline = Some(now);
        }
        self.after_input(now);
    }

    // ----- outputs --------------------------------------------------------------------------------

    /// Bytes to write to a connection. Drain this before [`Worker::poll_event`].
    ///
    /// A drain (calling this until `None`) gives at most one buffer per connection: everything
    /// queued for a connection since the last drain (an ACK and the FETCH that refills its slot,
    /// say) comes as one buffer, so it can go out in one write.
    pub fn poll_transmit(&mut self) -> Option<(ConnId, Bytes)> {
        self.end_batch();
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.end_batch();
        self.events.pop_front()
    }

    /// When [`Worker::handle_timeout`] must be called next; `None` when stopped. Inside a batch
    /// with deferred inputs, the batch's time: the engine has to run (end the batch, or call
    /// `handle_timeout`).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.deferred.is_some() {
            return self.deferred;
        }
        debug_assert_eq!(self.timeout, self.compute_timeout(), "stale cached timeout");
        self.timeout
    }

    /// The earliest deadline of anything the engine waits for (cached by [`Worker::pump`]).
    fn compute_timeout(&self) -> Option<Instant> {
        if self.lifecycle == Lifecycle::Stopped {
            return None;
        }
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        for c in &self.conns {
            consider(c.client.poll_timeout());
            consider(c.fetch_paused_until);
            consider(c.refill_hold);
        }
        if let SlotState::Waiting(t) = self.control.state {
            consider(Some(t));
        }
        for slot in &self.fetch_slots {
            if let SlotState::Waiting(t) = slot.state {
                consider(Some(t));
            }
        }
        for (t, _) in &self.delayed {
            consider(Some(*t));
        }
        for id in &self.push_queue {
            consider(self.pushes.get(id).and_then(|p| p.deadline));
        }
        if !self.beat_in_flight && self.beat_connection().is_some() {
            consider(Some(self.beat_due));
        }
        match self.lifecycle {
            Lifecycle::Terminating => consider(self.grace_deadline),
            Lifecycle::Ending => consider(self.flush_deadline),
            _ => {}
        }
        next
    }

    // ----- machinery ------------------------------------------------------------------------------

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns.iter_mut().find(|c| c.id == id)
    }

    fn control_index(&self) -> Option<usize> {
        self.conns
            .iter()
            .position(|c| c.role == Role::Control && c.ready)
    }

    /// Where a BEAT goes: the control connection; while it is down, a ready fetch connection
    /// without an outstanding FETCH (so the server does not reap the worker meanwhile).
    fn beat_connection(&self) -> Option<usize> {
        self.control_index().or_else(|| {
            self.conns
                .iter()
                .position(|c| c.ready && c.fetches == 0 && c.role != Role::Control)
        })
    }

    fn slot_mut(&mut self, role: Role) -> Option<&mut Slot> {
        match role {
            Role::Control => Some(&mut self.control),
            Role::Fetch(i) => self.fetch_slots.get_mut(i),
        }
    }

    /// Queues `event` for the adapter, and logs what is worth logging (once, here, for every
    /// adapter): connection and command failures and skipped jobs at WARN, lifecycle changes at
    /// INFO, confirmations at DEBUG.
    fn emit(&mut self, event: Event) {
        match &event {
            Event::JobConfirmed {
                jid, confirmation, ..
            } => tracing::debug!(jid = %jid, ?confirmation, "faktory job outcome confirmed"),
            Event::JobSkipped { jid, reason, .. } => {
                tracing::warn!(jid = ?jid, ?reason, "faktory job skipped");
            }
            Event::ConnectionFailed { conn, error } => {
                tracing::warn!(conn = conn.0, %error, "faktory connection failed");
            }
            Event::CommandFailed {
                conn,
                command,
                error,
            } => tracing::warn!(conn = conn.0, command, %error, "faktory command failed"),
            Event::StateChanged(state) => tracing::info!(?state, "faktory worker lifecycle"),
            Event::Pushed { id, result } => match result {
                Ok(()) => tracing::debug!(push = id.0, "faktory push accepted"),
                Err(error) => tracing::debug!(push = id.0, %error, "faktory push failed"),
            },
            Event::Stopped(report) => match &report.reason {
                StopReason::Fatal(error) => tracing::error!(
                    %error,
                    "faktory worker stopped: the server refused it (fix the configuration)"
                ),
                reason if report.is_clean() => {
                    tracing::info!(?reason, "faktory worker stopped");
                }
                reason => tracing::warn!(
                    ?reason,
                    unconfirmed = report.unconfirmed.len(),
                    abandoned_fetches = report.abandoned_fetches,
                    "faktory worker stopped; some outcomes were not confirmed (their jobs return \
                     when their reservations expire)"
                ),
            },
            _ => {}
        }
        self.events.push_back(event);
    }

    fn set_lifecycle(&mut self, state: Lifecycle) {
        if self.lifecycle != state {
            self.lifecycle = state;
            self.emit(Event::StateChanged(state));
        }
    }

    fn new_token(&mut self) -> JobToken {
        let t = JobToken(self.next_token);
        self.next_token += 1;
        t
    }

    fn open(&mut self, role: Role, now: Instant) {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        let client = client::Connection::new(self.client_options.clone(), now);
        self.conns.push(Conn {
            id,
            role,
            client,
            ready: false,
            requests: VecDeque::new(),
            fetches: 0,
            fetch_paused_until: None,
            idle: false,
            refill_hold: None,
            touched: true,
        });
        if let Some(slot) = self.slot_mut(role) {
            slot.state = SlotState::Open(id);
        }
        self.emit(Event::OpenConnection(id));
    }

    /// After any input: react to the connections' events, move the lifecycle on, send what can be
    /// sent, collect the bytes to write.
    fn pump(&mut self, now: Instant) {
        if self.lifecycle == Lifecycle::Stopped {
            return;
        }
        self.drain_connection_events(now);
        self.advance(now);
        if self.lifecycle != Lifecycle::Stopped {
            self.dispatch(now);
            self.advance(now);
        }
        self.flush_transmits();
        self.timeout = self.compute_timeout();
    }

    fn flush_transmits(&mut self) {
        for c in self.conns.iter_mut().filter(|c| c.touched) {
            c.touched = false;
            while let Some(bytes) = c.client.poll_transmit() {
                push_transmit(&mut self.transmits, c.id, bytes);
            }
        }
    }

    fn drain_connection_events(&mut self, now: Instant) {
        let mut i = 0;
        while let Some(id) = self.conns.get(i).map(|c| c.id) {
            while let Some(ev) = self
                .conns
                .get_mut(i)
                .filter(|c| c.id == id && c.touched)
                .and_then(|c| c.client.poll_event())
            {
                self.on_connection_event(id, ev, now);
                if self.lifecycle == Lifecycle::Stopped {
                    return;
                }
            }
            if self.conns.get(i).map(|c| c.id) == Some(id) {
                i += 1;
            }
        }
    }

    fn on_connection_event(&mut self, id: ConnId, ev: client::Event, now: Instant) {
        match ev {
            client::Event::Ready => {
                let Some(c) = self.conn_mut(id) else { return };
                c.ready = true;
                let role = c.role;
                self.ever_ready = true;
                if let Some(slot) = self.slot_mut(role) {
                    slot.backoff.reset();
                }
                if role == Role::Control {
                    // BEAT at once: a HELLO does not refresh the heartbeat of a worker record that
                    // other connections kept alive, and a new record must learn a quiet/terminate.
                    self.beat_due = now;
                }
            }
            client::Event::Reply { id: rid, result } => {
                let Some(c) = self.conn_mut(id) else { return };
                let Some(req) = c.take_request(rid) else {
                    return;
                };
                match req {
                    Req::Fetch => {
                        c.fetches = c.fetches.saturating_sub(1);
                        self.outstanding_fetches = self.outstanding_fetches.saturating_sub(1);
                        self.on_fetch_reply(id, result, now);
                    }
                    Req::Outcome(token) => self.on_outcome_reply(id, token, result, now),
                    Req::Beat { state } => self.on_beat_reply(id, state, result, now),
                    Req::Push(push) => {
                        let answer = match result {
                            Ok(Reply::Ok) => Ok(()),
                            Ok(other) => Err(PushError::UnexpectedReply(format!("{other:?}"))),
                            Err(e) => Err(PushError::Server(e)),
                        };
                        self.pushes.remove(&push);
                        self.answer_push(push, answer);
                    }
                }
            }
            client::Event::Closed { error, .. } => self.on_connection_closed(id, error, now),
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }

    fn on_fetch_reply(&mut self, conn: ConnId, result: Result<Reply, ServerError>, now: Instant) {
        if let Some(c) = self.conn_mut(conn) {
            c.idle = matches!(result, Ok(Reply::Job(None)));
        }
        match result {
            Ok(Reply::Job(Some(job))) => self.on_fetched(conn, job, now),
            Ok(Reply::UndecodableJob { jid, error, .. }) => {
                let token = self.new_token();
                let jid = jid.filter(|j| !j.is_empty());
                if let Some(j) = &jid {
                    let fail = fail::fail_payload(
                        j,
                        INVALID_JOB_ERRTYPE.to_owned(),
                        error.clone(),
                        Vec::new(),
                        0,
                    );
                    self.queue_outcome(token, j.clone(), OutcomeKind::Fail(fail));
                }
                self.emit(Event::JobSkipped {
                    token,
                    jid,
                    reason: SkipReason::Undecodable(error),
                });
            }
            Ok(_) => {}
            Err(error) => {
                if let Some(c) = self.conn_mut(conn) {
                    c.fetch_paused_until = Some(now + FETCH_ERROR_PAUSE);
                }
                self.emit(Event::CommandFailed {
                    conn,
                    command: "FETCH",
                    error,
                });
            }
        }
    }

    fn on_fetched(&mut self, conn: ConnId, job: Box<Job>, now: Instant) {
        let token = self.new_token();
        let run = match self.lifecycle {
            Lifecycle::Running | Lifecycle::Quiet => true,
            Lifecycle::Terminating => self.grace_deadline.is_none_or(|g| now < g),
            Lifecycle::Ending | Lifecycle::Stopped => false,
        };
        if run {
            self.running.insert(
                token,
                RunningJob {
                    jid: job.jid.clone(),
                    jobtype: job.jobtype.clone(),
                    backtrace_lines: job.backtrace_lines(),
                    conn,
                },
            );
            if let Some(c) = self.conn_mut(conn) {
                c.refill_hold = now.checked_add(REFILL_HOLD);
            }
            self.emit(Event::RunJob { token, job });
        } else {
            let fail = fail::fail_payload(
                &job.jid,
                SHUTDOWN_ERRTYPE.to_owned(),
                "the worker was shutting down when the job arrived; it was not started".to_owned(),
                Vec::new(),
                0,
            );
            self.queue_outcome(token, job.jid.clone(), OutcomeKind::Fail(fail));
            self.emit(Event::JobSkipped {
                token,
                jid: Some(job.jid),
                reason: SkipReason::ShuttingDown,
            });
        }
    }

    fn on_outcome_reply(
        &mut self,
        conn: ConnId,
        token: JobToken,
        result: Result<Reply, ServerError>,
        now: Instant,
    ) {
        let Some(rec) = self.outcomes.get_mut(&token) else {
            return;
        };
        rec.in_flight = false;
        let is_ack = matches!(rec.kind, OutcomeKind::Ack);
        let confirmation = match result {
            Ok(_) if is_ack => Confirmation::Acked,
            Ok(_) => Confirmation::Failed,
            Err(e) if !is_ack && e.is_job_not_found() => Confirmation::NotFound,
            Err(e) => {
                rec.errors += 1;
                let errors = rec.errors;
                self.emit(Event::CommandFailed {
                    conn,
                    command: if is_ack { "ACK" } else { "FAIL" },
                    error: e.clone(),
                });
                if errors >= MAX_OUTCOME_SENDS {
                    Confirmation::Rejected(e)
                } else {
                    self.delayed
                        .push((now + Duration::from_secs(u64::from(errors)), token));
                    return;
                }
            }
        };
        self.confirm(token, confirmation);
    }

    fn confirm(&mut self, token: JobToken, confirmation: Confirmation) {
        if let Some(rec) = self.outcomes.remove(&token) {
            self.emit(Event::JobConfirmed {
                token,
                jid: rec.jid,
                confirmation,
            });
        }
    }

    fn on_beat_reply(
        &mut self,
        conn: ConnId,
        state: Option<WorkerState>,
        result: Result<Reply, ServerError>,
        now: Instant,
    ) {
        self.beat_in_flight = false;
        if state == Some(WorkerState::Terminate) {
            self.terminate_reported = true;
        }
        match result {
            Ok(Reply::Beat(Some(WorkerState::Quiet))) => {
                if self.lifecycle == Lifecycle::Running {
                    self.set_lifecycle(Lifecycle::Quiet);
                }
            }
            Ok(Reply::Beat(Some(WorkerState::Terminate))) => {
                if matches!(self.lifecycle, Lifecycle::Running | Lifecycle::Quiet) {
                    self.enter_terminating(StopReason::Terminated, false, now);
                }
            }
            Ok(_) => {}
            Err(error) => {
                let unknown = error.is_unknown_worker();
                self.emit(Event::CommandFailed {
                    conn,
                    command: "BEAT",
                    error,
                });
                // The worker record is gone: a new control connection re-creates it with its
                // HELLO. (When the BEAT went over a fetch connection, the control connection is
                // already being reopened.)
                if unknown && self.is_control_connection(conn) {
                    self.restart_connection(conn, now);
                }
            }
        }
    }

    /// Closes `conn` (END after what it carries) and reopens its role after a backoff. Its
    /// unanswered ACK/FAILs are sent again elsewhere.
    fn restart_connection(&mut self, id: ConnId, now: Instant) {
        let Some(pos) = self.conns.iter().position(|c| c.id == id) else {
            return;
        };
        let mut conn = self.conns.remove(pos);
        if conn.fetches > 0 {
            // Never close a connection with a FETCH outstanding; only the control connection is
            // restarted, and it carries none. Keep it if this ever happens.
            self.conns.insert(pos, conn);
            return;
        }
        if conn.ready {
            let _ = conn.client.send(&Command::End, now);
        }
        while let Some(bytes) = conn.client.poll_transmit() {
            push_transmit(&mut self.transmits, id, bytes);
        }
        self.release_requests(&mut conn, &ConnectionError::Closed);
        self.emit(Event::CloseConnection(id));
        self.schedule_reopen(conn.role, now);
    }

    /// Forgets what `conn` carried: its FETCHes, its BEAT; its ACK/FAILs go back to the queue;
    /// its PUSHes are answered [`PushError::OutcomeUnknown`] (`reason`).
    fn release_requests(&mut self, conn: &mut Conn, reason: &ConnectionError) {
        for (_, req) in conn.requests.drain(..) {
            match req {
                Req::Fetch => {
                    self.outstanding_fetches = self.outstanding_fetches.saturating_sub(1);
                }
                Req::Outcome(token) => {
                    if let Some(rec) = self.outcomes.get_mut(&token) {
                        if rec.in_flight {
                            rec.in_flight = false;
                            self.outcome_queue.push_front(token);
                        }
                    }
                }
                Req::Beat { .. } => self.beat_in_flight = false,
                Req::Push(id) => {
                    self.pushes.remove(&id);
                    self.answer_push(id, Err(PushError::OutcomeUnknown(reason.clone())));
                }
            }
        }
        conn.fetches = 0;
    }

    fn schedule_reopen(&mut self, role: Role, now: Instant) {
        if let Some(slot) = self.slot_mut(role) {
            let delay = slot.backoff.next_delay();
            slot.state = SlotState::Waiting(now + delay);
        }
    }

    fn on_connection_closed(&mut self, id: ConnId, error: Option<ConnectionError>, now: Instant) {
        let Some(pos) = self.conns.iter().position(|c| c.id == id) else {
            return;
        };
        let mut conn = self.conns.remove(pos);
        let error = error.unwrap_or(ConnectionError::Eof);
        // A socket flush may still hold bytes; they are useless now.
        self.release_requests(&mut conn, &error);
        self.emit(Event::ConnectionFailed {
            conn: id,
            error: error.clone(),
        });
        self.emit(Event::CloseConnection(id));
        let fatal = match &error {
            ConnectionError::Connect(failure) => failure.permanent,
            ConnectionError::Auth(_)
            | ConnectionError::PasswordRequired
            | ConnectionError::BadGreeting(_) => true,
            _ => false,
        };
        if fatal && !self.ever_ready {
            self.finish(StopReason::Fatal(error), now);
            return;
        }
        self.schedule_reopen(conn.role, now);
    }

    fn queue_outcome(&mut self, token: JobToken, jid: String, kind: OutcomeKind) {
        self.queue_outcome_from(token, jid, kind, None);
    }

    fn queue_outcome_from(
        &mut self,
        token: JobToken,
        jid: String,
        kind: OutcomeKind,
        home: Option<ConnId>,
    ) {
        self.outcomes.insert(
            token,
            OutcomeRec {
                jid,
                kind,
                in_flight: false,
                errors: 0,
                home,
            },
        );
        self.outcome_queue.push_back(token);
    }

    fn enter_terminating(&mut self, reason: StopReason, local: bool, now: Instant) {
        self.stop_reason = reason;
        self.grace_deadline = Some(now + self.grace_period);
        self.terminate_reported = !local;
        if local {
            self.beat_due = now;
        }
        self.set_lifecycle(Lifecycle::Terminating);
    }

    fn enter_ending(&mut self, now: Instant) {
        let mut left: Vec<(JobToken, RunningJob)> = self.running.drain().collect();
        left.sort_by_key(|(t, _)| *t);
        let grace = self.grace_period.as_secs_f64();
        for (token, job) in left {
            self.emit(Event::CancelJob(token));
            let fail = fail::fail_payload(
                &job.jid,
                SHUTDOWN_ERRTYPE.to_owned(),
                format!(
                    "the job was still running when the worker's shutdown grace period ({grace}s) ended"
                ),
                Vec::new(),
                0,
            );
            self.queue_outcome(token, job.jid, OutcomeKind::Fail(fail));
        }
        self.flush_deadline = Some(now + self.flush_timeout);
        self.set_lifecycle(Lifecycle::Ending);
    }

    fn advance(&mut self, now: Instant) {
        if self.lifecycle == Lifecycle::Terminating {
            let grace_over = self.grace_deadline.is_some_and(|g| now >= g);
            if grace_over || (self.running.is_empty() && self.outstanding_fetches == 0) {
                self.enter_ending(now);
            }
        }
        if self.lifecycle == Lifecycle::Ending {
            let hard_stop = self.flush_deadline.is_some_and(|d| now >= d);
            let settled = self.outcomes.is_empty()
                && self.pushes.is_empty()
                && self.outstanding_fetches == 0
                && !self.beat_in_flight
                && (self.terminate_reported || self.control_index().is_none());
            if hard_stop || settled {
                let reason = self.stop_reason.clone();
                self.finish(reason, now);
            }
        }
    }

    fn finish(&mut self, reason: StopReason, now: Instant) {
        for mut conn in std::mem::take(&mut self.conns) {
            if conn.ready && !conn.client.is_closed() {
                let _ = conn.client.send(&Command::End, now);
            }
            while let Some(bytes) = conn.client.poll_transmit() {
                push_transmit(&mut self.transmits, conn.id, bytes);
            }
            self.emit(Event::CloseConnection(conn.id));
        }
        let mut running: Vec<(JobToken, RunningJob)> = self.running.drain().collect();
        running.sort_by_key(|(t, _)| *t);
        let mut unconfirmed: Vec<Unconfirmed> = running
            .into_iter()
            .map(|(token, job)| {
                self.emit(Event::CancelJob(token));
                Unconfirmed {
                    token,
                    jid: job.jid,
                    ack: false,
                }
            })
            .collect();
        unconfirmed.extend(self.outcomes.drain().map(|(token, rec)| Unconfirmed {
            token,
            jid: rec.jid,
            ack: matches!(rec.kind, OutcomeKind::Ack),
        }));
        unconfirmed.sort_by_key(|u| u.token);
        self.push_queue.clear();
        for (id, push) in std::mem::take(&mut self.pushes) {
            let error = if push.command.is_some() {
                PushError::Stopped
            } else {
                PushError::OutcomeUnknown(ConnectionError::Closed)
            };
            self.answer_push(id, Err(error));
        }
        let report = StopReport {
            reason,
            unconfirmed,
            abandoned_fetches: self.outstanding_fetches,
        };
        self.outstanding_fetches = 0;
        self.outcome_queue.clear();
        self.delayed.clear();
        self.beat_in_flight = false;
        self.control.state = SlotState::Idle;
        for slot in &mut self.fetch_slots {
            slot.state = SlotState::Idle;
        }
        self.set_lifecycle(Lifecycle::Stopped);
        self.emit(Event::Stopped(report));
    }

    fn dispatch(&mut self, now: Instant) {
        self.ensure_connections(now);
        self.send_outcomes(now);
        self.send_pushes(now);
        self.send_beat(now);
        self.send_fetches(now);
    }

    fn ensure_connections(&mut self, now: Instant) {
        // Checked after every input: the common answer (every slot open) is found first.
        if self.lifecycle != Lifecycle::Running
            || !self.fetch_slots.iter().any(|s| s.state == SlotState::Idle)
            || self.control_index().is_none()
        {
            return;
        }
        for i in 0..self.fetch_slots.len() {
            if self
                .fetch_slots
                .get(i)
                .is_some_and(|s| s.state == SlotState::Idle)
            {
                self.open(Role::Fetch(i), now);
            }
        }
    }

    /// The least busy ready connection without an outstanding FETCH; on a tie a fetch connection
    /// before the control one (it keeps BEAT prompt), and otherwise in turn.
    fn pick_outcome_connection(&mut self, home: Option<ConnId>) -> Option<usize> {
        // The connection that brought the job, when it can take it: its refill FETCH follows in
        // the same write.
        if let Some(i) = home.and_then(|h| {
            self.conns
                .iter()
                .position(|c| c.id == h && c.ready && c.fetches == 0 && c.requests.is_empty())
        }) {
            return Some(i);
        }
        let n = self.conns.len();
        let start = self.rotation % n.max(1);
        self.rotation = self.rotation.wrapping_add(1);
        let mut best: Option<(usize, (usize, bool))> = None;
        for k in 0..n {
            let i = (start + k) % n;
            let Some(c) = self.conns.get(i) else { continue };
            if !c.ready || c.fetches > 0 {
                continue;
            }
            let load = (c.requests.len(), c.role == Role::Control);
            if best.is_none_or(|(_, l)| load < l) {
                best = Some((i, load));
            }
        }
        best.map(|(i, _)| i)
    }

    fn send_outcomes(&mut self, now: Instant) {
        while let Some(&token) = self.outcome_queue.front() {
            let Some(rec) = self.outcomes.get(&token) else {
                self.outcome_queue.pop_front();
                continue;
            };
            if rec.in_flight {
                self.outcome_queue.pop_front();
                continue;
            }
            let home = rec.home;
            let Some(index) = self.pick_outcome_connection(home) else {
                return;
            };
            let (Some(conn), Some(rec)) =
                (self.conns.get_mut(index), self.outcomes.get_mut(&token))
            else {
                return;
            };
            // The jid is lent to the ACK and taken back once it is encoded: no copy per job.
            let command = match &rec.kind {
                OutcomeKind::Ack => Command::Ack(Ack {
                    jid: std::mem::take(&mut rec.jid),
                }),
                OutcomeKind::Fail(f) => Command::Fail(f.clone()),
            };
            conn.touched = true;
            let sent = conn.client.send(&command, now);
            if let Command::Ack(ack) = command {
                rec.jid = ack.jid;
            }
            match sent {
                Ok(rid) => {
                    conn.requests.push_back((rid, Req::Outcome(token)));
                    self.outcome_queue.pop_front();
                    rec.in_flight = true;
                }
                Err(SendError::Closed) => {
                    // Its Closed event comes with the next input; do not pick it again.
                    conn.ready = false;
                }
                Err(e) => {
                    // Cannot be encoded (never happens for ACK/FAIL JSON): give up on it.
                    self.outcome_queue.pop_front();
                    let error = ServerError::new("LOCAL", e.to_string());
                    self.confirm(token, Confirmation::Rejected(error));
                }
            }
        }
    }

    /// Sends queued pushes, oldest first, each on the least busy ready connection without an
    /// outstanding FETCH (as ACK/FAIL).
    fn send_pushes(&mut self, now: Instant) {
        while let Some(&id) = self.push_queue.front() {
            if self.pushes.get(&id).is_none_or(|p| p.command.is_none()) {
                self.push_queue.pop_front();
                continue;
            }
            let Some(index) = self.pick_outcome_connection(None) else {
                return;
            };
            let (Some(conn), Some(pending)) = (self.conns.get_mut(index), self.pushes.get_mut(&id))
            else {
                return;
            };
            let Some(command) = pending.command.take() else {
                return;
            };
            conn.touched = true;
            match conn.client.send(&command, now) {
                Ok(rid) => {
                    conn.requests.push_back((rid, Req::Push(id)));
                    self.push_queue.pop_front();
                }
                Err(SendError::Closed) => {
                    // Its Closed event comes with the next input; do not pick it again.
                    conn.ready = false;
                    if let Some(p) = self.pushes.get_mut(&id) {
                        p.command = Some(command);
                    }
                }
                Err(e) => {
                    self.push_queue.pop_front();
                    self.pushes.remove(&id);
                    self.answer_push(id, Err(PushError::Encode(e.to_string())));
                }
            }
        }
    }

    /// Answers the queued pushes whose wait for a connection is over.
    fn expire_pushes(&mut self, now: Instant) {
        let expired: Vec<PushId> = self
            .push_queue
            .iter()
            .copied()
            .filter(|id| {
                self.pushes
                    .get(id)
                    .is_some_and(|p| p.command.is_some() && p.deadline.is_some_and(|d| d <= now))
            })
            .collect();
        for id in expired {
            self.push_queue.retain(|q| *q != id);
            if let Some(p) = self.pushes.remove(&id) {
                let waited = now.saturating_duration_since(p.since);
                self.answer_push(id, Err(PushError::NoConnection { waited }));
            }
        }
    }

    fn answer_push(&mut self, id: PushId, result: Result<(), PushError>) {
        self.emit(Event::Pushed { id, result });
    }

    fn send_beat(&mut self, now: Instant) {
        if self.beat_in_flight || now < self.beat_due {
            return;
        }
        let state = match self.lifecycle {
            Lifecycle::Running => None,
            Lifecycle::Quiet => Some(WorkerState::Quiet),
            Lifecycle::Terminating | Lifecycle::Ending => Some(WorkerState::Terminate),
            Lifecycle::Stopped => return,
        };
        let Some(index) = self.beat_connection() else {
            return;
        };
        let command = Command::Beat(Beat {
            wid: self.wid.clone(),
            rss_kb: self.rss_kb,
            current_state: state,
        });
        let Some(conn) = self.conns.get_mut(index) else {
            return;
        };
        conn.touched = true;
        match conn.client.send(&command, now) {
            Ok(rid) => {
                conn.requests.push_back((rid, Req::Beat { state }));
                self.beat_in_flight = true;
                self.beat_due = now + self.heartbeat_interval;
            }
            Err(_) => conn.ready = false,
        }
    }

    fn pick_fetch_connection(&self, now: Instant) -> Option<usize> {
        let mut best: Option<(usize, (usize, usize))> = None;
        for (i, c) in self.conns.iter().enumerate() {
            if !c.ready
                || !matches!(c.role, Role::Fetch(_))
                || c.fetches
                    >= if c.idle {
                        1
                    } else {
                        self.fetches_per_connection
                    }
                || c.fetch_paused_until.is_some_and(|t| t > now)
                || c.refill_hold.is_some_and(|t| t > now)
            {
                continue;
            }
            let load = (c.fetches, c.requests.len());
            if best.is_none_or(|(_, l)| load < l) {
                best = Some((i, load));
            }
        }
        best.map(|(i, _)| i)
    }

    fn send_fetches(&mut self, now: Instant) {
        if self.lifecycle != Lifecycle::Running || self.outcomes.len() >= self.max_unconfirmed {
            return;
        }
        while self.running.len() + self.outstanding_fetches < self.concurrency {
            let Some(index) = self.pick_fetch_connection(now) else {
                return;
            };
            let picked;
            let fetch = match &self.fixed_fetch {
                Some(fetch) => fetch,
                None => {
                    picked = Command::Fetch(self.picker.next_order(&mut self.rng));
                    &picked
                }
            };
            let Some(conn) = self.conns.get_mut(index) else {
                return;
            };
            let timeout = Some(self.fetch_timeout);
            conn.touched = true;
            match conn.client.send_with_timeout(fetch, timeout, now) {
                Ok(rid) => {
                    conn.requests.push_back((rid, Req::Fetch));
                    conn.fetches += 1;
                    self.outstanding_fetches += 1;
                }
                Err(_) => conn.ready = false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn token_hashes_spread_consecutive_tokens_over_buckets_and_tags() {
        let build = BuildHasherDefault::<TokenHasher>::default();
        let hashes: Vec<u64> = (0..4096).map(|t| build.hash_one(JobToken(t))).collect();
        // Consecutive tokens land in distinct buckets of a 4096-bucket table (the low bits)…
        let buckets: std::collections::HashSet<u64> = hashes.iter().map(|h| h & 4095).collect();
        assert_eq!(buckets.len(), 4096);
        // …and their tags (the top 7 bits) are spread, not one value.
        let tags: std::collections::HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert!(tags.len() > 100, "{} distinct tags", tags.len());
    }
}
