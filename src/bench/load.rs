//! `rollgate bench-load`: a small open-loop HTTP load generator, run by the
//! dashboard benchmark as a process of its own (so its CPU is not the
//! server's). Requests are due at fixed intervals (`rate` a second) whether
//! or not earlier ones have been answered, and each latency is measured
//! from the time the request was due, not from when it could be sent: a
//! stalled server shows up as high latency for every request it delayed
//! (no coordinated omission). Connections are kept alive and reused.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, Semaphore};

/// What `bench-load` is asked to do.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Requested in turn, one per due time.
    pub urls: Vec<String>,
    /// Requests a second.
    pub rate: f64,
    /// Measured duration.
    pub seconds: f64,
    /// Unmeasured lead-in at the same rate (connections, caches).
    pub warmup_seconds: f64,
    /// Most requests in flight at once; a due request waits for a slot
    /// (and its wait counts in its latency).
    pub max_in_flight: usize,
    /// A request not answered in this time counts as an error.
    pub timeout: Duration,
}

/// What `bench-load` prints (one JSON object on stdout).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LoadResult {
    /// Requests due in the measured period.
    pub requests: usize,
    /// Answered with a 2xx status and a body read in full.
    pub ok: usize,
    /// Answered with another status.
    pub bad_status: usize,
    /// Connection errors and timeouts.
    pub failed: usize,
    /// Due but never sent: the server still had `max_in_flight` requests
    /// in hand when the measured period plus one timeout was over.
    pub not_sent: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    /// Answered requests a second over the measured period (including the
    /// time the last answers took to arrive).
    pub achieved_rate: f64,
    /// Mean response body size.
    pub mean_bytes: f64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
    /// Requests answered during the warm-up (for the server's CPU per request).
    pub warmup_answered: usize,
}

#[derive(Default)]
struct Tally {
    latencies_ms: Vec<f64>,
    ok: usize,
    bad_status: usize,
    failed: usize,
    not_sent: usize,
    bytes: u64,
    first_error: Option<String>,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    super::percentile(sorted, q)
}

/// Runs the warm-up and then the measured period.
pub async fn run(spec: &LoadSpec) -> anyhow::Result<LoadResult> {
    anyhow::ensure!(!spec.urls.is_empty(), "no URL to load");
    anyhow::ensure!(spec.rate > 0.0, "the rate must be positive");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(spec.max_in_flight)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .timeout(spec.timeout)
        .build()?;
    let mut warmup_answered = 0;
    if spec.warmup_seconds > 0.0 {
        let warmup = phase(&client, spec, spec.warmup_seconds).await;
        warmup_answered = warmup.ok + warmup.bad_status;
    }
    let started = Instant::now();
    let tally = phase(&client, spec, spec.seconds).await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut sorted = tally.latencies_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let answered = tally.ok + tally.bad_status;
    Ok(LoadResult {
        requests: tally.latencies_ms.len(),
        ok: tally.ok,
        bad_status: tally.bad_status,
        failed: tally.failed,
        not_sent: tally.not_sent,
        p50_ms: percentile(&sorted, 50.0),
        p90_ms: percentile(&sorted, 90.0),
        p99_ms: percentile(&sorted, 99.0),
        max_ms: sorted.last().copied().unwrap_or_default(),
        mean_ms: if sorted.is_empty() {
            0.0
        } else {
            sorted.iter().sum::<f64>() / sorted.len() as f64
        },
        achieved_rate: answered as f64 / elapsed.max(f64::EPSILON),
        mean_bytes: if tally.ok == 0 {
            0.0
        } else {
            tally.bytes as f64 / tally.ok as f64
        },
        first_error: tally.first_error,
        warmup_answered,
    })
}

/// Sends `rate × seconds` requests at their due times; returns once every
/// one has been answered or has failed.
async fn phase(client: &reqwest::Client, spec: &LoadSpec, seconds: f64) -> Tally {
    let count = (spec.rate * seconds).round().max(1.0) as usize;
    let interval = Duration::from_secs_f64(1.0 / spec.rate);
    let slots = Arc::new(Semaphore::new(spec.max_in_flight.max(1)));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let start = tokio::time::Instant::now() + Duration::from_millis(10);
    // A request still waiting for a slot after this is given up (bounded
    // run time on a saturated server).
    let give_up = start + Duration::from_secs_f64(seconds) + spec.timeout;
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due).await;
        let due = due.into_std();
        let url = spec.urls[i % spec.urls.len()].clone();
        let client = client.clone();
        let slots = slots.clone();
        let tally = tally.clone();
        tasks.push(tokio::spawn(async move {
            let slot = tokio::time::timeout_at(give_up, slots.acquire()).await;
            let Ok(Ok(_slot)) = slot else {
                let mut t = tally.lock().await;
                t.not_sent += 1;
                t.first_error
                    .get_or_insert_with(|| format!("{url}: not sent, the server was saturated"));
                return;
            };
            let outcome = match client.get(&url).send().await {
                Ok(resp) => {
                    let status = resp.status();
                    match resp.bytes().await {
                        Ok(body) if status.is_success() => Ok(body.len()),
                        Ok(_) => Err((false, format!("HTTP {status} from {url}"))),
                        Err(e) => Err((true, format!("{url}: {e}"))),
                    }
                }
                Err(e) => Err((true, format!("{url}: {e}"))),
            };
            let latency = due.elapsed().as_secs_f64() * 1000.0;
            let mut t = tally.lock().await;
            t.latencies_ms.push(latency);
            match outcome {
                Ok(bytes) => {
                    t.ok += 1;
                    t.bytes += bytes as u64;
                }
                Err((failed, e)) => {
                    if failed {
                        t.failed += 1;
                    } else {
                        t.bad_status += 1;
                    }
                    t.first_error.get_or_insert(e);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut t = tally.lock().await;
    std::mem::take(&mut *t)
}

/// The `bench-load` subcommand: runs and prints the result as JSON.
pub async fn main(spec: LoadSpec) -> anyhow::Result<()> {
    let result = run(&spec).await?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts only: timings are never asserted.
    #[tokio::test]
    async fn every_due_request_is_sent_once_and_counted() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/ok", axum::routing::get(|| async { "hello" }))
            .route(
                "/missing",
                axum::routing::get(|| async { axum::http::StatusCode::NOT_FOUND }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let result = run(&LoadSpec {
            urls: vec![
                format!("http://{addr}/ok"),
                format!("http://{addr}/missing"),
            ],
            rate: 100.0,
            seconds: 0.2,
            warmup_seconds: 0.05,
            max_in_flight: 4,
            timeout: Duration::from_secs(10),
        })
        .await
        .unwrap();
        assert_eq!(result.requests, 20);
        assert_eq!(result.ok, 10);
        assert_eq!(result.bad_status, 10);
        assert_eq!((result.failed, result.not_sent), (0, 0));
        assert_eq!(result.mean_bytes, 5.0);
        assert!(result.warmup_answered >= 1);
        assert!(result.p50_ms <= result.p99_ms && result.p99_ms <= result.max_ms);
        assert!(result.first_error.unwrap().contains("404"));
    }
}
