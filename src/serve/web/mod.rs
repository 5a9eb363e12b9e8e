//! The web page `serve` renders itself: the incidents, newest first, and
//! each incident with its root cause, the cascade's timeline, the blast
//! radius as a tree that folds, the explanation in words, the incidents
//! seen before, the notifications the outbox remembers, and a link to its
//! post-mortem draft.
//!
//! - `GET /`: the list (`?status=&severity=&namespace=&rule=`, the API's
//!   filters); it polls `GET /web/incidents` (the same filters) every few
//!   seconds and swaps its rows in, so new incidents arrive without a reload.
//! - `GET /incidents/{id}`: one incident, from the history's stored document;
//!   `GET /incidents/{id}/postmortem.md`: its post-mortem draft.
//! - `GET /assets/style.css`, `/assets/app.js`, `/assets/favicon.svg`:
//!   embedded in the binary.
//! - `GET|POST /login`, `POST /logout`: with `api.token` set, the pages want
//!   it, as `Authorization: Bearer`, or the `epicenter_session` cookie the
//!   login form sets (HttpOnly, SameSite=Strict). The cookie holds an
//!   HMAC-SHA256 of the token, never the token: it opens the pages and not
//!   the JSON API, and a new token ends every session. Wrong tokens are
//!   answered one at a time, a second each, so guessing is slow. Health and
//!   metrics stay open; the JSON API still wants the bearer header.
//!
//! Design choices. HTML is written in Rust with [maud]: templates are
//! checked when the binary compiles (a typo is a build error, not a blank
//! page at 3 a.m.), every interpolated value is escaped unless marked
//! otherwise (incident text comes from logs), and it adds no runtime
//! template files, no separate frontend toolchain and only a small
//! proc-macro crate to the build. The pages work without JavaScript; the
//! one small script only refreshes the list. Nothing is fetched from
//! anywhere but this server (a strict Content-Security-Policy says so), so
//! the page works in a cluster without egress. Polling rather than
//! server-sent events: the list is a query over the history, which is what
//! a poll asks for, and nothing has to be kept open per viewer.

mod page;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use correlate::EventTime;
use hmac::{Hmac, KeyInit, Mac};
use maud::Markup;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;
use sinks::change::ChangeKind;
use sinks::history::{Format, Sql};
use subtle::ConstantTimeEq;
use tokio::sync::Mutex;

use super::api::{self, Api, ApiError, IncidentParams};

/// The cookie that holds a signed-in browser's session.
const COOKIE: &str = "epicenter_session";
/// What the session value signs (with the token as the key).
const SESSION_CONTEXT: &[u8] = b"epicenter web session v1";
/// How long a wrong token's answer waits; one waits at a time.
const WRONG_TOKEN_DELAY: Duration = Duration::from_secs(1);
/// How long the cookie is kept (seconds): a week.
const COOKIE_AGE: u32 = 7 * 24 * 3600;
/// "Seen before" looks this far back.
const SEEN_BEFORE_DAYS: i64 = 30;

const STYLE: &str = include_str!("style.css");
const SCRIPT: &str = include_str!("app.js");
const ICON: &str = include_str!("favicon.svg");

/// Nothing but this server: no CDN, no inline script or style.
const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

#[derive(Clone, Debug)]
struct Web {
    api: Api,
    /// Held while a wrong token's answer waits.
    wrong_tokens: Arc<Mutex<()>>,
}

pub(crate) fn router(api: Api) -> Router {
    Router::new()
        .route("/", get(list))
        .route("/web/incidents", get(list_rows))
        .route("/incidents/{id}", get(incident))
        .route("/incidents/{id}/postmortem.md", get(postmortem))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/assets/style.css", get(style))
        .route("/assets/app.js", get(script))
        .route("/favicon.ico", get(icon))
        .route("/assets/favicon.svg", get(icon))
        .with_state(Web {
            api,
            wrong_tokens: Arc::new(Mutex::new(())),
        })
}

fn now() -> EventTime {
    let us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    EventTime::from_micros(us)
}

/// A page, with the headers every page gets.
fn html(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        markup.into_string(),
    )
        .into_response()
}

/// The value of cookie `name`, percent-decoded.
fn cookie(headers: &HeaderMap, name: &str) -> Option<Vec<u8>> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then(|| percent_encoding::percent_decode_str(v).collect())
        })
}

/// The session cookie's value for `token`: hex HMAC-SHA256 keyed by the
/// token, so the cookie proves the token was given without holding it.
fn session_value(token: &str) -> String {
    // HMAC takes a key of any length: this cannot fail.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(token.as_bytes()) else {
        return String::new();
    };
    mac.update(SESSION_CONTEXT);
    hex::encode(mac.finalize().into_bytes())
}

