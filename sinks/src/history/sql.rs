//! [`Sql`]: read-only DataFusion SQL over a history directory.
//!
//! Every query runs in a session of its own, built from a template that
//! holds the tables:
//!
//! - **a snapshot of the store**: the committed, non-superseded files at
//!   the moment the query starts ([`super::store`]), handed to DataFusion's
//!   listing tables through the list-files cache of the session's runtime,
//!   so every table of one query sees the same commit and a concurrent
//!   flush or compaction never shows half of itself. The snapshot is
//!   re-listed only when `HEAD`'s generation changed; Parquet footers and
//!   file statistics are cached across queries (files never change once
//!   named);
//! - **limits**: a memory pool of `QueryLimits::memory` bytes, no disk
//!   manager (an operator that would spill fails instead of writing temp
//!   files), a timeout around planning and execution, and a row cap
//!   (pushed into the plan as a `LIMIT`, so a large result stops early);
//! - **the guard** ([`super::guard`]) before and after planning; the only
//!   object store is the history directory itself.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::common::{DataFusionError, TableReference};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::cache::cache_manager::{
    CacheManagerConfig, CachedFileList, CachedFileMetadata, CachedFileMetadataEntry,
    FileMetadataCache, FileStatisticsCache,
};
use datafusion::execution::cache::default_cache::DefaultCache;
use datafusion::execution::cache::{Cache, CacheEntryInfo, TableScopedPath};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{GreedyMemoryPool, TrackConsumersPool};
use datafusion::execution::object_store::{
    DefaultObjectStoreRegistry, ObjectStoreRegistry, ObjectStoreUrl,
};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::object_store::local::LocalFileSystem;
use datafusion::object_store::path::Path as ObjectPath;
use datafusion::object_store::{ObjectMeta, ObjectStore};
use datafusion::physical_plan::execute_stream;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::DFParserBuilder;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use futures::{StreamExt, TryStreamExt};

use super::Error;
use super::format::{self, Format};
use super::guard;
use super::schema::{DAY, Table};
use super::sql_error;
use super::store::{FileName, Store, visible};
use crate::change::IncidentChange;

/// The URL the history directory is registered under (its only object
/// store).
const STORE_URL: &str = "history://store/";

/// Limits of one query.
#[derive(Debug, Clone)]
pub struct QueryLimits {
    /// Planning and execution together.
    pub timeout: Duration,
    /// Bytes of memory the query's operators may hold (no spilling).
    pub memory: usize,
    /// Rows returned at most; a longer result is cut and says so.
    pub max_rows: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            timeout: Duration::from_secs(30),
            memory: 512 << 20,
            max_rows: 100_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Not a read-only query over the store (DDL, DML, COPY, files).
    #[error("refused: {0}")]
    Refused(String),
    /// Not valid SQL, an unknown table or column, or beyond the memory
    /// limit.
    #[error("{0}")]
    Invalid(String),
    #[error("query took longer than {0:?}")]
    Timeout(Duration),
    /// Its operators needed more memory than the limit.
    #[error("{0}")]
    Memory(String),
    #[error(transparent)]
    Store(#[from] Error),
}

/// A query's result, before rendering.
#[derive(Debug, Clone)]
pub struct QueryOutput {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// Rows in `batches`.
    pub rows: usize,
    /// The result had more than `QueryLimits::max_rows` rows and was cut.
    pub truncated: bool,
    pub elapsed: Duration,
}

impl QueryOutput {
    /// Renders the result; a truncated one says so (see [`format`]).
    pub fn render(&self, format: Format) -> Result<String, QueryError> {
        format::render(
            format,
            &self.schema,
            &self.batches,
            self.truncated.then_some(self.rows),
        )
        .map_err(|e| {
            QueryError::Invalid(format!("rendering the result as {}: {e}", format.as_str()))
        })
    }
}

/// Read-only SQL over a history directory.
pub struct Sql {
    store: Store,
    limits: QueryLimits,
    template: SessionState,
    registry: Arc<dyn ObjectStoreRegistry>,
    object_store: Arc<dyn ObjectStore>,
    metadata_cache: Arc<FileMetadataCache>,
    statistics_cache: Arc<FileStatisticsCache>,
    allowed: Vec<Arc<dyn TableProvider>>,
    snapshot: Mutex<Option<Arc<Snapshot>>>,
}

impl std::fmt::Debug for Sql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sql")
            .field("dir", &self.store.dir())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

fn setup(dir: &Path) -> impl Fn(DataFusionError) -> Error + '_ {
    move |e| Error::Query {
        dir: dir.to_path_buf(),
        reason: format!("setting up the SQL session: {e}"),
    }
}

