//! Wiring and lifecycle: builds the service from configuration, finishes
//! interrupted writes, then runs the HTTP server, the reconciler and the
//! watcher until told to stop. Every task is tracked and awaited at
//! shutdown; a loop pass that panics is counted and the loop goes on.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backend::{LambdaEnvBackend, RetryPolicy};
use crate::domain::Principal;
use crate::leader::{DEFAULT_LEASE_TTL, Leadership};
use crate::metrics::cloudwatch::CloudWatch;
use crate::rollout::readiness::Freshness;
use crate::service::{Service, ServiceConfig};
use crate::store::Store;
use crate::store::lease::fenced;
use crate::telemetry::Telemetry;
use crate::watcher::Watcher;
use crate::web::health::LoopHealth;
use crate::web::{self, AppState};

/// How often the audit chain is verified in the background.
const AUDIT_VERIFY_EVERY: Duration = Duration::from_secs(600);

/// How long a loop pass in progress may finish after shutdown began.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

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
    /// `rollgate demo` only: the sandbox the dashboard's demo controls steer.
    pub demo_sandbox: Option<String>,
    /// How long the leader lease lasts unrenewed: another process takes
    /// over this long after the leader died.
    pub lease_ttl: Duration,
    /// How often each rollout's function is read for drift, and the Lambda
    /// calls a second those reads may use.
    pub drift_interval: Duration,
    pub lambda_budget: f64,
    /// Serve on a non-loopback address although nobody signs in
    /// (`--insecure-listen-without-auth`).
    pub insecure_listen_without_auth: bool,
    /// Who must sign in (`--auth`), sessions and throttling.
    pub auth: crate::web::auth::AuthConfig,
    /// Serve HTTPS with this certificate chain and key (PEM files).
    pub tls: Option<TlsFiles>,
    /// This is the only server on its database (`serve` holds the SQLite
    /// file's lock): it leads whoever held the lease before.
    pub sole_server: bool,
}

/// The certificate chain and private key rollgate serves HTTPS with.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The watcher interval readiness is judged against when no loop runs.
const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(10);

impl ServeConfig {
    pub fn new(listen: SocketAddr, plans_dir: PathBuf, database_url: String) -> Self {
        ServeConfig {
            listen,
            plans_dir,
            database_url,
            reconcile_interval: Duration::from_secs(5),
            watch_interval: Some(DEFAULT_WATCH_INTERVAL),
            retry: RetryPolicy::default(),
            demo_sandbox: None,
            lease_ttl: DEFAULT_LEASE_TTL,
            sole_server: false,
            insecure_listen_without_auth: false,
            auth: crate::web::auth::AuthConfig::default(),
            tls: None,
            drift_interval: crate::watcher::DEFAULT_DRIFT_INTERVAL,
            lambda_budget: crate::watcher::DEFAULT_LAMBDA_BUDGET,
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
    /// Served over TLS.
    pub https: bool,
    pub state: AppState,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// Stops renewing the leader lease (after every task has stopped).
    lease_stop: CancellationToken,
}

impl RunningApp {
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Graceful stop: no new connections, requests in flight finish, each
    /// loop finishes its pass (or is dropped after a grace period; a write
    /// it recorded is finished at the next start), every task is awaited,
    /// then the database is closed.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE * 3, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some tasks did not stop in time");
        }
        // Only now: no pass of this process can write any more.
        self.lease_stop.cancel();
        self.state
            .leadership
            .release(self.state.service.store())
            .await;
        self.state.service.close().await;
    }
}

