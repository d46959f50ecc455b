//! Wiring: builds the engine from configuration, finishes interrupted writes,
//! runs the background reconciler and the HTTP server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::backend::{LambdaEnvBackend, RetryPolicy};
use crate::rollout::engine::Engine;
use crate::store::Store;
use crate::watcher::Watcher;
use crate::web::{self, AppState, Diagnostics};

/// Everything `rollgate serve` is configured with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub plans_dir: PathBuf,
    pub database_url: String,
    /// How often pending (recorded, unconfirmed) writes are retried.
    pub reconcile_interval: Duration,
    /// How often the watcher ticks; `None` runs no watcher loop (tests tick
    /// it by hand).
    pub watch_interval: Option<Duration>,
    pub retry: RetryPolicy,
}

impl ServeConfig {
    pub fn new(listen: SocketAddr, plans_dir: PathBuf, database_url: String) -> Self {
        ServeConfig {
            listen,
            plans_dir,
            database_url,
            reconcile_interval: Duration::from_secs(5),
            watch_interval: Some(Duration::from_secs(10)),
            retry: RetryPolicy::default(),
        }
    }
}

/// The AWS configuration a user expects: profiles, SSO, env credentials,
/// `AWS_REGION`, `AWS_ENDPOINT_URL[_LAMBDA]`, …
pub async fn aws_config_from_env() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

/// A running server.
pub struct RunningApp {
    pub addr: SocketAddr,
    pub state: AppState,
    pub server: JoinHandle<()>,
    pub reconciler: JoinHandle<()>,
    pub watcher: Option<JoinHandle<()>>,
}

impl RunningApp {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving (in-flight requests are dropped) and closes the database.
    pub async fn stop(self) {
        self.reconciler.abort();
        if let Some(w) = &self.watcher {
            w.abort();
        }
        self.server.abort();
        let _ = self.server.await;
        self.state.engine.store().close().await;
    }
}

/// Connects the store, finishes writes a previous process left pending, and
/// serves on `config.listen` (port 0 picks a free port) in the background.
pub async fn start(
    config: &ServeConfig,
    aws: &aws_config::SdkConfig,
) -> anyhow::Result<RunningApp> {
    let store = Store::connect(&config.database_url).await?;
    let backend = LambdaEnvBackend::new(aws, config.retry.clone());
    let telemetry = Arc::new(crate::telemetry::Telemetry::default());
    let engine = Arc::new(Engine::new(
        store,
        backend,
        config.plans_dir.clone(),
        telemetry,
    ));
    let diagnostics = Arc::new(Diagnostics::default());

    // Rule 3: converge before serving anything.
    let recovered = engine.recover().await?;
    if recovered > 0 {
        tracing::info!(
            recovered,
            "finished flag writes interrupted by a previous run"
        );
    }
    diagnostics.record_pass(0, None);

    let watcher = Arc::new(Watcher::new(engine.clone(), aws));
    let state = AppState {
        engine: engine.clone(),
        diagnostics: diagnostics.clone(),
        watcher: watcher.clone(),
    };
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let app = web::router(state.clone());
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "server stopped");
        }
    });
    let interval = config.reconcile_interval;
    let reconciler = tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let (pending, error) = match engine.recover().await {
                Ok(n) => (n, None),
                Err(e) => (0, Some(e.to_string())),
            };
            diagnostics.record_pass(pending, error);
        }
    });
    let watcher = config.watch_interval.map(|every| {
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let report = watcher.tick(chrono::Utc::now()).await;
                for e in &report.errors {
                    tracing::warn!(error = %e, "watcher");
                }
            }
        })
    });
    Ok(RunningApp {
        addr,
        state,
        server,
        reconciler,
        watcher,
    })
}

/// Serves until Ctrl-C / SIGTERM.
pub async fn serve(config: ServeConfig, aws: aws_config::SdkConfig) -> anyhow::Result<()> {
    if !config.plans_dir.is_dir() {
        anyhow::bail!(
            "plans directory {} does not exist (set --plans or ROLLGATE_PLANS)",
            config.plans_dir.display()
        );
    }
    let app = start(&config, &aws).await?;
    println!("rollgate listening on {}", app.url());
    shutdown_signal().await;
    tracing::info!("shutting down");
    app.stop().await;
    Ok(())
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