impl Sql {
    /// Opens the store at `dir` for queries (it may be empty or not exist
    /// yet: the tables are then empty).
    pub async fn open(dir: &Path, limits: QueryLimits) -> Result<Sql> {
        std::fs::create_dir_all(dir).map_err(super::store::io(dir))?;
        let root = std::fs::canonicalize(dir).map_err(super::store::io(dir))?;
        let err = setup(dir);
        let object_store: Arc<dyn ObjectStore> = Arc::new(
            LocalFileSystem::new_with_prefix(&root)
                .map_err(|e| err(DataFusionError::ObjectStore(Box::new(e))))?,
        );
        let url = ObjectStoreUrl::parse(STORE_URL).map_err(&err)?;
        let registry = DefaultObjectStoreRegistry::new();
        // No `file://`: the history directory is the only place to read.
        let _ = registry.deregister_store(ObjectStoreUrl::local_filesystem().as_ref());
        registry.register_store(url.as_ref(), Arc::clone(&object_store));
        let registry: Arc<dyn ObjectStoreRegistry> = Arc::new(registry);

        let metadata_cache: Arc<FileMetadataCache> = Arc::new(
            DefaultCache::<ObjectPath, CachedFileMetadataEntry>::new(METADATA_CACHE)
                .with_name("history footers"),
        );
        let statistics_cache: Arc<FileStatisticsCache> = Arc::new(
            DefaultCache::<TableScopedPath, CachedFileMetadata>::new(STATISTICS_CACHE)
                .with_name("history statistics"),
        );
        let runtime = RuntimeEnvBuilder::new()
            .with_object_store_registry(Arc::clone(&registry))
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .with_cache_manager(
                CacheManagerConfig::default()
                    .with_file_metadata_cache(Some(Arc::clone(&metadata_cache)))
                    .with_metadata_cache_limit(METADATA_CACHE)
                    .with_file_statistics_cache(Some(Arc::clone(&statistics_cache)))
                    .with_file_statistics_cache_limit(STATISTICS_CACHE)
                    .with_list_files_cache(Some(Arc::new(Snapshot::default()))),
            )
            .build_arc()
            .map_err(&err)?;
        let state = SessionStateBuilder::new()
            .with_config(session_config())
            .with_runtime_env(runtime)
            .with_default_features()
            .with_table_factories(HashMap::new())
            .build();
        let ctx = SessionContext::new_with_state(state);
        let mut allowed: Vec<Arc<dyn TableProvider>> = Vec::new();
        for table in Table::ALL {
            let provider = listing_table(table).map_err(&err)?;
            ctx.register_table(table.name(), Arc::clone(&provider))
                .map_err(&err)?;
            allowed.push(provider);
        }
        Ok(Sql {
            store: Store::new(dir),
            limits,
            template: ctx.state(),
            registry,
            object_store,
            metadata_cache,
            statistics_cache,
            allowed,
            snapshot: Mutex::new(None),
        })
    }

    pub fn dir(&self) -> &Path {
        self.store.dir()
    }

    pub fn limits(&self) -> &QueryLimits {
        &self.limits
    }

    /// Runs one read-only query; the result rendered in `format`.
    pub async fn query(&self, sql: &str, format: Format) -> Result<String, QueryError> {
        self.execute(sql).await?.render(format)
    }

