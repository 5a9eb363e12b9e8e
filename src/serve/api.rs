//! `/api/v1`: the incident history and the outbox, over HTTP.
//!
//! - `GET /api/v1/query?sql=SELECT...&format=json|ndjson|csv|table`: the
//!   same read-only SQL as `epicenter query` (DDL, DML, COPY and file access
//!   are refused with 400 and the reason), run in a child process with hard
//!   memory, CPU and time limits (`isolated.rs`), at most
//!   `api.max_concurrent_queries` at once (429 beyond). Without `api.token`
//!   it answers only on a loopback address, unless
//!   `api.allow_anonymous_sql` says otherwise.
//! - `GET /api/v1/incidents?status=&cluster=&rule=&namespace=&since=&limit=`: the
//!   newest version of each incident, newest first (a fixed query over
//!   `incidents_latest`, values escaped); `GET /api/v1/incidents/{id}`:
//!   one incident's newest version (the link in notifications).
//! - `GET /api/v1/outbox`: every delivery target (pending, dead letters,
//!   failures) and the notification policy's counters;
//!   `GET /api/v1/outbox/dead?sink=NAME&limit=N`: its newest dead letters.
//!
//! With `api.token` set, every route wants `Authorization: Bearer <token>`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use sinks::history::{Format, QueryError, Sql};
use sinks::outbox::Outbox;
use tokio::sync::{OnceCell, Semaphore};

use super::isolated::{self, Failure};
use crate::config::ApiConfig;

/// Where SQL is taken.
pub(crate) const QUERY_PATH: &str = "/api/v1/query";

#[derive(Clone)]
pub(crate) struct Api {
    history: Option<PathBuf>,
    config: ApiConfig,
    outbox: Outbox,
    /// Opened at the first query (the store may not exist before).
    sql: Arc<OnceCell<Sql>>,
    /// The server listens on loopback only.
    loopback: bool,
    /// Isolated queries that may run now.
    queries: Arc<Semaphore>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("history", &self.history)
            .finish_non_exhaustive()
    }
}

impl Api {
    pub(crate) fn new(
        history: Option<PathBuf>,
        config: ApiConfig,
        listen: SocketAddr,
        outbox: Outbox,
    ) -> Api {
        Api {
            history,
            queries: Arc::new(Semaphore::new(config.max_concurrent_queries.max(1))),
            config,
            outbox,
            sql: Arc::new(OnceCell::new()),
            loopback: listen.ip().is_loopback(),
        }
    }

    pub(crate) fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.config.token else {
            return true;
        };
        ingest::source::alertmanager::bearer_matches(headers.get(header::AUTHORIZATION), token)
    }

    /// The outbox (the web page shows what it told of an incident).
    pub(crate) fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// `api.token`, when one is set (the web page's login checks it too).
    pub(crate) fn token(&self) -> Option<&str> {
        self.config.token.as_deref()
    }

    pub(crate) async fn sql(&self) -> Result<&Sql, ApiError> {
        let Some(dir) = &self.history else {
            return Err(ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "the history is disabled (sinks.history.enabled: false)".to_string(),
            ));
        };
        self.sql
            .get_or_try_init(|| Sql::open(dir, self.config.limits.clone()))
            .await
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
    }
}

pub(crate) fn router(api: Api) -> Router {
    Router::new()
        .route(QUERY_PATH, get(query))
        .route("/api/v1/incidents", get(incidents))
        .route("/api/v1/incidents/{id}", get(incident))
        .route("/api/v1/outbox", get(outbox))
        .route("/api/v1/outbox/dead", get(dead))
        .with_state(api)
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(ErrorBody { error: message })).into_response()
}

/// A refusal with its status.
#[derive(Debug)]
pub(crate) struct ApiError(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error(self.0, &self.1)
    }
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        axum::Json(ErrorBody {
            error: "missing or wrong bearer token",
        }),
    )
        .into_response()
}

fn parse_format(f: Option<&str>) -> Result<Format, ApiError> {
    match f.unwrap_or("json") {
        "json" => Ok(Format::Json),
        "ndjson" => Ok(Format::Ndjson),
        "csv" => Ok(Format::Csv),
        "table" => Ok(Format::Table),
        other => Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("format `{other}` is not json, ndjson, csv or table"),
        )),
    }
}

fn content_type(f: Format) -> &'static str {
    match f {
        Format::Json => "application/json",
        Format::Ndjson => "application/x-ndjson",
        Format::Csv => "text/csv; charset=utf-8",
        Format::Table => "text/plain; charset=utf-8",
    }
}

