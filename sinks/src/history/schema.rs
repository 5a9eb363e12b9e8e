//! The tables' Arrow schemas and the rows one incident version adds to
//! each of the three appended ones (`incidents_latest` is derived from
//! `incidents` at flush: [`super::latest`]).
//!
//! An [`IncidentChange`] becomes one `incidents` row, one `incident_entities`
//! row per entity (its root, then every affected entity), one
//! `incident_signals` row per tie of its explanation, and one
//! `incident_documents` row: the whole document as JSON, kept apart from the
//! narrow tables so that analytic queries never read it. Rows are appended
//! straight into Arrow builders (no intermediate copy of the document), one
//! set of builders per day partition, and [`TableRows::finish`] turns them
//! into the record batch a Parquet file is written from.
//!
//! Design choices: integers are `Int64` (SQL users subtract versions and
//! counts; unsigned types would fail on `0 - 1`), instants are
//! `Timestamp(µs, "UTC")` (event time is µs), strings are plain `Utf8`
//! (Parquet dictionary-encodes the repetitive ones on disk), and the root
//! cause's attributes are a `Map<Utf8, Utf8>` so `root_attributes['port']`
//! reads one attribute. Every row carries `ordinal`, the store-wide position
//! of its incident version in append order: unique, so it joins the three
//! tables without ambiguity (an incident's `resolved` line repeats the
//! `version` of its last `updated` line).

use std::sync::{Arc, LazyLock};

use correlate::EventTime;
use correlate::incident::Role;
use datafusion::arrow::array::{
    ArrayRef, Int64Builder, MapBuilder, MapFieldNames, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::error::ArrowError;

use crate::change::IncidentChange;

/// The tables of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Incidents,
    Entities,
    Signals,
    /// The whole document of each version (JSON), for showing an incident.
    Documents,
    /// The newest row of `incidents` per id, rewritten per day at flush.
    Latest,
}

impl Table {
    /// Every table stored (each a directory of the store).
    pub const ALL: [Table; 5] = [
        Table::Incidents,
        Table::Entities,
        Table::Signals,
        Table::Documents,
        Table::Latest,
    ];
    /// The tables every incident version appends rows to (and compaction
    /// merges); `incidents_latest` is rewritten instead.
    pub const APPENDED: [Table; 4] = [
        Table::Incidents,
        Table::Entities,
        Table::Signals,
        Table::Documents,
    ];

    /// The table's SQL name, also its directory under the store.
    pub fn name(self) -> &'static str {
        match self {
            Table::Incidents => "incidents",
            Table::Entities => "incident_entities",
            Table::Signals => "incident_signals",
            Table::Documents => "incident_documents",
            Table::Latest => "incidents_latest",
        }
    }

    /// The columns stored in the table's files (without the `day` partition
    /// column, which is the directory).
    pub fn file_schema(self) -> SchemaRef {
        match self {
            Table::Incidents | Table::Latest => Arc::clone(&INCIDENTS),
            Table::Entities => Arc::clone(&ENTITIES),
            Table::Signals => Arc::clone(&SIGNALS),
            Table::Documents => Arc::clone(&DOCUMENTS),
        }
    }

    /// The columns a sort of the table's files follows: an incident's
    /// versions together, in order.
    pub fn sort_columns(self) -> &'static [&'static str] {
        &["id", "ordinal"]
    }
}

/// One column of a table, for `epicenter query --describe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDoc {
    pub name: String,
    /// The SQL type, as DataFusion names it.
    pub data_type: String,
    pub nullable: bool,
    pub meaning: &'static str,
}

