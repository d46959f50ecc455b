//! The CLI's HTTP client for a running rollgate server, and the human
//! renderings of what it returns.

use std::fmt::Write as _;

use serde_json::Value;

use crate::web::views::{AuditEntryView, AuditPage, RolloutView};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach rollgate at {url} (is `rollgate serve` running? set --server or ROLLGATE_SERVER)"
    )]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{message} (HTTP {status}, {code})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
}

pub struct Client {
    base: String,
    http: reqwest::Client,
}

/// A response: its status and JSON body.
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Client {
    pub fn new(server: &str) -> Self {
        Client {
            base: server.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn get(&self, path: &str) -> Result<Answer, ClientError> {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let url = self.url(path);
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|source| ClientError::Unreachable { url, source })?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        if status >= 400 {
            return Err(api_error(
                status,
                serde_json::from_str(&text).unwrap_or(Value::Null),
            ));
        }
        Ok(text)
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Answer, ClientError> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Answer, ClientError> {
        let resp = req
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                url: self.base.clone(),
                source,
            })?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let body: Value = serde_json::from_str(&text)
            .map_err(|_| ClientError::Protocol(format!("HTTP {status}: {text}")))?;
        if status >= 400 {
            return Err(api_error(status, body));
        }
        Ok(Answer { status, body })
    }
}

fn api_error(status: u16, body: Value) -> ClientError {
    let err = &body["error"];
    ClientError::Api {
        status,
        code: err["code"].as_str().unwrap_or("error").to_string(),
        message: err["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| body.to_string()),
    }
}

fn flags_line(flags: &std::collections::BTreeMap<String, String>) -> String {
    flags
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Several lines describing one rollout.
pub fn render_rollout(r: &RolloutView) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "rollout #{}  plan {}  function {}",
        r.id, r.plan, r.target_function
    );
    let phases: Vec<String> = r
        .phases
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if i == r.phase_index {
                format!("[{p}]")
            } else {
                p.clone()
            }
        })
        .collect();
    let _ = writeln!(
        out,
        "  state   {}  phase {} ({}/{})  version {}",
        r.state.as_str(),
        r.phase_name,
        r.phase_index,
        r.phases.len().saturating_sub(1),
        r.version
    );
    let _ = writeln!(out, "  phases  {}", phases.join(" → "));
    let _ = writeln!(out, "  desired {}", flags_line(&r.desired_flags));
    if let Some(observed) = &r.observed_flags {
        let _ = writeln!(out, "  on AWS  {}", flags_line(observed));
    }
    if r.write_pending {
        let _ = writeln!(out, "  write   pending (rollgate keeps retrying)");
    }
    if let Some(e) = &r.last_error {
        let _ = writeln!(out, "  error   {e}");
    }
    if let Some(next) = &r.next_phase {
        let _ = writeln!(out, "  next    advance → {next}");
    }
    out
}

/// One line per rollout.
pub fn render_rollout_row(r: &RolloutView) -> String {
    format!(
        "#{:<4} {:<12} {:<10} {:<24} {:<28} v{}",
        r.id,
        r.state.as_str(),
        r.phase_name,
        r.plan,
        r.target_function,
        r.version
    )
}

/// One line per audit entry.
pub fn render_audit_entry(e: &AuditEntryView) -> String {
    let mut line = format!(
        "{:>5} {} {:<18} {:<12} {:<16}",
        e.seq, e.at, e.actor, e.action, e.outcome
    );
    if let Some(id) = e.rollout_id {
        let _ = write!(line, " rollout #{id}");
    }
    if let Some(p) = &e.phase {
        let _ = write!(line, " phase {p}");
    }
    if let (Some(before), Some(after)) = (&e.flags_before, &e.flags_after) {
        let changed: Vec<String> = after
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(v))
            .map(|(k, v)| {
                format!(
                    "{k}: {}→{v}",
                    before.get(k).map_or("(unset)", String::as_str)
                )
            })
            .collect();
        if !changed.is_empty() {
            let _ = write!(line, " [{}]", changed.join(", "));
        }
    }
    if let Some(r) = &e.reason {
        let _ = write!(line, " — {r}");
    }
    line
}

pub fn parse_rollout(body: &Value) -> Result<RolloutView, ClientError> {
    serde_json::from_value(body.clone()).map_err(|e| ClientError::Protocol(e.to_string()))
}

pub fn parse_audit_page(body: &Value) -> Result<AuditPage, ClientError> {
    serde_json::from_value(body.clone()).map_err(|e| ClientError::Protocol(e.to_string()))
}
