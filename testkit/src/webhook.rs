//! A local webhook receiver for tests: records every request, answers what
//! it is told to.
//!
//! [`WebhookReceiver`] listens on 127.0.0.1 and takes any method on any
//! path. Each request is recorded as it arrives, before any answer, with its
//! headers, body and arrival time: a request the sender gave up on (a
//! delayed answer, a timeout) is still seen to have landed, as with a real
//! receiver. The next answers can be forced ([`WebhookReceiver::answer_next`]):
//! any status (with `Retry-After`), or a delay before the 200.
//!
//! Signatures: [`Signature::parse`] reads `t=<unix seconds>,v1=<hex>,...`
//! and [`Signature::signed_payload`] rebuilds the bytes the HMAC covers
//! (`<t>.<body>`), so a test checks the MAC with its own HMAC rather than
//! with the sender's code.
//!
//! Design choice: as the local ntfy, its own thread and tokio runtime, the
//! records behind a plain mutex: async and blocking tests use it alike.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("local webhook receiver: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One request as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub arrived: SystemTime,
    pub method: String,
    pub path: String,
    /// Names lower-case, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status it was (or is being) answered with.
    pub status: u16,
}

impl Request {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The `X-Epicenter-Signature` header, parsed.
    pub fn signature(&self) -> Option<Signature> {
        Signature::parse(self.header(SIGNATURE_HEADER)?)
    }
}

/// The header epicenter signs webhooks in.
pub const SIGNATURE_HEADER: &str = "x-epicenter-signature";

/// A signature header `t=<unix seconds>,v1=<hex>[,v1=<hex>...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub t: i64,
    pub v1: Vec<String>,
}

impl Signature {
    /// `None` unless there is exactly one `t` and at least one `v1`.
    pub fn parse(header: &str) -> Option<Signature> {
        let mut t = None;
        let mut v1 = Vec::new();
        for part in header.split(',') {
            let (k, v) = part.trim().split_once('=')?;
            match k {
                "t" if t.is_none() => t = Some(v.parse().ok()?),
                "t" => return None,
                "v1" => v1.push(v.to_string()),
                _ => {}
            }
        }
        (!v1.is_empty()).then_some(Signature { t: t?, v1 })
    }

    /// What the MAC covers: `<t>.<body>`.
    pub fn signed_payload(&self, body: &[u8]) -> Vec<u8> {
        let mut p = format!("{}.", self.t).into_bytes();
        p.extend_from_slice(body);
        p
    }
}

/// An answer forced on the next requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Status(u16),
    /// A status with `Retry-After: <seconds>`.
    StatusRetryAfter(u16, u64),
    /// 200, after this long.
    Delay(Duration),
}

#[derive(Debug, Default)]
struct Recorded {
    requests: Vec<Request>,
    answers: VecDeque<Answer>,
}

#[derive(Debug, Default)]
struct Shared {
    recorded: Mutex<Recorded>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Recorded> {
        self.recorded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A receiver on 127.0.0.1, stopped on drop.
#[derive(Debug)]
pub struct WebhookReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl WebhookReceiver {
    /// A receiver answering 200, or a panic saying why it cannot start.
    pub fn start() -> WebhookReceiver {
        WebhookReceiver::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_start() -> Result<WebhookReceiver> {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name(format!("local-webhook-{}", addr.port()))
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
        Ok(WebhookReceiver {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:<port>/hook`: a URL to send to.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Every request, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().requests.clone()
    }

    /// The next `k` requests get `answer` (after any already queued).
    pub fn answer_next(&self, k: usize, answer: Answer) {
        self.shared
            .lock()
            .answers
            .extend(std::iter::repeat_n(answer, k));
    }

    /// Waits (blocking, polling) until at least `n` requests arrived or
    /// `timeout` passed; returns the requests.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<Request> {
        let deadline = Instant::now() + timeout;
        loop {
            let requests = self.requests();
            if requests.len() >= n || Instant::now() >= deadline {
                return requests;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = shared.lock().answers.pop_front();
    let (status, retry_after, delay) = match answer {
        Some(Answer::Status(s)) => (s, None, None),
        Some(Answer::StatusRetryAfter(s, secs)) => (s, Some(secs), None),
        Some(Answer::Delay(d)) => (200, None, Some(d)),
        None => (200, None, None),
    };
    shared.lock().requests.push(Request {
        arrived: SystemTime::now(),
        method: method.to_string(),
        path: uri.path().to_string(),
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
        status,
    });
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (code, format!("{}\n", code.canonical_reason().unwrap_or(""))).into_response();
    if let Some(secs) = retry_after
        && let Ok(v) = secs.to_string().parse()
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn signatures_parse() {
        let s = Signature::parse("t=1700000000,v1=ab12,v1=cd34").unwrap();
        assert_eq!(s.t, 1_700_000_000);
        assert_eq!(s.v1, ["ab12", "cd34"]);
        assert_eq!(s.signed_payload(b"{}"), b"1700000000.{}");
        assert!(Signature::parse("v1=ab").is_none());
        assert!(Signature::parse("t=1,t=2,v1=ab").is_none());
        assert!(Signature::parse("t=x,v1=ab").is_none());
    }
}
