//! RESP2 frames: incremental decoding (client side) and encoding (server side).
//!
//! CONTRACT:
//! - [`Decoder::decode`] consumes one complete frame from the front of a `BytesMut` and returns it;
//!   an incomplete frame is `Ok(None)` and leaves the buffer as it was (the decoder may remember how
//!   far it scanned). Bulk bodies are zero-copy (`split_to(n).freeze()`).
//! - A bulk length above the configured maximum is [`DecodeError::FrameTooLarge`] before anything is
//!   allocated; a line (simple/error/header) longer than the maximum without CRLF is an error too.
//! - Lines end at `\r\n`; a lone `\r` inside an error line is part of the message.
//!
//! Details of the implementation:
//! - Between two calls the caller may only *append* to the buffer (what `read_buf` does). The decoder
//!   remembers where it stopped: how far a line was searched for its CRLF, and how many bytes a bulk
//!   needs in total, so a 16 MiB bulk arriving in 4 KiB reads costs O(1) per call until it is
//!   complete, and a long line is searched once.
//! - The maximum frame size bounds a bulk body (checked on the announced length, even before the
//!   header's CRLF arrives: `$9999999999` is refused as soon as its digits exceed the maximum), a
//!   simple or error line, and the whole encoded size of an array.
//! - `:` integers and `*` arrays are accepted (Faktory never sends them); arrays nest at most
//!   [`MAX_DEPTH`] deep; `*-1` decodes as [`Frame::Null`].
//! - After an error the stream is unusable (framing is lost); the decoder itself is reset and the
//!   buffer is left untouched.
//!
//! Encoding ([`Frame::encode`]) writes the text of simple and error frames verbatim: a text that
//! contains `\r\n` cannot be read back as one frame (the real server never produces one).

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

/// Default maximum frame size: 64 MiB (the real server hands out 16 MiB jobs without complaint).
pub const DEFAULT_MAX_FRAME_SIZE: usize = 64 * 1024 * 1024;

/// How deeply `*` arrays may nest.
pub const MAX_DEPTH: usize = 32;

/// One RESP2 frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// `+text\r\n`
    Simple(Bytes),
    /// `-CODE message\r\n` (the text after `-`)
    Error(Bytes),
    /// `$n\r\n<n bytes>\r\n`
    Bulk(Bytes),
    /// `$-1\r\n` (and `*-1\r\n`)
    Null,
    /// `:n\r\n` (never sent by Faktory; accepted)
    Integer(i64),
    /// `*n\r\n…` (never sent by Faktory; accepted, nesting bounded)
    Array(Vec<Frame>),
}

/// A malformed RESP input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The first byte of a frame is not one of `+ - $ : *`.
    #[error("invalid RESP frame type byte 0x{0:02x}")]
    InvalidType(u8),
    /// A length or integer is not a valid decimal number.
    #[error("invalid RESP length or integer")]
    InvalidInteger,
    /// A frame announces more bytes than allowed.
    #[error("RESP frame of {len} bytes exceeds the maximum of {max}")]
    FrameTooLarge {
        /// The announced length.
        len: u64,
        /// The configured maximum.
        max: usize,
    },
    /// A line grew past the maximum without a CRLF.
    #[error("RESP line exceeds the maximum of {max} bytes without CRLF")]
    LineTooLong {
        /// The configured maximum.
        max: usize,
    },
    /// A bulk body is not followed by CRLF.
    #[error("RESP bulk string not terminated by CRLF")]
    MissingCrlf,
    /// Arrays nested too deeply.
    #[error("RESP arrays nested too deeply")]
    TooDeep,
}

/// A decoded element, as offsets into the frame's bytes (materialized once the frame is complete).
#[derive(Debug, Clone)]
enum Parsed {
    Simple(Range<usize>),
    Error(Range<usize>),
    Bulk(Range<usize>),
    Null,
    Integer(i64),
    Array(Vec<Parsed>),
}

#[derive(Debug, Clone)]
struct OpenArray {
    remaining: usize,
    items: Vec<Parsed>,
}

/// Where decoding of the frame at the front of the buffer stopped.
#[derive(Debug, Clone, Default)]
struct Progress {
    /// Offset of the next element to decode.
    pos: usize,
    /// Where to resume the search for the `\n` ending the line that starts at `pos`.
    scan_from: usize,
    /// Parsing cannot progress before the buffer holds this many bytes.
    need: usize,
    /// Arrays still waiting for elements, innermost last.
    stack: Vec<OpenArray>,
}

