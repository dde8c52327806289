//! The worker's driver: ONE task that owns the engine, every connection's socket (the future
//! opening it, the bytes queued for it, its reads), the timer, the channel of finished jobs and the
//! shutdown signal, and polls them itself.
//!
//! Each poll runs turns of:
//! 1. **inputs**, handed to the engine in one batch: the shutdown signal and every finished job
//!    (when they woke the task), one read per socket that woke or gave input on the last turn
//!    (each socket has a waker of its own, so an idle connection is not polled; the read is
//!    handed to the engine as a slice of the one reused read buffer), the deadline;
//! 2. **outputs**: the engine's transmits (at most one buffer per connection per drain: an ACK and
//!    the FETCH refilling its slot come together), then its events (open or close a connection,
//!    run or cancel a job, stop); a job's first poll happens right here, and only a job that has
//!    to wait becomes a task of its own;
//! 3. **one write per socket**, then the sockets being closed (their END flushed, bounded in time);
//!
//! until a turn brings no input: then the timer is armed for the engine's deadline and the task
//! waits for whatever wakes it first. After [`TURNS_PER_POLL`] busy turns it yields to the runtime.
//! There is no reader or writer task per connection and no channel hop per read: under load a
//! turn reads every reply that arrived and answers each connection with one write.

use std::collections::HashMap;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use faktory_proto::api::{self, ReadBuffer};
use faktory_proto::job::Job;
use faktory_proto::worker::{
    self as engine, ConnId, Event, JobToken, Outcome, PushError, PushId, StopReport,
};
use futures_channel::{mpsc, oneshot};
use futures_core::Stream;
use tracing::Instrument;

use super::wake::ReadySet;
use super::{ShutdownSignal, Worker};
use crate::handler::{
    Chain, JobContext, PushCall, WorkerShared, finish_job, poll_started, start_job,
};
use crate::runtime::{self, Runtime, TerminationSignals, Timer};
use crate::socket::{Closing, Input, Socket, poll_closing};
use crate::token::{Abortable, CancellationToken};
use crate::transport::Dialer;

/// Busy turns per poll before the task yields to the runtime.
const TURNS_PER_POLL: usize = 32;
/// How long a socket the engine closed may take to flush its last bytes (END).
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// The id the shutdown signal, the termination signals and the channels wake the task with in
/// its [`ReadySet`] (the engine numbers connections from 0 and never reuses an id: it never gets
/// this far).
const SOURCES: ConnId = ConnId(u64::MAX);
/// How often the resident memory sent with BEAT is read.
const RSS_EVERY: Duration = Duration::from_secs(5);

/// Runs the worker to its end.
pub(super) async fn run<R: Runtime>(worker: Worker<R>) -> StopReport {
    let Worker {
        engine,
        chain,
        shared,
        pushes,
        dialer,
        shutdown,
        handle_signals,
        runtime,
    } = worker;
    let signals = if handle_signals {
        runtime.termination_signals()
    } else {
        None
    };
    let (done_tx, done_rx) = mpsc::unbounded();
    let ready = Arc::new(ReadySet::default());
    tracing::info!(wid = %engine.wid(), server = %dialer.authority(), "faktory worker starting");
    let mut driver = Driver {
        rt: runtime,
        engine,
        chain,
        shared,
        pushes,
        pending_pushes: HashMap::new(),
        dialer,
        conns: Vec::new(),
        ready: Arc::clone(&ready),
        woken: Vec::new(),
        sources_waker: ready.waker(SOURCES),
        poll_sources: true,
        closing: Vec::new(),
        done_tx,
        done_rx,
        running: HashMap::new(),
        finished: Vec::new(),
        stop_jobs: CancellationToken::new(),
        shutdown,
        signals,
        signals_seen: 0,
        timer: Timer::new(),
        rbuf: ReadBuffer::new(),
        next_rss: Instant::now(),
        report: None,
    };
    poll_fn(|cx| driver.poll(cx)).await
}

/// A connection of the engine and its socket.
struct Conn {
    id: ConnId,
    socket: Socket,
    /// What the socket is polled with: waking it records `id` in the driver's [`ReadySet`].
    waker: Waker,
    /// Poll the socket on this or the next turn: it woke, gave input on the last turn (only an
    /// answer of `Pending` has registered its waker), or is new.
    poll_again: bool,
    /// It gave input or got bytes to send on this turn: its receive low-water mark is set again
    /// before the turn's writes.
    active: bool,
}

