//! The incident history: every incident version stored as Parquet under
//! the state directory, queried with read-only SQL (DataFusion).
//!
//! - [`HistoryWriter`] appends incident changes and flushes them as Parquet
//!   files, partitioned by day, committed atomically; it compacts small
//!   files as it goes ([`compact`]).
//! - [`Sql`] runs one read-only query at a time over the directory, with
//!   limits ([`QueryLimits`]), rendered as a table, CSV, JSON or NDJSON
//!   ([`Format`]); [`Sql::execute`] returns the record batches.
//!
//! # Tables
//!
//! Every table has the hive partition column `day` (`YYYY-MM-DD`, UTC): the
//! day the incident opened, i.e. of its `opened_at` when it was first
//! stored. All versions of an incident share it, even when a merge later
//! moves `opened_at` to an earlier instant. Filter on `day` to read only
//! some days' files; filters on the other columns prune by the files' and
//! pages' statistics. All instants are `TIMESTAMP` (µs, UTC).
//!
//! `incidents`: one row per incident version (every change `serve` or
//! `replay` stored):
//!
//! | column | type | meaning |
//! | --- | --- | --- |
//! | `id` | text | the incident id (stable across versions) |
//! | `version` | int | the incident's version (a `resolved` or `merged` line repeats the last one) |
//! | `ordinal` | int | position of this row in the store's append order: unique, increasing; joins the three tables |
//! | `change` | text | `opened`, `updated`, `resolved`, `merged` |
//! | `merged_into` | text, null | for `merged`: the surviving incident |
//! | `rule` | text | the rule that formed it |
//! | `kind` | text | `correlation` or `absence` |
//! | `title`, `severity`, `status` | text | as in the incident (`info`/`warning`/`critical`; `firing`/`resolved`) |
//! | `root_signal`, `root_summary` | text | the root cause's signal and summary |
//! | `root_kind`, `root_namespace`, `root_name`, `root_node` | text (namespace, node null) | the root cause's entity |
//! | `root_attributes` | map<text, text> | what the root signal captured: `root_attributes['port']` |
//! | `opened_at`, `first_seen`, `last_seen` | timestamp | when it opened; its first and last signal |
//! | `resolved_at` | timestamp, null | when it resolved |
//! | `resolved_by` | text, null | why it resolved |
//! | `recorded_at` | timestamp | when this version was stored (wall time in `serve`, event time in `replay`) |
//! | `affected` | int | entities in the blast radius |
//! | `affected_namespaces`, `affected_nodes` | int | distinct namespaces and nodes among them |
//! | `signals` | int | records folded into the incident |
//! | `seq` | int, null | the change's outbox sequence number |
//!
//! `incident_entities`: per version, its root (`role = 'root'`) and every
//! affected entity (`role = 'affected'`): `id`, `version`, `ordinal`,
//! `role`, `member_role` (for affected entities: `cause`, `effect`,
//! `evidence`, `condition` or `merged`), `entity_kind`, `namespace`,
//! `name`, `node`, `signal`, `day`.
//!
//! `incident_signals`: per version, which records each rule absorbed, one
//! row per tie of the explanation: `id`, `version`, `ordinal`, `rule`,
//! `signal`, `source` (the signal's source(s) from the rule pack,
//! `unknown` when not known), `role` (the tie's: `cause`, `effect`, ...),
//! `entity` (its key, `Pod/ns/name`), `entity_kind`, `namespace`, `name`,
//! `node`, `records`, `first_seen`, `last_seen`, `day`.
//!
//! `incident_documents`: per version, the whole incident as JSON: `id`,
//! `version`, `ordinal`, `change`, `document` (the object `replay` prints,
//! plus `change` and `merged_into`), `day`. The API's
//! `/api/v1/incidents/{id}` answers from it. A table of its own so that
//! queries over the narrow tables never read the documents.
//!
//! `epicenter query --tables` and `--describe TABLE` print this from
//! [`Table::about`] and [`Table::columns`].
//!
//! `incidents_latest`: the columns of `incidents`, one row per id, its
//! newest version (highest `version`, then `ordinal`). A table, not a
//! view: the writer rewrites a day's file at each flush that adds versions
//! to it ([`latest`]), so reading it costs what reading that many incidents
//! costs, and a `day` filter prunes it like the others.
//!
//! ```sql
//! -- root causes this month
//! SELECT root_signal, count(*) FROM incidents_latest
//!  WHERE day >= '2026-03-01' GROUP BY root_signal ORDER BY 2 DESC;
//! -- namespaces most often in a blast radius
//! SELECT e.namespace, count(DISTINCT e.id) FROM incidents_latest l
//!   JOIN incident_entities e ON e.day = l.day AND e.ordinal = l.ordinal
//!  WHERE e.role = 'affected' GROUP BY 1 ORDER BY 2 DESC LIMIT 10;
//! ```
//!
//! # Layout and crash safety
//!
//! `<dir>/<table>/day=YYYY-MM-DD/*.parquet`, plus `<dir>/HEAD` (the commit
//! record) and `<dir>/LOCK`. How a flush commits atomically across tables,
//! why a crash never leaves a half file visible, and how `last_seq()` is
//! exact across a reopen: [`store`]. How compaction merges files without
//! ever losing a row or showing one twice: [`compact`].
//!
//! # Read-only SQL
//!
//! One statement, a query, reading only the store's tables: see [`guard`]
//! for what is refused and how. Limits and sessions: [`sql`].

mod compact;
mod format;
mod guard;
mod latest;
mod schema;
mod sql;
mod sql_error;
mod store;
mod writer;

use std::path::PathBuf;

#[doc(hidden)]
pub use compact::CompactStep;
pub use compact::{CompactStats, CompactionPolicy};
pub use format::Format;
pub use schema::{DAY, Table};
pub use sql::{QueryError, QueryLimits, QueryOutput, Sql};
pub use store::Tuning;
#[doc(hidden)]
pub use writer::FlushStep;
pub use writer::{FlushStats, HistoryWriter};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parquet {
        path: PathBuf,
        source: datafusion::parquet::errors::ParquetError,
    },
    #[error("{what}: {source}")]
    Arrow {
        what: String,
        source: datafusion::arrow::error::ArrowError,
    },
    #[error("{path}: not a history commit record: {reason}")]
    Head { path: PathBuf, reason: String },
    #[error("{path}: another writer holds the history store")]
    Locked { path: PathBuf },
    #[error("{path}: the history writer stopped after a failed write ({reason}); reopen it")]
    Poisoned { path: PathBuf, reason: String },
    #[error("reading the history at {dir}: {reason}")]
    Query { dir: PathBuf, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