enum Step {
    Incomplete,
    Done(Parsed, usize),
    Open(usize, usize),
}

/// Incremental RESP2 decoder.
#[derive(Debug, Clone)]
pub struct Decoder {
    max_frame_size: usize,
    progress: Progress,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder with [`DEFAULT_MAX_FRAME_SIZE`].
    pub fn new() -> Self {
        Self::with_max_frame_size(DEFAULT_MAX_FRAME_SIZE)
    }

    /// A decoder that refuses frames larger than `max` bytes.
    pub fn with_max_frame_size(max: usize) -> Self {
        Decoder {
            max_frame_size: max,
            progress: Progress::default(),
        }
    }

    /// The configured maximum frame size.
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// Decodes one frame from the front of `buf`: `Ok(None)` when incomplete.
    ///
    /// Between calls, only append to `buf`. On `Ok(None)` and on errors `buf` is unchanged.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        if buf.len() < self.progress.pos {
            // The caller replaced the buffer: start over.
            self.progress = Progress::default();
        }
        if buf.len() < self.progress.need {
            return Ok(None);
        }
        match self.advance(buf) {
            Ok(Some((parsed, total))) => {
                self.progress = Progress::default();
                let bytes = buf.split_to(total).freeze();
                Ok(Some(materialize(parsed, &bytes)))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.progress = Progress::default();
                Err(e)
            }
        }
    }

    /// Runs the element loop; returns the whole frame and its encoded length when complete.
    fn advance(&mut self, buf: &[u8]) -> Result<Option<(Parsed, usize)>, DecodeError> {
        loop {
            let (mut parsed, next) = match self.step(buf)? {
                Step::Incomplete => return Ok(None),
                Step::Open(count, next) => {
                    if self.progress.stack.len() >= MAX_DEPTH {
                        return Err(DecodeError::TooDeep);
                    }
                    self.progress.stack.push(OpenArray {
                        remaining: count,
                        items: Vec::with_capacity(count.min(16)),
                    });
                    self.set_pos(next);
                    continue;
                }
                Step::Done(parsed, next) => (parsed, next),
            };
            if !self.progress.stack.is_empty() && next > self.max_frame_size {
                return Err(DecodeError::FrameTooLarge {
                    len: next as u64,
                    max: self.max_frame_size,
                });
            }
            self.set_pos(next);
            // Attach the element to the open arrays, closing every one that is now full.
            loop {
                let Some(top) = self.progress.stack.last_mut() else {
                    return Ok(Some((parsed, next)));
                };
                top.items.push(parsed);
                top.remaining = top.remaining.saturating_sub(1);
                if top.remaining > 0 {
                    break;
                }
                match self.progress.stack.pop() {
                    Some(done) => parsed = Parsed::Array(done.items),
                    None => return Ok(None),
                }
            }
        }
    }

    fn set_pos(&mut self, pos: usize) {
        self.progress.pos = pos;
        self.progress.scan_from = 0;
        self.progress.need = 0;
    }

    /// Decodes the element starting at `progress.pos`.
    fn step(&mut self, buf: &[u8]) -> Result<Step, DecodeError> {
        let max = self.max_frame_size;
        let pos = self.progress.pos;
        let Some(&kind) = buf.get(pos) else {
            self.progress.need = pos + 1;
            return Ok(Step::Incomplete);
        };
        if !matches!(kind, b'+' | b'-' | b'$' | b':' | b'*') {
            return Err(DecodeError::InvalidType(kind));
        }
        let numeric = matches!(kind, b'$' | b':' | b'*');
        let content_start = pos + 1;
        let from = self.progress.scan_from.max(content_start);
        let Some(cr) = find_crlf(buf, content_start, from) else {
            let partial = buf.get(content_start..).unwrap_or_default();
            if numeric {
                // A trailing `\r` may be the first half of the CRLF.
                let digits = partial.strip_suffix(b"\r").unwrap_or(partial);
                check_number(kind, digits, max)?;
            } else if partial.len() > max {
                return Err(DecodeError::LineTooLong { max });
            }
            if !self.progress.stack.is_empty() && buf.len() > max {
                return Err(DecodeError::FrameTooLarge {
                    len: buf.len() as u64,
                    max,
                });
            }
            self.progress.scan_from = buf.len();
            self.progress.need = buf.len() + 1;
            return Ok(Step::Incomplete);
        };
        let content = content_start..cr;
        let line = buf.get(content.clone()).unwrap_or_default();
        let next = cr + 2;
        if numeric {
            check_number(kind, line, max)?;
        }
        match kind {
            b'+' | b'-' => {
                if line.len() > max {
                    return Err(DecodeError::LineTooLong { max });
                }
                let parsed = if kind == b'+' {
                    Parsed::Simple(content)
                } else {
                    Parsed::Error(content)
                };
                Ok(Step::Done(parsed, next))
            }
            b':' => Ok(Step::Done(Parsed::Integer(parse_i64(line)?), next)),
            b'$' => {
                let len = parse_i64(line)?;
                if len == -1 {
                    return Ok(Step::Done(Parsed::Null, next));
                }
                let len = u64::try_from(len).map_err(|_| DecodeError::InvalidInteger)?;
                let len = match usize::try_from(len) {
                    Ok(n) if n <= max => n,
                    _ => return Err(DecodeError::FrameTooLarge { len, max }),
                };
                let body_end = next + len;
                let frame_end = body_end + 2;
                if buf.len() < frame_end {
                    // The header is re-read (a few bytes) when the body is complete.
                    self.progress.need = frame_end;
                    return Ok(Step::Incomplete);
                }
                if buf.get(body_end..frame_end) != Some(b"\r\n".as_slice()) {
                    return Err(DecodeError::MissingCrlf);
                }
                Ok(Step::Done(Parsed::Bulk(next..body_end), frame_end))
            }
            _ => {
                let count = parse_i64(line)?;
                if count == -1 {
                    return Ok(Step::Done(Parsed::Null, next));
                }
                let count = u64::try_from(count).map_err(|_| DecodeError::InvalidInteger)?;
                // Every element takes at least 3 bytes (`+\r\n`).
                let min_size = count.saturating_mul(3);
                if min_size > max as u64 {
                    return Err(DecodeError::FrameTooLarge { len: min_size, max });
                }
                let count = usize::try_from(count).map_err(|_| DecodeError::InvalidInteger)?;
                if count == 0 {
                    return Ok(Step::Done(Parsed::Array(Vec::new()), next));
                }
                Ok(Step::Open(count, next))
            }
        }
    }
}

