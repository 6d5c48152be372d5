//! Last-used tracking that never writes on the request path: a request records
//! `key id → now` in memory (one entry per key, however many requests), and a
//! ticker hands the drained map to the `LastUsedWorker` every interval.

use std::{collections::HashMap, sync::Mutex};

use chrono::{DateTime, Utc};
use uuid::Uuid;

#[derive(Default)]
pub struct LastUsed {
    pending: Mutex<HashMap<Uuid, DateTime<Utc>>>,
}

impl LastUsed {
    pub fn record(&self, key_id: Uuid, at: DateTime<Utc>) {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        pending
            .entry(key_id)
            .and_modify(|latest| *latest = (*latest).max(at))
            .or_insert(at);
    }

    /// Everything recorded since the last drain.
    pub fn drain(&self) -> HashMap<Uuid, DateTime<Utc>> {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::mem::take(&mut *pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_uses_of_one_key_make_one_entry_with_the_latest_time() {
        let last_used = LastUsed::default();
        let key = Uuid::new_v4();
        let start = Utc::now();
        for seconds in [3, 1, 2] {
            last_used.record(key, start + chrono::Duration::seconds(seconds));
        }
        let batch = last_used.drain();
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[&key], start + chrono::Duration::seconds(3));
        assert!(last_used.drain().is_empty());
    }
}
