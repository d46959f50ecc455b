//! Webhook notifications: a JSON POST with a Slack-compatible `text` field,
//! retried with backoff in the background. Delivery never blocks or fails
//! the decision it reports (a rollback is done whether or not anyone hears).

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use serde_json::{Value, json};

#[derive(Clone)]
pub struct Notifier {
    http: reqwest::Client,
    attempts: usize,
}

impl Default for Notifier {
    fn default() -> Self {
        Notifier {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            attempts: 4,
        }
    }
}

/// The document every webhook receives.
pub fn payload(
    event: &str,
    rollout: i64,
    plan: &str,
    function: &str,
    text: &str,
    detail: Value,
) -> Value {
    json!({
        "text": format!("rollgate: {text}"),
        "event": event,
        "rollout": rollout,
        "plan": plan,
        "function": function,
        "detail": detail,
    })
}

impl Notifier {
    /// Sends `body` to every URL in the background.
    pub fn send(&self, urls: &[String], body: Value) {
        for url in urls {
            let http = self.http.clone();
            let url = url.clone();
            let body = body.clone();
            let attempts = self.attempts;
            tokio::spawn(async move {
                let post = || async {
                    http.post(&url)
                        .json(&body)
                        .send()
                        .await
                        .and_then(reqwest::Response::error_for_status)
                };
                let result = post
                    .retry(
                        ExponentialBuilder::default()
                            .with_min_delay(Duration::from_millis(200))
                            .with_max_delay(Duration::from_secs(5))
                            .with_max_times(attempts.saturating_sub(1))
                            .with_jitter(),
                    )
                    .await;
                if let Err(e) = result {
                    // Webhook URLs often carry tokens: log the host only.
                    let host = reqwest::Url::parse(&url)
                        .ok()
                        .and_then(|u| u.host_str().map(str::to_string))
                        .unwrap_or_default();
                    tracing::warn!(%host, error = %e.without_url(), "webhook delivery failed");
                }
            });
        }
    }
}
