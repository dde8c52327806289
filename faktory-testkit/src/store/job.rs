//! A job as the real server holds it: the fields of its Go struct, re-encoded the Go way.

use faktory_proto::job::Job;
use serde_json::{Map, Value};

use crate::gojson::{self, ObjectWriter};

/// The server-maintained failure record, as the Go struct has it.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct StoredFailure {
    pub(crate) retry_count: i64,
    pub(crate) remaining: i64,
    pub(crate) failed_at: String,
    pub(crate) next_at: String,
    pub(crate) message: String,
    pub(crate) errtype: String,
    pub(crate) backtrace: Vec<String>,
}

/// A job as stored in queues and sets. Unknown top-level fields are gone (the Go struct has no place
/// for them); numbers in `args` and `custom` are printed as `float64` on output.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct StoredJob {
    pub(crate) jid: String,
    pub(crate) queue: String,
    pub(crate) jobtype: String,
    pub(crate) args: Vec<Value>,
    pub(crate) created_at: String,
    pub(crate) enqueued_at: String,
    pub(crate) at: String,
    pub(crate) reserve_for: i64,
    pub(crate) retry: Option<i64>,
    pub(crate) backtrace: i64,
    pub(crate) failure: Option<StoredFailure>,
    pub(crate) custom: Option<Map<String, Value>>,
}

impl StoredJob {
    /// Takes the fields the Go struct knows; `extra` is dropped like the server drops unknown fields.
    pub(crate) fn from_job(job: Job) -> Self {
        let failure = job.failure.map(|f| StoredFailure {
            retry_count: f.retry_count,
            remaining: f.remaining,
            failed_at: f
                .failed_at
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
            next_at: f.next_at.map(|t| t.as_str().to_owned()).unwrap_or_default(),
            message: f.message.unwrap_or_default(),
            errtype: f.errtype.unwrap_or_default(),
            backtrace: f.backtrace.unwrap_or_default(),
        });
        StoredJob {
            jid: job.jid,
            queue: job.queue.unwrap_or_default(),
            jobtype: job.jobtype,
            args: job.args,
            created_at: job
                .created_at
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
            enqueued_at: job
                .enqueued_at
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
            at: job.at.map(|t| t.as_str().to_owned()).unwrap_or_default(),
            reserve_for: job.reserve_for.unwrap_or(0),
            retry: job.retry,
            backtrace: job.backtrace.unwrap_or(0),
            failure,
            custom: job.custom,
        }
    }

