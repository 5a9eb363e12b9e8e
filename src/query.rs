//! `epicenter query "SELECT ..."`: read-only SQL over the incident history
//! (what `serve` stores under its state directory, or what
//! `replay --history DIR` wrote), printed as a table, CSV, JSON or NDJSON.
//!
//! `--sandbox` is how `serve` runs the API's queries (see
//! `serve/isolated.rs`): the process caps its own memory and CPU time and
//! lowers its priority before it reads anything, and says how a query
//! ended by its exit code.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use sinks::history::{Format, QueryError, QueryLimits, Sql, Table};

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["sql", "tables", "describe"])))]
pub(crate) struct Args {
    /// The query; `-` reads it from standard input.
    #[arg(value_name = "SQL")]
    sql: Option<String>,
    /// List the tables and what a row of each is (no history needed).
    #[arg(long)]
    tables: bool,
    /// The columns of TABLE: name, type, null, meaning (no history needed).
    #[arg(long, value_name = "TABLE")]
    describe: Option<String>,
    /// The history directory (default: the config's, else
    /// `epicenter-state/history`).
    #[arg(long, value_name = "DIR")]
    history: Option<PathBuf>,
    /// Configuration file: its state directory's history.
    #[arg(long, value_name = "FILE", conflicts_with = "history")]
    config: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
    /// Longest a query may run, e.g. `30s`.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    timeout: std::time::Duration,
    /// Most rows printed (the output says when there were more).
    #[arg(long, default_value_t = 100_000)]
    max_rows: usize,
    /// Memory the query's operators may hold, e.g. `512MiB`.
    #[arg(long, value_parser = parse_size)]
    memory: Option<usize>,
    /// Run as serve's isolated query process: hard memory and CPU limits,
    /// low priority, exit 2 (refused or invalid), 3 (timeout), 4 (memory).
    #[arg(long, hide = true)]
    sandbox: bool,
}

fn parse_size(s: &str) -> Result<usize, String> {
    s.trim()
        .parse::<bytesize::ByteSize>()
        .ok()
        .filter(|b| b.as_u64() > 0)
        .map(|b| usize::try_from(b.as_u64()).unwrap_or(usize::MAX))
        .ok_or_else(|| format!("`{s}` is not a size (e.g. 512MiB)"))
}

/// What a sandboxed query process may use beyond its operators' memory:
/// the runtime, DataFusion's session, Parquet footers, the result (a trivial
/// query peaks at about 75 MiB of data segment in a debug build).
const SANDBOX_BASELINE: u64 = 256 << 20;

/// Caps this process before it reads anything: its data segment (every
/// heap allocation: past it, allocation fails and the process aborts),
/// its CPU time, and its priority (the service it serves comes first).
fn sandbox(memory: usize, timeout: std::time::Duration) -> Result<()> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let data = (memory as u64).saturating_add(SANDBOX_BASELINE);
    setrlimit(
        Resource::Data,
        Rlimit {
            current: Some(data),
            maximum: Some(data),
        },
    )
    .context("cannot cap the query's memory")?;
    // CPU time over all threads: twice the wall-clock budget and a margin.
    let cpu = timeout.as_secs().saturating_mul(2).saturating_add(10);
    setrlimit(
        Resource::Cpu,
        Rlimit {
            current: Some(cpu),
            maximum: Some(cpu + 5),
        },
    )
    .context("cannot cap the query's CPU time")?;
    let _ = rustix::process::nice(10);
    Ok(())
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OutputFormat {
    Table,
    Csv,
    Json,
    Ndjson,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    correlate::Span::parse(s)
        .filter(|d| d.as_micros() > 0)
        .map(|d| std::time::Duration::from_micros(d.as_micros().unsigned_abs()))
        .ok_or_else(|| format!("`{s}` is not a duration (e.g. 30s)"))
}