    /// Runs one read-only query; the result as record batches.
    pub async fn execute(&self, sql: &str) -> Result<QueryOutput, QueryError> {
        let start = Instant::now();
        let timeout = self.limits.timeout;
        match tokio::time::timeout(timeout, self.run(sql)).await {
            Ok(Ok((schema, batches, truncated))) => {
                let rows = batches.iter().map(RecordBatch::num_rows).sum();
                Ok(QueryOutput {
                    schema,
                    batches,
                    rows,
                    truncated,
                    elapsed: start.elapsed(),
                })
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(QueryError::Timeout(timeout)),
        }
    }

    /// The stored document of incident `id`: its newest version, or the
    /// newest row of `version` (a `resolved` line repeats its last
    /// version). `None` when the history holds no such incident or version
    /// (or was written before documents were stored).
    pub async fn document(
        &self,
        id: &str,
        version: Option<u32>,
    ) -> Result<Option<IncidentChange>, QueryError> {
        let version = version.map_or(String::new(), |v| format!(" AND version = {v}"));
        let sql = format!(
            "SELECT document FROM incident_documents WHERE id = {}{version} \
             ORDER BY ordinal DESC LIMIT 1",
            sql_literal(id)
        );
        let out = self.execute(&sql).await?;
        match out.batches.iter().find(|b| b.num_rows() > 0) {
            Some(batch) => document_at(batch, 0, 0, id).map(Some),
            None => Ok(None),
        }
    }

    /// Every stored version of incident `id`, in the store's append order
    /// (`ordinal`): its opening, updates, resolution or merge. Empty when
    /// the history holds no such incident. Read in pages of at most
    /// `QueryLimits::max_rows` rows, so a long-lived incident is never cut.
    pub async fn documents(&self, id: &str) -> Result<Vec<IncidentChange>, QueryError> {
        use datafusion::arrow::datatypes::Int64Type;
        let page = self.limits.max_rows.max(1);
        let mut out = Vec::new();
        let mut after: Option<i64> = None;
        loop {
            let from = after.map_or(String::new(), |o| format!(" AND ordinal > {o}"));
            let sql = format!(
                "SELECT ordinal, document FROM incident_documents WHERE id = {}{from} \
                 ORDER BY ordinal LIMIT {page}",
                sql_literal(id)
            );
            let result = self.execute(&sql).await?;
            let mut rows = 0usize;
            for batch in &result.batches {
                let ordinals = batch
                    .column(0)
                    .as_primitive_opt::<Int64Type>()
                    .ok_or_else(|| QueryError::Invalid("ordinal: not an integer column".into()))?;
                for i in 0..batch.num_rows() {
                    out.push(document_at(batch, 1, i, id)?);
                    after = Some(ordinals.value(i));
                    rows += 1;
                }
            }
            if rows < page {
                return Ok(out);
            }
        }
    }

    /// Plans a read-only query (guarded, as [`Self::execute`] would) and
    /// returns its optimized logical plan and physical plan as text.
    pub async fn explain(&self, sql: &str) -> Result<String, QueryError> {
        let state = self.session().await?;
        let plan = self.plan(&state, sql).await?;
        let physical = state
            .create_physical_plan(&plan)
            .await
            .map_err(|e| classify(self.dir(), &e))?;
        Ok(datafusion::physical_plan::displayable(physical.as_ref())
            .indent(true)
            .to_string())
    }

    /// Re-lists the store now (queries re-list on their own when the store
    /// changed; this only makes the next query skip it).
    pub async fn refresh(&self) -> Result<(), QueryError> {
        self.snapshot().await.map(|_| ())
    }

    async fn run(&self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>, bool), QueryError> {
        let state = self.session().await?;
        let plan = self.plan(&state, sql).await?;
        let max = self.limits.max_rows;
        // One more row than allowed tells whether the result was cut
        // (EXPLAIN must stay the root of its plan: it has few rows).
        let plan = if matches!(plan, LogicalPlan::Explain(_) | LogicalPlan::Analyze(_)) {
            plan
        } else {
            LogicalPlanBuilder::from(plan)
                .limit(0, Some(max.saturating_add(1)))
                .and_then(LogicalPlanBuilder::build)
                .map_err(|e| classify(self.dir(), &e))?
        };
        let schema: SchemaRef = Arc::clone(plan.schema().inner());
        let physical = state
            .create_physical_plan(&plan)
            .await
            .map_err(|e| classify(self.dir(), &e))?;
        let mut stream =
            execute_stream(physical, state.task_ctx()).map_err(|e| classify(self.dir(), &e))?;
        let mut batches = Vec::new();
        let mut rows = 0usize;
        let mut truncated = false;
        while let Some(b) = stream.next().await {
            let b = b.map_err(|e| classify(self.dir(), &e))?;
            if rows + b.num_rows() > max {
                let keep = max - rows;
                if keep > 0 {
                    batches.push(b.slice(0, keep));
                }
                truncated = true;
                break;
            }
            rows += b.num_rows();
            batches.push(b);
        }
        let schema = batches.first().map(RecordBatch::schema).unwrap_or(schema);
        Ok((schema, batches, truncated))
    }

    /// Parses, guards and plans one statement.
    async fn plan(&self, state: &SessionState, sql: &str) -> Result<LogicalPlan, QueryError> {
        let dialect = GenericDialect {};
        let statements = DFParserBuilder::new(sql)
            .with_dialect(&dialect)
            .with_recursion_limit(state.config_options().sql_parser.recursion_limit.get())
            .build()
            .and_then(|mut p| p.parse_statements())
            .map_err(|e| classify(self.dir(), &e))?;
        let statements: Vec<_> = statements.into_iter().collect();
        guard::check_statements(&statements).map_err(QueryError::Refused)?;
        let Some(statement) = statements.into_iter().next() else {
            return Err(QueryError::Invalid("no statement".to_string()));
        };
        let plan = state
            .statement_to_plan(statement)
            .await
            .map_err(|e| classify(self.dir(), &e))?;
        datafusion::execution::context::SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&plan)
            .map_err(|e| QueryError::Refused(e.strip_backtrace()))?;
        guard::check_plan(&plan, &self.allowed).map_err(QueryError::Refused)?;
        Ok(plan)
    }

