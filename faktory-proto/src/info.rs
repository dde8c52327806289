//! Typed JSON documents the server answers with: `INFO`, `QUEUE LATENCY`, `BATCH STATUS` and
//! `TRACK GET`.
//!
//! Decoding is lenient (docs/protocol.md#info): every field may be absent, unknown keys are kept in
//! an `extra` map, so Enterprise servers and future versions decode too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::time::Timestamp;

/// The reply to `INFO`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Info {
    /// The server's clock (RFC3339Nano, UTC).
    #[serde(default)]
    pub now: Option<Timestamp>,
    /// `HH:MM:SS UTC`.
    #[serde(default)]
    pub server_utc_time: Option<String>,
    /// Queues, sets and counters.
    #[serde(default)]
    pub faktory: FaktoryInfo,
    /// Server identity and load.
    #[serde(default)]
    pub server: ServerInfo,
    /// Keys this crate does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `faktory` section of `INFO`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FaktoryInfo {
    /// Every known queue and its current size.
    #[serde(default)]
    pub queues: BTreeMap<String, u64>,
    /// Sizes of the `dead`, `retries`, `scheduled` and `working` sets.
    #[serde(default)]
    pub sets: BTreeMap<String, u64>,
    /// Background task statistics (deprecated by Faktory; kept raw).
    #[serde(default)]
    pub tasks: Map<String, Value>,
    /// Cumulative FAILs and reservation expiries.
    #[serde(default)]
    pub total_failures: u64,
    /// Cumulative jobs settled: ACKs, but also FAILs and expired reservations (so it is not the
    /// number of jobs acknowledged).
    #[serde(default)]
    pub total_processed: u64,
    /// Current sum of the queue sizes.
    #[serde(default)]
    pub total_enqueued: u64,
    /// Number of known queues.
    #[serde(default)]
    pub total_queues: u64,
    /// Keys this crate does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `server` section of `INFO`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ServerInfo {
    /// `Faktory` or `Faktory Enterprise`.
    #[serde(default)]
    pub description: String,
    /// e.g. `1.10.0`.
    #[serde(default)]
    pub faktory_version: String,
    /// Seconds since the server started.
    #[serde(default)]
    pub uptime: u64,
    /// Live connections.
    #[serde(default)]
    pub connections: u64,
    /// Commands processed.
    #[serde(default)]
    pub command_count: u64,
    /// Memory in MB.
    #[serde(default)]
    pub used_memory_mb: u64,
    /// Keys this crate does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Info {
    /// Decodes an `INFO` reply body.
    pub fn from_json(body: &[u8]) -> Result<Info, serde_json::Error> {
        serde_json::from_slice(body)
    }

    /// Whether the server is Faktory Enterprise (by its description).
    pub fn is_enterprise(&self) -> bool {
        self.server.description.contains("Enterprise")
    }
}

/// The reply to `QUEUE LATENCY`: queue name → seconds since its oldest job was enqueued.
pub type QueueLatency = BTreeMap<String, f64>;

/// Decodes a `QUEUE LATENCY` reply body.
pub fn queue_latency_from_json(body: &[u8]) -> Result<QueueLatency, serde_json::Error> {
    serde_json::from_slice(body)
}

/// The reply to `BATCH STATUS` (Enterprise).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BatchStatus {
    /// The batch id.
    #[serde(default)]
    pub bid: String,
    /// The parent batch, for child batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_bid: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When the batch was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    /// Jobs in the batch.
    #[serde(default)]
    pub total: i64,
    /// Jobs not yet finished.
    #[serde(default)]
    pub pending: i64,
    /// Jobs that failed.
    #[serde(default)]
    pub failed: i64,
    /// Complete callback state: `""` pending, `"1"` enqueued, `"2"` succeeded.
    #[serde(default)]
    pub complete_st: String,
    /// Success callback state: `""` pending, `"1"` enqueued, `"2"` succeeded.
    #[serde(default)]
    pub success_st: String,
    /// Keys this crate does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The reply to `TRACK GET` (Enterprise).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TrackInfo {
    /// The job.
    #[serde(default)]
    pub jid: String,
    /// `unknown`, `enqueued`, `working`, `success`, `failed` or `dead`.
    #[serde(default)]
    pub state: String,
    /// Last update; the server sends `""` for unknown jobs, which decodes as `None`.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub updated_at: Option<Timestamp>,
    /// Progress percentage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<i64>,
    /// Progress description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desc: Option<String>,
    /// Keys this crate does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn empty_as_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    Ok(s.filter(|s| !s.is_empty()).map(Timestamp::from_raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_real_info_reply() {
        let body = br#"{"now":"2026-11-22T08:24:39.223060733Z","server_utc_time":"08:24:39 UTC","faktory":{"queues":{"probe":0},"sets":{"dead":0,"retries":0,"scheduled":0,"working":0},"tasks":{"Busy":{"reaped":0,"size":0},"Dead":{"cycles":0,"enqueued":0,"size":0,"wall_time_sec":0},"Retries":{"cycles":1,"enqueued":0,"size":0,"wall_time_sec":0.000111677},"Scheduled":{"cycles":1,"enqueued":0,"size":0,"wall_time_sec":0.000370843},"Workers":{"reaped":0,"size":1}},"total_failures":0,"total_processed":1,"total_enqueued":0,"total_queues":1},"server":{"description":"Faktory","faktory_version":"1.10.0","uptime":3,"connections":1,"command_count":4,"used_memory_mb":7}}"#;
        let info = Info::from_json(body).unwrap();
        assert_eq!(info.faktory.queues.get("probe"), Some(&0));
        assert_eq!(info.faktory.total_processed, 1);
        assert_eq!(info.server.faktory_version, "1.10.0");
        assert!(!info.is_enterprise());
        assert!(info.now.unwrap().to_unix().is_ok());
    }

    #[test]
    fn decodes_latency_and_track_get_with_empty_time() {
        let l =
            queue_latency_from_json(br#"{"default":0.000468158,"nosuchq":0,"probe2":0}"#).unwrap();
        assert_eq!(l.len(), 3);
        assert!(l["default"] > 0.0);
        let t: TrackInfo =
            serde_json::from_slice(br#"{"jid":"x","state":"unknown","updated_at":""}"#).unwrap();
        assert_eq!(t.updated_at, None);
        assert_eq!(t.state, "unknown");
    }
}
