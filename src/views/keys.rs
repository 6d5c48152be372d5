//! Bodies of the `/keys` routes. Only `CreatedKeyResponse` (and the rotation's
//! response, which holds one) ever shows a key. `RateLimitBody` is both read (at
//! creation) and shown.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    auth::api_key::ApiKey,
    models::api_keys::{self, KeyRateLimit, KeyStatus},
};

/// The one response that shows the key: store it now, it cannot be shown again.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedKeyResponse {
    pub id: Uuid,
    #[schema(example = "sk_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")]
    pub key: String,
    pub name: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub rate_limit: Option<RateLimitBody>,
    pub created_at: DateTime<Utc>,
}

/// A key as `GET /keys` lists it: never the key or its hash.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyView {
    pub id: Uuid,
    pub name: String,
    #[schema(example = "sk_1a2b3c4d")]
    pub prefix: String,
    pub is_active: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// The key's own limit; `null` when it has none (a configured default may apply).
    pub rate_limit: Option<RateLimitBody>,
    pub created_at: DateTime<Utc>,
    pub status: KeyStatusBody,
    /// The key that replaced this one by a rotation, or `null`.
    pub rotated_to: Option<Uuid>,
}

/// `active`; `rotating`: replaced, working until its grace period ends;
/// `expired` (a rotation's grace period included); `revoked`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatusBody {
    Active,
    Rotating,
    Expired,
    Revoked,
}

impl From<KeyStatus> for KeyStatusBody {
    fn from(status: KeyStatus) -> Self {
        match status {
            KeyStatus::Active => Self::Active,
            KeyStatus::Rotating => Self::Rotating,
            KeyStatus::Expired => Self::Expired,
            KeyStatus::Revoked => Self::Revoked,
        }
    }
}

/// The new key of a rotation, shown this once, and the key it replaces.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotatedKeyResponse {
    #[serde(flatten)]
    pub key: CreatedKeyResponse,
    pub rotated_from: Uuid,
}

impl CreatedKeyResponse {
    pub fn new(model: api_keys::Model, key: &ApiKey) -> Self {
        Self {
            id: model.id,
            key: key.reveal().to_string(),
            rate_limit: KeyRateLimit::of(&model).map(RateLimitBody::from),
            name: model.name,
            expires_at: model.expires_at.map(|at| at.with_timezone(&Utc)),
            created_at: model.created_at.with_timezone(&Utc),
        }
    }
}

impl KeyView {
    /// The key as it stands at `now` (which decides `expired`).
    pub fn new(model: api_keys::Model, now: DateTime<Utc>) -> Self {
        Self {
            rate_limit: KeyRateLimit::of(&model).map(RateLimitBody::from),
            status: KeyStatus::of(&model, now).into(),
            rotated_to: model.rotated_to,
            id: model.id,
            name: model.name,
            prefix: model.prefix,
            is_active: model.is_active,
            expires_at: model.expires_at.map(|at| at.with_timezone(&Utc)),
            last_used_at: model.last_used_at.map(|at| at.with_timezone(&Utc)),
            created_at: model.created_at.with_timezone(&Utc),
        }
    }
}

/// `requests` per `perSeconds`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RateLimitBody {
    #[schema(example = 100, minimum = 1, maximum = 1_000_000)]
    pub requests: u32,
    #[schema(example = 60, minimum = 1, maximum = 86_400)]
    pub per_seconds: u32,
}

const MAX_REQUESTS: u32 = 1_000_000;
const MAX_WINDOW_SECONDS: u32 = 86_400;

impl RateLimitBody {
    /// # Errors
    /// A message for the user naming the bound that is broken.
    pub fn parse(self) -> Result<KeyRateLimit, String> {
        if !(1..=MAX_REQUESTS).contains(&self.requests) {
            return Err(format!("rateLimit.requests must be 1 to {MAX_REQUESTS}"));
        }
        if !(1..=MAX_WINDOW_SECONDS).contains(&self.per_seconds) {
            return Err(format!(
                "rateLimit.perSeconds must be 1 to {MAX_WINDOW_SECONDS}"
            ));
        }
        Ok(KeyRateLimit {
            requests: self.requests,
            per_seconds: self.per_seconds,
        })
    }
}

impl From<KeyRateLimit> for RateLimitBody {
    fn from(limit: KeyRateLimit) -> Self {
        Self {
            requests: limit.requests,
            per_seconds: limit.per_seconds,
        }
    }
}
