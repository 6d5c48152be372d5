//! API keys: created and revoked by their owner, looked up by the SHA-256 of the key.
//! Revoking keeps the row for audit; pruning deletes rows long dead.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    entity::prelude::*,
    sea_query::{CaseStatement, Expr, ExprTrait, Query},
    ActiveValue::Set,
    Condition, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use uuid::Uuid;

pub use super::_entities::api_keys::{self, ActiveModel, Entity, Model};

impl ActiveModelBehavior for ActiveModel {}
use super::{_entities::users, on_unique_violation, ModelError};

/// What a new key is made of, checked by the controller. The key itself is not
/// stored: only its hash and the prefix that may be shown again.
pub struct NewKey {
    /// The SHA-256 of the key, hex encoded.
    pub key_hash: String,
    pub prefix: String,
    pub name: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub rate_limit: Option<KeyRateLimit>,
}

/// A key's own request limit: `requests` per `per_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRateLimit {
    pub requests: u32,
    pub per_seconds: u32,
}

impl KeyRateLimit {
    pub fn of(model: &Model) -> Option<Self> {
        Self::from_columns(model.rate_limit_requests, model.rate_limit_per_seconds)
    }

    fn from_columns(requests: Option<i32>, per_seconds: Option<i32>) -> Option<Self> {
        Some(Self {
            requests: u32::try_from(requests?).ok()?,
            per_seconds: u32::try_from(per_seconds?).ok()?,
        })
    }
}

/// Stores a new key of `user_id`.
///
/// Concurrent creates for one user take turns: each first writes the user's row
/// (a row lock on PostgreSQL, the write lock on SQLite) and only then counts the
/// active keys, so no two of them can both see room for the last key.
///
/// # Errors
/// `Conflict` when the name is taken by an active key or the user holds
/// `max_active` keys already.
pub async fn create(
    db: &DatabaseConnection,
    user_id: Uuid,
    new: NewKey,
    max_active: u64,
) -> Result<Model, ModelError> {
    let txn = db.begin().await?;
    users::Entity::update_many()
        .col_expr(
            users::Column::UpdatedAt,
            Expr::col(users::Column::UpdatedAt),
        )
        .filter(users::Column::Id.eq(user_id))
        .exec(&txn)
        .await?;
    let active = Entity::find()
        .filter(api_keys::Column::UserId.eq(user_id))
        .filter(api_keys::Column::RevokedAt.is_null())
        .count(&txn)
        .await?;
    if active >= max_active {
        return Err(ModelError::Conflict(format!(
            "Limit of {max_active} active API keys reached; revoke one first"
        )));
    }
    let now = Utc::now().fixed_offset();
    let model = ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(user_id),
        key_hash: Set(new.key_hash),
        prefix: Set(new.prefix),
        name: Set(new.name),
        is_active: Set(true),
        expires_at: Set(new.expires_at.map(|at| at.fixed_offset())),
        last_used_at: Set(None),
        revoked_at: Set(None),
        rate_limit_requests: Set(new.rate_limit.map(|limit| to_column(limit.requests))),
        rate_limit_per_seconds: Set(new.rate_limit.map(|limit| to_column(limit.per_seconds))),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(|err| on_unique_violation(err, "An active API key with this name already exists"))?;
    txn.commit().await?;
    Ok(model)
}

fn to_column(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// The user's keys, newest first.
///
/// # Errors
/// Database errors.
pub async fn list(db: &DatabaseConnection, user_id: Uuid) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(api_keys::Column::UserId.eq(user_id))
        .order_by_desc(api_keys::Column::CreatedAt)
        .order_by_desc(api_keys::Column::Id)
        .all(db)
        .await
}

/// Revokes a key, if `owner` (when given) owns it. Revoking twice is harmless.
///
/// # Errors
/// `NotFound` for an unknown key or one of another user.
pub async fn revoke(
    db: &DatabaseConnection,
    key_id: Uuid,
    owner: Option<Uuid>,
) -> Result<Model, ModelError> {
    let mut query = Entity::find_by_id(key_id);
    if let Some(owner) = owner {
        query = query.filter(api_keys::Column::UserId.eq(owner));
    }
    let key = query
        .one(db)
        .await?
        .ok_or(ModelError::NotFound("API key not found"))?;
    if key.revoked_at.is_some() {
        return Ok(key);
    }
    let now = Utc::now().fixed_offset();
    let mut key: ActiveModel = key.into();
    key.is_active = Set(false);
    key.revoked_at = Set(Some(now));
    key.updated_at = Set(now);
    Ok(key.update(db).await?)
}

