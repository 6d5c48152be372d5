//! Bodies of the `/keys` routes. Only `CreatedKeyResponse` ever holds a key.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    auth::api_key::ApiKey,
    controllers::keys::RateLimitBody,
    models::api_keys::{self, KeyRateLimit},
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

impl From<api_keys::Model> for KeyView {
    fn from(model: api_keys::Model) -> Self {
        Self {
            rate_limit: KeyRateLimit::of(&model).map(RateLimitBody::from),
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
