//! `epicenter replay`: files in, incidents out, with event time from the
//! records. The contract is ../shared/contract/replay.md.

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, mpsc};
use std::time::Instant;

use anyhow::{Context, Result};
use correlate::incident::Change;
use correlate::rules::RuleSet;
use correlate::{
    Clusters, Engine, EngineConfig, Event, EventTime, IncidentReport, Lane, Origin, Span, Status,
};
use ingest::{Decoded, Lines, Parsed};

use crate::config;
use crate::decoding::Decoding;
use crate::record::HistoryRecorder;

/// How many malformed lines are shown before only counting.
const SHOWN_ERRORS: u64 = 20;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Rule directory (repeatable): added after the built-in pack (and the
    /// config's `rules:`); a rule of the same id replaces the earlier one.
    #[arg(long = "rules", value_name = "DIR")]
    rules: Vec<PathBuf>,
    /// Leave the built-in rule pack out: only the named directories.
    #[arg(long)]
    no_builtin: bool,
    /// Configuration file (rules, engine limits).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Allowed lateness of records (overrides the config), e.g. `2m`.
    #[arg(long, value_parser = parse_span)]
    lateness: Option<Span>,
    /// Print throughput and engine counters on stderr at the end.
    #[arg(long)]
    stats: bool,
    /// Output format: one JSON line per incident (the contract), or each
    /// incident rendered for people (text, markdown).
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// Also write every incident version to the incident history in DIR
    /// (Parquet; query it with `epicenter query --history DIR`).
    #[arg(long, value_name = "DIR")]
    history: Option<PathBuf>,
    /// Write each incident as soon as it is final (resolved: nothing can
    /// join, merge into or reopen it), not after the whole input; those
    /// still firing at the end follow. The lines are the same as without
    /// the flag, and the same input still gives the same output byte for
    /// byte, but they come in the order the incidents were settled, not in
    /// order of `opened_at`.
    #[arg(long)]
    stream: bool,
    /// The cluster of records that name none (a `cluster` field, an
    /// alert's `cluster` label). Each cluster is correlated on its own,
    /// and its incidents carry its name; without any name, one unnamed
    /// cluster.
    #[arg(long, value_name = "NAME", value_parser = parse_cluster)]
    cluster: Option<String>,
    /// Input files (NDJSON); `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// How `replay` prints incidents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// One JSON object per line (`IncidentReport`, the contract).
    Json,
    /// Each incident as text for a terminal, separated by a blank line
    /// (title and severity coloured when stdout is a terminal).
    Text,
    /// Each incident as Markdown, separated by a `---` rule.
    Markdown,
}

/// A `--cluster` name: not empty (an empty `cluster` field names none).
fn parse_cluster(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("a cluster's name cannot be empty".to_string());
    }
    Ok(s.to_string())
}

/// A `--lateness` value: `90s`, `2m`.
pub(crate) fn parse_span(s: &str) -> Result<Span, String> {
    Span::parse(s).ok_or_else(|| format!("`{s}` is not a duration (e.g. 90s, 2m)"))
}

/// Malformed input: counted, the first few shown with file:line.
#[derive(Debug, Default)]
pub(crate) struct Malformed {
    pub(crate) count: u64,
    /// Parts of lines skipped while the rest was read (unreadable alerts).
    pub(crate) parts: u64,
}

impl Malformed {
    /// "3 malformed lines skipped", said once at the end; `None` when
    /// nothing was.
    pub(crate) fn summary(&self) -> Option<String> {
        let mut skipped = Vec::new();
        if self.count > 0 {
            skipped.push(format!("{} malformed lines", self.count));
        }
        if self.parts > 0 {
            skipped.push(format!(
                "{} unreadable alerts (the other alerts of their bodies were read)",
                self.parts
            ));
        }
        if skipped.is_empty() {
            return None;
        }
        let shown = if self.count + self.parts > SHOWN_ERRORS {
            format!(" ({SHOWN_ERRORS} shown)")
        } else {
            String::new()
        };
        Some(format!("{} skipped{shown}", skipped.join(" and ")))
    }

    fn report(&mut self, file: &str, line: u64, what: &dyn std::fmt::Display) {
        self.count += 1;
        if self.count + self.parts <= SHOWN_ERRORS {
            eprintln!("epicenter: skipped {file}:{line}: {what}");
        }
    }

