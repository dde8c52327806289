//! Time as the real server handles it: Go's `time.Parse(time.RFC3339Nano, s)` with Go's exact error
//! texts (they reach clients in `invalid timestamp for 'at': …`), plus small `UnixTime` arithmetic.

use std::time::Duration;

use faktory_proto::time::{UnixTime, format_rfc3339};

const LAYOUT: &str = "2006-01-02T15:04:05.999999999Z07:00";
const NANOS_PER_SEC: i128 = 1_000_000_000;

/// Nanoseconds since the epoch.
pub(crate) fn to_nanos(t: UnixTime) -> i128 {
    i128::from(t.secs) * NANOS_PER_SEC + i128::from(t.nanos)
}

/// The time `n` nanoseconds after the epoch (saturating at the ends of the `i64` range).
pub(crate) fn from_nanos(n: i128) -> UnixTime {
    let secs = n.div_euclid(NANOS_PER_SEC);
    let nanos = n.rem_euclid(NANOS_PER_SEC);
    UnixTime {
        secs: i64::try_from(secs).unwrap_or(if secs < 0 { i64::MIN } else { i64::MAX }),
        nanos: u32::try_from(nanos).unwrap_or(0),
    }
}

/// `t + d`.
pub(crate) fn add(t: UnixTime, d: Duration) -> UnixTime {
    from_nanos(to_nanos(t).saturating_add(i128::try_from(d.as_nanos()).unwrap_or(i128::MAX / 4)))
}

/// `t + secs` seconds.
pub(crate) fn add_secs(t: UnixTime, secs: i64) -> UnixTime {
    UnixTime {
        secs: t.secs.saturating_add(secs),
        nanos: t.nanos,
    }
}

/// `a - b`, zero when `b` is later.
pub(crate) fn since(a: UnixTime, b: UnixTime) -> Duration {
    let d = to_nanos(a) - to_nanos(b);
    if d <= 0 {
        Duration::ZERO
    } else {
        Duration::from_nanos(u64::try_from(d).unwrap_or(u64::MAX))
    }
}

/// `a - b` in seconds as a float (negative when `b` is later), like Go's `Duration.Seconds()`.
pub(crate) fn seconds_between(a: UnixTime, b: UnixTime) -> f64 {
    let d = to_nanos(a) - to_nanos(b);
    let secs = d.div_euclid(NANOS_PER_SEC);
    let nanos = d.rem_euclid(NANOS_PER_SEC);
    secs as f64 + nanos as f64 / 1e9
}

/// RFC3339Nano, as the server writes timestamps.
pub(crate) fn format(t: UnixTime) -> String {
    format_rfc3339(t)
}

/// `HH:MM:SS UTC` (INFO's `server_utc_time`).
pub(crate) fn format_hms(t: UnixTime) -> String {
    let sod = t.secs.rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02} UTC",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// Go's `time` package quoting in parse errors: `"` + text + `"`, bytes outside printable ASCII as
