//! `epicenter postmortem ID`: a Markdown post-mortem draft of one incident,
//! from every version of it the history stored (see `sinks::postmortem`).
//! Deterministic: the same history gives the same draft.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use sinks::history::{QueryLimits, Sql};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The incident id (as printed by replay, or in a notification).
    #[arg(value_name = "ID")]
    id: String,
    /// The history directory (default: the config's, else
    /// `epicenter-state/history`).
    #[arg(long, value_name = "DIR")]
    history: Option<PathBuf>,
    /// Configuration file: its state directory's history.
    #[arg(long, value_name = "FILE", conflicts_with = "history")]
    config: Option<PathBuf>,
}

pub(crate) fn run(args: &Args) -> Result<ExitCode> {
    let dir = crate::query::history_dir(args.history.as_ref(), args.config.as_ref())?;
    if !dir.is_dir() {
        eprintln!(
            "epicenter: {}: no incident history here (serve writes it under its state directory; replay --history DIR writes one)",
            dir.display()
        );
        return Ok(ExitCode::from(2));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let versions = runtime
        .block_on(async {
            let sql = Sql::open(&dir, QueryLimits::default()).await?;
            sql.documents(&args.id).await
        })
        .with_context(|| format!("reading {}", dir.display()))?;
    if versions.is_empty() {
        eprintln!("epicenter: no incident {} in {}", args.id, dir.display());
        return Ok(ExitCode::from(1));
    }
    let text = sinks::postmortem::draft(&versions);
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
