//! The network layer: a tokio listener on 127.0.0.1, one task per connection driving
//! [`faktory_proto::server::Connection`], a periodic driver on the server clock, and the
//! [`TestServer`] handle tests use to inspect, steer and break the server.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use faktory_proto::handshake::Password;
use faktory_proto::job::Job;
use faktory_proto::server::{CloseReason, Connection, ServerEvent, ServerOptions};
use faktory_proto::time::UnixTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::clock::{Clock, ClockError};
use crate::pace::{Pace, Pacer};
use crate::store::{
    AckRecord, ConnId, FailRecord, Outcome, PushError, Reply, ReservationInfo, RetryJitter,
    SetEntry, Store, StoreConfig, WorkerInfo,
};
use faktory_proto::backoff::SplitMix64 as Rng;

/// How long [`TestServer::accept_connections`] (and a restart) keeps trying to re-bind the port.
const REBIND_PATIENCE: Duration = Duration::from_secs(5);

/// A fault to inject into a connection. Command numbers count the commands a connection sends
/// after its HELLO (rejected lines included), from the moment the fault is injected: `1` is the
/// next command.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Close the connection when its `n`-th command arrives, without executing or answering it.
    DropBeforeCommand(u64),
    /// Execute the `n`-th command, then close the connection without sending its reply.
    DropAfterCommand(u64),
    /// Wait this long (wall clock) before writing each reply.
    DelayReplies(Duration),
    /// Execute commands but never send their replies (the connection stays open).
    WithholdReplies,
    /// Execute the `nth` command normally but answer it with these bytes instead of its reply.
    ReplaceReply {
        /// Which command (1 = the next one).
        nth: u64,
        /// The bytes to send instead.
        bytes: Bytes,
    },
    /// Close the connection right after accepting it, before `HI` (only meaningful for
    /// [`TestServer::inject_next_connections`]).
    CloseOnAccept,
}

/// A live connection, as the handle sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The server's id for it.
    pub id: ConnId,
    /// The client's address (its local address on the client side).
    pub peer: SocketAddr,
    /// The wid of its HELLO, if any.
    pub wid: Option<String>,
    /// Commands received after HELLO.
    pub commands: u64,
}

/// Builds a [`TestServer`].
#[derive(Debug, Clone)]
#[must_use]
pub struct TestServerBuilder {
    bind: SocketAddr,
    password: Option<String>,
    fetch_timeout: Duration,
    handshake_timeout: Duration,
    clock: Option<Clock>,
    seed: u64,
    jitter: RetryJitter,
    pace: Option<Pace>,
}

impl Default for TestServerBuilder {
    fn default() -> Self {
        TestServerBuilder {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            password: None,
            fetch_timeout: Duration::from_secs(2),
            handshake_timeout: Duration::from_secs(2),
            clock: None,
            seed: 0x7E57_5E4E_0000_0001,
            jitter: RetryJitter::Random,
            pace: None,
        }
    }
}

impl TestServerBuilder {
    /// The address to listen on (default `127.0.0.1:0`, an ephemeral port). It must be a loopback
    /// address: this test double never listens beyond the machine ([`TestServerBuilder::start`]
    /// refuses anything else).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Require this password (HI then carries a salt and an iteration count).
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// How long (wall clock) an empty FETCH blocks before `$-1`: 2 s like the real server by
    /// default; tests use 100–200 ms.
    pub fn fetch_timeout(mut self, d: Duration) -> Self {
        self.fetch_timeout = d;
        self
    }

    /// The handshake deadline, on the server clock (2 s like the real server by default).
    pub fn handshake_timeout(mut self, d: Duration) -> Self {
        self.handshake_timeout = d;
        self
    }

