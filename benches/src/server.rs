//! Where the server runs: an external Faktory (`FAKTORY_URL`), the testkit in this process (on its
//! own runtime, whose threads are named so their CPU can be told apart), or the testkit in a child
//! process (`--spawn-testkit`: this same executable re-run as `serve-testkit`).
//!
//! The child dies with its parent: it serves until its stdin reaches EOF, and the parent holds the
//! other end of that pipe, which the kernel closes however the parent ends (even `SIGKILL`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use faktory_testkit::TestServer;

use crate::BoxError;
use crate::measure::{self, TESTKIT_THREAD_PREFIX};

/// Where the server is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// A server named by `FAKTORY_URL`.
    External,
    /// The testkit, in this process.
    InProcess,
    /// The testkit, in a child process.
    Spawned,
}

impl ServerKind {
    /// `external`, `in-process` or `spawned`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerKind::External => "external",
            ServerKind::InProcess => "in-process",
            ServerKind::Spawned => "spawned",
        }
    }
}

/// The server a run talks to, and whatever keeps it alive.
#[derive(Debug)]
pub struct Target {
    url: String,
    kind: ServerKind,
    in_process: Option<InProcess>,
    child: Option<TestkitChild>,
}

impl Target {
    /// `FAKTORY_URL` when `spawn` is false and it is set; else a testkit child process when `spawn`;
    /// else the testkit in this process.
    pub fn choose(spawn: bool) -> Result<Target, BoxError> {
        if spawn {
            let exe = std::env::current_exe()?;
            let child = TestkitChild::spawn(&exe, &["serve-testkit", "--port", "0"])?;
            return Ok(Target {
                url: child.url().to_owned(),
                kind: ServerKind::Spawned,
                in_process: None,
                child: Some(child),
            });
        }
        match std::env::var("FAKTORY_URL") {
            Ok(url) if !url.is_empty() => Ok(Target::external(url)),
            _ => Target::in_process(),
        }
    }

    /// A server that is not ours.
    pub fn external(url: String) -> Target {
        Target {
            url,
            kind: ServerKind::External,
            in_process: None,
            child: None,
        }
    }

    /// Starts the testkit on its own runtime in this process.
    pub fn in_process() -> Result<Target, BoxError> {
        let ip = InProcess::start()?;
        Ok(Target {
            url: ip.url.clone(),
            kind: ServerKind::InProcess,
            in_process: Some(ip),
            child: None,
        })
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where it is.
    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// Live connections as the in-process testkit counts them (`None` for other servers).
    pub fn connection_count(&self) -> Option<u64> {
        self.in_process
            .as_ref()
            .and_then(|ip| ip.server.as_ref())
            .map(|s| s.connection_count() as u64)
    }

    /// The server's CPU seconds so far, when it is ours: the in-process testkit's threads, or the
    /// child process.
    pub fn server_cpu_seconds(&self) -> Option<f64> {
        match self.kind {
            ServerKind::External => None,
            ServerKind::InProcess => Some(measure::threads_cpu_seconds(TESTKIT_THREAD_PREFIX)),
            ServerKind::Spawned => self
                .child
                .as_ref()
                .and_then(|c| measure::pid_cpu_seconds(c.pid())),
        }
    }

    /// A note for the report when the figures include the server.
    pub fn caveat(&self) -> Option<&'static str> {
        (self.kind == ServerKind::InProcess).then_some(
            "in-process testkit: peak RSS includes the server's memory (client CPU excludes its threads); \
             use --spawn-testkit for client-only RSS",
        )
    }
}

#[derive(Debug)]
struct InProcess {
    url: String,
    server: Option<TestServer>,
    rt: Option<tokio::runtime::Runtime>,
}

impl InProcess {
    fn start() -> Result<InProcess, BoxError> {
        let rt = testkit_runtime()?;
        let server = rt.block_on(TestServer::builder().start())?;
        Ok(InProcess {
            url: server.url(),
            server: Some(server),
            rt: Some(rt),
        })
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        drop(self.server.take());
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn testkit_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name(TESTKIT_THREAD_PREFIX)
        .enable_all()
        .build()
}

/// A testkit in a child process. Dropping it closes the child's stdin (it exits), and kills it if
/// it has not exited within 3 s.
#[derive(Debug)]
pub struct TestkitChild {
    child: Child,
    stdin: Option<ChildStdin>,
    url: String,
}

impl TestkitChild {
    /// Runs `program args…` (which must serve a testkit, print its URL as the first line of stdout,
    /// and exit when stdin closes), and waits for the URL.
    pub fn spawn(program: &Path, args: &[&str]) -> Result<TestkitChild, BoxError> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the testkit child {}: {e}", program.display()))?;
        let stdin = child.stdin.take();
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let mut reader = BufReader::new(out);
            let _ = reader.read_line(&mut line);
        }
        let url = line.trim().to_owned();
        let mut this = TestkitChild { child, stdin, url };
        if !this.url.starts_with("tcp://") {
            this.stop();
            return Err(format!("the testkit child printed no URL (got {line:?})").into());
        }
        Ok(this)
    }

    /// The child's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds the child has used so far.
    pub fn cpu_seconds(&self) -> Option<f64> {
        measure::pid_cpu_seconds(self.pid())
    }

    fn stop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(_) => break,
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestkitChild {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The child side of `--spawn-testkit` (`serve-testkit [--port P] [--fetch-timeout-ms MS]`):
/// serves the testkit on 127.0.0.1, prints its URL on stdout, and serves until stdin reaches EOF.
pub fn serve_testkit(port: u16, fetch_timeout: Duration) -> Result<(), BoxError> {
    let rt = testkit_runtime()?;
    let server = rt.block_on(
        TestServer::builder()
            .bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
            .fetch_timeout(fetch_timeout)
            .start(),
    )?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", server.url())?;
        out.flush()?;
    }
    // Serve until the parent closes our stdin (or dies). Read errors end it too.
    let mut sink = [0u8; 256];
    let mut stdin = std::io::stdin().lock();
    while let Ok(n) = stdin.read(&mut sink) {
        if n == 0 {
            break;
        }
    }
    drop(server);
    rt.shutdown_background();
    Ok(())
}