    fn report_part(&mut self, file: &str, line: u64, part: &ingest::Rejected) {
        self.parts += 1;
        if self.count + self.parts <= SHOWN_ERRORS {
            match &part.fingerprint {
                Some(fp) => eprintln!(
                    "epicenter: skipped part of {file}:{line}: {} (fingerprint {fp})",
                    part.error
                ),
                None => eprintln!("epicenter: skipped part of {file}:{line}: {}", part.error),
            }
        }
    }
}

/// The engine step, apart from decoding: what each decoded record is given
/// to, in input order, with its cluster's lane. `replay` gives it to an
/// engine per cluster ([`Correlator`]); `backtest` gives the same records,
/// decoded once, to two per cluster.
pub(crate) trait Correlate {
    /// A cluster met for the first time: it takes the next lane.
    fn add_cluster(&mut self, cluster: Option<&str>);
    /// A record that formed no event: its time still moves the watermark.
    fn observe(&mut self, lane: Lane, time: EventTime);
    /// One event of a record.
    fn push(&mut self, lane: Lane, event: &Event<'_>);
    /// Whether writing what it found failed (a closed stdout under
    /// `--stream`): reading more would only be lost.
    fn failed(&self) -> bool {
        false
    }
}

/// An engine per cluster, `--history`'s recorder and `--stream`'s output:
/// what `replay` correlates with.
#[derive(Debug)]
pub(crate) struct Correlator {
    clusters: Clusters,
    /// `--history`: records incident versions as they change.
    history: Option<HistoryRecorder>,
    /// `--stream`: incidents written as they become final.
    stream: Option<Streamed>,
    /// The first failure to write the history or the stream (ends the
    /// replay).
    error: Option<anyhow::Error>,
}

impl Correlator {
    fn record(&mut self, lane: Lane, updates: &[correlate::IncidentUpdate]) {
        if updates.is_empty() || self.error.is_some() {
            return;
        }
        let engine = self.clusters.engine(lane);
        if let Some(h) = &mut self.history
            && let Err(e) = h.record(engine, lane, updates)
        {
            self.error = Some(e);
            return;
        }
        if let Some(s) = &mut self.stream
            && let Err(e) = s.settled(engine, updates)
        {
            self.error = Some(e);
        }
    }
}

/// `--stream`: an incident is written once it is resolved. A resolved
/// incident is final: only firing incidents take members, merge, or change
/// status (`IncidentStore::add`, `merge`, `resolve`), so its line is the
/// one the end of input would print. The rest, still firing, are written at
/// the end. Every incident that resolves does so through a `Resolved`
/// change (it was firing), which the engine returns before it lets the
/// incident go (retention), so each is written exactly once and none needs
/// remembering.
#[derive(Debug)]
struct Streamed {
    out: Output<io::Stdout>,
}

impl Streamed {
    fn settled(&mut self, engine: &Engine, updates: &[correlate::IncidentUpdate]) -> Result<()> {
        let store = engine.store();
        let mut wrote = false;
        for u in updates {
            if u.change != Change::Resolved {
                continue;
            }
            let inc = store.get(store.find(u.incident));
            if inc.is_reported() && inc.status == Status::Resolved {
                self.out.write(&IncidentReport::new(inc))?;
                wrote = true;
            }
        }
        if wrote {
            // A line a person (or a pipe) waits for is not left in a buffer.
            self.out.flush()?;
        }
        Ok(())
    }

    /// Writes the incidents still firing at the end, in order of
    /// `opened_at`.
    fn finish(mut self, clusters: &Clusters) -> Result<usize> {
        for inc in clusters.incidents() {
            if inc.status != Status::Resolved {
                self.out.write(&IncidentReport::new(inc))?;
            }
        }
        self.out.finish()
    }
}

/// Incidents on stdout in one of the `--format`s.
#[derive(Debug)]
struct Output<W: Write> {
    format: Format,
    colour: bool,
    out: io::BufWriter<W>,
    written: usize,
}

impl<W: Write> Output<W> {
    fn new(format: Format, colour: bool, out: W) -> Output<W> {
        Output {
            format,
            colour,
            out: io::BufWriter::new(out),
            written: 0,
        }
    }

