//! The identity provider over the network: discovery (cached, fetched
//! again when a token is signed with a key rollgate has not seen), the
//! authorization URL (code flow with PKCE, state and nonce), and the code
//! exchange. `openidconnect` checks the ID token's signature, issuer,
//! audience, expiry and nonce; `domain::oidc` decides who and which role.

use std::time::{Duration, Instant};

use base64::Engine;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreIdTokenVerifier, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpRequest, HttpResponse, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError,
    Scope, TokenResponse,
};
use serde_json::{Map, Value};

use crate::domain::oidc::{self, ClaimsRefusal, OidcSettings};

/// How long a discovery document (and its signing keys) is used before it
/// is fetched again.
const METADATA_TTL: Duration = Duration::from_secs(15 * 60);
/// Every call to the provider gives up after this long.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a provider answer rollgate reads.
const MAX_ANSWER_BYTES: usize = 1 << 20;

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Why a sign-in through the identity provider did not work.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the identity provider could not be reached or answered oddly: {0}")]
    Provider(String),
    #[error("the identity provider refused the sign-in: {0}")]
    Refused(String),
    #[error("the identity provider's ID token was not accepted: {0}")]
    BadToken(String),
    #[error(transparent)]
    Claims(#[from] ClaimsRefusal),
}

/// An authorization request under way: where to send the browser, and
/// what to keep (server-side) to finish it.
#[derive(Debug, Clone)]
pub struct Begun {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// The identity provider rollgate trusts.
pub struct OidcProvider {
    settings: OidcSettings,
    http: reqwest::Client,
    metadata: tokio::sync::Mutex<Option<(Instant, CoreProviderMetadata)>>,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

/// One HTTP exchange for `openidconnect`, over rollgate's own reqwest (no
/// redirects followed: a redirect from a token endpoint is an attack).
async fn send(http: reqwest::Client, req: HttpRequest) -> Result<HttpResponse, HttpError> {
    let (parts, body) = req.into_parts();
    let mut call = http
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body);
    call = call.timeout(CALL_TIMEOUT);
    let resp = call.send().await.map_err(|e| HttpError(error_chain(&e)))?;
    let mut out = openidconnect::http::Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        out = out.header(k, v);
    }
    let body = read_capped(resp).await.map_err(HttpError)?;
    out.body(body).map_err(|e| HttpError(e.to_string()))
}

