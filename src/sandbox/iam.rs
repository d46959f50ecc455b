//! IAM (awsQuery, `Version=2010-05-08`), for rollgate's preflight:
//!
//! - GetRole: every role name exists, with Path `/`, so the role behind an
//!   assumed-role caller (`arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`)
//!   can be found (`arn:aws:iam::ACCOUNT:role/NAME`).
//! - SimulatePrincipalPolicy: one `EvaluationResult` per action (as IAM now
//!   answers, whatever the number of resources), `EvalResourceName` the
//!   first resource or `*`, `ResourceSpecificResults` per resource when
//!   some are named; `allowed` unless the action is denied (`Faults::deny`),
//!   then `implicitDeny`. The `PolicySourceArn` must be a user, group or
//!   role: an assumed-role (STS) ARN is IAM's `InvalidInput`, as in AWS.
//!   `MaxItems` (default 100) and `Marker` page the results.

use axum::http::StatusCode;
use axum::response::Response;
use ciborium::Value as Cbor;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use super::query::{self, Fault, members, text};
use super::{ACCOUNT, Shared, access};

pub(super) const XMLNS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";

pub(super) const SCHEMA: query::Schema = query::Schema {
    xmlns: XMLNS,
    numbers: &["MaxItems", "MaxSessionDuration"],
    timestamps: &[],
    booleans: &[],
    lists: &[
        "ActionNames",
        "ResourceArns",
        "PolicyInputList",
        "PermissionsBoundaryPolicyInputList",
        "ContextEntries",
        "ContextKeyValues",
    ],
    text_members: &["ContextKeyValues"],
};

/// When every sandbox role was created (a fixed date: roles are not made).
const CREATED: f64 = 1_767_225_600.0; // 2026-01-01T00:00:00Z
const DEFAULT_MAX_ITEMS: usize = 100;

pub(super) fn dispatch(shared: &Shared, body: &[u8]) -> Response {
    let Some((op, input)) = query::parse(body, &SCHEMA) else {
        return query::answer(
            XMLNS,
            "",
            Err(Fault::sender(
                StatusCode::BAD_REQUEST,
                "MissingAction",
                "Missing Action parameter",
            )),
        );
    };
    let reply = input
        .map_err(|e| Fault::sender(StatusCode::BAD_REQUEST, "InvalidInput", e))
        .and_then(|input| run(shared, &op, &input));
    query::answer(XMLNS, &op, reply)
}

fn run(shared: &Shared, op: &str, input: &Json) -> Result<Cbor, Fault> {
    let w = shared.lock();
    let resource = match op {
        "GetRole" => str_of(input, "RoleName").map(role_arn),
        "SimulatePrincipalPolicy" => str_of(input, "PolicySourceArn").map(str::to_string),
        other => {
            return Err(Fault::sender(
                StatusCode::BAD_REQUEST,
                "InvalidAction",
                format!("Could not find operation {other} for version 2010-05-08"),
            ));
        }
    };
    let action = format!("iam:{op}");
    if w.faults.denied.contains(&action) {
        return Err(access_denied(&w.caller_arn, &action, resource.as_deref()));
    }
    match op {
        "GetRole" => get_role(input),
        _ => simulate_principal_policy(&w, input),
    }
}

/// IAM's AccessDenied: 403, `Sender`, AWS's message.
fn access_denied(caller: &str, action: &str, resource: Option<&str>) -> Fault {
    Fault::sender(
        StatusCode::FORBIDDEN,
        "AccessDenied",
        access::message(caller, action, resource),
    )
}

fn str_of<'a>(v: &'a Json, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Json::as_str)
}

fn strings<'a>(v: &'a Json, key: &str) -> Vec<&'a str> {
    v.get(key)
        .and_then(Json::as_array)
        .map(|a| a.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default()
}

fn role_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

/// An IAM unique id: `prefix` (`AROA` for roles, `AIDA` for users) and 17
/// characters derived from `name`, so the same name always has the same id.
pub(super) fn unique_id(prefix: &str, name: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let digest = Sha256::digest(name.as_bytes());
    let tail: String = digest
        .iter()
        .take(17)
        .map(|b| ALPHABET[usize::from(b % 32)] as char)
        .collect();
    format!("{prefix}{tail}")
}

pub(super) fn role_id(name: &str) -> String {
    unique_id("AROA", name)
}

/// IAM's role-name constraint: 1–64 of `[\w+=,.@-]`.
fn valid_role_name(name: &str) -> bool {
    (1..=64).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
}

