//! One error type for the web layer, turned into a status and a JSON body
//! `{"error": {"code", "message"}}` in one place. Internal causes are logged,
//! never sent to the client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::domain::InputError;
use crate::service::ServiceError;
use crate::store::StoreError;

#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    /// No valid credential (401).
    Unauthorized(String),
    /// Signed in, but the role does not allow it (403).
    Forbidden(String),
    /// Too many attempts (429).
    TooMany(String),
    NotFound(String),
    Conflict(String),
    Unprocessable {
        code: &'static str,
        message: String,
        details: Option<serde_json::Value>,
    },
    Unavailable(String),
    Internal(String),
}

impl ApiError {
    /// What the client is told.
    pub fn message(&self) -> String {
        self.parts().2
    }

    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m.clone()),
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", m.clone()),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m.clone()),
            ApiError::TooMany(m) => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                m.clone(),
            ),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m.clone()),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m.clone()),
            ApiError::Unprocessable { code, message, .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, code, message.clone())
            }
            ApiError::Unavailable(m) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "target_unavailable",
                m.clone(),
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; the server log has the details".to_string(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(%cause, "internal error");
        }
        let (status, code, message) = self.parts();
        let mut error = json!({ "code": code, "message": message });
        if let ApiError::Unprocessable {
            details: Some(d), ..
        } = &self
        {
            error["details"] = d.clone();
        }
        (status, axum::Json(json!({ "error": error }))).into_response()
    }
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> Self {
        ApiError::BadRequest(e.0)
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound(m) => ApiError::NotFound(m),
            ServiceError::BadInput(m) => ApiError::BadRequest(m),
            ServiceError::Refused(r) => ApiError::Conflict(r.to_string()),
            ServiceError::Unprocessable(m) => ApiError::Unprocessable {
                code: "write_refused",
                message: m,
                details: None,
            },
            ServiceError::PlanInvalid { plan, errors } => ApiError::Unprocessable {
                code: "invalid_plan",
                message: format!("plan {plan} is invalid: {}", errors.join("; ")),
                details: Some(json!(errors)),
            },
            ServiceError::Unavailable(m) => ApiError::Unavailable(m),
            ServiceError::Forbidden(m) => ApiError::Forbidden(m),
            ServiceError::PreflightFailed(report) => ApiError::Unprocessable {
                code: "preflight_failed",
                message: e_message(&report),
                details: serde_json::to_value(&*report).ok(),
            },
            ServiceError::Store(e) => e.into(),
        }
    }
}

fn e_message(report: &crate::preflight::Report) -> String {
    ServiceError::PreflightFailed(Box::new(report.clone())).to_string()
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::VersionConflict { .. }
            | StoreError::FunctionBusy { .. }
            | StoreError::UserExists(_)
            | StoreError::TokenExists(_)
            | StoreError::ApprovalPending { .. }
            | StoreError::LastAdmin => ApiError::Conflict(e.to_string()),
            StoreError::NoSuchUser(_) => ApiError::NotFound(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}
