//! Events: what happened to an account, one row each, written in the same
//! transaction as the change it records (so neither is ever stored without the
//! other). Writing an event also queues its webhook deliveries, in that same
//! transaction: the events table is the outbox the delivery worker reads.
//!
//! An event's `data` never holds a key, token, hash, password or secret: only
//! ids, names, display prefixes, times and client addresses.

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{
    entity::prelude::*, ActiveValue::Set, Condition, QueryOrder, QuerySelect, TransactionTrait,
};
use serde_json::{json, Value};
use uuid::Uuid;

pub use super::_entities::events::{self, ActiveModel, Entity, Model};

impl ActiveModelBehavior for ActiveModel {}
use super::{_entities::api_keys, sessions::Origin, webhook_deliveries};

/// What happened. The names are the `type` of the API and of webhook payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    SessionCreated,
    SessionRevoked,
    SessionReuseDetected,
    LoginFailed,
    KeyCreated,
    KeyRotated,
    KeyRevoked,
    KeyExpired,
    KeyRateLimited,
    UserDeactivated,
    UserActivated,
    WebhookTest,
}

impl EventType {
    pub const ALL: [Self; 12] = [
        Self::SessionCreated,
        Self::SessionRevoked,
        Self::SessionReuseDetected,
        Self::LoginFailed,
        Self::KeyCreated,
        Self::KeyRotated,
        Self::KeyRevoked,
        Self::KeyExpired,
        Self::KeyRateLimited,
        Self::UserDeactivated,
        Self::UserActivated,
        Self::WebhookTest,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SessionCreated => "session.created",
            Self::SessionRevoked => "session.revoked",
            Self::SessionReuseDetected => "session.reuse_detected",
            Self::LoginFailed => "login.failed",
            Self::KeyCreated => "key.created",
            Self::KeyRotated => "key.rotated",
            Self::KeyRevoked => "key.revoked",
            Self::KeyExpired => "key.expired",
            Self::KeyRateLimited => "key.rate_limited",
            Self::UserDeactivated => "user.deactivated",
            Self::UserActivated => "user.activated",
            Self::WebhookTest => "webhook.test",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// Which webhook endpoints an event is sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fanout {
    /// The user's enabled endpoints subscribed to its type (or to `*`).
    Subscribers,
    /// This endpoint only, whatever it subscribed to (`webhook.test`).
    Endpoint(Uuid),
}

/// An event about to be written.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub user_id: Uuid,
    pub kind: EventType,
    pub data: Value,
    pub at: DateTime<Utc>,
}

impl NewEvent {
    /// `kind` of `user_id`'s account, now.
    pub fn now(user_id: Uuid, kind: EventType, data: Value) -> Self {
        Self {
            user_id,
            kind,
            data,
            at: Utc::now(),
        }
    }
}

/// Writes `event` and queues its deliveries to the user's subscribed
/// endpoints. Call it with the transaction of the change the event records.
///
/// # Errors
/// Database errors.
pub async fn record<C: ConnectionTrait>(db: &C, event: NewEvent) -> Result<Model, DbErr> {
    record_to(db, event, Fanout::Subscribers).await
}

/// Writes `event` and queues its deliveries as `fanout` says.
///
/// # Errors
/// Database errors.
async fn record_to<C: ConnectionTrait>(
    db: &C,
    event: NewEvent,
    fanout: Fanout,
) -> Result<Model, DbErr> {
    // Microseconds: what PostgreSQL keeps, so both backends order alike.
    let at = event.at.trunc_subsecs(6).fixed_offset();
    let model = ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(event.user_id),
        r#type: Set(event.kind.as_str().to_string()),
        data: Set(event.data.to_string()),
        created_at: Set(at),
    }
    .insert(db)
    .await?;
    webhook_deliveries::enqueue(db, &model, fanout).await?;
    Ok(model)
}

/// Writes `event` and its deliveries as `fanout` says, in a transaction of
/// its own (for an event that records no change of its own).
///
/// # Errors
/// Database errors; then nothing is written.
pub async fn record_alone(
    db: &DatabaseConnection,
    event: NewEvent,
    fanout: Fanout,
) -> Result<Model, DbErr> {
    let txn = db.begin().await?;
    let model = record_to(&txn, event, fanout).await?;
    txn.commit().await?;
    Ok(model)
}