    fn write(&mut self, report: &IncidentReport) -> Result<()> {
        match self.format {
            Format::Json => {
                serde_json::to_writer(&mut self.out, report)
                    .with_context(|| format!("writing incident {}", report.id))?;
                self.out.write_all(b"\n")?;
            }
            Format::Text | Format::Markdown => {
                if self.written > 0 {
                    self.out.write_all(match self.format {
                        Format::Markdown => b"\n---\n\n",
                        _ => b"\n",
                    })?;
                }
                let rendered = match self.format {
                    Format::Markdown => sinks::render::markdown(report),
                    _ => sinks::render::text(report, self.colour),
                };
                self.out.write_all(rendered.as_bytes())?;
            }
        }
        self.written += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush().context("writing incidents")
    }

    /// Flushes; how many incidents were written.
    fn finish(mut self) -> Result<usize> {
        self.flush()?;
        Ok(self.written)
    }
}

impl Correlate for Correlator {
    fn failed(&self) -> bool {
        self.error.is_some()
    }

    fn add_cluster(&mut self, cluster: Option<&str>) {
        self.clusters.lane(cluster);
    }

    #[inline]
    fn observe(&mut self, lane: Lane, time: EventTime) {
        let updates = self.clusters.engine_mut(lane).observe(time);
        self.record(lane, &updates);
    }

    #[inline]
    fn push(&mut self, lane: Lane, event: &Event<'_>) {
        let updates = self.clusters.engine_mut(lane).push(event);
        self.record(lane, &updates);
    }
}

/// What a replay ends with.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) clusters: Clusters,
    pub(crate) decoding: Decoding,
    pub(crate) malformed: Malformed,
    /// Incident versions written to `--history`.
    pub(crate) history_rows: u64,
    /// `--stream`: how many incidents were written.
    pub(crate) streamed: Option<usize>,
}

/// The decoders and what they feed (an engine per cluster by default), fed
/// file by file.
#[derive(Debug)]
pub(crate) struct Replayer<C = Correlator> {
    decoding: Decoding,
    /// `--cluster`: the cluster of records that name none.
    default_cluster: Option<Box<str>>,
    correlate: C,
    pub(crate) malformed: Malformed,
    pub(crate) bytes: u64,
    files: u32,
    /// A spare allocation for the events of one line.
    events: Vec<Event<'static>>,
}

/// Lines per batch: small enough that a batch is still in cache when it is
/// interpreted, large enough that handing it over costs nothing.
const BATCH: usize = 256;
/// Parsed batches waiting for the interpreting thread.
const IN_FLIGHT: usize = 4;

/// The parse results of a batch, travelling with the lines they borrow from.
type ParsedLines<'a> = Vec<ingest::Result<Parsed<'a>>>;

self_cell::self_cell!(
    struct ParsedBatch {
        owner: Batch,
        #[covariant]
        dependent: ParsedLines,
    }
);

impl std::fmt::Debug for ParsedBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ParsedBatch({} lines)", self.borrow_owner().len)
    }
}

/// The reader thread: fills batches (reusing the spares it gets back) and
/// parses them, until the input ends, reading fails, or the receiver stops.
fn read_and_parse(
    reader: impl BufRead,
    parsed: &mpsc::SyncSender<Result<ParsedBatch, ingest::LineError>>,
    spares: &mpsc::Receiver<Batch>,
) {
    let mut lines = Lines::new(reader);
    loop {
        let mut batch = spares.try_recv().unwrap_or_default();
        let more = match batch.fill(&mut lines) {
            Ok(more) => more,
            Err(e) => {
                let _ = parsed.send(Err(e));
                return;
            }
        };
        if batch.is_empty() {
            return;
        }
        let done = ParsedBatch::new(batch, |b| parse_slice(b.lines()));
        if parsed.send(Ok(done)).is_err() || !more {
            return;
        }
    }
}

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
}

/// Parses the JSON of a batch's lines.
fn parse_slice(lines: &[(u64, String)]) -> Vec<ingest::Result<Parsed<'_>>> {
    lines.iter().map(|(_, l)| ingest::parse(l)).collect()
}

/// Reuses a vector's allocation for events borrowing from the next line.
pub(crate) fn recycle<'b>(mut v: Vec<Event<'_>>) -> Vec<Event<'b>> {
    v.clear();
    v.into_iter()
        .map(|_| unreachable!("the vector is empty"))
        .collect()
}

impl Replayer<Correlator> {
    pub(crate) fn new(rules: Arc<RuleSet>, config: EngineConfig) -> Replayer {
        Replayer::with(Correlator {
            clusters: Clusters::new(rules, config),
            history: None,
            stream: None,
            error: None,
        })
    }

