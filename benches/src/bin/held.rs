//! Memory per live window entry: builds an [`Engine`] with the shipped rules,
//! pushes N (default 1 000 000) `FailedMount` "driver name smb.csi.k8s.io not
//! found in the list of registered CSI drivers" Events for distinct pods on
//! 5 000 nodes, with no CSI plugin failure anywhere, all within five minutes
//! of event time (the rule's window is ten: nothing expires) and with the
//! held-state caps lifted (nothing is evicted). Every one is then held by the
//! `csi-driver-unavailable` correlation waiting for its cause. Reports the
//! engine's gauges and the process RSS delta per held entry.
//!
//! ```text
//! held [--entries N] [--nodes N]
//! ```

use std::process::ExitCode;
use std::time::Instant;

use correlate::{Engine, EngineConfig, EventTime, Origin};
use epicenter_benches::{DEFAULT_START, failed_mount_line, shipped_rules};
use ingest::Decoder;

/// `VmRSS` or `VmHWM` of this process, in bytes.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

fn main() -> ExitCode {
    let mut entries: u64 = 1_000_000;
    let mut nodes: u64 = 5_000;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .and_then(|v| v.replace('_', "").parse::<u64>().ok());
        match (flag.as_str(), value) {
            ("--entries", Some(v)) => entries = v,
            ("--nodes", Some(v)) => nodes = v.max(1),
            _ => {
                eprintln!("usage: held [--entries N] [--nodes N]");
                return ExitCode::from(2);
            }
        }
    }

    let rules = shipped_rules();
    let config = EngineConfig {
        max_held_entries: usize::MAX,
        max_held_bytes: usize::MAX,
        max_buffered: usize::MAX,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(rules, config);
    let mut decoder = Decoder::default();
    let rss_before = status_kib("VmRSS:");

    // Five minutes of event time, in order.
    let step = (300_000_000 / entries.max(1)).max(1) as i64;
    let t0 = DEFAULT_START * 1_000_000;
    let started = Instant::now();
    for i in 0..entries {
        let t = t0 + i as i64 * step;
        let line = failed_mount_line(i, nodes, t);
        let mut evs = Vec::with_capacity(1);
        let origin = Origin {
            file: 0,
            line: i + 1,
        };
        if let Err(e) = decoder.decode(&line, origin, &mut evs) {
            eprintln!("held: line {i}: {e}");
            return ExitCode::FAILURE;
        }
        for ev in &evs {
            engine.push(ev);
        }
        // The watermark passes each record at once: it is held by its
        // correlation, not by the reorder buffer.
        engine.advance(EventTime::from_micros(t - t.rem_euclid(1_000_000) - 1));
        if (i + 1) % 100_000 == 0 {
            // The decoder's dedupe tables are not the engine's memory.
            decoder = Decoder::default();
        }
    }
    drop(decoder);
    // Release the last second too.
    let last = t0 + (entries as i64 - 1).max(0) * step;
    engine.advance(EventTime::from_micros(last));
    let elapsed = started.elapsed();
    let rss_after = status_kib("VmRSS:");
    let hwm = status_kib("VmHWM:");
    let g = engine.gauges();
    let s = engine.stats();
    let delta = rss_after.saturating_sub(rss_before);
    let held = g.held_effects.max(1) as f64;
    let per_entry = delta as f64 / held;
    eprintln!(
        "held: pushed {entries} records in {:.2}s ({:.0}/s)",
        elapsed.as_secs_f64(),
        entries as f64 / elapsed.as_secs_f64()
    );
    eprintln!("held: stats {s:?}");
    eprintln!("held: gauges {g:?}");
    eprintln!(
        "held: RSS {:.1} MiB -> {:.1} MiB (peak {:.1} MiB): delta {:.1} MiB, {per_entry:.0} bytes per held entry = {:.1} MiB per 1M entries (engine's estimate {:.0} bytes/entry); target <= 128 MiB per 1M",
        rss_before as f64 / 1048576.0,
        rss_after as f64 / 1048576.0,
        hwm as f64 / 1048576.0,
        delta as f64 / 1048576.0,
        per_entry * 1e6 / 1048576.0,
        g.held_bytes as f64 / held,
    );
    eprintln!(
        "held: size_of Hit {} bytes, Entity {} bytes (inline, before the strings they own)",
        std::mem::size_of::<correlate::Hit>(),
        std::mem::size_of::<correlate::Entity<'static>>()
    );
    if g.held_effects as u64 != entries {
        eprintln!(
            "held: expected {entries} held effects, found {}",
            g.held_effects
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
