//! `epicenter postmortem ID`: a Markdown post-mortem draft of one incident,
//! from every version of it the history stored (see `sinks::postmortem`).
//! Deterministic: the same history gives the same draft.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

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
    let read = crate::show::read_history(
        args.history.as_ref(),
        args.config.as_ref(),
        |sql| async move { sql.documents(&args.id).await },
    )?;
    let (dir, versions) = match read {
        Ok(read) => read,
        Err(code) => return Ok(code),
    };
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