/// Finds the `\r` of the first `\r\n` whose `\r` is at or after `content_start`, searching for the
/// `\n` from `from`.
fn find_crlf(buf: &[u8], content_start: usize, from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        let rest = buf.get(at..)?;
        let nl = at + rest.iter().position(|&b| b == b'\n')?;
        if nl > content_start && buf.get(nl - 1) == Some(&b'\r') {
            return Some(nl - 1);
        }
        at = nl + 1;
    }
}

/// Checks the bytes of a `$`, `:` or `*` header seen so far, byte by byte, so that the verdict
/// on a prefix is the verdict on the whole line (decoding is independent of how input is split):
/// a byte that is not a digit (after an optional leading `-`) or a 20th digit is
/// [`DecodeError::InvalidInteger`]; for `$`, digits whose value exceeds the maximum are
/// [`DecodeError::FrameTooLarge`] (reporting the value of all the digits available).
fn check_number(kind: u8, content: &[u8], max: usize) -> Result<(), DecodeError> {
    let (negative, digits) = match content.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, content),
    };
    let mut value: u64 = 0;
    for (count, &d) in digits.iter().enumerate() {
        if !d.is_ascii_digit() {
            return Err(DecodeError::InvalidInteger);
        }
        value = value.saturating_mul(10).saturating_add(u64::from(d - b'0'));
        if kind == b'$' && !negative && value > max as u64 {
            let len = digits
                .iter()
                .take_while(|d| d.is_ascii_digit())
                .fold(0u64, |acc, &d| {
                    acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                });
            return Err(DecodeError::FrameTooLarge { len, max });
        }
        if count >= 19 {
            return Err(DecodeError::InvalidInteger);
        }
    }
    Ok(())
}

