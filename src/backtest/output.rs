//! A backtest's [`Report`] for people: text for a terminal (colour only
//! when stdout is one) and Markdown for a pull request comment. Both say
//! the same, in the same order: the packs, then per run the summary, the
//! removed, new and changed incidents, the stages and the detection delay
//! of every incident, then the scores against the expected incidents. The
//! JSON form is the report itself (see the module doc of `backtest`).

use std::fmt::Write as _;

use correlate::Span;
use serde::{Serialize, Serializer};
use sinks::render::{clean, entity_label};

use super::diff::{Changes, Entry, Found, Verdict, key};
use super::expected::{NO_RULE, Scores, Tally};
use super::{Counts, Report, RunReport, Stage};

/// A duration as people read it: `450ms`, `45s`, `1m15s`, `2h3m`.
fn dur(span: Span) -> String {
    let us = span.as_micros();
    let sign = if us < 0 { "-" } else { "" };
    let abs = us.unsigned_abs();
    if abs != 0 && abs < 1_000_000 {
        return format!("{sign}{}ms", abs / 1000);
    }
    let abs = Span::from_micros(i64::try_from(abs).unwrap_or(i64::MAX));
    format!("{sign}{abs}")
}

fn shift(s: Span) -> String {
    if s.as_micros() > 0 {
        format!("opened {} later", dur(s))
    } else {
        format!(
            "opened {} earlier",
            dur(Span::from_micros(s.as_micros().saturating_neg()))
        )
    }
}

fn ratio(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.2}"))
}

/// ANSI styles, or nothing.
#[derive(Clone, Copy)]
struct Paint(bool);

