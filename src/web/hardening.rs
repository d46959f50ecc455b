//! What every answer carries and every request is held to, whoever sends
//! it: security headers (a CSP that allows no inline script, no framing, no
//! MIME sniffing, no referrer leaving the site), a body size limit and a
//! time limit for a handler to answer.

use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Largest request body accepted (a plan file is a few KB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Over HTTPS: browsers use nothing else for this host for a year.
pub const HSTS: &str = "max-age=31536000";

/// How long a handler may take to answer (a command's flag write goes on
/// in the background after this; streaming bodies are not cut).
pub const HANDLER_TIMEOUT: Duration = Duration::from_secs(60);

/// Scripts, styles and everything else from this origin only; no inline
/// script (the pages have none: chart data ride in `application/json`
/// blocks, which are not run), no plugins, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn headers() -> [(HeaderName, HeaderValue); 5] {
    [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ]
}

/// Adds the security headers to every answer, and answers 503 when a
/// handler has not answered within `HANDLER_TIMEOUT`.
pub async fn secure(req: Request, next: Next) -> Response {
    secure_within(HANDLER_TIMEOUT, req, next).await
}

/// [`secure`] with another time limit (tests use a short one).
pub async fn secure_within(limit: Duration, req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let mut resp = match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            let message = format!(
                "the server did not answer within {}s; a command it was running goes on in the background",
                limit.as_secs_f64()
            );
            tracing::warn!(api, "{message}");
            super::error::ApiError::Unavailable(message).into_response()
        }
    };
    let h = resp.headers_mut();
    for (name, value) in headers() {
        h.entry(name).or_insert(value);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_no_inline_script_and_no_framing() {
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-inline"));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-eval"));
        assert!(CONTENT_SECURITY_POLICY.contains("frame-ancestors 'none'"));
        assert_eq!(headers().len(), 5);
    }
}