/// `--tables` and `--describe`: the schema, from the build itself.
fn schema_text(args: &Args) -> Option<Result<String, String>> {
    use std::fmt::Write as _;
    let aligned = |rows: &[[String; 4]]| {
        let widths: Vec<usize> = (0..3)
            .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for r in rows {
            let line = format!(
                "{:w0$}  {:w1$}  {:w2$}  {}",
                r[0],
                r[1],
                r[2],
                r[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
        out
    };
    if args.tables {
        let mut out = String::new();
        let width = Table::ALL.iter().map(|t| t.name().len()).max().unwrap_or(0);
        for t in Table::ALL {
            let _ = writeln!(out, "{:width$}  {}", t.name(), t.about());
        }
        return Some(Ok(out));
    }
    let name = args.describe.as_deref()?;
    let Some(table) = Table::ALL.into_iter().find(|t| t.name() == name) else {
        let names: Vec<&str> = Table::ALL.iter().map(|t| t.name()).collect();
        return Some(Err(format!(
            "no table `{name}` (tables: {})",
            names.join(", ")
        )));
    };
    let mut rows = vec![[
        "column".to_string(),
        "type".to_string(),
        "null".to_string(),
        "meaning".to_string(),
    ]];
    rows.extend(table.columns().into_iter().map(|c| {
        [
            c.name,
            c.data_type,
            if c.nullable { "yes" } else { "no" }.to_string(),
            c.meaning.to_string(),
        ]
    }));
    Some(Ok(format!(
        "{}: {}\n{}",
        table.name(),
        table.about(),
        aligned(&rows)
    )))
}

/// The history directory: `--history`, else the config's, else the
/// default state directory's.
pub(crate) fn history_dir(history: Option<&PathBuf>, config: Option<&PathBuf>) -> Result<PathBuf> {
    Ok(match (history, config) {
        (Some(d), _) => d.clone(),
        (None, Some(c)) => match crate::config::Config::load(c)?.serve.history {
            Some(h) => h.dir,
            None => anyhow::bail!("{}: the history is disabled (sinks.history)", c.display()),
        },
        (None, None) => crate::config::Config::default()
            .serve
            .history
            .map(|h| h.dir)
            .unwrap_or_else(|| PathBuf::from("epicenter-state/history")),
    })
}

pub(crate) fn run(args: &Args) -> Result<ExitCode> {
    match schema_text(args) {
        Some(Ok(text)) => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
            return Ok(ExitCode::SUCCESS);
        }
        Some(Err(e)) => {
            eprintln!("epicenter: {e}");
            return Ok(ExitCode::from(2));
        }
        None => {}
    }
    let Some(query) = &args.sql else {
        anyhow::bail!("no query (give SQL, --tables or --describe TABLE)");
    };
    let dir = history_dir(args.history.as_ref(), args.config.as_ref())?;
    let sql = if query == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the query from stdin")?;
        s
    } else {
        query.clone()
    };
    if !dir.is_dir() {
        eprintln!(
            "epicenter: {}: no incident history here (serve writes it under its state directory; replay --history DIR writes one)",
            dir.display()
        );
        return Ok(ExitCode::from(2));
    }
    let mut limits = QueryLimits {
        timeout: args.timeout,
        max_rows: args.max_rows,
        ..QueryLimits::default()
    };
    if let Some(m) = args.memory {
        limits.memory = m;
    }
    if args.sandbox {
        sandbox(limits.memory, limits.timeout)?;
    }
    let format = match args.format {
        OutputFormat::Table => Format::Table,
        OutputFormat::Csv => Format::Csv,
        OutputFormat::Json => Format::Json,
        OutputFormat::Ndjson => Format::Ndjson,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("epicenter-query")
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        let engine = Sql::open(&dir, limits).await?;
        engine.query(&sql, format).await
    });
    match result {
        Ok(text) => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            if !text.ends_with('\n') && !text.is_empty() {
                out.write_all(b"\n")?;
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ (QueryError::Refused(_) | QueryError::Invalid(_))) => {
            eprintln!("epicenter: {e}");
            Ok(ExitCode::from(2))
        }
        Err(e @ QueryError::Timeout(_)) => {
            eprintln!("epicenter: {e}");
            Ok(ExitCode::from(if args.sandbox { 3 } else { 2 }))
        }
        Err(e @ QueryError::Memory(_)) => {
            eprintln!("epicenter: {e}");
            Ok(ExitCode::from(if args.sandbox { 4 } else { 2 }))
        }
        Err(e) => Err(e).context(format!("querying {}", dir.display())),
    }
}