    /// A session for one query: the template's catalog, a runtime with the
    /// query's own memory pool and the current snapshot of the store.
    async fn session(&self) -> Result<SessionState, QueryError> {
        let snapshot = self.snapshot().await?;
        let pool = TrackConsumersPool::new(
            GreedyMemoryPool::new(self.limits.memory),
            NonZeroUsize::MIN.saturating_add(2),
        );
        let runtime = RuntimeEnvBuilder::new()
            .with_object_store_registry(Arc::clone(&self.registry))
            .with_memory_pool(Arc::new(pool))
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .with_cache_manager(
                CacheManagerConfig::default()
                    .with_file_metadata_cache(Some(Arc::clone(&self.metadata_cache)))
                    .with_metadata_cache_limit(METADATA_CACHE)
                    .with_file_statistics_cache(Some(Arc::clone(&self.statistics_cache)))
                    .with_file_statistics_cache_limit(STATISTICS_CACHE)
                    .with_list_files_cache(Some(snapshot)),
            )
            .build_arc()
            .map_err(|e| Error::Query {
                dir: self.store.dir().to_path_buf(),
                reason: format!("setting up the query: {e}"),
            })?;
        Ok(
            SessionStateBuilder::new_from_existing(self.template.clone())
                .with_runtime_env(runtime)
                .build(),
        )
    }

    /// The files a query reads now: the cached snapshot if `HEAD`'s
    /// generation is unchanged, else a new listing.
    async fn snapshot(&self) -> Result<Arc<Snapshot>, QueryError> {
        let commit = self.store.read_commit()?;
        let (generation, batch) = commit.map_or((0, 0), |c| (c.generation, c.batch));
        if let Ok(cached) = self.snapshot.lock()
            && let Some(s) = cached.as_ref()
            && s.generation == Some(generation)
        {
            return Ok(Arc::clone(s));
        }
        let mut files = HashMap::new();
        for table in Table::ALL {
            let prefix = ObjectPath::from(table.name());
            let listed: Vec<ObjectMeta> = self
                .object_store
                .list(Some(&prefix))
                .try_collect()
                .await
                .map_err(|e| Error::Query {
                    dir: self.store.dir().to_path_buf(),
                    reason: format!("listing {}: {e}", table.name()),
                })?;
            files.insert(prefix, CachedFileList::new(visible_objects(listed, batch)));
        }
        let snapshot = Arc::new(Snapshot {
            generation: Some(generation),
            files,
        });
        if let Ok(mut cached) = self.snapshot.lock() {
            *cached = Some(Arc::clone(&snapshot));
        }
        Ok(snapshot)
    }
}

/// A SQL string literal.
fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The stored document in `column` of `row` (a text column, plain or view).
fn document_at(
    batch: &RecordBatch,
    column: usize,
    row: usize,
    id: &str,
) -> Result<IncidentChange, QueryError> {
    let column = batch.column(column);
    let text = column
        .as_string_opt::<i32>()
        .map(|a| a.value(row))
        .or_else(|| column.as_string_view_opt().map(|a| a.value(row)))
        .ok_or_else(|| QueryError::Invalid("document: not a text column".into()))?;
    serde_json::from_str(text)
        .map_err(|e| QueryError::Invalid(format!("incident {id}: stored document unreadable: {e}")))
}

const METADATA_CACHE: usize = 64 << 20;
const STATISTICS_CACHE: usize = 16 << 20;

