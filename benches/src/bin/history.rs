//! SQL latency over a large incident history: writes `--incidents`
//! incidents into a history store through `HistoryWriter` (as `serve` does:
//! every version appended, flushed in batches, compacted), then times the
//! README's questions and a few more through `Sql`, the engine behind
//! `epicenter query` and `/api/v1/query`.
//!
//! The incidents are the real lifecycles of
//! `sinks/tests/fixtures/history/changes.ndjson` (replay output of the
//! scenarios: every version, opened to resolved or merged, with their blast
//! radii and explanations), each copied with a new id, shifted in time so
//! the openings spread evenly over `--days` days, and with its namespaces
//! and nodes renamed into a cluster of 400 namespaces and 120 nodes. The
//! store is then compacted to its settled shape (one file per table and
//! day, what a day becomes an hour after its last write).
//!
//! Two figures per query: **first**, a fresh `Sql::open` plus the query
//! (footers, statistics and the file list not cached yet; with
//! `--drop-caches`, run as root, the kernel's page cache dropped first),
//! and **warm**, the same query again on one open `Sql` (p50, p90, max over
//! `--runs`).
//!
//! ```text
//! history [--incidents N] [--days N] [--runs N] [--flush-every N]
//!         [--dir DIR] [--reuse] [--drop-caches]
//! ```
#![allow(clippy::print_stdout)] // the report is the output

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use correlate::EventTime;
use epicenter_benches::Rng;
use sinks::change::{ChangeKind, IncidentChange};
use sinks::history::{CompactionPolicy, HistoryWriter, QueryLimits, Sql};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NAMESPACES: usize = 400;
const NODES: usize = 120;
/// 2026-01-01T00:00:00Z: the first day of the generated history.
const START_MICROS: i64 = 1_767_225_600_000_000;
const DAY_MICROS: i64 = 86_400_000_000;

struct Args {
    incidents: usize,
    days: usize,
    runs: usize,
    flush_every: usize,
    dir: Option<PathBuf>,
    reuse: bool,
    drop_caches: bool,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        incidents: 1_000_000,
        days: 365,
        runs: 20,
        flush_every: 20_000,
        dir: None,
        reuse: false,
        drop_caches: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--reuse" => {
                a.reuse = true;
                continue;
            }
            "--drop-caches" => {
                a.drop_caches = true;
                continue;
            }
            "--dir" => {
                a.dir = Some(it.next().ok_or("--dir needs a path")?.into());
                continue;
            }
            _ => {}
        }
        let mut value = || {
            it.next()
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or_else(|| format!("{flag} needs a number"))
        };
        match flag.as_str() {
            "--incidents" => a.incidents = value()?.max(1),
            "--days" => a.days = value()?.max(1),
            "--runs" => a.runs = value()?.max(1),
            "--flush-every" => a.flush_every = value()?.max(1),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sinks/tests/fixtures/history")
}

/// The fixture's incidents, each as its versions in order.
fn lifecycles() -> Result<Vec<Vec<IncidentChange>>, String> {
    let path = fixtures().join("changes.ndjson");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut by_id: BTreeMap<String, Vec<IncidentChange>> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let c: IncidentChange =
            serde_json::from_str(line).map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
        by_id.entry(c.incident.id.clone()).or_default().push(c);
    }
    Ok(by_id.into_values().collect())
}

fn signal_sources() -> Result<BTreeMap<String, String>, String> {
    let path = fixtures().join("signal_sources.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Renames the fixture's namespaces and nodes into the bench cluster's,
/// consistently within one incident.
struct Renamer<'r> {
    rng: &'r mut Rng,
    names: HashMap<String, String>,
}

impl Renamer<'_> {
    fn namespace(&mut self, ns: &mut Option<String>) {
        if let Some(n) = ns {
            *n = self.rename(n, "ns", NAMESPACES);
        }
    }

    fn node(&mut self, node: &mut Option<String>) {
        if let Some(n) = node {
            *n = self.rename(n, "node", NODES);
        }
    }

    fn rename(&mut self, old: &str, prefix: &str, pool: usize) -> String {
        let key = format!("{prefix}/{old}");
        if let Some(new) = self.names.get(&key) {
            return new.clone();
        }
        let new = format!("{prefix}-{:03}", self.rng.below(pool));
        self.names.insert(key, new.clone());
        new
    }
}

fn shift(t: &mut EventTime, by: i64) {
    *t = EventTime::from_micros(t.as_micros() + by);
}

