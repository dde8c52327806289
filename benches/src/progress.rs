//! A progress line with the current rate, on a terminal only (`std::io::IsTerminal`).
//!
//! It runs on its own thread so it works with every runtime (and with none), and reads a shared
//! counter the workload bumps.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the line is redrawn.
const TICK: Duration = Duration::from_millis(250);

/// A progress line on stderr; cleared when dropped or [`Progress::finish`]ed.
#[derive(Debug)]
pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts drawing `label: done/total jobs, R jobs/s now, A jobs/s average` every 250 ms, if
    /// `enabled` and stderr is a terminal; otherwise draws nothing.
    pub fn start(label: &str, done: Arc<AtomicU64>, total: u64, enabled: bool) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        if !enabled || !std::io::stderr().is_terminal() {
            return Progress { stop, thread: None };
        }
        let label = label.to_owned();
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("fk-progress".into())
            .spawn(move || draw(&label, &done, total, &stop2))
            .ok();
        Progress { stop, thread }
    }

    /// Stops drawing and clears the line.
    pub fn finish(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop_now();
    }
}

fn draw(label: &str, done: &AtomicU64, total: u64, stop: &AtomicBool) {
    let start = Instant::now();
    let mut last = (start, 0u64);
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(TICK);
        let now = Instant::now();
        let n = done.load(Ordering::Relaxed);
        if n >= total && last.1 >= total {
            // Complete, and drawn so: stop updating (what follows, e.g. a worker's shutdown,
            // is not the measured rate).
            continue;
        }
        let current = rate(n.saturating_sub(last.1), now.duration_since(last.0));
        let average = rate(n, now.duration_since(start));
        last = (now, n);
        let line = progress_line(label, n, total, current, average);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
    }
}

fn rate(n: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 { n as f64 / s } else { 0.0 }
}

/// The text of the progress line: a 30-column bar, counts and rates.
pub fn progress_line(label: &str, done: u64, total: u64, current: f64, average: f64) -> String {
    const WIDTH: u64 = 30;
    let filled = done
        .min(total)
        .saturating_mul(WIDTH)
        .checked_div(total)
        .unwrap_or(WIDTH);
    let bar: String = (0..WIDTH)
        .map(|i| if i < filled { '#' } else { '.' })
        .collect();
    format!(
        "{label} [{bar}] {done}/{total} jobs, {} jobs/s now, {} jobs/s average",
        crate::report::thousands(current),
        crate::report::thousands(average)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shape() {
        let l = progress_line("work", 500, 1000, 12345.6, 10000.0);
        assert_eq!(
            l,
            "work [###############...............] 500/1000 jobs, 12,346 jobs/s now, 10,000 jobs/s average"
        );
        assert!(progress_line("push", 5, 0, 0.0, 0.0).contains(&"#".repeat(30)));
        assert!(progress_line("push", 2000, 1000, 0.0, 0.0).contains(&"#".repeat(30)));
    }

    #[test]
    fn disabled_progress_draws_nothing() {
        let p = Progress::start("x", Arc::new(AtomicU64::new(0)), 10, false);
        assert!(p.thread.is_none());
        p.finish();
    }
}
