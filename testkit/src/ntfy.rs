//! A local ntfy for tests: checks what ntfy checks, answers as ntfy answers.
//!
//! [`LocalNtfy`] is an HTTP server on 127.0.0.1 with the publishing API of
//! ntfy 2.16 (`server/server.go`, `server/util.go`, `server/errors.go`):
//!
//! - `POST`/`PUT /<topic>` and `/<topic>/<sequence id>` publish with the
//!   message as the body and the fields as headers (`X-Title`, `Title`,
//!   `ti`, `t`, ... with ntfy's aliases, RFC 2047 encoded words decoded as
//!   Go's `mime.WordDecoder` does, a Cloudflare `Priority: u=3, i` ignored);
//!   `POST`/`PUT /` publishes a JSON document (`topic`, `sequence_id`,
//!   `title`, `message`, `priority`, `tags`, `click`, `markdown`,
//!   `actions`).
//! - `PUT /<topic>/<sequence id>/clear` (or `/read`) clears a notification,
//!   `DELETE /<topic>/<sequence id>` deletes it.
//! - What ntfy refuses is refused with its status and error document
//!   (`{"code":40007,"http":400,"error":"invalid priority parameter",...}`):
//!   topic and sequence-id syntax (`^[-_A-Za-z0-9]{1,64}$`, reserved topic
//!   names), priorities other than 1-5 and their names, actions that do not
//!   parse or are more than three, a message over the size limit or not
//!   UTF-8 (ntfy would make it an attachment, which this server, like most,
//!   does not allow), a JSON document over twice the limit, credentials
//!   that do not match (401) and anonymous publishing when auth is on (403).
//!
//! Every accepted message is recorded ([`Message`]) with its arrival time,
//! every clear and delete too, and [`LocalNtfy::phone`] shows what a
//! subscribed phone displays: the latest message per sequence id, cleared or
//! not, deleted ones gone. Fault injection ([`LocalNtfy::fail_next`]): the
//! next answers can be 429 (with or without `Retry-After`), 500, or delayed.
//!
//! Design choice: the server runs on its own thread with its own tokio
//! runtime, so async tests (any runtime flavour) and blocking end-to-end
//! tests of the binary use it alike; the recorded state is behind a plain
//! mutex and read synchronously. Dropping it stops the server at once, even
//! with a delayed answer in flight.

use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// ntfy's default `message-size-limit`.
pub const DEFAULT_MESSAGE_LIMIT: usize = 4096;
/// ntfy refuses more actions than this.
pub const MAX_ACTIONS: usize = 3;
const MAX_ID: usize = 64;
const RESERVED_TOPICS: [&str; 10] = [
    "docs", "static", "file", "app", "metrics", "account", "settings", "signup", "login", "v1",
];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("local ntfy: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the server accepts.
#[derive(Debug, Clone)]
pub struct NtfyConfig {
    /// `message-size-limit`, bytes.
    pub message_limit: usize,
    /// Access tokens with write access (`Authorization: Bearer`).
    pub tokens: Vec<String>,
    /// Users with write access (`Authorization: Basic`), as (user, password).
    pub users: Vec<(String, String)>,
}

impl Default for NtfyConfig {
    fn default() -> Self {
        NtfyConfig {
            message_limit: DEFAULT_MESSAGE_LIMIT,
            tokens: Vec::new(),
            users: Vec::new(),
        }
    }
}

impl NtfyConfig {
    /// Whether anonymous publishing is refused (`auth-default-access:
    /// deny-all` with these users and tokens).
    pub fn auth_required(&self) -> bool {
        !self.tokens.is_empty() || !self.users.is_empty()
    }
}

/// How a message was published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Via {
    Headers,
    Json,
}

/// An action button as ntfy stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub action: String,
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default)]
    pub clear: bool,
}

