//! What `POST /keys/verify` answers: the key's outcome and, when the key
//! exists, whose it is and where its rate limit stands. Never the key.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{
    outcome::{KeyVerdict, Outcome},
    rate_limit::Usage,
};

/// `{valid, code}`, plus the key's facts unless `code` is `NOT_FOUND`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyVerification {
    pub valid: bool,
    #[schema(example = "VALID")]
    pub code: Outcome,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub key: Option<VerifiedKey>,
}

/// The key a verification named.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedKey {
    pub key_id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub expires_at: Option<DateTime<Utc>>,
    /// Null when the key has no rate limit (or was refused before it).
    pub rate_limit: Option<RateLimitState>,
}

/// The key's rate limit after this verification.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitState {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the window resets (as the `RateLimit-Reset` header).
    pub reset: u64,
}

impl KeyVerification {
    /// A string that is not even a well-formed key.
    pub const fn not_found() -> Self {
        Self {
            valid: false,
            code: Outcome::NotFound,
            key: None,
        }
    }
}

impl From<KeyVerdict> for KeyVerification {
    fn from(verdict: KeyVerdict) -> Self {
        Self {
            valid: verdict.outcome == Outcome::Valid,
            code: verdict.outcome,
            key: verdict.record.map(|record| VerifiedKey {
                key_id: record.key_id,
                user_id: record.user_id,
                name: record.name.clone(),
                expires_at: record.expires_at,
                rate_limit: verdict.rate_limit.map(RateLimitState::from),
            }),
        }
    }
}

impl From<Usage> for RateLimitState {
    fn from(usage: Usage) -> Self {
        Self {
            limit: usage.limit.max,
            remaining: usage.remaining(),
            reset: usage.retry_after_secs(),
        }
    }
}
