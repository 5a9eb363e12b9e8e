//! `epicenter query "SELECT ..."`: read-only SQL over the incident history
//! (what `serve` stores under its state directory, or what
//! `replay --history DIR` wrote), printed as a table, CSV, JSON or NDJSON.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use sinks::history::{Format, QueryError, QueryLimits, Sql};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The query; `-` reads it from standard input.
    #[arg(value_name = "SQL")]
    sql: String,
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

pub(crate) fn run(args: &Args) -> Result<ExitCode> {
    let dir = match (&args.history, &args.config) {
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
    };
    let sql = if args.sql == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the query from stdin")?;
        s
    } else {
        args.sql.clone()
    };
    if !dir.is_dir() {
        eprintln!(
            "epicenter: {}: no incident history here (serve writes it under its state directory; replay --history DIR writes one)",
            dir.display()
        );
        return Ok(ExitCode::from(2));
    }
    let limits = QueryLimits {
        timeout: args.timeout,
        max_rows: args.max_rows,
        ..QueryLimits::default()
    };
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
        Err(e @ (QueryError::Refused(_) | QueryError::Invalid(_) | QueryError::Timeout(_))) => {
            eprintln!("epicenter: {e}");
            Ok(ExitCode::from(2))
        }
        Err(e) => Err(e).context(format!("querying {}", dir.display())),
    }
}