/// Connects the store, finishes writes a previous process left pending, and
/// serves on `config.listen` (port 0 picks a free port) in the background.
pub async fn start(
    config: &ServeConfig,
    aws: &aws_config::SdkConfig,
) -> anyhow::Result<RunningApp> {
    // A certificate that cannot be read stops the start before anything else.
    let tls = match &config.tls {
        Some(files) => Some(
            axum_server::tls_rustls::RustlsConfig::from_pem_file(&files.cert, &files.key)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot use the TLS certificate {} and key {}: {e}",
                        files.cert.display(),
                        files.key.display()
                    )
                })?,
        ),
        None => None,
    };
    let store = Store::connect(&config.database_url).await?;
    let backend = LambdaEnvBackend::new(aws, config.retry.clone());
    let appconfig = crate::backend::AppConfigBackend::new(aws, config.retry.clone());
    let telemetry = Arc::new(Telemetry::default());
    let watch_every = config.watch_interval.unwrap_or(DEFAULT_WATCH_INTERVAL);
    let freshness = Freshness {
        max_age: TimeDelta::from_std(watch_every * 2).unwrap_or(TimeDelta::seconds(20)),
    };
    let preflighter = crate::preflight::Preflighter::new(
        aws,
        backend.clone(),
        appconfig.clone(),
        config.retry.timeouts(),
    );
    let service = Arc::new(Service::new(
        store,
        backend,
        appconfig,
        preflighter,
        ServiceConfig {
            plans_dir: config.plans_dir.clone(),
            freshness,
        },
        telemetry.clone(),
    ));

    if config.auth.mode != crate::web::auth::AuthMode::None {
        // The decoy hash costs one argon2 run: pay it now, not on the
        // first sign-in with an unknown name (which would then be slower).
        let _ = tokio::task::spawn_blocking(crate::service::decoy_hash).await;
    }
    let kept = service.keep_plan_facts().await?;
    if kept > 0 {
        tracing::info!(kept, "kept the phase flags of older rollouts with them");
    }
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let leadership = Arc::new(Leadership::new(config.lease_ttl, addr, config.sole_server));
    leadership.renew(service.store()).await?;
    publish_leadership(&leadership, &telemetry);
    // Rule 3: converge before serving anything (the leader does; another
    // process's reconciler finishes them when it takes over).
    match leadership.fence() {
        Some(fence) => {
            // With other servers on the database, a write one of them
            // recorded a moment ago is still theirs to finish.
            let grace = if config.sole_server {
                Duration::ZERO
            } else {
                config.reconcile_interval
            };
            let recovered = fenced(fence, service.reconcile(&Principal::Reconciler, grace)).await?;
            if recovered > 0 {
                tracing::info!(
                    recovered,
                    "finished flag writes interrupted by a previous run"
                );
            }
        }
        None => tracing::info!(
            leader = %leadership.status().holder,
            "another process leads: this one serves and stands by"
        ),
    }
    let reconciler_health = Arc::new(LoopHealth::new(
        "reconciler",
        Some(config.reconcile_interval),
    ));
    reconciler_health.record_pass(None);
    let watcher_health = Arc::new(LoopHealth::new("watcher", config.watch_interval));
    for health in [&reconciler_health, &watcher_health] {
        health.set_standby(leadership.fence().is_none());
    }
    let watcher = Arc::new(
        Watcher::new(
            service.clone(),
            CloudWatch::new(aws, config.retry.timeouts()),
            watch_every,
        )
        .with_drift(config.drift_interval, config.lambda_budget),
    );
    let state = AppState {
        service: service.clone(),
        watcher: watcher.clone(),
        reconciler_health: reconciler_health.clone(),
        watcher_health: watcher_health.clone(),
        leadership: leadership.clone(),
        demo: config
            .demo_sandbox
            .clone()
            .map(|sandbox_url| Arc::new(crate::web::DemoHooks { sandbox_url })),
        auth: Arc::new(crate::web::auth::AuthConfig {
            // Over HTTPS, cookies never travel in the clear.
            secure_cookies: config.auth.secure_cookies || tls.is_some(),
            ..config.auth.clone()
        }),
        https: tls.is_some(),
    };
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();

    let app = web::router(state.clone());
    let stop = shutdown.clone();
    let https = tls.is_some();
    tasks.spawn(async move {
        // The peer address is kept for sign-in throttling per address.
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let served = match tls {
            None => {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await
            }
            Some(tls) => serve_tls(listener, tls, app, stop).await,
        };
        if let Err(e) = served {
            tracing::error!(error = %e, "server stopped");
        }
    });

    // The lease: renewed every fifth of its life until the loops have
    // stopped, then given up (`RunningApp::stop`).
    let lease_stop = CancellationToken::new();
    {
        let (leadership, store, telemetry) =
            (leadership.clone(), service.clone(), telemetry.clone());
        let stop = lease_stop.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(leadership.ttl / 5);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Renewed until every other task has stopped (`stop` gives the
            // lease up then): a pass still finishing keeps its lease.
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = every.tick() => {}
                }
                if let Err(e) = leadership.renew(store.store()).await {
                    tracing::warn!(error = %e, "could not renew the leader lease");
                }
                publish_leadership(&leadership, &telemetry);
            }
        });
    }

    let reconcile = {
        let service = service.clone();
        let health = reconciler_health.clone();
        let leadership = leadership.clone();
        let grace = config.reconcile_interval;
        move || {
            let service = service.clone();
            let health = health.clone();
            let fence = leadership.fence();
            async move {
                health.set_standby(fence.is_none());
                let fence = fence?;
                match fenced(fence, service.reconcile(&Principal::Reconciler, grace)).await {
                    Ok(n) => {
                        health.set_pending_writes(n);
                        None
                    }
                    Err(e) => Some(e.to_string()),
                }
            }
        }
    };
    supervise(
        &tasks,
        &shutdown,
        reconciler_health,
        config.reconcile_interval,
        telemetry.clone(),
        reconcile,
    );
    // The audit chain is verified in the background (now, then every ten
    // minutes), so the audit page shows a recent result without walking
    // the whole log on a page view.
    let auditor_health = Arc::new(LoopHealth::new("auditor", Some(AUDIT_VERIFY_EVERY)));
    let verify = {
        let service = service.clone();
        move || {
            let service = service.clone();
            async move { service.verify_and_keep().await.err().map(|e| e.to_string()) }
        }
    };
    tasks.spawn(verify());
    supervise(
        &tasks,
        &shutdown,
        auditor_health,
        AUDIT_VERIFY_EVERY,
        telemetry.clone(),
        verify,
    );
    if let Some(every) = config.watch_interval {
        let tick = {
            let watcher = watcher.clone();
            let leadership = leadership.clone();
            let health = watcher_health.clone();
            move || {
                let watcher = watcher.clone();
                let fence = leadership.fence();
                let health = health.clone();
                async move {
                    health.set_standby(fence.is_none());
                    let report = fenced(fence?, watcher.tick(chrono::Utc::now())).await;
                    for e in &report.errors {
                        tracing::warn!(error = %e, "watcher");
                    }
                    report.errors.first().cloned()
                }
            }
        };
        supervise(&tasks, &shutdown, watcher_health, every, telemetry, tick);
    }
    Ok(RunningApp {
        addr,
        https,
        state,
        shutdown,
        tasks,
        lease_stop,
    })
}

