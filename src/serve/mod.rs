//! `epicenter serve`: the live service. The same decoders, rules and engine
//! as `replay`, fed by live sources, with watermarks from the sources and
//! state checkpointed to the state directory.
//!
//! ```text
//!  Alertmanager ─POST─► receiver ─┐
//!  kube watches, pod logs ────────┼─► Intake (bounded) ─► engine thread ─► outbox ─► stdout, Kafka
//!  Kafka consumer ────────────────┘        ▲                   │ checkpoint (state dir)
//!                                          └── positions ◄─────┘ then offsets committed
//! ```
//!
//! Shutdown (SIGTERM, SIGINT): the HTTP server stops taking requests and the
//! sources stop; the engine thread drains what was accepted, flushes the
//! outbox and writes a final checkpoint; exit 0.

mod api;
mod checkpoint;
mod http;
mod metrics;
mod outbox;
mod pipeline;
mod watermark;

pub(crate) use self::outbox::signal_sources;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use ingest::Limits;
use ingest::source::{Health, Intake, alertmanager, kafka, kubernetes};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config};

use self::checkpoint::StateDir;
use self::metrics::Metrics;
use self::pipeline::{Pipeline, wall_clock};
use self::watermark::Watermarks;

/// How long shutdown lets the outbox deliver what is queued; the rest is
/// delivered after the next start.
const OUTBOX_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Configuration file (YAML); without one, the defaults: the built-in
    /// rule pack, the Alertmanager receiver on 0.0.0.0:9095, stdout.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Rule directory (repeatable; added to the config's).
    #[arg(long = "rules", value_name = "DIR")]
    rules: Vec<PathBuf>,
}

pub(crate) fn run(args: &Args) -> Result<ExitCode> {
    let (config, rules) = match config::load_with_rules(args.config.as_deref(), &args.rules)? {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("epicenter-io")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config, rules))
}

async fn serve(config: Config, rules: Arc<correlate::rules::RuleSet>) -> Result<ExitCode> {
    let serve = &config.serve;
    let mut engine_config = config.engine.clone();
    engine_config.external_watermark = true;
    let lateness = engine_config.lateness;

    let state = StateDir::open(&serve.state_dir)?;
    let restored = state.load(rules.clone(), engine_config, Limits::default())?;
    tracing::info!(
        state_dir = %serve.state_dir.display(),
        positions = restored.positions.len(),
        incidents = restored.engine.store().len(),
        "state loaded"
    );

    let cancel = CancellationToken::new();
    let health = Health::default();
    let metrics = Arc::new(Metrics::new(health.clone()));
    let (intake, rx) = Intake::bounded(serve.queue);
    let (committed, committed_rx) = watch::channel(Vec::new());

    let outbox = outbox::open(
        serve,
        &serve.state_dir,
        outbox::signal_sources(&rules),
        outbox::wall_clock(),
    )?;
    metrics.watch_outbox(outbox.clone());
    let outbox_tasks = outbox.start();
    let resume = pipeline::positions_list(&restored.positions);

    let started = Arc::new(AtomicBool::new(false));
    let mut app = http::router(http::Ops {
        health: health.clone(),
        metrics: metrics.clone(),
        started: started.clone(),
    });
    app = app.merge(api::router(api::Api::new(
        serve.history.as_ref().map(|h| h.dir.clone()),
        serve.api.clone(),
        outbox.clone(),
    )));
    let mut receiver_health = None;
    if let Some(settings) = &serve.alertmanager {
        let h = health.register(alertmanager::SOURCE);
        app = app.merge(alertmanager::router(settings, intake.clone(), h.clone()));
        receiver_health = Some(h);
    }
    let app = app.fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "not found\n") });

    let listener = tokio::net::TcpListener::bind(serve.listen)
        .await
        .with_context(|| format!("cannot listen on {}", serve.listen))?;
    let local = listener.local_addr()?;
    if let Some(h) = receiver_health {
        h.set_connected(true);
    }
    tracing::info!(listen = %local, "http server listening");
    let http_cancel = cancel.clone();
    let http = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(http_cancel.cancelled_owned())
            .await
    });

    let mut sources = Vec::new();
    if let Some(settings) = &serve.kubernetes {
        sources.push(spawn_source(
            kubernetes::SOURCE,
            kubernetes::run(
                settings.clone(),
                intake.clone(),
                health.clone(),
                cancel.child_token(),
            ),
        ));
    }
    if let Some(settings) = &serve.kafka {
        sources.push(spawn_source(
            kafka::SOURCE,
            kafka::run(
                settings.clone(),
                intake.clone(),
                health.clone(),
                cancel.child_token(),
                resume,
                committed_rx,
            ),
        ));
    }

    // Sources hold the intake; the pipeline's drain ends when all let go.
    drop(intake);

    let pipeline = Pipeline::new(
        restored,
        Watermarks::new(lateness, serve.idle_timeout),
        metrics.clone(),
        outbox.clone(),
        state,
        committed,
        wall_clock(),
        pipeline::Settings {
            checkpoint_interval: serve.checkpoint_interval,
        },
    );
    let handle = tokio::runtime::Handle::current();
    let pipeline_cancel = cancel.clone();
    let engine_thread = std::thread::Builder::new()
        .name("epicenter-engine".to_string())
        .spawn(move || handle.block_on(pipeline.run(rx, pipeline_cancel)))
        .context("cannot start the engine thread")?;
    started.store(true, Ordering::Relaxed);

    shutdown_signal().await;
    tracing::info!("shutting down: intake stopped, draining");
    cancel.cancel();
    match http.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "http server failed"),
        Err(e) => tracing::error!(error = %e, "http server task failed"),
    }
    let result = tokio::task::spawn_blocking(move || engine_thread.join())
        .await
        .context("engine thread")?;
    for s in sources {
        let _ = s.await;
    }
    if let Err(e) = outbox.shutdown(OUTBOX_GRACE, outbox_tasks).await {
        tracing::error!(error = %e, "outbox shutdown");
    }
    match result {
        Ok(Ok(())) => Ok(ExitCode::SUCCESS),
        Ok(Err(e)) => {
            eprintln!("epicenter: {e:#}");
            Ok(ExitCode::FAILURE)
        }
        Err(_) => {
            eprintln!("epicenter: the engine thread panicked");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Runs a source; an error that ends it is logged (its health says it is
/// not connected, so /readyz tells).
fn spawn_source<E: std::fmt::Display>(
    name: &'static str,
    source: impl Future<Output = Result<(), E>> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        match source.await {
            Ok(()) => tracing::info!(source = name, "source stopped"),
            Err(e) => tracing::error!(source = name, error = %e, "source failed"),
        }
    })
}

/// SIGTERM (Kubernetes) or SIGINT (a terminal).
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot watch SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = term => {}
        r = tokio::signal::ctrl_c() => {
            if let Err(e) = r {
                tracing::error!(error = %e, "cannot watch SIGINT");
                std::future::pending::<()>().await;
            }
        }
    }
}
