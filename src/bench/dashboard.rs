//! `rollgate bench --dashboard`: the operator dashboard and the JSON API
//! under load, on a large store.
//!
//! 1. Data sets in SQLite files: rollouts of the seed plan's shape created
//!    through the real service against a sandbox process (so every rollout
//!    row, baseline, watch memory and chart point is what rollgate wrote),
//!    chart history laid down with `Store::insert_points`, and the audit log
//!    grown to size with `Store::append_audit` (10,000 entries a call) by
//!    replaying the entries the service wrote; the chain is verified.
//! 2. `rollgate serve` on each data set, in a process of its own (watcher
//!    off, reconciler on); its RSS and CPU are read from /proc.
//! 3. Load from a third process (`rollgate bench-load`): an open-loop
//!    generator at a fixed rate, latency from each request's due time.
//! 4. The query plans (`EXPLAIN QUERY PLAN`) of the queries behind each
//!    page, with their in-process time, and a Markdown report.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use serde_json::json;
use sqlx::Row;

use super::load::LoadResult;
use super::{SandboxProcess, create_function};
use crate::app::{self, ServeConfig};
use crate::audit::{AuditRecord, NewAuditEntry};
use crate::demo;
use crate::domain::{Action, MetricPoint, Outcome, Principal, RolloutId};
use crate::metrics::eval::Verdict;
use crate::rollout::Command;
use crate::service::Ask;
use crate::store::{AuditFilter, RolloutFilter, Store, timestamp};

/// The seed plan; each benchmark function gets a copy naming it.
const SEED_PLAN: &str = include_str!("../../rollout-plans/dixon-smart-repair.toml");
/// The function the seed plan names.
const SEED_FUNCTION: &str = "dixon-smart-repair-handler";
/// Audit entries per `Store::append_audit` call.
const AUDIT_BATCH: usize = 10_000;
/// Rollouts with a full chart history (720 points a series: the watcher's cap).
const HEAVY_ROLLOUTS: usize = 5;
/// The watcher's bound on points per series.
const POINTS_CAP: usize = 720;
/// How often the watcher keeps a chart row per rollout at its default
/// 10 s tick (`watcher::decide::points_every`).
const KEPT_EVERY: TimeDelta = TimeDelta::minutes(1);
/// One rollout in this many keeps only the audit entries the service wrote
/// for it (a typical page); the others get the replayed bulk of the log.
const QUIET_EVERY: i64 = 4;
/// Operators the benchmark's commands are recorded under.
const OPERATORS: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];

/// What `rollgate bench --dashboard` is asked to do.
#[derive(Debug, Clone)]
pub struct DashboardArgs {
    /// Keep the seeded files here and reuse them next time.
    pub reuse: Option<PathBuf>,
    pub rollouts: usize,
    pub audit_entries: usize,
    /// Requests a second per endpoint.
    pub rate: f64,
    /// Measured seconds per endpoint.
    pub seconds: f64,
    /// Also measure data sets a tenth the size (scaling).
    pub scaling: bool,
    pub out: Option<PathBuf>,
}

/// One seeded SQLite file.
#[derive(Debug, Clone)]
struct DataSet {
    rollouts: usize,
    audit: usize,
    db: PathBuf,
    plans: PathBuf,
}

impl DataSet {
    fn label(&self) -> String {
        format!(
            "{} rollouts, {} audit entries",
            self.rollouts,
            thousands(self.audit)
        )
    }

    fn url(&self) -> String {
        format!("sqlite://{}?mode=rwc", self.db.display())
    }

    /// Written once the file is complete: only complete files are reused.
    fn marker(&self) -> PathBuf {
        self.db.with_extension("done")
    }

    fn seeded(&self) -> bool {
        self.db.exists() && self.marker().exists()
    }
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn seed_plan(function: &str) -> String {
    SEED_PLAN.replace(SEED_FUNCTION, function)
}

fn quiet(id: i64) -> bool {
    id % QUIET_EVERY == 0
}

fn function_name(i: usize) -> String {
    format!("fn-{i:05}")
}

fn write_plans(dir: &Path, n: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for i in 0..n {
        let name = function_name(i);
        std::fs::write(dir.join(format!("{name}.toml")), seed_plan(&name))?;
    }
    Ok(())
}

/// Where each seeded rollout ends up, by its index.
fn fate(i: usize) -> (usize, Option<Command>) {
    match i % 20 {
        // Completed: through all three phases, then complete.
        0..=9 => (4, None),
        10..=12 => (1 + i % 2, Some(Command::Rollback { to: None })),
        13 => (1, Some(Command::Abandon)),
        14 => (2, Some(Command::Pause)),
        // Active, in phase 1, 2 or 3.
        k => ((k - 15) % 3 + 1, None),
    }
}

/// Creates `n` rollouts through the service against a sandbox process and
/// returns the seconds it took. The database file is left with the
/// rollouts, their audit entries, watch memories and the points of two
/// watcher ticks.
async fn seed_rollouts(set: &DataSet) -> anyhow::Result<f64> {
    let started = Instant::now();
    let n = set.rollouts;
    write_plans(&set.plans, n)?;
    let sandbox = SandboxProcess::start().await?;
    let aws = demo::sandbox_aws_config(&sandbox.url).await;
    let lambda = aws_sdk_lambda::Client::new(&aws);
    for i in 0..n {
        create_function(&lambda, &function_name(i)).await?;
    }
    let mut config = ServeConfig::new("127.0.0.1:0".parse()?, set.plans.clone(), set.url());
    config.watch_interval = None;
    let app = app::start(&config, &aws).await?;
    let service = app.state.service.clone();
    let watcher = app.state.watcher.clone();
    let who = |i: usize| Principal::operator(Some(OPERATORS[i % OPERATORS.len()]));
    sandbox
        .set_traffic(json!({ "invocations_per_tick": 50 }))
        .await?;
    let now = Utc::now();
    sandbox.traffic(15, now - TimeDelta::minutes(5)).await?;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let reason = Some(format!("release {} of {}", i / 7 + 1, function_name(i)));
        ids.push(
            service
                // The bench's functions have minutes of history, not a
                // 7-day baseline: past preflight, as an operator would.
                .start(&who(i)?, &function_name(i), reason, true)
                .await?
                .done
                .rollout
                .id,
        );
    }
    // The watcher records baselines and the first points.
    let report = watcher.tick(Utc::now()).await;
    anyhow::ensure!(report.errors.is_empty(), "tick errors: {:?}", report.errors);
    for (i, &id) in ids.iter().enumerate() {
        let (advances, then) = fate(i);
        for step in 0..advances {
            let ask = Ask {
                reason: Some(format!("bench: promote (step {})", step + 1)),
                force: true,
                ..Ask::default()
            };
            service
                .command(&who(i + step)?, id, Command::Advance, ask)
                .await?;
        }
        if let Some(cmd) = then {
            let ask = Ask {
                reason: Some(match cmd {
                    Command::Rollback { .. } => "error rate up on the canary".to_string(),
                    Command::Abandon => "superseded by a newer build".to_string(),
                    _ => "waiting for the downstream team".to_string(),
                }),
                ..Ask::default()
            };
            service.command(&who(i + 3)?, id, cmd, ask).await?;
        }
    }
    // Phases under way: one more tick records readiness, gates and points.
    sandbox.traffic(5, Utc::now()).await?;
    let report = watcher.tick(Utc::now()).await;
    anyhow::ensure!(report.errors.is_empty(), "tick errors: {:?}", report.errors);
    app.stop().await;
    drop(sandbox);
    Ok(started.elapsed().as_secs_f64())
}