impl Table {
    /// What one row of the table is.
    pub fn about(self) -> &'static str {
        match self {
            Table::Incidents => "one row per incident version (every change stored)",
            Table::Entities => "per version, its root and every affected entity",
            Table::Signals => {
                "per version, one row per tie of its explanation: which records each signal absorbed"
            }
            Table::Documents => {
                "per version, the whole incident as JSON (what replay prints, plus `change`)"
            }
            Table::Latest => "the columns of `incidents`, one row per id: its newest version",
        }
    }

    /// The table's columns (the `day` partition last), with their meaning.
    pub fn columns(self) -> Vec<ColumnDoc> {
        let schema = self.file_schema();
        let mut columns: Vec<ColumnDoc> = schema
            .fields()
            .iter()
            .map(|f| ColumnDoc {
                name: f.name().clone(),
                data_type: f.data_type().to_string(),
                nullable: f.is_nullable(),
                meaning: column_meaning(self, f.name()),
            })
            .collect();
        columns.push(ColumnDoc {
            name: DAY.to_string(),
            data_type: DataType::Utf8.to_string(),
            nullable: false,
            meaning: "partition: the UTC day (YYYY-MM-DD) the incident opened; filter on it to read fewer files",
        });
        columns
    }
}

fn column_meaning(table: Table, column: &str) -> &'static str {
    match (table, column) {
        (_, "id") => "the incident id, stable across versions",
        (_, "cluster") => "the cluster it happened in (null: records named none)",
        (_, "version") => "the incident's version (a resolved or merged line repeats the last one)",
        (_, "ordinal") => {
            "position of the row's version in the store's append order: unique; joins the tables"
        }
        (_, "change") => "opened, updated, resolved or merged",
        (_, "merged_into") => "for merged: the surviving incident",
        (_, "rule") => "the rule that formed it",
        (_, "kind") => "correlation or absence",
        (_, "title") => "the line a person reads first",
        (_, "severity") => "critical, warning or info",
        (_, "status") => "firing or resolved",
        (_, "root_signal") => "the root cause's signal",
        (_, "root_summary") => "the root cause's summary",
        (_, "root_kind" | "root_namespace" | "root_name" | "root_node") => {
            "the root cause's entity"
        }
        (_, "root_attributes") => "what the root signal captured: root_attributes['port']",
        (Table::Signals, "first_seen") => "the tie's first record",
        (Table::Signals, "last_seen") => "the tie's last record",
        (_, "opened_at") => "when it opened (event time)",
        (_, "first_seen") => "its first signal",
        (_, "last_seen") => "its last signal",
        (_, "resolved_at") => "when it resolved",
        (_, "resolved_by") => "why it resolved",
        (_, "recorded_at") => {
            "when this version was stored (wall time in serve, event time in replay)"
        }
        (_, "affected") => "entities in the blast radius",
        (_, "affected_namespaces") => "distinct namespaces in the blast radius",
        (_, "affected_nodes") => "distinct nodes in the blast radius",
        (_, "signals") => "records folded into the incident",
        (_, "seq") => "the change's outbox sequence number",
        (_, "role") if table == Table::Entities => "root or affected",
        (_, "role") => "the tie's role: cause, effect, evidence, condition or merged",
        (_, "member_role") => "for affected entities: cause, effect, evidence, condition or merged",
        (_, "entity_kind") => "the entity's kind",
        (_, "namespace") => "the entity's namespace",
        (_, "name") => "the entity's name",
        (_, "node") => "the entity's node",
        (_, "signal") => "the signal it showed",
        (_, "source") => "the signal's source(s) from the rule pack (unknown when not known)",
        (_, "entity") => "the entity's key, Kind/namespace/name",
        (_, "records") => "records of this signal from this entity",
        (_, "document") => "the incident version as JSON, shaped as replay prints it",
        _ => "",
    }
}

/// The hive partition column every table has: the UTC day (`YYYY-MM-DD`)
/// the incident opened.
pub const DAY: &str = "day";

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, false)
}

fn text_or_null(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn int(name: &str) -> Field {
    Field::new(name, DataType::Int64, false)
}

fn map_keys() -> Field {
    Field::new("keys", DataType::Utf8, false)
}

fn map_values() -> Field {
    Field::new("values", DataType::Utf8, true)
}

fn attributes_type() -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(vec![map_keys(), map_values()].into()),
            false,
        )),
        false,
    )
}

static INCIDENTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        text("id"),
        text_or_null("cluster"),
        int("version"),
        int("ordinal"),
        text("change"),
        text_or_null("merged_into"),
        text("rule"),
        text("kind"),
        text("title"),
        text("severity"),
        text("status"),
        text("root_signal"),
        text("root_summary"),
        text("root_kind"),
        text_or_null("root_namespace"),
        text("root_name"),
        text_or_null("root_node"),
        Field::new("root_attributes", attributes_type(), false),
        Field::new("opened_at", ts(), false),
        Field::new("first_seen", ts(), false),
        Field::new("last_seen", ts(), false),
        Field::new("resolved_at", ts(), true),
        text_or_null("resolved_by"),
        Field::new("recorded_at", ts(), false),
        int("affected"),
        int("affected_namespaces"),
        int("affected_nodes"),
        int("signals"),
        Field::new("seq", DataType::Int64, true),
    ]))
});

static ENTITIES: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        text("id"),
        int("version"),
        int("ordinal"),
        text("role"),
        text_or_null("member_role"),
        text("entity_kind"),
        text_or_null("namespace"),
        text("name"),
        text_or_null("node"),
        text("signal"),
    ]))
});

static SIGNALS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        text("id"),
        int("version"),
        int("ordinal"),
        text("rule"),
        text("signal"),
        text("source"),
        text("role"),
        text("entity"),
        text("entity_kind"),
        text_or_null("namespace"),
        text("name"),
        text_or_null("node"),
        int("records"),
        Field::new("first_seen", ts(), false),
        Field::new("last_seen", ts(), false),
    ]))
});

static DOCUMENTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        text("id"),
        int("version"),
        int("ordinal"),
        text("change"),
        text("document"),
    ]))
});

/// The UTC calendar day of an instant, `YYYY-MM-DD` (proleptic Gregorian;
/// never fails, whatever the instant).
pub(super) fn day_of(t: EventTime) -> String {
    const DAY_US: i64 = 86_400_000_000;
    let days = t.as_micros().div_euclid(DAY_US);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Whether `s` is a day as [`day_of`] writes it (the name of a partition).
pub(super) fn is_day(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

pub(super) fn role_name(r: Role) -> &'static str {
    match r {
        Role::Cause => "cause",
        Role::Effect => "effect",
        Role::Evidence => "evidence",
        Role::Condition => "condition",
        Role::Merged => "merged",
    }
}

fn severity_name(s: correlate::Severity) -> &'static str {
    match s {
        correlate::Severity::Info => "info",
        correlate::Severity::Warning => "warning",
        correlate::Severity::Critical => "critical",
    }
}

fn status_name(s: correlate::Status) -> &'static str {
    match s {
        correlate::Status::Pending => "pending",
        correlate::Status::Firing => "firing",
        correlate::Status::Resolved => "resolved",
    }
}

fn ts_builder() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone("UTC")
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn int_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// An entity named by its key in `explanation.ties` (`Kind/namespace/name`,
/// or `Kind/name` when cluster-scoped).
struct EntityKey<'a> {
    kind: &'a str,
    namespace: Option<&'a str>,
    name: &'a str,
}

fn parse_entity_key(key: &str) -> EntityKey<'_> {
    let mut parts = key.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(kind), Some(ns), Some(name)) => EntityKey {
            kind,
            namespace: Some(ns),
            name,
        },
        (Some(kind), Some(name), None) => EntityKey {
            kind,
            namespace: None,
            name,
        },
        _ => EntityKey {
            kind: "",
            namespace: None,
            name: key,
        },
    }
}

/// What one version adds to the `incidents` table.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stamp {
    pub recorded_at: EventTime,
    pub seq: Option<u64>,
    pub ordinal: u64,
}

/// Builders of one table's rows for one day.
pub(super) enum TableRows {
    Incidents(Box<IncidentRows>),
    Entities(Box<EntityRows>),
    Signals(Box<SignalRows>),
    Documents(Box<DocumentRows>),
}

impl std::fmt::Debug for TableRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TableRows({:?}, {} rows)", self.table(), self.len())
    }
}

impl TableRows {
    /// Empty builders for each table an incident version appends to.
    pub(super) fn appended() -> [TableRows; 4] {
        [
            TableRows::Incidents(Box::default()),
            TableRows::Entities(Box::default()),
            TableRows::Signals(Box::default()),
            TableRows::Documents(Box::default()),
        ]
    }