    /// Writes incidents on stdout as they become final (`--stream`).
    fn streaming(mut self, format: Format, colour: bool) -> Replayer {
        self.correlate.stream = Some(Streamed {
            out: Output::new(format, colour, io::stdout()),
        });
        self
    }

    /// Records incident versions into the history as they change.
    pub(crate) fn with_history(mut self, recorder: HistoryRecorder) -> Replayer {
        self.correlate.history = Some(recorder);
        self
    }

    /// Flushes every window; with `--history`, writes the history out;
    /// with `--stream`, writes the incidents still firing.
    pub(crate) fn finish(mut self) -> Result<Finished> {
        let c = &mut self.correlate;
        for lane in 0..c.clusters.len() {
            let updates = c.clusters.engine_mut(lane).finish();
            c.record(lane, &updates);
        }
        if let Some(e) = c.error.take() {
            return Err(e);
        }
        let history_rows = match c.history.take() {
            Some(h) => h.finish(&c.clusters)?,
            None => 0,
        };
        let streamed = match c.stream.take() {
            Some(s) => Some(s.finish(&c.clusters)?),
            None => None,
        };
        Ok(Finished {
            clusters: self.correlate.clusters,
            decoding: self.decoding,
            malformed: self.malformed,
            history_rows,
            streamed,
        })
    }
}

impl<C: Correlate> Replayer<C> {
    /// A fresh decoder feeding `correlate`.
    pub(crate) fn with(correlate: C) -> Replayer<C> {
        Replayer {
            decoding: Decoding::default(),
            default_cluster: None,
            correlate,
            malformed: Malformed::default(),
            bytes: 0,
            files: 0,
            events: Vec::with_capacity(8),
        }
    }

    /// The cluster of records that name none (`--cluster`).
    pub(crate) fn default_cluster(mut self, cluster: Option<&str>) -> Replayer<C> {
        self.default_cluster = cluster.map(Into::into);
        self
    }

    /// At most this many clusters (`engine.max_clusters`).
    pub(crate) fn max_clusters(mut self, max: usize) -> Replayer<C> {
        self.decoding = Decoding::new(ingest::Limits::default(), max);
        self
    }

    /// What was fed, the decoders (their counters) and the malformed lines.
    pub(crate) fn into_parts(self) -> (C, Decoding, Malformed) {
        (self.correlate, self.decoding, self.malformed)
    }

    /// Reads every line of `reader`; a read error ends this input with Err.
    /// Reads `reader` to the end. A reader thread reads and parses the JSON
    /// of small batches of lines (the stateless, costly half of decoding);
    /// this thread interprets and correlates them in order. Batches go back
    /// to the reader for reuse, so no line is allocated on one thread and
    /// freed on the other.
    pub(crate) fn feed(
        &mut self,
        name: &str,
        reader: impl BufRead + Send,
        progress: Option<&indicatif::ProgressBar>,
    ) -> Result<()> {
        let file = self.files;
        self.files += 1;
        let (parsed_tx, parsed_rx) =
            mpsc::sync_channel::<Result<ParsedBatch, ingest::LineError>>(IN_FLIGHT);
        let (spare_tx, spare_rx) = mpsc::sync_channel::<Batch>(IN_FLIGHT + 2);
        std::thread::scope(|s| {
            s.spawn(move || read_and_parse(reader, &parsed_tx, &spare_rx));
            for parsed in parsed_rx {
                let batch = parsed.with_context(|| format!("{name}: read failed"))?;
                let batch = self.interpret(name, file, batch);
                if let Some(p) = progress {
                    p.set_position(self.bytes);
                }
                // The reader may have finished; then the batch is simply dropped.
                let _ = spare_tx.try_send(batch);
                if self.correlate.failed() {
                    // `finish` says why; dropping the receiver stops the reader.
                    break;
                }
            }
            Ok(())
        })
    }

    /// Decodes and correlates a parsed batch, in line order; gives the batch
    /// back.
    fn interpret(&mut self, name: &str, file: u32, mut parsed: ParsedBatch) -> Batch {
        parsed.with_dependent_mut(|batch, results| {
            let mut unreadable = batch.unreadable.iter().peekable();
            for ((n, line), parsed) in batch.lines().iter().zip(results.drain(..)) {
                while let Some((_, e)) = unreadable.next_if(|(at, _)| at < n) {
                    self.malformed.report(name, e.line(), e);
                }
                self.bytes += line.len() as u64 + 1;
                let mut parsed = parsed;
                let other_clusters = self.decoding.split(&mut parsed);
                let origin = Origin { file, line: *n };
                self.interpret_part(name, origin, parsed);
                for part in other_clusters {
                    self.interpret_part(name, origin, Ok(part));
                }
            }
            for (_, e) in unreadable {
                self.malformed.report(name, e.line(), e);
            }
        });
        parsed.into_owner()
    }

