//! Usage counters: how often each key was presented, per UTC hour and outcome.
//! The flush adds to them (so instances add up); reports read them back in
//! buckets of an hour or a day, one query each.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{
    entity::prelude::*,
    sea_query::{Expr, ExprTrait, Func, OnConflict, Query, SimpleExpr},
    Condition, DbBackend, JoinType, QuerySelect, TransactionTrait,
};
use uuid::Uuid;

use super::_entities::api_keys;
pub use super::_entities::key_usage::{self, ActiveModel, Entity, Model};

impl ActiveModelBehavior for ActiveModel {}

/// Presentations of a key, one counter per outcome that can be attributed to a
/// key (`NOT_FOUND` cannot).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OutcomeCounts {
    pub valid: i64,
    pub rate_limited: i64,
    pub expired: i64,
    pub revoked: i64,
    pub disabled: i64,
}

impl OutcomeCounts {
    /// Adds `other`'s counters to these.
    pub fn add(&mut self, other: Self) {
        self.valid += other.valid;
        self.rate_limited += other.rate_limited;
        self.expired += other.expired;
        self.revoked += other.revoked;
        self.disabled += other.disabled;
    }

    /// All presentations, whatever their outcome.
    pub fn total(&self) -> i64 {
        self.valid + self.rate_limited + self.expired + self.revoked + self.disabled
    }
}

/// Counts to add to one key's counters of one hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageIncrement {
    pub key_id: Uuid,
    /// The start of the UTC hour (any time within it is truncated to it).
    pub hour: DateTime<Utc>,
    pub counts: OutcomeCounts,
}

/// Rows per statement in [`add`]: seven bind parameters a row stay under 999,
/// SQLite's limit before 3.32 (PostgreSQL's is 65,535).
const ADD_CHUNK: usize = 140;

/// Adds a batch of increments to the stored counters, in one transaction: each
/// (key, hour) row is created or has the increment added to it
/// (`ON CONFLICT … DO UPDATE SET valid = key_usage.valid + excluded.valid, …`),
/// so instances flushing the same key and hour add up. Increments of one
/// (key, hour) are merged first and written in (key, hour) order, so two
/// instances flushing at once lock rows in the same order and never deadlock.
///
/// Increments of keys that no longer exist (pruned since the use was counted)
/// are dropped, not failed: each chunk's key ids are looked up first, in the
/// same transaction. Returns how many (key, hour) rows were written.
///
/// # Errors
/// Database errors. Then nothing of the batch is written: the caller keeps all
/// of it and retries without counting anything twice.
pub async fn add(db: &DatabaseConnection, increments: &[UsageIncrement]) -> Result<u64, DbErr> {
    let rows = merge(increments);
    if rows.is_empty() {
        return Ok(0);
    }
    let txn = db.begin().await?;
    let mut written = 0;
    for chunk in rows.chunks(ADD_CHUNK) {
        let existing: HashSet<Uuid> = api_keys::Entity::find()
            .select_only()
            .column(api_keys::Column::Id)
            .filter(api_keys::Column::Id.is_in(chunk.iter().map(|row| row.key_id)))
            .into_tuple::<Uuid>()
            .all(&txn)
            .await?
            .into_iter()
            .collect();
        let mut insert = Query::insert();
        insert.into_table(Entity).columns([
            key_usage::Column::KeyId,
            key_usage::Column::Hour,
            key_usage::Column::Valid,
            key_usage::Column::RateLimited,
            key_usage::Column::Expired,
            key_usage::Column::Revoked,
            key_usage::Column::Disabled,
        ]);
        let mut any = false;
        for row in chunk.iter().filter(|row| existing.contains(&row.key_id)) {
            let counts = row.counts;
            insert.values_panic([
                row.key_id.into(),
                row.hour.fixed_offset().into(),
                counts.valid.into(),
                counts.rate_limited.into(),
                counts.expired.into(),
                counts.revoked.into(),
                counts.disabled.into(),
            ]);
            any = true;
        }
        if !any {
            continue;
        }
        insert.on_conflict(
            OnConflict::columns([key_usage::Column::KeyId, key_usage::Column::Hour])
                .value(key_usage::Column::Valid, added(key_usage::Column::Valid))
                .value(
                    key_usage::Column::RateLimited,
                    added(key_usage::Column::RateLimited),
                )
                .value(
                    key_usage::Column::Expired,
                    added(key_usage::Column::Expired),
                )
                .value(
                    key_usage::Column::Revoked,
                    added(key_usage::Column::Revoked),
                )
                .value(
                    key_usage::Column::Disabled,
                    added(key_usage::Column::Disabled),
                )
                .to_owned(),
        );
        written += txn.execute(&insert).await?.rows_affected();
    }
    txn.commit().await?;
    Ok(written)
}