/// A job's outcome, sent by its task.
type Done = (JobToken, Outcome);

struct Driver<R: Runtime> {
    rt: R,
    engine: engine::Worker,
    /// The middleware and the handlers.
    chain: Arc<Chain>,
    /// What every job's context shares (state, the push channel).
    shared: Arc<WorkerShared>,
    /// Jobs pushed by handlers ([`JobContext::push`]).
    pushes: mpsc::UnboundedReceiver<PushCall>,
    /// Who waits for which push's answer.
    pending_pushes: HashMap<PushId, oneshot::Sender<Result<(), PushError>>>,
    dialer: Arc<Dialer<R>>,
    /// Open or opening connections (a handful: a linear scan beats hashing).
    conns: Vec<Conn>,
    /// The sockets that woke the task (each is polled with a waker of its own).
    ready: Arc<ReadySet>,
    /// The ids taken from `ready` for this turn (kept to reuse its allocation).
    woken: Vec<ConnId>,
    /// What the shutdown signal, the termination signals and the channels are polled with.
    sources_waker: Waker,
    /// Poll them on this turn: they woke, or it is the first turn.
    poll_sources: bool,
    closing: Vec<Closing>,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    /// Running jobs' cancellation tokens ([`JobContext::cancellation`]).
    running: HashMap<JobToken, CancellationToken>,
    /// Jobs that finished in their first poll, for the engine after this turn's events.
    finished: Vec<Done>,
    /// Fired when the worker stops: drops every job task still running.
    stop_jobs: CancellationToken,
    shutdown: Option<ShutdownSignal>,
    /// The process's termination signals, when the worker handles them.
    signals: Option<TerminationSignals>,
    signals_seen: u32,
    timer: Timer<R>,
    rbuf: ReadBuffer,
    next_rss: Instant,
    /// Set by [`Event::Stopped`]: returned once the closing sockets are done.
    report: Option<StopReport>,
}

