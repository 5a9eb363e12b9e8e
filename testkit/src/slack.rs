//! A local Slack for tests: the Web API methods a notifier calls and
//! incoming webhooks, over real HTTP on 127.0.0.1, checking what Slack
//! checks and answering as Slack answers.
//!
//! [`FakeSlack::start`] runs an axum server on a random port, on its own
//! thread with its own tokio runtime, so async tests (the notifier, the
//! outbox) and blocking end-to-end tests of the binary can both use it;
//! it stops when dropped.
//!
//! What it checks, as Slack does (answers are HTTP 200 with
//! `{"ok": false, "error": "<code>"}` unless said otherwise):
//! - the bearer token (`not_authed` without one, `invalid_auth` for another,
//!   `token_revoked` after [`FakeSlack::revoke_token`]) and the token's
//!   scopes (`missing_scope` with `needed` and `provided`);
//! - JSON bodies only for write methods (`chat.*`), `application/json`
//!   (a `missing_charset` warning without `; charset=utf-8`); reads take
//!   query or form parameters, as Slack's read methods do, and ignore a
//!   JSON body;
//! - channels: `chat.postMessage` takes an id or a name (`#name` too);
//!   `chat.update` and the `conversations.*` reads take ids only
//!   (`channel_not_found`); `is_archived`; `not_in_channel` when the bot is
//!   not a member;
//! - messages: text or blocks (`no_text`), text up to 40,000 characters
//!   (`msg_too_long`), Block Kit types and limits (`invalid_blocks` with
//!   Slack-style `errors`, see [`blockkit`]), metadata shape
//!   (`invalid_metadata_format`), `thread_ts` on an existing message
//!   (`thread_not_found`), `chat.update` on an existing message of that
//!   channel (`message_not_found`) posted by the app (`cant_update_message`);
//! - `conversations.history` (newest first, top-level messages and thread
//!   broadcasts) and `conversations.replies` (parent first) with cursors,
//!   returning message metadata only with `include_all_metadata`;
//!   [`FakeSlackOptions::history_page_cap`] can cap pages at 15 as Slack
//!   does for non-Marketplace apps; `conversations.list` for names.
//!
//! Incoming webhooks ([`FakeSlack::webhook_url`]) answer in plain text:
//! `200 ok`, `400 invalid_payload` / `no_text` / `invalid_blocks`,
//! `404 no_service`, `410 channel_is_archived`.
//!
//! Fault injection ([`FakeSlack::fault`], [`FakeSlack::fault_on`]): the next
//! K calls (of one method, or any) answer `429` with `Retry-After: N` and
//! Slack's `ratelimited`, or HTTP 500, or are processed normally but
//! answered only after a delay (a client with a shorter timeout sees a
//! timeout although the message was posted: the in-doubt case).
//!
//! Inspection: [`FakeSlack::messages`] (per channel, with current text,
//! blocks and metadata, the edit history and the thread replies) and
//! [`FakeSlack::requests`] (every call with its arrival `Instant`, method,
//! channel and outcome, for asserting retry timing and call counts).

pub mod blockkit;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use serde_json::{Map, Value, json};

/// The bot token the default options accept.
pub const TOKEN: &str = "xoxb-0000000000-epicenter-test";
/// The default channel: id and name.
pub const CHANNEL_ID: &str = "C0EPICNTR1";
pub const CHANNEL_NAME: &str = "incidents";
pub const TEAM_ID: &str = "T0EPICNTR1";
/// Who the app's messages are from.
pub const BOT_USER_ID: &str = "U0EPICBOT1";
pub const BOT_ID: &str = "B0EPICBOT1";
pub const APP_ID: &str = "A0EPICAPP1";
/// Who [`FakeSlack::seed_message`] messages are from.
pub const PERSON_USER_ID: &str = "U0PERSON01";
/// The scopes of the default token: posting, reading history, listing.
pub const SCOPES: [&str; 5] = [
    "chat:write",
    "channels:history",
    "groups:history",
    "channels:read",
    "groups:read",
];
/// The "method" of incoming webhook calls in [`FakeSlack::requests`] and
/// for [`FakeSlack::fault_on`].
pub const WEBHOOK: &str = "incoming-webhook";
/// Slack's limit on a message's top-level text.
pub const MAX_TEXT: usize = 40_000;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the local slack cannot start: {0}")]
    Io(#[from] std::io::Error),
}

/// A channel of the local workspace.
#[derive(Debug, Clone)]
pub struct FakeChannel {
    pub id: String,
    pub name: String,
    pub private: bool,
    /// Whether the bot is a member (it must be, to post and read).
    pub member: bool,
    pub archived: bool,
}

impl FakeChannel {
    pub fn public(id: &str, name: &str) -> FakeChannel {
        FakeChannel {
            id: id.to_string(),
            name: name.to_string(),
            private: false,
            member: true,
            archived: false,
        }
    }

    pub fn private(id: &str, name: &str) -> FakeChannel {
        FakeChannel {
            private: true,
            ..FakeChannel::public(id, name)
        }
    }

    pub fn archived(mut self) -> FakeChannel {
        self.archived = true;
        self
    }

    pub fn without_bot(mut self) -> FakeChannel {
        self.member = false;
        self
    }
}