/// `key_usage.<column> + excluded.<column>`: the stored count plus the increment.
fn added(column: key_usage::Column) -> SimpleExpr {
    Expr::col((Entity, column)).add(Expr::col(("excluded", column)))
}

/// One increment per (key, hour), in (key, hour) order, none of them empty.
fn merge(increments: &[UsageIncrement]) -> Vec<UsageIncrement> {
    let mut merged: BTreeMap<(Uuid, DateTime<Utc>), OutcomeCounts> = BTreeMap::new();
    for increment in increments {
        let hour = Granularity::Hour.floor(increment.hour);
        merged
            .entry((increment.key_id, hour))
            .or_default()
            .add(increment.counts);
    }
    merged
        .into_iter()
        .filter(|(_, counts)| *counts != OutcomeCounts::default())
        .map(|((key_id, hour), counts)| UsageIncrement {
            key_id,
            hour,
            counts,
        })
        .collect()
}

/// The width of a report's buckets, aligned to UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Hour,
    Day,
}

impl Granularity {
    pub const fn seconds(self) -> i64 {
        match self {
            Self::Hour => 3_600,
            Self::Day => 86_400,
        }
    }

    /// How far back a report reaches when it is not told: a day of hours, or
    /// thirty days.
    pub const fn default_span(self) -> TimeDelta {
        match self {
            Self::Hour => TimeDelta::hours(24),
            Self::Day => TimeDelta::days(30),
        }
    }

    /// The start of the hour or UTC day that holds `at`.
    pub fn floor(self, at: DateTime<Utc>) -> DateTime<Utc> {
        let seconds = at.timestamp();
        DateTime::from_timestamp(seconds - seconds.rem_euclid(self.seconds()), 0).unwrap_or(at)
    }

    /// `at` itself on a boundary, else the start of the next hour or UTC day.
    pub fn ceil(self, at: DateTime<Utc>) -> DateTime<Utc> {
        let floor = self.floor(at);
        if floor == at {
            at
        } else {
            floor + TimeDelta::seconds(self.seconds())
        }
    }
}

/// The most buckets one report may hold.
pub const MAX_BUCKETS: i64 = 1_000;

/// What a report covers: `[from, to)` on bucket boundaries, at least one bucket
/// and at most [`MAX_BUCKETS`]. Only [`UsageRange::new`] makes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageRange {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    granularity: Granularity,
}