/// A strict decimal `i64`: optional `-`, then 1 to 19 digits.
fn parse_i64(line: &[u8]) -> Result<i64, DecodeError> {
    let (negative, digits) = match line.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    if digits.is_empty() || digits.len() > 19 {
        return Err(DecodeError::InvalidInteger);
    }
    let mut value: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(DecodeError::InvalidInteger);
        }
        let d = i64::from(d - b'0');
        value = value
            .checked_mul(10)
            .and_then(|v| {
                if negative {
                    v.checked_sub(d)
                } else {
                    v.checked_add(d)
                }
            })
            .ok_or(DecodeError::InvalidInteger)?;
    }
    Ok(value)
}

fn materialize(parsed: Parsed, bytes: &Bytes) -> Frame {
    match parsed {
        Parsed::Simple(r) => Frame::Simple(bytes.slice(r)),
        Parsed::Error(r) => Frame::Error(bytes.slice(r)),
        Parsed::Bulk(r) => Frame::Bulk(bytes.slice(r)),
        Parsed::Null => Frame::Null,
        Parsed::Integer(n) => Frame::Integer(n),
        Parsed::Array(items) => {
            Frame::Array(items.into_iter().map(|p| materialize(p, bytes)).collect())
        }
    }
}

/// Appends `n` in decimal.
fn put_decimal(out: &mut BytesMut, n: i64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        if let Some(slot) = digits.get_mut(i) {
            *slot = b'0' + (v % 10) as u8;
        }
        v /= 10;
        if v == 0 || i == 0 {
            break;
        }
    }
    if n < 0 {
        out.put_u8(b'-');
    }
    out.put_slice(digits.get(i..).unwrap_or_default());
}

