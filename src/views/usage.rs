//! Bodies of the usage reports: counters per outcome, in zero-filled buckets of
//! the requested range, oldest first.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::models::key_usage::{
    BucketCounts, Granularity, KeyBucketCounts, OutcomeCounts, UsageRange,
};

/// The width of a report's buckets: a UTC hour or a UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GranularityBody {
    Hour,
    Day,
}

impl From<Granularity> for GranularityBody {
    fn from(granularity: Granularity) -> Self {
        match granularity {
            Granularity::Hour => Self::Hour,
            Granularity::Day => Self::Day,
        }
    }
}

/// Presentations of keys by outcome; `total` is their sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageCounters {
    pub total: i64,
    pub valid: i64,
    pub rate_limited: i64,
    pub expired: i64,
    pub revoked: i64,
    pub disabled: i64,
}

impl From<OutcomeCounts> for UsageCounters {
    fn from(counts: OutcomeCounts) -> Self {
        Self {
            total: counts.total(),
            valid: counts.valid,
            rate_limited: counts.rate_limited,
            expired: counts.expired,
            revoked: counts.revoked,
            disabled: counts.disabled,
        }
    }
}

/// One hour or day of the range, from `start`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageBucket {
    #[schema(example = "2030-01-01T10:00:00Z")]
    pub start: DateTime<Utc>,
    #[serde(flatten)]
    pub counters: UsageCounters,
}

/// One key's usage over `[from, to)`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyUsageResponse {
    pub key_id: Uuid,
    pub granularity: GranularityBody,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub totals: UsageCounters,
    pub buckets: Vec<UsageBucket>,
}

/// The usage of all of the caller's keys over `[from, to)`, and per key.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageResponse {
    pub granularity: GranularityBody,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub totals: UsageCounters,
    pub buckets: Vec<UsageBucket>,
    /// The keys presented in the range, most presentations first.
    pub by_key: Vec<KeyTotal>,
}

/// A key's presentations over the whole range.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyTotal {
    pub key_id: Uuid,
    pub name: String,
    pub total: i64,
}

impl KeyUsageResponse {
    pub fn new(key_id: Uuid, range: &UsageRange, rows: Vec<BucketCounts>) -> Self {
        let (buckets, totals) = zero_filled(range, rows.iter().map(|row| (row.start, row.counts)));
        Self {
            key_id,
            granularity: range.granularity().into(),
            from: range.from(),
            to: range.to(),
            totals,
            buckets,
        }
    }
}

impl UsageResponse {
    pub fn new(range: &UsageRange, rows: Vec<KeyBucketCounts>) -> Self {
        let (buckets, totals) = zero_filled(range, rows.iter().map(|row| (row.start, row.counts)));
        let mut per_key: HashMap<Uuid, KeyTotal> = HashMap::new();
        for row in rows {
            per_key
                .entry(row.key_id)
                .or_insert_with(|| KeyTotal {
                    key_id: row.key_id,
                    name: row.name,
                    total: 0,
                })
                .total += row.counts.total();
        }
        let mut by_key: Vec<KeyTotal> = per_key.into_values().collect();
        by_key.sort_by(|a, b| {
            b.total
                .cmp(&a.total)
                .then_with(|| a.name.cmp(&b.name))
                .then_with(|| a.key_id.cmp(&b.key_id))
        });
        Self {
            granularity: range.granularity().into(),
            from: range.from(),
            to: range.to(),
            totals,
            buckets,
            by_key,
        }
    }
}

/// Every bucket of `range`, oldest first, with the sums of the rows that fall in
/// it (zero where none does), and the totals over all of them.
fn zero_filled(
    range: &UsageRange,
    rows: impl Iterator<Item = (DateTime<Utc>, OutcomeCounts)>,
) -> (Vec<UsageBucket>, UsageCounters) {
    let mut sums: Vec<(DateTime<Utc>, OutcomeCounts)> = range
        .bucket_starts()
        .map(|start| (start, OutcomeCounts::default()))
        .collect();
    let mut totals = OutcomeCounts::default();
    for (start, counts) in rows {
        if let Some((_, sum)) = range.bucket_of(start).and_then(|index| sums.get_mut(index)) {
            sum.add(counts);
            totals.add(counts);
        }
    }
    let buckets = sums
        .into_iter()
        .map(|(start, counts)| UsageBucket {
            start,
            counters: counts.into(),
        })
        .collect();
    (buckets, totals.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn valid(n: i64) -> OutcomeCounts {
        OutcomeCounts {
            valid: n,
            ..OutcomeCounts::default()
        }
    }

    #[test]
    fn buckets_are_zero_filled_oldest_first() {
        let range = UsageRange::new(
            Granularity::Hour,
            Some(at("2026-03-01T22:00:00Z")),
            Some(at("2026-03-02T01:00:00Z")),
            at("2030-01-01T00:00:00Z"),
        )
        .unwrap();
        let key_id = Uuid::new_v4();
        let rows = vec![BucketCounts {
            start: at("2026-03-02T00:00:00Z"),
            counts: valid(3),
        }];
        let report = KeyUsageResponse::new(key_id, &range, rows);
        let totals: Vec<i64> = report.buckets.iter().map(|b| b.counters.total).collect();
        assert_eq!(totals, [0, 0, 3]);
        assert_eq!(report.buckets[0].start, at("2026-03-01T22:00:00Z"));
        assert_eq!(report.totals.valid, 3);
    }

    #[test]
    fn by_key_sums_each_key_and_puts_the_busiest_first() {
        let range = UsageRange::new(
            Granularity::Day,
            Some(at("2026-03-01T00:00:00Z")),
            Some(at("2026-03-03T00:00:00Z")),
            at("2030-01-01T00:00:00Z"),
        )
        .unwrap();
        let (quiet, busy) = (Uuid::new_v4(), Uuid::new_v4());
        let row = |key_id, name: &str, day, n| KeyBucketCounts {
            key_id,
            name: name.into(),
            start: at(day),
            counts: valid(n),
        };
        let report = UsageResponse::new(
            &range,
            vec![
                row(quiet, "quiet", "2026-03-01T00:00:00Z", 2),
                row(busy, "busy", "2026-03-01T00:00:00Z", 1),
                row(busy, "busy", "2026-03-02T00:00:00Z", 4),
            ],
        );
        let order: Vec<(&str, i64)> = report
            .by_key
            .iter()
            .map(|key| (key.name.as_str(), key.total))
            .collect();
        assert_eq!(order, [("busy", 5), ("quiet", 2)]);
        let per_day: Vec<i64> = report.buckets.iter().map(|b| b.counters.total).collect();
        assert_eq!(per_day, [3, 4]);
        assert_eq!(report.totals.total, 7);
    }
}
