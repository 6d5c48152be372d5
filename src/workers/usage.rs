//! The one writer of what requests record in memory (DESIGN §11): last-used
//! times (`api_keys.last_used_at`, never moved backwards), usage counters
//! (`key_usage`, added to, so instances add up) and `key.rate_limited` events,
//! in one batch. Batches come from
//! [`flush`], which a ticker calls every `settings.last_used.flush_interval`,
//! and once more at shutdown. A part of a batch whose write fails goes back
//! into memory, merged with what was recorded since, and is retried with the
//! next flush: an outage loses no use and counts none twice.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use loco_rs::{app::AppContext, bgworker::BackgroundWorker, Result};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    auth::AuthState,
    events::{self, rate_limited::RateLimitedKey},
    models::{
        api_keys,
        key_usage::{self, OutcomeCounts, UsageIncrement},
    },
    usage::{Counts, HourUsage},
};

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct UsageBatch {
    pub last_used: HashMap<Uuid, DateTime<Utc>>,
    pub usage: Vec<HourUsage>,
    pub rate_limited: Vec<RateLimitedKey>,
}

impl UsageBatch {
    fn drain(state: &AuthState, now: DateTime<Utc>) -> Self {
        Self {
            last_used: state.last_used.drain(),
            usage: state.usage.drain(now),
            rate_limited: state.rate_limited.drain(),
        }
    }

    fn is_empty(&self) -> bool {
        self.last_used.is_empty() && self.usage.is_empty() && self.rate_limited.is_empty()
    }
}

pub struct UsageWorker {
    ctx: AppContext,
}

#[async_trait::async_trait]
impl BackgroundWorker<UsageBatch> for UsageWorker {
    fn build(ctx: &AppContext) -> Self {
        Self { ctx: ctx.clone() }
    }

    async fn perform(&self, batch: UsageBatch) -> Result<()> {
        write_or_keep(&self.ctx, batch).await
    }
}

/// Hands everything recorded since the last flush to the worker. Returns how
/// many keys have a new last-used time in the batch.
///
/// # Errors
/// When the job cannot be queued.
pub async fn flush(ctx: &AppContext, state: &AuthState) -> Result<usize> {
    let batch = UsageBatch::drain(state, Utc::now());
    let keys = batch.last_used.len();
    if !batch.is_empty() {
        UsageWorker::perform_later(ctx, batch).await?;
    }
    Ok(keys)
}

/// Writes what is left, in this task: at shutdown no queue may outlive us.
///
/// # Errors
/// Database errors (what could not be written is then lost with the process).
pub async fn flush_now(ctx: &AppContext, state: &AuthState) -> Result<usize> {
    let batch = UsageBatch::drain(state, Utc::now());
    let keys = batch.last_used.len();
    write_or_keep(ctx, batch).await?;
    Ok(keys)
}

/// Writes the parts of `batch`; a part that fails goes back to memory.
async fn write_or_keep(ctx: &AppContext, batch: UsageBatch) -> Result<()> {
    let state = AuthState::of(ctx).map_err(|err| loco_rs::Error::Message(err.to_string()))?;
    let last_used = api_keys::record_last_used(&ctx.db, &batch.last_used).await;
    if last_used.is_err() {
        state.last_used.merge(batch.last_used);
    }
    let increments: Vec<_> = batch.usage.iter().map(increment).collect();
    let usage = key_usage::add(&ctx.db, &increments).await;
    if usage.is_err() {
        state.usage.merge(batch.usage);
    }
    let rate_limited = events::write_rate_limited(&ctx.db, &batch.rate_limited).await;
    if rate_limited.is_err() {
        state.rate_limited.merge(batch.rate_limited);
    }
    last_used?;
    usage?;
    rate_limited?;
    Ok(())
}

fn increment(hour: &HourUsage) -> UsageIncrement {
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let Counts {
        valid,
        rate_limited,
        expired,
        revoked,
        disabled,
    } = hour.counts;
    UsageIncrement {
        key_id: hour.key_id,
        hour: hour.hour_start(),
        counts: OutcomeCounts {
            valid: count(valid),
            rate_limited: count(rate_limited),
            expired: count(expired),
            revoked: count(revoked),
            disabled: count(disabled),
        },
    }
}

/// Spawns the ticker that flushes every `interval`.
pub fn spawn_ticker(ctx: &AppContext, state: std::sync::Arc<AuthState>) {
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(state.settings.last_used_flush_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(err) = flush(&ctx, &state).await {
                tracing::error!(error = %err, "could not flush last-used times and usage");
            }
        }
    });
}
