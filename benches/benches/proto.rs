//! Criterion benches for faktory-proto (filled in by the core issue).
#![allow(missing_docs)]
use criterion::{Criterion, criterion_group, criterion_main};

fn placeholder(c: &mut Criterion) {
    c.bench_function("job_decode_serde_json", |b| {
        let raw = br#"{"retry":25,"jid":"probe-jid-0000001","queue":"probe","jobtype":"ProbeJob","args":[1]}"#;
        b.iter(|| serde_json::from_slice::<faktory_proto::Job>(raw).ok());
    });
}

criterion_group!(benches, placeholder);
criterion_main!(benches);
