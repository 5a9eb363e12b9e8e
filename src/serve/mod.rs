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
//! outbox and writes a final checkpoint; exit 0. Whatever happens, the
//! process exits within `pipeline.shutdown_timeout`: what was acknowledged
//! and not yet checkpointed is in the journal.
//!
//! A fatal fault (any panic, the engine stopping on its own) makes
//! `/healthz` and `/readyz` fail at once, then shuts down the same way and
//! exits non-zero, so Kubernetes restarts the service.

mod api;
mod checkpoint;
mod faults;
mod http;
mod isolated;
mod metrics;
mod outbox;
mod pipeline;
mod server;
mod shards;
mod watermark;
mod web;

pub(crate) use self::outbox::signal_sources;
pub(crate) use self::pipeline::SourceClusters;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use ingest::Limits;
use ingest::source::{Health, Intake, Journal, alertmanager, journal, kafka, kubernetes};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config};
use crate::decoding::Decoding;

use self::checkpoint::StateDir;
use self::faults::Faults;
use self::metrics::Metrics;
use self::pipeline::{Pipeline, wall_clock};
use self::watermark::Watermarks;

/// How long shutdown lets the outbox deliver what is queued; the rest is
/// delivered after the next start.
const OUTBOX_GRACE: Duration = Duration::from_secs(10);
/// How long requests in flight may finish once shutdown starts.
const HTTP_GRACE: Duration = Duration::from_secs(5);
/// Room left in the shutdown budget for the final checkpoint and the exit.
const MARGIN: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Configuration file (YAML); without one, the defaults: the built-in
    /// rule pack, the Alertmanager receiver on 0.0.0.0:9095, stdout.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Rule directory (repeatable): added after the built-in pack and the
    /// config's `rules:`; a rule of the same id replaces the earlier one.
    #[arg(long = "rules", value_name = "DIR")]
    rules: Vec<PathBuf>,
    /// Leave the built-in rule pack out: only the named directories.
    #[arg(long)]
    no_builtin: bool,
}

pub(crate) fn run(args: &Args) -> Result<ExitCode> {
    let (config, loaded) =
        match config::load_with_rules(args.config.as_deref(), &args.rules, args.no_builtin)? {
            Ok(loaded) => loaded,
            Err(code) => return Ok(code),
        };
    for o in &loaded.composition.overrides {
        tracing::info!(id = %o.id, by = %o.by, replaced = %o.replaced, pack = %o.by_pack, "{o}");
    }
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        pack = %loaded.packs.join(" + "),
        signals = loaded.rules.signals.len(),
        correlations = loaded.rules.correlations.len(),
        absences = loaded.rules.absences.len(),
        replaced = loaded.composition.overrides.len(),
        repeated_unchanged = loaded.composition.identical,
        "rules loaded"
    );
    let rules = loaded.rules;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("epicenter-io")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config, rules))
}