/// One accepted message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub id: String,
    /// When it arrived.
    #[serde(skip)]
    pub arrived: SystemTime,
    pub topic: String,
    /// The sequence id given, or the message id when none was.
    pub sequence_id: String,
    pub title: Option<String>,
    pub message: String,
    /// 1 to 5 (3 when none was given).
    pub priority: u8,
    pub tags: Vec<String>,
    pub click: Option<String>,
    pub actions: Vec<Action>,
    pub markdown: bool,
    pub via: Via,
}

/// A clear or a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DismissKind {
    Clear,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dismissal {
    #[serde(skip)]
    pub arrived: SystemTime,
    pub topic: String,
    pub sequence_id: String,
    pub kind: DismissKind,
}

/// A notification as a subscribed phone shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shown {
    /// The latest message of its sequence.
    pub message: Message,
    /// Marked read and gone from the drawer (still in the app).
    pub cleared: bool,
    /// How many messages of the sequence arrived (1: never updated).
    pub versions: usize,
}

/// A request answered with an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub method: String,
    pub path: String,
    pub http: u16,
    pub code: u32,
    pub error: String,
}

/// An answer forced on the next requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 429 (`limit reached: too many requests`), with `Retry-After` seconds
    /// when given.
    TooManyRequests { retry_after: Option<u64> },
    /// 500 (`internal server error`).
    ServerError,
    /// The request is handled at once and answered after this long (a
    /// sender that times out has published all the same).
    Delay(Duration),
}

#[derive(Debug, Default)]
struct Recorded {
    messages: Vec<Message>,
    dismissals: Vec<Dismissal>,
    refusals: Vec<Refusal>,
    /// (topic, sequence id) -> what the phone shows.
    phone: BTreeMap<(String, String), Shown>,
    faults: VecDeque<Fault>,
    next_id: u64,
}

