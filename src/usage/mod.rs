//! Key usage, counted in memory on the request path: per (key, UTC hour) one
//! set of atomic counters, one per outcome, in a sharded map (no lock that all
//! requests contend on, no I/O). The flush worker drains them with last-used
//! times and adds them to the database; a batch that fails to write is merged
//! back, so nothing counted is lost.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use chrono::{DateTime, TimeZone, Utc};
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::outcome::Outcome;

const HOUR_SECS: i64 = 3600;

/// The counters a key's presentations in one hour add up to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub valid: u64,
    pub rate_limited: u64,
    pub expired: u64,
    pub revoked: u64,
    pub disabled: u64,
}

impl Counts {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Counts of one key in one UTC hour (`hour`: the hour's start, in seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourUsage {
    pub key_id: Uuid,
    pub hour: i64,
    pub counts: Counts,
}

impl HourUsage {
    pub fn hour_start(&self) -> DateTime<Utc> {
        Utc.timestamp_opt(self.hour, 0).single().unwrap_or_default()
    }
}

#[derive(Default)]
struct Counters {
    valid: AtomicU64,
    rate_limited: AtomicU64,
    expired: AtomicU64,
    revoked: AtomicU64,
    disabled: AtomicU64,
}

impl Counters {
    fn counter(&self, outcome: Outcome) -> Option<&AtomicU64> {
        match outcome {
            Outcome::Valid => Some(&self.valid),
            Outcome::RateLimited => Some(&self.rate_limited),
            Outcome::Expired => Some(&self.expired),
            Outcome::Revoked => Some(&self.revoked),
            Outcome::Disabled => Some(&self.disabled),
            Outcome::NotFound => None,
        }
    }

    /// Takes the counts, leaving zeros: an increment lands either in what is
    /// taken or in what stays, never in neither.
    fn take(&self) -> Counts {
        Counts {
            valid: self.valid.swap(0, Ordering::AcqRel),
            rate_limited: self.rate_limited.swap(0, Ordering::AcqRel),
            expired: self.expired.swap(0, Ordering::AcqRel),
            revoked: self.revoked.swap(0, Ordering::AcqRel),
            disabled: self.disabled.swap(0, Ordering::AcqRel),
        }
    }

    fn holds_any(&self) -> bool {
        [
            &self.valid,
            &self.rate_limited,
            &self.expired,
            &self.revoked,
            &self.disabled,
        ]
        .iter()
        .any(|counter| counter.load(Ordering::Acquire) > 0)
    }

    fn put(&self, counts: Counts) {
        self.valid.fetch_add(counts.valid, Ordering::AcqRel);
        self.rate_limited
            .fetch_add(counts.rate_limited, Ordering::AcqRel);
        self.expired.fetch_add(counts.expired, Ordering::AcqRel);
        self.revoked.fetch_add(counts.revoked, Ordering::AcqRel);
        self.disabled.fetch_add(counts.disabled, Ordering::AcqRel);
    }
}

#[derive(Default)]
pub struct UsageCounters {
    hours: DashMap<(Uuid, i64), Arc<Counters>>,
}

fn hour_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(HOUR_SECS) * HOUR_SECS
}

