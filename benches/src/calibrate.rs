//! `faktory-bench calibrate`: the raw-socket client ([`crate::raw`]) against a spawned testkit at
//! the modelled pace (`--pace`, default `real`) at several connection counts, beside what the same
//! client did against a real Faktory ([`REAL_SERVER_RAW`]): the ratio, and whether it is within 25%.
//!
//! This is the check of the model: if the raw client sees the real server's curve, the worker
//! comparisons against the modelled testkit (`compare`) are about the real server's pace.

use faktory_testkit::Pace;
use serde_json::json;

use crate::BoxError;
use crate::cli::{Mode, Options, REAL_SERVER_RAW, say_err, say_out};
use crate::measure;
use crate::monitor::Monitor;
use crate::report::{Measurement, thousands};
use crate::server::{Target, describe_pace};
use crate::workloads::measure_raw;

/// How far from the real server a point may be and still count as calibrated.
pub const TOLERANCE: f64 = 0.25;

/// One connection count's result.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Connections of the raw client.
    pub connections: usize,
    /// Median jobs/s against the testkit.
    pub jobs_per_sec: f64,
    /// Median client CPU per job, µs.
    pub cpu_us_per_job: Option<f64>,
    /// Median server (testkit) CPU per job, µs.
    pub server_cpu_us_per_job: Option<f64>,
    /// The real server's jobs/s at this count, if measured.
    pub real: Option<f64>,
}

impl Point {
    /// Testkit / real server.
    pub fn ratio(&self) -> Option<f64> {
        self.real
            .filter(|r| *r > 0.0)
            .map(|r| self.jobs_per_sec / r)
    }

    /// Whether the ratio is within [`TOLERANCE`] of 1.
    pub fn within(&self) -> Option<bool> {
        self.ratio().map(|r| (r - 1.0).abs() <= TOLERANCE + 1e-9)
    }

    fn to_json(&self) -> serde_json::Value {
        json!({
            "connections": self.connections,
            "jobs_per_sec": self.jobs_per_sec.round(),
            "cpu_us_per_job": self.cpu_us_per_job.map(|c| (c * 100.0).round() / 100.0),
            "server_cpu_us_per_job": self.server_cpu_us_per_job.map(|c| (c * 100.0).round() / 100.0),
            "real_server_jobs_per_sec": self.real,
            "ratio": self.ratio().map(|r| (r * 1000.0).round() / 1000.0),
            "within_25_percent": self.within(),
        })
    }
}

/// The real server's jobs/s with `connections` raw-client connections, if it was measured.
pub fn real_server(connections: usize) -> Option<f64> {
    REAL_SERVER_RAW
        .iter()
        .find(|(c, _)| *c == connections)
        .map(|(_, r)| *r)
}

/// The median of `v` (`None` when empty).
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v.get(mid).copied()
    } else {
        Some((v.get(mid - 1)? + v.get(mid)?) / 2.0)
    }
}

/// The points of `connections` from the runs (each run's `fetch_connections` says its count).
pub fn points(connections: &[usize], runs: &[Measurement]) -> Vec<Point> {
    connections
        .iter()
        .map(|&k| {
            let of = |f: &dyn Fn(&Measurement) -> Option<f64>| {
                median(
                    runs.iter()
                        .filter(|m| {
                            m.params.get("fetch_connections").and_then(|v| v.as_u64())
                                == Some(k as u64)
                        })
                        .filter_map(f)
                        .collect(),
                )
            };
            Point {
                connections: k,
                jobs_per_sec: of(&|m| Some(m.jobs_per_sec())).unwrap_or(0.0),
                cpu_us_per_job: of(&Measurement::cpu_us_per_job),
                server_cpu_us_per_job: of(&Measurement::server_cpu_us_per_job),
                real: real_server(k),
            }
        })
        .collect()
}

/// The table: one line per point, testkit beside real server, ratio and verdict.
pub fn table(points: &[Point]) -> String {
    let mut text = format!(
        "{:>11}  {:>14}  {:>18}  {:>7}  {:>10}  {:>17}  {:>17}\n",
        "connections",
        "testkit jobs/s",
        "real server jobs/s",
        "ratio",
        "within 25%",
        "client CPU us/job",
        "server CPU us/job"
    );
    for p in points {
        let us = |v: Option<f64>| v.map_or("n/a".to_owned(), |c| format!("{c:.1}"));
        text.push_str(&format!(
            "{:>11}  {:>14}  {:>18}  {:>7}  {:>10}  {:>17}  {:>17}\n",
            p.connections,
            thousands(p.jobs_per_sec),
            p.real.map_or("-".to_owned(), thousands),
            p.ratio().map_or("-".to_owned(), |r| format!("{r:.2}x")),
            match p.within() {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "-",
            },
            us(p.cpu_us_per_job),
            us(p.server_cpu_us_per_job),
        ));
    }
    let judged: Vec<bool> = points.iter().filter_map(Point::within).collect();
    text.push_str(&format!(
        "{} of {} points within 25% of the real server",
        judged.iter().filter(|w| **w).count(),
        judged.len()
    ));
    text
}