    pub(super) fn table(&self) -> Table {
        match self {
            TableRows::Incidents(_) => Table::Incidents,
            TableRows::Entities(_) => Table::Entities,
            TableRows::Signals(_) => Table::Signals,
            TableRows::Documents(_) => Table::Documents,
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            TableRows::Incidents(r) => r.rows,
            TableRows::Entities(r) => r.rows,
            TableRows::Signals(r) => r.rows,
            TableRows::Documents(r) => r.rows,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the rows `change` adds to this table.
    pub(super) fn append(
        &mut self,
        change: &IncidentChange,
        stamp: Stamp,
        sources: &dyn Fn(&str) -> String,
    ) {
        match self {
            TableRows::Incidents(r) => r.append(change, stamp),
            TableRows::Entities(r) => r.append(change, stamp.ordinal),
            TableRows::Signals(r) => r.append(change, stamp.ordinal, sources),
            TableRows::Documents(r) => r.append(change, stamp.ordinal),
        }
    }

    /// The rows so far as a batch of the table's file schema; the builders
    /// are empty afterwards.
    pub(super) fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let table = self.table();
        let columns = match self {
            TableRows::Incidents(r) => r.finish(),
            TableRows::Entities(r) => r.finish(),
            TableRows::Signals(r) => r.finish(),
            TableRows::Documents(r) => r.finish(),
        };
        RecordBatch::try_new(table.file_schema(), columns)
    }
}

pub(super) struct IncidentRows {
    rows: usize,
    id: StringBuilder,
    version: Int64Builder,
    ordinal: Int64Builder,
    change: StringBuilder,
    merged_into: StringBuilder,
    rule: StringBuilder,
    kind: StringBuilder,
    title: StringBuilder,
    severity: StringBuilder,
    status: StringBuilder,
    root_signal: StringBuilder,
    root_summary: StringBuilder,
    root_kind: StringBuilder,
    root_namespace: StringBuilder,
    root_name: StringBuilder,
    root_node: StringBuilder,
    cluster: StringBuilder,
    root_attributes: MapBuilder<StringBuilder, StringBuilder>,
    opened_at: TimestampMicrosecondBuilder,
    first_seen: TimestampMicrosecondBuilder,
    last_seen: TimestampMicrosecondBuilder,
    resolved_at: TimestampMicrosecondBuilder,
    resolved_by: StringBuilder,
    recorded_at: TimestampMicrosecondBuilder,
    affected: Int64Builder,
    affected_namespaces: Int64Builder,
    affected_nodes: Int64Builder,
    signals: Int64Builder,
    seq: Int64Builder,
}

impl Default for IncidentRows {
    fn default() -> Self {
        IncidentRows {
            rows: 0,
            id: StringBuilder::new(),
            version: Int64Builder::new(),
            ordinal: Int64Builder::new(),
            change: StringBuilder::new(),
            merged_into: StringBuilder::new(),
            rule: StringBuilder::new(),
            kind: StringBuilder::new(),
            title: StringBuilder::new(),
            severity: StringBuilder::new(),
            status: StringBuilder::new(),
            root_signal: StringBuilder::new(),
            root_summary: StringBuilder::new(),
            root_kind: StringBuilder::new(),
            root_namespace: StringBuilder::new(),
            root_name: StringBuilder::new(),
            root_node: StringBuilder::new(),
            cluster: StringBuilder::new(),
            root_attributes: MapBuilder::new(
                Some(MapFieldNames::default()),
                StringBuilder::new(),
                StringBuilder::new(),
            )
            .with_keys_field(map_keys())
            .with_values_field(map_values()),
            opened_at: ts_builder(),
            first_seen: ts_builder(),
            last_seen: ts_builder(),
            resolved_at: ts_builder(),
            resolved_by: StringBuilder::new(),
            recorded_at: ts_builder(),
            affected: Int64Builder::new(),
            affected_namespaces: Int64Builder::new(),
            affected_nodes: Int64Builder::new(),
            signals: Int64Builder::new(),
            seq: Int64Builder::new(),
        }
    }
}

impl IncidentRows {
    fn append(&mut self, c: &IncidentChange, stamp: Stamp) {
        let r = &c.incident;
        let root = &r.root_cause;
        self.rows += 1;
        self.id.append_value(&r.id);
        self.cluster.append_option(r.cluster.as_deref());
        self.version.append_value(i64::from(r.version));
        self.ordinal.append_value(int_of(stamp.ordinal));
        self.change.append_value(c.change.as_str());
        self.merged_into.append_option(c.merged_into.as_deref());
        self.rule.append_value(&r.rule);
        self.kind.append_value(r.explanation.kind.as_str());
        self.title.append_value(&r.title);
        self.severity.append_value(severity_name(r.severity));
        self.status.append_value(status_name(r.status));
        self.root_signal.append_value(&root.signal);
        self.root_summary.append_value(&root.summary);
        self.root_kind.append_value(&root.entity.kind);
        self.root_namespace
            .append_option(root.entity.namespace.as_deref());
        self.root_name.append_value(&root.entity.name);
        self.root_node.append_option(root.entity.node.as_deref());
        for (k, v) in &root.attributes {
            self.root_attributes.keys().append_value(k);
            self.root_attributes.values().append_value(v);
        }
        // Only fails when the key and value counts differ: they never do.
        let _ = self.root_attributes.append(true);
        self.opened_at.append_value(r.opened_at.as_micros());
        self.first_seen.append_value(r.first_seen.as_micros());
        self.last_seen.append_value(r.last_seen.as_micros());
        self.resolved_at
            .append_option(r.resolved_at.map(EventTime::as_micros));
        self.resolved_by
            .append_option(r.explanation.resolved_by.as_deref());
        self.recorded_at.append_value(stamp.recorded_at.as_micros());
        let (namespaces, nodes) = r.spread();
        self.affected.append_value(count(r.affected.len()));
        self.affected_namespaces.append_value(count(namespaces));
        self.affected_nodes.append_value(count(nodes));
        self.signals.append_value(int_of(r.signals));
        self.seq.append_option(stamp.seq.map(int_of));
    }