impl UsageRange {
    /// `to` defaults to `now`, `from` to `to` minus the granularity's default
    /// span; then `from` is aligned down and `to` up to bucket boundaries.
    ///
    /// # Errors
    /// A message for the caller when `from` is not before `to` or the range
    /// holds more than [`MAX_BUCKETS`] buckets.
    pub fn new(
        granularity: Granularity,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Self, String> {
        let to_aligned = granularity.ceil(to.unwrap_or(now));
        let from = match from {
            Some(from) if from >= to.unwrap_or(now) => {
                return Err("from must be before to".into());
            }
            Some(from) => granularity.floor(from),
            None => to_aligned - granularity.default_span(),
        };
        let range = Self {
            from,
            to: to_aligned,
            granularity,
        };
        if range.bucket_count() > MAX_BUCKETS {
            return Err(format!(
                "from and to span more than {MAX_BUCKETS} buckets; narrow the range or use granularity=day"
            ));
        }
        Ok(range)
    }

    pub const fn from(&self) -> DateTime<Utc> {
        self.from
    }

    pub const fn to(&self) -> DateTime<Utc> {
        self.to
    }

    pub const fn granularity(&self) -> Granularity {
        self.granularity
    }

    pub fn bucket_count(&self) -> i64 {
        (self.to - self.from).num_seconds() / self.granularity.seconds()
    }

    /// The start of every bucket, oldest first.
    pub fn bucket_starts(&self) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        (0..self.bucket_count()).map(|index| self.bucket_start(index))
    }

    /// Which bucket holds `at`, if the range does.
    pub fn bucket_of(&self, at: DateTime<Utc>) -> Option<usize> {
        if at < self.from || at >= self.to {
            return None;
        }
        usize::try_from((at - self.from).num_seconds() / self.granularity.seconds()).ok()
    }

    fn bucket_start(&self, index: i64) -> DateTime<Utc> {
        self.from + TimeDelta::seconds(index * self.granularity.seconds())
    }
}

/// A key's counters summed over one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketCounts {
    pub start: DateTime<Utc>,
    pub counts: OutcomeCounts,
}

/// One key's counters summed over one bucket, in a user's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyBucketCounts {
    pub key_id: Uuid,
    pub name: String,
    pub start: DateTime<Utc>,
    pub counts: OutcomeCounts,
}

type Sums = (i64, i64, i64, i64, i64);

/// A bucket's index and its sums; no index for a key without usage in range.
type BucketRow = (Option<i64>, i64, i64, i64, i64, i64);

/// The usage of `key_id` in `range`: one entry per bucket that holds any, or
/// `None` when the key is not `owner`'s (or does not exist).
///
/// One query: the key's row (by primary key, owner checked) left-joined to its
/// hours in range (by `key_usage`'s primary key), summed per bucket. A key
/// without usage still yields its row, with a null bucket.
///
/// # Errors
/// Database errors.
pub async fn of_key(
    db: &DatabaseConnection,
    owner: Uuid,
    key_id: Uuid,
    range: &UsageRange,
) -> Result<Option<Vec<BucketCounts>>, DbErr> {
    let (from, to) = (range.from.fixed_offset(), range.to.fixed_offset());
    let in_range = api_keys::Relation::KeyUsage
        .def()
        .on_condition(move |_, usage| {
            Condition::all()
                .add(Expr::col((usage.clone(), key_usage::Column::Hour)).gte(from))
                .add(Expr::col((usage, key_usage::Column::Hour)).lt(to))
        });
    let rows: Vec<BucketRow> = sums(
        api_keys::Entity::find()
            .select_only()
            .expr_as(bucket_index(db, range)?, "bucket"),
    )
    .join(JoinType::LeftJoin, in_range)
    .filter(api_keys::Column::Id.eq(key_id))
    .filter(api_keys::Column::UserId.eq(owner))
    .group_by(Expr::col("bucket"))
    .into_tuple()
    .all(db)
    .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        rows.into_iter()
            .filter_map(
                |(bucket, valid, rate_limited, expired, revoked, disabled)| {
                    Some(BucketCounts {
                        start: range.bucket_start(bucket?),
                        counts: counts((valid, rate_limited, expired, revoked, disabled)),
                    })
                },
            )
            .collect(),
    ))
}

