//! `epicenter replay`: files in, incidents out, with event time from the
//! records. The contract is ../shared/contract/replay.md.

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use correlate::rules::RuleSet;
use correlate::{Engine, EngineConfig, Event, IncidentReport, Origin, Span};
use ingest::{Decoded, Decoder, Limits, Lines, Parsed};
use sinks::ndjson::NdjsonSink;

use crate::config::Config;
use crate::rules_cmd;

/// How many malformed lines are shown before only counting.
const SHOWN_ERRORS: u64 = 20;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Rule directory (repeatable; default: the built-in rule pack).
    #[arg(long = "rules", value_name = "DIR")]
    rules: Vec<PathBuf>,
    /// Configuration file (rules, engine limits).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Allowed lateness of records (overrides the config), e.g. `2m`.
    #[arg(long, value_parser = parse_span)]
    lateness: Option<Span>,
    /// Print throughput and engine counters on stderr at the end.
    #[arg(long)]
    stats: bool,
    /// Input files (NDJSON); `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

fn parse_span(s: &str) -> Result<Span, String> {
    Span::parse(s).ok_or_else(|| format!("`{s}` is not a duration (e.g. 90s, 2m)"))
}

/// Malformed input: counted, the first few shown with file:line.
#[derive(Debug, Default)]
pub(crate) struct Malformed {
    pub(crate) count: u64,
    pub(crate) shown: Vec<String>,
}

impl Malformed {
    fn report(&mut self, file: &str, line: u64, what: &dyn std::fmt::Display) {
        self.count += 1;
        if self.count <= SHOWN_ERRORS {
            let msg = format!("{file}:{line}: {what}");
            eprintln!("epicenter: skipped {msg}");
            self.shown.push(msg);
        }
    }
}

/// Decoder and engine, fed file by file.
#[derive(Debug)]
pub(crate) struct Replayer {
    decoder: Decoder,
    engine: Engine,
    pub(crate) malformed: Malformed,
    pub(crate) bytes: u64,
    files: u32,
    /// A spare allocation for the events of one line.
    events: Vec<Event<'static>>,
}

/// Lines read at a time: one batch is parsed while the previous one is
/// interpreted.
const BATCH: usize = 2048;

/// A batch of input lines; the strings are reused from batch to batch.
#[derive(Debug, Default)]
struct Batch {
    lines: Vec<(u64, String)>,
    len: usize,
    /// Lines that could not be read (not UTF-8, too long), by line number.
    unreadable: Vec<(u64, ingest::LineError)>,
}

impl Batch {
    /// Reads up to [`BATCH`] lines; `Ok(false)` once the input is exhausted.
    fn fill(&mut self, lines: &mut Lines<impl BufRead>) -> Result<bool, ingest::LineError> {
        self.len = 0;
        self.unreadable.clear();
        while self.len < BATCH {
            match lines.next_line() {
                None => return Ok(false),
                Some(Err(e)) if e.is_fatal() => return Err(e),
                Some(Err(e)) => self.unreadable.push((e.line(), e)),
                Some(Ok((n, text))) => {
                    if self.len == self.lines.len() {
                        self.lines.push((0, String::new()));
                    }
                    let slot = &mut self.lines[self.len];
                    slot.0 = n;
                    slot.1.clear();
                    slot.1.push_str(text);
                    self.len += 1;
                }
            }
        }
        Ok(true)
    }

    fn lines(&self) -> &[(u64, String)] {
        &self.lines[..self.len]
    }

    fn is_empty(&self) -> bool {
        self.len == 0 && self.unreadable.is_empty()
    }

    fn clear(&mut self) {
        self.len = 0;
        self.unreadable.clear();
    }
}

/// Parses the JSON of a batch's lines.
fn parse_slice(lines: &[(u64, String)]) -> Vec<ingest::Result<Parsed<'_>>> {
    lines.iter().map(|(_, l)| ingest::parse(l)).collect()
}

/// Reuses a vector's allocation for events borrowing from the next line.
fn recycle<'b>(mut v: Vec<Event<'_>>) -> Vec<Event<'b>> {
    v.clear();
    v.into_iter()
        .map(|_| unreachable!("the vector is empty"))
        .collect()
}

impl Replayer {
    pub(crate) fn new(rules: Arc<RuleSet>, config: EngineConfig) -> Replayer {
        Replayer {
            decoder: Decoder::new(Limits::default()),
            engine: Engine::new(rules, config),
            malformed: Malformed::default(),
            bytes: 0,
            files: 0,
            events: Vec::with_capacity(8),
        }
    }

    /// Reads every line of `reader`; a read error ends this input with Err.
    /// Reads `reader` to the end. Two batches alternate: while one core
    /// interprets and correlates batch k in order, the other parses the JSON
    /// of batch k+1 (the stateless, costly half of decoding).
    pub(crate) fn feed(
        &mut self,
        name: &str,
        reader: impl BufRead,
        progress: Option<&indicatif::ProgressBar>,
    ) -> Result<()> {
        let file = self.files;
        self.files += 1;
        let mut lines = Lines::new(reader);
        let read_failed = || format!("{name}: read failed");
        let (mut a, mut b) = (Batch::default(), Batch::default());
        let mut more = a.fill(&mut lines).with_context(read_failed)?;
        let mut parsed_a = parse_slice(a.lines());
        loop {
            if more {
                more = b.fill(&mut lines).with_context(read_failed)?;
            } else {
                b.clear();
            }
            let parsed_b = self.overlap(name, file, &a, parsed_a, &b);
            if let Some(p) = progress {
                p.set_position(self.bytes);
            }
            if b.is_empty() {
                return Ok(());
            }
            if more {
                more = a.fill(&mut lines).with_context(read_failed)?;
            } else {
                a.clear();
            }
            parsed_a = self.overlap(name, file, &b, parsed_b, &a);
            if a.is_empty() {
                return Ok(());
            }
        }
    }