    fn finish(&mut self) -> Vec<ArrayRef> {
        self.rows = 0;
        vec![
            Arc::new(self.id.finish()),
            Arc::new(self.cluster.finish()),
            Arc::new(self.version.finish()),
            Arc::new(self.ordinal.finish()),
            Arc::new(self.change.finish()),
            Arc::new(self.merged_into.finish()),
            Arc::new(self.rule.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.title.finish()),
            Arc::new(self.severity.finish()),
            Arc::new(self.status.finish()),
            Arc::new(self.root_signal.finish()),
            Arc::new(self.root_summary.finish()),
            Arc::new(self.root_kind.finish()),
            Arc::new(self.root_namespace.finish()),
            Arc::new(self.root_name.finish()),
            Arc::new(self.root_node.finish()),
            Arc::new(self.root_attributes.finish()),
            Arc::new(self.opened_at.finish()),
            Arc::new(self.first_seen.finish()),
            Arc::new(self.last_seen.finish()),
            Arc::new(self.resolved_at.finish()),
            Arc::new(self.resolved_by.finish()),
            Arc::new(self.recorded_at.finish()),
            Arc::new(self.affected.finish()),
            Arc::new(self.affected_namespaces.finish()),
            Arc::new(self.affected_nodes.finish()),
            Arc::new(self.signals.finish()),
            Arc::new(self.seq.finish()),
        ]
    }
}

/// `incident_documents`: the change as the change stream writes it.
#[derive(Default)]
pub(super) struct DocumentRows {
    rows: usize,
    id: StringBuilder,
    version: Int64Builder,
    ordinal: Int64Builder,
    change: StringBuilder,
    document: StringBuilder,
}

impl DocumentRows {
    fn append(&mut self, c: &IncidentChange, ordinal: u64) {
        self.rows += 1;
        self.id.append_value(&c.incident.id);
        self.version.append_value(i64::from(c.incident.version));
        self.ordinal.append_value(int_of(ordinal));
        self.change.append_value(c.change.as_str());
        // Serialising plain data into a string cannot fail; if it ever
        // did, the row says so rather than losing its place.
        let json = serde_json::to_string(c)
            .unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()));
        self.document.append_value(json);
    }

    fn finish(&mut self) -> Vec<ArrayRef> {
        self.rows = 0;
        vec![
            Arc::new(self.id.finish()),
            Arc::new(self.version.finish()),
            Arc::new(self.ordinal.finish()),
            Arc::new(self.change.finish()),
            Arc::new(self.document.finish()),
        ]
    }
}