async fn run(api: &Api, sql: &str, format: Format) -> Response {
    let engine = match api.sql().await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    match engine.query(sql, format).await {
        Ok(body) => ([(header::CONTENT_TYPE, content_type(format))], body).into_response(),
        Err(e @ (QueryError::Refused(_) | QueryError::Invalid(_) | QueryError::Memory(_))) => {
            error(StatusCode::BAD_REQUEST, &e.to_string())
        }
        Err(e @ QueryError::Timeout(_)) => error(StatusCode::GATEWAY_TIMEOUT, &e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[derive(Deserialize)]
struct QueryParams {
    sql: Option<String>,
    format: Option<String>,
}

async fn query(
    State(api): State<Api>,
    headers: HeaderMap,
    Query(p): Query<QueryParams>,
) -> Response {
    if !api.authorized(&headers) {
        return unauthorized();
    }
    let Some(sql) = p.sql.filter(|s| !s.trim().is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "give the query as ?sql=SELECT ...");
    };
    let format = match parse_format(p.format.as_deref()) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    if api.config.token.is_none() && !api.loopback && !api.config.allow_anonymous_sql {
        return error(
            StatusCode::FORBIDDEN,
            "SQL over HTTP on a non-loopback address needs api.token (or api.allow_anonymous_sql: true)",
        );
    }
    let Some(dir) = &api.history else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the history is disabled (sinks.history.enabled: false)",
        );
    };
    let Ok(_slot) = api.queries.clone().try_acquire_owned() else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            axum::Json(ErrorBody {
                error: "too many queries running; retry shortly",
            }),
        )
            .into_response();
    };
    match isolated::query(dir, &sql, format, &api.config.limits).await {
        Ok(body) => ([(header::CONTENT_TYPE, content_type(format))], body).into_response(),
        Err(e @ (Failure::Invalid(_) | Failure::Memory(_))) => {
            error(StatusCode::BAD_REQUEST, &e.to_string())
        }
        Err(e @ Failure::Timeout(_)) => error(StatusCode::GATEWAY_TIMEOUT, &e.to_string()),
        Err(e @ Failure::Process(_)) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct IncidentParams {
    pub(crate) status: Option<String>,
    pub(crate) severity: Option<String>,
    /// The cluster it happened in.
    pub(crate) cluster: Option<String>,
    pub(crate) rule: Option<String>,
    /// In the blast radius or the root's namespace.
    pub(crate) namespace: Option<String>,
    /// The root's node or a node in the blast radius.
    pub(crate) node: Option<String>,
    /// RFC 3339: opened at or after.
    pub(crate) since: Option<String>,
    pub(crate) limit: Option<usize>,
    pub(crate) format: Option<String>,
}

/// A SQL string literal.
pub(crate) fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The query behind `/api/v1/incidents` (and the web page's list).
pub(crate) fn incidents_sql(p: &IncidentParams) -> Result<String, String> {
    // A merged incident lives on in its survivor.
    let mut filters = vec!["change <> 'merged'".to_string()];
    if let Some(s) = &p.status {
        if !matches!(s.as_str(), "firing" | "resolved") {
            return Err(format!("status `{s}` is not firing or resolved"));
        }
        filters.push(format!("status = {}", literal(s)));
    }
    if let Some(s) = &p.severity {
        if !matches!(s.as_str(), "critical" | "warning" | "info") {
            return Err(format!("severity `{s}` is not critical, warning or info"));
        }
        filters.push(format!("severity = {}", literal(s)));
    }
    if let Some(c) = &p.cluster {
        filters.push(format!("cluster = {}", literal(c)));
    }
    if let Some(r) = &p.rule {
        filters.push(format!("rule = {}", literal(r)));
    }
    if let Some(node) = &p.node {
        let node = literal(node);
        filters.push(format!(
            "(root_node = {node} OR id IN (SELECT id FROM incident_entities WHERE node = {node}))"
        ));
    }
    if let Some(ns) = &p.namespace {
        let ns = literal(ns);
        filters.push(format!(
            "(root_namespace = {ns} OR id IN (SELECT id FROM incident_entities WHERE namespace = {ns}))"
        ));
    }
    if let Some(since) = &p.since {
        if correlate::EventTime::parse_rfc3339(since).is_none() {
            return Err(format!("since `{since}` is not an RFC 3339 time"));
        }
        filters.push(format!("opened_at >= TIMESTAMP {}", literal(since)));
    }
    let limit = p.limit.unwrap_or(100).clamp(1, 10_000);
    let filter = format!(" WHERE {}", filters.join(" AND "));
    Ok(format!(
        "SELECT * FROM incidents_latest{filter} ORDER BY opened_at DESC, id LIMIT {limit}"
    ))
}

async fn incidents(
    State(api): State<Api>,
    headers: HeaderMap,
    Query(p): Query<IncidentParams>,
) -> Response {
    if !api.authorized(&headers) {
        return unauthorized();
    }
    let format = match parse_format(p.format.as_deref()) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    match incidents_sql(&p) {
        Ok(sql) => run(&api, &sql, format).await,
        Err(e) => error(StatusCode::BAD_REQUEST, &e),
    }
}

#[derive(Deserialize)]
struct VersionParam {
    version: Option<u32>,
}

/// The first row of a JSON-array query result.
async fn first_row(
    sql: &Sql,
    query: &str,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, String> {
    let body = sql
        .query(query, Format::Json)
        .await
        .map_err(|e| e.to_string())?;
    let rows: Vec<serde_json::Value> = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    Ok(rows.into_iter().find_map(|r| match r {
        serde_json::Value::Object(m) => Some(m),
        _ => None,
    }))
}

/// `GET /api/v1/incidents/{id}[?version=N]`: the incident as `replay`
/// prints it (plus `change`), from the history's stored document.
async fn incident(
    State(api): State<Api>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
    Query(p): Query<VersionParam>,
) -> Response {
    if !api.authorized(&headers) {
        return unauthorized();
    }
    let sql = match api.sql().await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    match sql.document(&id, p.version).await {
        Ok(Some(doc)) => axum::Json(doc).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Ok(None) if let Some(v) = p.version => error(
            StatusCode::NOT_FOUND,
            &format!("no version {v} of incident {id} in the history"),
        ),
        // A history written before documents were stored has only the
        // summary row: better that than nothing.
        Ok(None) => {
            let latest = format!("SELECT * FROM incidents_latest WHERE id = {}", literal(&id));
            match first_row(sql, &latest).await {
                Ok(Some(mut row)) => {
                    row.insert("stored_without_document".into(), true.into());
                    axum::Json(row).into_response()
                }
                Ok(None) => error(
                    StatusCode::NOT_FOUND,
                    &format!("no incident {id} in the history"),
                ),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e),
            }
        }
    }
}

#[derive(Serialize)]
struct TargetJson {
    sink: String,
    kind: &'static str,
    pending: u64,
    dead_letters: u64,
    oldest_pending_seconds: f64,
    delivered: u64,
    failed_attempts: u64,
    recovered: u64,
    coalesced: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
}

#[derive(Serialize)]
struct OutboxJson {
    sinks: Vec<TargetJson>,
    notifications: PolicyJson,
}

#[derive(Serialize)]
struct PolicyJson {
    opened: u64,
    updated: u64,
    resolved: u64,
    quiet: u64,
    deferred: u64,
    unrouted: u64,
}

async fn outbox(State(api): State<Api>, headers: HeaderMap) -> Response {
    if !api.authorized(&headers) {
        return unauthorized();
    }
    let p = api.outbox.policy_status();
    axum::Json(OutboxJson {
        sinks: api
            .outbox
            .status()
            .into_iter()
            .map(|t| TargetJson {
                sink: t.name,
                kind: t.kind,
                pending: t.pending,
                dead_letters: t.dead,
                oldest_pending_seconds: t.oldest_pending_seconds,
                delivered: t.delivered,
                failed_attempts: t.failed_attempts,
                recovered: t.recovered,
                coalesced: t.coalesced,
                last_error: t.last_error,
            })
            .collect(),
        notifications: PolicyJson {
            opened: p.opened,
            updated: p.updated,
            resolved: p.resolved,
            quiet: p.quiet,
            deferred: p.deferred,
            unrouted: p.unrouted,
        },
    })
    .into_response()
}

#[derive(Deserialize)]
struct DeadParams {
    sink: String,
    limit: Option<usize>,
}

#[derive(Serialize)]
struct DeadJson {
    sink: String,
    seq: u64,
    incident: String,
    failures: u32,
    enqueued_at: String,
    dead_at: String,
    error: String,
    /// The undelivered document (null if unreadable).
    payload: serde_json::Value,
}

async fn dead(State(api): State<Api>, headers: HeaderMap, Query(p): Query<DeadParams>) -> Response {
    if !api.authorized(&headers) {
        return unauthorized();
    }
    let letters = match api
        .outbox
        .dead_letters(&p.sink, p.limit.unwrap_or(50).clamp(1, 1000))
    {
        Ok(l) => l,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let time = |us: i64| correlate::EventTime::from_micros(us).to_string();
    let out: Vec<DeadJson> = letters
        .into_iter()
        .map(|d| DeadJson {
            sink: d.target,
            seq: d.seq,
            incident: d.incident,
            failures: d.failures,
            enqueued_at: time(d.enqueued_at),
            dead_at: time(d.dead_at),
            error: d.error,
            payload: serde_json::from_slice(&d.payload).unwrap_or(serde_json::Value::Null),
        })
        .collect();
    axum::Json(out).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incident_filters_are_escaped_literals() {
        let p = IncidentParams {
            status: Some("firing".to_string()),
            severity: Some("critical".to_string()),
            cluster: Some("edge' --".to_string()),
            rule: Some("x' OR '1'='1".to_string()),
            namespace: Some("shop".to_string()),
            node: Some("n' --".to_string()),
            since: Some("2026-11-01T00:00:00Z".to_string()),
            limit: Some(5),
            format: None,
        };
        let sql = incidents_sql(&p).expect("valid");
        assert!(sql.contains("rule = 'x'' OR ''1''=''1'"), "{sql}");
        assert!(sql.contains("root_node = 'n'' --'"), "{sql}");
        assert!(sql.contains("cluster = 'edge'' --'"), "{sql}");
        assert!(sql.contains("severity = 'critical'"), "{sql}");
        assert!(sql.ends_with("LIMIT 5"), "{sql}");
        let bad = IncidentParams {
            status: Some("open".to_string()),
            severity: None,
            cluster: None,
            rule: None,
            namespace: None,
            node: None,
            since: None,
            limit: None,
            format: None,
        };
        assert!(incidents_sql(&bad).is_err());
    }
}
