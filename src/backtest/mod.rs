//! `epicenter backtest`: the same records replayed through two rule packs,
//! OLD (`--rules`) and NEW (`--against`), and what differs: incidents only
//! in OLD (*removed*), only in NEW (*new*), and *changed* (title, severity,
//! status, root, blast radius added and removed, opened earlier or later,
//! detection delay, notifications); what the notification policy would have
//! sent for each; compression at each stage (records → signals → incidents
//! → notifications); the detection delay of every incident (`opened_at -
//! first_seen`). With `--expected DIR`, each scenario of DIR (the format of
//! `../shared/scenarios/README.md`) is replayed on its own and its expected
//! incidents give precision, recall and false attributions per rule, for
//! both packs ([`expected`]).
//!
//! One pass over the input: each line is read and decoded once
//! (`replay`'s reader thread and decoder) and each event goes to OLD's
//! engine, then to NEW's ([`pair`]). Engine settings come from `--config`
//! (else the defaults) with every incident kept to the end, as `replay`
//! does; the config's `notify:` policy (`throttle`, `blast_radius_steps`)
//! decides notifications, with event time as its clock ([`notify`]); the
//! config's `rules:` and `builtin_rules` are not read: `--rules` and
//! `--against` name the packs. Pairing OLD's incidents with NEW's is
//! [`diff`]; printing, [`output`].
//!
//! What can be replayed: record files, NDJSON in the shapes `replay`
//! reads (what `serve` was fed: a recorder's watch dump, `kubectl get -w
//! -o json`, a Kafka topic dumped with `kcat -C -e -f '%s\n'`). Not the
//! incident history (it keeps incident versions, not records) and not
//! serve's journal (`state_dir/journal/*.wal`: binary, postcard-framed
//! Alertmanager deliveries, deleted once a checkpoint covers them).
//!
//! Exit status: 0, or 1 when `--fail-on` names a difference that was found
//! (said on stderr); 2 on a bad flag, an unreadable file or rules that do
//! not load.
//!
//! JSON (`--format json`) is one document:
//!
//! ```json
//! {"old": {"packs": ["built-in"], "signals": 92, "correlations": 33, "absences": 4},
//!  "new": {"packs": ["built-in", "mine/"], ...},
//!  "policy": {"throttle_seconds": 300.0, "blast_radius_steps": [5, 10, 25, 50, 100, 250, 500, 1000]},
//!  "runs": [{"name": "examples/x.ndjson", "inputs": ["examples/x.ndjson"], "records": 3090,
//!            "old": {"signals": 290, "incidents": 2, "notifications": {"opened": 2, "updated": 3, "resolved": 0, "total": 5}},
//!            "new": {...},
//!            "counts": {"removed": 1, "new": 0, "changed": 0, "slower": 0, "unchanged": 1},
//!            "incidents": [{"verdict": "removed" | "new" | "changed" | "unchanged",
//!                           "old": INCIDENT | null, "new": INCIDENT | null,
//!                           "changes": {...},        // "changed" only
//!                           "slower": false}]}],
//!  "totals": {"records": 3090, "old": {...}, "new": {...}, "counts": {...}},
//!  "expected": {"scenarios": 6,                     // with --expected only
//!               "old": {"rules": [RULE...], "all": RULE, "scenarios": [{"scenario": "x", "passed": true, "reasons": [...]}]},
//!               "new": {...}},
//!  "fail_on": {"kinds": ["removed"], "triggered": ["removed"]}}
//! ```
//!
//! where INCIDENT is `{"id", "rule", "title", "severity", "status", "root":
//! {"kind", "namespace", "name", "node"}, "opened_at", "first_seen",
//! "last_seen", "detection_delay_seconds", "affected" (how many),
//! "notifications": {"opened", "updated", "resolved", "total"}}`; `changes`
//! holds only what differs, each as `{"old", "new"}` (`title`, `severity`,
//! `status`, `root`, `detection_delay_seconds`, `notifications`), plus
//! `affected_added` and `affected_removed` (`Kind namespace/name` lists) and
//! `opened_at_shift_seconds` (NEW less OLD: positive is later); RULE is
//! `{"rule", "matched", "wrong_root", "unexpected", "missed",
//! "failed_checks", "false_attributions", "precision", "recall"}` (null when
//! there is nothing to divide by). Incidents are in order of `opened_at`,
//! rules by name. A run is the FILEs, or one scenario of `--expected`.
//! Notification counts are per incident; an incident folded into another
//! keeps its own (announced, then closed), so a stage's total may exceed
//! the sum over the incidents listed.