/// Where to go after signing in: a path on this site, or `/`.
fn safe_next(next: &str) -> &str {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control);
    if ok { next } else { "/" }
}

impl Web {
    /// With `api.token` set: the bearer header or the cookie holds it.
    fn signed_in(&self, headers: &HeaderMap) -> bool {
        let Some(token) = self.api.token() else {
            return true;
        };
        if self.api.authorized(headers) {
            return true;
        }
        cookie(headers, COOKIE)
            .is_some_and(|given| given.ct_eq(session_value(token).as_bytes()).into())
    }

    async fn rows(&self, f: &page::Filters) -> Result<Vec<page::Row>, ApiError> {
        let opt = |s: &str| {
            let s = s.trim();
            (!s.is_empty()).then(|| s.to_string())
        };
        let p = IncidentParams {
            status: opt(&f.status),
            severity: opt(&f.severity),
            cluster: opt(&f.cluster),
            rule: opt(&f.rule),
            namespace: opt(&f.namespace),
            limit: Some(f.limit()),
            ..IncidentParams::default()
        };
        let sql = api::incidents_sql(&p).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
        let engine = self.api.sql().await?;
        json_rows(engine, &sql)
            .await
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e))
    }
}

/// A query's rows, as `T`s.
async fn json_rows<T: DeserializeOwned>(sql: &Sql, query: &str) -> Result<Vec<T>, String> {
    let body = sql
        .query(query, Format::Json)
        .await
        .map_err(|e| e.to_string())?;
    if body.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(&body).map_err(|e| e.to_string())
}

/// 401 with the login form, which comes back to `uri`.
fn login_required(uri: &Uri) -> Response {
    let next = uri.path_and_query().map_or("/", |p| p.as_str());
    html(
        StatusCode::UNAUTHORIZED,
        page::login(safe_next(next), false),
    )
}

async fn list(
    State(web): State<Web>,
    headers: HeaderMap,
    uri: Uri,
    Query(f): Query<page::Filters>,
) -> Response {
    if !web.signed_in(&headers) {
        return login_required(&uri);
    }
    match web.rows(&f).await {
        Ok(rows) => html(StatusCode::OK, page::list(&f, &rows, now(), None)),
        Err(e) => html(e.0, page::list(&f, &[], now(), Some(&e.1))),
    }
}

/// The list's rows alone, for the page's poll.
async fn list_rows(
    State(web): State<Web>,
    headers: HeaderMap,
    Query(f): Query<page::Filters>,
) -> Response {
    if !web.signed_in(&headers) {
        return (StatusCode::UNAUTHORIZED, "sign in again\n").into_response();
    }
    match web.rows(&f).await {
        Ok(rows) => html(StatusCode::OK, page::rows(&rows, now())),
        Err(e) => (e.0, e.1).into_response(),
    }
}

async fn incident(
    State(web): State<Web>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Response {
    if !web.signed_in(&headers) {
        return login_required(&uri);
    }
    let sql = match web.api.sql().await {
        Ok(s) => s,
        Err(e) => return html(e.0, page::message("No history", &e.1)),
    };
    let doc = match sql.document(&id, None).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            return html(
                StatusCode::NOT_FOUND,
                page::message(
                    "No such incident",
                    &format!("The history holds no incident {id}."),
                ),
            );
        }
        Err(e) => {
            return html(
                StatusCode::INTERNAL_SERVER_ERROR,
                page::message("The history failed", &e.to_string()),
            );
        }
    };
    // A merged incident lives on in the one that absorbed it.
    if doc.change == ChangeKind::Merged
        && let Some(into) = &doc.merged_into
    {
        return Redirect::to(&page::incident_href(into)).into_response();
    }
    let r = &doc.incident;
    let lit = api::literal;
    let versions_sql = format!(
        "SELECT version, change, recorded_at FROM incidents WHERE id = {} ORDER BY ordinal LIMIT 200",
        lit(&r.id)
    );
    let versions: Vec<page::Version> = json_rows(sql, &versions_sql).await.unwrap_or_else(|e| {
        tracing::warn!(id = %r.id, error = %e, "web: the incident's versions");
        Vec::new()
    });
    let root = &r.root_cause.entity;
    let namespace = root.namespace.as_deref().filter(|n| !n.is_empty()).map_or(
        "(root_namespace IS NULL OR root_namespace = '')".to_string(),
        |n| format!("root_namespace = {}", lit(n)),
    );
    let since = r
        .opened_at
        .saturating_sub(correlate::Span::from_secs(SEEN_BEFORE_DAYS * 86_400));
    let seen_sql = format!(
        "SELECT id, title, status, opened_at FROM incidents_latest \
         WHERE change <> 'merged' AND rule = {} AND root_kind = {} AND root_name = {} AND {namespace} \
         AND id <> {} AND opened_at < TIMESTAMP {} AND opened_at >= TIMESTAMP {} \
         ORDER BY opened_at DESC LIMIT 20",
        lit(&r.rule),
        lit(&root.kind),
        lit(&root.name),
        lit(&r.id),
        lit(&r.opened_at.to_string()),
        lit(&since.to_string()),
    );
    let seen: Vec<page::Seen> = json_rows(sql, &seen_sql).await.unwrap_or_else(|e| {
        tracing::warn!(id = %r.id, error = %e, "web: incidents seen before");
        Vec::new()
    });
    let notified = web.api.outbox().notified(&r.id).unwrap_or_else(|e| {
        tracing::warn!(id = %r.id, error = %e, "web: the incident's notifications");
        sinks::outbox::Notified::default()
    });
    html(
        StatusCode::OK,
        page::incident(r, &versions, &seen, &notified),
    )
}

