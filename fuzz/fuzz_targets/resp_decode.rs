#![no_main]
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The RESP decoder fed arbitrary bytes, whole and in two chunks (the split point comes from the
//! first input byte): never panics, and the frames it accepts (and the kind of error it stops at,
//! if any) are the same whichever way the input was split. Every decoded frame, encoded again,
//! decodes to itself.
use bytes::BytesMut;
use faktory_proto::resp::{DecodeError, Decoder, Frame};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 1 << 20;

/// Decodes `data` fed in the given pieces; returns the frames and the error that stopped it.
fn decode_pieces(pieces: &[&[u8]]) -> (Vec<Frame>, Option<DecodeError>) {
    let mut dec = Decoder::with_max_frame_size(MAX);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, input)) = data.split_first() else {
        return;
    };
    let whole = decode_pieces(&[input]);
    let cut = if input.is_empty() {
        0
    } else {
        usize::from(split) % (input.len() + 1)
    };
    let (a, b) = input.split_at(cut);
    let split_result = decode_pieces(&[a, b]);
    assert_eq!(whole.0, split_result.0, "chunking changed the frames");
    // The kind of error is the same; its details (e.g. how much of a too large length had
    // arrived) may differ.
    assert_eq!(
        whole.1.as_ref().map(std::mem::discriminant),
        split_result.1.as_ref().map(std::mem::discriminant),
        "chunking changed the error: {:?} vs {:?}",
        whole.1,
        split_result.1
    );

    for frame in &whole.0 {
        let wire = frame.to_bytes();
        let mut buf = BytesMut::from(&wire[..]);
        let again = Decoder::with_max_frame_size(usize::MAX)
            .decode(&mut buf)
            .expect("an encoded frame decodes");
        assert_eq!(
            again.as_ref(),
            Some(frame),
            "encode/decode is not the identity"
        );
        assert!(buf.is_empty());
    }
});