mod diff;
mod expected;
mod notify;
mod output;
mod pair;

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use correlate::{EngineConfig, IncidentReport, Span};
use serde::Serialize;
use sinks::notify::policy::Policy;

use self::diff::{Entry, Found, Verdict};
use self::expected::{Scenario, Scores};
use self::notify::Sent;
use self::pair::{Pair, Side};
use crate::config::Config;
use crate::replay::{Replayer, open_inputs, parse_span, progress_bar};
use crate::rules_cmd::Loaded;

/// The word that names the built-in pack alone.
const BUILTIN: &str = "built-in";

#[derive(Debug, clap::Args)]
#[command(after_help = "\
A pack is a rule directory (over the built-in pack, as with `replay --rules`; \
alone with --no-builtin), or the word `built-in` for the built-in pack alone \
(a directory of that name is `./built-in`); repeat the flag to stack directories.

Input is record files (NDJSON, the shapes `replay` reads: what `serve` was fed, \
a recorder's dump, a Kafka topic dumped with kcat). `serve` keeps incident \
versions, not records: its history cannot be replayed, nor its journal (binary, \
Alertmanager deliveries only, deleted once checkpointed).

Exit status: 0; 1 when --fail-on finds what it names; 2 on a bad flag, an \
unreadable file or rules that do not load.")]
pub(crate) struct Args {
    /// OLD: a rule directory (repeatable), or `built-in`.
    #[arg(long = "rules", value_name = "OLD", required = true)]
    rules: Vec<PathBuf>,
    /// NEW: a rule directory (repeatable), or `built-in`.
    #[arg(long = "against", value_name = "NEW", required = true)]
    against: Vec<PathBuf>,
    /// Rule directories without the built-in pack beneath them (both sides;
    /// `built-in` still names it).
    #[arg(long)]
    no_builtin: bool,
    /// Configuration file: engine settings and the notification policy
    /// (`notify.throttle`, `notify.blast_radius_steps`); its `rules:` are
    /// not read.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Allowed lateness of records (overrides the config), e.g. `2m`.
    #[arg(long, value_parser = parse_span)]
    lateness: Option<Span>,
    /// Scenarios (a directory with expected.json and input.ndjson, or a
    /// directory of them): each is replayed on its own, and its expected
    /// incidents give precision, recall and false attributions per rule.
    #[arg(long, value_name = "DIR")]
    expected: Option<PathBuf>,
    /// Output: text for people, Markdown for a pull request comment, or
    /// one JSON document.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Exit 1 when any of these differences is found (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "KINDS")]
    fail_on: Vec<FailOn>,
    /// Input files (NDJSON); `-` reads standard input. Not with several
    /// scenarios: each reads its own input.ndjson.
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    Text,
    Markdown,
    Json,
}

/// A difference `--fail-on` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FailOn {
    /// An incident only OLD formed.
    Removed,
    /// An incident only NEW formed.
    New,
    /// An incident both formed, differently.
    Changed,
    /// An incident NEW detects later after its first record.
    Slower,
    /// A scenario of `--expected` that passes under OLD and fails under NEW.
    Failing,
}

