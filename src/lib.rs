//! `epicenter`: the command line. Wiring only: decoding lives in `ingest`,
//! rules and correlation in `correlate`, output in `sinks`.
//!
//! A library as well as the binary (`src/main.rs` only sets the allocator
//! and calls [`main`]) so that the fuzz targets (`fuzz/`) reach the config
//! loader and the checkpoint reader the way the binary does
//! ([`fuzzing`]).

mod backtest;
mod config;
mod decoding;
#[doc(hidden)]
pub mod fuzzing;
mod postmortem;
mod query;
mod record;
mod replay;
mod rule_files;
mod rule_tests;
mod rules_cmd;
mod serve;
mod show;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "epicenter",
    version,
    about = "Kubernetes event-stream correlation: one root-cause incident per cascade"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replay recorded records (NDJSON) through the rules; print one incident per line.
    Replay(replay::Args),
    /// Replay the same records through two rule packs and compare what they form.
    Backtest(backtest::Args),
    /// Run the live service: sources in, incidents out, state checkpointed.
    Serve(serve::Args),
    /// Query the incident history with read-only SQL.
    Query(query::Args),
    /// Show one incident from the history, for a person (text, Markdown, JSON).
    Show(show::Args),
    /// Draft a Markdown post-mortem of one incident from the history.
    Postmortem(postmortem::Args),
    /// Check a configuration file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Check or test rule files.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file and the rules it names, without starting;
    /// every error is reported with file:line:col.
    Check {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// Load rule files and report every error with file:line:col.
    Check {
        /// Rule directories or files, added after the built-in pack.
        dirs: Vec<PathBuf>,
        /// Leave the built-in rule pack out.
        #[arg(long)]
        no_builtin: bool,
    },
    /// Run rule tests (`*.test.yaml`): input records and the incidents they must (not) form.
    Test {
        /// Directories holding rules and their tests.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Print every incident of failing cases.
        #[arg(short, long)]
        verbose: bool,
        /// Test the directory's rules alone, without the built-in pack.
        #[arg(long)]
        no_builtin: bool,
    },
}

/// Logs on stderr. `EPICENTER_LOG` (an `EnvFilter`) overrides the level:
/// `serve` says what it does at `info`, the one-shot commands only warn.
/// Colour only on a terminal: a log file or a pod's log gets plain text.
fn init_tracing(format: LogFormat, default_level: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("EPICENTER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The command line: parses the arguments, runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    init_tracing(cli.log_format, default_level);
    let result = match cli.command {
        Command::Replay(args) => replay::run(&args),
        Command::Backtest(args) => backtest::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Query(args) => query::run(&args),
        Command::Show(args) => show::run(&args),
        Command::Postmortem(args) => postmortem::run(&args),
        Command::Config { command } => match command {
            ConfigCommand::Check { file } => config::check(&file),
        },
        Command::Rules { command } => match command {
            RulesCommand::Check { dirs, no_builtin } => rules_cmd::check(&dirs, !no_builtin),
            RulesCommand::Test {
                dirs,
                verbose,
                no_builtin,
            } => rule_tests::run(&dirs, verbose, !no_builtin),
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("epicenter: {}", describe(&e));
            ExitCode::from(2)
        }
    }
}

/// An error and its causes on one line, each said once: errors that name
/// their cause in their own message (`{path}: {source}`) are not followed by
/// it again.
pub(crate) fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outbox {path}: {source}")]
    struct Open {
        path: String,
        source: std::io::Error,
    }

    #[test]
    fn every_cause_is_said_once() {
        let inner = std::io::Error::other("No space left on device");
        let e = anyhow::Error::new(Open {
            path: "state/outbox.redb".to_string(),
            source: inner,
        })
        .context("cannot open the outbox");
        assert_eq!(
            describe(&e),
            "cannot open the outbox: outbox state/outbox.redb: No space left on device"
        );
        assert_eq!(
            format!("{e:#}").matches("No space left").count(),
            2,
            "what anyhow's alternate form does, and why describe exists"
        );
    }
}
