//! The local gateway's JWT authorizer, checking what API Gateway's checks: the token's RS256
//! signature against the issuer's published keys (JWKS), its issuer, its audience (`aud`, or
//! `client_id` where a Cognito access token has no `aud`), its expiry and not-before, and the
//! route's scopes. What passes becomes the authorizer context a function sees, claims as text.
//!
//! The keys are fetched once and kept; a token signed with a key not seen yet fetches them
//! again, at most once every [`REFRESH_AT_MOST_EVERY`], so a flood of forged key ids costs
//! the issuer nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

/// The shortest time between two fetches of the keys.
pub const REFRESH_AT_MOST_EVERY: Duration = Duration::from_secs(10);

/// Clock skew tolerated on `exp` and `nbf`, as API Gateway allows none beyond the second.
const LEEWAY_SECONDS: i64 = 0;

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No valid token (401).
    #[error("{0}")]
    Unauthorized(String),
    /// A valid token without any of the route's scopes (403).
    #[error("{0}")]
    Forbidden(String),
}

fn unauthorized(why: impl Into<String>) -> Refusal {
    Refusal::Unauthorized(why.into())
}

/// An RSA public key from a JWKS, as its modulus and exponent (big-endian bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
struct RsaKey {
    n: Vec<u8>,
    e: Vec<u8>,
}

#[derive(Debug, Default)]
struct Keys {
    by_id: HashMap<String, RsaKey>,
    fetched: Option<Instant>,
}

/// Where a JWT authorizer gets its keys from: a URL, or keys given outright (tests).
#[derive(Debug)]
enum KeySource {
    Url { url: String, http: reqwest::Client },
    Fixed,
}

/// A JWT authorizer: one issuer, the audiences it accepts, and the issuer's keys.
#[derive(Debug)]
pub struct JwtAuthorizer {
    issuer: String,
    audiences: Vec<String>,
    source: KeySource,
    keys: Mutex<Keys>,
}

/// A token that passed, as the function's authorizer context.
pub type Authorized = ApiGatewayRequestAuthorizer;

impl JwtAuthorizer {
    /// An authorizer for tokens of `issuer` meant for one of `audiences`, its keys read from
    /// `jwks_url`.
    pub fn new(issuer: String, audiences: Vec<String>, jwks_url: String) -> Self {
        Self {
            issuer,
            audiences,
            source: KeySource::Url {
                url: jwks_url,
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .unwrap_or_default(),
            },
            keys: Mutex::default(),
        }
    }

    /// An authorizer with the keys of `jwks` (a JWKS document) and no URL to refresh them.
    pub fn with_keys(issuer: String, audiences: Vec<String>, jwks: &Value) -> Self {
        let authorizer = Self {
            issuer,
            audiences,
            source: KeySource::Fixed,
            keys: Mutex::default(),
        };
        authorizer.lock().by_id = rsa_keys(jwks);
        authorizer
    }

    /// The issuer it trusts.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Keys> {
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks the `Authorization` header's token for a route needing any of `scopes` (none:
    /// any valid token), at `now` (seconds since the epoch).
    pub async fn authorize(
        &self,
        header: Option<&str>,
        scopes: &[String],
        now: i64,
    ) -> Result<Authorized, Refusal> {
        let token = bearer(header.ok_or_else(|| unauthorized("no Authorization header"))?);
        let parts = Parts::split(token)?;
        let key = self.key(&parts.kid).await?;
        parts.verify(&key)?;
        let claims = parts.claims;
        self.check_claims(&claims, now)?;
        let granted = granted_scopes(&claims);
        if !scopes.is_empty() && !scopes.iter().any(|s| granted.contains(s)) {
            return Err(Refusal::Forbidden(format!(
                "the token has none of the route's scopes ({})",
                scopes.join(" ")
            )));
        }
        let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
        jwt.claims = claims
            .iter()
            .map(|(name, value)| (name.clone(), claim_text(value)))
            .collect();
        jwt.scopes = (!granted.is_empty()).then_some(granted);
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        authorizer.jwt = Some(jwt);
        Ok(authorizer)
    }

