//! Building ACK and FAIL payloads within the server's limits (docs/protocol.md#fail).

use crate::command::Fail;

/// The server cuts `errtype` to this many bytes.
pub const MAX_ERRTYPE_BYTES: usize = 100;
/// The server cuts `message` to this many bytes.
pub const MAX_MESSAGE_BYTES: usize = 1000;
/// The server keeps at most this many backtrace lines.
pub const MAX_BACKTRACE_LINES: usize = 50;
/// Each backtrace line is cut to this many bytes (the server does not cut lines; this bounds the
/// FAIL line we send).
pub const MAX_BACKTRACE_LINE_BYTES: usize = 1000;

/// Cuts `s` to at most `max` bytes on a character boundary.
pub(crate) fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut cut = max;
    while cut > 0 && !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
}

/// A FAIL payload: `errtype` ≤ 100 bytes, `message` ≤ 1000 bytes (cut on character boundaries),
/// and the first `min(backtrace_lines, 50)` backtrace lines.
pub(crate) fn fail_payload(
    jid: &str,
    mut errtype: String,
    mut message: String,
    mut backtrace: Vec<String>,
    backtrace_lines: usize,
) -> Fail {
    truncate_utf8(&mut errtype, MAX_ERRTYPE_BYTES);
    truncate_utf8(&mut message, MAX_MESSAGE_BYTES);
    backtrace.truncate(backtrace_lines.min(MAX_BACKTRACE_LINES));
    for line in &mut backtrace {
        truncate_utf8(line, MAX_BACKTRACE_LINE_BYTES);
    }
    Fail {
        jid: jid.to_owned(),
        errtype,
        message,
        backtrace,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_char_boundaries() {
        let mut s = "é".repeat(60); // 120 bytes
        truncate_utf8(&mut s, 101);
        assert_eq!(s.len(), 100);
        let f = fail_payload(
            "j",
            "x".repeat(200),
            "ü".repeat(600),
            vec!["l".into(); 80],
            70,
        );
        assert_eq!(f.errtype.len(), 100);
        assert_eq!(f.message.len(), 1000);
        assert_eq!(f.backtrace.len(), 50);
        let f = fail_payload("j", "E".into(), "m".into(), vec!["a".into(), "b".into()], 1);
        assert_eq!(f.backtrace, ["a"]);
        let f = fail_payload("j", "E".into(), "m".into(), vec!["a".into()], 0);
        assert!(f.backtrace.is_empty());
    }
}