#[derive(Debug, Clone)]
pub struct FakeSlackOptions {
    pub token: String,
    pub scopes: Vec<String>,
    pub channels: Vec<FakeChannel>,
    /// The most messages a history or replies page holds, whatever the
    /// `limit` asked: 999 is Slack's maximum, 15 its cap for
    /// non-Marketplace apps created since May 2025.
    pub history_page_cap: usize,
}

impl Default for FakeSlackOptions {
    fn default() -> FakeSlackOptions {
        FakeSlackOptions {
            token: TOKEN.to_string(),
            scopes: SCOPES.iter().map(|s| s.to_string()).collect(),
            channels: vec![FakeChannel::public(CHANNEL_ID, CHANNEL_NAME)],
            history_page_cap: 999,
        }
    }
}

impl FakeSlackOptions {
    /// The default options with only these scopes.
    pub fn with_scopes(scopes: &[&str]) -> FakeSlackOptions {
        FakeSlackOptions {
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            ..FakeSlackOptions::default()
        }
    }
}

/// How an injected fault answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 429, `Retry-After: retry_after`, `{"ok":false,"error":"ratelimited"}`;
    /// not processed.
    RateLimited { retry_after: u64 },
    /// HTTP 500 with an HTML body (a failing gateway); not processed.
    ServerError,
    /// Processed as usual, answered after this long.
    Delay(Duration),
}

/// What a call got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Refused with Slack's error code (`ok: false`, or a webhook's 4xx).
    Error(String),
    /// An injected HTTP failure (429, 500), not processed.
    Http(u16),
}

/// One call the local Slack received.
#[derive(Debug, Clone)]
pub struct Request {
    pub at: Instant,
    /// `chat.postMessage`, ..., or [`WEBHOOK`].
    pub method: String,
    /// The channel argument as given.
    pub channel: Option<String>,
    pub outcome: Outcome,
    /// Set when the answer was held back by [`Fault::Delay`].
    pub delayed: Option<Duration>,
}

/// A former version of a message, replaced by `chat.update`.
#[derive(Debug, Clone)]
pub struct Revision {
    pub at: Instant,
    pub text: String,
    pub blocks: Value,
    pub metadata: Option<Value>,
}

/// A message as the workspace has it now.
#[derive(Debug, Clone)]
pub struct Message {
    /// The channel's id.
    pub channel: String,
    pub ts: String,
    pub text: String,
    /// The blocks array, or `Null` without blocks.
    pub blocks: Value,
    pub metadata: Option<Value>,
    /// The parent's ts, for a thread reply.
    pub thread_ts: Option<String>,
    /// A thread reply also sent to the channel (`reply_broadcast`).
    pub broadcast: bool,
    /// Posted by the app (Web API or incoming webhook), not a person.
    pub by_app: bool,
    pub via_webhook: bool,
    /// Earlier versions, oldest first.
    pub edits: Vec<Revision>,
    /// The thread replies, oldest first (filled for top-level messages).
    pub replies: Vec<Message>,
}

impl Message {
    /// All the text of its blocks (and its fallback text), for searching.
    pub fn all_text(&self) -> String {
        let mut out = vec![self.text.clone()];
        collect_text(&self.blocks, &mut out);
        out.join("\n")
    }

    /// The `event_payload` of its metadata.
    pub fn payload(&self) -> Option<&Value> {
        self.metadata.as_ref().map(|m| &m["event_payload"])
    }
}

fn collect_text(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(t)) = o.get("text") {
                out.push(t.clone());
            }
            for (k, v) in o {
                if k != "text" || !v.is_string() {
                    collect_text(v, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_text(v, out)),
        _ => {}
    }
}

struct StoredMessage {
    message: Message,
    edited_ts: Option<String>,
}

struct Channel {
    info: FakeChannel,
    /// Every message and reply, in ts order.
    messages: Vec<StoredMessage>,
}

struct Injection {
    fault: Fault,
    remaining: usize,
    method: Option<String>,
}

struct Workspace {
    options: FakeSlackOptions,
    channels: Vec<Channel>,
    log: Vec<Request>,
    faults: Vec<Injection>,
    last_ts: (u64, u32),
    revoked: bool,
}

type Shared = Arc<Mutex<Workspace>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Workspace> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// The local Slack; stops when dropped.
pub struct FakeSlack {
    addr: SocketAddr,
    shared: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for FakeSlack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeSlack")
            .field("addr", &self.addr)
            .finish()
    }
}