impl Frame {
    /// Appends the wire form of this frame to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Frame::Simple(text) => {
                out.reserve(text.len() + 3);
                out.put_u8(b'+');
                out.put_slice(text);
                out.put_slice(b"\r\n");
            }
            Frame::Error(text) => {
                out.reserve(text.len() + 3);
                out.put_u8(b'-');
                out.put_slice(text);
                out.put_slice(b"\r\n");
            }
            Frame::Bulk(body) => {
                out.reserve(body.len() + 16);
                out.put_u8(b'$');
                put_decimal(out, i64::try_from(body.len()).unwrap_or(i64::MAX));
                out.put_slice(b"\r\n");
                out.put_slice(body);
                out.put_slice(b"\r\n");
            }
            Frame::Null => out.put_slice(b"$-1\r\n"),
            Frame::Integer(n) => {
                out.put_u8(b':');
                put_decimal(out, *n);
                out.put_slice(b"\r\n");
            }
            Frame::Array(items) => {
                out.put_u8(b'*');
                put_decimal(out, i64::try_from(items.len()).unwrap_or(i64::MAX));
                out.put_slice(b"\r\n");
                for item in items {
                    item.encode(out);
                }
            }
        }
    }

    /// The wire form of this frame.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(dec: &mut Decoder, buf: &mut BytesMut) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Some(f) = dec.decode(buf).unwrap() {
            out.push(f);
        }
        out
    }

    fn one(input: &[u8]) -> Result<Option<Frame>, DecodeError> {
        Decoder::new().decode(&mut BytesMut::from(input))
    }

    #[test]
    fn decodes_every_frame_kind() {
        let mut buf = BytesMut::from(
            &b"+OK\r\n-ERR Job not found x\r\n$2\r\n{}\r\n$-1\r\n$0\r\n\r\n:-42\r\n*2\r\n:1\r\n*1\r\n+a\r\n*-1\r\n*0\r\n"[..],
        );
        let frames = decode_all(&mut Decoder::new(), &mut buf);
        assert_eq!(
            frames,
            vec![
                Frame::Simple(Bytes::from_static(b"OK")),
                Frame::Error(Bytes::from_static(b"ERR Job not found x")),
                Frame::Bulk(Bytes::from_static(b"{}")),
                Frame::Null,
                Frame::Bulk(Bytes::new()),
                Frame::Integer(-42),
                Frame::Array(vec![
                    Frame::Integer(1),
                    Frame::Array(vec![Frame::Simple(Bytes::from_static(b"a"))])
                ]),
                Frame::Null,
                Frame::Array(vec![]),
            ]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn incomplete_input_leaves_the_buffer_alone() {
        let full = b"$17\r\n{\"state\":\"quiet\"}\r\n+OK\r\n";
        for cut in 0..full.len() {
            let mut dec = Decoder::new();
            let mut buf = BytesMut::from(&full[..cut]);
            let first = dec.decode(&mut buf).unwrap();
            if cut < 24 {
                assert_eq!(first, None, "cut {cut}");
                assert_eq!(&buf[..], &full[..cut]);
                buf.extend_from_slice(&full[cut..]);
                let f = dec.decode(&mut buf).unwrap();
                assert_eq!(
                    f,
                    Some(Frame::Bulk(Bytes::from_static(b"{\"state\":\"quiet\"}")))
                );
            }
        }
    }

    #[test]
    fn error_line_may_contain_a_lone_cr() {
        let f = one(b"-ERR invalid ACK {\"jid\":\"a\rb\"}\r\n").unwrap();
        assert_eq!(
            f,
            Some(Frame::Error(Bytes::from_static(
                b"ERR invalid ACK {\"jid\":\"a\rb\"}"
            )))
        );
        // A CR split from its LF across reads.
        let mut dec = Decoder::new();
        let mut buf = BytesMut::from(&b"+a\rb\r"[..]);
        assert_eq!(dec.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"\n");
        assert_eq!(
            dec.decode(&mut buf).unwrap(),
            Some(Frame::Simple(Bytes::from_static(b"a\rb")))
        );
    }

    #[test]
    fn announced_size_is_checked_before_allocation() {
        assert_eq!(
            one(b"$9999999999\r\n"),
            Err(DecodeError::FrameTooLarge {
                len: 9_999_999_999,
                max: DEFAULT_MAX_FRAME_SIZE
            })
        );
        // Even before the header is complete.
        assert!(matches!(
            one(b"$9999999999"),
            Err(DecodeError::FrameTooLarge { .. })
        ));
        let mut small = Decoder::with_max_frame_size(10);
        assert_eq!(
            small.decode(&mut BytesMut::from(&b"$11\r\n"[..])),
            Err(DecodeError::FrameTooLarge { len: 11, max: 10 })
        );
        assert_eq!(
            small.decode(&mut BytesMut::from(&b"+0123456789A"[..])),
            Err(DecodeError::LineTooLong { max: 10 })
        );
        assert_eq!(
            small.decode(&mut BytesMut::from(&b"*1000\r\n"[..])),
            Err(DecodeError::FrameTooLarge { len: 3000, max: 10 })
        );
        assert_eq!(
            small.decode(&mut BytesMut::from(&b"*3\r\n$5\r\nabcde\r\n"[..])),
            Err(DecodeError::FrameTooLarge { len: 15, max: 10 })
        );
    }

    #[test]
    fn malformed_input_is_a_typed_error() {
        assert_eq!(one(b"!x\r\n"), Err(DecodeError::InvalidType(b'!')));
        assert_eq!(one(b"$abc\r\n"), Err(DecodeError::InvalidInteger));
        assert_eq!(one(b"$1x"), Err(DecodeError::InvalidInteger));
        assert_eq!(one(b"$-2\r\n"), Err(DecodeError::InvalidInteger));
        assert_eq!(one(b"$\r\n"), Err(DecodeError::InvalidInteger));
        assert_eq!(one(b"$5\n"), Err(DecodeError::InvalidInteger));
        assert_eq!(
            one(b":99999999999999999999\r\n"),
            Err(DecodeError::InvalidInteger)
        );
        assert_eq!(one(b":+1\r\n"), Err(DecodeError::InvalidInteger));
        assert_eq!(one(b"$2\r\nabcd"), Err(DecodeError::MissingCrlf));
        assert_eq!(one(b"*-2\r\n"), Err(DecodeError::InvalidInteger));
        let deep = "*1\r\n".repeat(MAX_DEPTH + 1);
        assert_eq!(one(deep.as_bytes()), Err(DecodeError::TooDeep));
        let ok_deep = format!("{}:1\r\n", "*1\r\n".repeat(MAX_DEPTH));
        assert!(matches!(one(ok_deep.as_bytes()), Ok(Some(Frame::Array(_)))));
        assert_eq!(
            one(b":-9223372036854775808\r\n"),
            Ok(Some(Frame::Integer(i64::MIN)))
        );
    }

    #[test]
    fn the_verdict_does_not_depend_on_how_input_is_split() {
        // Found by fuzzing: a long bulk length followed by garbage.
        let input = b"$5555555555555555555555551$*\x98\xfe";
        let whole = one(input).unwrap_err();
        assert!(matches!(whole, DecodeError::FrameTooLarge { .. }));
        for cut in 0..input.len() {
            let mut dec = Decoder::new();
            let mut buf = BytesMut::from(&input[..cut]);
            let first = dec.decode(&mut buf);
            let err = match first {
                Err(e) => e,
                Ok(_) => {
                    buf.extend_from_slice(&input[cut..]);
                    dec.decode(&mut buf).unwrap_err()
                }
            };
            assert_eq!(
                std::mem::discriminant(&err),
                std::mem::discriminant(&whole),
                "cut {cut}"
            );
        }
        // Leading zeros do not hide a length that is too large, nor make a short one invalid.
        assert_eq!(
            one(b"$0000000000000000000001\r\n"),
            Err(DecodeError::InvalidInteger)
        );
        assert_eq!(
            one(b"$0003\r\nabc\r\n"),
            Ok(Some(Frame::Bulk(Bytes::from_static(b"abc"))))
        );
    }

    #[test]
    fn big_bulk_in_small_reads_is_linear_and_zero_copy() {
        // 16 MiB arriving in 4 KiB reads: a decoder that rescans would take minutes here.
        let len = 16 * 1024 * 1024;
        let mut wire = format!("${len}\r\n").into_bytes();
        wire.resize(wire.len() + len, b'b');
        wire.extend_from_slice(b"\r\n+OK\r\n");
        let mut dec = Decoder::new();
        let mut buf = BytesMut::with_capacity(wire.len());
        let base = buf.as_ptr() as usize;
        let header_len = format!("${len}\r\n").len();
        let mut frames = Vec::new();
        for chunk in wire.chunks(4096) {
            buf.extend_from_slice(chunk);
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                frames.push(f);
            }
        }
        assert_eq!(frames.len(), 2);
        match &frames[0] {
            Frame::Bulk(b) => {
                assert_eq!(b.len(), len);
                assert!(b.iter().all(|&c| c == b'b'));
                // The body was not copied: it points into the read buffer.
                assert_eq!(b.as_ptr() as usize, base + header_len);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(frames[1], Frame::Simple(Bytes::from_static(b"OK")));
    }

    #[test]
    fn long_line_in_small_reads() {
        let mut wire = b"-ERR unknown command ".to_vec();
        wire.resize(1024 * 1024, b'X');
        wire.extend_from_slice(b"\r\n");
        let mut dec = Decoder::new();
        let mut buf = BytesMut::new();
        let mut got = None;
        for chunk in wire.chunks(1000) {
            buf.extend_from_slice(chunk);
            if let Some(f) = dec.decode(&mut buf).unwrap() {
                got = Some(f);
            }
        }
        assert_eq!(
            got,
            Some(Frame::Error(Bytes::copy_from_slice(
                &wire[1..wire.len() - 2]
            )))
        );
    }

    #[test]
    fn encode_matches_the_server_bytes() {
        let cases: Vec<(Frame, &[u8])> = vec![
            (Frame::Simple(Bytes::from_static(b"OK")), b"+OK\r\n"),
            (
                Frame::Error(Bytes::from_static(b"ERR unknown command ")),
                b"-ERR unknown command \r\n",
            ),
            (
                Frame::Bulk(Bytes::from_static(b"{\"state\":\"quiet\"}")),
                b"$17\r\n{\"state\":\"quiet\"}\r\n",
            ),
            (Frame::Bulk(Bytes::new()), b"$0\r\n\r\n"),
            (Frame::Null, b"$-1\r\n"),
            (Frame::Integer(i64::MIN), b":-9223372036854775808\r\n"),
            (Frame::Integer(0), b":0\r\n"),
            (
                Frame::Array(vec![Frame::Integer(7), Frame::Null]),
                b"*2\r\n:7\r\n$-1\r\n",
            ),
        ];
        for (frame, wire) in cases {
            assert_eq!(&frame.to_bytes()[..], wire);
            assert_eq!(one(wire), Ok(Some(frame)));
        }
    }
}
