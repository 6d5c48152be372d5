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

/// `{valid, code}`, plus the key's facts unless `code` is `NOT_FOUND`. One flat
/// object (rather than a flattened optional part) so that the document says
/// exactly that: the facts are optional, and `expiresAt` / `rateLimit` may be
/// null when present.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyVerification {
    pub valid: bool,
    #[schema(example = "VALID")]
    pub code: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Null for a key that does not expire.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub expires_at: Option<Option<DateTime<Utc>>>,
    /// Null when the key has no rate limit (or was refused before it).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<RateLimitState>)]
    pub rate_limit: Option<Option<RateLimitState>>,
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
            key_id: None,
            user_id: None,
            name: None,
            expires_at: None,
            rate_limit: None,
        }
    }
}

impl From<KeyVerdict> for KeyVerification {
    fn from(verdict: KeyVerdict) -> Self {
        let Some(record) = verdict.record else {
            return Self::not_found();
        };
        Self {
            valid: verdict.outcome == Outcome::Valid,
            code: verdict.outcome,
            key_id: Some(record.key_id),
            user_id: Some(record.user_id),
            name: Some(record.name.clone()),
            expires_at: Some(record.expires_at),
            rate_limit: Some(verdict.rate_limit.map(RateLimitState::from)),
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