impl FakeSlack {
    /// Starts it, or panics saying why: the entry point for tests.
    pub fn start(options: FakeSlackOptions) -> FakeSlack {
        FakeSlack::try_start(options).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_start(options: FakeSlackOptions) -> Result<FakeSlack, Error> {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let channels = options
            .channels
            .iter()
            .map(|c| Channel {
                info: c.clone(),
                messages: Vec::new(),
            })
            .collect();
        let shared: Shared = Arc::new(Mutex::new(Workspace {
            options,
            channels,
            log: Vec::new(),
            faults: Vec::new(),
            last_ts: (0, 0),
            revoked: false,
        }));
        let app = Router::new()
            .route("/api/{method}", any(api))
            .route("/services/{team}/{bot}/{secret}", post(webhook))
            .with_state(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready) = std::sync::mpsc::channel::<std::io::Result<()>>();
        let thread = std::thread::Builder::new()
            .name("fake-slack".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    tokio::select! {
                        _ = axum::serve(listener, app) => {}
                        _ = stopped => {}
                    }
                });
                rt.shutdown_timeout(Duration::from_secs(1));
            })?;
        match ready.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(std::io::Error::other("the server thread ended at start").into()),
        }
        Ok(FakeSlack {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The Web API base (`http://127.0.0.1:PORT/api`), for `api_url`.
    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// The incoming webhook of the first channel.
    pub fn webhook_url(&self) -> String {
        let first = lock(&self.shared)
            .channels
            .first()
            .map(|c| c.info.id.clone());
        self.webhook_url_for(first.as_deref().unwrap_or(CHANNEL_ID))
    }

    /// The incoming webhook of a channel (by id); one of an unknown channel
    /// answers `404 no_service`.
    pub fn webhook_url_for(&self, channel_id: &str) -> String {
        format!(
            "http://{}/services/{TEAM_ID}/B0HOOK0001/{}",
            self.addr,
            hook_secret(channel_id)
        )
    }

    pub fn token(&self) -> String {
        lock(&self.shared).options.token.clone()
    }

    /// The next `times` calls of any method answer with `fault`.
    pub fn fault(&self, fault: Fault, times: usize) {
        self.inject(None, fault, times);
    }

    /// The next `times` calls of `method` (`chat.postMessage`, [`WEBHOOK`])
    /// answer with `fault`; other methods are not affected.
    pub fn fault_on(&self, method: &str, fault: Fault, times: usize) {
        self.inject(Some(method.to_string()), fault, times);
    }

    fn inject(&self, method: Option<String>, fault: Fault, times: usize) {
        if times > 0 {
            lock(&self.shared).faults.push(Injection {
                fault,
                remaining: times,
                method,
            });
        }
    }

    pub fn clear_faults(&self) {
        lock(&self.shared).faults.clear();
    }

    /// From now on the token answers `token_revoked`.
    pub fn revoke_token(&self) {
        lock(&self.shared).revoked = true;
    }

    /// The top-level messages of a channel (id or name), oldest first, with
    /// their thread replies. Thread broadcasts are among the replies
    /// (`broadcast: true`).
    pub fn messages(&self, channel: &str) -> Vec<Message> {
        let ws = lock(&self.shared);
        let Some(c) = ws.channel(channel) else {
            return Vec::new();
        };
        c.messages
            .iter()
            .filter(|m| m.message.thread_ts.is_none())
            .map(|m| c.with_replies(&m.message))
            .collect()
    }

    /// One message (or reply) by ts, with its replies.
    pub fn message(&self, channel: &str, ts: &str) -> Option<Message> {
        let ws = lock(&self.shared);
        let c = ws.channel(channel)?;
        c.find(ts).map(|m| c.with_replies(&m.message))
    }

    /// Every call so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared).log.clone()
    }

    /// The calls of one method.
    pub fn calls(&self, method: &str) -> Vec<Request> {
        lock(&self.shared)
            .log
            .iter()
            .filter(|r| r.method == method)
            .cloned()
            .collect()
    }

    /// Deletes a message as a person would (its replies stay, orphaned);
    /// false if there was none.
    pub fn delete_message(&self, channel: &str, ts: &str) -> bool {
        let mut ws = lock(&self.shared);
        let Some(c) = ws.channel_mut(channel) else {
            return false;
        };
        let before = c.messages.len();
        c.messages.retain(|m| m.message.ts != ts);
        c.messages.len() != before
    }

    /// Posts a message as a person (not the app: `chat.update` of it
    /// answers `cant_update_message`); returns its ts.
    pub fn seed_message(
        &self,
        channel: &str,
        text: &str,
        metadata: Option<Value>,
    ) -> Option<String> {
        let mut ws = lock(&self.shared);
        let ts = ws.next_ts();
        let c = ws.channel_mut(channel)?;
        let id = c.info.id.clone();
        c.messages.push(StoredMessage {
            message: Message {
                channel: id,
                ts: ts.clone(),
                text: text.to_string(),
                blocks: Value::Null,
                metadata,
                thread_ts: None,
                broadcast: false,
                by_app: false,
                via_webhook: false,
                edits: Vec::new(),
                replies: Vec::new(),
            },
            edited_ts: None,
        });
        Some(ts)
    }

    /// Polls `done` until it holds or `timeout` passes (blocking); whether
    /// it held.
    pub fn wait_until(&self, timeout: Duration, done: impl Fn(&FakeSlack) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(self) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// [`FakeSlack::wait_until`] for async tests (does not block the
    /// runtime).
    pub async fn wait_until_async(
        &self,
        timeout: Duration,
        done: impl Fn(&FakeSlack) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(self) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for FakeSlack {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn hook_secret(channel_id: &str) -> String {
    format!("hook{}", channel_id.to_ascii_lowercase())
}

impl Channel {
    fn find(&self, ts: &str) -> Option<&StoredMessage> {
        self.messages.iter().find(|m| m.message.ts == ts)
    }

    fn replies_of(&self, ts: &str) -> impl Iterator<Item = &StoredMessage> {
        self.messages
            .iter()
            .filter(move |m| m.message.thread_ts.as_deref() == Some(ts))
    }

    fn with_replies(&self, m: &Message) -> Message {
        let mut out = m.clone();
        out.replies = self.replies_of(&m.ts).map(|r| r.message.clone()).collect();
        out
    }

    /// A message as the API returns it.
    fn json(&self, stored: &StoredMessage, with_metadata: bool) -> Value {
        let m = &stored.message;
        let mut o = Map::new();
        o.insert("type".into(), json!("message"));
        o.insert("ts".into(), json!(m.ts));
        o.insert("text".into(), json!(m.text));
        o.insert("team".into(), json!(TEAM_ID));
        if !m.blocks.is_null() {
            o.insert("blocks".into(), m.blocks.clone());
        }
        if m.by_app {
            o.insert("user".into(), json!(BOT_USER_ID));
            o.insert("bot_id".into(), json!(BOT_ID));
            o.insert("app_id".into(), json!(APP_ID));
        } else {
            o.insert("user".into(), json!(PERSON_USER_ID));
        }
        if m.via_webhook {
            o.insert("subtype".into(), json!("bot_message"));
        }
        match &m.thread_ts {
            Some(parent) => {
                o.insert("thread_ts".into(), json!(parent));
                o.insert("parent_user_id".into(), json!(BOT_USER_ID));
                if m.broadcast {
                    o.insert("subtype".into(), json!("thread_broadcast"));
                }
            }
            None => {
                let replies: Vec<&StoredMessage> = self.replies_of(&m.ts).collect();
                if let Some(last) = replies.last() {
                    o.insert("thread_ts".into(), json!(m.ts));
                    o.insert("reply_count".into(), json!(replies.len()));
                    o.insert("latest_reply".into(), json!(last.message.ts));
                }
            }
        }
        if let Some(edited) = &stored.edited_ts {
            o.insert("edited".into(), json!({"user": BOT_USER_ID, "ts": edited}));
        }
        if with_metadata && let Some(meta) = &m.metadata {
            o.insert("metadata".into(), meta.clone());
        }
        Value::Object(o)
    }
}

impl Workspace {
    fn channel(&self, id_or_name: &str) -> Option<&Channel> {
        let name = id_or_name.trim_start_matches('#');
        self.channels
            .iter()
            .find(|c| c.info.id == id_or_name || c.info.name == name)
    }

    fn channel_mut(&mut self, id_or_name: &str) -> Option<&mut Channel> {
        let name = id_or_name.trim_start_matches('#').to_string();
        self.channels
            .iter_mut()
            .find(|c| c.info.id == id_or_name || c.info.name == name)
    }

    fn by_id(&self, id: &str) -> Option<usize> {
        self.channels.iter().position(|c| c.info.id == id)
    }

    fn by_id_or_name(&self, s: &str) -> Option<usize> {
        let name = s.trim_start_matches('#');
        self.channels
            .iter()
            .position(|c| c.info.id == s || c.info.name == name)
    }

    /// A new ts: wall-clock seconds and a counter, unique and increasing.
    fn next_ts(&mut self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (secs, n) = self.last_ts;
        self.last_ts = if now > secs {
            (now, 1)
        } else if n >= 999_999 {
            (secs + 1, 1)
        } else {
            (secs, n + 1)
        };
        format!("{}.{:06}", self.last_ts.0, self.last_ts.1)
    }

    fn take_fault(&mut self, method: &str) -> Option<Fault> {
        let i = self
            .faults
            .iter()
            .position(|f| f.method.as_deref().is_none_or(|m| m == method))?;
        let fault = self.faults[i].fault.clone();
        self.faults[i].remaining -= 1;
        if self.faults[i].remaining == 0 {
            self.faults.remove(i);
        }
        Some(fault)
    }

    fn has_scope(&self, scope: &str) -> bool {
        self.options.scopes.iter().any(|s| s == scope)
    }

    fn need_scope(&self, scope: &str) -> Result<(), Refusal> {
        if self.has_scope(scope) {
            return Ok(());
        }
        let mut extra = Map::new();
        extra.insert("needed".into(), json!(scope));
        extra.insert("provided".into(), json!(self.options.scopes.join(",")));
        Err(Refusal {
            code: "missing_scope".into(),
            extra,
        })
    }
}

/// A refusal: Slack's code and the fields that go with it.
struct Refusal {
    code: String,
    extra: Map<String, Value>,
}

fn refuse(code: &str) -> Refusal {
    Refusal {
        code: code.to_string(),
        extra: Map::new(),
    }
}

type Answer = Result<Map<String, Value>, Refusal>;

/// What a post or update carries, checked.
struct Content {
    text: Option<String>,
    blocks: Option<Value>,
    metadata: Option<Value>,
}

/// The arguments of a call, wherever Slack reads them from.
struct Args {
    map: Map<String, Value>,
    token: Option<String>,
    warning: Option<&'static str>,
}

impl Args {
    fn str(&self, key: &str) -> Option<String> {
        match self.map.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    fn bool(&self, key: &str) -> bool {
        match self.map.get(key) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => matches!(s.as_str(), "true" | "1"),
            Some(Value::Number(n)) => n.as_u64() == Some(1),
            _ => false,
        }
    }

    /// A JSON argument: an object or array in a JSON body, a JSON string
    /// in a form. `Err` when present but unreadable.
    fn json(&self, key: &str) -> Result<Option<Value>, ()> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => serde_json::from_str(s).map(Some).map_err(|_| ()),
            Some(v) => Ok(Some(v.clone())),
        }
    }

    fn usize(&self, key: &str) -> Option<usize> {
        self.str(key).and_then(|s| s.parse().ok())
    }
}

fn is_write(method: &str) -> bool {
    method.starts_with("chat.")
}

async fn read_args(
    method: &str,
    http: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Args, Refusal> {
    let mut map = Map::new();
    let mut warning = None;
    if let Some(q) = uri.query() {
        for (k, v) in form_pairs(q.as_bytes()).await {
            map.insert(k, Value::String(v));
        }
    }
    let mut token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    if http == Method::POST {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if content_type.starts_with("application/json") {
            // Only write methods read JSON bodies.
            if is_write(method) {
                if !content_type.contains("charset") {
                    warning = Some("missing_charset");
                }
                match serde_json::from_slice::<Value>(&body) {
                    Ok(Value::Object(o)) => map.extend(o),
                    _ => return Err(refuse("invalid_json")),
                }
            }
        } else if content_type.starts_with("application/x-www-form-urlencoded") {
            for (k, v) in form_pairs(&body).await {
                if k == "token" {
                    token = token.or(Some(v));
                } else {
                    map.insert(k, Value::String(v));
                }
            }
        }
    }
    Ok(Args {
        map,
        token,
        warning,
    })
}

/// `a=1&b=x%20y` decoded (axum's form reader, so `+` and `%xx` as
/// clients send them).
async fn form_pairs(bytes: &[u8]) -> Vec<(String, String)> {
    let Ok(request) = axum::http::Request::builder()
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .method(Method::POST)
        .body(Body::from(bytes.to_vec()))
    else {
        return Vec::new();
    };
    axum::Form::<Vec<(String, String)>>::from_request(request, &())
        .await
        .map(|f| f.0)
        .unwrap_or_default()
}

async fn api(
    State(shared): State<Shared>,
    Path(method): Path<String>,
    http: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let fault = lock(&shared).take_fault(&method);
    if let Some(r) = injected(&shared, at, &method, fault.as_ref(), true) {
        return r;
    }
    let delayed = match fault {
        Some(Fault::Delay(d)) => Some(d),
        _ => None,
    };
    let args = read_args(&method, &http, &uri, &headers, body).await;
    let (channel, answer, warning) = match args {
        Ok(args) => {
            let channel = args.str("channel");
            let answer = lock(&shared).call(&method, &args);
            (channel, answer, args.warning)
        }
        Err(refusal) => (None, Err(refusal), None),
    };
    let outcome = match &answer {
        Ok(_) => Outcome::Ok,
        Err(r) => Outcome::Error(r.code.clone()),
    };
    lock(&shared).log.push(Request {
        at,
        method,
        channel,
        outcome,
        delayed,
    });
    let mut body = match answer {
        Ok(mut o) => {
            o.insert("ok".into(), json!(true));
            o
        }
        Err(r) => {
            let mut o = r.extra;
            o.insert("ok".into(), json!(false));
            o.insert("error".into(), json!(r.code));
            o
        }
    };
    if let Some(w) = warning {
        body.insert("warning".into(), json!(w));
        body.insert("response_metadata".into(), json!({"warnings": [w]}));
    }
    if let Some(d) = delayed {
        tokio::time::sleep(d).await;
    }
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        Value::Object(body).to_string(),
    )
        .into_response()
}

/// The answer of an injected 429 or 500 (logged), if that is the fault.
fn injected(
    shared: &Shared,
    at: Instant,
    method: &str,
    fault: Option<&Fault>,
    api: bool,
) -> Option<Response> {
    let (status, response) = match fault? {
        Fault::RateLimited { retry_after } => {
            let body = if api {
                json!({"ok": false, "error": "ratelimited"}).to_string()
            } else {
                "rate_limited".to_string()
            };
            let content_type = if api {
                "application/json; charset=utf-8"
            } else {
                "text/plain"
            };
            (
                429,
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [
                        (header::RETRY_AFTER, retry_after.to_string()),
                        (header::CONTENT_TYPE, content_type.to_string()),
                    ],
                    body,
                )
                    .into_response(),
            )
        }
        Fault::ServerError => (
            500,
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/html")],
                "<html><body><h1>500 Internal Server Error</h1></body></html>",
            )
                .into_response(),
        ),
        Fault::Delay(_) => return None,
    };
    lock(shared).log.push(Request {
        at,
        method: method.to_string(),
        channel: None,
        outcome: Outcome::Http(status),
        delayed: None,
    });
    Some(response)
}