    /// The server clock (default: the system clock). See [`Clock::manual`] and [`Clock::scaled`].
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Seed of the retry jitter and the handshake salts.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// How the retry delay's random part is drawn (default: random, seeded).
    pub fn retry_jitter(mut self, jitter: RetryJitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Answer at the modelled pace of a real server ([`Pace`]): each connection's commands one at a
    /// time, each after its service time, so throughput grows with connections and plateaus as on a
    /// real Faktory. Default: none, every command is answered at once (what tests want).
    pub fn pace(mut self, pace: Pace) -> Self {
        self.pace = Some(pace);
        self
    }

    /// Binds and starts serving. Must be called inside a tokio runtime (with the time and I/O
    /// drivers enabled).
    pub async fn start(self) -> io::Result<TestServer> {
        if !self.bind.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "faktory-testkit only listens on loopback addresses (127.0.0.0/8, ::1)",
            ));
        }
        let listener = TcpListener::bind(self.bind).await?;
        let addr = listener.local_addr()?;
        let clock = self.clock.unwrap_or_else(Clock::real);
        let store_config = StoreConfig {
            seed: self.seed,
            jitter: self.jitter,
        };
        let store = Store::new(store_config, clock.now());
        let mut options = ServerOptions::default();
        options.password = self.password.clone().map(Password::new);
        options.handshake_timeout = self.handshake_timeout;
        let pacer = self.pace.map(Pacer::start).transpose()?;
        let (accepting, _) = watch::channel(true);
        let (listening, _) = watch::channel(true);
        let (live, _) = watch::channel(0usize);
        let (blocked, _) = watch::channel(0usize);
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            clock,
            notify: Notify::new(),
            options,
            fetch_timeout: self.fetch_timeout,
            registry: Mutex::new(Registry::default()),
            live,
            blocked,
            accepting,
            listening,
            rng: Mutex::new(Rng::new(self.seed ^ 0xA5A5_5A5A_C3C3_3C3C)),
            pacer,
            changed: Notify::new(),
            idle_waiters: AtomicUsize::new(0),
        });
        let accept = tokio::spawn(accept_loop(Arc::clone(&shared), listener, addr));
        let driver = tokio::spawn(periodic_driver(Arc::clone(&shared)));
        tracing::debug!(%addr, "faktory-testkit listening");
        Ok(TestServer {
            shared,
            addr,
            password: self.password,
            tasks: Mutex::new(vec![accept, driver]),
        })
    }
}

/// An in-memory Faktory server for tests, listening on 127.0.0.1. Dropping it stops everything.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use std::time::Duration;
/// use faktory_testkit::{Clock, TestServer};
///
/// let server = TestServer::builder()
///     .fetch_timeout(Duration::from_millis(100))
///     .clock(Clock::manual_now())
///     .start()
///     .await?;
/// println!("point your client at {}", server.url());
/// // … run the code under test, then:
/// server.advance(Duration::from_secs(61)).unwrap(); // heartbeat reaping happens now
/// assert!(server.workers().is_empty());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TestServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    password: Option<String>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    store: Mutex<Store>,
    clock: Clock,
    notify: Notify,
    options: ServerOptions,
    fetch_timeout: Duration,
    registry: Mutex<Registry>,
    live: watch::Sender<usize>,
    /// FETCHes currently blocked waiting for a job.
    blocked: watch::Sender<usize>,
    accepting: watch::Sender<bool>,
    listening: watch::Sender<bool>,
    rng: Mutex<Rng>,
    /// The modelled server pace, if any.
    pacer: Option<Pacer>,
    /// Woken after every change of the store while someone waits for it ([`wait_until_idle`]).
    changed: Notify,
    /// How many [`wait_until_idle`] calls are waiting.
    idle_waiters: AtomicUsize,
}

#[derive(Debug, Default)]
struct Registry {
    conns: BTreeMap<ConnId, ConnEntry>,
    /// Faults for the next accepted connections: (how many more connections, fault).
    next: Vec<(usize, Fault)>,
    /// Salts and iterations the next connections announce.
    salts: VecDeque<(String, u32)>,
}

#[derive(Debug)]
struct ConnEntry {
    tx: mpsc::UnboundedSender<Control>,
    peer: SocketAddr,
    commands: Arc<AtomicU64>,
    /// Shared with the connection's task, so an injected fault applies from the very next command.
    faults: Arc<Mutex<FaultState>>,
}

#[derive(Debug)]
enum Control {
    Close,
    SendRaw(Bytes),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Runs `f` on the store; wakes blocked FETCHes if a job was enqueued.
    fn with_store<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let (r, enqueued) = {
            let mut s = lock(&self.store);
            let before = s.enqueue_count();
            let r = f(&mut s);
            (r, s.enqueue_count() != before)
        };
        if enqueued {
            self.notify.notify_waiters();
        }
        if self.idle_waiters.load(Ordering::Acquire) > 0 {
            self.changed.notify_waiters();
        }
        r
    }

    /// Runs the periodic tasks due by now; closes the connections of reaped workers.
    fn run_ticks(&self) {
        let now = self.clock.now();
        let closed = self.with_store(|s| s.advance(now));
        for id in closed {
            tracing::debug!(%id, "closing the connection of a reaped worker");
            self.control(id, Control::Close);
        }
    }

    fn control(&self, id: ConnId, c: Control) -> bool {
        lock(&self.registry)
            .conns
            .get(&id)
            .is_some_and(|e| e.tx.send(c).is_ok())
    }
}

/// How often [`wait_until_idle`] looks again even without a change (a safety net).
const IDLE_RECHECK: Duration = Duration::from_millis(50);

/// Counts a waiter of [`wait_until_idle`] for as long as it waits.
struct IdleWaiter<'a>(&'a Shared);

