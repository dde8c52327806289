//! Timestamps as Faktory writes and reads them.
//!
//! The server emits Go's RFC3339Nano in UTC with the trailing zeros of the fraction trimmed, so a
//! timestamp carries anything from 0 to 9 fraction digits (docs/protocol.md#timestamps). It accepts
//! RFC3339 with an optional fraction and a mandatory zone (`Z` or `±hh:mm`) for `at`.
//!
//! Jobs keep timestamps as the raw string ([`Timestamp`]): `created_at` is free-form on the server, so
//! decoding a job never fails because of an odd timestamp. [`Timestamp::to_unix`] parses on demand.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A timestamp as it appears in a job: the raw string, parsed only on demand.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Timestamp(String);

/// A point in time as seconds and nanoseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UnixTime {
    /// Whole seconds since 1970-01-01T00:00:00Z (negative before it).
    pub secs: i64,
    /// Nanoseconds within the second, `0..1_000_000_000`.
    pub nanos: u32,
}

/// Why a string is not an RFC3339 timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimestampError {
    /// The string does not have the `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±hh:mm)` shape.
    #[error("timestamp {0:?} is not RFC3339 (YYYY-MM-DDTHH:MM:SS[.fffffffff](Z|+hh:mm))")]
    Syntax(String),
    /// A field is out of range (month 13, February 30, hour 24, …).
    #[error("timestamp {0:?} has a field out of range")]
    Range(String),
}

impl Timestamp {
    /// Wraps a string without checking it (jobs from the server may carry anything in `created_at`).
    pub fn from_raw(raw: impl Into<String>) -> Self {
        Timestamp(raw.into())
    }

    /// Parses and validates an RFC3339 timestamp, keeping the string as given.
    pub fn parse(raw: &str) -> Result<Self, TimestampError> {
        parse_rfc3339(raw)?;
        Ok(Timestamp(raw.to_owned()))
    }

    /// The timestamp as written on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses the timestamp into a [`UnixTime`].
    pub fn to_unix(&self) -> Result<UnixTime, TimestampError> {
        parse_rfc3339(&self.0)
    }

    /// Parses the timestamp into a [`SystemTime`].
    pub fn to_system_time(&self) -> Result<SystemTime, TimestampError> {
        Ok(self.to_unix()?.to_system_time())
    }

    /// Formats a Unix time the way the server does: RFC3339 in UTC, fraction trimmed of trailing zeros.
    pub fn from_unix(t: UnixTime) -> Self {
        Timestamp(format_rfc3339(t))
    }

    /// Formats a [`SystemTime`] the way the server does.
    pub fn from_system_time(t: SystemTime) -> Self {
        Self::from_unix(UnixTime::from_system_time(t))
    }

    /// The current wall-clock time. (The sans-IO machines never call this; it is for users building jobs.)
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        Self::from_system_time(t)
    }
}

impl UnixTime {
    /// Converts from a [`SystemTime`] (times before the epoch are supported).
    pub fn from_system_time(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => UnixTime {
                secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nanos: d.subsec_nanos(),
            },
            Err(e) => {
                let d = e.duration();
                let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                if d.subsec_nanos() == 0 {
                    UnixTime {
                        secs: -secs,
                        nanos: 0,
                    }
                } else {
                    UnixTime {
                        secs: -secs - 1,
                        nanos: 1_000_000_000 - d.subsec_nanos(),
                    }
                }
            }
        }
    }

    /// Converts to a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        if self.secs >= 0 {
            UNIX_EPOCH + Duration::new(self.secs.unsigned_abs(), self.nanos)
        } else {
            UNIX_EPOCH - Duration::from_secs(self.secs.unsigned_abs())
                + Duration::from_nanos(u64::from(self.nanos))
        }
    }

    /// Seconds since the epoch as a float (for latency arithmetic).
    pub fn as_secs_f64(self) -> f64 {
        self.secs as f64 + f64::from(self.nanos) / 1e9
    }
}