impl Workspace {
    fn call(&mut self, method: &str, args: &Args) -> Answer {
        match args.token.as_deref() {
            None | Some("") => return Err(refuse("not_authed")),
            Some(t) if t != self.options.token => return Err(refuse("invalid_auth")),
            Some(_) if self.revoked => return Err(refuse("token_revoked")),
            Some(_) => {}
        }
        match method {
            "api.test" => Ok(Map::new()),
            "auth.test" => {
                let mut o = Map::new();
                o.insert("url".into(), json!("https://epicenter-test.slack.com/"));
                o.insert("team".into(), json!("epicenter test"));
                o.insert("user".into(), json!("epicenter"));
                o.insert("team_id".into(), json!(TEAM_ID));
                o.insert("user_id".into(), json!(BOT_USER_ID));
                o.insert("bot_id".into(), json!(BOT_ID));
                Ok(o)
            }
            "chat.postMessage" => self.post_message(args),
            "chat.update" => self.update(args),
            "chat.delete" => self.delete(args),
            "conversations.history" => self.history(args),
            "conversations.replies" => self.replies(args),
            "conversations.list" => self.list(args),
            _ => Err(refuse("unknown_method")),
        }
    }

    /// The text, blocks and metadata of a post or update, checked.
    fn content(args: &Args, update: bool) -> Result<Content, Refusal> {
        let text = args.str("text");
        let blocks = args
            .json("blocks")
            .map_err(|()| refuse("invalid_blocks_format"))?;
        if let Some(b) = &blocks {
            if !b.is_array() {
                return Err(refuse("invalid_blocks_format"));
            }
            let errors = blockkit::validate(b);
            if !errors.is_empty() {
                let mut extra = Map::new();
                extra.insert("errors".into(), json!(errors));
                extra.insert(
                    "response_metadata".into(),
                    json!({"messages": errors.iter().map(|e| format!("[ERROR] {e}")).collect::<Vec<_>>()}),
                );
                return Err(Refusal {
                    code: "invalid_blocks".into(),
                    extra,
                });
            }
        }
        let has_blocks = blocks
            .as_ref()
            .and_then(Value::as_array)
            .is_some_and(|b| !b.is_empty());
        let has_text = text.as_deref().is_some_and(|t| !t.trim().is_empty());
        if !(has_text || has_blocks || update && args.map.contains_key("metadata")) {
            return Err(refuse("no_text"));
        }
        if text
            .as_deref()
            .is_some_and(|t| t.chars().count() > MAX_TEXT)
        {
            return Err(refuse("msg_too_long"));
        }
        let metadata = args
            .json("metadata")
            .map_err(|()| refuse("invalid_metadata_format"))?;
        if let Some(m) = &metadata {
            let event_type = m["event_type"].as_str().unwrap_or_default();
            let good_type = !event_type.is_empty()
                && event_type
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-');
            if !good_type || !m["event_payload"].is_object() {
                return Err(refuse("invalid_metadata_format"));
            }
        }
        Ok(Content {
            text,
            blocks,
            metadata,
        })
    }