impl<'a> IdleWaiter<'a> {
    fn new(shared: &'a Shared) -> Self {
        shared.idle_waiters.fetch_add(1, Ordering::AcqRel);
        IdleWaiter(shared)
    }
}

impl Drop for IdleWaiter<'_> {
    fn drop(&mut self) {
        self.0.idle_waiters.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Waits (wall clock, at most `limit`) until every queue is empty and no job is reserved.
pub(crate) async fn wait_until_idle(shared: &Shared, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now().checked_add(limit);
    let _waiter = IdleWaiter::new(shared);
    loop {
        let mut changed = pin!(shared.changed.notified());
        changed.as_mut().enable();
        // Read without `with_store`, which would wake this very waiter.
        if lock(&shared.store).is_idle() {
            return true;
        }
        let now = tokio::time::Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return false;
        }
        let recheck = now + IDLE_RECHECK;
        let wake = deadline.map_or(recheck, |d| d.min(recheck));
        tokio::select! {
            () = &mut changed => {}
            () = tokio::time::sleep_until(wake) => {}
        }
    }
}

async fn periodic_driver(shared: Arc<Shared>) {
    loop {
        let next = shared.with_store(Store::next_tick);
        shared.clock.sleep_until(next).await;
        shared.run_ticks();
    }
}

async fn bind_retry(addr: SocketAddr) -> io::Result<TcpListener> {
    let start = tokio::time::Instant::now();
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) if start.elapsed() >= REBIND_PATIENCE => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn accept_opt(listener: Option<&TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, addr: SocketAddr) {
    let mut listener = Some(listener);
    let mut accepting = shared.accepting.subscribe();
    let mut tasks = JoinSet::new();
    loop {
        let want = *accepting.borrow_and_update();
        if want && listener.is_none() {
            match bind_retry(addr).await {
                Ok(l) => {
                    listener = Some(l);
                    shared.listening.send_replace(true);
                }
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "faktory-testkit could not re-bind its port");
                }
            }
        } else if !want && listener.is_some() {
            listener = None;
            shared.listening.send_replace(false);
        }
        tokio::select! {
            r = accept_opt(listener.as_ref()) => match r {
                Ok((stream, peer)) => spawn_connection(&shared, &mut tasks, stream, peer),
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            },
            changed = accepting.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}

/// Unregisters a connection however its task ends (including abort).
struct ConnGuard {
    shared: Arc<Shared>,
    id: ConnId,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        lock(&self.shared.registry).conns.remove(&self.id);
        self.shared.with_store(|s| s.disconnect(self.id));
        self.shared.live.send_modify(|n| *n = n.saturating_sub(1));
    }
}

fn spawn_connection(
    shared: &Arc<Shared>,
    tasks: &mut JoinSet<()>,
    stream: TcpStream,
    peer: SocketAddr,
) {
    let _ = stream.set_nodelay(true);
    let (faults, salt) = {
        let mut reg = lock(&shared.registry);
        let mut faults = Vec::new();
        for (left, fault) in &mut reg.next {
            if *left > 0 {
                *left -= 1;
                faults.push(fault.clone());
            }
        }
        reg.next.retain(|(left, _)| *left > 0);
        (faults, reg.salts.pop_front())
    };
    if faults.contains(&Fault::CloseOnAccept) {
        drop(stream);
        return;
    }
    let id = shared.with_store(Store::connect);
    let (tx, rx) = mpsc::unbounded_channel();
    let commands = Arc::new(AtomicU64::new(0));
    let mut state = FaultState::default();
    for f in faults {
        state.apply(f, 0);
    }
    let fault_state = Arc::new(Mutex::new(state));
    lock(&shared.registry).conns.insert(
        id,
        ConnEntry {
            tx,
            peer,
            commands: Arc::clone(&commands),
            faults: Arc::clone(&fault_state),
        },
    );
    shared.live.send_modify(|n| *n += 1);
    let guard = ConnGuard {
        shared: Arc::clone(shared),
        id,
    };
    let seed = lock(&shared.rng).next_u64();
    tracing::debug!(%id, %peer, "connection accepted");
    tasks.spawn(async move {
        let task = ConnTask {
            shared: Arc::clone(&guard.shared),
            id,
            stream,
            rx,
            commands,
            faults: fault_state,
            pending: VecDeque::new(),
            out: Vec::new(),
        };
        task.run(salt, seed).await;
        drop(guard);
    });
}

/// The faults active on one connection (absolute command numbers).
#[derive(Debug, Default)]
struct FaultState {
    drop_before: Option<u64>,
    drop_after: Option<u64>,
    delay: Option<Duration>,
    withhold: bool,
    replace: BTreeMap<u64, Bytes>,
}

