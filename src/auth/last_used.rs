//! Last-used tracking that never writes on the request path: a request records
//! `key id → now` in memory (one entry per key, however many requests), and a
//! ticker hands the drained map to the `LastUsedWorker` every interval. A batch
//! whose write fails comes back with `merge`, keeping the later of two times.

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
        keep_latest(&mut pending, key_id, at);
    }

    /// Takes back a batch that could not be written, merged with what was
    /// recorded since.
    pub fn merge(&self, batch: HashMap<Uuid, DateTime<Utc>>) {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (key_id, at) in batch {
            keep_latest(&mut pending, key_id, at);
        }
    }

    /// Keys with a time not yet drained.
    pub fn pending(&self) -> usize {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
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

fn keep_latest(pending: &mut HashMap<Uuid, DateTime<Utc>>, key_id: Uuid, at: DateTime<Utc>) {
    pending
        .entry(key_id)
        .and_modify(|latest| *latest = (*latest).max(at))
        .or_insert(at);
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

    #[test]
    fn a_failed_batch_merges_back_without_moving_times_backwards() {
        let last_used = LastUsed::default();
        let (old, new) = (Uuid::new_v4(), Uuid::new_v4());
        let start = Utc::now();
        last_used.record(old, start);
        let failed = last_used.drain();
        // Uses recorded while the batch was being written.
        last_used.record(old, start + chrono::Duration::seconds(5));
        last_used.record(new, start);
        last_used.merge(failed);
        let batch = last_used.drain();
        assert_eq!(batch.len(), 2);
        assert_eq!(batch[&old], start + chrono::Duration::seconds(5));
        assert_eq!(batch[&new], start);
    }
}