    fn post_message(&mut self, args: &Args) -> Answer {
        self.need_scope("chat:write")?;
        let channel = args.str("channel").unwrap_or_default();
        let i = self
            .by_id_or_name(&channel)
            .ok_or_else(|| refuse("channel_not_found"))?;
        let info = self.channels[i].info.clone();
        if info.archived {
            return Err(refuse("is_archived"));
        }
        let public_ok = !info.private && self.has_scope("chat:write.public");
        if !info.member && !public_ok {
            return Err(refuse("not_in_channel"));
        }
        let Content {
            text,
            blocks,
            metadata,
        } = Workspace::content(args, false)?;
        let thread_ts = match args.str("thread_ts").filter(|t| !t.is_empty()) {
            None => None,
            Some(t) => {
                let parent = self.channels[i]
                    .find(&t)
                    .ok_or_else(|| refuse("thread_not_found"))?;
                // A reply to a reply joins the parent's thread.
                Some(parent.message.thread_ts.clone().unwrap_or(t))
            }
        };
        let broadcast = thread_ts.is_some() && args.bool("reply_broadcast");
        let ts = self.next_ts();
        let stored = StoredMessage {
            message: Message {
                channel: info.id.clone(),
                ts: ts.clone(),
                text: text.unwrap_or_default(),
                blocks: blocks.unwrap_or(Value::Null),
                metadata,
                thread_ts,
                broadcast,
                by_app: true,
                via_webhook: false,
                edits: Vec::new(),
                replies: Vec::new(),
            },
            edited_ts: None,
        };
        let c = &mut self.channels[i];
        let message = c.json(&stored, true);
        c.messages.push(stored);
        let mut o = Map::new();
        o.insert("channel".into(), json!(info.id));
        o.insert("ts".into(), json!(ts));
        o.insert("message".into(), message);
        Ok(o)
    }

