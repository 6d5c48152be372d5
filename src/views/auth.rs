//! Bodies of the `/auth` routes.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{auth::tokens::TokenPair, models::users};

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub name: Option<String>,
}

/// Signup and login: the user and a fresh token pair.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthResponse {
    pub user: UserView,
    pub access_token: String,
    pub refresh_token: String,
}

/// Refresh: a new pair; the old refresh token is spent.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenPairResponse {
    pub access_token: String,
    pub refresh_token: String,
}

/// `GET /auth/me`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeResponse {
    pub id: Uuid,
    pub email: String,
    pub name: Option<String>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
}

impl AuthResponse {
    pub fn new(user: users::Model, pair: TokenPair) -> Self {
        Self {
            user: UserView {
                id: user.id,
                email: user.email,
                name: user.name,
            },
            access_token: pair.access_token,
            refresh_token: pair.refresh_token,
        }
    }
}

impl From<TokenPair> for TokenPairResponse {
    fn from(pair: TokenPair) -> Self {
        Self {
            access_token: pair.access_token,
            refresh_token: pair.refresh_token,
        }
    }
}

impl From<users::Model> for MeResponse {
    fn from(user: users::Model) -> Self {
        Self {
            id: user.id,
            email: user.email,
            name: user.name,
            is_active: user.is_active,
            created_at: user.created_at.with_timezone(&Utc),
        }
    }
}
