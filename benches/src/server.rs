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

use faktory_testkit::{Pace, TestServer};

use crate::BoxError;
use crate::measure::{self, TESTKIT_THREAD_PREFIXES};

/// Parses `--pace`: `real` ([`Pace::real_server`]), `PER_US:SHARED_US` (the two service times of
/// the model in microseconds) or `PER_US:SHARED_US:KNEE:CROWD_NS` (with crowding; see
/// `faktory_testkit::Pace`).
pub fn parse_pace(text: &str) -> Result<Pace, String> {
    text.parse::<Pace>().map_err(|e| e.to_string())
}

/// The pace as [`parse_pace`] reads it back (what a spawned testkit is given).
pub fn pace_arg(pace: Pace) -> String {
    pace.to_string()
}

/// How a report names a pace: `real 20:45` for [`Pace::real_server`], else `20:45` (µs).
pub fn describe_pace(pace: Option<Pace>) -> String {
    match pace {
        None => "instant".to_owned(),
        Some(p) if p == Pace::real_server() => format!("real {}", pace_arg(p)),
        Some(p) => pace_arg(p),
    }
}

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
    pace: Option<Pace>,
}

impl Target {
    /// `FAKTORY_URL` when `spawn` is false and it is set; else a testkit child process when `spawn`;
    /// else the testkit in this process. A testkit answers at `pace` when given (a real server
    /// has its own: `pace` with `FAKTORY_URL` is refused).
    pub fn choose(spawn: bool, pace: Option<Pace>) -> Result<Target, BoxError> {
        if spawn {
            return Target::spawned(pace);
        }
        match std::env::var("FAKTORY_URL") {
            Ok(url) if !url.is_empty() => {
                if pace.is_some() {
                    return Err(
                        "--pace models a server for the testkit: it does not apply to \
                                FAKTORY_URL (unset it, or add --spawn-testkit)"
                            .into(),
                    );
                }
                Ok(Target::external(url))
            }
            _ => Target::in_process(pace),
        }
    }

    /// A testkit in a child process (this executable re-run as `serve-testkit`), at `pace`.
    pub fn spawned(pace: Option<Pace>) -> Result<Target, BoxError> {
        let exe = std::env::current_exe()?;
        let child = TestkitChild::spawn(&exe, &serve_testkit_args(pace))?;
        Ok(Target {
            url: child.url().to_owned(),
            kind: ServerKind::Spawned,
            in_process: None,
            child: Some(child),
            pace,
        })
    }

    /// A server that is not ours.
    pub fn external(url: String) -> Target {
        Target {
            url,
            kind: ServerKind::External,
            in_process: None,
            child: None,
            pace: None,
        }
    }

    /// Starts the testkit on its own runtime in this process, at `pace`.
    pub fn in_process(pace: Option<Pace>) -> Result<Target, BoxError> {
        let ip = InProcess::start(pace)?;
        Ok(Target {
            url: ip.url.clone(),
            kind: ServerKind::InProcess,
            in_process: Some(ip),
            child: None,
            pace,
        })
    }

    /// The testkit's modelled pace (`None`: it answers at once, or the server is not ours).
    pub fn pace(&self) -> Option<Pace> {
        self.pace
    }

    /// The testkit child's process id, when spawned.
    pub fn child_pid(&self) -> Option<u32> {
        self.child.as_ref().map(TestkitChild::pid)
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
            ServerKind::InProcess => Some(measure::threads_cpu_seconds(TESTKIT_THREAD_PREFIXES)),
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
    fn start(pace: Option<Pace>) -> Result<InProcess, BoxError> {
        let rt = testkit_runtime()?;
        let mut builder = TestServer::builder();
        if let Some(p) = pace {
            builder = builder.pace(p);
        }
        let server = rt.block_on(builder.start())?;
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
        .thread_name(measure::TESTKIT_THREAD_PREFIX)
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
    pub fn spawn<S: AsRef<std::ffi::OsStr>>(
        program: &Path,
        args: &[S],
    ) -> Result<TestkitChild, BoxError> {
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

/// The arguments that make this executable serve a testkit child on any port, at `pace`.
pub fn serve_testkit_args(pace: Option<Pace>) -> Vec<String> {
    let mut args: Vec<String> = ["serve-testkit", "--port", "0"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    if let Some(p) = pace {
        args.push("--pace".into());
        args.push(pace_arg(p));
    }
    args
}

/// The child side of `--spawn-testkit` (`serve-testkit [--port P] [--fetch-timeout-ms MS]
/// [--pace P]`): serves the testkit on 127.0.0.1, prints its URL on stdout, and serves until stdin
/// reaches EOF.
pub fn serve_testkit(
    port: u16,
    fetch_timeout: Duration,
    pace: Option<Pace>,
) -> Result<(), BoxError> {
    let rt = testkit_runtime()?;
    let mut builder = TestServer::builder()
        .bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
        .fetch_timeout(fetch_timeout);
    if let Some(p) = pace {
        builder = builder.pace(p);
    }
    let server = rt.block_on(builder.start())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pace_arguments_read_back() {
        assert_eq!(parse_pace("real"), Ok(Pace::real_server()));
        let p = parse_pace("120:45").unwrap();
        assert_eq!(
            p,
            Pace::new(Duration::from_micros(120), Duration::from_micros(45))
        );
        assert_eq!(parse_pace(&pace_arg(p)), Ok(p));
        assert_eq!(
            parse_pace(&pace_arg(Pace::real_server())),
            Ok(Pace::real_server())
        );
        for bad in ["", "fast", "1", "1:x", ":2", "-1:2"] {
            assert!(parse_pace(bad).is_err(), "{bad:?}");
        }
        assert_eq!(describe_pace(None), "instant");
        assert!(describe_pace(Some(Pace::real_server())).starts_with("real "));
        assert_eq!(describe_pace(Some(p)), "120:45");
        assert_eq!(
            serve_testkit_args(Some(p)),
            ["serve-testkit", "--port", "0", "--pace", "120:45"]
        );
    }
}
