//! RESP2 frames: incremental decoding (client side) and encoding (server side).
//!
//! CONTRACT (skeleton; the implementation fills the bodies):
//! - [`Decoder::decode`] consumes one complete frame from the front of a `BytesMut` and returns it;
//!   an incomplete frame is `Ok(None)` and leaves the buffer as it was (the decoder may remember how
//!   far it scanned). Bulk bodies are zero-copy (`split_to(n).freeze()`).
//! - A bulk length above the configured maximum is [`DecodeError::FrameTooLarge`] before anything is
//!   allocated; a line (simple/error/header) longer than the maximum without CRLF is an error too.
//! - Lines end at `\r\n`; a lone `\r` inside an error line is part of the message.

use bytes::{Bytes, BytesMut};

/// Default maximum frame size: 64 MiB (the real server hands out 16 MiB jobs without complaint).
pub const DEFAULT_MAX_FRAME_SIZE: usize = 64 * 1024 * 1024;

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

/// Incremental RESP2 decoder.
#[derive(Debug, Clone)]
pub struct Decoder {
    max_frame_size: usize,
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
        Decoder { max_frame_size: max }
    }

    /// The configured maximum frame size.
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// Decodes one frame from the front of `buf`: `Ok(None)` when incomplete.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        let _ = buf;
        unimplemented!("resp::Decoder::decode")
    }
}

impl Frame {
    /// Appends the wire form of this frame to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let _ = out;
        unimplemented!("resp::Frame::encode")
    }
}
