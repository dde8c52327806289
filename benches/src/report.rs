//! One run's result, printed as a line a human reads or as one JSON object.

use serde_json::{Map, Value, json};

/// The result of one `load`, `push` or `work` run.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    /// `load`, `push` or `work`.
    pub mode: String,
    /// Which client library ran it (`faktory-tokio`, `faktory-rs 0.13`, …).
    pub client: String,
    /// `tokio`, `blocking`, `smol` or `async-std`.
    pub runtime: String,
    /// Where the server was: `external` (`FAKTORY_URL`), `in-process` testkit, `spawned` testkit.
    pub server: String,
    /// Jobs the run was about (pushed, or processed).
    pub jobs: u64,
    /// Wall-clock seconds of the measured phase.
    pub seconds: f64,
    /// User + system CPU seconds of the client over the measured phase (the in-process testkit's
    /// threads excluded).
    pub cpu_seconds: Option<f64>,
    /// Server CPU seconds over the measured phase, when the server is ours to measure.
    pub server_cpu_seconds: Option<f64>,
    /// Peak RSS of this process (VmHWM), kB.
    pub peak_rss_kb: Option<u64>,
    /// Connections the client had open to the server at most.
    pub connections: Option<u64>,
    /// Mode parameters (`concurrency`, `bulk`, `queue`, …), printed after the figures.
    pub params: Map<String, Value>,
    /// Remarks worth showing (e.g. that RSS includes the in-process server).
    pub notes: Vec<String>,
}

impl Measurement {
    /// A measurement with only the mode and the client set.
    pub fn new(mode: &str, client: &str, runtime: &str, server: &str) -> Self {
        Measurement {
            mode: mode.to_owned(),
            client: client.to_owned(),
            runtime: runtime.to_owned(),
            server: server.to_owned(),
            jobs: 0,
            seconds: 0.0,
            cpu_seconds: None,
            server_cpu_seconds: None,
            peak_rss_kb: None,
            connections: None,
            params: Map::new(),
            notes: Vec::new(),
        }
    }

    /// Adds a parameter.
    pub fn param(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        self.params.insert(key.to_owned(), value.into());
        self
    }

