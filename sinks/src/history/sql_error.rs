//! A DataFusion error said in plain words, for whoever wrote the query.
//!
//! DataFusion's own text is written for its developers: a syntax error is
//! `SQL error: ParserError("Expected: ...")`, a type error comes wrapped in
//! the names of optimizer passes (`type_coercion\ncaused by\nError during
//! planning: ...`). [`explain`] finds the error at the root of the chain
//! and says it in one line, with its place in the SQL (line and column)
//! when the parser or planner gives one:
//!
//! - a syntax error: `SQL syntax error at line 1, column 17: expected an
//!   expression, found `=``;
//! - an unknown table: `no table named `foo` (line 1, column 15): the tables
//!   are incidents, ...`;
//! - an unknown column: `no column named `foo` in incidents (line 1, column
//!   8); its columns are id, cluster, version, ...` (with DataFusion's closest name,
//!   `perhaps `version``, when it has one);
//! - anything else: the root error's message without DataFusion's prefixes
//!   (`Error during planning: `, `Schema error: `, `Arrow error: `, ...) or
//!   the wrappers around it, on one line.
//!
//! Positions exist for column references only when the session collects
//! spans (`datafusion.sql_parser.collect_spans`, on in [`super::sql`]).
//! DataFusion's original text is logged at debug level.

use datafusion::arrow::error::ArrowError;
use datafusion::common::{Column, DataFusionError, SchemaError};
use datafusion::sql::sqlparser::parser::ParserError;

/// `e` in plain words, one line; `tables` are the tables a query may read
/// (listed when it names another).
pub(crate) fn explain(e: &DataFusionError, tables: &[&str]) -> String {
    tracing::debug!(error = %e.strip_backtrace(), "query failed");
    let root = e.find_root();
    let at = position(e);
    match root {
        DataFusionError::SQL(p, _) => syntax(p),
        DataFusionError::SchemaError(s, _) => match s.as_ref() {
            SchemaError::FieldNotFound {
                field,
                valid_fields,
            } => no_column(field, valid_fields, &at, &s.to_string()),
            other => finish(&other.to_string(), &at),
        },
        DataFusionError::Plan(m) => {
            if let Some(name) = unknown_table(e, m) {
                format!(
                    "no table named `{name}`{at}: the tables are {}",
                    tables.join(", ")
                )
            } else if let Some(rest) = m.strip_prefix("Invalid function '")
                && let Some((name, rest)) = rest.split_once('\'')
            {
                let hint = rest
                    .split_once("Did you mean '")
                    .and_then(|(_, s)| s.split_once('\''))
                    .map_or(String::new(), |(s, _)| format!(", perhaps `{s}`"));
                format!("no function named `{name}`{at}{hint}")
            } else if m.starts_with("Column in SELECT must be in GROUP BY")
                && let Some(d) = e.diagnostic()
            {
                // The diagnostic says it shorter, with what to do.
                let help = d
                    .helps
                    .first()
                    .map_or(String::new(), |h| format!("; {}", sentence(&h.message)));
                format!("{}{at}{help}", sentence(&d.message))
            } else {
                finish(m, &at)
            }
        }
        DataFusionError::ArrowError(a, _) => finish(&arrow(a), &at),
        other => finish(&other.message(), &at),
    }
}

/// ` (line L, column C)` of the outermost diagnostic that has a place.
struct At(Option<(u64, u64)>);

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some((line, column)) => write!(f, " (line {line}, column {column})"),
            None => Ok(()),
        }
    }
}

fn position(e: &DataFusionError) -> At {
    At(e.diagnostic()
        .and_then(|d| d.span)
        .map(|s| (s.start.line, s.start.column))
        .filter(|&(line, _)| line > 0))
}

/// sqlparser's error (its place is part of the text: ` at Line: L, Column:
/// C`).
fn syntax(p: &ParserError) -> String {
    let text = match p {
        ParserError::TokenizerError(s) | ParserError::ParserError(s) => s.as_str(),
        ParserError::RecursionLimitExceeded => {
            return "SQL syntax error: the query nests too deeply".to_string();
        }
    };
    let (text, place) = match text.rsplit_once(" at Line: ") {
        Some((text, place)) => match place.split_once(", Column: ") {
            Some((line, column)) => (text, format!(" at line {line}, column {column}")),
            None => (text, String::new()),
        },
        None => (text, String::new()),
    };
    if let Some(rest) = text.strip_prefix("Expected: ")
        && let Some((expected, found)) = rest.rsplit_once(", found: ")
    {
        if found == "EOF" {
            return format!("SQL syntax error at the end of the query: expected {expected}");
        }
        return format!("SQL syntax error{place}: expected {expected}, found `{found}`");
    }
    format!("SQL syntax error{place}: {}", sentence(text))
}

