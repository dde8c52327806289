//! Connect failures that retrying cannot fix stop the worker; network trouble does not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use faktory_proto::client::{ConnectFailure, ConnectPhase};
use std::time::{Duration, Instant};

use faktory_proto::worker::{Event, StopReason, Worker, WorkerConfig};

fn first_open(w: &mut Worker) -> faktory_proto::worker::ConnId {
    while let Some(ev) = w.poll_event() {
        if let Event::OpenConnection(c) = ev {
            return c;
        }
    }
    panic!("no OpenConnection");
}

fn stopped(w: &mut Worker) -> Option<StopReason> {
    while let Some(ev) = w.poll_event() {
        if let Event::Stopped(report) = ev {
            // A worker the server refused did no work: never a clean stop.
            assert_eq!(
                report.is_clean(),
                !matches!(report.reason, StopReason::Fatal(_)),
                "{report:?}"
            );
            return Some(report.reason);
        }
    }
    None
}

#[test]
fn a_tls_failure_before_any_connection_was_ready_is_fatal() {
    let now = Instant::now();
    let mut w = Worker::new(WorkerConfig::default(), now).unwrap();
    let c = first_open(&mut w);
    let tls =
        ConnectFailure::permanent(ConnectPhase::Tls, "invalid peer certificate: UnknownIssuer");
    w.handle_connect_failed(c, &tls, now);
    assert!(matches!(stopped(&mut w), Some(StopReason::Fatal(_))));
}

#[test]
fn a_refused_connection_is_retried_with_backoff() {
    let now = Instant::now();
    let mut w = Worker::new(WorkerConfig::default(), now).unwrap();
    let c = first_open(&mut w);
    let refused = ConnectFailure::transient(ConnectPhase::Tcp, "Connection refused");
    w.handle_connect_failed(c, &refused, now);
    assert_eq!(stopped(&mut w), None);
    let retry_at = w.poll_timeout().expect("a reconnect is scheduled");
    assert!(retry_at > now && retry_at <= now + Duration::from_secs(15));
    w.handle_timeout(retry_at);
    let again = first_open(&mut w);
    assert_ne!(again, c, "a new connection id for the retry");
}