    /// Jobs per second (0 when no time passed).
    pub fn jobs_per_sec(&self) -> f64 {
        if self.seconds > 0.0 {
            self.jobs as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// Client CPU microseconds per job.
    pub fn cpu_us_per_job(&self) -> Option<f64> {
        let cpu = self.cpu_seconds?;
        (self.jobs > 0).then(|| cpu * 1e6 / self.jobs as f64)
    }

    /// Server CPU microseconds per job.
    pub fn server_cpu_us_per_job(&self) -> Option<f64> {
        let cpu = self.server_cpu_seconds?;
        (self.jobs > 0).then(|| cpu * 1e6 / self.jobs as f64)
    }

    /// The JSON object `--json` prints: `mode`, `jobs`, `seconds`, `jobs_per_sec`, `cpu_seconds`,
    /// `peak_rss_kb`, `connections`, and more; readings that are not available are `null`.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "mode": self.mode,
            "client": self.client,
            "runtime": self.runtime,
            "server": self.server,
            "jobs": self.jobs,
            "seconds": round(self.seconds, 4),
            "jobs_per_sec": round(self.jobs_per_sec(), 1),
            "cpu_seconds": self.cpu_seconds.map(|c| round(c, 3)),
            "cpu_us_per_job": self.cpu_us_per_job().map(|c| round(c, 2)),
            "server_cpu_seconds": self.server_cpu_seconds.map(|c| round(c, 3)),
            "server_cpu_us_per_job": self.server_cpu_us_per_job().map(|c| round(c, 2)),
            "peak_rss_kb": self.peak_rss_kb,
            "connections": self.connections,
        });
        if let Value::Object(map) = &mut v {
            for (k, val) in &self.params {
                map.insert(k.clone(), val.clone());
            }
            if !self.notes.is_empty() {
                map.insert("notes".into(), json!(self.notes));
            }
        }
        v
    }

    /// Reads back what [`Measurement::to_json`] wrote (for the compare driver).
    pub fn from_json(v: &Value) -> Option<Measurement> {
        let o = v.as_object()?;
        let s = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let known = [
            "mode",
            "client",
            "runtime",
            "server",
            "jobs",
            "seconds",
            "jobs_per_sec",
            "cpu_seconds",
            "cpu_us_per_job",
            "server_cpu_seconds",
            "server_cpu_us_per_job",
            "peak_rss_kb",
            "connections",
            "notes",
        ];
        Some(Measurement {
            mode: s("mode"),
            client: s("client"),
            runtime: s("runtime"),
            server: s("server"),
            jobs: o.get("jobs")?.as_u64()?,
            seconds: o.get("seconds")?.as_f64()?,
            cpu_seconds: o.get("cpu_seconds").and_then(Value::as_f64),
            server_cpu_seconds: o.get("server_cpu_seconds").and_then(Value::as_f64),
            peak_rss_kb: o.get("peak_rss_kb").and_then(Value::as_u64),
            connections: o.get("connections").and_then(Value::as_u64),
            params: o
                .iter()
                .filter(|(k, _)| !known.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            notes: o
                .get("notes")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// One line for a human: figures first, then the parameters.
    pub fn human(&self) -> String {
        let cpu = match (self.cpu_seconds, self.cpu_us_per_job()) {
            (Some(c), Some(per)) => format!("client CPU {c:.2} s ({per:.1} us/job)"),
            (Some(c), None) => format!("client CPU {c:.2} s"),
            _ => "client CPU n/a".to_owned(),
        };
        let server_cpu = match self.server_cpu_us_per_job() {
            Some(per) => format!(", server CPU {per:.1} us/job"),
            None => String::new(),
        };
        let rss = self.peak_rss_kb.map_or("n/a".to_owned(), |kb| {
            format!("{} kB", thousands(kb as f64))
        });
        let conns = self.connections.map_or("n/a".to_owned(), |c| c.to_string());
        let params: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect();
        let mut line = format!(
            "{mode}: {jobs} jobs in {secs:.3} s = {rate} jobs/s; {cpu}{server_cpu}; peak RSS {rss}; \
             connections {conns} [{client} on {runtime}, {server} server{sep}{params}]",
            mode = self.mode,
            jobs = thousands(self.jobs as f64),
            secs = self.seconds,
            rate = thousands(self.jobs_per_sec()),
            client = self.client,
            runtime = self.runtime,
            server = self.server,
            sep = if params.is_empty() { "" } else { ", " },
            params = params.join(", "),
        );
        for note in &self.notes {
            line.push_str("\n  note: ");
            line.push_str(note);
        }
        line
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

/// `1234567.8` → `"1,234,568"`.
pub fn thousands(x: f64) -> String {
    let n = x.round();
    let neg = n < 0.0;
    let digits = format!("{:.0}", n.abs());
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if neg { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Measurement {
        let mut m = Measurement::new("push", "faktory-tokio", "tokio", "spawned");
        m.jobs = 20_000;
        m.seconds = 0.5;
        m.cpu_seconds = Some(0.25);
        m.server_cpu_seconds = Some(0.4);
        m.peak_rss_kb = Some(9_000);
        m.connections = Some(1);
        m.param("concurrency", 64).param("queue", "bench");
        m
    }

    #[test]
    fn json_has_the_required_keys_and_reads_back() {
        let m = sample();
        let v = m.to_json();
        for key in [
            "mode",
            "jobs",
            "seconds",
            "jobs_per_sec",
            "cpu_seconds",
            "peak_rss_kb",
            "connections",
        ] {
            assert!(v.get(key).is_some(), "{key} missing in {v}");
        }
        assert_eq!(v["jobs_per_sec"], json!(40_000.0));
        assert_eq!(v["cpu_us_per_job"], json!(12.5));
        assert_eq!(v["concurrency"], json!(64));
        let back = Measurement::from_json(&v).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn human_line() {
        let line = sample().human();
        assert!(line.starts_with("push: 20,000 jobs in 0.500 s = 40,000 jobs/s; client CPU 0.25 s (12.5 us/job), server CPU 20.0 us/job; peak RSS 9,000 kB; connections 1"), "{line}");
        assert!(line.contains("concurrency=64, queue=bench"), "{line}");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1234567.8), "1,234,568");
        assert_eq!(thousands(-12345.0), "-12,345");
    }
}