fn get_role(input: &Json) -> Result<Cbor, Fault> {
    let Some(name) = str_of(input, "RoleName") else {
        return Err(Fault::validation(
            "Value null at 'roleName' failed to satisfy constraint: Member must not be null",
        ));
    };
    if !valid_role_name(name) {
        return Err(Fault::validation(&format!(
            "Value '{name}' at 'roleName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+"
        )));
    }
    let trust = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
            "Action": "sts:AssumeRole",
        }],
    });
    // IAM returns policy documents URL-encoded.
    let trust: String =
        url::form_urlencoded::byte_serialize(trust.to_string().as_bytes()).collect();
    Ok(members(vec![(
        "Role",
        members(vec![
            ("Path", text("/")),
            ("RoleName", text(name)),
            ("RoleId", text(&role_id(name))),
            ("Arn", text(&role_arn(name))),
            ("CreateDate", Cbor::Tag(1, Box::new(Cbor::Float(CREATED)))),
            ("AssumeRolePolicyDocument", text(&trust)),
            ("MaxSessionDuration", Cbor::Integer(3600.into())),
            ("RoleLastUsed", Cbor::Map(vec![])),
        ]),
    )]))
}

/// A principal the simulator takes: an IAM user, group or role ARN.
fn is_principal_arn(arn: &str) -> bool {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(_partition), Some("iam"), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    !account.is_empty()
        && ["user/", "group/", "role/"]
            .iter()
            .any(|kind| resource.strip_prefix(kind).is_some_and(|n| !n.is_empty()))
}

fn simulate_principal_policy(w: &super::World, input: &Json) -> Result<Cbor, Fault> {
    let Some(source) = str_of(input, "PolicySourceArn") else {
        return Err(Fault::validation(
            "Value null at 'policySourceArn' failed to satisfy constraint: Member must not be null",
        ));
    };
    if !is_principal_arn(source) {
        return Err(Fault::sender(
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            format!("Invalid Entity Arn: {source} does not clearly define entity type and name."),
        ));
    }
    let actions = strings(input, "ActionNames");
    if input.get("ActionNames").is_none() {
        return Err(Fault::validation(
            "Value null at 'actionNames' failed to satisfy constraint: Member must not be null",
        ));
    }
    if let Some(bad) = actions.iter().find(|a| !(3..=128).contains(&a.len())) {
        return Err(Fault::validation(&format!(
            "Value '{bad}' at 'actionNames' failed to satisfy constraint: Member must have length between 3 and 128"
        )));
    }
    let resources = strings(input, "ResourceArns");
    let max = match input.get("MaxItems").and_then(Json::as_f64) {
        None => DEFAULT_MAX_ITEMS,
        Some(n) if (1.0..=1000.0).contains(&n) && n.fract() == 0.0 => n as usize,
        Some(n) => {
            return Err(Fault::validation(&format!(
                "Value '{n}' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 1000"
            )));
        }
    };
    let start = match str_of(input, "Marker") {
        None => 0,
        Some(m) => m
            .strip_prefix("sim-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= actions.len())
            .ok_or_else(|| {
                Fault::sender(
                    StatusCode::BAD_REQUEST,
                    "InvalidInput",
                    format!("Invalid Marker: {m}"),
                )
            })?,
    };
    let end = (start + max).min(actions.len());
    let decision = |action: &str| {
        if w.faults.denied.contains(action) {
            "implicitDeny"
        } else {
            "allowed"
        }
    };
    let results = actions[start..end]
        .iter()
        .map(|action| {
            let decided = decision(action);
            let mut fields = vec![
                ("EvalActionName", text(action)),
                (
                    "EvalResourceName",
                    text(resources.first().copied().unwrap_or("*")),
                ),
                ("EvalDecision", text(decided)),
                ("MatchedStatements", Cbor::Array(vec![])),
                ("MissingContextValues", Cbor::Array(vec![])),
            ];
            if !resources.is_empty() {
                let per_resource = resources
                    .iter()
                    .map(|r| {
                        members(vec![
                            ("EvalResourceName", text(r)),
                            ("EvalResourceDecision", text(decided)),
                            ("MatchedStatements", Cbor::Array(vec![])),
                            ("MissingContextValues", Cbor::Array(vec![])),
                        ])
                    })
                    .collect();
                fields.push(("ResourceSpecificResults", Cbor::Array(per_resource)));
            }
            members(fields)
        })
        .collect();
    let truncated = end < actions.len();
    let mut out = vec![
        ("EvaluationResults", Cbor::Array(results)),
        ("IsTruncated", Cbor::Bool(truncated)),
    ];
    if truncated {
        out.push(("Marker", text(&format!("sim-{end}"))));
    }
    Ok(members(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_and_names() {
        assert!(is_principal_arn(
            "arn:aws:iam::123456789012:role/rollgate-operator"
        ));
        assert!(is_principal_arn(
            "arn:aws:iam::123456789012:role/service-role/x"
        ));
        assert!(is_principal_arn("arn:aws:iam::123456789012:user/ci"));
        assert!(!is_principal_arn(
            "arn:aws:sts::123456789012:assumed-role/rollgate-operator/rollgate"
        ));
        assert!(!is_principal_arn("arn:aws:iam::123456789012:root"));
        assert!(valid_role_name("rollgate-operator"));
        assert!(!valid_role_name("a/b"));
        assert_eq!(role_id("x"), role_id("x"));
        assert_ne!(role_id("x"), role_id("y"));
        assert_eq!(role_id("x").len(), 21);
    }
}