/// Writes events that record no change of their own (`login.failed`,
/// `key.rate_limited`), with their deliveries, in one transaction.
///
/// # Errors
/// Database errors; then none is written.
pub async fn record_all(db: &DatabaseConnection, events: Vec<NewEvent>) -> Result<u64, DbErr> {
    if events.is_empty() {
        return Ok(0);
    }
    let txn = db.begin().await?;
    let mut written = 0;
    for event in events {
        record(&txn, event).await?;
        written += 1;
    }
    txn.commit().await?;
    Ok(written)
}

/// A key as its events describe it: never the key or its hash.
pub fn key_data(key: &api_keys::Model) -> Value {
    let mut data = json!({
        "keyId": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "expiresAt": key.expires_at.map(|at| at.with_timezone(&Utc)),
    });
    if let Some(to) = key.rotated_to {
        data["rotatedTo"] = json!(to);
    }
    if let Some(from) = key.rotated_from {
        data["rotatedFrom"] = json!(from);
    }
    data
}

/// A session and where its request came from.
pub fn session_data(session_id: Uuid, origin: &Origin) -> Value {
    json!({
        "sessionId": session_id,
        "ip": origin.ip,
        "userAgent": origin.user_agent,
    })
}

/// A page of `user_id`'s events, newest first: at most `limit`, older than
/// the event `before` when given (in (created_at, id) order). An id that is not
/// one of the user's events gives an empty page.
///
/// # Errors
/// Database errors.
pub async fn page(
    db: &DatabaseConnection,
    user_id: Uuid,
    before: Option<Uuid>,
    limit: u64,
) -> Result<Vec<Model>, DbErr> {
    let mut query = Entity::find().filter(events::Column::UserId.eq(user_id));
    if let Some(before) = before {
        let Some(cursor) = Entity::find_by_id(before)
            .filter(events::Column::UserId.eq(user_id))
            .one(db)
            .await?
        else {
            return Ok(Vec::new());
        };
        query = query.filter(
            Condition::any()
                .add(events::Column::CreatedAt.lt(cursor.created_at))
                .add(
                    Condition::all()
                        .add(events::Column::CreatedAt.eq(cursor.created_at))
                        .add(events::Column::Id.lt(cursor.id)),
                ),
        );
    }
    query
        .order_by_desc(events::Column::CreatedAt)
        .order_by_desc(events::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

/// Deletes events older than `days` days, with their deliveries.
///
/// # Errors
/// Database errors.
pub async fn prune(db: &DatabaseConnection, days: u32) -> Result<u64, DbErr> {
    let cutoff = (Utc::now() - chrono::Duration::days(i64::from(days))).fixed_offset();
    let result = Entity::delete_many()
        .filter(events::Column::CreatedAt.lt(cutoff))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_parses_back_from_its_name() {
        for kind in EventType::ALL {
            assert_eq!(EventType::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventType::parse("key.stolen"), None);
        assert_eq!(EventType::parse("*"), None);
    }

    #[test]
    fn key_data_names_the_key_but_never_its_hash() {
        let now = Utc::now().fixed_offset();
        let key = api_keys::Model {
            id: Uuid::new_v4(),
            user_id: Uuid::new_v4(),
            key_hash: "ab".repeat(32),
            prefix: "sk_1a2b3c4d".into(),
            name: "billing".into(),
            is_active: true,
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
            rate_limit_requests: None,
            rate_limit_per_seconds: None,
            created_at: now,
            updated_at: now,
            rotated_to: Some(Uuid::nil()),
            rotated_from: None,
            expiry_recorded_at: None,
        };
        let data = key_data(&key);
        assert_eq!(data["name"], "billing");
        assert_eq!(data["prefix"], "sk_1a2b3c4d");
        assert_eq!(data["expiresAt"], Value::Null);
        assert_eq!(data["rotatedTo"], json!(Uuid::nil()));
        assert!(data.get("rotatedFrom").is_none());
        assert!(!data.to_string().contains(&key.key_hash));
    }
}