impl FaultState {
    fn apply(&mut self, fault: Fault, done: u64) {
        match fault {
            Fault::DropBeforeCommand(n) => self.drop_before = Some(done + n.max(1)),
            Fault::DropAfterCommand(n) => self.drop_after = Some(done + n.max(1)),
            Fault::DelayReplies(d) => self.delay = Some(d),
            Fault::WithholdReplies => self.withhold = true,
            Fault::ReplaceReply { nth, bytes } => {
                self.replace.insert(done + nth.max(1), bytes);
            }
            Fault::CloseOnAccept => {}
        }
    }
}

/// Why a connection task stops early.
enum Stop {
    /// Closed by the handle (drop, reaping, restart) or a fault: no more bytes.
    Abort,
}

struct ConnTask {
    shared: Arc<Shared>,
    id: ConnId,
    stream: TcpStream,
    rx: mpsc::UnboundedReceiver<Control>,
    commands: Arc<AtomicU64>,
    faults: Arc<Mutex<FaultState>>,
    pending: VecDeque<Control>,
    /// Replies not written yet: the replies to the commands of one read go out in one write,
    /// which is flushed before the task waits for anything (input, a pace, a blocked FETCH, a
    /// control message), so no reply waits behind the next command.
    out: Vec<u8>,
}

impl ConnTask {
    /// Writes everything, unless the handle closes the connection meanwhile (a client that stops
    /// reading must not block a drop or a restart); other control messages wait their turn.
    async fn write(&mut self, bytes: &[u8]) -> Result<(), Stop> {
        let mut written = 0;
        while let Some(rest) = bytes.get(written..).filter(|r| !r.is_empty()) {
            tokio::select! {
                r = self.stream.write(rest) => match r {
                    Ok(0) | Err(_) => return Err(Stop::Abort),
                    Ok(n) => written += n,
                },
                c = self.rx.recv() => match c {
                    None | Some(Control::Close) => return Err(Stop::Abort),
                    Some(other) => self.pending.push_back(other),
                },
            }
        }
        Ok(())
    }

    /// Handles control messages that arrived during a write.
    async fn drain_pending(&mut self) -> Result<(), Stop> {
        while let Some(c) = self.pending.pop_front() {
            self.control(Some(c)).await?;
        }
        Ok(())
    }

    /// Queues what the connection has to send (written by [`ConnTask::flush_out`]).
    fn flush(&mut self, conn: &mut Connection) {
        while let Some(b) = conn.poll_transmit() {
            self.out.extend_from_slice(&b);
        }
    }

