//! Soak: does held state stay flat for a month? Replays `--days` (30) of
//! event time through the decoder and the engine with the shipped rules, as
//! `serve` runs them (resolved incidents retire after `--retention`, 1h;
//! `none` keeps every one, as before retention existed):
//!
//! - the mixed cluster stream of `gen` (Events, Pods, Nodes, logs, alerts,
//!   with failure episodes) at `--rate` records per second of event time;
//! - and `--incidents` (100 000) short alert-only incidents spread over the
//!   days: a critical volume alert for a claim of its own, resolved ten
//!   minutes later (each is an incident of `volume-full`).
//!
//! Every simulated day it prints the incidents in the engine, those retired,
//! the held state, the decoder's tables, the process RSS and the size of a
//! checkpoint (engine and decoder snapshots) taken then, as `serve` would.
//!
//! ```text
//! soak [--days N] [--incidents N] [--rate R] [--retention 1h|none]
//! ```

#![allow(clippy::print_stdout)] // the report is the output

use std::process::ExitCode;
use std::time::Instant;

use correlate::{Engine, EngineConfig, EventTime, Origin, Span};
use epicenter_benches::{Config, DEFAULT_START, Generator, Mix, shipped_rules};
use ingest::Decoder;

/// `VmRSS` of this process, in bytes.
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

fn stamp(us: i64) -> String {
    EventTime::from_micros(us).to_string()
}

/// A webhook body: the critical volume alert of `claim`, firing or resolved.
fn volume_alert(claim: u64, resolved: bool, us: i64) -> String {
    let t = stamp(us);
    let (status, ends) = if resolved {
        ("resolved", t.clone())
    } else {
        ("firing", "0001-01-01T00:00:00Z".to_string())
    };
    format!(
        r#"{{"version":"4","status":"{status}","receiver":"epicenter","alerts":[{{"status":"{status}","labels":{{"alertname":"KubePersistentVolumeFillingUp","severity":"critical","namespace":"data-{ns}","persistentvolumeclaim":"pgdata-{claim}"}},"annotations":{{"description":"The PersistentVolume claimed by pgdata-{claim} is only 1.2% free.","summary":"PersistentVolume is filling up."}},"startsAt":"{start}","endsAt":"{ends}","fingerprint":"{claim:016x}"}}]}}"#,
        ns = claim % 50,
        start = if resolved { stamp(us - 600_000_000) } else { t },
    )
}

fn main() -> ExitCode {
    let mut days: i64 = 30;
    let mut incidents: u64 = 100_000;
    let mut rate: f64 = 2.0;
    let mut retention = Some(Span::from_secs(3600));
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "--days" => days = value.parse().unwrap_or(days),
            "--incidents" => incidents = value.replace('_', "").parse().unwrap_or(incidents),
            "--rate" => rate = value.parse().unwrap_or(rate),
            "--retention" if value == "none" => retention = None,
            "--retention" => match Span::parse(&value) {
                Some(s) => retention = Some(s),
                None => {
                    eprintln!("--retention: `{value}` is not a duration");
                    return ExitCode::from(2);
                }
            },
            _ => {
                eprintln!(
                    "usage: soak [--days N] [--incidents N] [--rate R] [--retention 1h|none]"
                );
                return ExitCode::from(2);
            }
        }
    }

    let config = EngineConfig {
        retention,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(shipped_rules(), config);
    let mut decoder = Decoder::default();
    let cluster = Config {
        rate,
        ..Config::new(Mix::Mixed, 7)
    };
    let mut stream = Generator::new(cluster);
    let start = DEFAULT_START * 1_000_000;
    let day = 86_400_000_000i64;
    let end = start + days * day;
    // The alert incidents: claim k fires at start + k * every and resolves
    // ten minutes later; the two sequences are merged in time order, each
    // alert sent once the cluster stream has reached its time.
    let every = (days * day) / incidents.max(1) as i64;
    let (mut fired, mut resolved) = (0u64, 0u64);
    let mut line_no = 0u64;
    let mut records = 0u64;
    let started = Instant::now();
    println!(
        "retention {}; day | records | incidents held | retired | held effects | engine states | tracked pods | decoder objects | checkpoint bytes (engine + decoder) | RSS MiB",
        retention.map_or("none".to_string(), |r| r.to_string())
    );
    let mut next_report = start + day;
    loop {
        let fire_at = start + fired as i64 * every;
        let resolve_at = start + resolved as i64 * every + 600_000_000;
        let now = engine.max_time().as_micros().max(start);
        let line = if resolved < fired && resolve_at <= fire_at.min(now) {
            resolved += 1;
            volume_alert(resolved - 1, true, resolve_at)
        } else if fired < incidents && fire_at <= now {
            fired += 1;
            volume_alert(fired - 1, false, fire_at)
        } else {
            stream.next_line()
        };
        line_no += 1;
        let mut evs = Vec::new();
        let origin = Origin {
            file: 0,
            line: line_no,
        };
        if let Ok(d) = decoder.decode(&line, origin, &mut evs) {
            match d {
                ingest::Decoded::Duplicate { time } | ingest::Decoded::Unchanged { time } => {
                    engine.observe(time);
                }
                _ => {
                    for e in &evs {
                        engine.push(e);
                    }
                }
            }
        }
        decoder.take_rejected();
        records += 1;
        let now = engine.max_time().as_micros();
        if now >= next_report {
            let d = (next_report - start) / day;
            let g = engine.gauges();
            let engine_bytes = engine.snapshot().to_bytes().map_or(0, |b| b.len());
            let decoder_bytes = decoder.snapshot().to_bytes().map_or(0, |b| b.len());
            println!(
                "{d} | {records} | {} | {} | {} | {} | {} | {} | {engine_bytes} + {decoder_bytes} | {:.1}",
                g.incidents,
                g.retired_incidents,
                g.held_effects,
                g.states,
                g.tracked_pods,
                decoder.topology().len(),
                rss() as f64 / (1 << 20) as f64
            );
            next_report += day;
        }
        if now >= end {
            break;
        }
    }
    engine.finish();
    eprintln!(
        "{records} records over {days} days of event time in {:.1}s; {fired} alert incidents",
        started.elapsed().as_secs_f64(),
    );
    ExitCode::SUCCESS
}
