//! The HTTP server: the JSON API (`api`), ops endpoints, and (later) the
//! dashboard. One `Clone` state holds everything handlers need.

pub mod api;
pub mod error;
pub mod views;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use crate::rollout::engine::Engine;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub diagnostics: Arc<Diagnostics>,
    pub watcher: Arc<crate::watcher::Watcher>,
}

/// What the background reconciler last did, shown on `/readyz`.
#[derive(Default)]
pub struct Diagnostics {
    /// Unix millis of the last reconcile pass (0 = none yet).
    pub last_reconcile_ms: AtomicI64,
    pub pending_writes: AtomicI64,
    pub last_error: std::sync::Mutex<Option<String>>,
}

impl Diagnostics {
    pub fn record_pass(&self, pending: usize, error: Option<String>) {
        self.last_reconcile_ms
            .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
        self.pending_writes.store(pending as i64, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(api::router())
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Prometheus text exposition.
async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.engine.telemetry().render(),
    )
}

/// Ready when the database answers; also shows the reconciler's last pass.
async fn readyz(State(app): State<AppState>) -> impl IntoResponse {
    let db = app.engine.store().ping().await;
    let d = &app.diagnostics;
    let last_ms = d.last_reconcile_ms.load(Ordering::Relaxed);
    let body = json!({
        "ready": db.is_ok(),
        "database": match &db { Ok(()) => "ok".to_string(), Err(e) => e.to_string() },
        "reconciler": {
            "last_pass": (last_ms > 0).then(|| chrono::DateTime::from_timestamp_millis(last_ms)),
            "pending_writes": d.pending_writes.load(Ordering::Relaxed),
            "last_error": d.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        },
        "watcher": app.watcher.last_tick(),
    });
    let status = if db.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body))
}