    /// Writes the queued replies.
    async fn flush_out(&mut self) -> Result<(), Stop> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        let result = self.write(&out).await;
        self.out = out;
        self.out.clear();
        result
    }

    /// Handles a control message; `Err` when the connection must stop.
    async fn control(&mut self, c: Option<Control>) -> Result<(), Stop> {
        match c {
            None | Some(Control::Close) => Err(Stop::Abort),
            Some(Control::SendRaw(b)) => {
                self.flush_out().await?;
                self.write(&b).await
            }
        }
    }

    async fn run(mut self, salt: Option<(String, u32)>, seed: u64) {
        let clock = self.shared.clock.clone();
        let options = self.shared.options.clone();
        let mut conn = match salt {
            Some((s, i)) => Connection::with_salt(options, s, i, clock.instant_now()),
            None => Connection::new(options, seed, clock.instant_now()),
        };
        let result = self.serve(&mut conn, &clock).await;
        if result.is_ok() {
            let _ = self.stream.shutdown().await;
        }
        tracing::debug!(id = %self.id, "connection closed");
    }

    async fn serve(&mut self, conn: &mut Connection, clock: &Clock) -> Result<(), Stop> {
        let mut buf = BytesMut::with_capacity(16 * 1024);
        loop {
            if !self.pending.is_empty() {
                self.flush_out().await?;
                self.drain_pending().await?;
            }
            self.flush(conn);
            match conn.poll_event() {
                Some(ServerEvent::Hello(hello)) => {
                    let now = clock.now();
                    let id = self.id;
                    self.shared.with_store(|s| s.hello(id, &hello, now));
                }
                Some(ServerEvent::Command(cmd)) => {
                    let n = self.begin_command_or_flush().await?;
                    self.pace().await?;
                    let now = clock.now();
                    let id = self.id;
                    let outcome = self.shared.with_store(|s| s.execute(id, cmd, now));
                    let reply = match outcome {
                        Outcome::Reply(r) => r,
                        Outcome::Block(wait) => self.blocked_fetch(wait).await?,
                    };
                    self.answer(conn, n, reply).await?;
                }
                Some(ServerEvent::Invalid(err)) => {
                    let n = self.begin_command_or_flush().await?;
                    self.pace().await?;
                    let msg = self.shared.with_store(|s| s.invalid(&err));
                    self.answer(conn, n, Reply::Error(msg)).await?;
                }
                Some(ServerEvent::Closed(reason)) => {
                    if reason == CloseReason::End {
                        self.shared.with_store(Store::note_end);
                    }
                    self.flush(conn);
                    return self.flush_out().await;
                }
                Some(_) => {}
                None => {
                    self.flush_out().await?;
                    if conn.is_closed() {
                        return Ok(());
                    }
                    let deadline = conn.poll_timeout().map(|i| clock.unix_at(i));
                    tokio::select! {
                        r = self.stream.read_buf(&mut buf) => match r {
                            Ok(0) | Err(_) => conn.handle_eof(),
                            Ok(_) => {
                                conn.handle_input(&buf, clock.instant_now());
                                buf.clear();
                            }
                        },
                        () = sleep_opt(clock, deadline) => conn.handle_timeout(clock.instant_now()),
                        c = self.rx.recv() => self.control(c).await?,
                    }
                }
            }
        }
    }

    /// Waits for the modelled service of one command, when the server has a pace.
    async fn pace(&mut self) -> Result<(), Stop> {
        if self.shared.pacer.is_none() {
            return Ok(());
        }
        // The replies so far leave before this command's service time.
        self.flush_out().await?;
        let Some(served) = self.shared.pacer.as_ref().map(Pacer::serve) else {
            return Ok(());
        };
        let wait = pin!(async {
            let _ = served.await;
        });
        self.wait_or_control(wait).await
    }

    /// [`ConnTask::begin_command`]; when a fault drops the connection, the replies to the
    /// commands before this one are written first.
    async fn begin_command_or_flush(&mut self) -> Result<u64, Stop> {
        match self.begin_command() {
            Ok(n) => Ok(n),
            Err(stop) => {
                self.flush_out().await?;
                Err(stop)
            }
        }
    }

    /// Counts a command; `Err` when a fault drops the connection before it runs.
    fn begin_command(&mut self) -> Result<u64, Stop> {
        let n = self.commands.fetch_add(1, Ordering::Relaxed) + 1;
        if lock(&self.faults).drop_before == Some(n) {
            tracing::debug!(id = %self.id, n, "fault: dropping before command");
            return Err(Stop::Abort);
        }
        Ok(n)
    }

    async fn answer(&mut self, conn: &mut Connection, n: u64, reply: Reply) -> Result<(), Stop> {
        let (replace, drop_after, withhold, delay) = {
            let mut f = lock(&self.faults);
            (
                f.replace.remove(&n),
                f.drop_after == Some(n),
                f.withhold,
                f.delay,
            )
        };
        if let Some(bytes) = replace {
            conn.reply_raw(&bytes);
            if reply == Reply::Close {
                conn.close();
            }
        } else {
            match reply {
                Reply::Ok => conn.reply_ok(),
                Reply::Error(m) => conn.reply_error("ERR", &m),
                Reply::Bulk(b) => conn.reply_bulk(&b),
                Reply::Null => conn.reply_null(),
                Reply::Close => conn.close(),
            }
        }
        let mut out = Vec::new();
        while let Some(b) = conn.poll_transmit() {
            out.extend_from_slice(&b);
        }
        if drop_after {
            tracing::debug!(id = %self.id, n, "fault: dropping after command");
            self.flush_out().await?;
            return Err(Stop::Abort);
        }
        if withhold || out.is_empty() {
            return Ok(());
        }
        if let Some(d) = delay {
            self.flush_out().await?;
            let sleep = pin!(tokio::time::sleep(d));
            self.wait_or_control(sleep).await?;
            return self.write(&out).await;
        }
        self.out.extend_from_slice(&out);
        Ok(())
    }

    /// Waits for `fut` while serving control messages.
    async fn wait_or_control<F: Future<Output = ()>>(
        &mut self,
        fut: std::pin::Pin<&mut F>,
    ) -> Result<(), Stop> {
        let mut fut = fut;
        loop {
            self.drain_pending().await?;
            tokio::select! {
                () = fut.as_mut() => return Ok(()),
                c = self.rx.recv() => self.control(c).await?,
            }
        }
    }

    /// A FETCH with nothing to hand out: retry on every push until the block timeout.
    async fn blocked_fetch(&mut self, wait: crate::store::FetchWait) -> Result<Reply, Stop> {
        let deadline = tokio::time::Instant::now() + self.shared.fetch_timeout;
        let shared = Arc::clone(&self.shared);
        let _blocked = BlockedGuard::new(&shared);
        loop {
            self.drain_pending().await?;
            let mut notified = pin!(shared.notify.notified());
            notified.as_mut().enable();
            if !wait.queues.is_empty() {
                let now = shared.clock.now();
                let id = self.id;
                if let Some(body) = shared.with_store(|s| s.try_fetch(id, &wait, now)) {
                    return Ok(Reply::Bulk(body));
                }
            }
            self.flush_out().await?;
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(deadline) => return Ok(Reply::Null),
                c = self.rx.recv() => self.control(c).await?,
            }
        }
    }
}

