//! Access tokens (EdDSA JWT, `kid` header, algorithm pinned, issuer and audience required,
//! expiry checked against the injected clock) and opaque refresh tokens (stored hashed).
//! This is the only place a JWT is decoded.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::crypto::{Keys, b64, random_bytes};
use crate::ids::{DeviceId, UserId};

/// Clock skew tolerated on `iat` (a token "from the future").
const IAT_LEEWAY_SECS: i64 = 60;

/// What an access token asserts. `sub` is the user, `did` the device; `ims` the issue time
/// in milliseconds (so a revocation in the same second as a new login ends only the older
/// tokens); `nbf`, when present, is honoured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: Uuid,
    pub did: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ims: Option<i64>,
}

impl Claims {
    /// When the token was issued, in milliseconds since the epoch.
    pub fn issued_ms(&self) -> i64 {
        self.ims
            .filter(|ms| ms.div_euclid(1000) == self.iat)
            .unwrap_or(self.iat.saturating_mul(1000))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token is malformed")]
    Malformed,
    #[error("token names no key id or an unknown one")]
    UnknownKey,
    #[error("token signature, algorithm, issuer or audience is wrong")]
    Invalid,
    #[error("token has expired")]
    Expired,
}

pub struct TokenService {
    kid: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    validation: Validation,
    issuer: String,
    audience: String,
    pub access_ttl: chrono::Duration,
    pub refresh_ttl: chrono::Duration,
    /// Tokens whose signature, key, issuer and audience this process has verified, by the
    /// SHA-256 of the token (never the token itself): a device presents the same token for
    /// its whole lifetime, and an Ed25519 verification costs more than the rest of a
    /// request's checks. The keys are fixed for the process's life, so a verification
    /// cannot become wrong; everything that depends on time is checked on every use.
    verified: std::sync::Mutex<HashMap<[u8; 32], Claims>>,
}

/// Past this many verified tokens the memo is emptied rather than grown.
const MAX_VERIFIED: usize = 100_000;

impl TokenService {
    pub fn new(
        keys: &Keys,
        issuer: String,
        audience: String,
        access_ttl: chrono::Duration,
        refresh_ttl: chrono::Duration,
    ) -> Self {
        let decoding = keys
            .jwt_verifying
            .iter()
            .map(|(kid, vk)| (kid.clone(), DecodingKey::from_ed_der(vk.as_bytes())))
            .collect();
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = vec![Algorithm::EdDSA];
        validation.set_issuer(&[issuer.as_str()]);
        validation.set_audience(&[audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        // Expiry is checked below against the injected clock, not the system clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        TokenService {
            kid: keys.jwt_signing_kid.clone(),
            encoding: EncodingKey::from_ed_der(&keys.jwt_signing_der),
            decoding,
            validation,
            issuer,
            audience,
            access_ttl,
            refresh_ttl,
            verified: std::sync::Mutex::default(),
        }
    }

    /// Signs an access token for a device session. A session issued after a revocation is
    /// dated no earlier than the device's `not_before`, so it outranks the revocation even
    /// when both happen in the same millisecond (a logout and a login right after it).
    pub fn issue_access(
        &self,
        now: DateTime<Utc>,
        user: UserId,
        device: DeviceId,
        not_before: Option<DateTime<Utc>>,
    ) -> Result<(String, DateTime<Utc>), jsonwebtoken::errors::Error> {
        let issued = not_before.filter(|nb| *nb > now).unwrap_or(now);
        let exp = issued + self.access_ttl;
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user.0,
            did: device.0,
            iat: issued.timestamp(),
            exp: exp.timestamp(),
            jti: Uuid::new_v4(),
            nbf: None,
            ims: Some(issued.timestamp_millis()),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)?;
        Ok((token, exp))
    }

    /// Verifies an access token: `kid` known, algorithm EdDSA, signature, issuer, audience,
    /// not expired at `now`, not before its `nbf`, and no longer-lived than this server
    /// issues (a token signed with the real key but a far expiry is refused).
    pub fn verify_access(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, TokenError> {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let known = self.memo().get(&digest).cloned();
        let claims = match known {
            Some(claims) => claims,
            None => {
                let claims = self.verify_signed(token)?;
                let mut memo = self.memo();
                if memo.len() >= MAX_VERIFIED {
                    memo.clear();
                }
                memo.insert(digest, claims.clone());
                claims
            }
        };
        let now_s = now.timestamp();
        if claims.exp <= now_s {
            return Err(TokenError::Expired);
        }
        if claims.iat > now_s + IAT_LEEWAY_SECS {
            return Err(TokenError::Invalid);
        }
        if claims.nbf.is_some_and(|nbf| nbf > now_s + IAT_LEEWAY_SECS) {
            return Err(TokenError::Invalid);
        }
        Ok(claims)
    }

    /// What does not depend on time: `kid` known, algorithm, signature, issuer, audience,
    /// and a lifetime no longer than this server issues.
    fn verify_signed(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid);
        }
        let key = header
            .kid
            .as_ref()
            .and_then(|kid| self.decoding.get(kid))
            .ok_or(TokenError::UnknownKey)?;
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(|_| TokenError::Invalid)?;
        let claims = data.claims;
        if claims.exp.saturating_sub(claims.iat) > self.access_ttl.num_seconds() {
            return Err(TokenError::Invalid);
        }
        Ok(claims)
    }

    fn memo(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Claims>> {
        // Every write is one insert or a clear: a poisoned lock still holds a usable map.
        self.verified.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A fresh opaque refresh token (256 bits).
pub fn new_refresh_token() -> String {
    format!("pbr_{}", b64(&random_bytes::<32>()))
}