impl<R: Runtime> Driver<R> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<StopReport> {
        for _ in 0..TURNS_PER_POLL {
            let now = Instant::now();
            let mut progress = false;
            if self.report.is_none() {
                progress |= self.inputs(cx, now);
                progress |= self.outputs(cx, now);
                progress |= self.writes(cx, now);
            }
            poll_closing(&mut self.closing, now, cx);
            if self.report.is_some() && self.closing.is_empty() {
                if let Some(report) = self.report.take() {
                    return Poll::Ready(report);
                }
            }
            if progress {
                continue;
            }
            let mut deadline = self.engine.poll_timeout();
            for c in &self.closing {
                deadline = runtime::earliest(deadline, Some(c.deadline()));
            }
            match deadline {
                Some(at) if self.timer.poll_at(&self.rt, at, cx).is_ready() => continue,
                _ => return Poll::Pending,
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Everything that happened since the last turn, handed to the engine in one batch (the
    /// engine runs once for all of it, when its outputs are drained).
    ///
    /// Only what woke the task is polled: each socket has a waker of its own, and so do the
    /// shutdown signal, the termination signals and the two channels together (they are polled
    /// until each says `Pending`, which registers that waker). A socket that gave input is
    /// polled again on the next turn.
    fn inputs(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let timed_out = self.engine.poll_timeout().is_some_and(|t| t <= now);
        self.engine.begin_batch();
        let mut progress = false;
        self.ready.take(cx.waker(), &mut self.woken);
        // What woke is marked to be polled (usually one or two of a dozen sockets).
        for &id in &self.woken {
            if id == SOURCES {
                self.poll_sources = true;
            } else if let Some(conn) = self.conns.iter_mut().find(|c| c.id == id) {
                conn.poll_again = true;
            }
        }
        if self.poll_sources {
            self.poll_sources = false;
            let waker = self.sources_waker.clone();
            progress |= self.signals_and_channels(&mut Context::from_waker(&waker), now);
        }
        for conn in &mut self.conns {
            if !conn.poll_again {
                continue;
            }
            let id = conn.id;
            let mut socket_cx = Context::from_waker(&conn.waker);
            let mut read = 0;
            let input = conn.socket.poll_input(&mut socket_cx, self.rbuf.space());
            conn.poll_again = !matches!(input, Input::Pending);
            match input {
                Input::Pending => continue,
                Input::Connected => {
                    tracing::debug!(conn = id.0, "faktory socket open");
                    self.engine.handle_connected(id, now);
                }
                Input::ConnectFailed(failure) => {
                    self.engine.handle_connect_failed(id, &failure, now);
                }
                Input::Data(data) => {
                    if tracing::enabled!(tracing::Level::TRACE) {
                        tracing::trace!(conn = id.0, wire = %api::wire_for_log(data), "faktory recv");
                    }
                    read = data.len();
                    self.engine.handle_input(id, data, now);
                }
                Input::Eof => self.engine.handle_eof(id, now),
                Input::Error(reason) => self.engine.handle_transport_error(id, &reason, now),
            }
            self.rbuf.read(read);
            conn.active = true;
            progress = true;
        }
        if now >= self.next_rss {
            if let Some(kb) = read_rss_kb() {
                self.engine.set_rss_kb(kb);
            }
            self.next_rss = runtime::after(now, RSS_EVERY);
        }
        if timed_out {
            self.engine.handle_timeout(now);
            progress = true;
        }
        self.engine.end_batch();
        progress
    }

    /// The shutdown signal, the termination signals, pushes from handlers and jobs finished on
    /// their own tasks.
    fn signals_and_channels(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let mut progress = false;
        if let Some(signal) = &mut self.shutdown {
            if signal.as_mut().poll(cx).is_ready() {
                self.shutdown = None;
                tracing::info!("faktory worker shutting down");
                self.engine.shutdown(now);
                progress = true;
            }
        }
        while let Some(signals) = &mut self.signals {
            match signals.as_mut().poll_next(cx) {
                Poll::Ready(Some(())) => {
                    self.signals_seen += 1;
                    if self.signals_seen == 1 {
                        tracing::info!(
                            "faktory worker: termination signal, shutting down (a second one stops \
                             waiting for running jobs)"
                        );
                        self.engine.shutdown(now);
                    } else {
                        tracing::warn!(
                            "faktory worker: second termination signal, running jobs are FAILed now"
                        );
                        self.engine.shutdown_now(now);
                    }
                    progress = true;
                }
                Poll::Ready(None) => self.signals = None,
                Poll::Pending => break,
            }
        }
        // Follow-up jobs from handlers (`JobContext::push`): the engine sends them on its own
        // connections and answers with `Event::Pushed`.
        while let Poll::Ready(Some((job, reply))) = Pin::new(&mut self.pushes).poll_next(cx) {
            let id = self.engine.push(job, now);
            self.pending_pushes.insert(id, reply);
            progress = true;
        }
        while let Poll::Ready(Some((token, outcome))) = Pin::new(&mut self.done_rx).poll_next(cx) {
            self.running.remove(&token);
            self.engine.handle_job_finished(token, outcome, now);
            progress = true;
        }
        progress
    }

    /// The engine's transmits (queued on their sockets), then its events. `true` when a socket
    /// is to be opened (its opening future has not been polled yet) or a job finished at once.
    ///
    /// Jobs that finished in their first poll are handed to the engine after the events (so the
    /// transmits they cause are drained before any later event), in one batch, and their ACKs
    /// (with the FETCHes refilling their slots) are drained at once: they go out in this turn's
    /// writes.
    fn outputs(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let mut progress = false;
        loop {
            while let Some((id, bytes)) = self.engine.poll_transmit() {
                if tracing::enabled!(tracing::Level::TRACE) {
                    tracing::trace!(conn = id.0, wire = %api::wire_for_log(&bytes), "faktory send");
                }
                if let Some(conn) = self.conns.iter_mut().find(|c| c.id == id) {
                    conn.socket.queue(bytes);
                    conn.active = true;
                }
            }
            while let Some(event) = self.engine.poll_event() {
                progress |= matches!(event, Event::OpenConnection(_));
                self.handle_event(event, now, cx);
            }
            if self.finished.is_empty() {
                return progress;
            }
            self.engine.begin_batch();
            for (token, outcome) in self.finished.drain(..) {
                self.running.remove(&token);
                self.engine.handle_job_finished(token, outcome, now);
            }
            self.engine.end_batch();
            progress = true;
        }
    }

    /// One write per socket; a failed write is reported to the engine. Before it, each socket
    /// that was active on this turn gets the receive low-water mark the engine now gives its
    /// connection ([`engine::Worker::read_threshold`]): raised before the bytes that call for
    /// the replies leave, lowered before the task waits again.
    fn writes(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let mut progress = false;
        for conn in &mut self.conns {
            if conn.active {
                conn.active = false;
                conn.socket
                    .set_read_threshold(self.engine.read_threshold(conn.id));
            }
            if let Err(reason) = conn.socket.poll_write(cx) {
                self.engine.handle_transport_error(conn.id, &reason, now);
                progress = true;
            }
        }
        progress
    }

    fn handle_event(&mut self, event: Event, now: Instant, cx: &mut Context<'_>) {
        match event {
            Event::OpenConnection(id) => {
                tracing::debug!(conn = id.0, "faktory connecting");
                self.conns.push(Conn {
                    id,
                    socket: Socket::opening(self.dialer.dial(true)),
                    waker: self.ready.waker(id),
                    poll_again: true,
                    active: false,
                });
            }
            Event::CloseConnection(id) => {
                if let Some(pos) = self.conns.iter().position(|c| c.id == id) {
                    let conn = self.conns.swap_remove(pos);
                    let deadline = runtime::after(now, CLOSE_FLUSH_TIMEOUT);
                    self.closing.extend(conn.socket.close(deadline));
                }
            }
            Event::RunJob { token, job } => self.start_job(token, *job, cx),
            Event::CancelJob(token) => {
                if let Some(cancel) = self.running.remove(&token) {
                    cancel.cancel();
                }
            }
            Event::Pushed { id, result } => {
                if let Some(reply) = self.pending_pushes.remove(&id) {
                    let _ = reply.send(result);
                }
            }
            Event::Stopped(report) => {
                // Every connection got its CloseConnection already; what runs still is abandoned.
                for conn in self.conns.drain(..) {
                    let deadline = runtime::after(now, CLOSE_FLUSH_TIMEOUT);
                    self.closing.extend(conn.socket.close(deadline));
                }
                for (_, cancel) in self.running.drain() {
                    cancel.cancel();
                }
                self.stop_jobs.cancel();
                self.report = Some(report);
            }
            _ => {}
        }
    }

    /// Starts a job: its first poll happens here, on the driver's task, so a handler that finishes
    /// without waiting (or fails at once) costs no task, no channel message and no wake-up; its
    /// outcome is handed to the engine after this turn's events. A handler that has to wait
    /// continues as its own task, and its outcome comes back on the channel.
    fn start_job(&mut self, token: JobToken, job: Job, cx: &mut Context<'_>) {
        let span = tracing::info_span!("faktory.job", jid = %job.jid, jobtype = %job.jobtype, queue = %job.queue());
        // A context is built from the job (and its cancellation token kept, for `CancelJob`) only
        // when something will read it.
        let mut cancel = None;
        let ctx = |job: &Job, seen: bool| {
            if seen {
                let token = cancel.insert(CancellationToken::new());
                JobContext::new(job, token.clone(), Arc::clone(&self.shared))
            } else {
                JobContext::unseen(self.stop_jobs.clone(), Arc::clone(&self.shared))
            }
        };
        // The handler's future is created and polled once here, in the job's span; only a job
        // that has to wait becomes a task of its own (its future, in its span). (The engine logs
        // the outcome.)
        let polled = span.in_scope(|| poll_started(start_job(&self.chain, job, ctx), cx));
        if let Some(cancel) = cancel {
            self.running.insert(token, cancel);
        }
        match polled {
            Ok(outcome) => self.finished.push((token, outcome)),
            Err(fut) => {
                let done = self.done_tx.clone();
                let task = async move {
                    let outcome = finish_job(Ok(fut)).await;
                    let _ = done.unbounded_send((token, outcome));
                }
                .instrument(span);
                self.rt.spawn(Abortable::new(task, self.stop_jobs.clone()));
            }
        }
    }
}

/// Resident memory in KiB (Linux: `/proc/self/status`).
fn read_rss_kb() -> Option<u64> {
    if cfg!(target_os = "linux") {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| api::rss_kb_from_proc_status(&s))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::mpsc as std_mpsc;
    use std::time::{Duration, Instant};

    use faktory_proto::client::ConnectionError;
    use faktory_proto::worker::StopReason;

    use crate::testrt::TestRt;
    use crate::{BoxError, Job, WorkerBuilder};

    /// A server that refuses every HELLO; reports each line it got and each EOF it saw.
    fn refusing_server() -> (u16, std_mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = std_mpsc::channel();
        std::thread::spawn(move || {
            while let Ok((mut sock, _)) = listener.accept() {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let _ = sock.write_all(b"+HI {\"v\":2,\"s\":\"salt\",\"i\":1}\r\n");
                    let mut lines = BufReader::new(sock.try_clone().unwrap());
                    let mut line = String::new();
                    while lines.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                        let _ = tx.send(line.trim_end().to_owned());
                        if line.starts_with("HELLO") {
                            let _ = sock.write_all(b"-ERR Invalid password\r\n");
                        }
                        line.clear();
                    }
                    let _ = tx.send("EOF".to_owned());
                });
            }
        });
        (port, rx)
    }