    /// The JSON the Go server writes for this job: fields in the struct's order
    /// (`retry, failure, custom, jid, queue, jobtype, created_at, enqueued_at, at, args, reserve_for,
    /// backtrace`), empty optional fields omitted, HTML-escaped, numbers as `float64`.
    pub(crate) fn to_go_json(&self) -> String {
        let mut out = String::with_capacity(128 + self.args.len() * 8);
        let mut w = ObjectWriter::new(&mut out);
        match self.retry {
            Some(r) => w.int("retry", r),
            None => w.raw("retry", "null"),
        }
        if let Some(f) = &self.failure {
            let mut s = String::new();
            let mut fw = ObjectWriter::new(&mut s);
            fw.str("failed_at", &f.failed_at);
            if !f.next_at.is_empty() {
                fw.str("next_at", &f.next_at);
            }
            if !f.message.is_empty() {
                fw.str("message", &f.message);
            }
            if !f.errtype.is_empty() {
                fw.str("errtype", &f.errtype);
            }
            if !f.backtrace.is_empty() {
                let bt = Value::Array(f.backtrace.iter().cloned().map(Value::String).collect());
                fw.value("backtrace", &bt);
            }
            fw.int("retry_count", f.retry_count);
            fw.int("remaining", f.remaining);
            fw.finish();
            w.raw("failure", &s);
        }
        if let Some(c) = self.custom.as_ref().filter(|c| !c.is_empty()) {
            let mut s = String::new();
            gojson::write_map(&mut s, c.iter());
            w.raw("custom", &s);
        }
        w.str("jid", &self.jid);
        w.str("queue", &self.queue);
        w.str("jobtype", &self.jobtype);
        if !self.created_at.is_empty() {
            w.str("created_at", &self.created_at);
        }
        if !self.enqueued_at.is_empty() {
            w.str("enqueued_at", &self.enqueued_at);
        }
        if !self.at.is_empty() {
            w.str("at", &self.at);
        }
        let mut args = String::with_capacity(self.args.len() * 8 + 2);
        args.push('[');
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                args.push(',');
            }
            gojson::write_value(&mut args, a);
        }
        args.push(']');
        w.raw("args", &args);
        if self.reserve_for != 0 {
            w.int("reserve_for", self.reserve_for);
        }
        if self.backtrace != 0 {
            w.int("backtrace", self.backtrace);
        }
        w.finish();
        out
    }

    /// The job as a client decoding a FETCH reply would see it.
    pub(crate) fn to_job(&self) -> Job {
        match serde_json::from_str::<Job>(&self.to_go_json()) {
            Ok(j) => j,
            Err(_) => {
                // Cannot happen for what we write; keep the essentials anyway.
                let mut j = Job::new(self.jobtype.clone(), self.args.clone());
                j.jid = self.jid.clone();
                j.queue = Some(self.queue.clone());
                j.retry = self.retry;
                j
            }
        }
    }

    /// Approximate memory held, for INFO's `used_memory_mb`.
    pub(crate) fn approx_size(&self) -> usize {
        fn value_size(v: &Value) -> usize {
            match v {
                Value::String(s) => s.len() + 8,
                Value::Array(a) => a.iter().map(value_size).sum::<usize>() + 8,
                Value::Object(m) => {
                    m.iter()
                        .map(|(k, v)| k.len() + value_size(v))
                        .sum::<usize>()
                        + 8
                }
                _ => 8,
            }
        }
        self.jid.len()
            + self.queue.len()
            + self.jobtype.len()
            + self.created_at.len()
            + self.enqueued_at.len()
            + self.at.len()
            + self.args.iter().map(value_size).sum::<usize>()
            + self
                .custom
                .as_ref()
                .map_or(0, |c| c.iter().map(|(k, v)| k.len() + value_size(v)).sum())
            + 64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fidelity_transcript_round_trip() {
        // The job of fidelity.txt, after the server's decode (invalid UTF-8 already U+FFFD).
        let raw = "{\"jid\":\"probe-fid-000001\",\"jobtype\":\"F\",\"queue\":\"fq\",\"args\":[9007199254740993,12345678901234567890,1.0,1.5e300,-0,\"<a&b>\",\"\\u00e9\u{e9}\",\"\u{fffd}\u{fffd}\"],\"custom\":{\"n\":9007199254740993,\"nested\":{\"x\":[true,null]}},\"zzz\":\"dropped?\",\"backtrace\":5,\"priority\":9}";
        let job: Job = serde_json::from_str(raw).unwrap();
        let mut s = StoredJob::from_job(job);
        s.retry = Some(25);
        s.created_at = "C".into();
        s.enqueued_at = "E".into();
        assert_eq!(
            s.to_go_json(),
            "{\"retry\":25,\"custom\":{\"n\":9007199254740992,\"nested\":{\"x\":[true,null]}},\"jid\":\"probe-fid-000001\",\"queue\":\"fq\",\"jobtype\":\"F\",\"created_at\":\"C\",\"enqueued_at\":\"E\",\"args\":[9007199254740992,12345678901234567000,1,1.5e+300,-0,\"\\u003ca\\u0026b\\u003e\",\"\u{e9}\u{e9}\",\"\u{fffd}\u{fffd}\"],\"backtrace\":5}"
        );
        let back = s.to_job();
        assert_eq!(back.jid, "probe-fid-000001");
        assert!(back.extra.is_empty());
    }

    #[test]
    fn failure_field_order_matches_the_server() {
        let job: Job = serde_json::from_str(
            r#"{"jid":"probe-rsv-000001","jobtype":"S","args":[],"queue":"tq","reserve_for":1}"#,
        )
        .unwrap();
        let mut s = StoredJob::from_job(job);
        s.retry = Some(25);
        s.failure = Some(StoredFailure {
            retry_count: 0,
            remaining: 25,
            failed_at: "F".into(),
            next_at: "N".into(),
            message: "Faktory job reservation expired".into(),
            errtype: "ReservationExpired".into(),
            backtrace: vec![],
        });
        assert_eq!(
            s.to_go_json(),
            r#"{"retry":25,"failure":{"failed_at":"F","next_at":"N","message":"Faktory job reservation expired","errtype":"ReservationExpired","retry_count":0,"remaining":25},"jid":"probe-rsv-000001","queue":"tq","jobtype":"S","args":[],"reserve_for":1}"#
        );
    }
}