pub(super) struct EntityRows {
    rows: usize,
    id: StringBuilder,
    version: Int64Builder,
    ordinal: Int64Builder,
    role: StringBuilder,
    member_role: StringBuilder,
    entity_kind: StringBuilder,
    namespace: StringBuilder,
    name: StringBuilder,
    node: StringBuilder,
    signal: StringBuilder,
}

impl Default for EntityRows {
    fn default() -> Self {
        EntityRows {
            rows: 0,
            id: StringBuilder::new(),
            version: Int64Builder::new(),
            ordinal: Int64Builder::new(),
            role: StringBuilder::new(),
            member_role: StringBuilder::new(),
            entity_kind: StringBuilder::new(),
            namespace: StringBuilder::new(),
            name: StringBuilder::new(),
            node: StringBuilder::new(),
            signal: StringBuilder::new(),
        }
    }
}

impl EntityRows {
    #[allow(clippy::too_many_arguments)]
    fn row(
        &mut self,
        c: &IncidentChange,
        ordinal: u64,
        role: &str,
        member_role: Option<&str>,
        e: &correlate::report::EntityRef,
        signal: &str,
    ) {
        let r = &c.incident;
        self.rows += 1;
        self.id.append_value(&r.id);
        self.version.append_value(i64::from(r.version));
        self.ordinal.append_value(int_of(ordinal));
        self.role.append_value(role);
        self.member_role.append_option(member_role);
        self.entity_kind.append_value(&e.kind);
        self.namespace.append_option(e.namespace.as_deref());
        self.name.append_value(&e.name);
        self.node.append_option(e.node.as_deref());
        self.signal.append_value(signal);
    }

    fn append(&mut self, c: &IncidentChange, ordinal: u64) {
        let root = &c.incident.root_cause;
        self.row(c, ordinal, "root", None, &root.entity, &root.signal);
        for a in &c.incident.affected {
            self.row(
                c,
                ordinal,
                "affected",
                Some(role_name(a.role)),
                &a.entity,
                &a.signal,
            );
        }
    }

    fn finish(&mut self) -> Vec<ArrayRef> {
        self.rows = 0;
        vec![
            Arc::new(self.id.finish()),
            Arc::new(self.version.finish()),
            Arc::new(self.ordinal.finish()),
            Arc::new(self.role.finish()),
            Arc::new(self.member_role.finish()),
            Arc::new(self.entity_kind.finish()),
            Arc::new(self.namespace.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.node.finish()),
            Arc::new(self.signal.finish()),
        ]
    }
}

pub(super) struct SignalRows {
    rows: usize,
    id: StringBuilder,
    version: Int64Builder,
    ordinal: Int64Builder,
    rule: StringBuilder,
    signal: StringBuilder,
    source: StringBuilder,
    role: StringBuilder,
    entity: StringBuilder,
    entity_kind: StringBuilder,
    namespace: StringBuilder,
    name: StringBuilder,
    node: StringBuilder,
    records: Int64Builder,
    first_seen: TimestampMicrosecondBuilder,
    last_seen: TimestampMicrosecondBuilder,
}

impl Default for SignalRows {
    fn default() -> Self {
        SignalRows {
            rows: 0,
            id: StringBuilder::new(),
            version: Int64Builder::new(),
            ordinal: Int64Builder::new(),
            rule: StringBuilder::new(),
            signal: StringBuilder::new(),
            source: StringBuilder::new(),
            role: StringBuilder::new(),
            entity: StringBuilder::new(),
            entity_kind: StringBuilder::new(),
            namespace: StringBuilder::new(),
            name: StringBuilder::new(),
            node: StringBuilder::new(),
            records: Int64Builder::new(),
            first_seen: ts_builder(),
            last_seen: ts_builder(),
        }
    }
}