impl FailOn {
    fn as_str(self) -> &'static str {
        match self {
            FailOn::Removed => "removed",
            FailOn::New => "new",
            FailOn::Changed => "changed",
            FailOn::Slower => "slower",
            FailOn::Failing => "failing",
        }
    }

    fn count(self, c: &Counts, expected: Option<&ExpectedReport>) -> usize {
        match self {
            FailOn::Removed => c.removed,
            FailOn::New => c.new,
            FailOn::Changed => c.changed,
            FailOn::Slower => c.slower,
            FailOn::Failing => expected.map_or(0, ExpectedReport::newly_failing),
        }
    }
}

/// A pack as the report names it.
#[derive(Debug, Serialize)]
pub(crate) struct PackInfo {
    packs: Vec<String>,
    signals: usize,
    correlations: usize,
    absences: usize,
    #[serde(skip)]
    described: String,
}

impl PackInfo {
    fn of(l: &Loaded) -> PackInfo {
        PackInfo {
            packs: l.packs.clone(),
            signals: l.rules.signals.len(),
            correlations: l.rules.correlations.len(),
            absences: l.rules.absences.len(),
            described: l.describe(),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct PolicyInfo {
    throttle_seconds: f64,
    blast_radius_steps: Vec<usize>,
}

/// One pack's numbers at each stage.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Stage {
    signals: u64,
    incidents: usize,
    notifications: Sent,
}

impl Stage {
    fn add(&mut self, o: &Stage) {
        self.signals += o.signals;
        self.incidents += o.incidents;
        self.notifications.add(o.notifications);
    }
}

/// How many incidents of each verdict.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Counts {
    removed: usize,
    new: usize,
    changed: usize,
    /// Changed incidents NEW detects later (counted in `changed` too).
    slower: usize,
    unchanged: usize,
}

impl Counts {
    fn of(entries: &[Entry]) -> Counts {
        let mut c = Counts::default();
        for e in entries {
            match e.verdict {
                Verdict::Removed => c.removed += 1,
                Verdict::New => c.new += 1,
                Verdict::Changed => c.changed += 1,
                Verdict::Unchanged => c.unchanged += 1,
            }
            if e.slower {
                c.slower += 1;
            }
        }
        c
    }

    fn add(&mut self, o: &Counts) {
        self.removed += o.removed;
        self.new += o.new;
        self.changed += o.changed;
        self.slower += o.slower;
        self.unchanged += o.unchanged;
    }