/// Copy `n` of a fixture lifecycle: a new id, opening at `opens_at`.
fn copy(
    template: &[IncidentChange],
    n: usize,
    opens_at: i64,
    rng: &mut Rng,
) -> Vec<IncidentChange> {
    let id = format!("{:016x}", rng.next_u64());
    let by = opens_at - template[0].incident.opened_at.as_micros();
    let mut renamer = Renamer {
        rng,
        names: HashMap::new(),
    };
    let merged_into = format!("{:016x}", n as u64 ^ 0x5eed);
    template
        .iter()
        .map(|c| {
            let mut c = c.clone();
            let i = &mut c.incident;
            i.id.clone_from(&id);
            for t in [&mut i.opened_at, &mut i.first_seen, &mut i.last_seen] {
                shift(t, by);
            }
            if let Some(t) = &mut i.resolved_at {
                shift(t, by);
            }
            renamer.namespace(&mut i.root_cause.entity.namespace);
            renamer.node(&mut i.root_cause.entity.node);
            for a in &mut i.affected {
                renamer.namespace(&mut a.entity.namespace);
                renamer.node(&mut a.entity.node);
            }
            for tie in &mut i.explanation.ties {
                shift(&mut tie.first, by);
                shift(&mut tie.last, by);
            }
            if c.merged_into.is_some() {
                c.merged_into = Some(merged_into.clone());
            }
            c
        })
        .collect()
}

fn recorded_at(c: &IncidentChange) -> EventTime {
    match (c.change, c.incident.resolved_at) {
        (ChangeKind::Resolved, Some(t)) => t,
        _ => c.incident.last_seen,
    }
}

struct Written {
    versions: u64,
    seconds: f64,
}

fn write(dir: &Path, a: &Args) -> Result<Written, String> {
    let templates = lifecycles()?;
    let mut w = HistoryWriter::open(dir, signal_sources()?).map_err(|e| e.to_string())?;
    let mut rng = Rng::new(42);
    let spacing = (a.days as i64 * DAY_MICROS) / a.incidents as i64;
    let start = Instant::now();
    let mut versions = 0u64;
    let mut since_flush = 0usize;
    for n in 0..a.incidents {
        let template = &templates[rng.below(templates.len())];
        let opens_at =
            START_MICROS + n as i64 * spacing + rng.below(spacing.max(1) as usize) as i64;
        for c in copy(template, n, opens_at, &mut rng) {
            versions += 1;
            w.append(&c, recorded_at(&c), Some(versions));
            since_flush += 1;
        }
        if since_flush >= a.flush_every {
            w.flush().map_err(|e| e.to_string())?;
            since_flush = 0;
        }
        if n > 0 && n % 100_000 == 0 {
            eprintln!("  {n} incidents, {:.0} s", start.elapsed().as_secs_f64());
        }
    }
    w.flush().map_err(|e| e.to_string())?;
    // The settled shape: every day in one file per table.
    w.set_compaction(CompactionPolicy {
        settle: Duration::ZERO,
        grace: Duration::ZERO,
        ..CompactionPolicy::default()
    });
    let c = w.compact().map_err(|e| e.to_string())?;
    eprintln!(
        "  compacted: {} merges of {} files, {} rows",
        c.merges, c.files_in, c.rows
    );
    Ok(Written {
        versions,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn store_size(dir: &Path) -> (u64, usize) {
    fn walk(p: &Path, acc: &mut (u64, usize)) {
        let Ok(rd) = std::fs::read_dir(p) else { return };
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, acc);
            } else if path.extension().is_some_and(|x| x == "parquet") {
                acc.0 += e.metadata().map(|m| m.len()).unwrap_or(0);
                acc.1 += 1;
            }
        }
    }
    let mut acc = (0, 0);
    walk(dir, &mut acc);
    acc
}

fn queries(last_month: &str, some_id: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "root causes this month (filtered group-by)",
            format!(
                "SELECT root_signal, count(*) AS incidents FROM incidents_latest \
                 WHERE day >= '{last_month}' AND change <> 'merged' \
                 GROUP BY root_signal ORDER BY incidents DESC"
            ),
        ),
        (
            "same, newest versions by a window over incidents (no stored latest table)",
            format!(
                "SELECT root_signal, count(*) AS incidents FROM (\
                   SELECT root_signal, change, row_number() OVER (PARTITION BY day, id \
                     ORDER BY version DESC, ordinal DESC) AS newest \
                   FROM incidents WHERE day >= '{last_month}') \
                 WHERE newest = 1 AND change <> 'merged' \
                 GROUP BY root_signal ORDER BY incidents DESC"
            ),
        ),
        (
            "versions per rule and severity this month",
            format!(
                "SELECT rule, severity, count(*) FROM incidents \
                 WHERE day >= '{last_month}' GROUP BY rule, severity"
            ),
        ),
        (
            "mean time to resolve per rule (all days)",
            "SELECT rule, count(*) AS resolved, \
             avg(to_unixtime(resolved_at) - to_unixtime(opened_at)) AS mean_seconds \
             FROM incidents_latest WHERE resolved_at IS NOT NULL GROUP BY rule"
                .to_string(),
        ),
        (
            "namespaces most in blast radii this month (join)",
            format!(
                "SELECT e.namespace, count(DISTINCT e.id) AS incidents \
                 FROM incidents_latest l \
                 JOIN incident_entities e ON e.day = l.day AND e.ordinal = l.ordinal \
                 WHERE l.day >= '{last_month}' AND e.role = 'affected' \
                 AND e.namespace IS NOT NULL \
                 GROUP BY e.namespace ORDER BY incidents DESC LIMIT 10"
            ),
        ),
        (
            "namespaces most in blast radii (all days, join)",
            "SELECT e.namespace, count(DISTINCT e.id) AS incidents \
             FROM incidents_latest l \
             JOIN incident_entities e ON e.day = l.day AND e.ordinal = l.ordinal \
             WHERE e.role = 'affected' AND e.namespace IS NOT NULL \
             GROUP BY e.namespace ORDER BY incidents DESC LIMIT 10"
                .to_string(),
        ),
        (
            "one incident's versions by id (all days)",
            format!(
                "SELECT version, change, status FROM incidents WHERE id = '{some_id}' ORDER BY version"
            ),
        ),
        (
            "one incident's whole document by id (all days; what GET /api/v1/incidents/{id} reads)",
            format!(
                "SELECT document FROM incident_documents WHERE id = '{some_id}' ORDER BY ordinal DESC LIMIT 1"
            ),
        ),
    ]
}

