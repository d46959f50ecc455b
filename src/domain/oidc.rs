//! Signing in through the company's identity provider (OpenID Connect):
//! what rollgate is told to trust, and the pure decisions made from a
//! verified ID token's claims (who it is, which role). The network side
//! (discovery, code exchange, signature checks) is in `crate::oidc`.

use serde_json::{Map, Value};

use super::text::{self, MAX_NAME_BYTES};
use super::user::Role;

/// How rollgate talks to the identity provider.
#[derive(Clone)]
pub struct OidcSettings {
    /// The issuer, exactly as the provider's discovery document and its ID
    /// tokens say (`iss`); discovery is `ISSUER/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// The client secret; `None` for a public client (PKCE only).
    pub client_secret: Option<String>,
    /// Where the provider sends the browser back: rollgate's public URL of
    /// `/login/oidc/callback`, registered with the provider.
    pub redirect_url: String,
    /// Audiences besides `client_id` an ID token may also name; any other
    /// audience makes the token someone else's, and it is refused.
    pub audiences: Vec<String>,
    /// Scopes asked for besides `openid`.
    pub scopes: Vec<String>,
    /// The claim that holds the user's groups (a list or one string).
    pub roles_claim: String,
    /// Which group gives which role; the highest role given wins, and a
    /// user with none of these groups is not let in.
    pub roles: Vec<(String, Role)>,
    /// The claim used as the user's name in the audit log (`oidc:NAME`).
    pub name_claim: String,
}

impl std::fmt::Debug for OidcSettings {
    // The client secret never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "…"))
            .field("redirect_url", &self.redirect_url)
            .field("audiences", &self.audiences)
            .field("roles_claim", &self.roles_claim)
            .field("roles", &self.roles)
            .field("name_claim", &self.name_claim)
            .finish()
    }
}

/// `GROUP=ROLE` (as `--oidc-role` takes it).
pub fn parse_role_mapping(text: &str) -> Result<(String, Role), String> {
    let (group, role) = text
        .rsplit_once('=')
        .ok_or_else(|| format!("{text:?}: write GROUP=ROLE, e.g. rollgate-admins=admin"))?;
    let group = group.trim();
    if group.is_empty() {
        return Err(format!("{text:?}: the group is empty"));
    }
    Ok((group.to_string(), Role::parse(role.trim())?))
}

/// An issuer or redirect URL rollgate will use: HTTPS, or plain HTTP to
/// this machine only (a provider started for a test or a demo).
pub fn check_url(what: &str, url: &str) -> Result<url::Url, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{what} {url:?}: {e}"))?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    };
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if loopback => Ok(parsed),
        _ => Err(format!(
            "{what} {url:?} must be https:// (plain http only to localhost)"
        )),
    }
}

/// Why a verified ID token still does not let its user in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsRefusal {
    #[error("the identity provider sent no {0:?} claim to name you by (see --oidc-name-claim)")]
    NoName(String),
    #[error("the identity provider's {claim:?} claim is not a usable name: {why}")]
    BadName { claim: String, why: String },
    #[error(
        "your account is in none of the groups rollgate gives a role to (claim {claim:?}); ask an admin"
    )]
    NoRole { claim: String },
    #[error("the identity provider's ID token has no subject (sub)")]
    NoSubject,
    #[error(
        "the identity provider has not verified your e-mail address, which rollgate would name you by"
    )]
    UnverifiedEmail,
}

/// Who signed in, as the provider's claims say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIdentity {
    /// The provider's stable, unique id for the account (`sub`).
    pub subject: String,
    /// The name it gives now (rollgate keeps the first one it saw).
    pub name: String,
    pub role: Role,
}

