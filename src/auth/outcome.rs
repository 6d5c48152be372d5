//! What presenting an API key comes to: one outcome, decided here and only here,
//! and recorded at once (usage counters, last-used time, the first rate-limit
//! refusal of a window as a `key.rate_limited` note) for everything that
//! reports on keys. Recording is in memory: no I/O on the request path.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{cache::KeyRecord, rate_limit::Usage, AuthState};
use crate::events::rate_limited::RateLimitedKey;

/// The outcome of one presentation of a well-formed key (CONTRACT.md, "Key outcomes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    Valid,
    /// No such key; cannot be attributed to a key.
    NotFound,
    Revoked,
    /// Past `expiresAt`, the end of a rotation's grace period included.
    Expired,
    /// The owner is inactive.
    Disabled,
    /// Over the key's own rate limit.
    RateLimited,
}

/// A presentation's outcome, the key it names (unless `NotFound`), and where
/// the key's rate limit stands after it (when it has one and got that far).
pub struct KeyVerdict {
    pub outcome: Outcome,
    pub record: Option<Arc<KeyRecord>>,
    pub rate_limit: Option<Usage>,
}

/// Decides the outcome of presenting the key behind `record` (`None`: no such
/// key) at `now`, spends one request of its rate limit if it is otherwise
/// valid, and records the outcome: in the metrics, and against the key.
pub async fn verify_key(
    state: &AuthState,
    record: Option<Arc<KeyRecord>>,
    now: DateTime<Utc>,
) -> KeyVerdict {
    let Some(record) = record else {
        state.metrics.key_verified(Outcome::NotFound);
        return KeyVerdict {
            outcome: Outcome::NotFound,
            record: None,
            rate_limit: None,
        };
    };
    let mut outcome = record.standing_at(now);
    let mut rate_limit = None;
    if outcome == Outcome::Valid {
        if let Some(limit) = record.rate_limit.or(state.settings.limits.default_key) {
            // Boxed: a Redis round trip's future is large, and it would
            // otherwise make every key's verification carry its size.
            let usage = Box::pin(state.limiter.hit(&format!("key:{}", record.key_id), limit)).await;
            if usage.exceeded() {
                outcome = Outcome::RateLimited;
                // The first refusal of the window, on whichever instance
                // counts it (the counter may be shared): one event per window.
                if usage.used == limit.max.saturating_add(1) {
                    state.rate_limited.record(RateLimitedKey {
                        key_id: record.key_id,
                        at: now,
                        requests: limit.max,
                        per_seconds: limit.window.as_secs(),
                    });
                }
            }
            rate_limit = Some(usage);
        }
    }
    state.metrics.key_verified(outcome);
    state.usage.record(record.key_id, now, outcome);
    if matches!(outcome, Outcome::Valid | Outcome::RateLimited) {
        state.last_used.record(record.key_id, now);
    }
    KeyVerdict {
        outcome,
        record: Some(record),
        rate_limit,
    }
}
