//! Issuing and verifying the HS256 access and refresh tokens. Each kind has its own
//! secret and its own `typ`, and is verified only with both, so one is never
//! accepted in place of the other.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: Uuid,
    pub email: String,
    pub sid: Uuid,
    pub typ: TokenType,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshClaims {
    pub sub: Uuid,
    pub sid: Uuid,
    pub typ: TokenType,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRejection {
    /// Well signed, but past its `exp`.
    Expired,
    /// Malformed, badly signed, of another algorithm, or of the other kind.
    Invalid,
}

/// A freshly signed access + refresh pair.
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
}

/// One token kind's keys and lifetime.
struct Signer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl Signer {
    fn new(secret: &str) -> Self {
        // Pinned to HS256: a token whose header names another algorithm (`none`,
        // HS512, RS256…) is refused before its signature is looked at.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    fn sign<C: Serialize>(&self, claims: &C) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
    }

    fn verify<C: DeserializeOwned>(&self, token: &str) -> Result<C, TokenRejection> {
        jsonwebtoken::decode::<C>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|err| match err.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenRejection::Expired,
                _ => TokenRejection::Invalid,
            })
    }
}

pub struct TokenKeys {
    access: Signer,
    refresh: Signer,
    access_ttl: Duration,
}

impl TokenKeys {
    pub fn new(access_secret: &str, refresh_secret: &str, access_ttl: Duration) -> Self {
        Self {
            access: Signer::new(access_secret),
            refresh: Signer::new(refresh_secret),
            access_ttl,
        }
    }

    /// Signs a pair for `session_id`. The refresh token expires with the session,
    /// so rotation never extends a session's life.
    ///
    /// # Errors
    /// When signing fails (it does not with HMAC keys).
    pub fn issue_pair(
        &self,
        user_id: Uuid,
        email: &str,
        session_id: Uuid,
        session_expires_at: DateTime<Utc>,
    ) -> Result<TokenPair, jsonwebtoken::errors::Error> {
        let now = Utc::now().timestamp();
        let access_exp = now + i64::try_from(self.access_ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let access = AccessClaims {
            sub: user_id,
            email: email.to_string(),
            sid: session_id,
            typ: TokenType::Access,
            iat: now,
            exp: access_exp.min(session_expires_at.timestamp()),
            jti: Uuid::new_v4(),
        };
        let refresh = RefreshClaims {
            sub: user_id,
            sid: session_id,
            typ: TokenType::Refresh,
            iat: now,
            exp: session_expires_at.timestamp(),
            jti: Uuid::new_v4(),
        };
        Ok(TokenPair {
            access_token: self.access.sign(&access)?,
            refresh_token: self.refresh.sign(&refresh)?,
        })
    }

    /// The claims of a valid, unexpired access token, or `None`.
    pub fn verify_access(&self, token: &str) -> Option<AccessClaims> {
        self.check_access(token).ok()
    }

    /// The claims of a valid, unexpired access token, or why not.
    ///
    /// # Errors
    /// `Expired` past `exp` (after the signature checked out), else `Invalid`.
    pub fn check_access(&self, token: &str) -> Result<AccessClaims, TokenRejection> {
        self.access
            .verify::<AccessClaims>(token)
            .and_then(|claims| {
                if claims.typ == TokenType::Access {
                    Ok(claims)
                } else {
                    Err(TokenRejection::Invalid)
                }
            })
    }

    /// The claims of a valid, unexpired refresh token, or `None`.
    pub fn verify_refresh(&self, token: &str) -> Option<RefreshClaims> {
        self.refresh
            .verify::<RefreshClaims>(token)
            .ok()
            .filter(|claims| claims.typ == TokenType::Refresh)
    }
}

/// What a session stores of its current refresh token: its SHA-256, hex encoded.
pub fn refresh_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration as ChronoDuration;

    const ACCESS: &str = "access-secret-access-secret-access-secret";
    const REFRESH: &str = "refresh-secret-refresh-secret-refresh-secret";

    fn keys() -> TokenKeys {
        TokenKeys::new(ACCESS, REFRESH, Duration::from_secs(3600))
    }

    fn pair() -> (TokenPair, Uuid, Uuid) {
        let (user, session) = (Uuid::new_v4(), Uuid::new_v4());
        let expires = Utc::now() + ChronoDuration::days(7);
        (
            keys().issue_pair(user, "a@b.io", session, expires).unwrap(),
            user,
            session,
        )
    }

    #[test]
    fn access_token_round_trips_with_its_claims() {
        let (pair, user, session) = pair();
        let claims = keys().verify_access(&pair.access_token).unwrap();
        assert_eq!((claims.sub, claims.sid), (user, session));
        assert_eq!(claims.email, "a@b.io");
        assert_eq!(claims.typ, TokenType::Access);
    }

    #[test]
    fn refresh_token_is_not_an_access_token_and_back() {
        let (pair, _, _) = pair();
        assert!(keys().verify_access(&pair.refresh_token).is_none());
        assert!(keys().verify_refresh(&pair.access_token).is_none());
        assert!(keys().verify_refresh(&pair.refresh_token).is_some());
    }

    #[test]
    fn refresh_typed_claims_signed_with_access_secret_are_refused() {
        let signer = Signer::new(ACCESS);
        let claims = RefreshClaims {
            sub: Uuid::new_v4(),
            sid: Uuid::new_v4(),
            typ: TokenType::Refresh,
            iat: Utc::now().timestamp(),
            exp: Utc::now().timestamp() + 60,
            jti: Uuid::new_v4(),
        };
        let token = signer.sign(&claims).unwrap();
        assert!(keys().verify_refresh(&token).is_none());
        assert!(keys().verify_access(&token).is_none());
    }

    #[test]
    fn expired_access_token_is_refused() {
        let keys = keys();
        let claims = AccessClaims {
            sub: Uuid::new_v4(),
            email: "a@b.io".into(),
            sid: Uuid::new_v4(),
            typ: TokenType::Access,
            iat: Utc::now().timestamp() - 120,
            exp: Utc::now().timestamp() - 60,
            jti: Uuid::new_v4(),
        };
        let token = keys.access.sign(&claims).unwrap();
        assert!(keys.verify_access(&token).is_none());
        assert_eq!(
            keys.check_access(&token).unwrap_err(),
            TokenRejection::Expired
        );
        assert_eq!(
            keys.check_access("not.a.token").unwrap_err(),
            TokenRejection::Invalid
        );
    }

    #[test]
    fn other_algorithms_are_refused() {
        use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
        let (pair, user, session) = pair();
        let claims = keys().verify_access(&pair.access_token).unwrap();
        assert_eq!((claims.sub, claims.sid), (user, session));
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(ACCESS.as_bytes()),
        )
        .unwrap();
        assert!(keys().verify_access(&hs512).is_none(), "HS512 accepted");

        let payload = pair.access_token.split('.').nth(1).unwrap();
        let signature = pair.access_token.split('.').nth(2).unwrap();
        for header in [
            r#"{"alg":"none","typ":"JWT"}"#,
            r#"{"alg":"RS256","typ":"JWT"}"#,
        ] {
            let header = URL_SAFE_NO_PAD.encode(header);
            for signature in ["", signature] {
                let token = format!("{header}.{payload}.{signature}");
                assert!(keys().verify_access(&token).is_none(), "{token} accepted");
            }
        }
    }

    #[test]
    fn refresh_hash_is_hex_sha256() {
        assert_eq!(refresh_hash("abc").len(), 64);
        assert_ne!(refresh_hash("abc"), refresh_hash("abd"));
    }
}