    /// Decodes one record (or one cluster's part of an Alertmanager body)
    /// with its cluster's decoder, and correlates its events in that
    /// cluster's lane.
    fn interpret_part<'l>(
        &mut self,
        name: &str,
        origin: Origin,
        parsed: ingest::Result<Parsed<'l>>,
    ) {
        let cluster = parsed.as_ref().ok().and_then(Parsed::cluster);
        let (lane, new) = match self
            .decoding
            .lane(cluster.or(self.default_cluster.as_deref()))
        {
            Ok(lane) => lane,
            Err(e) => {
                self.malformed.report(name, origin.line, &e);
                return;
            }
        };
        if new {
            self.correlate.add_cluster(self.decoding.cluster(lane));
        }
        let decoder = self.decoding.decoder(lane);
        let mut evs = recycle(std::mem::take(&mut self.events));
        match decoder.interpret(parsed, origin, &mut evs) {
            // No event, but the record's time still moves the watermark.
            Ok(Decoded::Duplicate { time } | Decoded::Unchanged { time }) => {
                self.correlate.observe(lane, time);
            }
            Ok(_) => {
                for ev in &evs {
                    self.correlate.push(lane, ev);
                }
            }
            Err(e) => self.malformed.report(name, origin.line, &e),
        }
        for part in self.decoding.decoder(lane).take_rejected() {
            self.malformed.report_part(name, origin.line, &part);
        }
        self.events = recycle(evs);
    }
}

/// An input opened for reading: its name in messages, the reader, its
/// length in bytes (0 for standard input).
pub(crate) type Input = (String, Box<dyn BufRead + Send>, u64);

