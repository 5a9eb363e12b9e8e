//! Rule loading errors: every one carries the file, line and column it is
//! about, and loading reports all of them at once.

use std::fmt;

/// Where in a rule file something is. Line and column are 1-based; 0 means
/// unknown.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub file: String,
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One problem in a rule file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, thiserror::Error)]
#[error("{position}: {message}")]
pub struct RuleError {
    pub position: Position,
    pub message: String,
}

/// Everything wrong with a rule set, in file order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct RuleErrors(pub Vec<RuleError>);

impl fmt::Display for RuleErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

pub type Result<T, E = RuleErrors> = std::result::Result<T, E>;

/// Collects errors while a file is compiled.
#[derive(Debug)]
pub(crate) struct Diagnostics<'f> {
    file: &'f str,
    pub(crate) errors: Vec<RuleError>,
}

impl<'f> Diagnostics<'f> {
    pub(crate) fn new(file: &'f str) -> Self {
        Diagnostics {
            file,
            errors: Vec::new(),
        }
    }

    pub(crate) fn at(&self, loc: serde_saphyr::Location) -> Position {
        Position {
            file: self.file.to_string(),
            line: loc.line(),
            column: loc.column(),
        }
    }

    pub(crate) fn error(&mut self, loc: serde_saphyr::Location, message: impl Into<String>) {
        let position = self.at(loc);
        self.errors.push(RuleError {
            position,
            message: message.into(),
        });
    }
}
