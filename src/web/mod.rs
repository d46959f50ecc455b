//! The HTTP server: the JSON API (`api`), ops endpoints, and (later) the
//! dashboard. One `Clone` state holds everything handlers need; every
//! change goes through the service.

pub mod api;
pub mod approvals;
pub mod auth;
pub mod error;
pub mod hardening;
pub mod health;
pub mod pages;
pub mod tokens;
pub mod users;
pub mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::service::Service;
use crate::watcher::Watcher;
use health::LoopHealth;

#[derive(Clone)]
pub struct AppState {
    pub service: Arc<Service>,
    pub watcher: Arc<Watcher>,
    pub reconciler_health: Arc<LoopHealth>,
    pub watcher_health: Arc<LoopHealth>,
    /// Whether this process leads (runs the loops), and who does.
    pub leadership: Arc<crate::leader::Leadership>,
    /// Set only under `rollgate demo`: the dashboard's demo controls.
    pub demo: Option<Arc<DemoHooks>>,
    /// Who must sign in, and how.
    pub auth: Arc<auth::AuthConfig>,
    /// Served over TLS: answers carry HSTS.
    pub https: bool,
}

/// What the demo's dashboard controls reach: the sandbox's traffic
/// simulator (never present in `rollgate serve`).
pub struct DemoHooks {
    pub sandbox_url: String,
}

impl DemoHooks {
    /// Makes the simulated function misbehave while any of `flags` is "true".
    pub async fn set_bad_flags(&self, flags: &[String]) -> Result<(), String> {
        let resp = reqwest::Client::new()
            .post(format!("{}/_sandbox/traffic", self.sandbox_url))
            .json(&json!({ "bad_flags": flags }))
            .send()
            .await
            .map_err(|e| format!("the sandbox does not answer: {e}"))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("the sandbox refused: HTTP {}", resp.status()))
        }
    }
}

/// Page and API requests handled at once; more wait their turn. The
/// database pool has at most 8 connections (4 on SQLite), so
/// more in flight only adds memory (each holds its rows and its body) and
/// tail latency; probes and metrics are not held back by it.
pub const MAX_CONCURRENT_REQUESTS: usize = 8;

pub fn router(state: AppState) -> Router {
    let https = state.https;
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_REQUESTS));
    let limited = Router::new()
        .merge(api::router())
        .merge(tokens::router())
        .merge(users::router())
        .merge(approvals::router())
        .merge(pages::router())
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let permits = permits.clone();
                async move {
                    // The semaphore is never closed, so acquiring cannot fail.
                    let _permit = permits.acquire_owned().await.ok();
                    next.run(req).await
                }
            },
        ));
    layers(
        limited
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .fallback(not_found)
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                auth::authenticate,
            ))
            .layer(axum::middleware::from_fn(same_site_changes_only))
            .layer(axum::middleware::from_fn(
                move |req: axum::extract::Request, next: axum::middleware::Next| async move {
                    let mut resp = next.run(req).await;
                    if https {
                        resp.headers_mut().insert(
                            axum::http::header::STRICT_TRANSPORT_SECURITY,
                            axum::http::HeaderValue::from_static(hardening::HSTS),
                        );
                    }
                    resp
                },
            ))
            .with_state(state),
    )
}

/// The layers every route runs under: request tracing, the security
/// headers and time limit (`hardening`), a body size limit, and a handler
/// that turns a panic into a logged 500 with the usual JSON error body, so
/// no request can take the server down.
pub fn layers(router: Router) -> Router {
    router
        .layer(axum::extract::DefaultBodyLimit::max(
            hardening::MAX_BODY_BYTES,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(on_panic))
        .layer(axum::middleware::from_fn(hardening::secure))
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(
                // The path only: a query can carry an identity provider's
                // code and state, which no log should hold.
                |req: &axum::http::Request<_>| {
                    tracing::debug_span!("request", method = %req.method(), path = %req.uri().path())
                },
            ),
        )
}

fn on_panic(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic");
    error::ApiError::Internal(format!("a request handler panicked: {what}")).into_response()
}

/// An unknown path: JSON under `/api/`, a page elsewhere.
async fn not_found(State(app): State<AppState>, uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/") {
        error::ApiError::NotFound("no such API endpoint".into()).into_response()
    } else {
        pages::PageError::not_found(format!("there is no page at {}", uri.path())).page(&app)
    }
}

