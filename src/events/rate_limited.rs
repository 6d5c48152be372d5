//! `key.rate_limited`, decided on the request path and written off it. The
//! key guard notes the first refusal of a key in a rate-limit window here (a
//! push under a lock taken once per key and window, no I/O); the usage flush
//! worker drains these notes with its batch and writes them as events, and a
//! failed write merges them back for the next flush.

use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Notes kept while the database cannot take them; past this, new ones are
/// dropped (the usage counters still count every refusal).
const MAX_PENDING: usize = 10_000;

/// A key refused for its rate limit for the first time in a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitedKey {
    pub key_id: Uuid,
    pub at: DateTime<Utc>,
    /// The limit: `requests` per `per_seconds`.
    pub requests: u32,
    pub per_seconds: u64,
}

#[derive(Default)]
pub struct RateLimitedKeys {
    pending: Mutex<Vec<RateLimitedKey>>,
}

impl RateLimitedKeys {
    pub fn record(&self, key: RateLimitedKey) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.len() < MAX_PENDING {
            pending.push(key);
        } else {
            tracing::warn!(key_id = %key.key_id, "too many key.rate_limited events waiting for the database; dropping one");
        }
    }

    pub fn drain(&self) -> Vec<RateLimitedKey> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Takes back notes that could not be written, ahead of newer ones.
    pub fn merge(&self, mut failed: Vec<RateLimitedKey>) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        failed.append(&mut pending);
        failed.truncate(MAX_PENDING);
        *pending = failed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(n: u128) -> RateLimitedKey {
        RateLimitedKey {
            key_id: Uuid::from_u128(n),
            at: Utc::now(),
            requests: 1,
            per_seconds: 60,
        }
    }

    #[test]
    fn failed_notes_go_back_ahead_of_newer_ones() {
        let keys = RateLimitedKeys::default();
        keys.record(note(1));
        let failed = keys.drain();
        keys.record(note(2));
        keys.merge(failed);
        let ids: Vec<_> = keys.drain().iter().map(|key| key.key_id).collect();
        assert_eq!(ids, [Uuid::from_u128(1), Uuid::from_u128(2)]);
        assert!(keys.drain().is_empty());
    }

    #[test]
    fn memory_is_bounded() {
        let keys = RateLimitedKeys::default();
        for n in 0..(MAX_PENDING as u128 + 10) {
            keys.record(note(n));
        }
        assert_eq!(keys.drain().len(), MAX_PENDING);
    }
}