/// A provider answer's body, at most [`MAX_ANSWER_BYTES`].
async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err("the answer is too large".into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

impl OidcProvider {
    pub fn new(settings: OidcSettings) -> Result<OidcProvider, String> {
        oidc::check_url("--oidc-issuer", &settings.issuer)?;
        oidc::check_url("--oidc-redirect-url", &settings.redirect_url)?;
        if settings.roles.is_empty() {
            return Err("give at least one --oidc-role GROUP=ROLE: without one nobody could sign in through the identity provider".into());
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        Ok(OidcProvider {
            settings,
            http,
            metadata: tokio::sync::Mutex::new(None),
        })
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// The discovery document, from the cache unless it is old or `fresh`
    /// is asked for.
    async fn metadata(&self, fresh: bool) -> Result<CoreProviderMetadata, OidcError> {
        let mut cached = self.metadata.lock().await;
        if let Some((at, md)) = cached.as_ref()
            && !fresh
            && at.elapsed() < METADATA_TTL
        {
            return Ok(md.clone());
        }
        let issuer = IssuerUrl::new(self.settings.issuer.clone())
            .map_err(|e| OidcError::Provider(format!("issuer URL: {e}")))?;
        let http = self.http.clone();
        let call = move |req| send(http.clone(), req);
        let md = CoreProviderMetadata::discover_async(issuer, &call)
            .await
            .map_err(|e| OidcError::Provider(format!("discovery: {}", error_chain(&e))))?;
        *cached = Some((Instant::now(), md.clone()));
        Ok(md)
    }

    fn client(&self, md: CoreProviderMetadata) -> Result<Client, OidcError> {
        let redirect = RedirectUrl::new(self.settings.redirect_url.clone())
            .map_err(|e| OidcError::Provider(format!("redirect URL: {e}")))?;
        Ok(CoreClient::from_provider_metadata(
            md,
            ClientId::new(self.settings.client_id.clone()),
            self.settings.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect))
    }

    /// Starts a sign-in: the provider's authorization URL with a fresh
    /// state, nonce and PKCE challenge (S256).
    pub async fn begin(&self) -> Result<Begun, OidcError> {
        let client = self.client(self.metadata(false).await?)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in &self.settings.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.url();
        Ok(Begun {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Finishes a sign-in: exchanges the code (with the PKCE verifier),
    /// checks the ID token, and says who signed in with which role.
    pub async fn finish(
        &self,
        code: &str,
        nonce: &str,
        pkce_verifier: &str,
    ) -> Result<oidc::OidcIdentity, OidcError> {
        let client = self.client(self.metadata(false).await?)?;
        let http = self.http.clone();
        let call = move |req| send(http.clone(), req);
        let answer = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| OidcError::Provider(format!("token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request_async(&call)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(r) => OidcError::Refused(format!(
                    "{}{}",
                    r.error(),
                    r.error_description()
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default()
                )),
                other => OidcError::Provider(format!("token endpoint: {}", error_chain(&other))),
            })?;
        let id_token = answer
            .id_token()
            .ok_or_else(|| OidcError::BadToken("the token answer has no id_token".into()))?;
        let nonce = Nonce::new(nonce.to_string());
        let mut claims = match self.verify(&client, id_token, &nonce) {
            Err(ClaimsVerificationError::SignatureVerification(_)) => {
                // Signed with a key rollgate has not seen: the provider may
                // have rotated its keys since the discovery was cached.
                let fresh = self.client(self.metadata(true).await?)?;
                self.verify(&fresh, id_token, &nonce)
            }
            other => other,
        }
        .map_err(|e| OidcError::BadToken(e.to_string()))?;
        let wanted = [&self.settings.name_claim, &self.settings.roles_claim];
        if wanted.iter().any(|c| !claims.contains_key(c.as_str())) {
            self.add_user_info(&client, answer.access_token().secret(), &mut claims)
                .await?;
        }
        Ok(oidc::identity_from_claims(&claims, &self.settings)?)
    }

    /// Checks the ID token (signature, issuer, audience, expiry, nonce)
    /// and gives all its claims.
    fn verify(
        &self,
        client: &Client,
        id_token: &CoreIdToken,
        nonce: &Nonce,
    ) -> Result<Map<String, Value>, ClaimsVerificationError> {
        let trusted = self.settings.audiences.clone();
        let verifier: CoreIdTokenVerifier = client
            .id_token_verifier()
            .set_other_audience_verifier_fn(move |aud| trusted.iter().any(|t| t == aud.as_str()));
        id_token.claims(&verifier, nonce)?;
        // Verified: read the claims openidconnect has no field for (the
        // groups claim is whatever the provider calls it).
        let jwt = id_token.to_string();
        let payload = jwt.split('.').nth(1).unwrap_or_default();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|e| ClaimsVerificationError::Other(format!("payload: {e}")))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ClaimsVerificationError::Other(format!("payload: {e}")))
    }

    /// Claims missing from the ID token, from the userinfo endpoint (where
    /// many providers put groups); its `sub` must be the ID token's.
    async fn add_user_info(
        &self,
        client: &Client,
        access_token: &str,
        claims: &mut Map<String, Value>,
    ) -> Result<(), OidcError> {
        let Some(endpoint) = client.user_info_url() else {
            return Ok(());
        };
        let resp = self
            .http
            .get(endpoint.as_str())
            .bearer_auth(access_token)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| OidcError::Provider(format!("userinfo: {e}")))?;
        if !resp.status().is_success() {
            return Err(OidcError::Provider(format!(
                "userinfo answered {}",
                resp.status()
            )));
        }
        let body = read_capped(resp)
            .await
            .map_err(|e| OidcError::Provider(format!("userinfo: {e}")))?;
        let info: Map<String, Value> = serde_json::from_slice(&body)
            .map_err(|e| OidcError::Provider(format!("userinfo: {e}")))?;
        if info.get("sub") != claims.get("sub") {
            return Err(OidcError::BadToken(
                "userinfo is about another subject than the ID token".into(),
            ));
        }
        for (k, v) in info {
            claims.entry(k).or_insert(v);
        }
        Ok(())
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