async fn postmortem(
    State(web): State<Web>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !web.signed_in(&headers) {
        return (StatusCode::UNAUTHORIZED, "sign in first\n").into_response();
    }
    let sql = match web.api.sql().await {
        Ok(s) => s,
        Err(e) => return (e.0, e.1).into_response(),
    };
    match sql.documents(&id).await {
        Ok(docs) if docs.is_empty() => (
            StatusCode::NOT_FOUND,
            format!("no incident {id} in the history\n"),
        )
            .into_response(),
        Ok(docs) => {
            // Ids are hex, but the file name is made safe whatever it is.
            let name: String = id
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .take(64)
                .collect();
            let disposition = format!("attachment; filename=\"postmortem-{name}.md\"");
            let mut r = (
                [
                    (header::CONTENT_TYPE, "text/markdown; charset=utf-8"),
                    (header::CACHE_CONTROL, "no-store"),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                ],
                sinks::postmortem::draft(&docs),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&disposition) {
                r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            r
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Next {
    next: String,
}

async fn login_form(Query(n): Query<Next>) -> Response {
    html(StatusCode::OK, page::login(safe_next(&n.next), false))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Login {
    token: String,
    next: String,
}

async fn login(State(web): State<Web>, Form(l): Form<Login>) -> Response {
    let next = safe_next(&l.next).to_string();
    let Some(token) = web.api.token() else {
        return Redirect::to(&next).into_response();
    };
    if !bool::from(l.token.as_bytes().ct_eq(token.as_bytes())) {
        tracing::warn!("web: sign-in with a wrong token");
        let _one_at_a_time = web.wrong_tokens.lock().await;
        tokio::time::sleep(WRONG_TOKEN_DELAY).await;
        return html(StatusCode::UNAUTHORIZED, page::login(&next, true));
    }
    let value = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={COOKIE_AGE}",
        session_value(token)
    );
    match HeaderValue::from_str(&value) {
        Ok(v) => {
            let mut r = Redirect::to(&next).into_response();
            r.headers_mut().insert(header::SET_COOKIE, v);
            r
        }
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "cannot set the cookie\n").into_response(),
    }
}

async fn logout() -> Response {
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "epicenter_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    r
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Linked with the version: a new build is a new URL.
            (header::CACHE_CONTROL, "public, max-age=86400"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn icon() -> Response {
    asset("image/svg+xml", ICON)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn only_paths_on_this_site_are_followed_after_login() {
        assert_eq!(safe_next("/incidents/abc?x=1"), "/incidents/abc?x=1");
        for bad in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil",
            "",
            "/a\nb",
        ] {
            assert_eq!(safe_next(bad), "/", "{bad:?}");
        }
    }

    #[test]
    fn the_cookie_is_read_among_others_and_decoded() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; epicenter_session=t%3Bk; b=2"),
        );
        assert_eq!(cookie(&h, COOKIE).unwrap(), b"t;k");
        assert!(cookie(&h, "nope").is_none());
    }

    #[test]
    fn the_session_is_not_the_token_and_changes_with_it() {
        let a = session_value("s3cret");
        assert_eq!(a.len(), 64);
        assert!(!a.contains("s3cret"));
        assert_eq!(a, session_value("s3cret"));
        assert_ne!(a, session_value("s3cret2"));
    }
}
