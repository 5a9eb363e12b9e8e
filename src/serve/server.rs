//! The HTTP server: the router's routes behind the limits a service on a
//! shared network needs.
//!
//! `axum::serve` takes every connection and waits on it forever, so a
//! client that sends half a header or half a body holds its connection,
//! and a slow one keeps shutdown from finishing. This accept loop (hyper's
//! connection builder, as axum's own example of a hand-rolled server) adds
//! the limits below. It speaks HTTP/1.1 only, which every client of it
//! (Alertmanager, Prometheus, kubelet's probes, curl) speaks: telling
//! HTTP/2 from HTTP/1 means waiting for a client's first bytes, with no
//! timeout to bound the wait.
//!
//! - **A connection limit**: at most `max_connections` at once; past it
//!   the loop stops accepting (the kernel's backlog holds the rest).
//! - **A header timeout**: a request's head must arrive within
//!   `header_timeout` of the connection waiting for it; an idle keep-alive
//!   connection is closed after as long.
//! - **A request timeout**: a request must be read and answered within its
//!   route's deadline (a slow body is a slow request); past it the answer
//!   is 408 and the connection closes.
//! - **Shutdown that ends**: on cancel, no new connection is taken, idle
//!   connections close, requests in flight get `shutdown_grace` to finish,
//!   then whatever is left is dropped.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// The deadline of a request, by its path.
pub(crate) type Deadline = Arc<dyn Fn(&str) -> Duration + Send + Sync>;

/// The server's limits.
#[derive(Clone)]
pub(crate) struct Limits {
    pub(crate) max_connections: usize,
    pub(crate) header_timeout: Duration,
    pub(crate) request_timeout: Deadline,
    pub(crate) shutdown_grace: Duration,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("max_connections", &self.max_connections)
            .field("header_timeout", &self.header_timeout)
            .field("shutdown_grace", &self.shutdown_grace)
            .finish_non_exhaustive()
    }
}

/// Serves `app` on `listener` until `cancel`, then shuts down within the
/// grace.
pub(crate) async fn run(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            () = cancel.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: pause, go on.
                    tracing::warn!(error = %e, "http: cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let deadline_of = limits.request_timeout.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let app = app.clone();
            let deadline = deadline_of(req.uri().path());
            async move {
                match tokio::time::timeout(deadline, app.oneshot(req)).await {
                    Ok(answer) => answer,
                    Err(_) => Ok::<_, Infallible>(too_slow(deadline)),
                }
            }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        connections.spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(peer = %peer, error = %e, "http: connection ended");
            }
            drop(slot);
        });
    }
    drop(listener);
    let open = connections.len();
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open,
            grace_ms = limits.shutdown_grace.as_millis() as u64,
            "http: connections still open after the shutdown grace: dropped"
        );
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    Ok(())
}

fn too_slow(deadline: Duration) -> Response<Body> {
    let mut r = Response::new(Body::from(format!(
        "the request was not read and answered within {}s\n",
        deadline.as_secs()
    )));
    *r.status_mut() = StatusCode::REQUEST_TIMEOUT;
    r.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    r
}