fn session_config() -> SessionConfig {
    let cores = std::thread::available_parallelism().map_or(2, NonZeroUsize::get);
    let mut config = SessionConfig::new()
        .with_target_partitions(cores)
        .with_information_schema(true)
        .with_collect_statistics(true);
    let o = config.options_mut();
    o.execution.parquet.pushdown_filters = true;
    o.execution.parquet.reorder_filters = true;
    // Column references keep their place in the SQL, so an error about one
    // says its line and column (see `sql_error`).
    o.sql_parser.collect_spans = true;
    config
}

fn listing_table(table: Table) -> datafusion::common::Result<Arc<dyn TableProvider>> {
    let url = ListingTableUrl::parse(format!("{STORE_URL}{}/", table.name()))?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![(DAY.to_string(), DataType::Utf8)]);
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(table.file_schema());
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// Of a table's listed objects, those a reader sees.
fn visible_objects(listed: Vec<ObjectMeta>, committed: u64) -> Vec<ObjectMeta> {
    // Directory → (name, meta).
    let mut dirs: HashMap<String, Vec<(FileName, ObjectMeta)>> = HashMap::new();
    for meta in listed {
        let parts: Vec<String> = meta
            .location
            .parts()
            .map(|p| p.as_ref().to_string())
            .collect();
        let [_, day, file] = parts.as_slice() else {
            continue;
        };
        if !day.starts_with("day=") {
            continue;
        }
        let Some(name) = FileName::parse(file) else {
            continue;
        };
        dirs.entry(day.clone()).or_default().push((name, meta));
    }
    let mut out = Vec::new();
    for (_, mut files) in dirs {
        let names: Vec<FileName> = files.iter().map(|(n, _)| *n).collect();
        let vis = visible(&names, committed);
        files.retain(|(n, _)| vis.contains(n));
        out.extend(files.into_iter().map(|(_, m)| m));
    }
    out.sort_by(|a, b| a.location.cmp(&b.location));
    out
}

/// Maps a DataFusion error to what the caller can act on.
fn classify(dir: &Path, e: &DataFusionError) -> QueryError {
    let text = e.strip_backtrace();
    let root = find_root(e);
    match root {
        DataFusionError::ResourcesExhausted(_) => QueryError::Memory(format!(
            "the query needs more memory than it may use (filter or aggregate more): {text}"
        )),
        DataFusionError::ObjectStore(_)
        | DataFusionError::IoError(_)
        | DataFusionError::ParquetError(_) => QueryError::Store(Error::Query {
            dir: dir.to_path_buf(),
            reason: text,
        }),
        _ => QueryError::Invalid(sql_error::explain(e, &Table::ALL.map(Table::name))),
    }
}

fn find_root(e: &DataFusionError) -> &DataFusionError {
    match e {
        DataFusionError::Context(_, inner) => find_root(inner),
        DataFusionError::Shared(inner) => find_root(inner),
        DataFusionError::Diagnostic(_, inner) => find_root(inner),
        other => other,
    }
}

type Result<T, E = Error> = std::result::Result<T, E>;

/// The files of one query: answers DataFusion's list-files cache so the
/// listing tables read exactly these (see the module docs).
#[derive(Debug, Default)]
struct Snapshot {
    generation: Option<u64>,
    files: HashMap<ObjectPath, CachedFileList>,
}

impl Cache<TableScopedPath, CachedFileList> for Snapshot {
    fn get(&self, key: &TableScopedPath) -> Option<CachedFileList> {
        self.files.get(&key.path).cloned()
    }

    fn put(&self, _key: &TableScopedPath, _value: CachedFileList) -> Option<CachedFileList> {
        None
    }

    fn remove(&self, _k: &TableScopedPath) -> Option<CachedFileList> {
        None
    }

    fn contains_key(&self, k: &TableScopedPath) -> bool {
        self.files.contains_key(&k.path)
    }

    fn len(&self) -> usize {
        self.files.len()
    }

    fn clear(&self) {}

    fn name(&self) -> String {
        "history snapshot".to_string()
    }

    fn cache_limit(&self) -> usize {
        usize::MAX
    }

    fn update_cache_limit(&self, _limit: usize) {}

    fn cache_ttl(&self) -> Option<Duration> {
        None
    }

    fn update_cache_ttl(&self, _ttl: Option<Duration>) {}

    fn drop_table_entries(&self, _table_ref: &TableReference) -> datafusion::common::Result<()> {
        Ok(())
    }

    fn list_entries(
        &self,
    ) -> datafusion::common::HashMap<TableScopedPath, CacheEntryInfo<CachedFileList>> {
        datafusion::common::HashMap::new()
    }
}