    fn update(&mut self, args: &Args) -> Answer {
        self.need_scope("chat:write")?;
        let channel = args.str("channel").unwrap_or_default();
        let i = self
            .by_id(&channel)
            .ok_or_else(|| refuse("channel_not_found"))?;
        let ts = args.str("ts").unwrap_or_default();
        let Content {
            text,
            blocks,
            metadata,
        } = Workspace::content(args, true)?;
        let edited = self.next_ts();
        let c = &mut self.channels[i];
        let pos = c
            .messages
            .iter()
            .position(|m| m.message.ts == ts)
            .ok_or_else(|| refuse("message_not_found"))?;
        if !c.messages[pos].message.by_app {
            return Err(refuse("cant_update_message"));
        }
        let stored = &mut c.messages[pos];
        let m = &mut stored.message;
        m.edits.push(Revision {
            at: Instant::now(),
            text: m.text.clone(),
            blocks: m.blocks.clone(),
            metadata: m.metadata.clone(),
        });
        if let Some(t) = text {
            m.text = t;
        }
        if let Some(b) = blocks {
            m.blocks = b;
        }
        if metadata.is_some() {
            m.metadata = metadata;
        }
        stored.edited_ts = Some(edited);
        let text = stored.message.text.clone();
        let message = c.json(&c.messages[pos], true);
        let mut o = Map::new();
        o.insert("channel".into(), json!(channel));
        o.insert("ts".into(), json!(ts));
        o.insert("text".into(), json!(text));
        o.insert("message".into(), message);
        Ok(o)
    }