impl Paint {
    fn wrap(self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn bold(self, s: &str) -> String {
        self.wrap("1", s)
    }
    fn red(self, s: &str) -> String {
        self.wrap("31", s)
    }
    fn green(self, s: &str) -> String {
        self.wrap("32", s)
    }
    fn yellow(self, s: &str) -> String {
        self.wrap("33", s)
    }
}

/// Columns padded to their widest cell, two spaces apart; `right` marks
/// the columns aligned right.
fn table(rows: &[Vec<String>], right: &[bool], indent: &str) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::from(indent);
        for (i, c) in r.iter().enumerate() {
            let pad = widths[i].saturating_sub(c.chars().count());
            if i > 0 {
                line.push_str("  ");
            }
            if right.get(i).copied().unwrap_or(false) {
                line.push_str(&" ".repeat(pad));
                line.push_str(c);
            } else {
                line.push_str(c);
                if i + 1 < r.len() {
                    line.push_str(&" ".repeat(pad));
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn summary(c: &Counts, total: usize) -> String {
    if c.differences() == 0 {
        return format!(
            "No differences: {total} {} the same under both packs.",
            if total == 1 {
                "incident,"
            } else {
                "incidents,"
            }
        );
    }
    format!(
        "{} removed, {} new, {} changed ({} slower), {} unchanged",
        c.removed, c.new, c.changed, c.slower, c.unchanged
    )
}

fn stage_arrows(records: u64, s: &Stage) -> String {
    format!(
        "{records} -> {} -> {} -> {}",
        s.signals,
        s.incidents,
        s.notifications.total()
    )
}

/// What differs, one phrase per line.
fn change_lines(c: &Changes) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(d) = &c.delay {
        let mut s = format!(
            "detection delay {} -> {}{}",
            dur(d.old),
            dur(d.new),
            if d.new > d.old {
                " (slower)"
            } else {
                " (faster)"
            }
        );
        if let Some(sh) = c.opened_shift {
            s.push_str("; ");
            s.push_str(&shift(sh));
        }
        v.push(s);
    } else if let Some(sh) = c.opened_shift {
        v.push(shift(sh));
    }
    if let Some(t) = &c.title {
        v.push(format!(
            "title: \"{}\" -> \"{}\"",
            clean(&t.old),
            clean(&t.new)
        ));
    }
    if let Some(s) = &c.severity {
        v.push(format!("severity {} -> {}", s.old.as_str(), s.new.as_str()));
    }
    if let Some(s) = &c.status {
        v.push(format!("status {} -> {}", status(s.old), status(s.new)));
    }
    if let Some(r) = &c.root {
        v.push(format!(
            "root {} -> {}",
            entity_label(&r.old),
            entity_label(&r.new)
        ));
    }
    if !c.affected_added.is_empty() || !c.affected_removed.is_empty() {
        let mut parts = Vec::new();
        if !c.affected_added.is_empty() {
            parts.push(format!(
                "+{} ({})",
                c.affected_added.len(),
                capped(&c.affected_added)
            ));
        }
        if !c.affected_removed.is_empty() {
            parts.push(format!(
                "-{} ({})",
                c.affected_removed.len(),
                capped(&c.affected_removed)
            ));
        }
        v.push(format!("blast radius {}", parts.join(", ")));
    }
    if let Some(n) = &c.notifications {
        v.push(format!(
            "notifications {} -> {}",
            n.old.describe(),
            n.new.describe()
        ));
    }
    v
}

fn capped(names: &[String]) -> String {
    let cleaned: Vec<String> = names.iter().map(|n| clean(n)).collect();
    sinks::render::capped(&cleaned, 5)
}

fn status(s: correlate::Status) -> &'static str {
    match s {
        correlate::Status::Pending => "pending",
        correlate::Status::Firing => "firing",
        correlate::Status::Resolved => "resolved",
    }
}

/// "opened ..., 26s after its first record; 4 affected; notifications: ...".
fn facts(f: &Found) -> String {
    format!(
        "opened {}, {} after its first record; {} affected; notifications: {}",
        f.opened_at,
        dur(f.delay),
        f.affected.len(),
        f.notifications.describe()
    )
}

fn delay_or_dash(f: Option<&Found>) -> String {
    f.map_or_else(|| "-".to_string(), |f| dur(f.delay))
}

/// The rules of both packs' scores, by name, `(none)` last.
fn score_rules(old: &Scores, new: &Scores) -> Vec<String> {
    let mut rules: Vec<String> = old.rules.keys().chain(new.rules.keys()).cloned().collect();
    rules.sort();
    rules.dedup();
    if let Some(i) = rules.iter().position(|r| r == NO_RULE) {
        let none = rules.remove(i);
        rules.push(none);
    }
    rules
}

fn score_cells(t: Option<&Tally>) -> [String; 3] {
    match t {
        Some(t) => [
            ratio(t.precision()),
            ratio(t.recall()),
            t.false_attributions.to_string(),
        ],
        None => ["-".to_string(), "-".to_string(), "-".to_string()],
    }
}

// ------------------------------------------------------------------ text

/// The report as plain text; `colour` adds ANSI styles.
pub(crate) fn text(r: &Report, colour: bool) -> String {
    let p = Paint(colour);
    let mut o = String::new();
    let _ = writeln!(o, "OLD: {}", r.old.described);
    let _ = writeln!(o, "NEW: {}", r.new.described);
    let _ = writeln!(
        o,
        "Notifications: the policy with throttle {}, blast radius steps {}",
        dur(Span::from_micros(
            (r.policy.throttle_seconds * 1e6).round() as i64
        )),
        join_steps(&r.policy.blast_radius_steps)
    );
    let single = r.runs.len() == 1;
    for run in &r.runs {
        o.push('\n');
        if single {
            let _ = writeln!(
                o,
                "Input: {} ({} records)",
                run.inputs.join(", "),
                run.records
            );
        } else {
            let _ = writeln!(
                o,
                "{}",
                p.bold(&format!("== {} ({} records)", run.name, run.records))
            );
        }
        text_run(&mut o, run, single, p);
    }
    if !single {
        o.push('\n');
        let _ = writeln!(
            o,
            "{}",
            p.bold(&format!("Total over {} runs", r.runs.len()))
        );
        let total = r.totals.counts.differences() + r.totals.counts.unchanged;
        let _ = writeln!(o, "{}", summary(&r.totals.counts, total));
        let _ = writeln!(
            o,
            "Stages (records -> signals -> incidents -> notifications):"
        );
        let mut rows = vec![vec![
            "run".to_string(),
            "OLD".to_string(),
            "NEW".to_string(),
        ]];
        for run in &r.runs {
            rows.push(vec![
                run.name.clone(),
                stage_arrows(run.records, &run.old),
                stage_arrows(run.records, &run.new),
            ]);
        }
        rows.push(vec![
            "total".to_string(),
            stage_arrows(r.totals.records, &r.totals.old),
            stage_arrows(r.totals.records, &r.totals.new),
        ]);
        o.push_str(&table(&rows, &[], "  "));
    }
    if let Some(e) = &r.expected {
        o.push('\n');
        let _ = writeln!(
            o,
            "{}",
            p.bold(&format!(
                "Expected incidents ({} {}, matched as check.py matches them)",
                e.scenarios,
                if e.scenarios == 1 {
                    "scenario"
                } else {
                    "scenarios"
                }
            ))
        );
        let _ = writeln!(
            o,
            "Scenarios that pass: OLD {} of {}, NEW {} of {}",
            e.old.passed(),
            e.scenarios,
            e.new.passed(),
            e.scenarios
        );
        let mut rows = vec![vec![
            "rule".to_string(),
            "OLD precision".to_string(),
            "recall".to_string(),
            "false".to_string(),
            "NEW precision".to_string(),
            "recall".to_string(),
            "false".to_string(),
        ]];
        for rule in score_rules(&e.old, &e.new) {
            let mut row = vec![rule.clone()];
            row.extend(score_cells(e.old.rules.get(&rule)));
            row.extend(score_cells(e.new.rules.get(&rule)));
            rows.push(row);
        }
        let mut all = vec!["all".to_string()];
        all.extend(score_cells(Some(&e.old.all)));
        all.extend(score_cells(Some(&e.new.all)));
        rows.push(all);
        o.push_str(&table(
            &rows,
            &[false, true, true, true, true, true, true],
            "  ",
        ));
        let _ = writeln!(
            o,
            "  (false: affected entities of matched incidents the expectation neither requires nor allows)"
        );
        for (side, scores) in [("OLD", &e.old), ("NEW", &e.new)] {
            for c in scores.scenarios.iter().filter(|c| !c.passed) {
                let _ = writeln!(o, "{side} fails {}:", c.scenario);
                for reason in &c.reasons {
                    let _ = writeln!(o, "  - {}", clean(reason));
                }
            }
        }
    }
    o
}

fn join_steps(steps: &[usize]) -> String {
    if steps.is_empty() {
        return "none".to_string();
    }
    steps
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Notifications about incidents folded into others: the stage's total
/// less those of the incidents listed.
fn folded(run: &RunReport, stage: &Stage, side: impl Fn(&Entry) -> Option<&Found>) -> u32 {
    let listed: u32 = run
        .incidents
        .iter()
        .filter_map(&side)
        .map(|f| f.notifications.total())
        .sum();
    stage.notifications.total().saturating_sub(listed)
}

fn text_run(o: &mut String, run: &RunReport, single: bool, p: Paint) {
    let _ = writeln!(o, "{}", summary(&run.counts, run.incidents.len()));
    for (verdict, heading) in [
        (Verdict::Removed, p.red("Removed (only in OLD):")),
        (Verdict::New, p.green("New (only in NEW):")),
    ] {
        let list: Vec<&Entry> = run
            .incidents
            .iter()
            .filter(|e| e.verdict == verdict)
            .collect();
        if list.is_empty() {
            continue;
        }
        o.push('\n');
        let _ = writeln!(o, "{heading}");
        for e in list {
            let Some(f) = e.latest() else { continue };
            let _ = writeln!(
                o,
                "  - {}: {} ({}, {})",
                f.rule,
                entity_label(&f.root),
                f.severity.as_str(),
                status(f.status)
            );
            let _ = writeln!(o, "    {}", clean(&f.title));
            let _ = writeln!(o, "    {}", facts(f));
        }
    }
    let changed: Vec<&Entry> = run
        .incidents
        .iter()
        .filter(|e| e.verdict == Verdict::Changed)
        .collect();
    if !changed.is_empty() {
        o.push('\n');
        let _ = writeln!(o, "{}", p.yellow("Changed:"));
        for e in changed {
            let Some(f) = e.latest() else { continue };
            let _ = writeln!(
                o,
                "  - {}: {}{}",
                f.rule,
                entity_label(&f.root),
                if e.slower { " (slower)" } else { "" }
            );
            for line in change_lines(&e.changes) {
                let _ = writeln!(o, "    {line}");
            }
        }
    }
    if single {
        o.push('\n');
        let _ = writeln!(
            o,
            "Stages (records -> signals -> incidents -> notifications):"
        );
        let row = |side: &str, stage: &Stage, folded: u32| {
            let mut v = vec![side.to_string(), stage_arrows(run.records, stage)];
            if folded > 0 {
                v.push(format!("({folded} about incidents folded into these)"));
            }
            v
        };
        o.push_str(&table(
            &[
                row("OLD", &run.old, folded(run, &run.old, |e| e.old.as_ref())),
                row("NEW", &run.new, folded(run, &run.new, |e| e.new.as_ref())),
            ],
            &[],
            "  ",
        ));
    }
    if !run.incidents.is_empty() {
        o.push('\n');
        let _ = writeln!(o, "Detection delay (opened_at - first_seen):");
        let mut rows = vec![vec![
            "rule".to_string(),
            "root".to_string(),
            "OLD".to_string(),
            "NEW".to_string(),
        ]];
        for e in &run.incidents {
            let Some(f) = e.latest() else { continue };
            rows.push(vec![
                f.rule.clone(),
                clean(&key(&f.root)),
                delay_or_dash(e.old.as_ref()),
                delay_or_dash(e.new.as_ref()),
            ]);
        }
        o.push_str(&table(&rows, &[false, false, true, true], "  "));
    }
}

// ------------------------------------------------------------------ Markdown

/// Markdown text: the characters that would format escaped.
fn md(s: &str) -> String {
    let s = clean(s);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn md_row(cells: &[String]) -> String {
    format!("| {} |\n", cells.join(" | "))
}

fn md_table(head: &[&str], right: &[bool], rows: &[Vec<String>]) -> String {
    let mut out = md_row(&head.iter().map(|h| (*h).to_string()).collect::<Vec<_>>());
    let sep: Vec<String> = (0..head.len())
        .map(|i| {
            if right.get(i).copied().unwrap_or(false) {
                "---:".to_string()
            } else {
                "---".to_string()
            }
        })
        .collect();
    out.push_str(&md_row(&sep));
    for r in rows {
        out.push_str(&md_row(r));
    }
    out
}

/// The report as Markdown, for a pull request comment.
pub(crate) fn markdown(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "### epicenter backtest\n");
    let _ = writeln!(o, "- **OLD**: {}", md(&r.old.described));
    let _ = writeln!(o, "- **NEW**: {}", md(&r.new.described));
    let _ = writeln!(
        o,
        "- **Notifications**: the policy with throttle {}, blast radius steps {}",
        dur(Span::from_micros(
            (r.policy.throttle_seconds * 1e6).round() as i64
        )),
        join_steps(&r.policy.blast_radius_steps)
    );
    let single = r.runs.len() == 1;
    if let [run] = r.runs.as_slice() {
        let _ = writeln!(
            o,
            "- **Input**: {} ({} records)",
            run.inputs
                .iter()
                .map(|i| format!("`{}`", i.replace('`', "'")))
                .collect::<Vec<_>>()
                .join(", "),
            run.records
        );
    }
    o.push('\n');
    let total = r.totals.counts.differences() + r.totals.counts.unchanged;
    let _ = writeln!(o, "**{}**\n", summary(&r.totals.counts, total));
    if single {
        if let Some(run) = r.runs.first() {
            o.push_str(&md_table(
                &["", "records", "signals", "incidents", "notifications"],
                &[false, true, true, true, true],
                &[
                    md_stage("OLD", run.records, &run.old),
                    md_stage("NEW", run.records, &run.new),
                ],
            ));
        }
    } else {
        let mut rows: Vec<Vec<String>> = r
            .runs
            .iter()
            .map(|run| {
                vec![
                    md(&run.name),
                    diffs(&run.counts),
                    run.records.to_string(),
                    stage_arrows(run.records, &run.old).replace("->", "→"),
                    stage_arrows(run.records, &run.new).replace("->", "→"),
                ]
            })
            .collect();
        rows.push(vec![
            "**total**".to_string(),
            diffs(&r.totals.counts),
            r.totals.records.to_string(),
            stage_arrows(r.totals.records, &r.totals.old).replace("->", "→"),
            stage_arrows(r.totals.records, &r.totals.new).replace("->", "→"),
        ]);
        o.push_str(&md_table(
            &[
                "run",
                "differences",
                "records",
                "OLD: signals → incidents → notifications",
                "NEW",
            ],
            &[false, false, true, false, false],
            &rows,
        ));
    }
    for run in &r.runs {
        md_run(&mut o, run, single);
    }
    if let Some(e) = &r.expected {
        let _ = writeln!(
            o,
            "\n#### Expected incidents\n\n{} {}, matched as check.py matches them. Scenarios that pass: OLD {} of {}, NEW {} of {}.\n",
            e.scenarios,
            if e.scenarios == 1 {
                "scenario"
            } else {
                "scenarios"
            },
            e.old.passed(),
            e.scenarios,
            e.new.passed(),
            e.scenarios
        );
        let mut rows = Vec::new();
        for rule in score_rules(&e.old, &e.new) {
            let mut row = vec![format!("`{rule}`")];
            row.extend(score_cells(e.old.rules.get(&rule)));
            row.extend(score_cells(e.new.rules.get(&rule)));
            rows.push(row);
        }
        let mut all = vec!["**all**".to_string()];
        all.extend(score_cells(Some(&e.old.all)));
        all.extend(score_cells(Some(&e.new.all)));
        rows.push(all);
        o.push_str(&md_table(
            &[
                "rule",
                "OLD precision",
                "OLD recall",
                "OLD false attributions",
                "NEW precision",
                "NEW recall",
                "NEW false attributions",
            ],
            &[false, true, true, true, true, true, true],
            &rows,
        ));
        for (side, scores) in [("OLD", &e.old), ("NEW", &e.new)] {
            for c in scores.scenarios.iter().filter(|c| !c.passed) {
                let _ = writeln!(o, "\n{side} fails `{}`:\n", c.scenario.replace('`', "'"));
                for reason in &c.reasons {
                    let _ = writeln!(o, "- {}", md(reason.trim()));
                }
            }
        }
    }
    o
}

fn diffs(c: &Counts) -> String {
    if c.differences() == 0 {
        return "none".to_string();
    }
    let mut v = Vec::new();
    for (n, what) in [
        (c.removed, "removed"),
        (c.new, "new"),
        (c.changed, "changed"),
        (c.slower, "slower"),
    ] {
        if n > 0 {
            v.push(format!("{n} {what}"));
        }
    }
    v.join(", ")
}

fn md_stage(side: &str, records: u64, s: &Stage) -> Vec<String> {
    vec![
        format!("**{side}**"),
        records.to_string(),
        s.signals.to_string(),
        s.incidents.to_string(),
        s.notifications.total().to_string(),
    ]
}

fn md_found_row(f: &Found) -> Vec<String> {
    vec![
        format!("`{}`", f.rule),
        md(&key(&f.root)),
        f.severity.as_str().to_string(),
        md(&f.title),
        dur(f.delay),
        f.notifications.describe(),
    ]
}

fn md_run(o: &mut String, run: &RunReport, single: bool) {
    if !single {
        if run.counts.differences() == 0 {
            return;
        }
        let _ = writeln!(o, "\n#### {}", md(&run.name));
    }
    for (verdict, heading) in [
        (Verdict::Removed, "Removed (only in OLD)"),
        (Verdict::New, "New (only in NEW)"),
    ] {
        let rows: Vec<Vec<String>> = run
            .incidents
            .iter()
            .filter(|e| e.verdict == verdict)
            .filter_map(Entry::latest)
            .map(md_found_row)
            .collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(o, "\n**{heading}**\n");
        o.push_str(&md_table(
            &[
                "rule",
                "root",
                "severity",
                "title",
                "detection delay",
                "notifications",
            ],
            &[false, false, false, false, true, false],
            &rows,
        ));
    }
    let rows: Vec<Vec<String>> = run
        .incidents
        .iter()
        .filter(|e| e.verdict == Verdict::Changed)
        .filter_map(|e| {
            let f = e.latest()?;
            let what = change_lines(&e.changes)
                .iter()
                .map(|l| {
                    md(l)
                        .replace(" -\\> ", " → ")
                        .replace(" (slower)", " (**slower**)")
                })
                .collect::<Vec<_>>()
                .join("<br>");
            Some(vec![format!("`{}`", f.rule), md(&key(&f.root)), what])
        })
        .collect();
    if !rows.is_empty() {
        let _ = writeln!(o, "\n**Changed**\n");
        o.push_str(&md_table(&["rule", "root", "what changed"], &[], &rows));
    }
    if single && !run.incidents.is_empty() {
        let rows: Vec<Vec<String>> = run
            .incidents
            .iter()
            .filter_map(|e| {
                let f = e.latest()?;
                Some(vec![
                    format!("`{}`", f.rule),
                    md(&key(&f.root)),
                    delay_or_dash(e.old.as_ref()),
                    delay_or_dash(e.new.as_ref()),
                ])
            })
            .collect();
        let _ = writeln!(
            o,
            "\n<details><summary>Detection delay per incident (opened_at − first_seen)</summary>\n"
        );
        o.push_str(&md_table(
            &["rule", "root", "OLD", "NEW"],
            &[false, false, true, true],
            &rows,
        ));
        let _ = writeln!(o, "\n</details>");
    }
}

// ------------------------------------------------------------------ JSON

/// A rule's tally with its precision and recall.
#[derive(Serialize)]
struct RuleRow<'a> {
    rule: &'a str,
    #[serde(flatten)]
    tally: &'a Tally,
    precision: Option<f64>,
    recall: Option<f64>,
}

impl<'a> RuleRow<'a> {
    fn new(rule: &'a str, tally: &'a Tally) -> RuleRow<'a> {
        RuleRow {
            rule,
            tally,
            precision: tally.precision(),
            recall: tally.recall(),
        }
    }
}

/// `{"rules": [RULE...], "all": RULE, "scenarios": [...]}`.
pub(crate) fn scores<S: Serializer>(s: &Scores, ser: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Shape<'a> {
        rules: Vec<RuleRow<'a>>,
        all: RuleRow<'a>,
        scenarios: &'a [super::expected::Checked],
    }
    Shape {
        rules: s
            .rules
            .iter()
            .map(|(rule, t)| RuleRow::new(rule, t))
            .collect(),
        all: RuleRow::new("all", &s.all),
        scenarios: &s.scenarios,
    }
    .serialize(ser)
}
