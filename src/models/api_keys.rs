//! API keys: created and revoked by their owner, looked up by the SHA-256 of the key.
//! Revoking keeps the row for audit; pruning deletes rows long dead.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{
    entity::prelude::*,
    sea_query::{CaseStatement, Expr, ExprTrait, LockBehavior, LockType, Query},
    ActiveValue::Set,
    Condition, DatabaseTransaction, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use uuid::Uuid;

pub use super::_entities::api_keys::{self, ActiveModel, Entity, Model};

impl ActiveModelBehavior for ActiveModel {}
use super::{
    _entities::users,
    events::{self, EventType, NewEvent},
    on_unique_violation, ModelError,
};

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
/// Concurrent creates for one user take turns (see [`lock_user`]) and only then
/// count the active keys, so no two of them can both see room for the last key.
/// A key in its rotation grace period does not count: its successor does.
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
    lock_user(&txn, user_id).await?;
    let active = Entity::find()
        .filter(api_keys::Column::UserId.eq(user_id))
        .filter(api_keys::Column::RevokedAt.is_null())
        .filter(api_keys::Column::RotatedTo.is_null())
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
        rotated_to: Set(None),
        rotated_from: Set(None),
        expiry_recorded_at: Set(None),
    }
    .insert(&txn)
    .await
    .map_err(|err| on_unique_violation(err, "An active API key with this name already exists"))?;
    let data = events::key_data(&model);
    events::record(&txn, NewEvent::now(user_id, EventType::KeyCreated, data)).await?;
    txn.commit().await?;
    Ok(model)
}

/// Makes the changes of one user's keys (and webhook endpoints) take turns:
/// writing the user's row takes a row lock on PostgreSQL and the write lock on
/// SQLite, held until the transaction ends.
pub(super) async fn lock_user(txn: &DatabaseTransaction, user_id: Uuid) -> Result<(), DbErr> {
    users::Entity::update_many()
        .col_expr(
            users::Column::UpdatedAt,
            Expr::col(users::Column::UpdatedAt),
        )
        .filter(users::Column::Id.eq(user_id))
        .exec(txn)
        .await?;
    Ok(())
}

/// Where a key is in its life, as `GET /keys` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    Active,
    /// Replaced by a rotation, still working until its grace period ends.
    Rotating,
    /// Past its expiry, the end of a rotation's grace period included.
    Expired,
    Revoked,
}

impl KeyStatus {
    pub fn of(key: &Model, now: DateTime<Utc>) -> Self {
        if key.revoked_at.is_some() {
            Self::Revoked
        } else if key.expires_at.is_some_and(|at| at <= now) {
            Self::Expired
        } else if key.rotated_to.is_some() {
            Self::Rotating
        } else {
            Self::Active
        }
    }
}

/// The new half of a rotation: its hash and prefix. Name, rate limit and expiry
/// are the old key's.
pub struct Successor {
    /// The SHA-256 of the new key, hex encoded.
    pub key_hash: String,
    pub prefix: String,
}

/// A rotated key, as it is now, and the key that replaces it.
pub struct Rotation {
    pub old: Model,
    pub new: Model,
}

