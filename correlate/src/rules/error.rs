//! Rule loading errors: every one carries the file, line and column it is
//! about, and loading reports all of them at once.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::IgnoredAny;

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
    /// The rule being compiled names a signal that is undefined or did not
    /// compile (or has a regex that did not): what its attributes are is
    /// not known, so errors about them would only echo the first one.
    pub(crate) unsure: bool,
}

impl<'f> Diagnostics<'f> {
    pub(crate) fn new(file: &'f str) -> Self {
        Diagnostics {
            file,
            errors: Vec::new(),
            unsure: false,
        }
    }

    /// An error that holds only if the signals a rule names are known (an
    /// unknown attribute or placeholder): not said when the rule already
    /// has an error that explains it.
    pub(crate) fn follow_on(&mut self, loc: serde_saphyr::Location, message: impl Into<String>) {
        if !self.unsure {
            self.error(loc, message);
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

/// What a key of the rule or config files expects, for errors about a
/// value of the wrong shape.
fn expects(key: &str) -> Option<&'static str> {
    Some(match key {
        "group_by" | "count_by" => {
            "one value: entity, workload, node, namespace, name, kind, cluster or an attribute"
        }
        "root" => "entity, workload, node, or {kind, name, namespace} (no other key)",
        "join" => {
            "a selector (node, namespace, workload, entity, cluster, an attribute) or {cause, effect} (no other key)"
        }
        "via" => "a path, or {cause, effect} (no other key)",
        "entity" => "one of self, workload, node",
        "severity" => "one of critical, warning, info",
        "min_count" | "min_entities" | "min_effects" | "min_lines" => "a whole number",
        "state" => "true or false",
        _ => return None,
    })
}

/// The key an untagged form's error is about, from the form's name.
fn untagged_key(message: &str) -> Option<String> {
    let form = message.strip_prefix("data did not match any variant of untagged enum ")?;
    Some(
        match form.trim() {
            "JoinSpec" => "join",
            "RootSpec" => "root",
            _ => return None,
        }
        .to_string(),
    )
}

/// Where an untagged form's object is expected, and `written` are the keys
/// of the object written there: the first key that form does not have
/// (`unknown key `nmae` (a root object has kind, name, namespace)`), if
/// that is what is wrong.
fn unknown_key(key: &str, written: &[String]) -> Option<String> {
    let (what, keys): (&str, &[&str]) = match key {
        "root" => ("a root object", &["kind", "name", "namespace"]),
        "join" | "via" => ("a pair", &["cause", "effect"]),
        _ => return None,
    };
    let first = written.iter().find(|k| !keys.contains(&k.as_str()))?;
    Some(format!(
        "unknown key `{first}` ({what} has {})",
        keys.join(", ")
    ))
}

/// The keys of a block mapping that starts at `line`:`column` of `text`:
/// the `key:` of each line indented as far as the first, up to the first
/// line indented less.
fn block_keys(text: &str, line: u64, column: u64) -> Vec<String> {
    let (Ok(first), Ok(indent)) = (usize::try_from(line), usize::try_from(column)) else {
        return Vec::new();
    };
    let indent = indent.saturating_sub(1);
    let mut keys = Vec::new();
    for l in text.lines().skip(first.saturating_sub(1)) {
        let body = l.trim_start_matches(' ');
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let at = l.len() - body.len();
        if at < indent {
            break;
        }
        if at == indent
            && let Some((k, _)) = body.split_once(':')
        {
            keys.push(k.trim().trim_matches(['\'', '"']).to_string());
        }
    }
    keys
}

/// The key a position of `text` is the value of: the nearest `key:` before
/// it on its line (block or flow style), if any.
fn key_at(text: &str, line: u64, column: u64) -> Option<String> {
    let l = text
        .lines()
        .nth(usize::try_from(line).ok()?.checked_sub(1)?)?;
    let upto: String = l
        .chars()
        .take(usize::try_from(column).ok()?.saturating_sub(1))
        .collect();
    let colon = upto.trim_end().strip_suffix(':').map_or_else(
        || upto.rfind(": ").or_else(|| upto.rfind(':')),
        |s| Some(s.len()),
    )?;
    let key: String = upto[..colon]
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    (!key.is_empty()).then_some(key)
}

/// The value written at a position of `text`: up to the end of its line,
/// or of its flow item.
fn value_at(text: &str, line: u64, column: u64) -> Option<String> {
    let l = text
        .lines()
        .nth(usize::try_from(line).ok()?.checked_sub(1)?)?;
    let from: String = l
        .chars()
        .skip(usize::try_from(column).ok()?.saturating_sub(1))
        .collect();
    let v = if from.starts_with('[') || from.starts_with('{') {
        from.trim_end().to_string()
    } else {
        from.split([',', '}', ']', '#'])
            .next()
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    (!v.is_empty()).then_some(v)
}

/// Says a shape error (a value of the wrong type) of `text` in words: the
/// key it is about, what that key expects, and what was written.
/// `min_entities: two` reads `min_entities: expected a whole number, got
/// "two"`, not `invalid u32`.
pub(crate) fn explain_shape(text: &str, e: RuleError) -> RuleError {
    let RuleError { position, message } = e;
    let (line, column) = (position.line, position.column);
    // A value of an untagged form in a list item (`- {cause: a, ...}`) has
    // no key on its line: the form says which key it is.
    let Some(key) = key_at(text, line, column).or_else(|| untagged_key(&message)) else {
        return RuleError { position, message };
    };
    let got = value_at(text, line, column).unwrap_or_default();
    if message.starts_with("data did not match any variant") {
        let flow = got.starts_with('{');
        let written = if flow {
            serde_saphyr::from_str::<BTreeMap<String, IgnoredAny>>(&got)
                .map(|m| m.into_keys().collect())
                .unwrap_or_default()
        } else {
            block_keys(text, line, column)
        };
        if let Some(unknown) = unknown_key(&key, &written) {
            let message = if flow {
                format!("{key}: {unknown}, in `{got}`")
            } else {
                format!("{key}: {unknown}")
            };
            return RuleError { position, message };
        }
    }
    let number = [
        "invalid u8",
        "invalid u16",
        "invalid u32",
        "invalid u64",
        "invalid i64",
    ]
    .iter()
    .any(|m| message.starts_with(m));
    let want = if number {
        Some("a whole number")
    } else if message == "expected string scalar"
        || message.starts_with("invalid type")
        || message.starts_with("invalid value")
        || message.starts_with("data did not match any variant")
    {
        expects(&key).or(if message == "expected string scalar" {
            Some("one value, not a list or mapping")
        } else {
            None
        })
    } else {
        None
    };
    // Other errors (an unknown field, bad YAML) already say what they are.
    let message = match want {
        Some(want) if !got.is_empty() => format!("{key}: expected {want}, got `{got}`"),
        Some(want) => format!("{key}: expected {want}"),
        None => message,
    };
    RuleError { position, message }
}
