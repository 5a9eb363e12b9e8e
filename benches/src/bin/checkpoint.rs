//! Checkpoint cost with a large held state: builds the same engine as
//! `held` (the shipped rules, N causeless `FailedMount` effects held by
//! `csi-driver-unavailable`, caps lifted), then times `Engine::snapshot`,
//! `EngineSnapshot::to_bytes`, `from_bytes` and `Engine::restore`, reports
//! the checkpoint's size, and checks that the restored engine has the same
//! gauges and snapshots to the same bytes. Then the same for the decoder
//! after its last 100 000 records (its dedupe table of Event uids).
//!
//! ```text
//! checkpoint [--entries N] [--nodes N] [--runs N]
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};

use correlate::{Engine, EngineConfig, EngineSnapshot, EventTime, Origin};
use epicenter_benches::{DEFAULT_START, failed_mount_line, shipped_rules};
use ingest::{Decoder, DecoderSnapshot, Limits};

/// The allocator of the `epicenter` binary, whose `serve` takes checkpoints.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `VmHWM` of this process, in MiB.
fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// Runs `f` `runs` times; the median time and the last result.
fn timed<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let v = f();
        times.push(t.elapsed());
        // Dropping the previous result is not part of the measurement.
        drop(last.replace(v));
    }
    times.sort();
    let Some(v) = last else {
        unreachable!("runs >= 1")
    };
    (times[times.len() / 2], v)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> ExitCode {
    let (mut entries, mut nodes, mut runs): (u64, u64, usize) = (1_000_000, 5_000, 3);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .and_then(|v| v.replace('_', "").parse::<u64>().ok());
        match (flag.as_str(), value) {
            ("--entries", Some(v)) => entries = v,
            ("--nodes", Some(v)) => nodes = v.max(1),
            ("--runs", Some(v)) => runs = v.max(1) as usize,
            _ => {
                eprintln!("usage: checkpoint [--entries N] [--nodes N] [--runs N]");
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
    let mut engine = Engine::new(rules.clone(), config.clone());
    let mut decoder = Decoder::default();
    let step = (300_000_000 / entries.max(1)).max(1) as i64;
    let t0 = DEFAULT_START * 1_000_000;
    for i in 0..entries {
        let t = t0 + i as i64 * step;
        let line = failed_mount_line(i, nodes, t);
        let mut evs = Vec::with_capacity(1);
        let origin = Origin {
            file: 0,
            line: i + 1,
        };
        if let Err(e) = decoder.decode(&line, origin, &mut evs) {
            eprintln!("checkpoint: line {i}: {e}");
            return ExitCode::FAILURE;
        }
        for ev in &evs {
            engine.push(ev);
        }
        engine.advance(EventTime::from_micros(t - t.rem_euclid(1_000_000) - 1));
        if (i + 1) % 100_000 == 0 && i + 1 < entries {
            decoder = Decoder::default();
        }
    }
    let last = t0 + (entries as i64 - 1).max(0) * step;
    engine.advance(EventTime::from_micros(last));
    let gauges = engine.gauges();
    eprintln!("checkpoint: engine gauges {gauges:?}");

    let (t_snap, snap) = timed(runs, || engine.snapshot());
    let (t_enc, bytes) = timed(runs, || snap.to_bytes());
    let bytes = match bytes {
        Ok(b) => b,
        Err(e) => {
            eprintln!("checkpoint: {e}");
            return ExitCode::FAILURE;
        }
    };
    drop(snap);
    let (t_dec, back) = timed(runs, || EngineSnapshot::from_bytes(&bytes));
    let back = match back {
        Ok(s) => s,
        Err(e) => {
            eprintln!("checkpoint: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (t_restore, restored) = timed(runs, || {
        Engine::restore(rules.clone(), config.clone(), back.clone())
    });
    // `restore` consumed a clone: time the clone alone and take it off.
    let (t_clone, _) = timed(runs, || back.clone());
    let restored = match restored {
        Ok((e, report)) if report.is_clean() => e,
        Ok((_, report)) => {
            eprintln!("checkpoint: same rules, yet {report:?}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("checkpoint: {e}");
            return ExitCode::FAILURE;
        }
    };
    let same_gauges = format!("{:?}", restored.gauges()) == format!("{gauges:?}");
    let same_bytes = restored
        .snapshot()
        .to_bytes()
        .is_ok_and(|again| again == bytes);
    let held = gauges.held_effects.max(1) as f64;
    eprintln!(
        "checkpoint: engine, {} held effects: {:.1} MiB ({:.0} bytes/effect); snapshot {:.0} ms, to_bytes {:.0} ms, from_bytes {:.0} ms, restore {:.0} ms (median of {runs}); restored gauges equal: {same_gauges}, bytes equal: {same_bytes}",
        gauges.held_effects,
        bytes.len() as f64 / 1048576.0,
        bytes.len() as f64 / held,
        ms(t_snap),
        ms(t_enc),
        ms(t_dec),
        ms(t_restore.saturating_sub(t_clone)),
    );

    let events = decoder.stats().k8s_events;
    let (t_dsnap, dsnap) = timed(runs, || decoder.snapshot());
    let (t_denc, dbytes) = timed(runs, || dsnap.to_bytes());
    let Ok(dbytes) = dbytes else {
        eprintln!("checkpoint: decoder snapshot does not encode");
        return ExitCode::FAILURE;
    };
    let (t_ddec, dback) = timed(runs, || DecoderSnapshot::from_bytes(&dbytes));
    let Ok(dback) = dback else {
        eprintln!("checkpoint: decoder snapshot does not decode");
        return ExitCode::FAILURE;
    };
    let (t_drestore, _) = timed(runs, || Decoder::restore(Limits::default(), dback.clone()));
    let (t_dclone, _) = timed(runs, || dback.clone());
    eprintln!(
        "checkpoint: decoder, {events} Events remembered: {:.1} MiB ({:.0} bytes/Event); snapshot {:.1} ms, to_bytes {:.1} ms, from_bytes {:.1} ms, restore {:.1} ms",
        dbytes.len() as f64 / 1048576.0,
        dbytes.len() as f64 / events.max(1) as f64,
        ms(t_dsnap),
        ms(t_denc),
        ms(t_ddec),
        ms(t_drestore.saturating_sub(t_dclone)),
    );
    eprintln!("checkpoint: peak RSS {:.0} MiB", peak_mib());
    if same_gauges && same_bytes {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