fn digits(b: &[u8], raw: &str) -> Result<u32, TimestampError> {
    let mut v: u32 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return Err(TimestampError::Syntax(raw.to_owned()));
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Ok(v)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let d = i64::from(d);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 {
                29
            } else {
                28
            }
        }
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|±hh:mm)` as Go's `time.RFC3339Nano` layout does.
pub fn parse_rfc3339(raw: &str) -> Result<UnixTime, TimestampError> {
    let syntax = || TimestampError::Syntax(raw.to_owned());
    let b = raw.as_bytes();
    let head = b.get(..19).ok_or_else(syntax)?;
    let (date, time) = head.split_at(10);
    if date.get(4) != Some(&b'-') || date.get(7) != Some(&b'-') || time.first() != Some(&b'T') {
        return Err(syntax());
    }
    if time.get(3) != Some(&b':') || time.get(6) != Some(&b':') {
        return Err(syntax());
    }
    let year = digits(date.get(0..4).ok_or_else(syntax)?, raw)?;
    let month = digits(date.get(5..7).ok_or_else(syntax)?, raw)?;
    let day = digits(date.get(8..10).ok_or_else(syntax)?, raw)?;
    let hour = digits(time.get(1..3).ok_or_else(syntax)?, raw)?;
    let min = digits(time.get(4..6).ok_or_else(syntax)?, raw)?;
    let sec = digits(time.get(7..9).ok_or_else(syntax)?, raw)?;
    let mut rest = b.get(19..).ok_or_else(syntax)?;
    let mut nanos: u32 = 0;
    if rest.first() == Some(&b'.') {
        let frac_len = rest
            .iter()
            .skip(1)
            .take_while(|c| c.is_ascii_digit())
            .count();
        if frac_len == 0 || frac_len > 9 {
            return Err(syntax());
        }
        let frac = rest.get(1..=frac_len).ok_or_else(syntax)?;
        nanos = digits(frac, raw)? * 10u32.pow((9 - frac_len) as u32);
        rest = rest.get(frac_len + 1..).ok_or_else(syntax)?;
    }
    let offset_secs: i64 = match rest {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let oh = digits(&[*h1, *h2], raw)?;
            let om = digits(&[*m1, *m2], raw)?;
            if oh > 23 || om > 59 {
                return Err(TimestampError::Range(raw.to_owned()));
            }
            let o = i64::from(oh * 3600 + om * 60);
            if *sign == b'-' { -o } else { o }
        }
        _ => return Err(syntax()),
    };
    let year = i64::from(year);
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || min > 59
        || sec > 59
    {
        return Err(TimestampError::Range(raw.to_owned()));
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + min * 60 + sec) - offset_secs;
    Ok(UnixTime { secs, nanos })
}

/// Formats as RFC3339Nano in UTC with trailing fraction zeros trimmed (Go's `time.RFC3339Nano`).
pub fn format_rfc3339(t: UnixTime) -> String {
    use std::fmt::Write as _;
    let days = t.secs.div_euclid(86_400);
    let sod = t.secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut s = String::with_capacity(30);
    let _ = write!(
        s,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        y,
        m,
        d,
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    );
    if t.nanos > 0 {
        let mut frac = format!("{:09}", t.nanos.min(999_999_999));
        while frac.ends_with('0') {
            frac.pop();
        }
        s.push('.');
        s.push_str(&frac);
    }
    s.push('Z');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_zero_to_nine_fraction_digits() {
        let base = parse_rfc3339("2026-11-22T08:24:39Z").unwrap();
        assert_eq!(base.nanos, 0);
        for n in 1..=9 {
            let frac = "123456789".get(..n).unwrap();
            let t = parse_rfc3339(&format!("2026-11-22T08:24:39.{frac}Z")).unwrap();
            assert_eq!(t.secs, base.secs);
            let expect: u32 = frac.parse::<u32>().unwrap() * 10u32.pow((9 - n) as u32);
            assert_eq!(t.nanos, expect);
        }
        assert!(parse_rfc3339("2026-11-22T08:24:39.1234567890Z").is_err());
        assert!(parse_rfc3339("2026-11-22T08:24:39.Z").is_err());
    }

    #[test]
    fn offsets_and_known_epoch_values() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z").unwrap().secs, 0);
        assert_eq!(
            parse_rfc3339("2000-01-01T00:00:00Z").unwrap().secs,
            946_684_800
        );
        let a = parse_rfc3339("2099-01-01T00:00:00+02:00").unwrap();
        let b = parse_rfc3339("2098-12-31T22:00:00Z").unwrap();
        assert_eq!(a, b);
        assert!(parse_rfc3339("2099-01-01 00:00:00").is_err());
        assert!(parse_rfc3339("not-a-time").is_err());
        assert!(parse_rfc3339("2026-02-30T00:00:00Z").is_err());
        assert!(parse_rfc3339("2026-11-22T08:24:39").is_err());
        assert!(parse_rfc3339("").is_err());
    }

    #[test]
    fn format_round_trips_and_trims() {
        let t = parse_rfc3339("2026-11-22T08:24:39.221419355Z").unwrap();
        assert_eq!(format_rfc3339(t), "2026-11-22T08:24:39.221419355Z");
        let t = parse_rfc3339("2026-06-30T12:00:00.100Z").unwrap();
        assert_eq!(format_rfc3339(t), "2026-06-30T12:00:00.1Z");
        let t = UnixTime {
            secs: -1,
            nanos: 500_000_000,
        };
        assert_eq!(format_rfc3339(t), "1969-12-31T23:59:59.5Z");
        let st = t.to_system_time();
        assert_eq!(UnixTime::from_system_time(st), t);
    }
}