/// A value that wanders around `base`.
fn wander(base: Option<f64>, id: i64, j: usize) -> Option<f64> {
    base.map(|b| {
        let b = if b == 0.0 { 0.5 } else { b };
        b * (1.0 + 0.15 * ((j as f64) * 0.21 + id as f64).sin())
    })
}

/// The chart history: every rollout gets an hour of points (one a minute,
/// as the watcher keeps them at its default 10 s tick) for each series it
/// has, the heavy ones a full 720 (12 hours). Series come from the points the watcher recorded; a rollout it
/// recorded none for (it ended before the tick) gets the guardrails'
/// series. Returns (points written, heavy rollout ids).
async fn fill_points(store: &Store, rollouts: usize) -> anyhow::Result<(usize, Vec<RolloutId>)> {
    let all = store.list_rollouts(&RolloutFilter::default()).await?;
    let mut series: BTreeMap<RolloutId, Vec<MetricPoint>> = BTreeMap::new();
    for r in &all {
        let mut latest: BTreeMap<(String, String), MetricPoint> = BTreeMap::new();
        for p in store.points(r.id, None).await? {
            latest.insert((p.kind.as_str().to_string(), p.name.clone()), p);
        }
        series.insert(r.id, latest.into_values().collect());
    }
    let donor: Vec<MetricPoint> = series
        .values()
        .flatten()
        .filter(|p| p.kind == crate::domain::PointKind::Guardrail)
        .fold(BTreeMap::new(), |mut m, p| {
            m.entry(p.name.clone()).or_insert_with(|| p.clone());
            m
        })
        .into_values()
        .collect();
    // Heavy: the newest rollouts in a phase with gates (first on the overview).
    let heavy: Vec<RolloutId> = all
        .iter()
        .filter(|r| !r.state.is_terminal() && (1..=2).contains(&r.phase_index) && !quiet(r.id.0))
        .map(|r| r.id)
        .take(HEAVY_ROLLOUTS)
        .collect();
    anyhow::ensure!(all.len() == rollouts, "{} rollouts stored", all.len());
    let now = Utc::now();
    let mut written = 0;
    let mut batch: Vec<(RolloutId, MetricPoint)> = Vec::new();
    for (id, own) in &series {
        let templates = if own.is_empty() { &donor } else { own };
        let count = if heavy.contains(id) { POINTS_CAP } else { 60 };
        for t in templates {
            for j in 1..=count {
                let mut p = t.clone();
                p.at = now - KEPT_EVERY * j as i32;
                p.value = wander(t.value, id.0, j);
                p.samples = t.samples.max(100);
                if p.verdict == Verdict::InsufficientData && p.value.is_some() {
                    p.verdict = Verdict::Pass;
                }
                batch.push((*id, p));
            }
        }
        if batch.len() >= 20_000 {
            written += batch.len();
            store.insert_points(&batch).await?;
            batch.clear();
        }
    }
    written += batch.len();
    store.insert_points(&batch).await?;
    Ok((written, heavy))
}

/// A reused file's holding rollouts get the points the watcher would have
/// kept since it was seeded (one a minute, the last hour at most), then
/// are thinned as the watcher thins them.
async fn refresh_points(store: &Store) -> anyhow::Result<usize> {
    let now = Utc::now();
    let holding = store
        .list_rollouts(&RolloutFilter::default())
        .await?
        .into_iter()
        .filter(|r| !r.state.is_terminal());
    let mut added = 0;
    for r in holding {
        let mut latest: BTreeMap<(String, String), MetricPoint> = BTreeMap::new();
        for p in store.points(r.id, Some(now - TimeDelta::days(30))).await? {
            latest.insert((p.kind.as_str().to_string(), p.name.clone()), p);
        }
        let mut batch = Vec::new();
        for t in latest.values() {
            let from = (t.at + KEPT_EVERY).max(now - TimeDelta::minutes(60));
            let mut at = from;
            let mut j = 0;
            while at <= now {
                let mut p = t.clone();
                p.at = at;
                p.value = wander(t.value, r.id.0, j);
                batch.push((r.id, p));
                at += KEPT_EVERY;
                j += 1;
            }
        }
        added += batch.len();
        store.insert_points(&batch).await?;
        store.thin_points(r.id, POINTS_CAP).await?;
    }
    Ok(added)
}

/// The entry the service wrote, to append again.
fn replay(r: &AuditRecord) -> Option<NewAuditEntry> {
    let json = |s: &Option<String>| {
        s.as_deref()
            .and_then(|t| serde_json::from_str::<crate::plan::Flags>(t).ok())
    };
    Some(NewAuditEntry {
        actor: r.actor.clone(),
        action: Action::parse(&r.action)?,
        outcome: Outcome::parse(&r.outcome)?,
        rollout_id: r.rollout_id.map(RolloutId),
        phase: r.phase.clone(),
        flags_before: json(&r.flags_before),
        flags_after: json(&r.flags_after),
        reason: r.reason.clone(),
        detail: r
            .detail
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok()),
    })
}

async fn audit_count(store: &Store) -> anyhow::Result<usize> {
    Ok(store.audit_head().await?.map_or(0, |(seq, _)| seq as usize))
}