    #[test]
    fn a_refused_password_stops_the_worker_at_once_and_closes_its_socket() {
        let (port, seen) = refusing_server();
        let worker = WorkerBuilder::with_runtime(TestRt::default())
            .url(&format!("tcp://:wrong@127.0.0.1:{port}"))
            .unwrap()
            .register("X", |_job: Job| async { Ok::<(), BoxError>(()) })
            .build()
            .unwrap();
        assert!(format!("{worker:?}").contains(&port.to_string()));
        let started = Instant::now();
        let report = futures_lite::future::block_on(worker.run());
        assert!(
            matches!(
                report.reason,
                StopReason::Fatal(ConnectionError::Auth(ref e)) if e.is_invalid_password()
            ),
            "{report:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the first connection is opened at once, not after a timeout"
        );
        let hello = seen.recv().unwrap();
        assert!(hello.starts_with("HELLO "), "{hello}");
        assert!(hello.contains("\"pwdhash\""), "{hello}");
        assert_eq!(
            seen.recv_timeout(Duration::from_secs(5)).unwrap(),
            "EOF",
            "the driver closed the socket"
        );
    }

    /// A server that writes every reply one byte at a time, a millisecond apart, hands out
    /// `jobs` jobs and then answers FETCH with no job after 50 ms; reports each ACKed jid.
    fn trickling_server(jobs: usize) -> (u16, std_mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = std_mpsc::channel();
        let handed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        std::thread::spawn(move || {
            while let Ok((sock, _)) = listener.accept() {
                let (tx, handed) = (tx.clone(), std::sync::Arc::clone(&handed));
                std::thread::spawn(move || {
                    sock.set_nodelay(true).unwrap();
                    let mut out = sock.try_clone().unwrap();
                    let mut trickle = |bytes: &[u8]| {
                        for b in bytes {
                            if out.write_all(&[*b]).is_err() {
                                return;
                            }
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    };
                    trickle(b"+HI {\"v\":2}\r\n");
                    let mut lines = BufReader::new(sock);
                    let mut line = String::new();
                    while lines.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                        if line.starts_with("FETCH") {
                            let n = handed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            if n < jobs {
                                let job = format!(
                                    "{{\"jid\":\"trickle-{n:04}\",\"jobtype\":\"T\",\"args\":[{n}]}}"
                                );
                                trickle(format!("${}\r\n{job}\r\n", job.len()).as_bytes());
                            } else {
                                std::thread::sleep(Duration::from_millis(50));
                                trickle(b"$-1\r\n");
                            }
                        } else if let Some(ack) = line.strip_prefix("ACK ") {
                            let _ = tx.send(ack.trim_end().to_owned());
                            trickle(b"+OK\r\n");
                        } else if line.starts_with("END") {
                            break;
                        } else {
                            trickle(b"+OK\r\n");
                        }
                        line.clear();
                    }
                });
            }
        });
        (port, rx)
    }