/// The usage of all of `user_id`'s keys in `range`: one entry per key and
/// bucket that holds any.
///
/// One query: the user's keys (by `idx_api_keys_user_id`) joined to their hours
/// in range (by `key_usage`'s primary key), summed per key and bucket.
///
/// # Errors
/// Database errors.
pub async fn of_user(
    db: &DatabaseConnection,
    user_id: Uuid,
    range: &UsageRange,
) -> Result<Vec<KeyBucketCounts>, DbErr> {
    type Row = (Uuid, String, i64, i64, i64, i64, i64, i64);
    let rows: Vec<Row> = sums(
        api_keys::Entity::find()
            .select_only()
            .column(api_keys::Column::Id)
            .column(api_keys::Column::Name)
            .expr_as(bucket_index(db, range)?, "bucket"),
    )
    .inner_join(Entity)
    .filter(api_keys::Column::UserId.eq(user_id))
    .filter(key_usage::Column::Hour.gte(range.from.fixed_offset()))
    .filter(key_usage::Column::Hour.lt(range.to.fixed_offset()))
    .group_by(api_keys::Column::Id)
    .group_by(api_keys::Column::Name)
    .group_by(Expr::col("bucket"))
    .into_tuple()
    .all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(key_id, name, bucket, valid, rate_limited, expired, revoked, disabled)| {
                KeyBucketCounts {
                    key_id,
                    name,
                    start: range.bucket_start(bucket),
                    counts: counts((valid, rate_limited, expired, revoked, disabled)),
                }
            },
        )
        .collect())
}

/// Selects the five counters, each summed: 0 over no rows, and a 64-bit
/// integer on both databases (PostgreSQL sums `bigint` into `numeric`).
fn sums<S: QuerySelect>(select: S) -> S {
    [
        (key_usage::Column::Valid, "valid"),
        (key_usage::Column::RateLimited, "rate_limited"),
        (key_usage::Column::Expired, "expired"),
        (key_usage::Column::Revoked, "revoked"),
        (key_usage::Column::Disabled, "disabled"),
    ]
    .into_iter()
    .fold(select, |select, (column, alias)| {
        select.expr_as(
            Func::cast_as(
                Func::coalesce([Func::sum(Expr::col((Entity, column))).into(), Expr::val(0)]),
                "BIGINT",
            ),
            alias,
        )
    })
}

const fn counts((valid, rate_limited, expired, revoked, disabled): Sums) -> OutcomeCounts {
    OutcomeCounts {
        valid,
        rate_limited,
        expired,
        revoked,
        disabled,
    }
}

/// `(epoch(hour) - epoch(from)) / bucket seconds`: which bucket of `range` a row
/// falls in. Only the epoch differs between the databases.
fn bucket_index(db: &DatabaseConnection, range: &UsageRange) -> Result<SimpleExpr, DbErr> {
    let hour = Expr::col((Entity, key_usage::Column::Hour));
    let epoch = match db.get_database_backend() {
        DbBackend::Postgres => Expr::cust_with_expr("EXTRACT(EPOCH FROM $1)", hour),
        // Stored as RFC 3339 text, which `strftime` reads.
        DbBackend::Sqlite => Expr::cust_with_expr("strftime('%s', ?)", hour),
        _ => {
            return Err(DbErr::BackendNotSupported {
                db: "MySQL",
                ctx: "usage reports",
            })
        }
    };
    Ok(Expr::expr(Func::cast_as(epoch, "BIGINT"))
        .sub(range.from.timestamp())
        .div(range.granularity.seconds()))
}