/// Opens every input (`-` is standard input) before anything is read: a
/// typo is exit 2, not a partial replay.
pub(crate) fn open_inputs(files: &[PathBuf]) -> Result<Vec<Input>> {
    let mut inputs: Vec<Input> = Vec::new();
    for path in files {
        if path.as_os_str() == "-" {
            inputs.push((
                "-".to_string(),
                Box::new(BufReader::with_capacity(1 << 20, io::stdin())),
                0,
            ));
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
    Ok(inputs)
}

/// A progress bar on a terminal, for inputs above 32 MiB.
pub(crate) fn progress_bar(inputs: &[Input]) -> Option<indicatif::ProgressBar> {
    let total: u64 = inputs.iter().map(|(_, _, l)| l).sum();
    (io::stderr().is_terminal() && total > 32 << 20).then(|| {
        let p = indicatif::ProgressBar::new(total);
        p.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        p
    })
}

pub(crate) fn run(args: &Args) -> Result<ExitCode> {
    let (config, loaded) =
        match config::load_with_rules(args.config.as_deref(), &args.rules, args.no_builtin)? {
            Ok(loaded) => loaded,
            Err(code) => return Ok(code),
        };
    // Said once, before anything else: which definitions were replaced.
    for line in loaded.override_lines() {
        eprintln!("note: {line}");
    }
    let rules = loaded.rules;
    let mut engine_config = config.engine;
    if let Some(l) = args.lateness {
        engine_config.lateness = l;
    }
    // Every incident is reported at the end: none may leave the engine.
    // Streamed, an incident is written when it resolves, and may then
    // leave: a replay that follows a recording for weeks holds what is
    // still open, not everything it ever wrote. `--history` reads the
    // store at the end, and keeps them all.
    engine_config.retention = (args.stream && args.history.is_none()).then_some(Span::ZERO);

    let inputs = open_inputs(&args.files)?;
    let progress = progress_bar(&inputs);

    let started = Instant::now();
    let stdout = io::stdout();
    let colour = args.format == Format::Text && stdout.is_terminal();
    let max_clusters = config.max_clusters;
    let mut replayer = Replayer::new(rules.clone(), engine_config)
        .default_cluster(args.cluster.as_deref())
        .max_clusters(max_clusters);
    if let Some(dir) = &args.history {
        replayer = replayer.with_history(HistoryRecorder::open(dir, &rules)?);
    }
    if args.stream {
        replayer = replayer.streaming(args.format, colour);
    }
    for (name, reader, _) in inputs {
        replayer.feed(&name, reader, progress.as_ref())?;
    }
    if let Some(p) = &progress {
        p.finish_and_clear();
    }
    let bytes = replayer.bytes;
    let Finished {
        clusters,
        decoding,
        malformed,
        history_rows,
        streamed,
    } = replayer.finish()?;
    let elapsed = started.elapsed();

    let printed = match streamed {
        Some(written) => written,
        None => {
            let mut out = Output::new(args.format, colour, stdout.lock());
            for inc in clusters.incidents() {
                out.write(&IncidentReport::new(inc))?;
            }
            out.finish()?
        }
    };

    if let Some(line) = malformed.summary() {
        eprintln!("epicenter: {line}");
    }
    let guard = clusters.guard_stats();
    if guard.clamped > 0 {
        eprintln!(
            "epicenter: {} records dated more than {} ahead of the stream were processed at the stream's time (engine.max_ahead)",
            guard.clamped,
            clusters.config().max_ahead.unwrap_or_default(),
        );
    }
    if let Some(dir) = &args.history {
        eprintln!(
            "epicenter: {history_rows} incident versions written to the history in {}",
            dir.display()
        );
    }
    if args.stats {
        let run = Run {
            seconds: elapsed.as_secs_f64().max(1e-9),
            bytes,
            malformed: malformed.count,
            printed,
        };
        for line in stats_lines(&run, &decoding.stats(), &clusters) {
            eprintln!("epicenter: {line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What a replay did, beside the decoder's and the engine's counters.
struct Run {
    seconds: f64,
    bytes: u64,
    malformed: u64,
    /// Incidents printed on stdout.
    printed: usize,
}

/// `--stats` in words, a line per stage: reading, records, correlation, and
/// what was still held at the end.
fn stats_lines(run: &Run, d: &ingest::DecodeStats, clusters: &Clusters) -> Vec<String> {
    let s = clusters.stats();
    let g = clusters.gauges();
    let per_second = d.lines as f64 / run.seconds;
    let mib = run.bytes as f64 / run.seconds / f64::from(1u32 << 20);
    let stores = || clusters.iter().flat_map(|e| e.store().iter());
    let folded = stores().filter(|i| i.merged_into.is_some()).count();
    let reported = stores().filter(|i| i.is_reported()).count();
    let in_clusters = match clusters
        .iter()
        .filter_map(|e| e.config().cluster.as_ref())
        .count()
    {
        0 => String::new(),
        1 => " in 1 named cluster".to_string(),
        n => format!(" in {n} clusters, each correlated on its own"),
    };
    let unopened = g.incidents.saturating_sub(reported + folded);
    // `--stream` lets settled incidents go: the counts of the store are
    // then of what it still held.
    let let_go = if g.retired_incidents > 0 {
        format!(
            " ({} settled incidents and candidates were let go once written or done with, and are not counted in these two)",
            g.retired_incidents
        )
    } else {
        String::new()
    };
    vec![
        format!(
            "{} lines read in {:.2} s ({per_second:.0} lines/s, {mib:.1} MiB/s); {} blank, {} malformed",
            d.lines, run.seconds, d.blank, run.malformed
        ),
        format!(
            "records: {} Kubernetes Events, {} pod and {} node states, {} other objects, \
             {} alerts in {} webhook bodies, {} log lines; {} repeats dropped, \
             {} pod and node records without a change",
            d.k8s_events,
            d.pods,
            d.nodes,
            d.volumes,
            d.alerts,
            d.alert_bodies,
            d.vector_logs + d.fluent_bit_logs,
            d.duplicates,
            d.unchanged
        ),
        format!(
            "{} events correlated{in_clusters}: {} signals ({} late, {} released early); \
             {} incidents printed, {folded} folded into them, {unopened} candidates that never \
             reached their rule's thresholds{let_go}; \
             {} effects found no cause, {} evicted",
            s.records,
            s.signals,
            s.late,
            s.released_early,
            run.printed,
            s.unattached_effects,
            s.evicted_effects
        ),
        format!(
            "held at the end: {} records buffered, {} effects ({} KiB), {} pods tracked; \
             object graph: {} objects, {} edges ({} evicted)",
            g.buffered,
            g.held_effects,
            g.held_bytes / 1024,
            g.tracked_pods,
            g.graph.nodes,
            g.graph.edges,
            g.graph.evicted
        ),
    ]
}