/// Grows the audit log to `target` entries by appending, in order and
/// again and again, the entries the service wrote while seeding (same
/// actors, actions, outcomes, rollouts, flags, reasons and evidence),
/// except those of the quiet rollouts.
async fn fill_audit(store: &Store, target: usize) -> anyhow::Result<()> {
    let originals: Vec<NewAuditEntry> = store
        .list_audit(&AuditFilter {
            up_to: Some(20_000),
            ..AuditFilter::default()
        })
        .await?
        .iter()
        .filter(|r| r.rollout_id.is_some_and(|id| !quiet(id)))
        .filter_map(replay)
        .collect();
    anyhow::ensure!(!originals.is_empty(), "no audit entries to replay");
    let mut have = audit_count(store).await?;
    let mut next = 0;
    while have < target {
        let n = AUDIT_BATCH.min(target - have);
        let batch: Vec<NewAuditEntry> = (0..n)
            .map(|k| originals[(next + k) % originals.len()].clone())
            .collect();
        next += n;
        store.append_audit(batch).await?;
        have += n;
        if have % 100_000 < AUDIT_BATCH {
            eprintln!("  audit log: {} entries", thousands(have));
        }
    }
    Ok(())
}

/// How a data set was made (or that it was reused).
#[derive(Debug, Default)]
struct Seeding {
    reused: bool,
    rollouts_secs: f64,
    points_secs: f64,
    audit_secs: f64,
    verify_secs: f64,
    verified: Option<(bool, u64)>,
}

/// Seeds the main file and, if asked, the smaller ones, or finds them
/// seeded. The 1,000-rollout file with a tenth of the audit log is a copy
/// of the main one taken on the way (`VACUUM INTO`).
async fn prepare(
    main: &DataSet,
    tenth_audit: &DataSet,
    small: Option<&DataSet>,
) -> anyhow::Result<Vec<(String, Seeding)>> {
    let mut out = Vec::new();
    if main.seeded() && tenth_audit.seeded() {
        out.push((main.label(), reused(main).await?));
        out.push((tenth_audit.label(), reused(tenth_audit).await?));
    } else {
        for f in [&main.db, &tenth_audit.db] {
            let _ = std::fs::remove_file(f);
            let _ = std::fs::remove_file(f.with_extension("done"));
        }
        let mut s = Seeding::default();
        eprintln!("seeding {} rollouts through the service…", main.rollouts);
        s.rollouts_secs = seed_rollouts(main).await?;
        let store = Store::connect(&main.url()).await?;
        let t = Instant::now();
        fill_points(&store, main.rollouts).await?;
        s.points_secs = t.elapsed().as_secs_f64();
        let t = Instant::now();
        fill_audit(&store, tenth_audit.audit).await?;
        let copy_secs = t.elapsed().as_secs_f64();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "VACUUM INTO '{}'",
            tenth_audit.db.display().to_string().replace('\'', "''")
        )))
        .execute(store.pool())
        .await?;
        std::fs::write(tenth_audit.marker(), "seeded\n")?;
        fill_audit(&store, main.audit).await?;
        s.audit_secs = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let report = store.verify_audit().await?;
        s.verify_secs = t.elapsed().as_secs_f64();
        anyhow::ensure!(
            report.ok,
            "the seeded audit chain does not verify: {report:?}"
        );
        s.verified = Some((report.ok, report.entries));
        store.close().await;
        std::fs::write(main.marker(), "seeded\n")?;
        let tenth = Seeding {
            rollouts_secs: s.rollouts_secs,
            points_secs: s.points_secs,
            audit_secs: copy_secs,
            ..Seeding::default()
        };
        out.push((main.label(), s));
        out.push((format!("{} (copy)", tenth_audit.label()), tenth));
    }
    if let Some(small) = small {
        if small.seeded() {
            out.push((small.label(), reused(small).await?));
        } else {
            let _ = std::fs::remove_file(&small.db);
            let mut s = Seeding::default();
            eprintln!("seeding {} rollouts through the service…", small.rollouts);
            s.rollouts_secs = seed_rollouts(small).await?;
            let store = Store::connect(&small.url()).await?;
            let t = Instant::now();
            fill_points(&store, small.rollouts).await?;
            s.points_secs = t.elapsed().as_secs_f64();
            let t = Instant::now();
            fill_audit(&store, small.audit).await?;
            s.audit_secs = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let report = store.verify_audit().await?;
            s.verify_secs = t.elapsed().as_secs_f64();
            anyhow::ensure!(report.ok, "the seeded audit chain does not verify");
            s.verified = Some((report.ok, report.entries));
            store.close().await;
            std::fs::write(small.marker(), "seeded\n")?;
            out.push((small.label(), s));
        }
    }
    Ok(out)
}

/// A reused file: its plans written again, its holding rollouts' points
/// brought up to now.
async fn reused(set: &DataSet) -> anyhow::Result<Seeding> {
    write_plans(&set.plans, set.rollouts)?;
    let store = Store::connect(&set.url()).await?;
    let t = Instant::now();
    let added = refresh_points(&store).await?;
    eprintln!(
        "reusing {} ({added} points added in {:.1} s)",
        set.db.display(),
        t.elapsed().as_secs_f64()
    );
    store.close().await;
    Ok(Seeding {
        reused: true,
        ..Seeding::default()
    })
}