impl UsageCounters {
    /// Counts one presentation of `key_id` at `at`. `NotFound` names no key and
    /// is not counted here.
    pub fn record(&self, key_id: Uuid, at: DateTime<Utc>, outcome: Outcome) {
        let key = (key_id, hour_of(at));
        let counters = match self.hours.get(&key) {
            Some(counters) => counters.clone(),
            None => self.hours.entry(key).or_default().clone(),
        };
        if let Some(counter) = counters.counter(outcome) {
            counter.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Everything counted since the last drain. Hours that ended before the
    /// previous one are dropped from the map once drained (no request counts
    /// into them any more).
    pub fn drain(&self, now: DateTime<Utc>) -> Vec<HourUsage> {
        let mut drained = Vec::new();
        for entry in &self.hours {
            let counts = entry.value().take();
            if !counts.is_empty() {
                let (key_id, hour) = *entry.key();
                drained.push(HourUsage {
                    key_id,
                    hour,
                    counts,
                });
            }
        }
        let keep_from = hour_of(now) - HOUR_SECS;
        self.hours.retain(|(_, hour), _| *hour >= keep_from);
        drained
    }

    /// (key, hour) entries with counts not yet drained.
    pub fn pending(&self) -> usize {
        self.hours
            .iter()
            .filter(|entry| entry.value().holds_any())
            .count()
    }

    /// Takes back counts that could not be written.
    pub fn merge(&self, usage: Vec<HourUsage>) {
        for hour in usage {
            self.hours
                .entry((hour.key_id, hour.hour))
                .or_default()
                .put(hour.counts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Adds up drained counts per (key, hour).
    fn sum(
        usage: impl IntoIterator<Item = HourUsage>,
    ) -> std::collections::HashMap<(Uuid, i64), Counts> {
        let mut sums = std::collections::HashMap::<(Uuid, i64), Counts>::new();
        for hour in usage {
            let sum = sums.entry((hour.key_id, hour.hour)).or_default();
            sum.valid += hour.counts.valid;
            sum.rate_limited += hour.counts.rate_limited;
            sum.expired += hour.counts.expired;
            sum.revoked += hour.counts.revoked;
            sum.disabled += hour.counts.disabled;
        }
        sums
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn presentations_are_counted_per_key_hour_and_outcome() {
        let counters = UsageCounters::default();
        let key = Uuid::new_v4();
        for _ in 0..3 {
            counters.record(key, at("2026-12-01T09:59:59Z"), Outcome::Valid);
        }
        counters.record(key, at("2026-12-01T09:10:00Z"), Outcome::RateLimited);
        counters.record(key, at("2026-12-01T10:00:00Z"), Outcome::Expired);
        counters.record(key, at("2026-12-01T10:00:00Z"), Outcome::NotFound);
        let sums = sum(counters.drain(at("2026-12-01T10:00:01Z")));
        let nine = at("2026-12-01T09:00:00Z").timestamp();
        let ten = at("2026-12-01T10:00:00Z").timestamp();
        assert_eq!(sums.len(), 2);
        assert_eq!(
            sums[&(key, nine)],
            Counts {
                valid: 3,
                rate_limited: 1,
                ..Counts::default()
            }
        );
        assert_eq!(
            sums[&(key, ten)],
            Counts {
                expired: 1,
                ..Counts::default()
            }
        );
        assert!(counters.drain(at("2026-12-01T10:00:02Z")).is_empty());
    }

    #[test]
    fn a_failed_batch_merges_back_with_newer_counts() {
        let counters = UsageCounters::default();
        let key = Uuid::new_v4();
        let now = at("2026-12-01T09:30:00Z");
        counters.record(key, now, Outcome::Valid);
        let failed = counters.drain(now);
        counters.record(key, now, Outcome::Valid);
        counters.record(key, now, Outcome::Revoked);
        counters.merge(failed);
        let sums = sum(counters.drain(now));
        assert_eq!(
            sums[&(key, hour_of(now))],
            Counts {
                valid: 2,
                revoked: 1,
                ..Counts::default()
            }
        );
    }

    #[test]
    fn old_hours_leave_memory_once_drained() {
        let counters = UsageCounters::default();
        let key = Uuid::new_v4();
        counters.record(key, at("2026-12-01T07:30:00Z"), Outcome::Valid);
        assert_eq!(counters.drain(at("2026-12-01T09:30:00Z")).len(), 1);
        assert!(counters.hours.is_empty());
    }

    #[test]
    fn concurrent_increments_are_all_counted() {
        let counters = Arc::new(UsageCounters::default());
        let key = Uuid::new_v4();
        let now = Utc::now();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let counters = counters.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        counters.record(key, now, Outcome::Valid);
                    }
                })
            })
            .collect();
        let mut drained = Vec::new();
        for _ in 0..50 {
            drained.extend(counters.drain(now));
        }
        for thread in threads {
            thread.join().unwrap();
        }
        drained.extend(counters.drain(now));
        let total: u64 = sum(drained).values().map(|counts| counts.valid).sum();
        assert_eq!(total, 40_000);
    }
}
