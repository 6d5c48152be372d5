//! Writes recorded key uses to `api_keys.last_used_at`: a few hundred keys per
//! statement, never moving a time backwards. Batches come from [`flush`], which
//! a ticker calls every `settings.last_used.flush_interval`, and once more at
//! shutdown. A batch whose write fails goes back into memory and is retried
//! with the next one, so an outage loses no use.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use loco_rs::{app::AppContext, bgworker::BackgroundWorker, Result};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{auth::AuthState, models::api_keys};

#[derive(Debug, Serialize, Deserialize)]
pub struct LastUsedBatch {
    pub uses: HashMap<Uuid, DateTime<Utc>>,
}

pub struct LastUsedWorker {
    ctx: AppContext,
}

#[async_trait::async_trait]
impl BackgroundWorker<LastUsedBatch> for LastUsedWorker {
    fn build(ctx: &AppContext) -> Self {
        Self { ctx: ctx.clone() }
    }

    async fn perform(&self, batch: LastUsedBatch) -> Result<()> {
        write_or_keep(&self.ctx, batch.uses).await
    }
}

/// Hands everything recorded since the last flush to the worker. Returns how many
/// keys the batch holds.
///
/// # Errors
/// When the job cannot be queued.
pub async fn flush(ctx: &AppContext, state: &AuthState) -> Result<usize> {
    let uses = state.last_used.drain();
    let count = uses.len();
    if count > 0 {
        LastUsedWorker::perform_later(ctx, LastUsedBatch { uses }).await?;
    }
    Ok(count)
}

/// Writes `uses`; if that fails, hands them back to memory for the next flush.
async fn write_or_keep(ctx: &AppContext, uses: HashMap<Uuid, DateTime<Utc>>) -> Result<()> {
    if let Err(err) = api_keys::record_last_used(&ctx.db, &uses).await {
        let state = AuthState::of(ctx).map_err(|err| loco_rs::Error::Message(err.to_string()))?;
        state.last_used.merge(uses);
        return Err(err.into());
    }
    Ok(())
}

/// Writes what is left, in this task: at shutdown no queue may outlive us.
///
/// # Errors
/// Database errors (the batch is then lost with the process).
pub async fn flush_now(ctx: &AppContext, state: &AuthState) -> Result<usize> {
    let uses = state.last_used.drain();
    let count = uses.len();
    write_or_keep(ctx, uses).await?;
    Ok(count)
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
                tracing::error!(error = %err, "could not flush last-used times");
            }
        }
    });
}
