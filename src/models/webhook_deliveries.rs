//! Webhook deliveries: one row per attempt to send an event to an endpoint.
//! A pending row is work to do once `next_attempt_at` has come; a finished
//! attempt keeps its outcome (status, response status, error, duration) and,
//! if another is due, a new pending row with the next attempt number is
//! written in the same transaction. Every attempt of one event carries the
//! event's id, which receivers dedupe on.
//!
//! Workers claim due rows by moving `next_attempt_at` forward by a lease
//! (on PostgreSQL under `FOR UPDATE SKIP LOCKED`, so two instances never claim
//! one row); a claim that is never finished (a crashed instance) is due again
//! when its lease runs out. Finishing checks that the lease is still ours.

use std::collections::HashMap;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{
    entity::prelude::*,
    sea_query::{Expr, ExprTrait, LockBehavior, LockType, Query},
    ActiveValue::Set,
    QueryOrder, QuerySelect, TransactionTrait,
};
use uuid::Uuid;

pub use super::_entities::webhook_deliveries::{self, ActiveModel, Entity, Model};

impl ActiveModelBehavior for ActiveModel {}
use super::{
    _entities::{events, webhook_endpoints},
    events::Fanout,
    webhook_endpoints as endpoints,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Succeeded,
    Failed,
}

impl DeliveryStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
}

/// Queues the first attempt of `event` to each endpoint `fanout` names, due at
/// once. Runs in the transaction that writes the event.
///
/// # Errors
/// Database errors.
pub async fn enqueue<C: ConnectionTrait>(
    db: &C,
    event: &events::Model,
    fanout: Fanout,
) -> Result<(), DbErr> {
    let mut query = webhook_endpoints::Entity::find()
        .filter(webhook_endpoints::Column::UserId.eq(event.user_id))
        .filter(webhook_endpoints::Column::Enabled.eq(true));
    if let Fanout::Endpoint(id) = fanout {
        query = query.filter(webhook_endpoints::Column::Id.eq(id));
    }
    let rows: Vec<ActiveModel> = query
        .all(db)
        .await?
        .into_iter()
        .filter(|endpoint| {
            fanout != Fanout::Subscribers || endpoints::subscribes_to(endpoint, &event.r#type)
        })
        .map(|endpoint| first_attempt(endpoint.id, event))
        .collect();
    if !rows.is_empty() {
        Entity::insert_many(rows).exec(db).await?;
    }
    Ok(())
}

fn first_attempt(endpoint_id: Uuid, event: &events::Model) -> ActiveModel {
    ActiveModel {
        id: Set(Uuid::new_v4()),
        endpoint_id: Set(endpoint_id),
        event_id: Set(event.id),
        attempt: Set(1),
        status: Set(DeliveryStatus::Pending.as_str().to_string()),
        response_status: Set(None),
        error: Set(None),
        duration_ms: Set(None),
        created_at: Set(event.created_at),
        next_attempt_at: Set(Some(event.created_at)),
    }
}

/// Due attempts claimed by one worker until `lease_until`.
pub struct Claim {
    pub lease_until: DateTime<Utc>,
    pub deliveries: Vec<Model>,
}

/// Claims up to `limit` attempts due at `now`, oldest due first, leaving out
/// those of `busy` endpoints (this worker is sending to them already, and
/// sends to one endpoint in order). Each claimed row's `next_attempt_at`
/// becomes `lease_until`: if the worker dies, the attempt is due again then.
///
/// # Errors
/// Database errors.
pub async fn claim_due(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u64,
    busy: &[Uuid],
) -> Result<Claim, DbErr> {
    // Microseconds, as PostgreSQL stores them: the lease is compared again
    // when the attempt is finished.
    let lease_until = lease_until.trunc_subsecs(6);
    let mut due = Query::select();
    due.column(webhook_deliveries::Column::Id)
        .from(Entity)
        .and_where(webhook_deliveries::Column::Status.eq(DeliveryStatus::Pending.as_str()))
        .and_where(webhook_deliveries::Column::NextAttemptAt.lte(now.fixed_offset()))
        .order_by(
            webhook_deliveries::Column::NextAttemptAt,
            sea_orm::Order::Asc,
        )
        .limit(limit)
        // Ignored on SQLite, which serves one instance.
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    if !busy.is_empty() {
        due.and_where(webhook_deliveries::Column::EndpointId.is_not_in(busy.iter().copied()));
    }
    let mut deliveries = Entity::update_many()
        .col_expr(
            webhook_deliveries::Column::NextAttemptAt,
            Expr::value(lease_until.fixed_offset()),
        )
        .filter(Expr::col(webhook_deliveries::Column::Id).in_subquery(due))
        .exec_with_returning(db)
        .await?;
    deliveries.sort_by_key(|delivery| (delivery.created_at, delivery.attempt));
    Ok(Claim {
        lease_until,
        deliveries,
    })
}

/// The events and endpoints of claimed deliveries, by id.
pub struct DeliveryContext {
    pub events: HashMap<Uuid, events::Model>,
    pub endpoints: HashMap<Uuid, webhook_endpoints::Model>,
}

/// Loads what `deliveries` need to be sent.
///
/// # Errors
/// Database errors.
pub async fn context_of(
    db: &DatabaseConnection,
    deliveries: &[Model],
) -> Result<DeliveryContext, DbErr> {
    let events = events::Entity::find()
        .filter(events::Column::Id.is_in(deliveries.iter().map(|d| d.event_id)))
        .all(db)
        .await?
        .into_iter()
        .map(|event| (event.id, event))
        .collect();
    let endpoints = webhook_endpoints::Entity::find()
        .filter(webhook_endpoints::Column::Id.is_in(deliveries.iter().map(|d| d.endpoint_id)))
        .all(db)
        .await?
        .into_iter()
        .map(|endpoint| (endpoint.id, endpoint))
        .collect();
    Ok(DeliveryContext { events, endpoints })
}

/// How one attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempted {
    pub succeeded: bool,
    pub response_status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
    pub at: DateTime<Utc>,
}