    /// Interprets `current` (already parsed) while `next` is parsed on another
    /// thread; returns the parse of `next`.
    fn overlap<'n>(
        &mut self,
        name: &str,
        file: u32,
        current: &Batch,
        parsed: Vec<ingest::Result<Parsed<'_>>>,
        next: &'n Batch,
    ) -> Vec<ingest::Result<Parsed<'n>>> {
        if next.is_empty() {
            self.interpret(name, file, current, parsed);
            return Vec::new();
        }
        std::thread::scope(|s| {
            let parsing = s.spawn(|| parse_slice(next.lines()));
            self.interpret(name, file, current, parsed);
            match parsing.join() {
                Ok(next_parsed) => next_parsed,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Decodes and correlates a parsed batch, in line order.
    fn interpret(
        &mut self,
        name: &str,
        file: u32,
        batch: &Batch,
        parsed: Vec<ingest::Result<Parsed<'_>>>,
    ) {
        let mut unreadable = batch.unreadable.iter().peekable();
        let mut events: Vec<Event<'static>> = std::mem::take(&mut self.events);
        for ((n, line), parsed) in batch.lines().iter().zip(parsed) {
            while let Some((_, e)) = unreadable.next_if(|(at, _)| at < n) {
                self.malformed.report(name, e.line(), e);
            }
            self.bytes += line.len() as u64 + 1;
            let mut evs = recycle(events);
            match self
                .decoder
                .interpret(parsed, Origin { file, line: *n }, &mut evs)
            {
                // No event, but the record's time still moves the watermark.
                Ok(Decoded::Duplicate { time } | Decoded::Unchanged { time }) => {
                    self.engine.observe(time);
                }
                Ok(_) => {
                    for ev in &evs {
                        self.engine.push(ev);
                    }
                }
                Err(e) => self.malformed.report(name, *n, &e),
            }
            events = recycle(evs);
        }
        for (_, e) in unreadable {
            self.malformed.report(name, e.line(), e);
        }
        self.events = events;
    }

    pub(crate) fn finish(mut self) -> (Engine, Decoder, Malformed) {
        self.engine.finish();
        (self.engine, self.decoder, self.malformed)
    }
}

pub(crate) fn run(args: &Args) -> Result<ExitCode> {
    let config = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let mut rule_dirs = config.rules.clone();
    rule_dirs.extend(args.rules.iter().cloned());
    let rules = match rules_cmd::load(&rule_dirs) {
        Ok(r) => r,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::from(2));
        }
    };
    let mut engine_config = config.engine;
    if let Some(l) = args.lateness {
        engine_config.lateness = l;
    }

    // Every file must open before anything is read: a typo is exit 2, not a
    // partial replay.
    let mut inputs: Vec<(String, Box<dyn BufRead>, u64)> = Vec::new();
    for path in &args.files {
        if path.as_os_str() == "-" {
            inputs.push(("-".to_string(), Box::new(io::stdin().lock()), 0));
            continue;
        }
        let f = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        inputs.push((
            path.display().to_string(),
            Box::new(BufReader::with_capacity(1 << 20, f)),
            len,
        ));
    }

    let total: u64 = inputs.iter().map(|(_, _, l)| l).sum();
    let progress = (io::stderr().is_terminal() && total > 32 << 20).then(|| {
        let p = indicatif::ProgressBar::new(total);
        p.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        p
    });

    let started = Instant::now();
    let mut replayer = Replayer::new(rules, engine_config);
    for (name, reader, _) in inputs {
        replayer.feed(&name, reader, progress.as_ref())?;
    }
    if let Some(p) = &progress {
        p.finish_and_clear();
    }
    let bytes = replayer.bytes;
    let (engine, decoder, malformed) = replayer.finish();
    let elapsed = started.elapsed();

    let stdout = io::stdout();
    let mut sink = NdjsonSink::new(io::BufWriter::new(stdout.lock()));
    for inc in engine.incidents() {
        sink.write(&IncidentReport::new(inc))?;
    }
    sink.finish()?.flush()?;

    if malformed.count > SHOWN_ERRORS {
        eprintln!(
            "epicenter: {} malformed lines skipped ({} shown)",
            malformed.count, SHOWN_ERRORS
        );
    } else if malformed.count > 0 {
        eprintln!("epicenter: {} malformed lines skipped", malformed.count);
    }
    if args.stats {
        let s = engine.stats();
        let secs = elapsed.as_secs_f64().max(1e-9);
        eprintln!(
            "epicenter: {} records ({:.0}/s, {:.1} MiB/s) in {:.2}s; {} signals, {} late, {} released early, {} unattached effects, {} evicted; decode: {:?}; gauges: {:?}",
            s.records,
            s.records as f64 / secs,
            bytes as f64 / secs / (1 << 20) as f64,
            secs,
            s.signals,
            s.late,
            s.released_early,
            s.unattached_effects,
            s.evicted_effects,
            decoder.stats(),
            engine.gauges()
        );
    }
    Ok(ExitCode::SUCCESS)
}
