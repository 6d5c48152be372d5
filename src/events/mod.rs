//! Events and webhooks (DESIGN §11, "Events are rows first"). Every change an
//! account's owner should know of is written as a row of `events` in the
//! transaction that makes the change (`models::events`), and the same
//! transaction queues one delivery per subscribed webhook endpoint: the table
//! is the outbox. [`delivery`] is the worker that sends them, signed as
//! Standard Webhooks ([`signing`]), to addresses [`address`] allows.
//!
//! Why not Loco's job queue: here it runs in memory (`BackgroundAsync`), so a
//! job dies with the process; its PostgreSQL queue would add a worker process
//! and gives no retry schedule with jitter, `Retry-After` or leases per
//! attempt. The deliveries table is already durable and claimable.

pub mod address;
pub mod delivery;
pub mod rate_limited;
pub mod signing;

use std::collections::HashMap;

use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use serde_json::json;

use crate::models::{
    _entities::api_keys,
    events::{self, EventType, NewEvent},
};
use rate_limited::RateLimitedKey;

/// Writes the noted `key.rate_limited` events, with their deliveries, in one
/// transaction. Notes of keys deleted since are dropped. Returns how many
/// events were written.
///
/// # Errors
/// Database errors; then none is written and the caller keeps the notes.
pub async fn write_rate_limited(
    db: &DatabaseConnection,
    notes: &[RateLimitedKey],
) -> Result<u64, DbErr> {
    if notes.is_empty() {
        return Ok(0);
    }
    let keys: HashMap<_, _> = api_keys::Entity::find()
        .filter(api_keys::Column::Id.is_in(notes.iter().map(|note| note.key_id)))
        .all(db)
        .await?
        .into_iter()
        .map(|key| (key.id, key))
        .collect();
    let events = notes
        .iter()
        .filter_map(|note| {
            let key = keys.get(&note.key_id)?;
            let mut data = events::key_data(key);
            data["rateLimit"] =
                json!({ "requests": note.requests, "perSeconds": note.per_seconds });
            Some(NewEvent {
                user_id: key.user_id,
                kind: EventType::KeyRateLimited,
                data,
                at: note.at,
            })
        })
        .collect();
    events::record_all(db, events).await
}