/// Who an ID token's claims say signed in, and with which role.
pub fn identity_from_claims(
    claims: &Map<String, Value>,
    settings: &OidcSettings,
) -> Result<OidcIdentity, ClaimsRefusal> {
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(ClaimsRefusal::NoSubject)?;
    // An address anyone can type into a profile names nobody.
    if settings.name_claim == "email" && claims.get("email_verified") != Some(&Value::Bool(true)) {
        return Err(ClaimsRefusal::UnverifiedEmail);
    }
    let name = claims
        .get(&settings.name_claim)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ClaimsRefusal::NoName(settings.name_claim.clone()))?;
    let bad_name = |why: String| ClaimsRefusal::BadName {
        claim: settings.name_claim.clone(),
        why,
    };
    text::check("user name", name, MAX_NAME_BYTES).map_err(|e| bad_name(e.to_string()))?;
    if name.chars().any(char::is_control) {
        return Err(bad_name("it holds control characters".into()));
    }
    let groups: Vec<&str> = match claims.get(&settings.roles_claim) {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        // One group ("Domain Admins" is one group, not two).
        Some(Value::String(one)) => vec![one.as_str()],
        _ => Vec::new(),
    };
    let role = settings
        .roles
        .iter()
        .filter(|(group, _)| groups.contains(&group.as_str()))
        .map(|(_, role)| *role)
        .max()
        .ok_or_else(|| ClaimsRefusal::NoRole {
            claim: settings.roles_claim.clone(),
        })?;
    Ok(OidcIdentity {
        subject: subject.to_string(),
        name: name.to_string(),
        role,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> OidcSettings {
        OidcSettings {
            issuer: "https://id.example".into(),
            client_id: "rollgate".into(),
            client_secret: Some("s3cret".into()),
            redirect_url: "https://rollgate.example/login/oidc/callback".into(),
            audiences: vec![],
            scopes: vec![],
            roles_claim: "groups".into(),
            roles: vec![
                ("eng".into(), Role::Viewer),
                ("rollgate-ops".into(), Role::Operator),
                ("rollgate-admins".into(), Role::Admin),
            ],
            name_claim: "preferred_username".into(),
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        let mut m = v.as_object().unwrap().clone();
        m.entry("sub").or_insert(json!("sub-1"));
        m
    }

    fn who(name: &str, role: Role) -> Result<OidcIdentity, ClaimsRefusal> {
        Ok(OidcIdentity {
            subject: "sub-1".into(),
            name: name.into(),
            role,
        })
    }

    #[test]
    fn the_highest_mapped_group_gives_the_role() {
        let s = settings();
        let c =
            claims(json!({ "preferred_username": "ada", "groups": ["eng", "rollgate-admins"] }));
        assert_eq!(identity_from_claims(&c, &s), who("ada", Role::Admin));
        let c = claims(json!({ "preferred_username": "otto", "groups": "rollgate-ops" }));
        assert_eq!(identity_from_claims(&c, &s), who("otto", Role::Operator));
        // A lone string is one group, spaces and all.
        let c = claims(json!({ "preferred_username": "otto", "groups": "eng rollgate-admins" }));
        assert!(identity_from_claims(&c, &s).is_err());
        let c = claims(json!({ "preferred_username": "mia", "groups": ["marketing"] }));
        assert_eq!(
            identity_from_claims(&c, &s),
            Err(ClaimsRefusal::NoRole {
                claim: "groups".into()
            })
        );
        let c = claims(json!({ "preferred_username": "mia" }));
        assert!(matches!(
            identity_from_claims(&c, &s),
            Err(ClaimsRefusal::NoRole { .. })
        ));
        // Group names are matched exactly, not by prefix or case.
        let c = claims(
            json!({ "preferred_username": "eve", "groups": ["Rollgate-Admins", "rollgate-admins-x"] }),
        );
        assert!(identity_from_claims(&c, &s).is_err());
    }

    #[test]
    fn a_name_is_required_and_checked() {
        let s = settings();
        let c = claims(json!({ "sub": "123", "groups": ["eng"] }));
        assert_eq!(
            identity_from_claims(&c, &s),
            Err(ClaimsRefusal::NoName("preferred_username".into()))
        );
        let mut c = claims(json!({ "preferred_username": "ada", "groups": ["eng"] }));
        c.remove("sub");
        assert_eq!(identity_from_claims(&c, &s), Err(ClaimsRefusal::NoSubject));
        // Named by e-mail: only a verified one.
        let by_email = OidcSettings {
            name_claim: "email".into(),
            ..settings()
        };
        let c = claims(json!({ "email": "ada@example.com", "groups": ["eng"] }));
        assert_eq!(
            identity_from_claims(&c, &by_email),
            Err(ClaimsRefusal::UnverifiedEmail)
        );
        let c = claims(
            json!({ "email": "ada@example.com", "email_verified": true, "groups": ["eng"] }),
        );
        assert_eq!(
            identity_from_claims(&c, &by_email),
            who("ada@example.com", Role::Viewer)
        );
        for bad in ["bad\u{0}name", "two\nlines", &"x".repeat(500)] {
            let c = claims(json!({ "preferred_username": bad, "groups": ["eng"] }));
            assert!(
                matches!(
                    identity_from_claims(&c, &s),
                    Err(ClaimsRefusal::BadName { .. })
                ),
                "{bad:?}"
            );
        }
        let c = claims(json!({ "preferred_username": "ada@example.com", "groups": ["eng"] }));
        assert_eq!(
            identity_from_claims(&c, &s),
            who("ada@example.com", Role::Viewer)
        );
    }

    #[test]
    fn role_mappings_and_urls_are_checked() {
        assert_eq!(
            parse_role_mapping("rollgate-admins=admin"),
            Ok(("rollgate-admins".into(), Role::Admin))
        );
        assert_eq!(
            parse_role_mapping("cn=ops,ou=groups=operator"),
            Ok(("cn=ops,ou=groups".into(), Role::Operator))
        );
        assert!(parse_role_mapping("admins").is_err());
        assert!(parse_role_mapping("=admin").is_err());
        assert!(parse_role_mapping("admins=root").is_err());
        assert!(check_url("issuer", "https://id.example").is_ok());
        assert!(check_url("issuer", "http://127.0.0.1:9000").is_ok());
        assert!(check_url("issuer", "http://localhost:9000").is_ok());
        assert!(check_url("issuer", "http://id.example").is_err());
        assert!(check_url("issuer", "ftp://id.example").is_err());
        assert!(check_url("issuer", "not a url").is_err());
    }

    #[test]
    fn the_client_secret_is_not_debug_printed() {
        let shown = format!("{:?}", settings());
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