/// Counts a blocked FETCH for as long as it waits.
struct BlockedGuard<'a>(&'a Shared);

impl<'a> BlockedGuard<'a> {
    fn new(shared: &'a Shared) -> Self {
        shared.blocked.send_modify(|n| *n += 1);
        BlockedGuard(shared)
    }
}

impl Drop for BlockedGuard<'_> {
    fn drop(&mut self) {
        self.0.blocked.send_modify(|n| *n = n.saturating_sub(1));
    }
}

async fn sleep_opt(clock: &Clock, deadline: Option<UnixTime>) {
    match deadline {
        Some(t) => clock.sleep_until(t).await,
        None => std::future::pending().await,
    }
}

impl TestServer {
    /// A builder with the defaults: 127.0.0.1 on an ephemeral port, no password, 2 s FETCH block,
    /// 2 s handshake deadline, the system clock.
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder::default()
    }

    /// Starts a server with the defaults.
    pub async fn start() -> io::Result<TestServer> {
        Self::builder().start().await
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `tcp://[:password@]127.0.0.1:port`, for `FAKTORY_URL`.
    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("tcp://:{}@{}", percent_encode(p), self.addr),
            None => format!("tcp://{}", self.addr),
        }
    }

    /// The server clock.
    pub fn clock(&self) -> &Clock {
        &self.shared.clock
    }

    /// The current server time.
    pub fn now(&self) -> UnixTime {
        self.shared.clock.now()
    }

    /// Moves a manual clock forward and runs every periodic task that came due (scheduled jobs,
    /// retries, reservation expiry, heartbeat reaping) before returning. Connections of reaped
    /// workers are closed right after.
    pub fn advance(&self, d: Duration) -> Result<UnixTime, ClockError> {
        let now = self.shared.clock.advance(d)?;
        self.shared.run_ticks();
        Ok(now)
    }

    /// Sets a manual clock (forward only) and runs what came due, like [`TestServer::advance`].
    pub fn set_time(&self, t: UnixTime) -> Result<(), ClockError> {
        self.shared.clock.set(t)?;
        self.shared.run_ticks();
        Ok(())
    }

    /// Runs `f` on the server state directly (see [`Store`] for everything it offers).
    pub fn with_store<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        self.shared.with_store(f)
    }

    // ----------------------------------------------------------------------------------------------
    // loading

    /// Pushes a job as a client's PUSH would (validation, defaults, `at`; times relative to the
    /// push, [`Job::run_after`] and [`Job::expires_after`], are resolved on the server clock). A
    /// job without `retry` gets the server's default, which a PUSH with `retry` can have changed
    /// ([`TestServer::set_default_retry`]); this push does not change it.
    pub fn push(&self, job: Job) -> Result<(), PushError> {
        let now = self.now();
        self.with_store(|s| s.push(job, now))
    }

    /// Puts a job on its queue now, whatever its `at`.
    pub fn enqueue(&self, job: Job) -> Result<(), PushError> {
        let now = self.now();
        self.with_store(|s| s.enqueue_now(job, now))
    }

    /// Adds a job to the scheduled set, due at `at`.
    pub fn schedule(&self, job: Job, at: UnixTime) {
        let now = self.now();
        self.with_store(|s| s.add_scheduled(job, at, now));
    }

    /// Adds a job to the retry set, due at `at`.
    pub fn add_retry(&self, job: Job, at: UnixTime) {
        let now = self.now();
        self.with_store(|s| s.add_retry(job, at, now));
    }

    /// Adds a job to the dead set, purged at `at`.
    pub fn add_dead(&self, job: Job, at: UnixTime) {
        let now = self.now();
        self.with_store(|s| s.add_dead(job, at, now));
    }

    /// Makes a queue known (listed by INFO, usable with QUEUE) without jobs.
    pub fn ensure_queue(&self, name: &str) -> Result<(), PushError> {
        self.with_store(|s| s.ensure_queue(name))
    }

    /// Pauses a known queue; `false` if unknown.
    pub fn pause_queue(&self, name: &str) -> bool {
        self.with_store(|s| s.set_paused(name, true))
    }

    /// Resumes a queue; `false` if unknown.
    pub fn resume_queue(&self, name: &str) -> bool {
        self.with_store(|s| s.set_paused(name, false))
    }

    /// Sets the server's `retry` default, as an earlier PUSH with `"retry":n` would have (the leak
    /// of docs/protocol.md#the-retry-default-leaks).
    pub fn set_default_retry(&self, n: i64) {
        self.with_store(|s| s.set_default_retry(n));
    }

    // ----------------------------------------------------------------------------------------------
    // inspection

    /// The jobs of a queue, next to be fetched first.
    pub fn queue(&self, name: &str) -> Vec<Job> {
        self.with_store(|s| s.queue_jobs(name))
    }

    /// Every known queue and its size.
    pub fn queues(&self) -> BTreeMap<String, usize> {
        self.with_store(|s| s.queue_sizes())
    }

    /// Whether FETCH skips the queue.
    pub fn is_paused(&self, name: &str) -> bool {
        self.with_store(|s| s.is_paused(name))
    }

    /// The scheduled set, earliest first.
    pub fn scheduled(&self) -> Vec<SetEntry> {
        self.with_store(|s| s.scheduled())
    }

    /// The retry set, earliest first.
    pub fn retries(&self) -> Vec<SetEntry> {
        self.with_store(|s| s.retries())
    }

    /// The dead set.
    pub fn dead(&self) -> Vec<SetEntry> {
        self.with_store(|s| s.dead())
    }

    /// Reserved jobs, earliest expiry first.
    pub fn reservations(&self) -> Vec<ReservationInfo> {
        self.with_store(|s| s.reservations())
    }

    /// Jids acknowledged while reserved, oldest first.
    pub fn acked(&self) -> Vec<String> {
        self.with_store(|s| s.acked())
    }

    /// Every ACK, including unknown jids.
    pub fn ack_log(&self) -> Vec<AckRecord> {
        self.with_store(|s| s.ack_log())
    }

    /// Every failure (FAIL of a reserved job, reservation expiry), oldest first.
    pub fn failures(&self) -> Vec<FailRecord> {
        self.with_store(|s| s.failures())
    }

    /// The jids of [`TestServer::failures`].
    pub fn failed(&self) -> Vec<String> {
        self.failures().into_iter().map(|f| f.jid).collect()
    }

    /// Every worker record.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        self.with_store(|s| s.workers())
    }

    /// One worker record.
    pub fn worker(&self, wid: &str) -> Option<WorkerInfo> {
        self.with_store(|s| s.worker(wid))
    }

    /// The INFO document a client would get now.
    pub fn info(&self) -> serde_json::Value {
        let now = self.now();
        let body = self.with_store(|s| s.info_json(now));
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)
    }

    /// Live connections (tasks still running).
    pub fn connection_count(&self) -> usize {
        *self.shared.live.borrow()
    }

    /// Waits until exactly `n` connections are live.
    pub async fn wait_for_connections(&self, n: usize) {
        let mut rx = self.shared.live.subscribe();
        let _ = rx.wait_for(|&live| live == n).await;
    }

    /// Waits until the server is idle: every queue is empty and every reservation is settled (no
    /// job is reserved: each fetched job was ACKed, FAILed or expired). Returns `false` when that
    /// did not happen within `limit` (wall clock). The scheduled, retry and dead sets are not
    /// waited for: a job FAILed for a retry counts as settled.
    ///
    /// Call it once the jobs are pushed (a push is answered after its job is queued): a server that
    /// has not seen them yet is idle.
    ///
    /// ```no_run
    /// # async fn demo() -> std::io::Result<()> {
    /// use std::time::Duration;
    /// use faktory_testkit::TestServer;
    /// use faktory_testkit::proto::job::Job;
    ///
    /// let server = TestServer::start().await?;
    /// for n in 0..100 {
    ///     server.push(Job::with_args("Resize", (n,)).unwrap()).unwrap();
    /// }
    /// // … start the worker under test against server.url(), then:
    /// assert!(server.wait_until_idle(Duration::from_secs(10)).await, "jobs left: {:?}", server.queues());
    /// assert_eq!(server.acked().len(), 100);
    /// # Ok(()) }
    /// ```
    pub async fn wait_until_idle(&self, limit: Duration) -> bool {
        wait_until_idle(&self.shared, limit).await
    }

    /// The server's state, for [`crate::TestServerHost`].
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// FETCHes currently blocked, waiting for a job or their timeout.
    pub fn blocked_fetches(&self) -> usize {
        *self.shared.blocked.borrow()
    }

    /// Waits until exactly `n` FETCHes are blocked (e.g. until a worker sits idle on its FETCH).
    pub async fn wait_for_blocked_fetches(&self, n: usize) {
        let mut rx = self.shared.blocked.subscribe();
        let _ = rx.wait_for(|&b| b == n).await;
    }

    /// The live connections.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        let entries: Vec<(ConnId, SocketAddr, u64)> = lock(&self.shared.registry)
            .conns
            .iter()
            .map(|(id, e)| (*id, e.peer, e.commands.load(Ordering::Relaxed)))
            .collect();
        self.with_store(|s| {
            entries
                .into_iter()
                .map(|(id, peer, commands)| ConnectionInfo {
                    id,
                    peer,
                    wid: s.connection_wid(id).map(str::to_owned),
                    commands,
                })
                .collect()
        })
    }

    /// The connection whose client side has local address `peer`.
    pub fn connection_by_peer(&self, peer: SocketAddr) -> Option<ConnectionInfo> {
        self.connections().into_iter().find(|c| c.peer == peer)
    }

    // ----------------------------------------------------------------------------------------------
    // operator

    /// Makes a worker quiet, as the Web UI's "Quiet" does (its next BEAT gets `{"state":"quiet"}`).
    /// `false` if no such worker.
    pub fn quiet(&self, wid: &str) -> bool {
        self.with_store(|s| s.quiet(wid))
    }

    /// Makes a worker terminate, as the Web UI's "Stop" does. `false` if no such worker.
    pub fn terminate(&self, wid: &str) -> bool {
        self.with_store(|s| s.terminate(wid))
    }

    // ----------------------------------------------------------------------------------------------
    // faults

    /// Injects a fault into a live connection, effective from its next command; `false` if it is
    /// gone.
    pub fn inject(&self, id: ConnId, fault: Fault) -> bool {
        let reg = lock(&self.shared.registry);
        match reg.conns.get(&id) {
            Some(e) => {
                let done = e.commands.load(Ordering::Relaxed);
                lock(&e.faults).apply(fault, done);
                true
            }
            None => false,
        }
    }

    /// Applies `fault` to each of the next `count` accepted connections.
    pub fn inject_next_connections(&self, count: usize, fault: Fault) {
        if count > 0 {
            lock(&self.shared.registry).next.push((count, fault));
        }
    }

    /// The next connections announce these salts and iteration counts in `HI` (with a password),
    /// one per connection, for replaying recorded handshakes.
    pub fn set_next_salts(&self, salts: impl IntoIterator<Item = (String, u32)>) {
        lock(&self.shared.registry).salts.extend(salts);
    }

    /// Closes a connection abruptly, now; `false` if it is gone.
    pub fn drop_connection(&self, id: ConnId) -> bool {
        self.shared.control(id, Control::Close)
    }

    /// Closes every connection abruptly, now. Returns how many were told to close.
    pub fn drop_all_connections(&self) -> usize {
        let ids: Vec<ConnId> = lock(&self.shared.registry).conns.keys().copied().collect();
        ids.into_iter()
            .filter(|&id| self.shared.control(id, Control::Close))
            .count()
    }

    /// Writes arbitrary bytes to a connection now (unsolicited, e.g. `-ERR too many connections`).
    pub fn send_raw(&self, id: ConnId, bytes: impl Into<Bytes>) -> bool {
        self.shared.control(id, Control::SendRaw(bytes.into()))
    }

    /// Stops listening: new connections are refused (connection refused) until
    /// [`TestServer::accept_connections`]. Existing connections stay.
    pub async fn refuse_connections(&self) {
        self.shared.accepting.send_replace(false);
        let mut rx = self.shared.listening.subscribe();
        let _ = rx.wait_for(|&l| !l).await;
    }

    /// Listens again on the same port.
    pub async fn accept_connections(&self) -> io::Result<()> {
        self.shared.accepting.send_replace(true);
        let mut rx = self.shared.listening.subscribe();
        match tokio::time::timeout(REBIND_PATIENCE * 2, rx.wait_for(|&l| l)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "could not listen on the port again",
            )),
        }
    }

    /// Refuses new connections for `d` (wall clock), then listens again.
    pub async fn refuse_connections_for(&self, d: Duration) {
        self.refuse_connections().await;
        let shared = Arc::clone(&self.shared);
        let h = tokio::spawn(async move {
            tokio::time::sleep(d).await;
            shared.accepting.send_replace(true);
        });
        lock(&self.tasks).push(h);
    }

    /// Restarts the server like Faktory backed by Redis: the listener closes, every connection is
    /// dropped and worker records vanish; queues, sets, counters, paused flags and reservations
    /// survive (so ACK/FAIL of jobs fetched before still work). Listens again on the same port.
    pub async fn restart(&self) -> io::Result<()> {
        self.refuse_connections().await;
        self.drop_all_connections();
        self.wait_for_connections(0).await;
        let now = self.now();
        self.with_store(|s| s.restart(now));
        self.accept_connections().await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        for h in lock(&self.tasks).drain(..) {
            h.abort();
        }
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