    fn check_claims(&self, claims: &Map<String, Value>, now: i64) -> Result<(), Refusal> {
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(unauthorized("the token is from another issuer"));
        }
        let audiences: Vec<&str> = match claims.get("aud") {
            Some(Value::String(one)) => vec![one.as_str()],
            Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
            _ => claims
                .get("client_id")
                .and_then(Value::as_str)
                .into_iter()
                .collect(),
        };
        if !audiences
            .iter()
            .any(|a| self.audiences.iter().any(|ok| ok == a))
        {
            return Err(unauthorized("the token is meant for another audience"));
        }
        let expires = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or_else(|| unauthorized("the token has no expiry"))?;
        if now >= expires + LEEWAY_SECONDS {
            return Err(unauthorized("the token has expired"));
        }
        for claim in ["nbf", "iat"] {
            if let Some(from) = claims.get(claim).and_then(Value::as_i64)
                && now + LEEWAY_SECONDS < from
            {
                return Err(unauthorized("the token is not valid yet"));
            }
        }
        Ok(())
    }

    /// The key `kid`, fetching the issuer's keys if it is not known yet (and they were not
    /// fetched a moment ago).
    async fn key(&self, kid: &str) -> Result<RsaKey, Refusal> {
        let stale = {
            let keys = self.lock();
            if let Some(key) = keys.by_id.get(kid) {
                return Ok(key.clone());
            }
            keys.fetched
                .is_none_or(|at| at.elapsed() >= REFRESH_AT_MOST_EVERY)
        };
        if let (true, KeySource::Url { url, http }) = (stale, &self.source) {
            let fetched = fetch_keys(http, url).await;
            let mut keys = self.lock();
            keys.fetched = Some(Instant::now());
            match fetched {
                Ok(found) => keys.by_id = found,
                Err(error) => tracing::warn!(%url, %error, "the issuer's keys could not be read"),
            }
        }
        self.lock().by_id.get(kid).cloned().ok_or_else(|| {
            unauthorized("the token is signed with a key the issuer does not publish")
        })
    }
}

async fn fetch_keys(http: &reqwest::Client, url: &str) -> Result<HashMap<String, RsaKey>, String> {
    let response = http.get(url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    let jwks: Value = response.json().await.map_err(|e| e.to_string())?;
    Ok(rsa_keys(&jwks))
}

/// The RSA keys of a JWKS document, by key id (other kinds of key are skipped).
fn rsa_keys(jwks: &Value) -> HashMap<String, RsaKey> {
    let decode = |key: &Value, field: &str| {
        key.get(field)
            .and_then(Value::as_str)
            .and_then(|text| URL_SAFE_NO_PAD.decode(text).ok())
    };
    jwks.get("keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|key| key.get("kty").and_then(Value::as_str) == Some("RSA"))
        .filter_map(|key| {
            let kid = key.get("kid").and_then(Value::as_str)?.to_owned();
            Some((
                kid,
                RsaKey {
                    n: decode(key, "n")?,
                    e: decode(key, "e")?,
                },
            ))
        })
        .collect()
}

/// `Bearer <token>` or a bare token, as API Gateway takes either.
fn bearer(header: &str) -> &str {
    let header = header.trim();
    match header.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => header,
    }
}

/// A token taken apart: its key id, the signed text, the signature and the claims.
struct Parts<'a> {
    kid: String,
    signed: &'a str,
    signature: Vec<u8>,
    claims: Map<String, Value>,
}

impl<'a> Parts<'a> {
    fn split(token: &'a str) -> Result<Self, Refusal> {
        let malformed = || unauthorized("the token is not a signed JWT");
        let mut pieces = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (pieces.next(), pieces.next(), pieces.next(), pieces.next())
        else {
            return Err(malformed());
        };
        let json = |piece: &str| -> Result<Map<String, Value>, Refusal> {
            let bytes = URL_SAFE_NO_PAD.decode(piece).map_err(|_| malformed())?;
            match serde_json::from_slice(&bytes) {
                Ok(Value::Object(map)) => Ok(map),
                _ => Err(malformed()),
            }
        };
        let head = json(header)?;
        // RS256 only: `none`, HMAC algorithms (which would make a public key a secret) and
        // anything else are refused before a key is looked at.
        if head.get("alg").and_then(Value::as_str) != Some("RS256") {
            return Err(unauthorized("the token is not signed with RS256"));
        }
        let kid = head
            .get("kid")
            .and_then(Value::as_str)
            .ok_or_else(|| unauthorized("the token names no key"))?
            .to_owned();
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| malformed())?;
        Ok(Self {
            kid,
            signed: &token[..header.len() + 1 + payload.len()],
            signature,
            claims: json(payload)?,
        })
    }

    fn verify(&self, key: &RsaKey) -> Result<(), Refusal> {
        ring::signature::RsaPublicKeyComponents {
            n: &key.n,
            e: &key.e,
        }
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            self.signed.as_bytes(),
            &self.signature,
        )
        .map_err(|_| unauthorized("the token's signature does not verify"))
    }
}

/// The scopes a token grants, as API Gateway reads them: the space-separated `scope` claim,
/// or `scp` (text or a list).
fn granted_scopes(claims: &Map<String, Value>) -> Vec<String> {
    let mut scopes: Vec<String> = ["scope", "scp"]
        .iter()
        .filter_map(|name| claims.get(*name))
        .flat_map(|value| match value {
            Value::String(text) => text.split_whitespace().map(str::to_owned).collect(),
            Value::Array(items) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        })
        .collect();
    scopes.sort();
    scopes.dedup();
    scopes
}

/// A claim as API Gateway hands it to the function: text, a list as `[a b]`.
fn claim_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(claim_text).collect::<Vec<_>>().join(" ")
        ),
        other => other.to_string(),
    }
}