/// `rollgate serve` on a data set, in a process of its own.
struct ServerProcess {
    child: std::process::Child,
    url: String,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    async fn start(set: &DataSet, log: &Path) -> anyhow::Result<ServerProcess> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = std::fs::File::create(log)?;
        // The watcher is off and no write is pending, so AWS is never
        // called; the endpoint is a closed loopback port all the same.
        let child = std::process::Command::new(std::env::current_exe()?)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--plans",
                &set.plans.display().to_string(),
                "--database",
                &set.url(),
                "--watch-interval",
                "0",
            ])
            .env("RUST_LOG", "warn")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "bench")
            .env("AWS_SECRET_ACCESS_KEY", "bench")
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let server = ServerProcess {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        for _ in 0..600 {
            if let Ok(r) = http.get(format!("{}/healthz", server.url)).send().await
                && r.status().is_success()
            {
                server.settle().await;
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("rollgate serve did not start (see its log)")
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// VmRSS and VmHWM (peak), MB.
    fn memory_mb(&self) -> (f64, f64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
                .map_or(0.0, |kb| kb / 1024.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// User + system CPU seconds so far.
    /// Waits (up to 2 min) until the server is idle: at start it verifies
    /// the audit chain in the background (seconds of CPU on a million
    /// entries), which is not the cost of any request.
    async fn settle(&self) {
        let mut quiet = 0;
        for _ in 0..480 {
            let before = self.cpu_seconds();
            tokio::time::sleep(Duration::from_millis(250)).await;
            // Under 4 % of a core over the quarter second, twice in a row.
            quiet = if self.cpu_seconds() - before < 0.011 {
                quiet + 1
            } else {
                0
            };
            if quiet == 2 {
                return;
            }
        }
    }

    fn cpu_seconds(&self) -> f64 {
        super::cpu_seconds_of(&self.pid().to_string())
    }
}

/// One measured endpoint: its URLs are requested in turn.
struct Endpoint {
    name: String,
    /// The URL as shown in the report.
    shown: String,
    urls: Vec<String>,
    /// p99 target, if the issue sets one.
    target_ms: Option<f64>,
    /// Rows the main query matches (audit filters).
    matching: Option<i64>,
}

/// What the data set looks like, for choosing URLs and for the report.
struct Facts {
    rollouts: Vec<i64>,
    holding: usize,
    heavy: i64,
    heavy_points: i64,
    audit_entries: i64,
    points: i64,
    memories: i64,
    heavy_entries: i64,
    /// A quiet rollout (only its own audit entries), the newest.
    typical: i64,
    typical_entries: i64,
    /// A rollout in the middle (not quiet).
    mid_rollout: i64,
    /// Times bounding 1 % of the log, in its middle.
    since: String,
    until: String,
    /// The seq range the store looks up for that window.
    since_seq: i64,
    until_seq: i64,
    /// The heavy rollout's chart times a chart draws (the page reads those).
    heavy_drawn: Vec<String>,
    /// A cursor halfway down the log.
    middle_seq: i64,
    file_mb: f64,
}

async fn scalar(store: &Store, sql: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(store.pool())
        .await?
        .try_get::<i64, _>(0)?)
}

async fn facts(set: &DataSet, store: &Store) -> anyhow::Result<Facts> {
    let rollouts: Vec<i64> = sqlx::query("SELECT id FROM rollouts ORDER BY id")
        .fetch_all(store.pool())
        .await?
        .iter()
        .map(|r| r.try_get::<i64, _>("id"))
        .collect::<Result<_, _>>()?;
    let heavy_row = sqlx::query(
        "SELECT rollout_id, COUNT(*) AS n FROM metric_ticks GROUP BY rollout_id ORDER BY n DESC, rollout_id LIMIT 1",
    )
    .fetch_optional(store.pool())
    .await?;
    let (heavy, heavy_points) = match heavy_row {
        Some(r) => (r.try_get("rollout_id")?, r.try_get("n")?),
        None => (rollouts[0], 0),
    };
    let audit_entries = audit_count(store).await? as i64;
    let mid_rollout = rollouts[rollouts.len() / 2..]
        .iter()
        .copied()
        .find(|id| !quiet(*id))
        .unwrap_or(rollouts[0]);
    let typical = rollouts
        .iter()
        .rev()
        .copied()
        .find(|id| quiet(*id))
        .unwrap_or(rollouts[0]);
    let typical_entries = scalar(
        store,
        &format!("SELECT COUNT(*) FROM audit_log WHERE rollout_id = {typical}"),
    )
    .await?;
    let heavy_entries = scalar(
        store,
        &format!("SELECT COUNT(*) FROM audit_log WHERE rollout_id = {heavy}"),
    )
    .await?;
    let at_seq = |seq: i64| {
        let pool = store.pool().clone();
        async move {
            sqlx::query("SELECT at FROM audit_log WHERE seq = $1")
                .bind(seq)
                .fetch_one(&pool)
                .await
                .and_then(|r| r.try_get::<String, _>("at"))
        }
    };
    let since = at_seq(audit_entries * 40 / 100).await?;
    let until = at_seq(audit_entries * 41 / 100).await?;
    let since_seq = scalar(
        store,
        &format!("SELECT seq FROM audit_log WHERE at >= '{since}' ORDER BY at LIMIT 1"),
    )
    .await?;
    let until_seq = scalar(
        store,
        &format!("SELECT seq FROM audit_log WHERE at < '{until}' ORDER BY at DESC LIMIT 1"),
    )
    .await?;
    let heavy_ats: Vec<String> =
        sqlx::query("SELECT at FROM metric_ticks WHERE rollout_id = $1 ORDER BY at")
            .bind(heavy)
            .fetch_all(store.pool())
            .await?
            .iter()
            .map(|r| r.try_get("at"))
            .collect::<Result<_, _>>()?;
    let heavy_drawn = crate::web::pages::render::chart_indices(heavy_ats.len())
        .into_iter()
        .map(|i| heavy_ats[i].clone())
        .collect();
    Ok(Facts {
        since_seq,
        until_seq,
        heavy_drawn,
        holding: scalar(
            store,
            "SELECT COUNT(*) FROM rollouts WHERE active_target IS NOT NULL",
        )
        .await? as usize,
        heavy,
        heavy_points,
        heavy_entries,
        typical,
        typical_entries,
        audit_entries,
        points: scalar(store, "SELECT COUNT(*) FROM metric_ticks").await?,
        memories: scalar(store, "SELECT COUNT(*) FROM watch_memory").await?,
        mid_rollout,
        since,
        until,
        middle_seq: audit_entries / 2,
        file_mb: std::fs::metadata(&set.db).map_or(0.0, |m| m.len() as f64 / 1e6),
        rollouts,
    })
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The endpoints measured on a data set; `full` adds the rollout pages
/// and the API (the scaling runs measure the overview and the audit page).
async fn endpoints(
    base: &str,
    f: &Facts,
    store: &Store,
    full: bool,
) -> anyhow::Result<Vec<Endpoint>> {
    let count = |cond: &str| {
        let sql = format!("SELECT COUNT(*) FROM audit_log WHERE {cond}");
        async move { scalar(store, &sql).await }
    };
    let mut out = vec![Endpoint {
        name: "overview".into(),
        shown: "/".into(),
        urls: vec![format!("{base}/")],
        target_ms: Some(20.0),
        matching: None,
    }];
    if full {
        out.push(Endpoint {
            name: "rollout page, 720-point charts".into(),
            shown: format!(
                "/rollouts/{} ({} points, {} audit entries)",
                f.heavy, f.heavy_points, f.heavy_entries
            ),
            urls: vec![format!("{base}/rollouts/{}", f.heavy)],
            target_ms: Some(20.0),
            matching: None,
        });
        out.push(Endpoint {
            name: "rollout page, few audit entries".into(),
            shown: format!(
                "/rollouts/{} ({} audit entries)",
                f.typical, f.typical_entries
            ),
            urls: vec![format!("{base}/rollouts/{}", f.typical)],
            target_ms: Some(20.0),
            matching: None,
        });
        out.push(Endpoint {
            name: "rollout page, every rollout in turn".into(),
            shown: "/rollouts/{1..N}".into(),
            urls: f
                .rollouts
                .iter()
                .map(|id| format!("{base}/rollouts/{id}"))
                .collect(),
            target_ms: Some(20.0),
            matching: None,
        });
    }
    let audit = |name: &str, query: String, cond: Option<String>| (name.to_string(), query, cond);
    let mut audits = vec![
        audit("audit, no filter", String::new(), None),
        audit(
            "audit, action",
            "action=advance".into(),
            Some("action = 'advance'".into()),
        ),
        audit(
            "audit, actor",
            "actor=alice".into(),
            Some("actor = 'alice'".into()),
        ),
        audit(
            "audit, rollout",
            format!("rollout={}", f.mid_rollout),
            Some(format!("rollout_id = {}", f.mid_rollout)),
        ),
        audit(
            "audit, time range (1 % of the log)",
            format!("since={}&until={}", enc(&f.since), enc(&f.until)),
            Some(format!("at >= '{}' AND at < '{}'", f.since, f.until)),
        ),
        audit(
            "audit, action + actor",
            "action=rollback&actor=alice".into(),
            Some("action = 'rollback' AND actor = 'alice'".into()),
        ),
    ];
    if full {
        audits.push(audit(
            "audit, action, cursor halfway",
            format!("action=advance&before={}", f.middle_seq),
            Some(format!("action = 'advance' AND seq < {}", f.middle_seq)),
        ));
    }
    for (name, query, cond) in audits {
        let path = if query.is_empty() {
            "/audit".to_string()
        } else {
            format!("/audit?{query}")
        };
        let matching = match cond {
            Some(c) => count(&c).await?,
            None => f.audit_entries,
        };
        out.push(Endpoint {
            name,
            shown: path
                .replace(&enc(&f.since), "…")
                .replace(&enc(&f.until), "…"),
            urls: vec![format!("{base}{path}")],
            target_ms: Some(50.0),
            matching: Some(matching),
        });
    }
    if full {
        out.push(Endpoint {
            name: "API: all rollouts".into(),
            shown: "/api/v1/rollouts".into(),
            urls: vec![format!("{base}/api/v1/rollouts")],
            target_ms: None,
            matching: None,
        });
        out.push(Endpoint {
            name: "API: a page of 100 rollouts".into(),
            shown: "/api/v1/rollouts?limit=100".into(),
            urls: vec![format!("{base}/api/v1/rollouts?limit=100")],
            target_ms: None,
            matching: None,
        });
        out.push(Endpoint {
            name: "API: one rollout, every rollout in turn".into(),
            shown: "/api/v1/rollouts/{1..N}".into(),
            urls: f
                .rollouts
                .iter()
                .map(|id| format!("{base}/api/v1/rollouts/{id}"))
                .collect(),
            target_ms: None,
            matching: None,
        });
        out.push(Endpoint {
            name: "API: audit, action".into(),
            shown: "/api/v1/audit?limit=100&action=advance".into(),
            urls: vec![format!("{base}/api/v1/audit?limit=100&action=advance")],
            target_ms: None,
            matching: Some(count("action = 'advance'").await?),
        });
    }
    Ok(out)
}

/// A rate the server keeps up with on every endpoint, for the service
/// time of an endpoint that saturates it at the target rate.
const LOW_RATE: f64 = 5.0;

/// One endpoint's figures.
struct Measured {
    load: LoadResult,
    /// At `LOW_RATE`, when the target rate saturated the server.
    low: Option<Low>,
    server_cpu_ms_per_request: f64,
    rss_mb: f64,
    peak_mb: f64,
}

/// The same endpoint at `LOW_RATE`.
struct Low {
    load: LoadResult,
    server_cpu_ms_per_request: f64,
    rss_mb: f64,
    peak_mb: f64,
}

/// Runs `rollgate bench-load` against `urls` and reads its JSON.
async fn load(urls: &[String], rate: f64, seconds: f64) -> anyhow::Result<LoadResult> {
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.arg("bench-load")
        .args(["--rate", &rate.to_string()])
        .args(["--seconds", &seconds.to_string()])
        .args(["--warmup-seconds", "2"]);
    for u in urls {
        cmd.args(["--url", u]);
    }
    cmd.stderr(std::process::Stdio::inherit());
    let output = tokio::task::spawn_blocking(move || cmd.output()).await??;
    anyhow::ensure!(
        output.status.success(),
        "bench-load failed: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// One run of the load generator against a fresh server: its result, the
/// server's CPU per answered request and its RSS after and at peak.
async fn load_fresh(
    set: &DataSet,
    log: &Path,
    paths: &[String],
    rate: f64,
    seconds: f64,
) -> anyhow::Result<(LoadResult, f64, (f64, f64))> {
    let server = ServerProcess::start(set, log).await?;
    let urls: Vec<String> = paths.iter().map(|p| format!("{}{p}", server.url)).collect();
    let cpu_before = server.cpu_seconds();
    let result = load(&urls, rate, seconds).await?;
    let cpu = server.cpu_seconds() - cpu_before;
    let answered = (result.ok + result.bad_status + result.warmup_answered).max(1);
    Ok((result, cpu * 1000.0 / answered as f64, server.memory_mb()))
}

/// Measures an endpoint on a server of its own (so its RSS is its own);
/// an endpoint that saturates the server at `rate` is measured again at
/// `LOW_RATE` for its service time.
async fn measure(
    set: &DataSet,
    log: &Path,
    e: &Endpoint,
    rate: f64,
    seconds: f64,
) -> anyhow::Result<Measured> {
    let (result, cpu_ms, (rss_mb, peak_mb)) = load_fresh(set, log, &e.urls, rate, seconds).await?;
    eprintln!(
        "  {:<40} p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms  errors {}  not sent {}  cpu {:.1} ms  peak {:.0} MB",
        e.name,
        result.p50_ms,
        result.p99_ms,
        result.max_ms,
        result.failed + result.bad_status,
        result.not_sent,
        cpu_ms,
        peak_mb
    );
    let saturated = result.not_sent > 0 || result.p99_ms > 1000.0;
    let low = if saturated && rate > LOW_RATE {
        let (low, cpu_ms, (rss_mb, peak_mb)) =
            load_fresh(set, log, &e.urls, LOW_RATE, seconds).await?;
        eprintln!(
            "  {:<40} p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms  (at {LOW_RATE} req/s)  cpu {:.1} ms  peak {:.0} MB",
            "", low.p50_ms, low.p99_ms, low.max_ms, cpu_ms, peak_mb
        );
        Some(Low {
            load: low,
            server_cpu_ms_per_request: cpu_ms,
            rss_mb,
            peak_mb,
        })
    } else {
        None
    };
    Ok(Measured {
        server_cpu_ms_per_request: cpu_ms,
        rss_mb,
        peak_mb,
        load: result,
        low,
    })
}

/// A query behind a page, as the store sends it (values inlined).
struct Query {
    what: String,
    sql: String,
}

const ROLLOUT_WHERE: &str = "WHERE (NULL IS NULL OR state = NULL) AND (NULL IS NULL OR plan_name = NULL) \
     AND (NULL IS NULL OR target_function = NULL OR function_name = NULL OR function_arn = NULL) \
     AND id < 9223372036854775807";
const AUDIT_COLUMNS: &str = "seq, at, actor, action, rollout_id, phase, flags_before, flags_after, \
     reason, outcome, detail, prev_hash, hash";

/// The SQL of `src/store` for each page's reads, with this data set's values.
fn queries(f: &Facts, first_page: &[i64], since_hour: &str) -> Vec<Query> {
    let q = |what: &str, sql: String| Query {
        what: what.to_string(),
        sql,
    };
    let audit = |cond: &str, limit: i64| {
        format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE {cond} ORDER BY seq DESC LIMIT {limit}"
        )
    };
    let ids: Vec<String> = first_page.iter().map(i64::to_string).collect();
    vec![
        q(
            "overview: a page of rollouts, holding ones first",
            format!(
                "SELECT * FROM rollouts {ROLLOUT_WHERE} \
                 ORDER BY (active_target IS NULL), id DESC LIMIT 51 OFFSET 0"
            ),
        ),
        q(
            "overview: the page's watch memories",
            format!(
                "SELECT rollout_id, memory FROM watch_memory WHERE rollout_id IN ({})",
                ids.join(", ")
            ),
        ),
        q(
            "overview: sparklines of the page's 50 rollouts (last hour; folded to a value a minute, then reused 15 s)",
            format!(
                "SELECT rollout_id, at, error_rate FROM metric_ticks \
                 WHERE at >= '{since_hour}' AND rollout_id IN ({}) ORDER BY rollout_id, at",
                ids.join(", ")
            ),
        ),
        q(
            "rollout page / API: the rollout",
            format!("SELECT * FROM rollouts WHERE id = {}", f.heavy),
        ),
        q(
            "rollout page: its watch memory",
            format!(
                "SELECT memory FROM watch_memory WHERE rollout_id = {}",
                f.heavy
            ),
        ),
        q(
            "rollout page: its newest 50 audit entries",
            audit(&format!("rollout_id = {}", f.heavy), 50),
        ),
        q(
            "rollout page: chart markers (phase changes, breaches, rollbacks; newest 200)",
            format!(
                "SELECT at, action, phase FROM audit_log WHERE rollout_id = {} AND action IN ({}) \
                 ORDER BY seq DESC LIMIT 200",
                f.heavy,
                crate::store::MARKER_ACTIONS
                    .iter()
                    .map(|a| format!("'{}'", a.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        q(
            "rollout page: its chart times (the index alone)",
            format!(
                "SELECT at FROM metric_ticks WHERE rollout_id = {} AND at >= '' ORDER BY at",
                f.heavy
            ),
        ),
        q(
            "rollout page: the ticks its charts draw",
            format!(
                "SELECT at, points FROM metric_ticks WHERE rollout_id = {} AND at IN ({}) ORDER BY at",
                f.heavy,
                f.heavy_drawn
                    .iter()
                    .map(|a| format!("'{a}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        q(
            "audit page: no filter",
            format!("SELECT {AUDIT_COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT 51"),
        ),
        q("audit page: action", audit("action = 'advance'", 51)),
        q("audit page: actor", audit("actor = 'alice'", 51)),
        q(
            "audit page: rollout",
            audit(&format!("rollout_id = {}", f.mid_rollout), 51),
        ),
        q(
            "audit page: time range, its first seq (one lookup in audit_log_at)",
            format!(
                "SELECT seq AS s FROM audit_log WHERE at >= '{}' ORDER BY at LIMIT 1",
                f.since
            ),
        ),
        q(
            "audit page: time range, its last seq",
            format!(
                "SELECT seq AS s FROM audit_log WHERE at < '{}' ORDER BY at DESC LIMIT 1",
                f.until
            ),
        ),
        q(
            "audit page: time range, the page (read along seq within the range)",
            audit(
                &format!(
                    "(at || '') >= '{}' AND (at || '') < '{}' AND seq >= {} AND seq <= {}",
                    f.since, f.until, f.since_seq, f.until_seq
                ),
                51,
            ),
        ),
        q(
            "audit page: action + actor",
            audit("action = 'rollback' AND actor = 'alice'", 51),
        ),
        q(
            "audit page: action, cursor halfway",
            audit(
                &format!("action = 'advance' AND seq < {}", f.middle_seq),
                51,
            ),
        ),
        q(
            "API: all rollouts",
            format!(
                "SELECT * FROM rollouts {ROLLOUT_WHERE} ORDER BY id DESC LIMIT 9223372036854775807 OFFSET 0"
            ),
        ),
        q(
            "API: a page of 100 rollouts",
            format!("SELECT * FROM rollouts {ROLLOUT_WHERE} ORDER BY id DESC LIMIT 101 OFFSET 0"),
        ),
        q(
            "API: audit, action (limit 100)",
            audit("action = 'advance'", 101),
        ),
    ]
}

/// A query's plan and its time in this process (median of 9 runs, rows
/// fetched and decoded by sqlx, nothing rendered).
struct Planned {
    what: String,
    plan: Vec<String>,
    median_ms: f64,
    rows: usize,
}

async fn plan(store: &Store, q: &Query) -> anyhow::Result<Planned> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {}", q.sql)))
        .fetch_all(store.pool())
        .await?;
    let mut depth: HashMap<i64, usize> = HashMap::new();
    let mut lines = Vec::new();
    for r in &rows {
        let id: i64 = r.try_get(0)?;
        let parent: i64 = r.try_get(1)?;
        let detail: String = r.try_get(3)?;
        let d = depth.get(&parent).map_or(0, |d| d + 1);
        depth.insert(id, d);
        lines.push(format!("{}{detail}", "  ".repeat(d)));
    }
    let mut times = Vec::new();
    let mut count = 0;
    for _ in 0..9 {
        let t = Instant::now();
        count = sqlx::query(sqlx::AssertSqlSafe(q.sql.clone()))
            .fetch_all(store.pool())
            .await?
            .len();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(Planned {
        what: q.what.clone(),
        plan: lines,
        median_ms: times[times.len() / 2],
        rows: count,
    })
}

/// What the overview's plan list costs when its 5 s cache runs out: reads
/// every plan file and parses it. Median of 5, in this process.
fn plan_list_ms(dir: &Path) -> (usize, f64) {
    let mut times = Vec::new();
    let mut files = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let loaded = crate::plan::load_dir(dir).unwrap_or_default();
        files = loaded
            .iter()
            .filter(|f| crate::plan::Plan::parse(&f.name, &f.text).is_ok())
            .count();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    (files, times[times.len() / 2])
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_string()
}

/// Everything measured on one data set.
struct SetResult {
    set: DataSet,
    /// Plan files, and the time to read and parse them all.
    plan_list: (usize, f64),
    /// The 1-minute load average before the server started.
    load_before: String,
    facts: Facts,
    measured: Vec<(Endpoint, Measured)>,
    plans: Vec<Planned>,
    rss_idle_mb: f64,
    peak_mb: f64,
    start_secs: f64,
}

async fn run_set(
    set: &DataSet,
    full: bool,
    args: &DashboardArgs,
    log: &Path,
) -> anyhow::Result<SetResult> {
    eprintln!("measuring {}", set.label());
    let store = Store::connect(&set.url()).await?;
    let f = facts(set, &store).await?;
    let first_page: Vec<i64> = store
        .list_rollouts(&RolloutFilter {
            holding_first: true,
            limit: Some(50),
            ..RolloutFilter::default()
        })
        .await?
        .iter()
        .map(|r| r.id.0)
        .collect();
    let since_hour = timestamp(Utc::now() - TimeDelta::hours(1));
    let mut plans = Vec::new();
    if full {
        for q in queries(&f, &first_page, &since_hour) {
            plans.push(plan(&store, &q).await?);
        }
    }
    let plan_list = plan_list_ms(&set.plans);
    let load_before = load_average();
    let t = Instant::now();
    let server = ServerProcess::start(set, log).await?;
    let start_secs = t.elapsed().as_secs_f64();
    let rss_idle_mb = server.memory_mb().0;
    drop(server);
    let endpoints = endpoints("", &f, &store, full).await?;
    store.close().await;
    let mut measured = Vec::new();
    for e in endpoints {
        // Let an overloaded endpoint's backlog drain before the next one.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let m = measure(set, log, &e, args.rate, args.seconds).await?;
        measured.push((e, m));
    }
    let peak_mb = measured
        .iter()
        .flat_map(|(_, m)| [Some(m.peak_mb), m.low.as_ref().map(|l| l.peak_mb)])
        .flatten()
        .fold(0.0, f64::max);
    Ok(SetResult {
        set: set.clone(),
        plan_list,
        load_before,
        facts: f,
        measured,
        plans,
        rss_idle_mb,
        peak_mb,
        start_secs,
    })
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0} ms")
    } else {
        format!("{v:.1} ms")
    }
}

fn verdict(p99: f64, target: Option<f64>) -> String {
    match target {
        Some(t) if p99 < t => format!("< {t:.0} ms: met"),
        Some(t) => format!("< {t:.0} ms: **missed**"),
        None => "—".into(),
    }
}

fn report(
    args: &DashboardArgs,
    seeding: &[(String, Seeding)],
    results: &[SetResult],
    command: &str,
) -> String {
    let mut t = String::new();
    let main = &results[0];
    let f = &main.facts;
    t.push_str(&format!(
        "### Dashboard and API under load ({})\n\n\
         `{command}`\n\n\
         Data set: {} rollouts of the seed plan's shape ({} holding their function), \
         {} audit entries (hash chain verified), {} chart points ({} for the heaviest rollout), \
         {} watch memories; SQLite file {:.0} MB. \
         Server: `rollgate serve` in its own process, watcher off (`--watch-interval 0`), \
         reconciler on; answering and idle in {:.1} s (the start-up verification of the audit chain runs first, and every measurement waits for it). Load: `rollgate bench-load` in a third process, \
         {} requests/s open loop for {} s per endpoint after 2 s of warm-up, latency from each \
         request's due time, keep-alive connections on loopback.\n\n",
        main.set.label(),
        f.rollouts.len(),
        f.holding,
        thousands(f.audit_entries as usize),
        thousands(f.points as usize),
        f.heavy_points,
        f.memories,
        f.file_mb,
        main.start_secs,
        args.rate,
        args.seconds,
    ));
    t.push_str("Seeding:\n\n");
    for (label, s) in seeding {
        if s.reused {
            t.push_str(&format!("- {label}: reused\n"));
        } else {
            t.push_str(&format!(
                "- {label}: rollouts through the service {:.0} s, chart points {:.0} s, audit appends {:.0} s{}\n",
                s.rollouts_secs,
                s.points_secs,
                s.audit_secs,
                s.verified
                    .map(|(ok, n)| format!(
                        ", chain of {} entries verified ({}) in {:.0} s",
                        thousands(n as usize),
                        if ok { "ok" } else { "BROKEN" },
                        s.verify_secs
                    ))
                    .unwrap_or_default()
            ));
        }
    }
    t.push_str(
        "\n| endpoint | URL | matching rows | p50 | p90 | p99 | max | errors | req/s served | body | server CPU/request | server RSS after / peak | p99 target |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    );
    for (e, m) in &main.measured {
        t.push_str(&row(e, m));
    }
    t.push_str(&format!(
        "\nEach endpoint (and each 5 req/s run) has a fresh server, so its RSS is its own. \
         Server RSS: {:.0} MB idle after start-up, highest peak (VmHWM) of any endpoint {:.0} MB (target < 100 MB: {}). \
         Load average before the run: {}.\n\n",
        main.rss_idle_mb,
        main.peak_mb,
        if main.peak_mb < 100.0 { "met" } else { "**missed**" },
        main.load_before,
    ));
    t.push_str("The overview's \"start a rollout\" list reads and parses every plan file, at most once every 5 s (the service caches the valid names); one refresh in this process takes:\n\n| data set | plan files | read + parse all |\n|---|---|---|\n");
    for r in results.iter().rev() {
        t.push_str(&format!(
            "| {} | {} | {} |\n",
            r.set.label(),
            r.plan_list.0,
            ms(r.plan_list.1)
        ));
    }
    t.push('\n');
    if results.len() > 1 {
        t.push_str("#### Scaling\n\nThe same endpoints on smaller data sets, in the same run:\n\n| endpoint |");
        let smallest_first: Vec<&SetResult> = results.iter().rev().collect();
        for r in &smallest_first {
            t.push_str(&format!(" {} p50 / p99 |", r.set.label()));
        }
        t.push_str("\n|---|");
        for _ in results {
            t.push_str("---|");
        }
        t.push('\n');
        for (e, _) in &main.measured {
            let cells: Vec<String> = smallest_first
                .iter()
                .map(|r| {
                    r.measured.iter().find(|(x, _)| x.name == e.name).map_or(
                        "—".into(),
                        |(x, m)| {
                            format!(
                                "{} / {}{}{}",
                                ms(m.load.p50_ms),
                                ms(m.load.p99_ms),
                                m.low
                                    .as_ref()
                                    .map(|l| format!(
                                        " saturated; at {LOW_RATE} req/s {} / {}",
                                        ms(l.load.p50_ms),
                                        ms(l.load.p99_ms)
                                    ))
                                    .unwrap_or_default(),
                                x.matching
                                    .map(|n| format!(" ({} rows)", thousands(n as usize)))
                                    .unwrap_or_default()
                            )
                        },
                    )
                })
                .collect();
            if cells.iter().filter(|c| *c != "—").count() > 1 {
                t.push_str(&format!("| {} | {} |\n", e.name, cells.join(" | ")));
            }
        }
        t.push_str(
            "\n| data set | server RSS idle | highest peak of an endpoint |\n|---|---|---|\n",
        );
        for r in &smallest_first {
            t.push_str(&format!(
                "| {} | {:.0} MB | {:.0} MB |\n",
                r.set.label(),
                r.rss_idle_mb,
                r.peak_mb
            ));
        }
        t.push('\n');
    }
    t.push_str("#### Query plans\n\n`EXPLAIN QUERY PLAN` of the store's SQL behind each page (values of this data set inlined), and the query's own time in the benchmark process (median of 9, rows fetched and decoded, nothing rendered):\n\n");
    for p in &main.plans {
        t.push_str(&format!(
            "- {} — {} rows, {}:\n\n```\n{}\n```\n",
            p.what,
            p.rows,
            ms(p.median_ms),
            p.plan.join("\n")
        ));
    }
    t
}

fn row(e: &Endpoint, m: &Measured) -> String {
    let l = &m.load;
    let errors = if l.not_sent > 0 {
        format!("{} + {} not sent", l.failed + l.bad_status, l.not_sent)
    } else {
        (l.failed + l.bad_status).to_string()
    };
    let mut out = format!(
        "| {} | `{}` | {} | {} | {} | {} | {} | {} | {:.0} | {:.0} kB | {:.1} ms | {:.0} / {:.0} MB | {} |\n",
        e.name,
        e.shown,
        e.matching
            .map(|n| thousands(n as usize))
            .unwrap_or_else(|| "—".into()),
        ms(l.p50_ms),
        ms(l.p90_ms),
        ms(l.p99_ms),
        ms(l.max_ms),
        errors,
        l.achieved_rate,
        l.mean_bytes / 1000.0,
        m.server_cpu_ms_per_request,
        m.rss_mb,
        m.peak_mb,
        verdict(l.p99_ms, e.target_ms)
    );
    if let Some(low) = &m.low {
        let l = &low.load;
        out.push_str(&format!(
            "| ↳ same, at {LOW_RATE} req/s (saturated at the target rate) | | | {} | {} | {} | {} | {} | {:.0} | | {:.1} ms | {:.0} / {:.0} MB | {} |\n",
            ms(l.p50_ms),
            ms(l.p90_ms),
            ms(l.p99_ms),
            ms(l.max_ms),
            l.failed + l.bad_status + l.not_sent,
            l.achieved_rate,
            low.server_cpu_ms_per_request,
            low.rss_mb,
            low.peak_mb,
            verdict(l.p99_ms, e.target_ms)
        ));
    }
    out
}

/// Seeds (or reuses) the data sets, measures every endpoint on each, and
/// prints the report as Markdown.
pub async fn run(args: DashboardArgs) -> anyhow::Result<()> {
    let temp;
    let dir = match &args.reuse {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let set = |rollouts: usize, audit: usize, plans: usize| DataSet {
        rollouts,
        audit,
        db: dir.join(format!("r{rollouts}-a{audit}.db")),
        plans: dir.join(format!("plans-{plans}")),
    };
    let main = set(args.rollouts, args.audit_entries, args.rollouts);
    let tenth_audit = set(args.rollouts, args.audit_entries / 10, args.rollouts);
    let small = set(
        args.rollouts / 10,
        args.audit_entries / 10,
        args.rollouts / 10,
    );
    let seeding = prepare(&main, &tenth_audit, args.scaling.then_some(&small)).await?;
    let log = dir.join("serve.log");
    let mut results = vec![run_set(&main, true, &args, &log).await?];
    if args.scaling {
        results.push(run_set(&tenth_audit, false, &args, &log).await?);
        results.push(run_set(&small, false, &args, &log).await?);
    }
    let command = format!(
        "rollgate bench --dashboard --dashboard-rollouts {} --audit-entries {} --rate {} --seconds {}{}{}",
        args.rollouts,
        args.audit_entries,
        args.rate,
        args.seconds,
        if args.scaling { "" } else { " --no-scaling" },
        args.reuse
            .as_ref()
            .map(|d| format!(" --reuse {}", d.display()))
            .unwrap_or_default()
    );
    let text = report(&args, &seeding, &results, &command);
    println!("{text}");
    if let Some(path) = &args.out {
        std::fs::write(path, &text)?;
    }
    Ok(())
}