/// What the key guard needs to know of a key and its owner.
#[derive(Debug, Clone)]
pub struct KeyRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub email: String,
    pub key_active: bool,
    pub user_active: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub rate_limit: Option<KeyRateLimit>,
}

/// The key whose SHA-256 is `key_hash` (hex), in one indexed query.
///
/// # Errors
/// Database errors.
pub async fn load_record(db: &DatabaseConnection, key_hash: &str) -> Result<Option<KeyRow>, DbErr> {
    type Row = (
        Uuid,
        Uuid,
        bool,
        Option<DateTimeWithTimeZone>,
        Option<i32>,
        Option<i32>,
        String,
        bool,
    );
    let row: Option<Row> = Entity::find()
        .select_only()
        .column(api_keys::Column::Id)
        .column(api_keys::Column::UserId)
        .column(api_keys::Column::IsActive)
        .column(api_keys::Column::ExpiresAt)
        .column(api_keys::Column::RateLimitRequests)
        .column(api_keys::Column::RateLimitPerSeconds)
        .column(users::Column::Email)
        .column(users::Column::IsActive)
        .inner_join(users::Entity)
        .filter(api_keys::Column::KeyHash.eq(key_hash))
        .into_tuple()
        .one(db)
        .await?;
    Ok(row.map(
        |(id, user_id, key_active, expires_at, requests, per_seconds, email, user_active)| KeyRow {
            id,
            user_id,
            email,
            key_active,
            user_active,
            expires_at: expires_at.map(|at| at.with_timezone(&Utc)),
            rate_limit: KeyRateLimit::from_columns(requests, per_seconds),
        },
    ))
}

/// Keys per statement when writing last-used times: three bind parameters per
/// key stay far below SQLite's limit (32,766; 999 before 3.32) and PostgreSQL's.
const LAST_USED_CHUNK: usize = 300;

/// Writes a batch of last-used times, a few hundred keys per statement, never
/// moving a time backwards. Returns how many keys were written; on an error the
/// chunks before it are written and the caller keeps the whole batch (writing
/// a time twice is harmless).
///
/// # Errors
/// Database errors.
pub async fn record_last_used(
    db: &DatabaseConnection,
    batch: &HashMap<Uuid, DateTime<Utc>>,
) -> Result<u64, DbErr> {
    let uses: Vec<_> = batch.iter().collect();
    let mut written = 0;
    for chunk in uses.chunks(LAST_USED_CHUNK) {
        let mut new_time = CaseStatement::new();
        for (key_id, at) in chunk {
            new_time = new_time.case(
                api_keys::Column::Id.eq(**key_id),
                Expr::value(at.fixed_offset()),
            );
        }
        let stored = Expr::col(api_keys::Column::LastUsedAt);
        let keep_latest = CaseStatement::new()
            .case(
                Condition::any()
                    .add(stored.clone().is_null())
                    .add(stored.clone().lt(new_time.clone())),
                new_time,
            )
            .finally(stored);
        let statement = Query::update()
            .table(api_keys::Entity)
            .value(api_keys::Column::LastUsedAt, keep_latest)
            .and_where(api_keys::Column::Id.is_in(chunk.iter().map(|(key_id, _)| **key_id)))
            .to_owned();
        written += db.execute(&statement).await?.rows_affected();
    }
    Ok(written)
}

/// Deletes keys revoked or expired more than `days` ago.
///
/// # Errors
/// Database errors.
pub async fn prune(db: &DatabaseConnection, days: u32) -> Result<u64, DbErr> {
    let cutoff = (Utc::now() - chrono::Duration::days(i64::from(days))).fixed_offset();
    let result = Entity::delete_many()
        .filter(
            Condition::any()
                .add(api_keys::Column::RevokedAt.lt(cutoff))
                .add(api_keys::Column::ExpiresAt.lt(cutoff)),
        )
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