/// Runs `pass` every `every` until `shutdown`, each pass in a task of its
/// own: a pass that panics is logged, counted (`rollgate_loop_panics_total`)
/// and the loop goes on with the next one. Returns `None` or the pass's
/// error (recorded on `health`).
pub fn supervise<F, Fut>(
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
    health: Arc<LoopHealth>,
    every: Duration,
    telemetry: Arc<Telemetry>,
    pass: F,
) where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Option<String>> + Send + 'static,
{
    let shutdown = shutdown.clone();
    tasks.spawn(async move {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await; // the first tick is immediate: wait one interval
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = interval.tick() => {}
            }
            let mut running = tokio::spawn(pass());
            let result = tokio::select! {
                r = &mut running => r,
                _ = async {
                    shutdown.cancelled().await;
                    tokio::time::sleep(SHUTDOWN_GRACE).await;
                } => {
                    running.abort();
                    return;
                }
            };
            match result {
                Ok(error) => health.record_pass(error),
                Err(e) if e.is_panic() => {
                    let what = panic_message(e.into_panic());
                    tracing::error!(task = health.name, panic = %what, "a loop pass panicked; the loop goes on");
                    telemetry.count_loop_panic(health.name);
                    health.record_panic(format!("a pass panicked: {what}"));
                }
                Err(_) => return, // cancelled
            }
        }
    });
}

