//! Who calls the sandbox, and what it may do. There is one principal, the
//! caller (`arn:aws:sts::ACCOUNT:assumed-role/rollgate-operator/rollgate`
//! unless `Sandbox::set_caller_arn` says otherwise), and everything is
//! allowed to it except the IAM actions denied by a fault (`Faults::deny`,
//! `{"deny": [...]}`). Every operation the sandbox serves is the IAM action
//! `service:OperationName` (`lambda:GetFunctionConfiguration`,
//! `cloudwatch:PutMetricAlarm`, `appconfig:StartDeployment`,
//! `iam:SimulatePrincipalPolicy`...); a call of a denied one answers
//! AccessDenied in its protocol's shape, with AWS's message, and IAM's
//! policy simulator reports `implicitDeny` for it.
//!
//! `sts:GetCallerIdentity` is the exception AWS makes: it needs no
//! permission, and a policy that denies it does not stop it ("you can still
//! perform this operation", says its API reference). The simulator still
//! reports the denial.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, Method};

use super::ACCOUNT;

/// The caller a sandbox starts with.
pub(super) fn default_caller() -> String {
    format!("arn:aws:sts::{ACCOUNT}:assumed-role/rollgate-operator/rollgate")
}

/// IAM actions denied to the caller, matched as IAM matches them: without
/// regard to case.
#[derive(Debug, Default, Clone)]
pub(super) struct Denied(BTreeMap<String, String>);

impl Denied {
    pub fn deny(&mut self, action: &str) {
        self.0
            .insert(action.to_ascii_lowercase(), action.to_string());
    }

    pub fn allow(&mut self, action: &str) {
        self.0.remove(&action.to_ascii_lowercase());
    }

    pub fn contains(&self, action: &str) -> bool {
        self.0.contains_key(&action.to_ascii_lowercase())
    }

    /// The denied actions, as they were given.
    pub fn list(&self) -> Vec<String> {
        self.0.values().cloned().collect()
    }
}

/// An IAM action: a service prefix (`lambda`, `cloudwatch`, `appconfig`,
/// `iam`, `sts`, lowercase letters, digits and dashes), a colon, and an
/// operation name (letters and digits). Wildcards are not supported.
pub(super) fn is_action(action: &str) -> bool {
    action.split_once(':').is_some_and(|(service, op)| {
        !service.is_empty()
            && service
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !op.is_empty()
            && op.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// AWS's words for a call no policy allows.
pub(super) fn message(caller: &str, action: &str, resource: Option<&str>) -> String {
    match resource {
        Some(r) => format!(
            "User: {caller} is not authorized to perform: {action} on resource: {r} because no identity-based policy allows the {action} action"
        ),
        None => format!(
            "User: {caller} is not authorized to perform: {action} because no identity-based policy allows the {action} action"
        ),
    }
}

/// The SigV4 credential scope's region and service
/// (`Credential=AKID/20260101/REGION/SERVICE/aws4_request`).
pub(super) fn credential_scope(headers: &HeaderMap) -> Option<(String, String)> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let credential = auth.split("Credential=").nth(1)?;
    let credential = credential.split([',', ' ']).next()?;
    let mut parts = credential.split('/').skip(2);
    let region = parts.next()?.to_string();
    let service = parts.next()?.to_string();
    Some((region, service))
}

fn region(headers: &HeaderMap) -> String {
    credential_scope(headers)
        .map(|(r, _)| r)
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "us-east-1".into())
}

/// `%XX` escapes decoded (path segments; `+` stays a plus).
fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = segment
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(decode)
        .collect()
}

fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// The IAM action of a Lambda call (`lambda:UpdateFunctionConfiguration`)
/// and the ARN of what it acts on (the function, qualified by the version
/// or alias it names), from its method, path and query.
pub(super) fn lambda_action(
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Option<(String, Option<String>)> {
    let segs = segments(path);
    let rest = match segs.as_slice() {
        [version, functions, rest @ ..] if version == "2015-03-31" && functions == "functions" => {
            rest
        }
        _ => return None,
    };
    let get = method == Method::GET;
    let (op, alias) = match rest {
        [] if get => ("ListFunctions", None),
        [] if method == Method::POST => ("CreateFunction", None),
        [_] if get => ("GetFunction", None),
        [_, s] if s == "configuration" && get => ("GetFunctionConfiguration", None),
        [_, s] if s == "configuration" && method == Method::PUT => {
            ("UpdateFunctionConfiguration", None)
        }
        [_, s] if s == "versions" && method == Method::POST => ("PublishVersion", None),
        [_, s] if s == "versions" && get => ("ListVersionsByFunction", None),
        [_, s] if s == "code" && method == Method::PUT => ("UpdateFunctionCode", None),
        [_, s] if s == "aliases" && method == Method::POST => ("CreateAlias", None),
        [_, s] if s == "aliases" && get => ("ListAliases", None),
        [_, s, a] if s == "aliases" && get => ("GetAlias", Some(a.clone())),
        [_, s, a] if s == "aliases" && method == Method::PUT => ("UpdateAlias", Some(a.clone())),
        _ => return None,
    };
    let resource = rest.first().map(|name| {
        // A name, `name:qualifier`, or a full or partial ARN.
        let name = name
            .find("function:")
            .map_or(name.as_str(), |i| &name[i + "function:".len()..]);
        let (name, qualifier) = match name.split_once(':') {
            Some((n, q)) => (n, Some(q.to_string())),
            None => (name, None),
        };
        let qualifier = alias
            .or(qualifier)
            .or_else(|| query_param(query, "Qualifier"));
        let arn = format!(
            "arn:aws:lambda:{}:{ACCOUNT}:function:{name}",
            region(headers)
        );
        match qualifier {
            Some(q) => format!("{arn}:{q}"),
            None => arn,
        }
    });
    Some((format!("lambda:{op}"), resource))
}

/// AppConfig's collections: the path segment, the resource type in ARNs
/// and operation names, and the plural of list operations.
const APPCONFIG: &[(&str, &str, &str)] = &[
    ("applications", "Application", "Applications"),
    ("environments", "Environment", "Environments"),
    (
        "configurationprofiles",
        "ConfigurationProfile",
        "ConfigurationProfiles",
    ),
    (
        "hostedconfigurationversions",
        "HostedConfigurationVersion",
        "HostedConfigurationVersions",
    ),
    (
        "deploymentstrategies",
        "DeploymentStrategy",
        "DeploymentStrategies",
    ),
    ("deployments", "Deployment", "Deployments"),
];

/// The IAM action of an AppConfig call (`appconfig:GetConfigurationProfile`)
/// and its resource's ARN (`arn:aws:appconfig:REGION:ACCOUNT:application/APP/configurationprofile/ID`).
pub(super) fn appconfig_action(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Option<(String, Option<String>)> {
    let segs = segments(path);
    match segs.as_slice() {
        [s] if s == "configurationsessions" && method == Method::POST => {
            return Some(("appconfig:StartConfigurationSession".into(), None));
        }
        [s] if s == "configuration" && method == Method::GET => {
            return Some(("appconfig:GetLatestConfiguration".into(), None));
        }
        _ => {}
    }
    // Collection / id pairs: /applications/A/environments/E/deployments/N.
    let mut arn_path = Vec::new();
    let mut last = None;
    for chunk in segs.chunks(2) {
        let &(_, kind, plural) = APPCONFIG.iter().find(|(seg, _, _)| *seg == chunk[0])?;
        if let Some(id) = chunk.get(1) {
            arn_path.push(format!("{}/{id}", kind.to_ascii_lowercase()));
        }
        last = Some((kind, plural, chunk.len() == 2));
    }
    let (kind, plural, has_id) = last?;
    let op = match (has_id, method) {
        (false, &Method::GET) => format!("List{plural}"),
        (false, &Method::POST) if kind == "Deployment" => "StartDeployment".into(),
        (false, &Method::POST) => format!("Create{kind}"),
        (true, &Method::GET) => format!("Get{kind}"),
        (true, &Method::DELETE) if kind == "Deployment" => "StopDeployment".into(),
        _ => return None,
    };
    let resource = (!arn_path.is_empty()).then(|| {
        format!(
            "arn:aws:appconfig:{}:{ACCOUNT}:{}",
            region(headers),
            arn_path.join("/")
        )
    });
    Some((format!("appconfig:{op}"), resource))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_and_denials() {
        assert!(is_action("lambda:GetFunctionConfiguration"));
        assert!(is_action("resource-groups:GetResources"));
        for bad in [
            "lambda:*",
            "lambda",
            ":Get",
            "Lambda:Get",
            "lambda:Get Function",
        ] {
            assert!(!is_action(bad), "{bad}");
        }
        let mut d = Denied::default();
        d.deny("lambda:GetAlias");
        assert!(d.contains("Lambda:getalias"));
        d.allow("LAMBDA:GETALIAS");
        assert!(!d.contains("lambda:GetAlias"));
    }

    #[test]
    fn lambda_calls_name_their_action_and_function() {
        let h = HeaderMap::new();
        let action = |m: Method, path: &str, q: Option<&str>| lambda_action(&m, path, q, &h);
        let arn = "arn:aws:lambda:us-east-1:123456789012:function:f";
        assert_eq!(
            action(Method::GET, "/2015-03-31/functions/f/configuration", None),
            Some(("lambda:GetFunctionConfiguration".into(), Some(arn.into())))
        );
        assert_eq!(
            action(
                Method::GET,
                "/2015-03-31/functions/f/configuration",
                Some("Qualifier=3")
            ),
            Some((
                "lambda:GetFunctionConfiguration".into(),
                Some(format!("{arn}:3"))
            ))
        );
        assert_eq!(
            action(
                Method::PUT,
                "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Af/aliases/live",
                None
            ),
            Some(("lambda:UpdateAlias".into(), Some(format!("{arn}:live"))))
        );
        assert_eq!(
            action(Method::POST, "/2015-03-31/functions/f/versions", None).map(|a| a.0),
            Some("lambda:PublishVersion".into())
        );
        assert_eq!(
            action(Method::GET, "/2015-03-31/functions/", None),
            Some(("lambda:ListFunctions".into(), None))
        );
        assert_eq!(
            action(Method::DELETE, "/2015-03-31/functions/f", None),
            None
        );
    }

    #[test]
    fn appconfig_calls_name_their_action_and_resource() {
        let h = HeaderMap::new();
        let action = |m: Method, path: &str| appconfig_action(&m, path, &h);
        assert_eq!(
            action(Method::GET, "/applications/a1/configurationprofiles/p1"),
            Some((
                "appconfig:GetConfigurationProfile".into(),
                Some(
                    "arn:aws:appconfig:us-east-1:123456789012:application/a1/configurationprofile/p1"
                        .into()
                )
            ))
        );
        assert_eq!(
            action(Method::POST, "/applications/a1/environments/e1/deployments").map(|a| a.0),
            Some("appconfig:StartDeployment".into())
        );
        assert_eq!(
            action(
                Method::DELETE,
                "/applications/a1/environments/e1/deployments/3"
            )
            .map(|a| a.0),
            Some("appconfig:StopDeployment".into())
        );
        assert_eq!(
            action(Method::GET, "/deploymentstrategies").map(|a| a.0),
            Some("appconfig:ListDeploymentStrategies".into())
        );
        assert_eq!(
            action(
                Method::POST,
                "/applications/a1/configurationprofiles/p1/hostedconfigurationversions"
            )
            .map(|a| a.0),
            Some("appconfig:CreateHostedConfigurationVersion".into())
        );
        assert_eq!(
            action(Method::GET, "/configuration").map(|a| a.0),
            Some("appconfig:GetLatestConfiguration".into())
        );
        assert_eq!(action(Method::GET, "/nothing/here"), None);
    }

    #[test]
    fn credential_scopes() {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=x"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            credential_scope(&h),
            Some(("us-east-1".into(), "iam".into()))
        );
    }
}
