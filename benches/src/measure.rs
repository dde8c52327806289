//! What a run costs this process: CPU time from `/proc/self/stat`, peak RSS from
//! `/proc/self/status`, and the CPU of threads or processes that are not the client (the
//! in-process testkit's threads, a spawned testkit's process).
//!
//! Linux only: elsewhere every reading is `None` and the tool prints `n/a`.

use std::path::Path;

/// Clock ticks per second of `utime`/`stime` in `/proc/*/stat` (`USER_HZ`, 100 on Linux).
pub const USER_HZ: f64 = 100.0;

/// The name of the in-process testkit's runtime threads (`comm` keeps 15 bytes).
pub const TESTKIT_THREAD_PREFIX: &str = "fk-testkit";

/// The name prefixes of every in-process testkit thread: its runtime's, and the pace timer thread
/// the testkit names `faktory-testkit-pace` (`comm`: `faktory-testkit`).
pub const TESTKIT_THREAD_PREFIXES: &[&str] = &[TESTKIT_THREAD_PREFIX, "faktory-testkit"];

/// `utime + stime` in ticks from the text of a `/proc/<pid>/stat` or `/proc/<pid>/task/<tid>/stat`.
///
/// The command name (field 2) is in parentheses and may itself hold spaces and parentheses, so the
/// fields are counted from the last `)`: after it come `state` (field 3) … `utime` (14), `stime` (15).
pub fn cpu_ticks_from_stat(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn cpu_seconds_of(path: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    cpu_ticks_from_stat(&text).map(|t| t as f64 / USER_HZ)
}

/// User + system CPU seconds of this process so far (all threads, exited ones included).
pub fn process_cpu_seconds() -> Option<f64> {
    cpu_seconds_of(Path::new("/proc/self/stat"))
}

/// User + system CPU seconds of process `pid` so far.
pub fn pid_cpu_seconds(pid: u32) -> Option<f64> {
    cpu_seconds_of(&Path::new("/proc").join(pid.to_string()).join("stat"))
}

/// CPU seconds of this process's live threads whose name starts with one of `prefixes`.
pub fn threads_cpu_seconds(prefixes: &[&str]) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    dir.filter_map(Result::ok)
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| prefixes.iter().any(|p| name.trim_end().starts_with(p)))
        })
        .filter_map(|task| cpu_seconds_of(&task.path().join("stat")))
        .sum()
}

/// The value in kB of a `Name:   1234 kB` line of `/proc/*/status`.
pub fn status_kb(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(':')?;
        value.split_ascii_whitespace().next()?.parse().ok()
    })
}

/// Peak resident set size of this process in kB (`VmHWM`).
pub fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status_kb(&status, "VmHWM")
}

/// Current resident set size of this process in kB (`VmRSS`).
pub fn rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status_kb(&status, "VmRSS")
}

/// Resets this process's peak RSS to its current RSS (writes `5` to `/proc/self/clear_refs`, Linux
/// 4.0+), so a measured phase is not charged for what a setup phase (prefilling jobs) allocated.
/// Returns whether the kernel accepted it.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", b"5").is_ok()
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` has them.
pub fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let avg: Vec<&str> = text.split_ascii_whitespace().take(3).collect();
    (avg.len() == 3).then(|| avg.join(" "))
}

/// CPU readings at one instant: this process, and the part of it that is not the client (the
/// in-process testkit's threads).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuMark {
    /// Whole process, seconds.
    pub process: Option<f64>,
    /// In-process testkit threads, seconds.
    pub testkit_threads: f64,
}

impl CpuMark {
    /// Reads the counters now.
    pub fn now() -> Self {
        CpuMark {
            process: process_cpu_seconds(),
            testkit_threads: threads_cpu_seconds(TESTKIT_THREAD_PREFIXES),
        }
    }

    /// Client CPU seconds from `start` to `self` (the process less the testkit threads).
    pub fn client_since(&self, start: &CpuMark) -> Option<f64> {
        let total = self.process? - start.process?;
        Some((total - (self.testkit_threads - start.testkit_threads)).max(0.0))
    }

    /// In-process testkit CPU seconds from `start` to `self`.
    pub fn testkit_since(&self, start: &CpuMark) -> f64 {
        (self.testkit_threads - start.testkit_threads).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_the_command_name() {
        let stat = "4242 (faktory (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 37 0 0 20 0 3 0";
        assert_eq!(cpu_ticks_from_stat(stat), Some(287));
        assert_eq!(cpu_ticks_from_stat("4242 (short) S 1 2"), None);
        assert_eq!(cpu_ticks_from_stat("garbage"), None);
    }

    #[test]
    fn status_lines() {
        let status =
            "Name:\tfaktory-bench\nVmPeak:\t  20000 kB\nVmHWM:\t   8123 kB\nVmRSS:\t 7000 kB\n";
        assert_eq!(status_kb(status, "VmHWM"), Some(8123));
        assert_eq!(status_kb(status, "VmRSS"), Some(7000));
        assert_eq!(status_kb(status, "VmSwap"), None);
    }

    #[test]
    fn this_process_is_measured_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(process_cpu_seconds().is_some());
            assert!(peak_rss_kb().unwrap() >= rss_kb().unwrap() / 2);
            let a = CpuMark::now();
            let mut x = 0u64;
            for i in 0..5_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            std::hint::black_box(x);
            let b = CpuMark::now();
            assert!(b.client_since(&a).unwrap() >= 0.0);
            // Other tests of this process run in-process testkits: their threads may have run.
            assert!(b.testkit_since(&a) >= 0.0);
        }
    }
}