fn drop_page_cache() -> Result<(), String> {
    std::fs::write("/proc/sys/vm/drop_caches", "3")
        .map_err(|e| format!("--drop-caches needs root: /proc/sys/vm/drop_caches: {e}"))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn run(a: Args) -> Result<(), String> {
    let tmp;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
            tmp.path().to_path_buf()
        }
    };
    let exists = dir.join("HEAD").exists();
    if a.reuse && exists {
        println!("history store: reusing {}", dir.display());
    } else {
        if exists {
            return Err(format!(
                "{} holds a store already: --reuse it, or remove it",
                dir.display()
            ));
        }
        let w = write(&dir, &a)?;
        println!(
            "wrote {} incidents ({} versions) over {} days in {:.1} s: {:.0} versions/s",
            a.incidents,
            w.versions,
            a.days,
            w.seconds,
            w.versions as f64 / w.seconds
        );
    }
    let (bytes, files) = store_size(&dir);
    println!(
        "store: {files} Parquet files, {:.1} MiB",
        bytes as f64 / (1 << 20) as f64
    );

    let limits = QueryLimits::default();
    let probe = Sql::open(&dir, limits.clone())
        .await
        .map_err(|e| e.to_string())?;
    let facts = probe
        .execute("SELECT max(day) AS d, min(id) AS id, count(*) AS n FROM incidents_latest")
        .await
        .map_err(|e| e.to_string())?;
    let text = facts
        .render(sinks::history::Format::Csv)
        .map_err(|e| e.to_string())?;
    let row: Vec<String> = text
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split(',')
        .map(str::to_string)
        .collect();
    let (last_day, some_id, latest) = match row.as_slice() {
        [d, id, n] => (d.clone(), id.clone(), n.clone()),
        _ => return Err(format!("unexpected answer: {text}")),
    };
    drop(probe);
    let last_month = {
        let t: EventTime = EventTime::parse_rfc3339(&format!("{last_day}T00:00:00Z"))
            .ok_or_else(|| format!("not a day: {last_day}"))?;
        let from = EventTime::from_micros(t.as_micros() - 29 * DAY_MICROS);
        from.to_string()[..10].to_string()
    };
    println!(
        "{latest} incidents in incidents_latest, newest day {last_day}; this month from {last_month}"
    );
    println!();
    println!(
        "| query | rows | first (open + query) ms | warm p50 ms | warm p90 ms | warm max ms |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (name, sql) in queries(&last_month, &some_id) {
        if a.drop_caches {
            drop_page_cache()?;
        }
        let start = Instant::now();
        let fresh = Sql::open(&dir, limits.clone())
            .await
            .map_err(|e| e.to_string())?;
        let out = fresh
            .execute(&sql)
            .await
            .map_err(|e| format!("{name}: {e}"))?;
        let first = start.elapsed();
        let mut warm = Vec::with_capacity(a.runs);
        for _ in 0..a.runs {
            let start = Instant::now();
            fresh
                .execute(&sql)
                .await
                .map_err(|e| format!("{name}: {e}"))?;
            warm.push(start.elapsed());
        }
        warm.sort();
        println!(
            "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            out.rows,
            ms(first),
            ms(percentile(&warm, 0.5)),
            ms(percentile(&warm, 0.9)),
            ms(*warm.last().unwrap_or(&Duration::ZERO)),
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("history: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("history: starting tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(a)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("history: {e}");
            ExitCode::FAILURE
        }
    }
}
