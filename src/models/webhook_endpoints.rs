//! Webhook endpoints: where a user wants their events sent, with the secret
//! that signs each delivery (stored as is: it must sign, so it cannot be
//! hashed; it is shown once, at creation). An endpoint is disabled when it
//! answers 410 or has failed for too long; its pending deliveries fail with it.

use chrono::{DateTime, Utc};
use sea_orm::{
    entity::prelude::*, sea_query::Expr, ActiveValue::Set, QueryOrder, TransactionTrait,
};
use uuid::Uuid;

pub use super::_entities::webhook_endpoints::{self, ActiveModel, Entity, Model};

impl ActiveModelBehavior for ActiveModel {}
use super::{
    _entities::webhook_deliveries, api_keys::lock_user, events::EventType,
    webhook_deliveries::DeliveryStatus, ModelError,
};

/// Endpoints one user may have.
pub const MAX_PER_USER: u64 = 10;

/// Subscribes to every event type.
pub const ALL_EVENTS: &str = "*";

/// A new endpoint, checked by the controller.
pub struct NewEndpoint {
    pub url: String,
    /// Event type names, or `["*"]`.
    pub events: Vec<String>,
    pub description: Option<String>,
    /// `whsec_…`.
    pub secret: String,
}

/// Stores a new endpoint of `user_id`. Creates of one user take turns (the
/// user's row is locked first), so the cap holds under concurrent requests.
///
/// # Errors
/// `Conflict` when the user has [`MAX_PER_USER`] endpoints already.
pub async fn create(
    db: &DatabaseConnection,
    user_id: Uuid,
    new: NewEndpoint,
) -> Result<Model, ModelError> {
    let txn = db.begin().await?;
    lock_user(&txn, user_id).await?;
    let existing = Entity::find()
        .filter(webhook_endpoints::Column::UserId.eq(user_id))
        .count(&txn)
        .await?;
    if existing >= MAX_PER_USER {
        return Err(ModelError::Conflict(format!(
            "Limit of {MAX_PER_USER} webhook endpoints reached; delete one first"
        )));
    }
    let model = ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(user_id),
        url: Set(new.url),
        events: Set(serde_json::Value::from(new.events).to_string()),
        description: Set(new.description),
        secret: Set(new.secret),
        enabled: Set(true),
        disabled_reason: Set(None),
        failing_since: Set(None),
        created_at: Set(Utc::now().fixed_offset()),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(model)
}

/// The event types `endpoint` subscribed to (or `["*"]`).
pub fn event_types(endpoint: &Model) -> Vec<String> {
    serde_json::from_str(&endpoint.events).unwrap_or_default()
}

/// Whether `endpoint` wants events of `kind`.
pub fn subscribes_to(endpoint: &Model, kind: &str) -> bool {
    event_types(endpoint)
        .iter()
        .any(|subscribed| subscribed == ALL_EVENTS || subscribed == kind)
}

/// Whether `text` names something an endpoint may subscribe to.
pub fn is_event_type(text: &str) -> bool {
    text == ALL_EVENTS || EventType::parse(text).is_some()
}

/// The user's endpoints, newest first.
///
/// # Errors
/// Database errors.
pub async fn list(db: &DatabaseConnection, user_id: Uuid) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(webhook_endpoints::Column::UserId.eq(user_id))
        .order_by_desc(webhook_endpoints::Column::CreatedAt)
        .order_by_desc(webhook_endpoints::Column::Id)
        .all(db)
        .await
}

/// `owner`'s endpoint `id`.
///
/// # Errors
/// `NotFound` for an unknown endpoint or one of another user.
pub async fn find(db: &DatabaseConnection, owner: Uuid, id: Uuid) -> Result<Model, ModelError> {
    Entity::find_by_id(id)
        .filter(webhook_endpoints::Column::UserId.eq(owner))
        .one(db)
        .await?
        .ok_or(ModelError::NotFound("Webhook endpoint not found"))
}

/// Deletes `owner`'s endpoint `id` with its deliveries.
///
/// # Errors
/// `NotFound` for an unknown endpoint or one of another user.
pub async fn delete(db: &DatabaseConnection, owner: Uuid, id: Uuid) -> Result<(), ModelError> {
    let result = Entity::delete_many()
        .filter(webhook_endpoints::Column::Id.eq(id))
        .filter(webhook_endpoints::Column::UserId.eq(owner))
        .exec(db)
        .await?;
    if result.rows_affected == 0 {
        return Err(ModelError::NotFound("Webhook endpoint not found"));
    }
    Ok(())
}

/// Disables the endpoint for `reason`; its pending deliveries fail.
///
/// # Errors
/// Database errors.
pub async fn disable<C: ConnectionTrait>(db: &C, id: Uuid, reason: &str) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(webhook_endpoints::Column::Enabled, Expr::value(false))
        .col_expr(
            webhook_endpoints::Column::DisabledReason,
            Expr::value(reason.to_string()),
        )
        .filter(webhook_endpoints::Column::Id.eq(id))
        .exec(db)
        .await?;
    webhook_deliveries::Entity::update_many()
        .col_expr(
            webhook_deliveries::Column::Status,
            Expr::value(DeliveryStatus::Failed.as_str()),
        )
        .col_expr(
            webhook_deliveries::Column::Error,
            Expr::value(format!("Endpoint disabled: {reason}")),
        )
        .col_expr(
            webhook_deliveries::Column::NextAttemptAt,
            Expr::value(Option::<DateTimeWithTimeZone>::None),
        )
        .filter(webhook_deliveries::Column::EndpointId.eq(id))
        .filter(webhook_deliveries::Column::Status.eq(DeliveryStatus::Pending.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

/// Notes a failed attempt at `at`: starts the endpoint's run of failures, or
/// returns how long it has lasted.
///
/// # Errors
/// Database errors.
pub async fn note_failure<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    at: DateTime<Utc>,
) -> Result<chrono::TimeDelta, DbErr> {
    let Some(endpoint) = Entity::find_by_id(id).one(db).await? else {
        return Ok(chrono::TimeDelta::zero());
    };
    match endpoint.failing_since {
        Some(since) => Ok(at - since.with_timezone(&Utc)),
        None => {
            Entity::update_many()
                .col_expr(
                    webhook_endpoints::Column::FailingSince,
                    Expr::value(at.fixed_offset()),
                )
                .filter(webhook_endpoints::Column::Id.eq(id))
                .filter(webhook_endpoints::Column::FailingSince.is_null())
                .exec(db)
                .await?;
            Ok(chrono::TimeDelta::zero())
        }
    }
}

/// Notes a successful attempt: the endpoint's run of failures, if any, ends.
///
/// # Errors
/// Database errors.
pub async fn note_success<C: ConnectionTrait>(db: &C, id: Uuid) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(
            webhook_endpoints::Column::FailingSince,
            Expr::value(Option::<DateTimeWithTimeZone>::None),
        )
        .filter(webhook_endpoints::Column::Id.eq(id))
        .filter(webhook_endpoints::Column::FailingSince.is_not_null())
        .exec(db)
        .await?;
    Ok(())
}