/// Replaces `owner`'s key `key_id` with a new key of the same name, rate limit
/// and expiry. The old key points to the new one and keeps working until
/// `min(now + grace, its expiry)`; with no grace it is revoked at once.
///
/// Runs in one transaction after [`lock_user`], so two rotations of one key
/// cannot both succeed. The cap is not checked: the old key stops counting as
/// the new one starts. The name passes to the new key because the unique index
/// on names skips rotated keys.
///
/// # Errors
/// `NotFound` for an unknown key or one of another user; `Conflict` for a key
/// that is revoked, expired or rotated already.
pub async fn rotate(
    db: &DatabaseConnection,
    owner: Uuid,
    key_id: Uuid,
    successor: Successor,
    grace: TimeDelta,
) -> Result<Rotation, ModelError> {
    let txn = db.begin().await?;
    lock_user(&txn, owner).await?;
    let old = Entity::find_by_id(key_id)
        .filter(api_keys::Column::UserId.eq(owner))
        .one(&txn)
        .await?
        .ok_or(ModelError::NotFound("API key not found"))?;
    let now = Utc::now();
    let refusal = match KeyStatus::of(&old, now) {
        KeyStatus::Active => None,
        KeyStatus::Rotating => Some("API key has already been rotated"),
        KeyStatus::Expired => Some("API key has expired"),
        KeyStatus::Revoked => Some("API key is revoked"),
    };
    if let Some(message) = refusal {
        return Err(ModelError::Conflict(message.into()));
    }

    let new_id = Uuid::new_v4();
    let stamp = now.fixed_offset();
    let new = ActiveModel {
        id: Set(new_id),
        user_id: Set(owner),
        key_hash: Set(successor.key_hash),
        prefix: Set(successor.prefix),
        name: Set(old.name.clone()),
        is_active: Set(true),
        expires_at: Set(old.expires_at),
        last_used_at: Set(None),
        revoked_at: Set(None),
        rate_limit_requests: Set(old.rate_limit_requests),
        rate_limit_per_seconds: Set(old.rate_limit_per_seconds),
        created_at: Set(stamp),
        updated_at: Set(stamp),
        rotated_to: Set(None),
        rotated_from: Set(Some(old.id)),
        expiry_recorded_at: Set(None),
    };
    let mut retiring: ActiveModel = old.clone().into();
    retiring.rotated_to = Set(Some(new_id));
    retiring.updated_at = Set(stamp);
    if grace <= TimeDelta::zero() {
        retiring.is_active = Set(false);
        retiring.revoked_at = Set(Some(stamp));
    } else {
        let grace_ends = (now + grace).fixed_offset();
        retiring.expires_at = Set(Some(
            old.expires_at
                .map_or(grace_ends, |at| Ord::min(at, grace_ends)),
        ));
    }
    // The old key leaves the name's unique index before the new one takes it.
    let old = retiring.update(&txn).await?;
    let new = new.insert(&txn).await?;
    let data = events::key_data(&old);
    events::record(&txn, NewEvent::now(owner, EventType::KeyRotated, data)).await?;
    txn.commit().await?;
    Ok(Rotation { old, new })
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

/// Revokes a key, if `owner` (when given) owns it, and records `key.revoked`.
/// Revoking twice is harmless (and recorded once).
///
/// # Errors
/// `NotFound` for an unknown key or one of another user.
pub async fn revoke(
    db: &DatabaseConnection,
    key_id: Uuid,
    owner: Option<Uuid>,
) -> Result<Model, ModelError> {
    let txn = db.begin().await?;
    let mut query = Entity::find_by_id(key_id);
    if let Some(owner) = owner {
        query = query.filter(api_keys::Column::UserId.eq(owner));
    }
    let key = query
        .lock_exclusive()
        .one(&txn)
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
    let key = key.update(&txn).await?;
    let event = NewEvent::now(key.user_id, EventType::KeyRevoked, events::key_data(&key));
    events::record(&txn, event).await?;
    txn.commit().await?;
    Ok(key)
}

/// Keys per sweep in [`record_expiries`].
const EXPIRY_SWEEP_CHUNK: u64 = 500;

/// Records `key.expired` for keys whose expiry has passed by `now` and that
/// have no such event yet (none revoked before it expired), up to a few
/// hundred a call; returns how many. Each key is claimed by setting its
/// `expiry_recorded_at`, under `FOR UPDATE SKIP LOCKED` on PostgreSQL, in the
/// transaction that writes its event: instances sweeping at once never record
/// one expiry twice.
///
/// # Errors
/// Database errors; then nothing is recorded.
pub async fn record_expiries(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<u64, DbErr> {
    let txn = db.begin().await?;
    let mut due = Query::select();
    due.column(api_keys::Column::Id)
        .from(Entity)
        .and_where(api_keys::Column::ExpiryRecordedAt.is_null())
        .and_where(api_keys::Column::ExpiresAt.lte(now.fixed_offset()))
        .cond_where(
            Condition::any()
                .add(api_keys::Column::RevokedAt.is_null())
                .add(
                    Expr::col(api_keys::Column::RevokedAt)
                        .gt(Expr::col(api_keys::Column::ExpiresAt)),
                ),
        )
        .limit(EXPIRY_SWEEP_CHUNK)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    let expired = Entity::update_many()
        .col_expr(
            api_keys::Column::ExpiryRecordedAt,
            Expr::value(now.fixed_offset()),
        )
        .filter(Expr::col(api_keys::Column::Id).in_subquery(due))
        .exec_with_returning(&txn)
        .await?;
    for key in &expired {
        let event = NewEvent::now(key.user_id, EventType::KeyExpired, events::key_data(key));
        events::record(&txn, event).await?;
    }
    txn.commit().await?;
    Ok(expired.len() as u64)
}

/// What the key guard needs to know of a key and its owner.
#[derive(Debug, Clone)]
pub struct KeyRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
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
        String,
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
        .column(api_keys::Column::Name)
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
        |(id, user_id, name, key_active, expires_at, requests, per_seconds, email, user_active)| {
            KeyRow {
                id,
                user_id,
                name,
                email,
                key_active,
                user_active,
                expires_at: expires_at.map(|at| at.with_timezone(&Utc)),
                rate_limit: KeyRateLimit::from_columns(requests, per_seconds),
            }
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
