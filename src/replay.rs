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
use ingest::{Decoded, Decoder, Limits, Lines};
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
        }
    }

    /// Reads every line of `reader`; a read error ends this input with Err.
    pub(crate) fn feed(
        &mut self,
        name: &str,
        reader: impl BufRead,
        progress: Option<&indicatif::ProgressBar>,
    ) -> Result<()> {
        let file = self.files;
        self.files += 1;
        let mut lines = Lines::new(reader);
        let mut events: Vec<Event<'static>> = Vec::with_capacity(8);
        while let Some(next) = lines.next_line() {
            match next {
                Err(e) if e.is_fatal() => {
                    return Err(e).with_context(|| format!("{name}: read failed"));
                }
                Err(e) => self.malformed.report(name, e.line(), &e),
                Ok((n, line)) => {
                    self.bytes += line.len() as u64 + 1;
                    if let Some(p) = progress
                        && n % 4096 == 0
                    {
                        p.set_position(self.bytes);
                    }
                    let mut evs = recycle(std::mem::take(&mut events));
                    match self
                        .decoder
                        .decode(line, Origin { file, line: n }, &mut evs)
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
                        Err(e) => self.malformed.report(name, n, &e),
                    }
                    events = recycle(evs);
                }
            }
        }
        Ok(())
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
