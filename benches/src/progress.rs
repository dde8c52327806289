//! A progress bar with the current and the average rate (`indicatif`), on a terminal only.
//!
//! The workload bumps a shared counter (an atomic add per job, the same for every client); a thread
//! of its own reads it every 250 ms and moves the bar, so it works with every runtime (and none).

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often the bar is moved.
const TICK: Duration = Duration::from_millis(250);

/// The bar's layout: `label [####......] done/total, R jobs/s now, A average` (under 80 columns).
const TEMPLATE: &str = "{prefix} [{bar:30}] {pos}/{len}, {msg}";

/// A progress bar on stderr; cleared when dropped or [`Progress::finish`]ed.
#[derive(Debug)]
pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts drawing `label`'s progress towards `total` jobs every 250 ms, if `enabled` and stderr
    /// is a terminal; otherwise draws nothing (and starts no thread).
    pub fn start(label: &str, done: Arc<AtomicU64>, total: u64, enabled: bool) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        if !enabled || !std::io::stderr().is_terminal() {
            return Progress { stop, thread: None };
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(TEMPLATE)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("#..");
        bar.set_style(style);
        bar.set_prefix(label.to_owned());
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("fk-progress".into())
            .spawn(move || draw(&bar, &done, total, &stop2))
            .ok();
        Progress { stop, thread }
    }

    /// Stops drawing and clears the bar.
    pub fn finish(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop_now();
    }
}

fn draw(bar: &ProgressBar, done: &AtomicU64, total: u64, stop: &AtomicBool) {
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
        bar.set_position(n.min(total));
        bar.set_message(rates(current, average));
    }
    bar.finish_and_clear();
}

fn rate(n: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 { n as f64 / s } else { 0.0 }
}

/// The rates after the bar: `12,346 jobs/s now, 10,000 average`.
pub fn rates(current: f64, average: f64) -> String {
    format!(
        "{} jobs/s now, {} average",
        crate::report::thousands(current),
        crate::report::thousands(average)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rates_and_the_template() {
        assert_eq!(rates(12345.6, 10000.0), "12,346 jobs/s now, 10,000 average");
        assert_eq!(rate(10, Duration::ZERO), 0.0);
        assert_eq!(rate(10, Duration::from_secs(2)), 5.0);
        assert!(ProgressStyle::with_template(TEMPLATE).is_ok());
    }

    #[test]
    fn disabled_progress_draws_nothing() {
        let p = Progress::start("x", Arc::new(AtomicU64::new(0)), 10, false);
        assert!(p.thread.is_none());
        p.finish();
    }
}