#[derive(Debug)]
struct Shared {
    config: NtfyConfig,
    recorded: Mutex<Recorded>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Recorded> {
        self.recorded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A local ntfy on 127.0.0.1, stopped on drop.
#[derive(Debug)]
pub struct LocalNtfy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl LocalNtfy {
    /// An open server (anyone may publish), or a panic saying why not.
    pub fn start() -> LocalNtfy {
        LocalNtfy::start_with(NtfyConfig::default())
    }

    pub fn start_with(config: NtfyConfig) -> LocalNtfy {
        LocalNtfy::try_start(config).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_start(config: NtfyConfig) -> Result<LocalNtfy> {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            recorded: Mutex::new(Recorded::default()),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name(format!("local-ntfy-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    tokio::select! {
                        _ = axum::serve(listener, app) => {}
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(LocalNtfy {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:<port>`: the `server` setting.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every accepted message, in arrival order.
    pub fn messages(&self) -> Vec<Message> {
        self.shared.lock().messages.clone()
    }

    /// Every clear and delete, in arrival order.
    pub fn dismissals(&self) -> Vec<Dismissal> {
        self.shared.lock().dismissals.clone()
    }

    /// Every refused request, in arrival order.
    pub fn refusals(&self) -> Vec<Refusal> {
        self.shared.lock().refusals.clone()
    }

    /// What a phone subscribed to `topic` shows: one entry per sequence id
    /// (not deleted), in the order the sequences first appeared.
    pub fn phone(&self, topic: &str) -> Vec<Shown> {
        let rec = self.shared.lock();
        let mut shown: Vec<Shown> = rec
            .phone
            .iter()
            .filter(|((t, _), _)| t == topic)
            .map(|(_, s)| s.clone())
            .collect();
        let first = |s: &Shown| {
            rec.messages
                .iter()
                .position(|m| m.topic == topic && m.sequence_id == s.message.sequence_id)
        };
        shown.sort_by_key(first);
        shown
    }

    /// The notifications of `topic` still in the drawer (not cleared).
    pub fn drawer(&self, topic: &str) -> Vec<Shown> {
        self.phone(topic)
            .into_iter()
            .filter(|s| !s.cleared)
            .collect()
    }

    /// Forgets every fault not yet answered: the server works again.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// The next `k` requests get `fault` (after any already queued).
    pub fn fail_next(&self, k: usize, fault: Fault) {
        self.shared
            .lock()
            .faults
            .extend(std::iter::repeat_n(fault, k));
    }

    /// Waits (blocking, polling) until at least `n` messages arrived or
    /// `timeout` passed; returns the messages. For blocking end-to-end
    /// tests; async tests read [`LocalNtfy::messages`] after the delivery
    /// returned.
    pub fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<Message> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= n || Instant::now() >= deadline {
                return messages;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for LocalNtfy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An answer of ntfy's: status and error document.
#[derive(Debug, Clone)]
struct NtfyError {
    code: u32,
    http: StatusCode,
    error: String,
    link: &'static str,
}

fn err(code: u32, http: StatusCode, error: &str, link: &'static str) -> NtfyError {
    NtfyError {
        code,
        http,
        error: error.to_string(),
        link,
    }
}

const LINK_AUTH: &str = "https://ntfy.sh/docs/publish/#authentication";
const LINK_PRIORITY: &str = "https://ntfy.sh/docs/publish/#message-priority";
const LINK_ACTIONS: &str = "https://ntfy.sh/docs/publish/#action-buttons";
const LINK_JSON: &str = "https://ntfy.sh/docs/publish/#publish-as-json";
const LINK_ATTACH: &str = "https://ntfy.sh/docs/config/#attachments";
const LINK_LIMITS: &str = "https://ntfy.sh/docs/publish/#limitations";

fn not_found() -> NtfyError {
    err(40401, StatusCode::NOT_FOUND, "page not found", "")
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fault = shared.lock().faults.pop_front();
    match fault {
        Some(Fault::TooManyRequests { retry_after }) => {
            let e = err(
                42901,
                StatusCode::TOO_MANY_REQUESTS,
                "limit reached: too many requests, please be nice",
                LINK_LIMITS,
            );
            let mut resp = refuse(&shared, &method, &uri, &e);
            if let Some(secs) = retry_after
                && let Ok(v) = secs.to_string().parse()
            {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return resp;
        }
        Some(Fault::ServerError) => {
            let e = err(
                50001,
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal server error",
                "",
            );
            return refuse(&shared, &method, &uri, &e);
        }
        Some(Fault::Delay(_)) | None => {}
    }
    // Processed at once, answered after the delay: a sender that gives up
    // waiting does not undo the publication (it is in doubt).
    let answer = route(&shared, &method, uri.path(), &headers, &body);
    if let Some(Fault::Delay(d)) = fault {
        tokio::time::sleep(d).await;
    }
    match answer {
        Ok(doc) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            format!("{doc}\n"),
        )
            .into_response(),
        Err(e) => refuse(&shared, &method, &uri, &e),
    }
}

fn refuse(shared: &Shared, method: &Method, uri: &Uri, e: &NtfyError) -> Response {
    let mut doc = json!({"code": e.code, "http": e.http.as_u16(), "error": e.error});
    if !e.link.is_empty() {
        doc["link"] = json!(e.link);
    }
    shared.lock().refusals.push(Refusal {
        method: method.to_string(),
        path: uri.path().to_string(),
        http: e.http.as_u16(),
        code: e.code,
        error: e.error.clone(),
    });
    (
        e.http,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{doc}\n"),
    )
        .into_response()
}

fn route(
    shared: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, NtfyError> {
    authenticate(&shared.config, headers)?;
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let publish = method == Method::POST || method == Method::PUT;
    match parts.as_slice() {
        [""] if publish => publish_json(shared, headers, body),
        [topic] if publish && is_valid_id(topic) => {
            let sid = header_param(headers, &["x-sequence-id", "sequence-id", "sid"]);
            publish_headers(shared, topic, sid, headers, body)
        }
        [topic, sid] if publish && is_valid_id(topic) && is_valid_id(sid) => {
            publish_headers(shared, topic, Some((*sid).to_string()), headers, body)
        }
        [topic, sid, "clear" | "read"]
            if method == Method::PUT && is_valid_id(topic) && is_valid_id(sid) =>
        {
            dismiss(shared, topic, sid, DismissKind::Clear)
        }
        [topic, sid] if method == Method::DELETE && is_valid_id(topic) && is_valid_id(sid) => {
            dismiss(shared, topic, sid, DismissKind::Delete)
        }
        _ => Err(not_found()),
    }
}

/// ntfy's `maybeAuthenticate` and write authorization: bad credentials are
/// 401, none where auth is required 403.
fn authenticate(config: &NtfyConfig, headers: &HeaderMap) -> Result<(), NtfyError> {
    let unauthorized = || err(40101, StatusCode::UNAUTHORIZED, "unauthorized", LINK_AUTH);
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return if config.auth_required() {
            Err(err(40301, StatusCode::FORBIDDEN, "forbidden", LINK_AUTH))
        } else {
            Ok(())
        };
    };
    let value = value.to_str().map_err(|_| unauthorized())?.trim();
    let (scheme, rest) = value.split_once(' ').ok_or_else(unauthorized)?;
    let ok = match scheme.to_ascii_lowercase().as_str() {
        "bearer" => config.tokens.iter().any(|t| t == rest.trim()),
        "basic" => {
            let decoded = base64_decode(rest.trim()).ok_or_else(unauthorized)?;
            let decoded = String::from_utf8(decoded).map_err(|_| unauthorized())?;
            let (user, pass) = decoded.split_once(':').ok_or_else(unauthorized)?;
            config.users.iter().any(|(u, p)| u == user && p == pass)
        }
        _ => false,
    };
    if ok { Ok(()) } else { Err(unauthorized()) }
}

fn is_valid_id(s: &str) -> bool {
    (1..=MAX_ID).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check_topic(topic: &str) -> Result<(), NtfyError> {
    if !is_valid_id(topic) {
        return Err(err(
            40009,
            StatusCode::BAD_REQUEST,
            "invalid request: topic invalid",
            "",
        ));
    }
    if RESERVED_TOPICS.contains(&topic) {
        return Err(err(
            40010,
            StatusCode::BAD_REQUEST,
            "invalid request: topic name is not allowed",
            "",
        ));
    }
    Ok(())
}

fn check_sequence_id(sid: &str) -> Result<(), NtfyError> {
    if is_valid_id(sid) {
        Ok(())
    } else {
        Err(err(
            40049,
            StatusCode::BAD_REQUEST,
            "invalid request: sequence ID invalid",
            "",
        ))
    }
}

/// ntfy's `readHeaderParam`: the first alias set, decoded, trimmed.
fn header_param(headers: &HeaderMap, names: &[&str]) -> Option<String> {
    for name in names {
        let Some(raw) = headers.get(*name) else {
            continue;
        };
        let raw = String::from_utf8_lossy(raw.as_bytes());
        let value = decode_header(&raw).unwrap_or_else(|| raw.to_string());
        let value = value.trim();
        // A Cloudflare `Priority: u=3, i` (RFC 9218) is not ntfy's priority.
        if *name == "priority" && is_http_priority(value) {
            continue;
        }
        if !value.is_empty() {
            return Some(value.to_string());
        }
    }
    None
}

fn is_http_priority(v: &str) -> bool {
    let Some(rest) = v.strip_prefix("u=") else {
        return false;
    };
    let mut chars = rest.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_digit()) {
        return false;
    }
    let tail = chars.as_str();
    if tail.is_empty() {
        return true;
    }
    let Some(after) = tail.strip_prefix(',') else {
        return false;
    };
    let after = after.trim_start();
    after == "i" || (after.len() == 1 && after.chars().all(|c| c.is_ascii_digit()))
}

fn bool_param(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "1" | "yes" | "true")
}

/// ntfy's `util.ParsePriority`.
fn parse_priority(p: &str) -> Result<u8, NtfyError> {
    match p.trim().to_ascii_lowercase().as_str() {
        "" => Ok(3),
        "1" | "min" => Ok(1),
        "2" | "low" => Ok(2),
        "3" | "default" => Ok(3),
        "4" | "high" => Ok(4),
        "5" | "max" | "urgent" => Ok(5),
        _ => Err(err(
            40007,
            StatusCode::BAD_REQUEST,
            "invalid priority parameter",
            LINK_PRIORITY,
        )),
    }
}

fn actions_invalid(why: &str) -> NtfyError {
    err(
        40018,
        StatusCode::BAD_REQUEST,
        &format!("invalid request: actions invalid, {why}"),
        LINK_ACTIONS,
    )
}

fn check_actions(actions: Vec<Action>) -> Result<Vec<Action>, NtfyError> {
    if actions.len() > MAX_ACTIONS {
        return Err(actions_invalid(&format!(
            "only {MAX_ACTIONS} actions allowed"
        )));
    }
    for a in &actions {
        match a.action.as_str() {
            "view" | "http" => {
                if a.url.as_deref().is_none_or(str::is_empty) {
                    return Err(actions_invalid(&format!(
                        "parameter 'url' is required for action '{}'",
                        a.action
                    )));
                }
            }
            "broadcast" | "copy" => {}
            other => {
                return Err(actions_invalid(&format!("action '{other}' unknown")));
            }
        }
        if a.label.is_empty() {
            return Err(actions_invalid("parameter 'label' is required"));
        }
    }
    Ok(actions)
}

/// The simple `X-Actions` format (`view, Label, https://..., clear=true;
/// ...`, values quoted with `"` or `'`), or a JSON array.
fn parse_actions(s: &str) -> Result<Vec<Action>, NtfyError> {
    let s = s.trim();
    if s.starts_with('[') {
        let actions: Vec<Action> =
            serde_json::from_str(s).map_err(|e| actions_invalid(&e.to_string()))?;
        return check_actions(actions);
    }
    let mut actions = Vec::new();
    for def in split_quoted(s, ';') {
        if def.trim().is_empty() {
            continue;
        }
        let mut action = Action {
            action: String::new(),
            label: String::new(),
            url: None,
            clear: false,
        };
        let mut position = 0;
        for field in split_quoted(&def, ',') {
            let field = field.trim();
            let keyed = field.split_once('=').filter(|(k, _)| {
                let k = k.trim();
                [
                    "action", "label", "url", "clear", "method", "body", "intent", "value",
                ]
                .contains(&k)
                    || k.starts_with("headers.")
                    || k.starts_with("extras.")
            });
            match keyed {
                Some((k, v)) => {
                    let v = unquote(v.trim());
                    match k.trim() {
                        "action" => action.action = v,
                        "label" => action.label = v,
                        "url" => action.url = Some(v),
                        "clear" => action.clear = bool_param(&v),
                        _ => {}
                    }
                }
                None => {
                    let v = unquote(field);
                    match position {
                        0 => action.action = v,
                        1 => action.label = v,
                        2 => action.url = Some(v),
                        _ => return Err(actions_invalid("term is not a key/value pair")),
                    }
                    position += 1;
                }
            }
        }
        actions.push(action);
    }
    check_actions(actions)
}

/// `s` split at `sep` outside `"..."` and `'...'`.
fn split_quoted(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => {
                quote = None;
                cur.push(c);
            }
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                cur.push(c);
            }
            None if c == sep => out.push(std::mem::take(&mut cur)),
            None => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn unquote(s: &str) -> String {
    for q in ['"', '\''] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return s[1..s.len() - 1].to_string();
        }
    }
    s.to_string()
}

/// The body as the message: UTF-8 and within the limit, or (as ntfy
/// without an attachment cache answers) refused.
fn message_body(config: &NtfyConfig, body: &[u8]) -> Result<String, NtfyError> {
    let refused = || {
        err(
            40014,
            StatusCode::BAD_REQUEST,
            "invalid request: attachments not allowed",
            LINK_ATTACH,
        )
    };
    if body.len() > config.message_limit {
        return Err(refused());
    }
    let text = std::str::from_utf8(body).map_err(|_| refused())?;
    Ok(if text.is_empty() {
        "triggered".to_string()
    } else {
        text.to_string()
    })
}

fn publish_headers(
    shared: &Shared,
    topic: &str,
    sid: Option<String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, NtfyError> {
    check_topic(topic)?;
    if let Some(sid) = &sid {
        check_sequence_id(sid)?;
    }
    let priority = parse_priority(
        &header_param(headers, &["x-priority", "priority", "prio", "p"]).unwrap_or_default(),
    )?;
    let content_markdown = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/markdown"));
    let markdown = header_param(headers, &["x-markdown", "markdown", "md"])
        .is_some_and(|v| bool_param(&v))
        || content_markdown;
    let actions = match header_param(headers, &["x-actions", "actions", "action"]) {
        Some(a) => parse_actions(&a)?,
        None => Vec::new(),
    };
    let tags = header_param(headers, &["x-tags", "tags", "tag", "ta"])
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let message = message_body(&shared.config, body)?;
    let m = accept(
        shared,
        Draft {
            topic: topic.to_string(),
            sequence_id: sid,
            title: header_param(headers, &["x-title", "title", "ti", "t"]),
            message,
            priority,
            tags,
            click: header_param(headers, &["x-click", "click"]),
            actions,
            markdown,
            via: Via::Headers,
        },
    );
    Ok(message_json(&m, "message"))
}

/// ntfy's `publishMessage`.
#[derive(Debug, Deserialize)]
struct JsonPublication {
    topic: String,
    #[serde(default)]
    sequence_id: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    priority: Option<i64>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    click: Option<String>,
    #[serde(default)]
    markdown: bool,
    #[serde(default)]
    actions: Vec<Action>,
}

fn publish_json(shared: &Shared, _headers: &HeaderMap, body: &[u8]) -> Result<Value, NtfyError> {
    if body.len() > 2 * shared.config.message_limit {
        return Err(err(
            41303,
            StatusCode::PAYLOAD_TOO_LARGE,
            "JSON body too large",
            "",
        ));
    }
    let doc: JsonPublication = serde_json::from_slice(body).map_err(|_| {
        err(
            40017,
            StatusCode::BAD_REQUEST,
            "invalid request: request body must be message JSON",
            LINK_JSON,
        )
    })?;
    check_topic(&doc.topic)?;
    if let Some(sid) = doc.sequence_id.as_deref().filter(|s| !s.is_empty()) {
        check_sequence_id(sid)?;
    }
    let priority = match doc.priority.unwrap_or(0) {
        0 => 3,
        p @ 1..=5 => u8::try_from(p).unwrap_or(3),
        _ => {
            return Err(err(
                40007,
                StatusCode::BAD_REQUEST,
                "invalid priority parameter",
                LINK_PRIORITY,
            ));
        }
    };
    let actions = check_actions(doc.actions)?;
    let message = message_body(&shared.config, doc.message.unwrap_or_default().as_bytes())?;
    let m = accept(
        shared,
        Draft {
            topic: doc.topic,
            sequence_id: doc.sequence_id.filter(|s| !s.is_empty()),
            title: doc.title.filter(|t| !t.is_empty()),
            message,
            priority,
            tags: doc.tags,
            click: doc.click.filter(|c| !c.is_empty()),
            actions,
            markdown: doc.markdown,
            via: Via::Json,
        },
    );
    Ok(message_json(&m, "message"))
}

struct Draft {
    topic: String,
    sequence_id: Option<String>,
    title: Option<String>,
    message: String,
    priority: u8,
    tags: Vec<String>,
    click: Option<String>,
    actions: Vec<Action>,
    markdown: bool,
    via: Via,
}

fn accept(shared: &Shared, d: Draft) -> Message {
    let mut rec = shared.lock();
    rec.next_id += 1;
    let id = message_id(rec.next_id);
    let m = Message {
        sequence_id: d.sequence_id.unwrap_or_else(|| id.clone()),
        id,
        arrived: SystemTime::now(),
        topic: d.topic,
        title: d.title,
        message: d.message,
        priority: d.priority,
        tags: d.tags,
        click: d.click,
        actions: d.actions,
        markdown: d.markdown,
        via: d.via,
    };
    rec.messages.push(m.clone());
    let key = (m.topic.clone(), m.sequence_id.clone());
    let versions = rec.phone.get(&key).map_or(0, |s| s.versions) + 1;
    rec.phone.insert(
        key,
        Shown {
            message: m.clone(),
            cleared: false,
            versions,
        },
    );
    m
}

fn dismiss(shared: &Shared, topic: &str, sid: &str, kind: DismissKind) -> Result<Value, NtfyError> {
    check_topic(topic)?;
    let mut rec = shared.lock();
    rec.next_id += 1;
    let id = message_id(rec.next_id);
    rec.dismissals.push(Dismissal {
        arrived: SystemTime::now(),
        topic: topic.to_string(),
        sequence_id: sid.to_string(),
        kind,
    });
    let key = (topic.to_string(), sid.to_string());
    match kind {
        DismissKind::Clear => {
            if let Some(shown) = rec.phone.get_mut(&key) {
                shown.cleared = true;
            }
        }
        DismissKind::Delete => {
            rec.phone.remove(&key);
        }
    }
    let event = match kind {
        DismissKind::Clear => "message_clear",
        DismissKind::Delete => "message_delete",
    };
    Ok(json!({
        "id": id,
        "time": unix_now(),
        "event": event,
        "topic": topic,
        "sequence_id": sid,
    }))
}

fn message_json(m: &Message, event: &str) -> Value {
    let mut doc = json!({
        "id": m.id,
        "time": unix_now(),
        "expires": unix_now() + 12 * 3600,
        "event": event,
        "topic": m.topic,
        "sequence_id": m.sequence_id,
        "message": m.message,
    });
    if let Some(t) = &m.title {
        doc["title"] = json!(t);
    }
    if m.priority != 3 {
        doc["priority"] = json!(m.priority);
    }
    if !m.tags.is_empty() {
        doc["tags"] = json!(m.tags);
    }
    if let Some(c) = &m.click {
        doc["click"] = json!(c);
    }
    if !m.actions.is_empty() {
        doc["actions"] = json!(m.actions);
    }
    if m.markdown {
        doc["content_type"] = json!("text/markdown");
    }
    doc
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// 12 characters of `[A-Za-z0-9]`, like ntfy's message ids.
fn message_id(n: u64) -> String {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    // Spread consecutive numbers over the id space (an odd multiplier is a
    // bijection on u64).
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..12)
        .map(|_| {
            let c = ALPHABET[(x % 62) as usize];
            x /= 62;
            char::from(c)
        })
        .collect()
}

/// Go's `mime.WordDecoder.DecodeHeader` for UTF-8 and US-ASCII: encoded
/// words (`=?charset?B|Q?text?=`) decoded, white space between adjacent
/// words dropped, words that do not decode kept as they are. `None` where
/// Go answers an error (a charset it cannot convert): ntfy then keeps the
/// raw value.
pub fn decode_header(header: &str) -> Option<String> {
    let Some(first) = header.find("=?") else {
        return Some(header.to_string());
    };
    let mut out: Vec<u8> = header.as_bytes()[..first].to_vec();
    let mut rest = &header[first..];
    let mut between_words = false;
    while let Some(start) = rest.find("=?") {
        let mut cur = start + 2;
        let Some(q) = rest[cur..].find('?') else {
            break;
        };
        let charset = &rest[cur..cur + q];
        cur += q + 1;
        if rest.len() < cur + "Q??=".len() {
            break;
        }
        let encoding = rest.as_bytes()[cur];
        cur += 1;
        if rest.as_bytes()[cur] != b'?' {
            break;
        }
        cur += 1;
        let Some(j) = rest[cur..].find("?=") else {
            break;
        };
        let text = &rest[cur..cur + j];
        let end = cur + j + 2;
        let content = match encoding {
            b'B' | b'b' => base64_decode(text),
            b'Q' | b'q' => q_decode(text),
            _ => None,
        };
        let Some(content) = content else {
            between_words = false;
            out.extend_from_slice(&rest.as_bytes()[..start + 2]);
            rest = &rest[start + 2..];
            continue;
        };
        let before = &rest[..start];
        if start > 0 && (!between_words || before.chars().any(|c| !" \t\r\n".contains(c))) {
            out.extend_from_slice(before.as_bytes());
        }
        if !["utf-8", "us-ascii"].contains(&charset.to_ascii_lowercase().as_str()) {
            return None;
        }
        out.extend_from_slice(&content);
        rest = &rest[end..];
        between_words = true;
    }
    out.extend_from_slice(rest.as_bytes());
    Some(String::from_utf8_lossy(&out).into_owned())
}

fn q_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'_' => out.push(b' '),
            b'=' => {
                let hex = s.get(i + 1..i + 3)?;
                if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c if (b' '..=b'~').contains(&c) || c == b'\n' || c == b'\r' || c == b'\t' => {
                out.push(c)
            }
            _ => return None,
        }
        i += 1;
    }
    Some(out)
}

/// Standard base64 with padding, strict (Go's `base64.StdEncoding`).
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    }
    let b = s.as_bytes();
    if !b.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    for (i, chunk) in b.chunks(4).enumerate() {
        let last = i == b.len() / 4 - 1;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn header_decoding_follows_go() {
        assert_eq!(decode_header("plain").as_deref(), Some("plain"));
        assert_eq!(
            decode_header("=?UTF-8?B?w5xiZXI=?= =?UTF-8?B?IPCfmqg=?=").as_deref(),
            Some("Über 🚨")
        );
        assert_eq!(
            decode_header("a =?utf-8?q?caf=C3=A9_au_lait?= b").as_deref(),
            Some("a café au lait b")
        );
        assert_eq!(decode_header("=?ISO-8859-1?Q?caf=E9?="), None);
        assert_eq!(
            decode_header("=?UTF-8?X?zz?=").as_deref(),
            Some("=?UTF-8?X?zz?=")
        );
    }

    #[test]
    fn base64_is_strict() {
        assert_eq!(base64_decode("Zm9vYmE=").as_deref(), Some(&b"fooba"[..]));
        assert_eq!(base64_decode("Zm9vYg==").as_deref(), Some(&b"foob"[..]));
        assert_eq!(base64_decode("Zm9vYg"), None);
        assert_eq!(base64_decode("Zm=9"), None);
    }

    #[test]
    fn actions_parse_like_ntfy() {
        let a = parse_actions(
            "view, Open, https://x.example/?a=b, clear=true; view, \"a, b\", https://y.example",
        )
        .unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].url.as_deref(), Some("https://x.example/?a=b"));
        assert!(a[0].clear);
        assert_eq!(a[1].label, "a, b");
        assert!(
            parse_actions(
                "view, A, https://a; view, B, https://b; view, C, https://c; view, D, https://d"
            )
            .is_err()
        );
        assert!(parse_actions("view, Open").is_err());
    }

    #[test]
    fn priorities_parse_like_ntfy() {
        assert_eq!(parse_priority("urgent").unwrap(), 5);
        assert_eq!(parse_priority("").unwrap(), 3);
        assert!(parse_priority("6").is_err());
        assert!(is_http_priority("u=3, i"));
        assert!(is_http_priority("u=1"));
        assert!(!is_http_priority("5"));
    }
}