/// Where an issuer publishes its keys. A Cognito user pool's issuer names AWS; on an emulator
/// (`endpoint`) the pool's keys are served by the emulator under the pool's id, as MiniStack
/// and LocalStack do.
pub fn jwks_url(issuer: &str, endpoint: Option<&str>) -> String {
    let cognito_pool = issuer
        .strip_prefix("https://cognito-idp.")
        .and_then(|rest| rest.split_once(".amazonaws.com/"))
        .map(|(_, pool)| pool);
    match (endpoint, cognito_pool) {
        (Some(endpoint), Some(pool)) => format!(
            "{}/{pool}/.well-known/jwks.json",
            endpoint.trim_end_matches('/')
        ),
        _ => format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/')),
    }
}

/// Claims of a token, for tests and for the `token` command to show.
pub fn claims(token: &str) -> Option<BTreeMap<String, Value>> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bearer_tokens_are_taken_with_or_without_the_scheme() {
        assert_eq!(bearer("Bearer abc"), "abc");
        assert_eq!(bearer("bearer  abc "), "abc");
        assert_eq!(bearer("abc"), "abc");
    }

    #[test]
    fn cognito_issuers_publish_their_keys_on_the_emulator_under_the_pool() {
        let issuer = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Ab";
        assert_eq!(
            jwks_url(issuer, Some("http://127.0.0.1:4566/")),
            "http://127.0.0.1:4566/us-east-1_Ab/.well-known/jwks.json"
        );
        assert_eq!(
            jwks_url(issuer, None),
            format!("{issuer}/.well-known/jwks.json")
        );
        assert_eq!(
            jwks_url("https://id.example", Some("http://127.0.0.1:1")),
            "https://id.example/.well-known/jwks.json"
        );
    }

    #[test]
    fn scopes_come_from_scope_or_scp_and_claims_read_as_api_gateway_writes_them() {
        let claims = json!({"scope": "b a", "scp": ["c"], "exp": 5});
        let Value::Object(map) = claims else {
            unreachable!()
        };
        assert_eq!(granted_scopes(&map), ["a", "b", "c"]);
        assert_eq!(claim_text(&json!(["x", "y"])), "[x y]");
        assert_eq!(claim_text(&json!(5)), "5");
    }

    fn unsigned(header: &Value, claims: &Value) -> String {
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }

    #[tokio::test]
    async fn tokens_that_are_not_rs256_or_name_no_key_are_refused_before_any_key() {
        let authorizer =
            JwtAuthorizer::with_keys("https://i".into(), vec!["c".into()], &json!({"keys": []}));
        let claims = json!({"iss": "https://i", "client_id": "c", "exp": 10});
        for header in [
            json!({"alg": "none", "kid": "k"}),
            json!({"alg": "HS256", "kid": "k"}),
            json!({"alg": "RS256"}),
        ] {
            let refused = authorizer
                .authorize(Some(&unsigned(&header, &claims)), &[], 1)
                .await;
            assert!(matches!(refused, Err(Refusal::Unauthorized(_))), "{header}");
        }
        let refused = authorizer.authorize(None, &[], 1).await;
        assert_eq!(
            refused,
            Err(Refusal::Unauthorized("no Authorization header".into()))
        );
        let refused = authorizer.authorize(Some("a.b"), &[], 1).await;
        assert!(matches!(refused, Err(Refusal::Unauthorized(_))));
    }

    #[test]
    fn claims_are_checked_for_issuer_audience_expiry_not_before_and_issue_time() {
        let authorizer =
            JwtAuthorizer::with_keys("https://i".into(), vec!["c".into()], &json!({"keys": []}));
        let check = |claims: Value, now: i64| {
            let Value::Object(map) = claims else {
                unreachable!()
            };
            authorizer.check_claims(&map, now)
        };
        assert_eq!(
            check(json!({"iss": "https://i", "client_id": "c", "exp": 10}), 9),
            Ok(())
        );
        assert_eq!(
            check(json!({"iss": "https://i", "aud": ["x", "c"], "exp": 10}), 9),
            Ok(())
        );
        for (claims, now) in [
            (
                json!({"iss": "https://other", "client_id": "c", "exp": 10}),
                9,
            ),
            (json!({"iss": "https://i", "client_id": "d", "exp": 10}), 9),
            (
                json!({"iss": "https://i", "aud": "d", "client_id": "c", "exp": 10}),
                9,
            ),
            (json!({"iss": "https://i", "client_id": "c", "exp": 10}), 10),
            (json!({"iss": "https://i", "client_id": "c"}), 9),
            (
                json!({"iss": "https://i", "client_id": "c", "exp": 10, "nbf": 9}),
                8,
            ),
            (
                json!({"iss": "https://i", "client_id": "c", "exp": 10, "iat": 9}),
                8,
            ),
        ] {
            assert!(check(claims.clone(), now).is_err(), "{claims} at {now}");
        }
    }
}