    fn delete(&mut self, args: &Args) -> Answer {
        self.need_scope("chat:write")?;
        let channel = args.str("channel").unwrap_or_default();
        let i = self
            .by_id(&channel)
            .ok_or_else(|| refuse("channel_not_found"))?;
        let ts = args.str("ts").unwrap_or_default();
        let c = &mut self.channels[i];
        let pos = c
            .messages
            .iter()
            .position(|m| m.message.ts == ts)
            .ok_or_else(|| refuse("message_not_found"))?;
        if !c.messages[pos].message.by_app {
            return Err(refuse("cant_delete_message"));
        }
        c.messages.remove(pos);
        let mut o = Map::new();
        o.insert("channel".into(), json!(channel));
        o.insert("ts".into(), json!(ts));
        Ok(o)
    }

    /// The channel of a read: by id, readable with the token's scopes.
    fn readable(&self, args: &Args) -> Result<usize, Refusal> {
        let channel = args.str("channel").unwrap_or_default();
        let i = self
            .by_id(&channel)
            .ok_or_else(|| refuse("channel_not_found"))?;
        let info = &self.channels[i].info;
        self.need_scope(if info.private {
            "groups:history"
        } else {
            "channels:history"
        })?;
        if !info.member {
            return Err(refuse("not_in_channel"));
        }
        Ok(i)
    }

    fn page_size(&self, args: &Args, default: usize, max: usize) -> usize {
        args.usize("limit")
            .filter(|&l| l > 0)
            .unwrap_or(default)
            .min(max)
            .min(self.options.history_page_cap)
            .max(1)
    }

    fn history(&self, args: &Args) -> Answer {
        let i = self.readable(args)?;
        let c = &self.channels[i];
        let with_metadata = args.bool("include_all_metadata");
        let oldest = args.str("oldest").map(|t| ts_key(&t));
        let latest = args.str("latest").map(|t| ts_key(&t));
        let visible: Vec<&StoredMessage> = c
            .messages
            .iter()
            .rev()
            .filter(|m| m.message.thread_ts.is_none() || m.message.broadcast)
            .filter(|m| {
                let k = ts_key(&m.message.ts);
                oldest.is_none_or(|o| k >= o) && latest.is_none_or(|l| k <= l)
            })
            .collect();
        let limit = self.page_size(args, 100, 999);
        let (page, next) = paginate(&visible, args, limit)?;
        let messages: Vec<Value> = page.iter().map(|m| c.json(m, with_metadata)).collect();
        let mut o = Map::new();
        o.insert("messages".into(), json!(messages));
        o.insert("has_more".into(), json!(!next.is_empty()));
        o.insert("pin_count".into(), json!(0));
        o.insert("response_metadata".into(), json!({"next_cursor": next}));
        Ok(o)
    }

    fn replies(&self, args: &Args) -> Answer {
        let i = self.readable(args)?;
        let c = &self.channels[i];
        let ts = args.str("ts").unwrap_or_default();
        let found = c.find(&ts).ok_or_else(|| refuse("thread_not_found"))?;
        let parent_ts = found.message.thread_ts.clone().unwrap_or(ts);
        let parent = c
            .find(&parent_ts)
            .ok_or_else(|| refuse("thread_not_found"))?;
        let thread: Vec<&StoredMessage> = std::iter::once(parent)
            .chain(c.replies_of(&parent_ts))
            .collect();
        let with_metadata = args.bool("include_all_metadata");
        let limit = self.page_size(args, 1000, 1000);
        let (page, next) = paginate(&thread, args, limit)?;
        let messages: Vec<Value> = page.iter().map(|m| c.json(m, with_metadata)).collect();
        let mut o = Map::new();
        o.insert("messages".into(), json!(messages));
        o.insert("has_more".into(), json!(!next.is_empty()));
        o.insert("response_metadata".into(), json!({"next_cursor": next}));
        Ok(o)
    }