/// What follows a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again at this time.
    RetryAt(DateTime<Utc>),
    /// No attempt is left.
    GiveUp,
    /// The endpoint is disabled, for this reason.
    Disable(String),
}

/// What [`finish`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    Recorded,
    /// Recorded, and the endpoint is disabled: its other pending attempts
    /// failed with it.
    EndpointDisabled,
    /// The claim had lapsed and another worker has the attempt: nothing written.
    ClaimLost,
}

/// Records the outcome of the claimed attempt `delivery` (claimed until
/// `lease_until`) and, after a failure, what `next` decides from the attempt
/// and how long the endpoint has been failing (disabling it, or queueing the
/// next attempt), in one transaction.
///
/// # Errors
/// Database errors.
pub async fn finish(
    db: &DatabaseConnection,
    delivery: &Model,
    lease_until: DateTime<Utc>,
    attempted: &Attempted,
    next: impl FnOnce(chrono::TimeDelta) -> AfterFailure,
) -> Result<Finished, DbErr> {
    let txn = db.begin().await?;
    let status = if attempted.succeeded {
        DeliveryStatus::Succeeded
    } else {
        DeliveryStatus::Failed
    };
    let updated = Entity::update_many()
        .col_expr(
            webhook_deliveries::Column::Status,
            Expr::value(status.as_str()),
        )
        .col_expr(
            webhook_deliveries::Column::ResponseStatus,
            Expr::value(attempted.response_status.map(i32::from)),
        )
        .col_expr(
            webhook_deliveries::Column::Error,
            Expr::value(attempted.error.clone()),
        )
        .col_expr(
            webhook_deliveries::Column::DurationMs,
            Expr::value(i32::try_from(attempted.duration_ms).unwrap_or(i32::MAX)),
        )
        .col_expr(
            webhook_deliveries::Column::NextAttemptAt,
            Expr::value(Option::<DateTimeWithTimeZone>::None),
        )
        .filter(webhook_deliveries::Column::Id.eq(delivery.id))
        .filter(webhook_deliveries::Column::Status.eq(DeliveryStatus::Pending.as_str()))
        .filter(webhook_deliveries::Column::NextAttemptAt.eq(lease_until.fixed_offset()))
        .exec(&txn)
        .await?;
    if updated.rows_affected == 0 {
        return Ok(Finished::ClaimLost);
    }
    let mut finished = Finished::Recorded;
    if attempted.succeeded {
        endpoints::note_success(&txn, delivery.endpoint_id).await?;
    } else {
        let failing_for = endpoints::note_failure(&txn, delivery.endpoint_id, attempted.at).await?;
        match next(failing_for) {
            AfterFailure::RetryAt(at) => {
                ActiveModel {
                    id: Set(Uuid::new_v4()),
                    endpoint_id: Set(delivery.endpoint_id),
                    event_id: Set(delivery.event_id),
                    attempt: Set(delivery.attempt + 1),
                    status: Set(DeliveryStatus::Pending.as_str().to_string()),
                    response_status: Set(None),
                    error: Set(None),
                    duration_ms: Set(None),
                    created_at: Set(attempted.at.trunc_subsecs(6).fixed_offset()),
                    next_attempt_at: Set(Some(at.trunc_subsecs(6).fixed_offset())),
                }
                .insert(&txn)
                .await?;
            }
            AfterFailure::GiveUp => {}
            AfterFailure::Disable(reason) => {
                endpoints::disable(&txn, delivery.endpoint_id, &reason).await?;
                finished = Finished::EndpointDisabled;
            }
        }
    }
    txn.commit().await?;
    Ok(finished)
}

/// Hands claimed attempts back unattempted, due at `now` (a worker that ran
/// out of its lease before reaching them).
///
/// # Errors
/// Database errors.
pub async fn release(
    db: &DatabaseConnection,
    deliveries: &[Model],
    lease_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if deliveries.is_empty() {
        return Ok(());
    }
    Entity::update_many()
        .col_expr(
            webhook_deliveries::Column::NextAttemptAt,
            Expr::value(now.fixed_offset()),
        )
        .filter(webhook_deliveries::Column::Id.is_in(deliveries.iter().map(|d| d.id)))
        .filter(webhook_deliveries::Column::Status.eq(DeliveryStatus::Pending.as_str()))
        .filter(webhook_deliveries::Column::NextAttemptAt.eq(lease_until.fixed_offset()))
        .exec(db)
        .await?;
    Ok(())
}

/// The newest `limit` attempts to `endpoint_id`, with their event's type.
///
/// # Errors
/// Database errors.
pub async fn list(
    db: &DatabaseConnection,
    endpoint_id: Uuid,
    limit: u64,
) -> Result<Vec<(Model, String)>, DbErr> {
    let rows = Entity::find()
        .filter(webhook_deliveries::Column::EndpointId.eq(endpoint_id))
        .order_by_desc(webhook_deliveries::Column::CreatedAt)
        .order_by_desc(webhook_deliveries::Column::Attempt)
        .order_by_desc(webhook_deliveries::Column::Id)
        .limit(limit)
        .find_also_related(events::Entity)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(delivery, event)| {
            let kind = event.map(|event| event.r#type).unwrap_or_default();
            (delivery, kind)
        })
        .collect())
}
