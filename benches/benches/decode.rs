//! Measures `ingest::Decoder::decode` per input shape: a batch of 1000
//! healthy-noise lines of one shape (and of the mixed stream) per iteration,
//! through a fresh decoder, in bytes/s and in lines/s.

use std::hint::black_box;

use correlate::Origin;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use epicenter_benches::{Mix, Shape, generate, generate_shape};
use ingest::Decoder;

const BATCH: usize = 1000;

fn decode_all(decoder: &mut Decoder, lines: &[String]) {
    let mut out = Vec::with_capacity(4);
    for (i, line) in lines.iter().enumerate() {
        out.clear();
        let origin = Origin {
            file: 0,
            line: i as u64 + 1,
        };
        let _ = black_box(decoder.decode(line, origin, &mut out));
        black_box(&out);
    }
}

fn bench(c: &mut Criterion, name: &str, lines: &[String]) {
    let bytes: u64 = lines.iter().map(|l| l.len() as u64 + 1).sum();
    let mut g = c.benchmark_group(format!("decode/{name}"));
    for (unit, throughput) in [
        ("bytes", Throughput::Bytes(bytes)),
        ("lines", Throughput::Elements(lines.len() as u64)),
    ] {
        g.throughput(throughput);
        g.bench_function(unit, |b| {
            b.iter_batched_ref(
                Decoder::default,
                |d| decode_all(d, lines),
                BatchSize::SmallInput,
            );
        });
    }
    g.finish();
}

fn decode(c: &mut Criterion) {
    for shape in Shape::ALL {
        bench(c, shape.as_str(), &generate_shape(shape, BATCH, 42));
    }
    bench(
        c,
        "mixed",
        &generate(Mix::Mixed, BATCH * 5, 42)[BATCH * 4..],
    );
}

criterion_group!(benches, decode);
criterion_main!(benches);
