//! `/keys/{id}/usage` and `/usage`: counters written by `key_usage::add` at
//! chosen hours (as the flush writes them), then read back in buckets.

use authgate::models::key_usage::{self, OutcomeCounts, UsageIncrement};
use axum::http::StatusCode;
use chrono::{DateTime, TimeDelta, Utc};
use loco_rs::app::AppContext;
use serde_json::{json, Value};
use serial_test::parallel;
use uuid::Uuid;

use super::support::{
    assert_error, create_key, get_with_key, get_with_token, json_ok, signup, with_app,
};
use crate::assert_body_snapshot;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn increment(key_id: &str, hour: &str, counts: OutcomeCounts) -> UsageIncrement {
    UsageIncrement {
        key_id: key_id.parse().unwrap(),
        hour: at(hour),
        counts,
    }
}

fn valid(n: i64) -> OutcomeCounts {
    OutcomeCounts {
        valid: n,
        ..OutcomeCounts::default()
    }
}

async fn add(ctx: &AppContext, increments: &[UsageIncrement]) -> u64 {
    key_usage::add(&ctx.db, increments).await.unwrap()
}

/// The `total` of each bucket, oldest first.
fn bucket_totals(report: &Value) -> Vec<i64> {
    report["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|bucket| bucket["total"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
#[parallel]
async fn key_usage_buckets_cross_an_hour_and_a_day_boundary() {
    with_app(|server, ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let key = create_key(&server, &user.access, json!({ "name": "svc" })).await;
        let id = key.id.as_str();
        let written = add(
            &ctx,
            &[
                increment(id, "2026-03-01T21:00:00Z", valid(100)),
                increment(id, "2026-03-01T22:00:00Z", valid(2)),
                increment(
                    id,
                    "2026-03-01T23:00:00Z",
                    OutcomeCounts {
                        rate_limited: 1,
                        ..OutcomeCounts::default()
                    },
                ),
                increment(
                    id,
                    "2026-03-02T00:00:00Z",
                    OutcomeCounts {
                        expired: 1,
                        revoked: 1,
                        ..OutcomeCounts::default()
                    },
                ),
                increment(
                    id,
                    "2026-03-02T01:00:00Z",
                    OutcomeCounts {
                        disabled: 1,
                        ..OutcomeCounts::default()
                    },
                ),
                increment(id, "2026-03-02T02:00:00Z", valid(100)),
            ],
        )
        .await;
        assert_eq!(written, 6);

        let path = format!(
            "/keys/{id}/usage?from=2026-03-01T22:30:00Z&to=2026-03-02T01:30:00Z&granularity=hour"
        );
        let hours = json_ok(&get_with_token(&server, &path, &user.access).await);
        assert_eq!(hours["keyId"], id);
        assert_eq!(hours["from"], "2026-03-01T22:00:00Z");
        assert_eq!(hours["to"], "2026-03-02T02:00:00Z");
        assert_eq!(bucket_totals(&hours), [2, 1, 2, 1]);
        assert_body_snapshot!(hours, { ".keyId" });

        let path = format!("/keys/{id}/usage?from=2026-03-01T12:00:00Z&to=2026-03-02T00:00:01Z&granularity=day");
        let days = json_ok(&get_with_token(&server, &path, &user.access).await);
        assert_eq!(days["from"], "2026-03-01T00:00:00Z");
        assert_eq!(days["to"], "2026-03-03T00:00:00Z");
        assert_eq!(bucket_totals(&days), [103, 103]);
        assert_eq!(
            days["totals"],
            json!({ "total": 206, "valid": 202, "rateLimited": 1, "expired": 1, "revoked": 1, "disabled": 1 })
        );
        assert_eq!(days["buckets"][1]["start"], "2026-03-02T00:00:00Z");
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn increments_add_up_and_skip_keys_that_are_gone() {
    with_app(|server, ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let key = create_key(&server, &user.access, json!({ "name": "svc" })).await;
        let id = key.id.as_str();
        let hour = "2026-03-01T10:00:00Z";
        // Two instances flushing the same key and hour.
        add(&ctx, &[increment(id, hour, valid(2))]).await;
        add(&ctx, &[increment(id, "2026-03-01T10:59:59Z", valid(3))]).await;
        // A key pruned since its use was counted does not fail the batch.
        let gone = Uuid::new_v4().to_string();
        let written = add(
            &ctx,
            &[
                increment(&gone, hour, valid(7)),
                increment(id, hour, valid(1)),
            ],
        )
        .await;
        assert_eq!(written, 1);
        // More rows than one statement takes (140): 300 hours, one use each.
        let start = at("2026-04-01T00:00:00Z");
        let many: Vec<UsageIncrement> = (0..300)
            .map(|n| UsageIncrement {
                key_id: id.parse().unwrap(),
                hour: start + TimeDelta::hours(n),
                counts: valid(1),
            })
            .collect();
        assert_eq!(add(&ctx, &many).await, 300);

        let path = format!("/keys/{id}/usage?from={hour}&to=2026-03-01T11:00:00Z");
        let report = json_ok(&get_with_token(&server, &path, &user.access).await);
        assert_eq!(bucket_totals(&report), [6]);
        let path = "/usage?from=2026-04-01T00:00:00Z&to=2026-04-14T00:00:00Z&granularity=day";
        let report = json_ok(&get_with_token(&server, path, &user.access).await);
        assert_eq!(report["totals"]["valid"], 300);
        let mut per_day = vec![24; 12];
        per_day.push(12);
        assert_eq!(bucket_totals(&report), per_day);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn user_usage_sums_the_callers_keys_busiest_first() {
    with_app(|server, ctx| async move {
        let ada = signup(&server, "ada@example.com").await;
        let bob = signup(&server, "bob@example.com").await;
        let quiet = create_key(&server, &ada.access, json!({ "name": "quiet" })).await;
        let busy = create_key(&server, &ada.access, json!({ "name": "busy" })).await;
        create_key(&server, &ada.access, json!({ "name": "idle" })).await;
        let bobs = create_key(&server, &bob.access, json!({ "name": "bobs" })).await;
        add(
            &ctx,
            &[
                increment(&quiet.id, "2026-03-01T23:00:00Z", valid(2)),
                increment(&busy.id, "2026-03-01T23:00:00Z", valid(1)),
                increment(
                    &busy.id,
                    "2026-03-02T00:00:00Z",
                    OutcomeCounts {
                        rate_limited: 4,
                        ..OutcomeCounts::default()
                    },
                ),
                increment(&bobs.id, "2026-03-01T23:00:00Z", valid(50)),
            ],
        )
        .await;

        let path = "/usage?from=2026-03-01T23:00:00Z&to=2026-03-02T01:00:00Z";
        let report = json_ok(&get_with_token(&server, path, &ada.access).await);
        assert_eq!(report["granularity"], "hour");
        assert_eq!(bucket_totals(&report), [3, 4]);
        assert_eq!(report["totals"]["total"], 7);
        assert_eq!(report["totals"]["rateLimited"], 4);
        assert_eq!(
            report["byKey"],
            json!([
                { "keyId": busy.id, "name": "busy", "total": 5 },
                { "keyId": quiet.id, "name": "quiet", "total": 2 },
            ])
        );
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn usage_of_another_users_or_an_unknown_key_is_404() {
    with_app(|server, _ctx| async move {
        let ada = signup(&server, "ada@example.com").await;
        let bob = signup(&server, "bob@example.com").await;
        let key = create_key(&server, &ada.access, json!({ "name": "svc" })).await;
        let path = format!("/keys/{}/usage", key.id);

        assert_error(
            &get_with_token(&server, &path, &bob.access).await,
            StatusCode::NOT_FOUND,
        );
        let unknown = "/keys/00000000-0000-4000-8000-000000000000/usage";
        assert_error(
            &get_with_token(&server, unknown, &ada.access).await,
            StatusCode::NOT_FOUND,
        );
        let malformed = "/keys/not-a-uuid/usage";
        assert_error(
            &get_with_token(&server, malformed, &ada.access).await,
            StatusCode::BAD_REQUEST,
        );

        // The owner's unused key: a day of empty hours ending with the current one.
        let report = json_ok(&get_with_token(&server, &path, &ada.access).await);
        assert_eq!(bucket_totals(&report), [0; 24]);
        let to: DateTime<Utc> = report["to"].as_str().unwrap().parse().unwrap();
        assert!(
            to > Utc::now() && to <= Utc::now() + TimeDelta::hours(1),
            "{to}"
        );
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn bad_usage_parameters_are_400() {
    with_app(|server, _ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let key = create_key(&server, &user.access, json!({ "name": "svc" })).await;
        let queries = [
            "from=yesterday",
            "to=2026-03-01",
            "granularity=week",
            "from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z",
            "from=2026-03-01T00:00:00Z&to=2026-03-01T00:00:00Z",
            "from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z",
            "from=2023-01-01T00:00:00Z&to=2026-03-01T00:00:00Z&granularity=day",
            "limit=5",
            "from=2026-03-01T00:00:00Z&from=2026-03-01T01:00:00Z",
        ];
        for query in queries {
            for path in [
                format!("/keys/{}/usage?{query}", key.id),
                format!("/usage?{query}"),
            ] {
                let response = get_with_token(&server, &path, &user.access).await;
                assert_error(&response, StatusCode::BAD_REQUEST);
            }
        }
        let all_wrong = get_with_token(
            &server,
            "/usage?from=yesterday&to=tomorrow&granularity=week",
            &user.access,
        )
        .await;
        assert_body_snapshot!(all_wrong.json::<Value>(), {});
        // The largest range allowed: 1,000 hours.
        let path = "/usage?from=2026-01-01T00:00:00Z&to=2026-02-11T16:00:00Z";
        let report = json_ok(&get_with_token(&server, path, &user.access).await);
        assert_eq!(report["buckets"].as_array().unwrap().len(), 1_000);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn usage_routes_need_a_user_token() {
    with_app(|server, _ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let key = create_key(&server, &user.access, json!({ "name": "svc" })).await;
        for path in ["/usage".to_string(), format!("/keys/{}/usage", key.id)] {
            assert_error(
                &get_with_key(&server, &path, &key.key).await,
                StatusCode::UNAUTHORIZED,
            );
            assert_error(&server.get(&path).await, StatusCode::UNAUTHORIZED);
        }
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn prune_deletes_only_hours_older_than_the_retention() {
    with_app(|server, ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let key = create_key(&server, &user.access, json!({ "name": "svc" })).await;
        let now = Utc::now();
        let old = UsageIncrement {
            key_id: key.id.parse().unwrap(),
            hour: now - TimeDelta::days(10),
            counts: valid(1),
        };
        let recent = UsageIncrement {
            hour: now - TimeDelta::days(1),
            ..old
        };
        add(&ctx, &[old, recent]).await;
        assert_eq!(key_usage::prune(&ctx.db, 5).await.unwrap(), 1);
        assert_eq!(key_usage::prune(&ctx.db, 5).await.unwrap(), 0);
        let report =
            json_ok(&get_with_token(&server, "/usage?granularity=day", &user.access).await);
        assert_eq!(report["totals"]["total"], 1);
    })
    .await;
}
