//! Scenarios with a worker process of its own (`src/bin/scenario-worker.rs`, the program a user
//! writes, on the runtime under test): termination signals and exit codes.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use faktory_proto::Job;
use faktory_proto::worker::StopReason;
use faktory_testkit::TestServer;

use crate::harness::{Handler, Harness, Shutdown, WorkerApi, WorkerSpec};
use crate::support::{Kit, LONG, Server, eventually, join_within, unique_queue};

/// The `scenario-worker` binary of this package, next to the test executables' `deps/` folder.
fn worker_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>");
    dir.join(format!("scenario-worker{}", std::env::consts::EXE_SUFFIX))
}

fn spawn_worker<H: Harness>(url: &str, queue: &str, job_ms: u64, grace_ms: u64) -> Child {
    Command::new(worker_binary())
        .args([
            H::NAME,
            url,
            queue,
            &job_ms.to_string(),
            &grace_ms.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the scenario-worker binary runs (built with the package's tests)")
}

/// The package and name of the worker example a user of runtime `name` would run (smol and
/// async-std share `faktory-async-std`'s, which runs on smol).
fn worker_example(name: &str) -> (&'static str, &'static str) {
    match name {
        "tokio" => ("faktory-tokio", "worker"),
        "blocking" => ("faktory-blocking", "blocking_worker"),
        _ => ("faktory-async-std", "async_std_worker"),
    }
}

/// The example's binary, built (or found up to date) with the cargo that runs the tests, with the
/// workspace's features, so the test never runs a stale build.
fn example_binary(package: &str, example: &str) -> std::path::PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let dir = worker_binary().with_file_name("examples");
    let mut build = Command::new(cargo);
    build.args([
        "build",
        "-q",
        "--all-features",
        "-p",
        package,
        "--example",
        example,
    ]);
    if dir.parent().and_then(|d| d.file_name()) == Some("release".as_ref()) {
        build.arg("--release");
    }
    let status = build.status().expect("cargo runs");
    assert!(status.success(), "building the {example} example failed");
    dir.join(format!("{example}{}", std::env::consts::EXE_SUFFIX))
}

/// Waits for the child's exit for at most `limit`; kills it (and returns `None`) after that.
async fn exit_within<H: Harness>(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the worker process") {
            return Some(status);
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        H::sleep(Duration::from_millis(10)).await;
    }
}

fn stdout_of(child: &mut Child) -> String {
    let mut out = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        let _ = pipe.read_to_string(&mut out);
    }
    out
}

/// SIGTERM (what systemd, Docker and Kubernetes send) to a worker process busy with jobs: it stops
/// fetching, lets the running jobs finish within the grace period, confirms their ACKs, leaves
/// nothing reserved on the server and exits 0, within the grace period.
pub async fn sigterm_stops_a_busy_worker_process_gracefully<H: Harness>() {
    let Some(kit) = Server::kit_only("sigterm_stops_a_busy_worker_process_gracefully").await else {
        return;
    };
    let queue = unique_queue("sigterm");
    let jobs: Vec<Job> = (0..6)
        .map(|_| Job::builder("Busy").queue(&queue).build().unwrap())
        .collect();
    for job in &jobs {
        kit.push(job.clone()).unwrap();
    }
    let grace = Duration::from_secs(5);
    let mut child = spawn_worker::<H>(&kit.url(), &queue, 400, grace.as_millis() as u64);
    assert!(
        eventually::<H>(LONG, || !kit.reservations().is_empty()).await,
        "the worker is busy"
    );
    let signalled = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = exit_within::<H>(&mut child, grace)
        .await
        .expect("the worker exits within the grace period");
    let out = stdout_of(&mut child);
    assert!(status.success(), "{status:?} {out}");
    assert!(out.contains("clean=true reason=Shutdown"), "{out}");
    assert!(signalled.elapsed() < grace, "{:?}", signalled.elapsed());
    assert!(
        kit.reservations().is_empty(),
        "nothing left reserved: {:?}",
        kit.reservations()
    );
    // Nothing lost: every job was ACKed or is still in the queue.
    let acked = kit.acked();
    let done = jobs.iter().filter(|j| acked.contains(&j.jid)).count();
    assert!(done >= 1, "the running jobs finished");
    assert_eq!(done + kit.queue(&queue).len(), jobs.len());
}

/// A worker the server refuses (a wrong password) stops with `Fatal`, is never a clean stop, and
/// the process exits non-zero.
pub async fn a_refused_worker_is_not_clean_and_its_process_exits_non_zero<H: Harness>() {
    let kit = Kit::start(TestServer::builder().password("s3cret")).await;
    let queue = unique_queue("refused");
    let bad_url = format!("tcp://:wrong@{}", kit.addr());
    // In process.
    let spec = WorkerSpec::new(&bad_url, &queue)
        .shutdown(Shutdown::ServerOnly)
        .handler("Busy", Handler::ok());
    let (worker, _stop) = H::worker(spec).unwrap();
    let report = join_within::<H>(H::spawn(WorkerApi::run(worker)), LONG).await;
    assert!(matches!(report.reason, StopReason::Fatal(_)), "{report:?}");
    assert!(!report.is_clean(), "{report:?}");
    // As a process: a non-zero exit.
    let mut child = spawn_worker::<H>(&bad_url, &queue, 10, 1000);
    let status = exit_within::<H>(&mut child, LONG)
        .await
        .expect("the refused worker exits");
    let out = stdout_of(&mut child);
    assert!(!status.success(), "{status:?} {out}");
    assert!(out.contains("clean=false reason=Fatal"), "{out}");
}

/// The worker example of the runtime's crate, refused by the server (a wrong password in
/// `FAKTORY_URL`): it reports the fatal stop and exits non-zero, so a supervisor notices.
pub async fn the_worker_example_exits_non_zero_when_refused<H: Harness>() {
    let kit = Kit::start(TestServer::builder().password("s3cret")).await;
    let (package, example) = worker_example(H::NAME);
    let mut child = Command::new(example_binary(package, example))
        .env("FAKTORY_URL", format!("tcp://:wrong@{}", kit.addr()))
        .env_remove("FAKTORY_PROVIDER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the example runs");
    let status = exit_within::<H>(&mut child, LONG)
        .await
        .expect("the refused example exits");
    let out = stdout_of(&mut child);
    assert!(!status.success(), "{status:?} {out}");
    assert!(out.contains("stopped: Fatal"), "{out}");
    assert!(out.contains("all outcomes confirmed: false"), "{out}");
}
