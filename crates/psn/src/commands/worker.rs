//! `psn worker [--once]` and `psn up`: the publishing engine over every hub of the workspace,
//! and for `up` a loopback HTTP server with `/healthz` and Prometheus `/metrics`.
//! SIGINT/SIGTERM stop claiming; what is in flight finishes its step or is released.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::get;
use psn_engine::{Engine, EngineConfig, Metrics, Registry, ShutdownHandle};
use psn_platforms::publish::bluesky::BlueskyPublisher;
use psn_platforms::publish::mastodon::MastodonPublisher;
use psn_platforms::publish::x::XPublisher;
use psn_store::Hub;

use crate::cli::{Global, UpArgs, WorkerArgs};
use crate::error::{CliError, CliResult, invalid};
use crate::workspace::{MARKER, Workspace};

/// The connectors this build can publish with.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    r.register(Arc::new(XPublisher::from_env()));
    r.register(Arc::new(MastodonPublisher::new()));
    r.register(Arc::new(BlueskyPublisher::new()));
    r
}

async fn engine(ws: &Workspace, once: bool) -> CliResult<Engine> {
    let cipher = ws.cipher()?;
    let mut hubs = Vec::new();
    for entry in ws.hubs()? {
        // Company hubs: the worker role, which sees every member's posts and reads tokens.
        let url = match &entry.worker_url {
            Some(url) => url,
            None => &entry.url,
        };
        let hub = Hub::open(&entry.name, url).await?;
        if hub.is_company() && entry.worker_url.is_none() {
            tracing::warn!(hub = %entry.name, "company hub without WORKER_DATABASE_URL: the runtime role shows the worker nothing; add it to {}", entry.source);
        }
        hubs.push(hub);
    }
    let config = EngineConfig {
        once,
        ..EngineConfig::default()
    }
    .with_env_overrides();
    let mut registry = registry();
    super::account_health::add_keepers(&mut registry, Some(ws));
    tracing::info!(
        hubs = hubs.len(),
        worker = %config.worker_id,
        platforms = ?registry.platforms(),
        "starting the worker"
    );
    Ok(Engine::new(hubs, cipher, registry, config))
}

/// Stops the engine on SIGINT or SIGTERM.
fn stop_on_signals(handle: ShutdownHandle) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("psn: stopping — finishing what is in flight");
        handle.shutdown();
    });
}

pub async fn worker(global: &Global, args: WorkerArgs) -> CliResult {
    let ws = Workspace::locate(global)?;
    let engine = engine(&ws, args.once).await?;
    let (handle, shutdown) = Engine::shutdown_channel();
    stop_on_signals(handle);
    engine.run(shutdown).await?;
    Ok(())
}

/// The default workspace for `psn up` outside any workspace: `$XDG_DATA_HOME/psn`
/// (or `~/.local/share/psn`).
fn default_workspace() -> Option<PathBuf> {
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    Some(data.join("psn"))
}

pub async fn up(global: &Global, args: UpArgs) -> CliResult {
    let addr: SocketAddr = args.listen.parse().map_err(|_| {
        invalid(format!(
            "--listen '{}' is not an address like 127.0.0.1:7878",
            args.listen
        ))
    })?;
    if !addr.ip().is_loopback() && !args.allow_remote {
        return Err(invalid(format!(
            "--listen {addr} is not a loopback address; the server has no authentication yet. Use 127.0.0.1, or add --allow-remote if you really mean it"
        )));
    }
    let ws = match Workspace::locate(global) {
        Ok(ws) => ws,
        Err(e) if global.workspace.is_none() => {
            let Some(dir) = default_workspace() else {
                return Err(e);
            };
            if !dir.join(MARKER).is_file() {
                super::init::create(&dir, "UTC")?;
                eprintln!(
                    "psn: created the default workspace at {} (psn init elsewhere to choose)",
                    dir.display()
                );
            } else {
                eprintln!("psn: using the default workspace at {}", dir.display());
            }
            Workspace::load(&dir)?
        }
        Err(e) => return Err(e),
    };
    let engine = engine(&ws, false).await?;
    let metrics = engine.metrics();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| CliError::Failed(anyhow::anyhow!("cannot listen on {addr}: {e}")))?;
    let media_dir = ws.root.join("content/media");
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .with_state(metrics)
        .route(
            "/media/{file}",
            get(move |path: Path<String>| media_file(media_dir.clone(), path)),
        );
    let (handle, shutdown) = Engine::shutdown_channel();
    stop_on_signals(handle);
    let mut server_stop = shutdown.clone();
    eprintln!("psn: worker running; http://{addr}/healthz and /metrics (Ctrl-C to stop)");
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = server_stop.wait_for(|stop| *stop).await;
            })
            .await
    });
    let result = engine.run(shutdown).await;
    let _ = server.await;
    result?;
    Ok(())
}

/// `GET /media/<sha256>.<ext>`: a library file, for platforms that fetch media from
/// `PSN_MEDIA_PUBLIC_BASE_URL`. Only library names are served (no paths, no listing).
async fn media_file(dir: PathBuf, Path(name): Path<String>) -> axum::response::Response {
    use axum::http::StatusCode;
    if !psn_media::library::is_library_name(&name) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let path = dir.join(&name);
    let Ok(bytes) = tokio::fs::read(&path).await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mime = psn_media::Format::sniff(&bytes[..bytes.len().min(64)])
        .map(|f| f.mime())
        .unwrap_or("application/octet-stream");
    (
        [
            ("content-type", mime),
            ("cache-control", "public, max-age=86400"),
        ],
        bytes,
    )
        .into_response()
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

async fn metrics_text(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        metrics.render(),
    )
}
