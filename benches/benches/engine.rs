//! Measures `correlate::Engine::push` with the shipped rules on pre-decoded
//! owned events (classification, reordering, correlation and housekeeping
//! together: a stream of 20 000 events into a fresh engine per iteration,
//! per mix), and the cost of a push while the engine holds many effects
//! waiting for a cause ("held state": a steady ~100 000 held effects against
//! a baseline of ~100, with no lateness so that the reorder buffer stays
//! empty; then ~100 000 with the default 2 min lateness, where the reorder
//! buffer also holds ~20 000 signals).

use std::cell::RefCell;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use correlate::rules::RuleSet;
use correlate::{Engine, EngineConfig, Event, Origin, Span};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use epicenter_benches::{
    DEFAULT_START, Mix, decode_owned, failed_mount_line, generate, shipped_rules,
};
use ingest::Decoder;

const EVENTS: usize = 20_000;

fn stream(c: &mut Criterion, rules: &Arc<RuleSet>) {
    let mut g = c.benchmark_group("engine/push");
    g.sample_size(10);
    for mix in Mix::ALL {
        // Skip the initial LIST of the mixed stream: steady state only.
        let lines = generate(mix, EVENTS * 2, 11);
        let events: Vec<Event<'static>> = decode_owned(&lines[lines.len() - EVENTS..]);
        g.throughput(Throughput::Elements(events.len() as u64));
        g.bench_function(mix.as_str(), |b| {
            b.iter_batched(
                || Engine::new(rules.clone(), EngineConfig::default()),
                |mut engine| {
                    for ev in &events {
                        black_box(engine.push(ev));
                    }
                    engine
                },
                BatchSize::PerIteration,
            );
        });
    }
    g.finish();
}

/// An engine fed FailedMount effects with no cause, one every `step`: in
/// steady state it holds `10 min / step` of them (the rule's `before`
/// window), expiring as many as it takes in.
struct Held {
    engine: Engine,
    decoder: Decoder,
    i: u64,
    step_us: i64,
}

impl Held {
    fn new(rules: &Arc<RuleSet>, held: u64, lateness: Span) -> Held {
        let config = EngineConfig {
            lateness,
            max_held_entries: usize::MAX,
            max_held_bytes: usize::MAX,
            ..EngineConfig::default()
        };
        let mut h = Held {
            engine: Engine::new(rules.clone(), config),
            decoder: Decoder::default(),
            i: 0,
            step_us: (600_000_000 / held.max(1)) as i64,
        };
        // Fill to steady state: a window and a half.
        for _ in 0..held * 3 / 2 {
            h.push();
        }
        h
    }

    fn push(&mut self) {
        let t = DEFAULT_START * 1_000_000 + self.i as i64 * self.step_us;
        let line = failed_mount_line(self.i, 5_000, t);
        let mut evs = Vec::with_capacity(1);
        let origin = Origin {
            file: 0,
            line: self.i,
        };
        if self.decoder.decode(&line, origin, &mut evs).is_ok() {
            for ev in &evs {
                black_box(self.engine.push(ev));
            }
        }
        self.i += 1;
        if self.i.is_multiple_of(100_000) {
            self.decoder = Decoder::default();
        }
    }
}

fn held(c: &mut Criterion, rules: &Arc<RuleSet>) {
    let mut g = c.benchmark_group("engine/held");
    g.throughput(Throughput::Elements(1));
    for (name, held, lateness) in [
        ("100", 100u64, Span::ZERO),
        ("100000", 100_000, Span::ZERO),
        (
            "100000-lateness-2m",
            100_000,
            EngineConfig::default().lateness,
        ),
    ] {
        let state = RefCell::new(Held::new(rules, held, lateness));
        let gauges = state.borrow().engine.gauges();
        eprintln!(
            "engine/held/{name}: {} held effects, {} held bytes (engine's estimate), {} buffered",
            gauges.held_effects, gauges.held_bytes, gauges.buffered
        );
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut h = state.borrow_mut();
                let mut total = Duration::ZERO;
                // Lines are made and decoded outside the timed part.
                for _ in 0..iters {
                    let t = DEFAULT_START * 1_000_000 + h.i as i64 * h.step_us;
                    let line = failed_mount_line(h.i, 5_000, t);
                    let mut evs = Vec::with_capacity(1);
                    let origin = Origin { file: 0, line: h.i };
                    let _ = h.decoder.decode(&line, origin, &mut evs);
                    let start = Instant::now();
                    for ev in &evs {
                        black_box(h.engine.push(ev));
                    }
                    total += start.elapsed();
                    h.i += 1;
                    if h.i.is_multiple_of(100_000) {
                        h.decoder = Decoder::default();
                    }
                }
                total
            });
        });
    }
    g.finish();
}

fn engine(c: &mut Criterion) {
    let rules = shipped_rules();
    stream(c, &rules);
    held(c, &rules);
}

criterion_group!(benches, engine);
criterion_main!(benches);
