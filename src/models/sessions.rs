//! Sessions: one per sign-in, holding the hash of its current refresh token.
//! Rotation swaps the hash atomically; revocation is a timestamp, never a delete.

use chrono::{DateTime, Utc};
use sea_orm::{entity::prelude::*, sea_query::Expr, ActiveValue::Set, QueryFilter, QuerySelect};
use uuid::Uuid;

pub use super::_entities::sessions::{self, ActiveModel, Entity, Model};

impl ActiveModelBehavior for ActiveModel {}
use super::_entities::users;

/// Where a sign-in came from, kept for the user's own audit.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

impl Origin {
    /// The client IP, or `unknown` when the server was reached without a socket
    /// address (never in production), for rate-limit keys.
    pub fn ip_or_unknown(&self) -> &str {
        self.ip.as_deref().unwrap_or("unknown")
    }
}

/// # Errors
/// Database errors.
pub async fn create<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    user_id: Uuid,
    refresh_hash: String,
    expires_at: DateTime<Utc>,
    origin: Origin,
) -> Result<Model, DbErr> {
    ActiveModel {
        id: Set(id),
        user_id: Set(user_id),
        refresh_hash: Set(refresh_hash),
        expires_at: Set(expires_at.fixed_offset()),
        revoked_at: Set(None),
        created_at: Set(Utc::now().fixed_offset()),
        last_refreshed_at: Set(None),
        user_agent: Set(origin.user_agent),
        ip: Set(origin.ip),
    }
    .insert(db)
    .await
}

/// # Errors
/// Database errors.
pub async fn find(db: &DatabaseConnection, id: Uuid) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(id).one(db).await
}

/// What the access-token guard needs to know of a session and its user.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub user_id: Uuid,
    pub email: String,
    pub revoked: bool,
    pub user_active: bool,
    pub expires_at: DateTime<Utc>,
}

/// The session `id` with its user, in one query.
///
/// # Errors
/// Database errors.
pub async fn load_record(db: &DatabaseConnection, id: Uuid) -> Result<Option<SessionRow>, DbErr> {
    let row: Option<(
        Uuid,
        DateTimeWithTimeZone,
        Option<DateTimeWithTimeZone>,
        String,
        bool,
    )> = Entity::find_by_id(id)
        .select_only()
        .column(sessions::Column::UserId)
        .column(sessions::Column::ExpiresAt)
        .column(sessions::Column::RevokedAt)
        .column(users::Column::Email)
        .column(users::Column::IsActive)
        .inner_join(users::Entity)
        .into_tuple()
        .one(db)
        .await?;
    Ok(row.map(
        |(user_id, expires_at, revoked_at, email, user_active)| SessionRow {
            user_id,
            email,
            revoked: revoked_at.is_some(),
            user_active,
            expires_at: expires_at.with_timezone(&Utc),
        },
    ))
}

/// Replaces the refresh hash if it is still `current_hash` and the session is live.
/// False means another refresh won the race, or the session was revoked.
///
/// # Errors
/// Database errors.
pub async fn rotate(
    db: &DatabaseConnection,
    id: Uuid,
    current_hash: &str,
    new_hash: String,
) -> Result<bool, DbErr> {
    let result = Entity::update_many()
        .col_expr(sessions::Column::RefreshHash, Expr::value(new_hash))
        .col_expr(
            sessions::Column::LastRefreshedAt,
            Expr::value(Utc::now().fixed_offset()),
        )
        .filter(sessions::Column::Id.eq(id))
        .filter(sessions::Column::RefreshHash.eq(current_hash))
        .filter(sessions::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Marks the session revoked; its refresh token and every access token naming it
/// stop working. Revoking twice keeps the first time; true when this call
/// revoked it.
///
/// # Errors
/// Database errors.
pub async fn revoke<C: ConnectionTrait>(db: &C, id: Uuid) -> Result<bool, DbErr> {
    let result = Entity::update_many()
        .col_expr(
            sessions::Column::RevokedAt,
            Expr::value(Utc::now().fixed_offset()),
        )
        .filter(sessions::Column::Id.eq(id))
        .filter(sessions::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}