    fn differences(&self) -> usize {
        self.removed + self.new + self.changed
    }
}

/// The records of one run through both packs.
#[derive(Debug, Serialize)]
pub(crate) struct RunReport {
    name: String,
    inputs: Vec<String>,
    records: u64,
    old: Stage,
    new: Stage,
    counts: Counts,
    incidents: Vec<Entry>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Totals {
    records: u64,
    old: Stage,
    new: Stage,
    counts: Counts,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct ExpectedReport {
    scenarios: usize,
    #[serde(serialize_with = "output::scores")]
    old: Scores,
    #[serde(serialize_with = "output::scores")]
    new: Scores,
}

impl ExpectedReport {
    /// Scenarios OLD passes and NEW fails (both sides checked each
    /// scenario, in the same order).
    fn newly_failing(&self) -> usize {
        self.old
            .scenarios
            .iter()
            .zip(&self.new.scenarios)
            .filter(|(o, n)| o.passed && !n.passed)
            .count()
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct FailOnReport {
    kinds: Vec<FailOn>,
    triggered: Vec<FailOn>,
}

/// Everything a backtest found; printed by [`output`].
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    old: PackInfo,
    new: PackInfo,
    policy: PolicyInfo,
    runs: Vec<RunReport>,
    totals: Totals,
    #[serde(skip_serializing_if = "Option::is_none")]
    expected: Option<ExpectedReport>,
    fail_on: FailOnReport,
}

/// A pack from the values of `--rules` or `--against`; `Err` is exit 2,
/// with every error printed.
fn load_side(flag: &str, values: &[PathBuf], no_builtin: bool) -> Result<Loaded, ExitCode> {
    let named = values.iter().any(|v| v.as_os_str() == BUILTIN);
    let dirs: Vec<PathBuf> = values
        .iter()
        .filter(|v| v.as_os_str() != BUILTIN)
        .cloned()
        .collect();
    match crate::rules_cmd::load(&dirs, named || !no_builtin) {
        Ok(l) => Ok(l),
        Err(errors) => {
            eprintln!("epicenter: {flag}: the rules do not load:\n{errors}");
            Err(ExitCode::from(2))
        }
    }
}

/// One pass: the inputs, and the scenario they are checked against.
struct RunSpec<'a> {
    name: String,
    files: Vec<PathBuf>,
    scenario: Option<&'a Scenario>,
}

pub(crate) fn run(args: &Args) -> Result<ExitCode> {
    let config = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let old = match load_side("--rules", &args.rules, args.no_builtin) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let new = match load_side("--against", &args.against, args.no_builtin) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    for line in old.override_lines() {
        eprintln!("note: OLD: {line}");
    }
    for line in new.override_lines() {
        eprintln!("note: NEW: {line}");
    }
    let settings = config.serve.notify.policy.clone();
    let policy = Policy::new(settings);
    let mut engine_config: EngineConfig = config.engine;
    if let Some(l) = args.lateness {
        engine_config.lateness = l;
    }
    // Every incident is compared at the end: none may leave the engine.
    engine_config.retention = None;

    let scenarios = match &args.expected {
        Some(dir) => expected::scenarios(dir)?,
        None if args.fail_on.contains(&FailOn::Failing) => {
            bail!(
                "--fail-on failing compares verdicts on expected incidents: it needs --expected DIR"
            )
        }
        None => Vec::new(),
    };
    let runs: Vec<RunSpec<'_>> = match (scenarios.as_slice(), args.files.is_empty()) {
        ([], true) => bail!("no input: name the record files (FILE...), or --expected DIR"),
        ([], false) => vec![RunSpec {
            name: names(&args.files),
            files: args.files.clone(),
            scenario: None,
        }],
        ([one], false) => vec![RunSpec {
            name: one.name.clone(),
            files: args.files.clone(),
            scenario: Some(one),
        }],
        (many, true) => many
            .iter()
            .map(|s| RunSpec {
                name: s.name.clone(),
                files: vec![s.input.clone()],
                scenario: Some(s),
            })
            .collect(),
        (many, false) => bail!(
            "FILE... with --expected naming {} scenarios: each scenario reads its own input.ndjson; name no FILE",
            many.len()
        ),
    };
    // Every input must be there before anything is read.
    for r in &runs {
        for f in &r.files {
            if f.as_os_str() != "-" && !f.is_file() {
                bail!("{}: cannot open: no such file", f.display());
            }
        }
    }

    let mut report = Report {
        policy: PolicyInfo {
            throttle_seconds: policy.settings().throttle.as_secs_f64(),
            blast_radius_steps: policy.settings().blast_radius_steps.clone(),
        },
        old: PackInfo::of(&old),
        new: PackInfo::of(&new),
        runs: Vec::new(),
        totals: Totals {
            records: 0,
            old: Stage::default(),
            new: Stage::default(),
            counts: Counts::default(),
        },
        expected: args.expected.as_ref().map(|_| ExpectedReport::default()),
        fail_on: FailOnReport {
            kinds: Vec::new(),
            triggered: Vec::new(),
        },
    };
    let pair_config = (&old, &new, &engine_config, &policy);
    for spec in &runs {
        let (run, checked) = run_one(spec, pair_config)?;
        report.totals.records += run.records;
        report.totals.old.add(&run.old);
        report.totals.new.add(&run.new);
        report.totals.counts.add(&run.counts);
        if let (Some(e), Some((o, n))) = (report.expected.as_mut(), checked) {
            e.scenarios += 1;
            e.old.add(o);
            e.new.add(n);
        }
        report.runs.push(run);
    }

    let mut kinds = args.fail_on.clone();
    kinds.sort();
    kinds.dedup();
    report.fail_on.triggered = kinds
        .iter()
        .copied()
        .filter(|k| k.count(&report.totals.counts, report.expected.as_ref()) > 0)
        .collect();
    report.fail_on.kinds = kinds;

    let stdout = io::stdout();
    let colour = stdout.is_terminal();
    let text = match args.format {
        Format::Text => output::text(&report, colour),
        Format::Markdown => output::markdown(&report),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&report)?;
            s.push('\n');
            s
        }
    };
    let mut out = stdout.lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;

