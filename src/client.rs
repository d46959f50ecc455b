//! A typed HTTP client for a running rollgate server: the CLI's only way in.
//! It sends and receives the API's own request and response types
//! (`web::views`), so the two cannot drift apart; queries are encoded by
//! serde, never by hand.

use std::io::Write;

use futures_util::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::audit::VerifyReport;
use crate::domain::RolloutId;
use crate::web::views::{
    AuditPage, AuditQuery, CommandRequest, RolloutList, RolloutQuery, RolloutView, StartRequest,
    StartResponse,
};

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
    #[error("{0}")]
    Output(#[from] std::io::Error),
}

/// A command on a rollout, by its API path segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Advance,
    Pause,
    Resume,
    Rollback,
    Abandon,
}

impl Step {
    pub fn path(self) -> &'static str {
        match self {
            Step::Advance => "advance",
            Step::Pause => "pause",
            Step::Resume => "resume",
            Step::Rollback => "rollback",
            Step::Abandon => "abandon",
        }
    }
}

/// A response: its status and decoded body.
pub struct Answer<T> {
    pub status: u16,
    pub body: T,
}

pub struct Client {
    base: String,
    http: reqwest::Client,
    /// Sent as `Authorization: Bearer …` on every request.
    token: Option<String>,
}

impl Client {
    /// A client of the server at `server` (http:// or https://; HTTPS is
    /// verified against the system's trusted certificates).
    pub fn new(server: &str) -> Self {
        Client {
            base: server.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            token: None,
        }
    }

    /// A client that also trusts the CA certificate in `ca_pem` (a PEM file),
    /// for a server whose certificate a private CA signed.
    pub fn with_ca(server: &str, ca_pem: &std::path::Path) -> Result<Self, ClientError> {
        let pem = std::fs::read(ca_pem).map_err(|e| {
            ClientError::Protocol(format!(
                "cannot read the CA certificate {}: {e}",
                ca_pem.display()
            ))
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            ClientError::Protocol(format!(
                "{} holds no PEM certificate: {e}",
                ca_pem.display()
            ))
        })?;
        let http = reqwest::Client::builder()
            .tls_certs_merge(certs)
            .build()
            .map_err(|e| ClientError::Protocol(format!("cannot set up TLS: {e}")))?;
        Ok(Client {
            base: server.trim_end_matches('/').to_string(),
            http,
            token: None,
        })
    }

    /// Authenticates every request with an API token.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        self
    }

    fn authed(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    pub async fn start(&self, req: &StartRequest) -> Result<Answer<StartResponse>, ClientError> {
        self.send(self.http.post(self.url("/api/v1/rollouts")).json(req))
            .await
    }

    /// `POST /api/v1/plans/{name}/preflight`.
    pub async fn preflight(
        &self,
        name: &str,
    ) -> Result<Answer<crate::preflight::Report>, ClientError> {
        let path = format!(
            "/api/v1/plans/{}/preflight",
            url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
        );
        self.send(self.http.post(self.url(&path))).await
    }

    pub async fn rollout(&self, id: RolloutId) -> Result<Answer<RolloutView>, ClientError> {
        self.send(self.http.get(self.url(&format!("/api/v1/rollouts/{id}"))))
            .await
    }

    pub async fn rollouts(&self, q: &RolloutQuery) -> Result<RolloutList, ClientError> {
        let answer = self
            .send(self.http.get(self.url("/api/v1/rollouts")).query(q))
            .await?;
        Ok(answer.body)
    }

    pub async fn command(
        &self,
        id: RolloutId,
        step: Step,
        req: &CommandRequest,
    ) -> Result<Answer<RolloutView>, ClientError> {
        let path = format!("/api/v1/rollouts/{id}/{}", step.path());
        self.send(self.http.post(self.url(&path)).json(req)).await
    }

    pub async fn audit_page(&self, q: &AuditQuery) -> Result<AuditPage, ClientError> {
        let answer = self
            .send(self.http.get(self.url("/api/v1/audit")).query(q))
            .await?;
        Ok(answer.body)
    }

    pub async fn verify(&self) -> Result<VerifyReport, ClientError> {
        let answer = self
            .send(self.http.get(self.url("/api/v1/audit/verify")))
            .await?;
        Ok(answer.body)
    }

    /// Streams an export to `out` as it arrives (the log is never held
    /// whole in memory, here or on the server).
    pub async fn export(&self, q: &AuditQuery, out: &mut impl Write) -> Result<(), ClientError> {
        let url = self.url("/api/v1/audit/export");
        let resp = self
            .authed(self.http.get(&url).query(q))
            .send()
            .await
            .map_err(|source| ClientError::Unreachable { url, source })?;
        let status = resp.status().as_u16();
        if status >= 400 {
            let text = resp.text().await.unwrap_or_default();
            return Err(api_error(status, &text));
        }
        let mut chunks = resp.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| ClientError::Protocol(e.to_string()))?;
            out.write_all(&chunk)?;
        }
        out.flush()?;
        Ok(())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<Answer<T>, ClientError> {
        let resp = self
            .authed(req)
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
        if status >= 400 {
            return Err(api_error(status, &text));
        }
        let body = serde_json::from_str(&text)
            .map_err(|e| ClientError::Protocol(format!("HTTP {status}: {e}: {text}")))?;
        Ok(Answer { status, body })
    }
}

/// The API's error body, or the raw text when it is not one.
fn api_error(status: u16, text: &str) -> ClientError {
    #[derive(serde::Deserialize)]
    struct Body {
        error: Detail,
    }
    #[derive(serde::Deserialize)]
    struct Detail {
        code: String,
        message: String,
    }
    match serde_json::from_str::<Body>(text) {
        Ok(b) => ClientError::Api {
            status,
            code: b.error.code,
            message: b.error.message,
        },
        Err(_) => ClientError::Api {
            status,
            code: "error".into(),
            message: text.to_string(),
        },
    }
}

/// JSON for `--output json`.
pub fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}