/// Runs `calibrate` as `opts` says, printing as it goes (or one JSON object with `--json`).
pub fn run(opts: &Options) -> Result<(), BoxError> {
    let Mode::Calibrate {
        jobs,
        rounds,
        ref connections,
    } = opts.mode
    else {
        return Err("not calibrate".into());
    };
    if std::env::var_os("FAKTORY_URL").is_some_and(|u| !u.is_empty()) {
        say_err(
            "calibrate: FAKTORY_URL is ignored (calibrate measures a testkit it spawns; for a real \
             server run `faktory-bench raw N --connections K --prefill`)",
        );
    }
    let pace = opts.pace.unwrap_or_else(Pace::real_server);
    let target = Target::spawned(Some(pace))?;
    let monitor = Monitor::connect(target.url())?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load_start = measure::load_average().unwrap_or_default();
    if !opts.json {
        say_out(&format!(
            "calibrate: {client} (one FETCH outstanding per connection, each ACK sent with the next \
             FETCH) against a spawned testkit (pid {pid}) at pace {pace_text} us, {jobs} prefilled \
             jobs per point, median of {rounds} rounds; {cores} cores, load average {load_start}",
            client = crate::raw::CLIENT,
            pid = target.child_pid().unwrap_or(0),
            pace_text = describe_pace(Some(pace)),
            jobs = thousands(jobs as f64),
        ));
    }
    let mut runs = Vec::new();
    for round in 1..=rounds {
        for &k in connections {
            let mut o = opts.clone();
            o.queue = format!("calibrate-{k}-{round}");
            o.mode = Mode::Raw {
                n: jobs,
                connections: k,
                prefill: true,
            };
            let m = measure_raw(&o, &target, jobs, k, true);
            monitor.client().queue_remove(&[o.queue.as_str()])?;
            let m = m?;
            if !opts.json {
                say_out(&format!(
                    "  round {round}: {k:>2} connections {:>9} jobs/s  client CPU {:>6} us/job  \
                     server CPU {:>6} us/job",
                    thousands(m.jobs_per_sec()),
                    m.cpu_us_per_job()
                        .map_or("n/a".into(), |c| format!("{c:.1}")),
                    m.server_cpu_us_per_job()
                        .map_or("n/a".into(), |c| format!("{c:.1}")),
                ));
            }
            runs.push(m);
        }
    }
    let points = points(connections, &runs);
    let load_end = measure::load_average().unwrap_or_default();
    if opts.json {
        say_out(
            &json!({
                "mode": "calibrate",
                "client": crate::raw::CLIENT,
                "pace_us": describe_pace(Some(pace)),
                "jobs": jobs,
                "rounds": rounds,
                "cores": cores,
                "load_average_start": load_start,
                "load_average_end": load_end,
                "points": points.iter().map(Point::to_json).collect::<Vec<_>>(),
            })
            .to_string(),
        );
    } else {
        say_out(&format!(
            "load average at the end: {load_end}\n\n{}",
            table(&points)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_of(connections: u64, jobs_per_sec: f64) -> Measurement {
        let mut m = Measurement::new("raw", crate::raw::CLIENT, "threads", "spawned");
        m.jobs = 10_000;
        m.seconds = 10_000.0 / jobs_per_sec;
        m.cpu_seconds = Some(0.27);
        m.param("fetch_connections", connections);
        m
    }

    #[test]
    fn points_are_medians_beside_the_real_server() {
        let runs = [
            run_of(1, 3_000.0),
            run_of(1, 3_400.0),
            run_of(1, 9_000.0),
            run_of(10, 16_000.0),
            run_of(3, 7_000.0),
        ];
        let p = points(&[1, 10, 3], &runs);
        assert_eq!(p.len(), 3);
        assert!((p[0].jobs_per_sec - 3_400.0).abs() < 1e-6);
        assert_eq!(p[0].real, Some(3_300.0));
        assert_eq!(p[0].within(), Some(true));
        assert!((p[0].cpu_us_per_job.unwrap() - 27.0).abs() < 1e-6);
        // 16,000 / 11,900 = 1.34: outside 25%.
        assert_eq!(p[1].within(), Some(false));
        assert_eq!((p[2].real, p[2].within()), (None, None));
        let t = table(&p);
        assert!(t.contains("yes") && t.contains("NO"), "{t}");
        assert!(
            t.ends_with("1 of 2 points within 25% of the real server"),
            "{t}"
        );
    }

    #[test]
    fn the_edges_of_the_tolerance() {
        let at = |jobs_per_sec: f64| Point {
            connections: 1,
            jobs_per_sec,
            cpu_us_per_job: None,
            server_cpu_us_per_job: None,
            real: Some(1_000.0),
        };
        assert_eq!(at(1_250.0).within(), Some(true));
        assert_eq!(at(750.0).within(), Some(true));
        assert_eq!(at(1_260.0).within(), Some(false));
        assert_eq!(at(740.0).within(), Some(false));
        assert_eq!(real_server(4), Some(8_500.0));
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