    if report.fail_on.triggered.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let found: Vec<String> = report
        .fail_on
        .triggered
        .iter()
        .map(|k| {
            let n = k.count(&report.totals.counts, report.expected.as_ref());
            format!("{n} {}", k.as_str())
        })
        .collect();
    let asked: Vec<&str> = report.fail_on.kinds.iter().map(|k| k.as_str()).collect();
    eprintln!(
        "epicenter: backtest failed (--fail-on {}): {}",
        asked.join(","),
        found.join(", ")
    );
    Ok(ExitCode::FAILURE)
}

/// The files of a run as one name.
fn names(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

type PairConfig<'a> = (&'a Loaded, &'a Loaded, &'a EngineConfig, &'a Policy);

/// Replays one run's inputs through both packs, once.
fn run_one(
    spec: &RunSpec<'_>,
    (old, new, engine_config, policy): PairConfig<'_>,
) -> Result<(RunReport, Option<(expected::Checked, expected::Checked)>)> {
    let inputs = open_inputs(&spec.files)?;
    let progress = progress_bar(&inputs);
    let mut replayer = Replayer::with(Pair::new(
        old.rules.clone(),
        new.rules.clone(),
        engine_config,
        policy,
    ));
    for (name, reader, _) in inputs {
        replayer.feed(&name, reader, progress.as_ref())?;
    }
    if let Some(p) = &progress {
        p.finish_and_clear();
    }
    let (mut pair, decoding, malformed) = replayer.into_parts();
    pair.finish();
    // Scenarios are many runs: say which.
    let run = spec
        .scenario
        .map(|s| format!("{}: ", s.name))
        .unwrap_or_default();
    if let Some(line) = malformed.summary() {
        eprintln!("epicenter: {run}{line}");
    }
    let guard = pair.old.clusters.guard_stats();
    if guard.clamped > 0 {
        eprintln!(
            "epicenter: {run}{} records dated more than {} ahead of the stream were processed at the stream's time (engine.max_ahead)",
            guard.clamped,
            pair.old.clusters.config().max_ahead.unwrap_or_default(),
        );
    }
    let d = decoding.stats();
    let records = d.lines.saturating_sub(d.blank + d.errors);

    let (old_found, old_stage) = found(&pair.old);
    let (new_found, new_stage) = found(&pair.new);
    let checked = spec
        .scenario
        .map(|s| (s.check(&reports(&old_found)), s.check(&reports(&new_found))));
    let incidents = diff::diff(old_found, new_found);
    Ok((
        RunReport {
            name: spec.name.clone(),
            inputs: spec.files.iter().map(|f| f.display().to_string()).collect(),
            records,
            old: old_stage,
            new: new_stage,
            counts: Counts::of(&incidents),
            incidents,
        },
        checked,
    ))
}

fn reports(found: &[Found]) -> Vec<&IncidentReport> {
    found.iter().map(|f| &f.report).collect()
}

/// A pack's incidents (in output order: `opened_at`, then id) and its
/// stage numbers.
fn found(side: &Side) -> (Vec<Found>, Stage) {
    let found: Vec<Found> = side
        .clusters
        .incidents()
        .into_iter()
        .map(|inc| Found::new(IncidentReport::new(inc), side.notifier.sent(&inc.id)))
        .collect();
    let stage = Stage {
        signals: side.clusters.stats().signals,
        incidents: found.len(),
        notifications: side.notifier.total(),
    };
    (found, stage)
}