    fn list(&self, args: &Args) -> Answer {
        let types = args.str("types").unwrap_or_else(|| "public_channel".into());
        let public = types.split(',').any(|t| t.trim() == "public_channel");
        let private = types.split(',').any(|t| t.trim() == "private_channel");
        if public {
            self.need_scope("channels:read")?;
        }
        if private {
            self.need_scope("groups:read")?;
        }
        let exclude_archived = args.bool("exclude_archived");
        let listed: Vec<&Channel> = self
            .channels
            .iter()
            .filter(|c| {
                if c.info.private {
                    private && c.info.member
                } else {
                    public
                }
            })
            .filter(|c| !(exclude_archived && c.info.archived))
            .collect();
        let limit = args
            .usize("limit")
            .filter(|&l| l > 0)
            .unwrap_or(100)
            .min(1000);
        let (page, next) = paginate(&listed, args, limit)?;
        let channels: Vec<Value> = page
            .iter()
            .map(|c| {
                json!({
                    "id": c.info.id, "name": c.info.name, "is_channel": !c.info.private,
                    "is_group": c.info.private, "is_private": c.info.private,
                    "is_archived": c.info.archived, "is_member": c.info.member,
                })
            })
            .collect();
        let mut o = Map::new();
        o.insert("channels".into(), json!(channels));
        o.insert("response_metadata".into(), json!({"next_cursor": next}));
        Ok(o)
    }
}

/// A page of `items` from the `cursor` argument; the next cursor, empty at
/// the end.
fn paginate<'a, T>(
    items: &'a [T],
    args: &Args,
    limit: usize,
) -> Result<(&'a [T], String), Refusal> {
    let start = match args.str("cursor").filter(|c| !c.is_empty()) {
        None => 0,
        Some(c) => c
            .strip_prefix("ZXBpY2VudGVy")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n <= items.len())
            .ok_or_else(|| refuse("invalid_cursor"))?,
    };
    let end = (start + limit).min(items.len());
    let next = if end < items.len() {
        format!("ZXBpY2VudGVy{end}")
    } else {
        String::new()
    };
    Ok((&items[start..end], next))
}

/// A ts as a sortable key (`1700000000.000042`).
fn ts_key(ts: &str) -> (u64, u64) {
    let (s, f) = ts.split_once('.').unwrap_or((ts, "0"));
    (s.parse().unwrap_or(0), f.parse().unwrap_or(0))
}

async fn webhook(
    State(shared): State<Shared>,
    Path((_team, _bot, secret)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let fault = lock(&shared).take_fault(WEBHOOK);
    if let Some(r) = injected(&shared, at, WEBHOOK, fault.as_ref(), false) {
        return r;
    }
    let delayed = match fault {
        Some(Fault::Delay(d)) => Some(d),
        _ => None,
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let payload: Option<Value> = if content_type.starts_with("application/x-www-form-urlencoded") {
        form_pairs(&body)
            .await
            .into_iter()
            .find(|(k, _)| k == "payload")
            .and_then(|(_, v)| serde_json::from_str(&v).ok())
    } else {
        serde_json::from_slice(&body).ok()
    };
    let answer = lock(&shared).incoming(&secret, payload);
    let (status, text, channel) = match answer {
        Ok(channel) => (StatusCode::OK, "ok".to_string(), Some(channel)),
        Err((status, code)) => (status, code, None),
    };
    lock(&shared).log.push(Request {
        at,
        method: WEBHOOK.to_string(),
        channel,
        outcome: if status == StatusCode::OK {
            Outcome::Ok
        } else {
            Outcome::Error(text.clone())
        },
        delayed,
    });
    if let Some(d) = delayed {
        tokio::time::sleep(d).await;
    }
    (status, [(header::CONTENT_TYPE, "text/plain")], text).into_response()
}

impl Workspace {
    /// Posts an incoming webhook's payload: the channel id, or the status
    /// and plain-text code Slack answers.
    fn incoming(
        &mut self,
        secret: &str,
        payload: Option<Value>,
    ) -> Result<String, (StatusCode, String)> {
        let i = self
            .channels
            .iter()
            .position(|c| hook_secret(&c.info.id) == secret)
            .ok_or((StatusCode::NOT_FOUND, "no_service".to_string()))?;
        if self.channels[i].info.archived {
            return Err((StatusCode::GONE, "channel_is_archived".into()));
        }
        let Some(Value::Object(map)) = payload else {
            return Err((StatusCode::BAD_REQUEST, "invalid_payload".into()));
        };
        let args = Args {
            map,
            token: None,
            warning: None,
        };
        let Content { text, blocks, .. } = Workspace::content(&args, false).map_err(|r| {
            let code = match r.code.as_str() {
                "invalid_blocks_format" => "invalid_blocks".to_string(),
                "invalid_metadata_format" => "invalid_payload".to_string(),
                other => other.to_string(),
            };
            (StatusCode::BAD_REQUEST, code)
        })?;
        let ts = self.next_ts();
        let c = &mut self.channels[i];
        c.messages.push(StoredMessage {
            message: Message {
                channel: c.info.id.clone(),
                ts,
                text: text.unwrap_or_default(),
                blocks: blocks.unwrap_or(Value::Null),
                metadata: None,
                thread_ts: None,
                broadcast: false,
                by_app: true,
                via_webhook: true,
                edits: Vec::new(),
                replies: Vec::new(),
            },
            edited_ts: None,
        });
        Ok(c.info.id.clone())
    }
}