/// `\xNN`, `"` and `\` escaped.
fn time_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if (c as u32) >= 0x80 || c < ' ' {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        } else {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.Quote` (as `%q` prints a string), for the usual characters.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control()
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{ad}')
                || (c.is_whitespace() && c != ' ') =>
            {
                let u = c as u32;
                if u > 0xffff {
                    out.push_str(&format!("\\U{u:08x}"));
                } else {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn is_digit(s: &[u8], i: usize) -> bool {
    s.get(i).is_some_and(u8::is_ascii_digit)
}

/// Go's `getnum`: one or two digits (`fixed`: exactly two).
fn getnum(s: &[u8], fixed: bool) -> Result<(u32, &[u8]), ()> {
    let d0 = match s.first() {
        Some(c) if c.is_ascii_digit() => u32::from(c - b'0'),
        _ => return Err(()),
    };
    match s.get(1) {
        Some(c) if c.is_ascii_digit() => Ok((
            d0 * 10 + u32::from(c - b'0'),
            s.get(2..).unwrap_or_default(),
        )),
        _ if fixed => Err(()),
        _ => Ok((d0, s.get(1..).unwrap_or_default())),
    }
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

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

enum Chunk {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Frac,
    Zone,
}

/// Parses `value` as Go's `time.Parse(time.RFC3339Nano, value)` does, returning Go's error text.
pub(crate) fn parse_rfc3339_go(value: &str) -> Result<UnixTime, String> {
    // (prefix literal, chunk, chunk's layout text)
    const STEPS: [(&str, Chunk, &str); 8] = [
        ("", Chunk::Year, "2006"),
        ("-", Chunk::Month, "01"),
        ("-", Chunk::Day, "02"),
        ("T", Chunk::Hour, "15"),
        (":", Chunk::Minute, "04"),
        (":", Chunk::Second, "05"),
        ("", Chunk::Frac, ".999999999"),
        ("", Chunk::Zone, "Z07:00"),
    ];
    let quoted_value = time_quote(value);
    let cannot = |elem: &[u8], layout_elem: &str| {
        format!(
            "parsing time {} as {}: cannot parse {} as {}",
            quoted_value,
            time_quote(LAYOUT),
            time_quote(&String::from_utf8_lossy(elem)),
            time_quote(layout_elem)
        )
    };
    let out_of_range = |what: &str| format!("parsing time {quoted_value}: {what} out of range");

    let mut v: &[u8] = value.as_bytes();
    let (mut year, mut month, mut day, mut hour, mut min, mut sec, mut nsec) =
        (0i64, 0u32, 0u32, 0u32, 0u32, 0u32, 0u32);
    let mut offset: i64 = 0;
    for (prefix, chunk, layout_elem) in STEPS {
        for p in prefix.bytes() {
            match v.first() {
                Some(&c) if c == p => v = v.get(1..).unwrap_or_default(),
                _ => return Err(cannot(v, prefix)),
            }
        }
        let hold = v;
        let mut range_err: Option<&str> = None;
        let ok: Result<(), ()> = match chunk {
            Chunk::Year => {
                if v.len() < 4 || !is_digit(v, 0) {
                    Err(())
                } else {
                    let (p, rest) = v.split_at(4);
                    v = rest;
                    match std::str::from_utf8(p)
                        .ok()
                        .and_then(|p| p.parse::<i64>().ok())
                    {
                        Some(y) if p.iter().all(u8::is_ascii_digit) => {
                            year = y;
                            Ok(())
                        }
                        _ => Err(()),
                    }
                }
            }
            Chunk::Month => getnum(v, true).map(|(n, rest)| {
                month = n;
                v = rest;
                if !(1..=12).contains(&n) {
                    range_err = Some("month");
                }
            }),
            Chunk::Day => getnum(v, true).map(|(n, rest)| {
                day = n;
                v = rest;
            }),
            Chunk::Hour => getnum(v, false).map(|(n, rest)| {
                hour = n;
                v = rest;
                if n >= 24 {
                    range_err = Some("hour");
                }
            }),
            Chunk::Minute => getnum(v, true).map(|(n, rest)| {
                min = n;
                v = rest;
                if n >= 60 {
                    range_err = Some("minute");
                }
            }),
            Chunk::Second => getnum(v, true).map(|(n, rest)| {
                sec = n;
                v = rest;
                if n >= 60 {
                    range_err = Some("second");
                }
            }),
            Chunk::Frac => {
                let frac_present = v.len() >= 2
                    && matches!(v.first(), Some(b'.' | b','))
                    && v.get(1).is_some_and(u8::is_ascii_digit);
                if frac_present {
                    let digits = v.iter().skip(1).take_while(|c| c.is_ascii_digit()).count();
                    let taken = digits.min(9);
                    let mut ns: u32 = 0;
                    for c in v.iter().skip(1).take(taken) {
                        ns = ns * 10 + u32::from(c - b'0');
                    }
                    for _ in taken..9 {
                        ns *= 10;
                    }
                    nsec = ns;
                    v = v.get(1 + digits..).unwrap_or_default();
                }
                Ok(())
            }
            Chunk::Zone => {
                if v.first() == Some(&b'Z') {
                    v = v.get(1..).unwrap_or_default();
                    Ok(())
                } else if v.len() < 6 || v.get(3) != Some(&b':') {
                    Err(())
                } else {
                    let sign = v.first().copied();
                    let hh = getnum(v.get(1..3).unwrap_or_default(), true);
                    let mm = getnum(v.get(4..6).unwrap_or_default(), true);
                    v = v.get(6..).unwrap_or_default();
                    match (hh, mm) {
                        (Ok((h, _)), Ok((m, _))) => {
                            if h > 24 {
                                range_err = Some("time zone offset hour");
                            }
                            if m > 60 {
                                range_err = Some("time zone offset minute");
                            }
                            let o = i64::from(h * 3600 + m * 60);
                            match sign {
                                Some(b'+') => {
                                    offset = o;
                                    Ok(())
                                }
                                Some(b'-') => {
                                    offset = -o;
                                    Ok(())
                                }
                                _ => Err(()),
                            }
                        }
                        _ => Err(()),
                    }
                }
            }
        };
        if let Some(what) = range_err {
            return Err(out_of_range(what));
        }
        if ok.is_err() {
            return Err(cannot(hold, layout_elem));
        }
    }
    if !v.is_empty() {
        let rest = String::from_utf8_lossy(v);
        return Err(format!(
            "parsing time {quoted_value}: extra text: {}",
            time_quote(&rest)
        ));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(out_of_range("day"));
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + min * 60 + sec) - offset;
    Ok(UnixTime { secs, nanos: nsec })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_error_texts_from_the_transcripts() {
        assert_eq!(
            parse_rfc3339_go("not-a-time").unwrap_err(),
            r#"parsing time "not-a-time" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse "not-a-time" as "2006""#
        );
        assert_eq!(
            parse_rfc3339_go("2099-01-01 00:00:00").unwrap_err(),
            r#"parsing time "2099-01-01 00:00:00" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse " 00:00:00" as "T""#
        );
        assert_eq!(
            parse_rfc3339_go("2026-02-30T00:00:00Z").unwrap_err(),
            r#"parsing time "2026-02-30T00:00:00Z": day out of range"#
        );
        assert_eq!(
            parse_rfc3339_go("2026-13-01T00:00:00Z").unwrap_err(),
            r#"parsing time "2026-13-01T00:00:00Z": month out of range"#
        );
        assert_eq!(
            parse_rfc3339_go("2026-01-01T00:00:00").unwrap_err(),
            r#"parsing time "2026-01-01T00:00:00" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse "" as "Z07:00""#
        );
        assert_eq!(
            parse_rfc3339_go("2026-01-01T00:00:00Zjunk").unwrap_err(),
            r#"parsing time "2026-01-01T00:00:00Zjunk": extra text: "junk""#
        );
    }

    #[test]
    fn accepts_what_go_accepts() {
        assert_eq!(
            parse_rfc3339_go("2000-01-01T00:00:00Z").unwrap().secs,
            946_684_800
        );
        let a = parse_rfc3339_go("2099-01-01T00:00:00+02:00").unwrap();
        let b = parse_rfc3339_go("2098-12-31T22:00:00Z").unwrap();
        assert_eq!(a, b);
        let t = parse_rfc3339_go("2026-11-22T08:24:39.221419355Z").unwrap();
        assert_eq!(t.nanos, 221_419_355);
        // One-digit hour and more than nine fraction digits are accepted by Go.
        assert_eq!(
            parse_rfc3339_go("2026-11-22T8:24:39Z").unwrap().secs % 86_400,
            8 * 3600 + 24 * 60 + 39
        );
        assert_eq!(
            parse_rfc3339_go("2026-11-22T08:24:39.1234567891Z")
                .unwrap()
                .nanos,
            123_456_789
        );
    }

    #[test]
    fn arithmetic_and_formats() {
        let t = parse_rfc3339_go("2026-11-22T08:24:39.5Z").unwrap();
        assert_eq!(
            format(add(t, Duration::from_millis(600))),
            "2026-11-22T08:24:40.1Z"
        );
        assert_eq!(format_hms(t), "08:24:39 UTC");
        assert!((seconds_between(add(t, Duration::from_millis(1500)), t) - 1.5).abs() < 1e-9);
        assert_eq!(since(t, add(t, Duration::from_secs(1))), Duration::ZERO);
        assert_eq!(go_quote("a\"b\\\n"), "\"a\\\"b\\\\\\n\"");
    }
}