impl SignalRows {
    fn append(&mut self, c: &IncidentChange, ordinal: u64, sources: &dyn Fn(&str) -> String) {
        let r = &c.incident;
        for tie in &r.explanation.ties {
            let key = parse_entity_key(&tie.entity);
            // The node is not in the tie's key: take it from the entity as
            // the document reports it (root or affected).
            let same = |e: &correlate::report::EntityRef| {
                e.kind == key.kind && e.name == key.name && e.namespace.as_deref() == key.namespace
            };
            let node = if same(&r.root_cause.entity) {
                r.root_cause.entity.node.as_deref()
            } else {
                r.affected
                    .iter()
                    .find(|a| same(&a.entity))
                    .and_then(|a| a.entity.node.as_deref())
            };
            self.rows += 1;
            self.id.append_value(&r.id);
            self.version.append_value(i64::from(r.version));
            self.ordinal.append_value(int_of(ordinal));
            self.rule.append_value(&r.rule);
            self.signal.append_value(&tie.signal);
            self.source.append_value(sources(&tie.signal));
            self.role.append_value(role_name(tie.role));
            self.entity.append_value(&tie.entity);
            self.entity_kind.append_value(key.kind);
            self.namespace.append_option(key.namespace);
            self.name.append_value(key.name);
            self.node.append_option(node);
            self.records.append_value(int_of(tie.records));
            self.first_seen.append_value(tie.first.as_micros());
            self.last_seen.append_value(tie.last.as_micros());
        }
    }

    fn finish(&mut self) -> Vec<ArrayRef> {
        self.rows = 0;
        vec![
            Arc::new(self.id.finish()),
            Arc::new(self.version.finish()),
            Arc::new(self.ordinal.finish()),
            Arc::new(self.rule.finish()),
            Arc::new(self.signal.finish()),
            Arc::new(self.source.finish()),
            Arc::new(self.role.finish()),
            Arc::new(self.entity.finish()),
            Arc::new(self.entity_kind.finish()),
            Arc::new(self.namespace.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.node.finish()),
            Arc::new(self.records.finish()),
            Arc::new(self.first_seen.finish()),
            Arc::new(self.last_seen.finish()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `epicenter query --describe` documents every column it lists.
    #[test]
    fn every_column_of_every_table_has_a_meaning() {
        for table in Table::ALL {
            let columns = table.columns();
            assert_eq!(columns.len(), table.file_schema().fields().len() + 1);
            for c in columns {
                assert!(!c.meaning.is_empty(), "{}.{}", table.name(), c.name);
            }
        }
    }

    #[test]
    fn days_are_utc_calendar_days() {
        let at = |s: &str| day_of(EventTime::parse_rfc3339(s).expect("time"));
        assert_eq!(at("2026-03-16T08:00:12.406358Z"), "2026-03-16");
        assert_eq!(at("2026-03-16T23:59:59.999999Z"), "2026-03-16");
        assert_eq!(at("2026-03-17T00:00:00Z"), "2026-03-17");
        assert_eq!(at("2024-02-29T12:00:00Z"), "2024-02-29");
        assert_eq!(at("1969-12-31T23:59:59Z"), "1969-12-31");
        assert_eq!(at("2026-03-17T01:00:00+02:00"), "2026-03-16");
        assert!(is_day(&at("2026-03-16T08:00:00Z")));
        // Out-of-calendar instants still name a partition.
        assert!(!day_of(EventTime::MIN).is_empty());
        assert!(!is_day("2026-3-16"));
        assert!(!is_day("2026-03-1x"));
    }

    #[test]
    fn entity_keys_split_into_kind_namespace_name() {
        let k = parse_entity_key("Pod/nfs-csi/csi-nfs-node-nnftf");
        assert_eq!(
            (k.kind, k.namespace, k.name),
            ("Pod", Some("nfs-csi"), "csi-nfs-node-nnftf")
        );
        let k = parse_entity_key("Node/k8s02");
        assert_eq!((k.kind, k.namespace, k.name), ("Node", None, "k8s02"));
        let k = parse_entity_key("odd");
        assert_eq!((k.kind, k.namespace, k.name), ("", None, "odd"));
    }
}