/// The name of the table a planning error says is not there. The
/// diagnostic names it as written; the error itself fully qualified.
fn unknown_table(e: &DataFusionError, message: &str) -> Option<String> {
    let named = |m: &str| {
        m.strip_prefix("table '")
            .and_then(|m| m.strip_suffix("' not found"))
            .map(str::to_string)
    };
    let root = named(message)?;
    Some(
        e.diagnostic()
            .and_then(|d| named(&d.message))
            .unwrap_or_else(|| {
                root.strip_prefix("datafusion.public.")
                    .unwrap_or(&root)
                    .to_string()
            }),
    )
}

fn no_column(field: &Column, valid: &[Column], at: &At, text: &str) -> String {
    let valid: Vec<&Column> = match &field.relation {
        Some(r) => valid
            .iter()
            .filter(|c| c.relation.as_ref() == Some(r))
            .collect(),
        None => valid.iter().collect(),
    };
    let mut relations: Vec<String> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for c in &valid {
        if let Some(r) = &c.relation {
            let r = r.to_string();
            if !relations.contains(&r) {
                relations.push(r);
            }
        }
        if !names.contains(&c.name.as_str()) {
            names.push(&c.name);
        }
    }
    if let (Some(r), true) = (&field.relation, relations.is_empty()) {
        relations.push(r.to_string());
    }
    let mut out = format!("no column named `{}`", field.name);
    if !relations.is_empty() {
        out.push_str(" in ");
        out.push_str(&relations.join(", "));
    }
    out.push_str(&at.to_string());
    // DataFusion's closest name (`Did you mean 'i.version'?`), unqualified,
    // if it is one of the names listed.
    if let Some((_, rest)) = text.split_once("Did you mean '")
        && let Some((closest, _)) = rest.split_once("'?")
    {
        let closest = closest
            .rsplit('.')
            .next()
            .unwrap_or(closest)
            .trim_matches('"');
        if names.contains(&closest) {
            out.push_str(&format!(", perhaps `{closest}`"));
        }
    }
    if names.is_empty() {
        out.push_str(if field.relation.is_some() {
            ": it has no columns"
        } else {
            ": the query reads no table"
        });
    } else {
        let whose = if relations.len() > 1 { "their" } else { "its" };
        out.push_str(&format!("; {whose} columns are {}", names.join(", ")));
    }
    out
}

/// An Arrow error's own text, without `Cast error: ` and the like.
fn arrow(a: &ArrowError) -> String {
    match a {
        ArrowError::ParseError(s) => match s
            .strip_prefix("Error parsing timestamp from '")
            .and_then(|s| s.split_once("': "))
        {
            Some((value, why)) => format!(
                "'{value}' is not a timestamp ({why}); write one as '2026-03-16' or \
                 '2026-03-16T08:00:00Z'"
            ),
            None => s.clone(),
        },
        ArrowError::CastError(s)
        | ArrowError::ComputeError(s)
        | ArrowError::InvalidArgumentError(s)
        | ArrowError::ArithmeticOverflow(s)
        | ArrowError::NotYetImplemented(s)
        | ArrowError::SchemaError(s) => s.clone(),
        ArrowError::DivideByZero => "division by zero".to_string(),
        other => other.to_string(),
    }
}

/// DataFusion's prefixes, as its `Display` writes them.
const PREFIXES: [&str; 14] = [
    "Error during planning: ",
    "Schema error: ",
    "Arrow error: ",
    "Execution error: ",
    "SQL error: ",
    "External error: ",
    "Internal error: ",
    "This feature is not implemented: ",
    "Invalid or Unsupported Configuration: ",
    "Object Store error: ",
    "Parquet error: ",
    "IO error: ",
    "Cast error: ",
    "Parser error: ",
];

/// One line: the lines of `text` that are not wrappers, each without its
/// prefixes, then the place.
fn finish(text: &str, at: &At) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for line in text.lines() {
        let mut line = line.trim();
        while let Some(rest) = PREFIXES.iter().find_map(|p| line.strip_prefix(p)) {
            line = rest.trim_start();
        }
        if line.is_empty() || wrapper(line) {
            continue;
        }
        parts.push(line);
    }
    let joined = parts.join(" ");
    let mut out = sentence(&joined);
    if out.is_empty() {
        out = "the query failed".to_string();
    }
    out.push_str(&at.to_string());
    out
}

/// A line DataFusion puts around the error: `caused by`, or the name of the
/// planning step it failed in.
fn wrapper(line: &str) -> bool {
    line == "caused by"
        || line == "type_coercion"
        || (line.starts_with("Optimizer rule '") && line.ends_with("' failed"))
}

