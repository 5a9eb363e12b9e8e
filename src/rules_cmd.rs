//! `epicenter rules check`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use correlate::rules::{RuleSet, compile};

use crate::rule_files;

/// Loads and compiles rules, printing every error; `Err` carries them all.
pub(crate) fn load(dirs: &[PathBuf]) -> Result<Arc<RuleSet>, String> {
    let sources = rule_files::load_sources(dirs).map_err(|e| crate::describe(&e))?;
    compile(&sources).map(Arc::new).map_err(|e| e.to_string())
}

pub(crate) fn check(dirs: &[PathBuf]) -> Result<ExitCode> {
    match load(dirs) {
        Ok(rules) => {
            #[allow(clippy::print_stdout)]
            {
                println!(
                    "ok: {} signals, {} correlations, {} absence rules",
                    rules.signals.len(),
                    rules.correlations.len(),
                    rules.absences.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprintln!("{errors}");
            Ok(ExitCode::FAILURE)
        }
    }
}
