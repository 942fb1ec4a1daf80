//! Bearer-token authentication: HS256 JWTs with `exp` required and the
//! algorithm allow-listed, so `none` and algorithm-confusion tokens are refused.

use std::{io::Write, path::Path};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use crate::{domain::Timestamp, error::Error};

/// `JWT_*`: bearer-token verification (HS256).
#[derive(Debug, Clone, Default)]
pub struct JwtConfig {
    /// `JWT_SECRET`: the HS256 key. The local server makes one per data directory when unset.
    pub secret: Option<String>,
    /// `JWT_ISSUER`: required `iss` claim, when set.
    pub issuer: Option<String>,
    /// `JWT_AUDIENCE`: required `aud` claim, when set.
    pub audience: Option<String>,
    /// `JWT_LEEWAY_SECONDS`: clock skew allowed on `exp` and `nbf` (default 30).
    pub leeway_secs: u64,
}

/// Who is calling: the token's `sub`, or `anonymous` when it names none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
}

/// The claims this service reads and writes.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Optional here so a token without it is refused as lacking a required claim, not as malformed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Written on issued tokens when `JWT_ISSUER` is set; checked by [`Validation`], not read here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Written on issued tokens when `JWT_AUDIENCE` is set; checked by [`Validation`], not read here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
}

/// Tokens remembered after their signature verified.
const CACHED_TOKENS: usize = 4096;

/// Verifies bearer tokens. A token whose signature verified once is remembered
/// with its expiry, so a client reusing it costs a lookup, not an HMAC.
pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
    verified: std::sync::Mutex<std::collections::HashMap<String, (Principal, u64)>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").field("algorithms", &self.validation.algorithms).finish_non_exhaustive()
    }
}

impl Authenticator {
    pub fn new(secret: &str, cfg: &JwtConfig) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = cfg.leeway_secs;
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_nbf = true;
        if let Some(iss) = &cfg.issuer {
            validation.set_issuer(&[iss]);
            validation.required_spec_claims.insert("iss".into());
        }
        match &cfg.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                validation.required_spec_claims.insert("aud".into());
            }
            None => validation.validate_aud = false,
        }
        Self { key: DecodingKey::from_secret(secret.as_bytes()), validation, verified: Default::default() }
    }

    /// Checks an `Authorization` header value.
    pub fn verify(&self, header: Option<&str>) -> Result<Principal, Error> {
        let refuse = |reason: &str| Error::Unauthorized { reason: reason.into(), presented: true };
        let header = header.ok_or_else(|| Error::Unauthorized {
            reason: "missing Authorization header; send 'Authorization: Bearer <token>'".into(),
            presented: false,
        })?;
        // The scheme is case-insensitive (RFC 7235 2.1).
        let token = header
            .trim_start()
            .split_once([' ', '\t'])
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| refuse("the Authorization header must be 'Bearer <token>'"))?;
        let now = u64::try_from(Timestamp::now().0 / 1000).unwrap_or(0);
        if let Some(principal) = self.remembered(token, now) {
            return Ok(principal);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(|e| {
            refuse(match e.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::ImmatureSignature => "the token is not valid yet",
                ErrorKind::InvalidSignature => "the token's signature does not verify",
                ErrorKind::InvalidAlgorithm => "the token's algorithm is not allowed; use HS256",
                ErrorKind::MissingRequiredClaim(_) => {
                    "the token lacks a required claim (exp, or the configured iss/aud)"
                }
                ErrorKind::InvalidIssuer => "the token's issuer is not accepted",
                ErrorKind::InvalidAudience => "the token's audience is not accepted",
                _ => "the token is malformed",
            })
        })?;
        let principal = Principal { subject: data.claims.sub.unwrap_or_else(|| "anonymous".into()) };
        self.remember(token, &principal, data.claims.exp.unwrap_or(0));
        Ok(principal)
    }

    fn remembered(&self, token: &str, now: u64) -> Option<Principal> {
        let verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        let (principal, exp) = verified.get(token)?;
        (now <= exp + self.validation.leeway).then(|| principal.clone())
    }

    fn remember(&self, token: &str, principal: &Principal, exp: u64) {
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if verified.len() >= CACHED_TOKENS {
            verified.clear();
        }
        verified.insert(token.to_owned(), (principal.clone(), exp));
    }
}

/// Signs an HS256 token for `subject`, valid for `ttl_secs`, with the `iss` and `aud`
/// the configuration requires, so the server it belongs to accepts it.
pub fn issue_token(secret: &str, cfg: &JwtConfig, subject: &str, ttl_secs: u64) -> String {
    let now = u64::try_from(Timestamp::now().0 / 1000).unwrap_or(0);
    let claims = Claims {
        sub: Some(subject.into()),
        exp: Some(now + ttl_secs),
        iat: Some(now),
        iss: cfg.issuer.clone(),
        aud: cfg.audience.clone().map(serde_json::Value::String),
    };
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes()))
        .expect("HS256 signing cannot fail")
}

/// The secret of a local data directory, made on first use and kept in `jwt-secret` (mode 0600).
pub fn local_secret(data_dir: &Path) -> std::io::Result<String> {
    let path = data_dir.join("jwt-secret");
    if let Ok(secret) = std::fs::read_to_string(&path) {
        return Ok(secret.trim().to_owned());
    }
    std::fs::create_dir_all(data_dir)?;
    let secret = random_hex(32);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut file) => {
            file.write_all(secret.as_bytes())?;
            file.sync_all()?;
            Ok(secret)
        }
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(&path)?.trim().to_owned())
        }
        Err(e) => Err(e),
    }
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "a-secret-of-thirty-two-bytes-or-more";

    #[test]
    fn issued_tokens_carry_the_configured_issuer_and_audience() {
        let cfg = JwtConfig { issuer: Some("mq".into()), audience: Some("clients".into()), ..JwtConfig::default() };
        let auth = Authenticator::new(SECRET, &cfg);
        let token = issue_token(SECRET, &cfg, "alice", 60);
        assert_eq!(auth.verify(Some(&format!("Bearer {token}"))).unwrap().subject, "alice");
        let bare = issue_token(SECRET, &JwtConfig::default(), "alice", 60);
        assert!(auth.verify(Some(&format!("Bearer {bare}"))).is_err());
    }

    #[test]
    fn the_scheme_is_case_insensitive() {
        let cfg = JwtConfig::default();
        let auth = Authenticator::new(SECRET, &cfg);
        let token = issue_token(SECRET, &cfg, "bob", 60);
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            assert!(auth.verify(Some(&format!("{scheme} {token}"))).is_ok(), "{scheme}");
        }
        assert!(auth.verify(Some(&format!("Bearer\t{token}"))).is_ok());
        for bad in [format!("Bearerx {token}"), format!("Basic {token}"), token.clone(), "Bearer ".into()] {
            assert!(auth.verify(Some(&bad)).is_err(), "{bad}");
        }
    }
}