fn publish_leadership(leadership: &Leadership, telemetry: &Telemetry) {
    let status = leadership.status();
    telemetry.leader.set(i64::from(status.leader));
    telemetry.leader_epoch.set(status.epoch);
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

/// HTTPS on `listener` (rustls; handshakes run per connection, so a slow
/// client holds up nobody), stopped gracefully when `stop` is cancelled.
async fn serve_tls(
    listener: TcpListener,
    tls: axum_server::tls_rustls::RustlsConfig,
    app: axum::extract::connect_info::IntoMakeServiceWithConnectInfo<axum::Router, SocketAddr>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        stop.cancelled().await;
        stopper.graceful_shutdown(Some(SHUTDOWN_GRACE));
    });
    axum_server::from_tcp_rustls(listener.into_std()?, tls)?
        .handle(handle)
        .serve(app)
        .await
}

/// Serves until Ctrl-C / SIGTERM, then stops gracefully.
pub async fn serve(config: ServeConfig, aws: aws_config::SdkConfig) -> anyhow::Result<()> {
    if !config.plans_dir.is_dir() {
        anyhow::bail!(
            "plans directory {} does not exist (set --plans or ROLLGATE_PLANS)",
            config.plans_dir.display()
        );
    }
    let open = config.auth.mode == crate::web::auth::AuthMode::None;
    if open && !config.listen.ip().is_loopback() && !config.insecure_listen_without_auth {
        anyhow::bail!(
            "refusing to listen on {}: sign-in is off (--auth none), so anyone who reaches that address could change production flags. \
             Turn sign-in on (--auth local, after `rollgate user add NAME --role admin`), or listen on a loopback address (127.0.0.1) behind a reverse proxy that authenticates, \
             or pass --insecure-listen-without-auth if the network itself is trusted",
            config.listen
        );
    }
    let only_server = lock_sqlite_file(&config.database_url)?;
    let config = ServeConfig {
        sole_server: only_server.is_some(),
        ..config
    };
    let app = start(&config, &aws).await?;
    println!("rollgate listening on {}", app.url());
    shutdown_signal().await;
    tracing::info!("shutting down");
    app.stop().await;
    drop(only_server);
    Ok(())
}

/// SQLite serves one rollgate server: a second one on the same file is
/// refused (its leader lease would work, but SQLite's single writer makes
/// several processes pointless). The lock is the OS's, on `FILE.lock`, so
/// it goes away with the process, even when it is killed.
fn lock_sqlite_file(database_url: &str) -> anyhow::Result<Option<std::fs::File>> {
    let Some(db) = crate::store::sqlite_file(database_url) else {
        return Ok(None);
    };
    let mut name = db.clone().into_os_string();
    name.push(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&name)
        .map_err(|e| {
            anyhow::anyhow!("cannot open {}: {e}", std::path::Path::new(&name).display())
        })?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another rollgate server is already using the SQLite database {}: SQLite serves one server. \
             Stop the other one, or run several on PostgreSQL (DATABASE_URL=postgres://…), where one leads and the others stand by",
            db.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            anyhow::bail!("cannot lock {}: {e}", std::path::Path::new(&name).display())
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_pass_that_panics_is_counted_and_the_loop_goes_on() {
        let tasks = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let health = Arc::new(LoopHealth::new("test", Some(Duration::from_millis(10))));
        let telemetry = Arc::new(Telemetry::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        supervise(
            &tasks,
            &shutdown,
            health.clone(),
            Duration::from_millis(10),
            telemetry.clone(),
            move || {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        panic!("first pass fails");
                    }
                    None
                }
            },
        );
        for _ in 0..200 {
            if calls.load(Ordering::SeqCst) >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        shutdown.cancel();
        tasks.close();
        tasks.wait().await;
        assert!(calls.load(Ordering::SeqCst) >= 3, "the loop went on");
        assert_eq!(health.panics(), 1);
        assert!(
            telemetry
                .render()
                .contains("rollgate_loop_panics_total{loop=\"test\"} 1"),
            "{}",
            telemetry.render()
        );
        assert!(health.report(chrono::Utc::now()).passes >= 2);
    }
}
