//! `epicenter show ID`: one incident from the history, for a person: the
//! text view (or Markdown, or the stored JSON document), from what `serve`
//! or `replay --history DIR` stored.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use sinks::history::{QueryError, QueryLimits, Sql};

use crate::replay::Format;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The incident id (as printed by replay, or in a notification).
    #[arg(value_name = "ID")]
    id: String,
    /// A version of the incident (default: its newest).
    #[arg(long)]
    version: Option<u32>,
    /// The history directory (default: the config's, else
    /// `epicenter-state/history`).
    #[arg(long, value_name = "DIR")]
    history: Option<PathBuf>,
    /// Configuration file: its state directory's history.
    #[arg(long, value_name = "FILE", conflicts_with = "history")]
    config: Option<PathBuf>,
    /// text (colour on a terminal), markdown, or json (the stored document).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// Reads the history `--history` or `--config` names with `read`: the
/// directory and what `read` found, or `Err(exit code)` (2) after saying
/// that there is no history there. Shared by `show` and `postmortem`.
pub(crate) fn read_history<T, Fut>(
    history: Option<&PathBuf>,
    config: Option<&PathBuf>,
    read: impl FnOnce(Sql) -> Fut,
) -> Result<Result<(PathBuf, T), ExitCode>>
where
    Fut: std::future::Future<Output = Result<T, QueryError>>,
{
    let dir = crate::query::history_dir(history, config)?;
    if !dir.is_dir() {
        eprintln!(
            "epicenter: {}: no incident history here (serve writes it under its state directory; replay --history DIR writes one)",
            dir.display()
        );
        return Ok(Err(ExitCode::from(2)));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let found = runtime
        .block_on(async {
            let sql = Sql::open(&dir, QueryLimits::default()).await?;
            read(sql).await
        })
        .with_context(|| format!("reading {}", dir.display()))?;
    Ok(Ok((dir, found)))
}

pub(crate) fn run(args: &Args) -> Result<ExitCode> {
    let read = read_history(
        args.history.as_ref(),
        args.config.as_ref(),
        |sql| async move { sql.document(&args.id, args.version).await },
    )?;
    let (dir, found) = match read {
        Ok(read) => read,
        Err(code) => return Ok(code),
    };
    let Some(change) = found else {
        let which = args
            .version
            .map_or(String::new(), |v| format!(" version {v} of"));
        eprintln!(
            "epicenter: no{which} incident {} in {}",
            args.id,
            dir.display()
        );
        return Ok(ExitCode::from(1));
    };
    let text = match args.format {
        Format::Json => {
            let mut json = serde_json::to_string(&change)?;
            json.push('\n');
            json
        }
        Format::Text => sinks::render::text(&change.incident, std::io::stdout().is_terminal()),
        Format::Markdown => sinks::render::markdown(&change.incident),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