/// Deletes the counters of hours more than `days` ago.
///
/// # Errors
/// Database errors.
pub async fn prune(db: &DatabaseConnection, days: u32) -> Result<u64, DbErr> {
    let cutoff = (Utc::now() - TimeDelta::days(i64::from(days))).fixed_offset();
    let result = Entity::delete_many()
        .filter(key_usage::Column::Hour.lt(cutoff))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn defaults_end_at_now_rounded_up_and_reach_back_a_day_of_hours() {
        let now = at("2026-03-01T10:20:00Z");
        let range = UsageRange::new(Granularity::Hour, None, None, now).unwrap();
        assert_eq!(range.to(), at("2026-03-01T11:00:00Z"));
        assert_eq!(range.from(), at("2026-02-28T11:00:00Z"));
        assert_eq!(range.bucket_count(), 24);
    }

    #[test]
    fn days_default_to_thirty_aligned_to_utc_midnight() {
        let now = at("2026-03-01T00:00:01Z");
        let range = UsageRange::new(Granularity::Day, None, None, now).unwrap();
        assert_eq!(range.to(), at("2026-03-02T00:00:00Z"));
        assert_eq!(range.from(), at("2026-01-31T00:00:00Z"));
        assert_eq!(range.bucket_count(), 30);
    }

    #[test]
    fn from_aligns_down_and_to_up_across_a_day_boundary() {
        let now = at("2030-01-01T00:00:00Z");
        let range = UsageRange::new(
            Granularity::Hour,
            Some(at("2026-03-01T22:59:59+00:00")),
            Some(at("2026-03-02T01:00:00.5Z")),
            now,
        )
        .unwrap();
        assert_eq!(range.from(), at("2026-03-01T22:00:00Z"));
        assert_eq!(range.to(), at("2026-03-02T02:00:00Z"));
        let starts: Vec<_> = range.bucket_starts().collect();
        assert_eq!(
            starts,
            [
                at("2026-03-01T22:00:00Z"),
                at("2026-03-01T23:00:00Z"),
                at("2026-03-02T00:00:00Z"),
                at("2026-03-02T01:00:00Z"),
            ]
        );
        assert_eq!(range.bucket_of(at("2026-03-02T00:30:00Z")), Some(2));
        assert_eq!(range.bucket_of(at("2026-03-02T02:00:00Z")), None);
    }

    #[test]
    fn offsets_are_read_as_the_instant_they_name() {
        let now = at("2030-01-01T00:00:00Z");
        let range = UsageRange::new(
            Granularity::Day,
            Some(at("2026-03-02T01:00:00+02:00")),
            Some(at("2026-03-03T00:00:00Z")),
            now,
        )
        .unwrap();
        assert_eq!(range.from(), at("2026-03-01T00:00:00Z"));
        assert_eq!(range.bucket_count(), 2);
    }

    #[test]
    fn empty_backwards_and_oversized_ranges_are_refused() {
        let now = at("2026-03-01T10:00:00Z");
        let same = Some(now);
        assert!(UsageRange::new(Granularity::Hour, same, same, now).is_err());
        let later = Some(now + TimeDelta::hours(1));
        assert!(UsageRange::new(Granularity::Hour, later, None, now).is_err());
        let thousand_hours = Some(now - TimeDelta::hours(1_000));
        assert!(UsageRange::new(Granularity::Hour, thousand_hours, same, now).is_ok());
        let one_more = Some(now - TimeDelta::hours(1_001));
        assert!(UsageRange::new(Granularity::Hour, one_more, same, now).is_err());
        assert!(UsageRange::new(Granularity::Day, one_more, same, now).is_ok());
    }

    #[test]
    fn increments_merge_per_key_and_hour() {
        let key = Uuid::new_v4();
        let one = OutcomeCounts {
            valid: 2,
            revoked: 1,
            ..OutcomeCounts::default()
        };
        let merged = merge(&[
            UsageIncrement {
                key_id: key,
                hour: at("2026-03-01T10:00:00Z"),
                counts: one,
            },
            UsageIncrement {
                key_id: key,
                hour: at("2026-03-01T10:59:59Z"),
                counts: one,
            },
            UsageIncrement {
                key_id: key,
                hour: at("2026-03-01T11:00:00Z"),
                counts: OutcomeCounts::default(),
            },
        ]);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].hour, at("2026-03-01T10:00:00Z"));
        assert_eq!(merged[0].counts.valid, 4);
        assert_eq!(merged[0].counts.total(), 6);
    }
}