    #[test]
    fn replies_that_trickle_in_byte_by_byte_are_all_read() {
        // The sockets' receive low-water mark must fall as soon as part of an awaited reply is
        // in: a mark left too high would wait for bytes the server never sends.
        let (port, acks) = trickling_server(6);
        let (stop, stopped) = futures_channel::oneshot::channel::<()>();
        let worker = WorkerBuilder::with_runtime(TestRt::default())
            .url(&format!("tcp://127.0.0.1:{port}"))
            .unwrap()
            .concurrency(2)
            .register("T", |_job: Job| async { Ok::<(), BoxError>(()) })
            .shutdown_signal(async move {
                let _ = stopped.await;
            })
            .build()
            .unwrap();
        let running = std::thread::spawn(move || futures_lite::future::block_on(worker.run()));
        let mut seen: Vec<String> = (0..6)
            .map(|_| acks.recv_timeout(Duration::from_secs(30)).expect("an ACK"))
            .collect();
        seen.sort();
        let want: Vec<String> = (0..6)
            .map(|n| format!("{{\"jid\":\"trickle-{n:04}\"}}"))
            .collect();
        assert_eq!(seen, want);
        stop.send(()).unwrap();
        let report = running.join().unwrap();
        assert!(report.is_clean(), "{report:?}");
    }
}