/// `text` as part of a sentence: its first letter small unless it starts
/// an acronym or a name (`SQL`, `Utf8`), whitespace collapsed.
fn sentence(text: &str) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(a), Some(b)) if a.is_uppercase() && b.is_lowercase() => {
            a.to_lowercase().chain(text.chars().skip(1)).collect()
        }
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Format, QueryError, QueryLimits, Sql, Table};

    /// The tables of the history, for the expected texts.
    fn tables() -> String {
        Table::ALL.map(Table::name).join(", ")
    }

    /// Each bad query, through the real [`Sql`] (an empty history: the
    /// same session, parser and planner as `epicenter query`), and what
    /// its error must say.
    #[tokio::test]
    async fn every_error_is_said_in_plain_words() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let sql = Sql::open(dir.path(), QueryLimits::default())
            .await
            .expect("an empty history opens");
        let no_table = format!(
            "no table named `passwd` (line 1, column 15): the tables are {}",
            tables()
        );
        let cases: &[(&str, &str)] = &[
            // Syntax errors: the place, what was expected, what was found.
            (
                "SELECT id FROM incidents WHERE version = = 3",
                "SQL syntax error at line 1, column 42: expected an expression, found `=`",
            ),
            (
                "SELEC id FROM incidents",
                "SQL syntax error at line 1, column 1: expected an SQL statement, found `SELEC`",
            ),
            (
                "SELECT id\nFROM incidents\nWHERE id = = 'x'",
                "SQL syntax error at line 3, column 12: expected an expression, found `=`",
            ),
            (
                "SELECT id FROM incidents WHERE",
                "SQL syntax error at the end of the query: expected an expression",
            ),
            (
                "SELECT id FROM incidents WHERE id = 'x",
                "SQL syntax error at line 1, column 37: unterminated string literal",
            ),
            // Unknown tables: the tables there are.
            ("SELECT * FROM passwd", &no_table),
            (
                "SELECT i.id FROM incidents i\n  JOIN incident_notes n ON i.id = n.id",
                "no table named `incident_notes` (line 2, column 8): the tables are incidents,",
            ),
            // Unknown columns: the columns there are, unqualified, once.
            (
                "SELECT nope FROM incidents",
                "no column named `nope` in incidents (line 1, column 8); its columns are id, cluster, version, ordinal, change,",
            ),
            (
                "SELECT id, vesion FROM incidents_latest",
                "no column named `vesion` in incidents_latest (line 1, column 12), perhaps `version`; its columns are id, cluster, version,",
            ),
            (
                "SELECT i.nope FROM incidents i JOIN incident_entities e ON i.ordinal = e.ordinal",
                "no column named `nope` in i (line 1, column 8); its columns are id, cluster, version,",
            ),
            (
                "SELECT member FROM incidents i JOIN incident_entities e ON i.ordinal = e.ordinal",
                "no column named `member` in i, e (line 1, column 8), perhaps `member_role`; their columns are id, cluster, version,",
            ),
            // Type errors: one sentence, no wrappers.
            (
                "SELECT id FROM incidents WHERE opened_at > 'yesterday'",
                "'yesterday' is not a timestamp (timestamp must contain at least 10 characters); \
                 write one as '2026-03-16' or '2026-03-16T08:00:00Z'",
            ),
            (
                "SELECT id FROM incidents WHERE opened_at > 3.5",
                "cannot infer common argument type for comparison operation Timestamp(µs, \"UTC\") > Float64",
            ),
            (
                "SELECT id + 1 FROM incidents",
                "cannot coerce arithmetic expression Utf8 + Int64 to valid types (line 1, column 8)",
            ),
            (
                "SELECT id FROM incidents WHERE version = 'seven'",
                "cannot cast string 'seven' to value of Int64 type",
            ),
            // Anything else: its message, no prefixes, one line.
            (
                "SELECT nosuchfn(id) FROM incidents",
                "no function named `nosuchfn` (line 1, column 8), perhaps `",
            ),
            ("SELECT 1 / 0", "division by zero"),
            (
                "SELECT id, count(*) FROM incidents",
                "'incidents.id' must appear in GROUP BY clause because it's not an aggregate expression \
                 (line 1, column 8); either add 'incidents.id' to GROUP BY clause, or use an aggregate \
                 function like ANY_VALUE(incidents.id)",
            ),
        ];
        let mut failed = Vec::new();
        for (statement, expected) in cases {
            match sql.query(statement, Format::Csv).await {
                Err(QueryError::Invalid(text)) => {
                    let clean = ![
                        "ParserError(",
                        "caused by",
                        "Error during planning",
                        "Schema error",
                        "Arrow error",
                        "type_coercion",
                        "datafusion.public",
                        "\n",
                    ]
                    .iter()
                    .any(|w| text.contains(w));
                    if !text.contains(expected) || !clean {
                        failed.push(format!(
                            "{statement:?}\n  expected: {expected}\n  got:      {text}"
                        ));
                    }
                }
                other => failed.push(format!(
                    "{statement:?}\n  expected: {expected}\n  got {other:?}"
                )),
            }
        }
        assert!(failed.is_empty(), "{}", failed.join("\n"));
    }
}