/// Refuses a change (any method but GET, HEAD, OPTIONS) that a browser
/// says another site made (`Sec-Fetch-Site`, `Origin`): a page elsewhere
/// posting into an operator's browser, or a script there calling the API
/// with a "simple" request that needs no CORS preflight. Clients that are
/// not browsers send neither header. Form tokens (`auth`) guard the same
/// forms again, so either alone stops it.
async fn same_site_changes_only(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::http::Method;
    if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        let headers = req.headers();
        let host = auth::request_host(&req);
        let foreign = made_elsewhere(
            headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()),
            headers
                .get(axum::http::header::ORIGIN)
                .and_then(|o| o.to_str().ok()),
            host,
        );
        if foreign {
            let message = "changes are accepted only from rollgate's own pages and from clients that are not browsers";
            if req.uri().path().starts_with("/api/") {
                return error::ApiError::Forbidden(message.into()).into_response();
            }
            return (StatusCode::FORBIDDEN, message).into_response();
        }
    }
    next.run(req).await
}

/// Whether a browser says another site made this request. `Origin: null`
/// (a sandboxed frame, a `data:` page) counts as another site; an origin
/// that cannot be compared with the request's host does too. A request
/// with neither header is from a client that is not a browser.
fn made_elsewhere(fetch_site: Option<&str>, origin: Option<&str>, host: Option<&str>) -> bool {
    if fetch_site.is_some_and(|s| s == "cross-site" || s == "same-site") {
        return true;
    }
    let Some(origin) = origin else {
        return false;
    };
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    match (origin_host, host) {
        (Some(o), Some(h)) => !o.eq_ignore_ascii_case(h),
        _ => true,
    }
}

/// Prometheus text exposition.
async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.service.telemetry().render(),
    )
}

/// Ready when the database answers and no background loop has stopped
/// ticking; shows each loop's last pass and the watcher's last tick.
async fn readyz(State(app): State<AppState>) -> impl IntoResponse {
    let db = app.service.ping().await;
    let now = chrono::Utc::now();
    let reconciler = app.reconciler_health.report(now);
    let watcher = app.watcher_health.report(now);
    let mut problems = Vec::new();
    if let Err(e) = &db {
        // The cause goes to the log; this endpoint answers anyone.
        tracing::error!(error = %e, "readiness: the database does not answer");
        problems.push("the database does not answer (see the server log)".to_string());
    }
    for (name, r) in [("reconciler", &reconciler), ("watcher", &watcher)] {
        if r.stale {
            problems.push(format!(
                "the {name} has not finished a pass since {}",
                r.last_pass
                    .map_or_else(|| "start-up".to_string(), |t| t.to_rfc3339())
            ));
        }
    }
    let ready = problems.is_empty();
    let body = json!({
        "ready": ready,
        "problems": problems,
        "database": if db.is_ok() { "ok" } else { "unavailable" },
        "leader": app.leadership.status(),
        "reconciler": reconciler,
        "watcher": { "loop": watcher, "last_tick": app.watcher.last_tick() },
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body))
}

#[cfg(test)]
mod tests {
    use super::made_elsewhere;

    #[test]
    fn changes_made_by_other_sites_are_told_apart() {
        let host = Some("127.0.0.1:8080");
        // Not a browser, or a browser on rollgate's own page.
        assert!(!made_elsewhere(None, None, host));
        assert!(!made_elsewhere(
            Some("same-origin"),
            Some("http://127.0.0.1:8080"),
            host
        ));
        assert!(!made_elsewhere(Some("none"), None, host));
        assert!(!made_elsewhere(
            None,
            Some("https://Rollgate.Example"),
            Some("rollgate.example")
        ));
        // Another site, by either header.
        assert!(made_elsewhere(Some("cross-site"), None, host));
        assert!(made_elsewhere(Some("same-site"), None, host));
        assert!(made_elsewhere(None, Some("http://evil.example"), host));
        assert!(made_elsewhere(None, Some("http://127.0.0.1:8081"), host));
        assert!(made_elsewhere(
            None,
            Some("http://127.0.0.1:8080.evil.example"),
            host
        ));
        // Origins that cannot be checked.
        assert!(made_elsewhere(None, Some("null"), host));
        assert!(made_elsewhere(None, Some("http://127.0.0.1:8080"), None));
    }
}