async fn serve(config: Config, rules: Arc<correlate::rules::RuleSet>) -> Result<ExitCode> {
    // Shared with the opener of partition outboxes (sharded state).
    let shared_config = Arc::new(config);
    let config = &*shared_config;
    let serve = &config.serve;
    let faults = Faults::default();
    faults.install_panic_hook();
    let mut engine_config = config.engine.clone();
    engine_config.external_watermark = true;
    let lateness = engine_config.lateness;
    let max_ahead = engine_config.max_ahead.unwrap_or(config::DEFAULT_MAX_AHEAD);

    let state = StateDir::open(&serve.state_dir)?;
    let mut restored = state.load(
        rules.clone(),
        engine_config.clone(),
        Decoding::new(Limits::default(), config.max_clusters),
    )?;
    let now = wall_clock()();
    if restored.clusters.max_time() > now.saturating_add(max_ahead) {
        tracing::warn!(
            newest = %restored.clusters.max_time(),
            "the checkpoint's event time is far ahead of the wall clock (a record from the future \
             before this version guarded time): its engine state is discarded; open incidents \
             form again from new records"
        );
        restored.clusters.reset();
    }
    tracing::info!(
        state_dir = %serve.state_dir.display(),
        positions = restored.positions.len(),
        clusters = restored.clusters.len(),
        incidents = restored.clusters.iter().map(|e| e.store().len()).sum::<usize>(),
        journal = restored.journal,
        "state loaded"
    );

    let cancel = CancellationToken::new();
    let health = Health::default();
    let metrics = Arc::new(Metrics::new(health.clone()));
    let (intake, rx) = Intake::bounded(serve.queue);
    let (committed, committed_rx) = watch::channel(Vec::new());

    let journal_settings = journal::Settings::new(state.dir().join("journal"));
    let (replay, opened) = Journal::open(&journal_settings, restored.journal)?;
    if opened.to_replay > 0 || opened.torn_bytes > 0 {
        tracing::info!(
            deliveries = opened.to_replay,
            torn_bytes = opened.torn_bytes,
            "journal: acknowledged deliveries to replay"
        );
    }
    let journal = Journal::start(journal_settings, &opened, intake.clone())?;
    metrics.watch_journal(journal.clone());

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
        faults: faults.clone(),
        journal: journal.clone(),
        outbox: outbox.clone(),
    });
    let listener = tokio::net::TcpListener::bind(serve.listen)
        .await
        .with_context(|| format!("cannot listen on {}", serve.listen))?;
    let local = listener.local_addr()?;
    let api_state = api::Api::new(
        serve.history.as_ref().map(|h| h.dir.clone()),
        serve.api.clone(),
        local,
        outbox.clone(),
    );
    // The web page reads the same history, behind the same token.
    app = app.merge(web::router(api_state.clone()));
    app = app.merge(api::router(api_state));
    let mut receiver_health = None;
    if let Some(settings) = &serve.alertmanager {
        let h = health.register(alertmanager::SOURCE);
        app = app.merge(alertmanager::router(settings, journal.clone(), h.clone()));
        receiver_health = Some(h);
    }
    let app = app.fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "not found\n") });
    if let Some(h) = receiver_health {
        h.set_connected(true);
    }
    tracing::info!(listen = %local, "http server listening");
    let http = tokio::spawn(server::run(
        listener,
        app,
        server_limits(serve),
        cancel.child_token(),
    ));

    tracing::info!(
        alertmanager = serve.alertmanager.is_some(),
        kubernetes = serve.kubernetes.is_some(),
        kafka = serve.kafka.is_some(),
        "sources starting"
    );
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

    // Sources (and the journal's writer) hold the intake; the pipeline's
    // drain ends when all let go.
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
            max_ahead,
            give_up_after: serve.shutdown_timeout.saturating_sub(OUTBOX_GRACE + MARGIN),
            clusters: serve.clusters.clone(),
            shards: serve.shared_state.clone().map(|root| {
                tracing::info!(shared_state = %root.display(), "sharded state: each Kafka partition's clusters move with it");
                let config = Arc::clone(&shared_config);
                let open: shards::OpenOutbox = Box::new(move |dir| {
                    outbox::open_partition(&config.serve, dir, outbox::wall_clock())
                });
                shards::Shards::new(root, open)
            }),
        },
        journal.clone(),
        faults.clone(),
    );
    let handle = tokio::runtime::Handle::current();
    let pipeline_cancel = cancel.clone();
    let (engine_done, engine_exited) = tokio::sync::oneshot::channel::<()>();
    let engine_faults = faults.clone();
    let engine_thread = std::thread::Builder::new()
        .name("epicenter-engine".to_string())
        .spawn(move || {
            let result = handle.block_on(pipeline.run(replay, rx, pipeline_cancel));
            if let Err(e) = &result {
                engine_faults.fatal(format!("the engine stopped: {}", crate::describe(e)));
            }
            let _ = engine_done.send(());
            result
        })
        .context("cannot start the engine thread")?;
    started.store(true, Ordering::Relaxed);

    let mut engine_exited = engine_exited;
    tokio::select! {
        () = shutdown_signal() => tracing::info!("shutting down: intake stopped, draining"),
        () = faults.wait_fatal() => tracing::error!("shutting down after a fatal error"),
        _ = &mut engine_exited => {
            faults.fatal("the engine thread ended on its own".to_string());
        }
    }
    // Whatever happens below, the process is gone before the pod's grace:
    // what is left is in the journal, the outbox and the Kafka offsets.
    let budget = serve.shutdown_timeout;
    std::thread::Builder::new()
        .name("epicenter-shutdown-deadline".to_string())
        .spawn(move || {
            std::thread::sleep(budget);
            eprintln!(
                "epicenter: shutdown did not finish within {}s: exiting (the journal and the outbox keep what was left)",
                budget.as_secs()
            );
            std::process::exit(1);
        })
        .context("cannot start the shutdown deadline")?;
    journal.close();
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
    if let Some(reason) = faults.fatal_reason() {
        eprintln!("epicenter: {reason}");
        return Ok(ExitCode::FAILURE);
    }
    match result {
        Ok(Ok(())) => Ok(ExitCode::SUCCESS),
        Ok(Err(e)) => {
            eprintln!("epicenter: {}", crate::describe(&e));
            Ok(ExitCode::FAILURE)
        }
        Err(_) => {
            eprintln!("epicenter: the engine thread panicked");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The HTTP server's limits from the config: a query may take its
/// timeout, every other request the request timeout.
fn server_limits(serve: &config::ServeConfig) -> server::Limits {
    let request = serve.http.request_timeout;
    let query = serve.api.limits.timeout + Duration::from_secs(5);
    server::Limits {
        max_connections: serve.http.max_connections,
        header_timeout: serve.http.header_timeout,
        request_timeout: Arc::new(move |path: &str| {
            if path.starts_with(api::QUERY_PATH) {
                query.max(request)
            } else {
                request
            }
        }),
        shutdown_grace: HTTP_GRACE,
    }
}

/// A checkpoint's bytes with every frame's checksum made right (the fuzz
/// target's way past them).
pub(crate) fn resealed_checkpoint(bytes: &[u8]) -> Option<Vec<u8>> {
    checkpoint::resealed(bytes)
}

/// Reads a checkpoint file's bytes as a restart would (the fuzz target).
pub(crate) fn read_checkpoint(
    bytes: &[u8],
    rules: Arc<correlate::rules::RuleSet>,
    config: correlate::EngineConfig,
    limits: Limits,
) -> std::result::Result<(), String> {
    checkpoint::read(
        std::path::Path::new("checkpoint"),
        bytes,
        rules,
        config,
        crate::decoding::Decoding::new(limits, crate::decoding::DEFAULT_MAX_CLUSTERS),
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
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
