//! Loading the rule packs (the built-in one, then each directory named),
//! and `epicenter rules check`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use correlate::rules::{Composition, RuleSet, compile_packs};

use crate::rule_files;

/// Rules as loaded: the set, the packs it came from, what overrode what.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub(crate) rules: Arc<RuleSet>,
    /// The packs, in order: `the built-in pack`, then each directory.
    pub(crate) packs: Vec<String>,
    pub(crate) composition: Composition,
}

impl Loaded {
    /// "the built-in pack + mine/ (12 signals, 14 correlations, 3 absence rules)".
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} ({} signals, {} correlations, {} absence rules)",
            self.packs.join(" + "),
            self.rules.signals.len(),
            self.rules.correlations.len(),
            self.rules.absences.len()
        )
    }

    /// One line per definition a later pack replaced.
    pub(crate) fn override_lines(&self) -> Vec<String> {
        self.composition
            .overrides
            .iter()
            .map(ToString::to_string)
            .collect()
    }
}

/// Loads and compiles the packs; `Err` carries every error, one per line.
pub(crate) fn load(dirs: &[PathBuf], builtin: bool) -> Result<Loaded, String> {
    let packs = rule_files::load_packs(dirs, builtin).map_err(|e| crate::describe(&e))?;
    let names = packs.iter().map(|p| p.name.clone()).collect();
    let (rules, composition) = compile_packs(&packs).map_err(|e| e.to_string())?;
    Ok(Loaded {
        rules: Arc::new(rules),
        packs: names,
        composition,
    })
}

#[allow(clippy::print_stdout)]
pub(crate) fn check(dirs: &[PathBuf], builtin: bool) -> Result<ExitCode> {
    match load(dirs, builtin) {
        Ok(loaded) => {
            for line in loaded.override_lines() {
                println!("{line}");
            }
            println!("ok: {}", loaded.describe());
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprintln!("{errors}");
            Ok(ExitCode::FAILURE)
        }
    }
}
