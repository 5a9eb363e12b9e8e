//! Measures `correlate::Classifier::classify` with the shipped rule pack
//! (`rules/*.yaml`) on pre-decoded events: healthy noise (mostly no signal:
//! the cost of saying "no") and failure records (every one a signal: the
//! cost of captures, attributes and the owned hit), per mix, then the
//! failure records split by the signal they match.

use std::collections::BTreeMap;
use std::hint::black_box;

use correlate::{Classifier, Event};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use epicenter_benches::{Mix, decode_owned, generate_failures, generate_noise, shipped_rules};

fn classify_all(classifier: &Classifier, events: &[Event<'static>]) -> usize {
    let mut hits = Vec::with_capacity(4);
    let mut n = 0;
    for ev in events {
        hits.clear();
        classifier.classify(ev, &mut hits);
        n += hits.len();
    }
    black_box(n)
}

fn classify(c: &mut Criterion) {
    let rules = shipped_rules();
    let classifier = Classifier::new(rules.clone());
    let mut by_signal: BTreeMap<String, Vec<Event<'static>>> = BTreeMap::new();
    for mix in Mix::ALL {
        let noise = decode_owned(&generate_noise(mix, 5_000, 7));
        let failures = decode_owned(&generate_failures(mix, 2_000, 7));
        let mut g = c.benchmark_group(format!("classify/{mix}"));
        for (label, events) in [("noise", &noise), ("matching", &failures)] {
            g.throughput(Throughput::Elements(events.len() as u64));
            g.bench_function(label, |b| b.iter(|| classify_all(&classifier, events)));
        }
        g.finish();
        let mut hits = Vec::new();
        for ev in failures {
            hits.clear();
            classifier.classify(&ev, &mut hits);
            if let Some(h) = hits.first() {
                by_signal
                    .entry(rules.signal(h.signal).id.clone())
                    .or_default()
                    .push(ev);
            }
        }
    }
    let mut g = c.benchmark_group("classify/signal");
    for (signal, mut events) in by_signal {
        events.truncate(500);
        g.throughput(Throughput::Elements(events.len() as u64));
        g.bench_function(signal, |b| b.iter(|| classify_all(&classifier, &events)));
    }
    g.finish();
}

criterion_group!(benches, classify);
criterion_main!(benches);
