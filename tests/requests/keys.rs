//! `/keys`: create, list, rotate, revoke, and last-used tracking.

use std::time::{Duration, Instant};

use authgate::{models::_entities::api_keys, workers::usage};
use axum::http::StatusCode;
use axum_test::{TestResponse, TestServer};
use sea_orm::{sea_query::Expr, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};
use serial_test::parallel;

use super::support::{
    all_at_once, assert_error, create_key, get_with_key, get_with_token, list_keys, post_key,
    revoke_key, signup, state, with_app,
};
use crate::assert_body_snapshot;

#[tokio::test]
#[parallel]
async fn create_reveals_the_key_once() {
    with_app(|server, _ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let response = post_key(
            &server,
            &user.access,
            &json!({ "name": "  billing  ", "expiresAt": "2999-01-01T00:00:00Z" }),
        )
        .await;
        assert_eq!(
            response.status_code(),
            StatusCode::CREATED,
            "{}",
            response.text()
        );
        let body: Value = response.json();
        let key = body["key"].as_str().unwrap();
        assert!(key.starts_with("sk_") && key.len() == 67);
        assert_body_snapshot!(body, { ".id", ".key", ".createdAt" });

        let list = get_with_token(&server, "/keys", &user.access).await;
        assert_eq!(list.status_code(), StatusCode::OK);
        assert!(!list.text().contains(&key[11..]), "the key is shown again");
        let listed: Value = list.json();
        assert_eq!(listed[0]["prefix"], &key[..11]);
        assert_body_snapshot!(listed, { "[].id", "[].prefix", "[].createdAt" });
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn list_is_newest_first_and_only_the_callers() {
    with_app(|server, _ctx| async move {
        let ada = signup(&server, "ada@example.com").await;
        let bob = signup(&server, "bob@example.com").await;
        for name in ["first", "second", "third"] {
            create_key(&server, &ada.access, json!({ "name": name })).await;
        }
        create_key(&server, &bob.access, json!({ "name": "bobs" })).await;
        let listed = list_keys(&server, &ada.access).await;
        let names: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|key| key["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["third", "second", "first"]);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn invalid_key_requests_are_400() {
    with_app(|server, _ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let cases = [
            json!({ "name": "" }),
            json!({ "name": "   " }),
            json!({ "name": "x".repeat(101) }),
            json!({ "name": "ok", "expiresAt": "tomorrow" }),
            json!({ "name": "ok", "expiresAt": "2000-01-01T00:00:00Z" }),
            json!({ "name": "ok", "owner": "someone" }),
            json!({}),
        ];
        for body in cases {
            let response = post_key(&server, &user.access, &body).await;
            assert_error(&response, StatusCode::BAD_REQUEST);
        }
        let listed = list_keys(&server, &user.access).await;
        assert_eq!(listed, json!([]));
        let past = post_key(
            &server,
            &user.access,
            &json!({ "name": "", "expiresAt": "2000-01-01T00:00:00Z" }),
        )
        .await;
        assert_body_snapshot!(past.json::<Value>(), {});
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn names_are_unique_among_active_keys() {
    with_app(|server, _ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let key = create_key(&server, &user.access, json!({ "name": "billing" })).await;
        let duplicate = post_key(&server, &user.access, &json!({ "name": "billing" })).await;
        assert_error(&duplicate, StatusCode::CONFLICT);

        let revoke = revoke_key(&server, &user.access, &key.id).await;
        assert_eq!(revoke.status_code(), StatusCode::OK);
        create_key(&server, &user.access, json!({ "name": "billing" })).await;

        let other = signup(&server, "bob@example.com").await;
        create_key(&server, &other.access, json!({ "name": "billing" })).await;
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn active_keys_are_capped_per_user() {
    with_app(|server, ctx| async move {
        let max = state(&ctx).settings.max_active_keys;
        let user = signup(&server, "ada@example.com").await;
        for n in 0..max {
            create_key(&server, &user.access, json!({ "name": format!("key {n}") })).await;
        }
        let over = post_key(&server, &user.access, &json!({ "name": "one too many" })).await;
        let message = assert_error(&over, StatusCode::CONFLICT);
        assert!(message.as_str().unwrap().contains("Limit of"), "{message}");
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn the_cap_holds_under_concurrent_creates() {
    with_app(|server, ctx| async move {
        let max = state(&ctx).settings.max_active_keys;
        let user = signup(&server, "ada@example.com").await;
        let bodies: Vec<Value> = (0..150)
            .map(|n| json!({ "name": format!("key {n}") }))
            .collect();
        let responses = all_at_once(
            bodies
                .iter()
                .map(|body| post_key(&server, &user.access, body)),
        )
        .await;

        let created = responses
            .iter()
            .filter(|response| response.status_code() == StatusCode::CREATED)
            .count();
        assert_eq!(created as u64, max);
        for refused in responses
            .iter()
            .filter(|response| response.status_code() != StatusCode::CREATED)
        {
            let message = assert_error(refused, StatusCode::CONFLICT);
            assert!(message.as_str().unwrap().contains("Limit of"), "{message}");
        }
        let listed = list_keys(&server, &user.access).await;
        assert_eq!(listed.as_array().unwrap().len() as u64, max);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn revoke_answers_404_400_and_is_idempotent() {
    with_app(|server, _ctx| async move {
        let ada = signup(&server, "ada@example.com").await;
        let bob = signup(&server, "bob@example.com").await;
        let key = create_key(&server, &ada.access, json!({ "name": "billing" })).await;

        let by_bob = revoke_key(&server, &bob.access, &key.id).await;
        assert_error(&by_bob, StatusCode::NOT_FOUND);
        let unknown = server
            .delete("/keys/00000000-0000-4000-8000-000000000000")
            .authorization_bearer(&ada.access)
            .await;
        assert_error(&unknown, StatusCode::NOT_FOUND);
        let malformed = server
            .delete("/keys/not-a-uuid")
            .authorization_bearer(&ada.access)
            .await;
        assert_error(&malformed, StatusCode::BAD_REQUEST);

        for _ in 0..2 {
            let response = revoke_key(&server, &ada.access, &key.id).await;
            assert_eq!(response.status_code(), StatusCode::OK);
            assert_eq!(
                response.json::<Value>(),
                json!({ "message": "API key revoked successfully" })
            );
        }
        let listed = list_keys(&server, &ada.access).await;
        assert_eq!(listed[0]["isActive"], false);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn keys_routes_need_a_user_token() {
    with_app(|server, _ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let key = create_key(&server, &user.access, json!({ "name": "svc" })).await;
        let with_key = get_with_key(&server, "/keys", &key.key).await;
        assert_error(&with_key, StatusCode::UNAUTHORIZED);
        let anonymous = server
            .post("/keys/create")
            .json(&json!({ "name": "x" }))
            .await;
        assert_error(&anonymous, StatusCode::UNAUTHORIZED);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn last_used_appears_after_a_flush() {
    with_app(|server, ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let key = create_key(&server, &user.access, json!({ "name": "svc" })).await;
        let response = get_with_key(&server, "/protected/service-only", &key.key).await;
        assert_eq!(response.status_code(), StatusCode::OK);

        let before = list_keys(&server, &user.access).await;
        assert_eq!(
            before[0]["lastUsedAt"],
            Value::Null,
            "written on the request path"
        );

        let flushed = usage::flush(&ctx, &state(&ctx)).await.unwrap();
        assert_eq!(flushed, 1);
        let after = list_keys(&server, &user.access).await;
        assert!(after[0]["lastUsedAt"].is_string(), "{after}");
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn many_uses_of_one_key_make_one_write_per_flush() {
    with_app(|server, ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let busy = create_key(&server, &user.access, json!({ "name": "busy" })).await;
        let idle = create_key(&server, &user.access, json!({ "name": "idle" })).await;
        for _ in 0..20 {
            let response = get_with_key(&server, "/protected/service-only", &busy.key).await;
            assert_eq!(response.status_code(), StatusCode::OK);
        }
        let state = state(&ctx);
        let batch = state.last_used.drain();
        assert_eq!(batch.len(), 1, "one entry for twenty uses");
        let written = authgate::models::api_keys::record_last_used(&ctx.db, &batch)
            .await
            .unwrap();
        assert_eq!(written, 1);

        // An older time never overwrites a newer one.
        let stale = batch
            .iter()
            .map(|(id, at)| (*id, *at - chrono::Duration::hours(1)))
            .collect();
        authgate::models::api_keys::record_last_used(&ctx.db, &stale)
            .await
            .unwrap();
        let listed = list_keys(&server, &user.access).await;
        let busy_row = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == busy.id.as_str())
            .unwrap();
        let idle_row = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == idle.id.as_str())
            .unwrap();
        let stored: chrono::DateTime<chrono::Utc> =
            busy_row["lastUsedAt"].as_str().unwrap().parse().unwrap();
        let recorded = batch.values().next().unwrap();
        assert!(
            (stored - *recorded).num_milliseconds().abs() < 1,
            "{stored} vs {recorded}"
        );
        assert_eq!(idle_row["lastUsedAt"], Value::Null);
    })
    .await;
}

/// `POST /keys/{id}/rotate` with `body` (or none), as the user of `access`.
async fn rotate_key(
    server: &TestServer,
    access: &str,
    id: &str,
    body: Option<Value>,
) -> TestResponse {
    let request = server
        .post(&format!("/keys/{id}/rotate"))
        .authorization_bearer(access);
    match body {
        Some(body) => request.json(&body).await,
        None => request.await,
    }
}

/// The listed key of `id`.
fn listed<'a>(keys: &'a Value, id: &str) -> &'a Value {
    keys.as_array()
        .unwrap()
        .iter()
        .find(|key| key["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {keys}"))
}

#[tokio::test]
#[parallel]
async fn rotation_hands_name_limit_and_expiry_to_a_new_key() {
    with_app(|server, _ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let old = create_key(
            &server,
            &user.access,
            json!({
                "name": "billing",
                "expiresAt": "2999-01-01T00:00:00Z",
                "rateLimit": { "requests": 100, "perSeconds": 60 },
            }),
        )
        .await;
        let response = rotate_key(&server, &user.access, &old.id, None).await;
        assert_eq!(
            response.status_code(),
            StatusCode::CREATED,
            "{}",
            response.text()
        );
        let new: Value = response.json();
        assert_eq!(new["rotatedFrom"], old.id.as_str());
        assert_ne!(new["id"], old.id.as_str());
        let new_key = new["key"].as_str().unwrap();
        assert!(new_key.starts_with("sk_") && new_key != old.key);
        assert_body_snapshot!(new, { ".id", ".key", ".createdAt", ".rotatedFrom" });

        // Both keys work while the old one is in its grace period (an hour).
        for key in [old.key.as_str(), new_key] {
            let response = get_with_key(&server, "/protected/service-only", key).await;
            assert_eq!(response.status_code(), StatusCode::OK);
        }
        let keys = list_keys(&server, &user.access).await;
        let new_id = new["id"].as_str().unwrap();
        assert_eq!(listed(&keys, new_id)["status"], "active");
        assert_eq!(listed(&keys, new_id)["rotatedTo"], Value::Null);
        let retiring = listed(&keys, &old.id);
        assert_eq!(retiring["status"], "rotating");
        assert_eq!(retiring["rotatedTo"], new_id);
        assert_eq!(retiring["isActive"], true);
        let grace_ends: chrono::DateTime<chrono::Utc> =
            retiring["expiresAt"].as_str().unwrap().parse().unwrap();
        let expected = chrono::Utc::now() + chrono::Duration::hours(1);
        assert!(
            (grace_ends - expected).num_seconds().abs() < 60,
            "{grace_ends}"
        );

        // The name belongs to the new key now.
        let duplicate = post_key(&server, &user.access, &json!({ "name": "billing" })).await;
        assert_error(&duplicate, StatusCode::CONFLICT);

        // The old key can still be revoked during its grace period, at once.
        assert_eq!(
            revoke_key(&server, &user.access, &old.id)
                .await
                .status_code(),
            StatusCode::OK
        );
        let refused = get_with_key(&server, "/protected/service-only", &old.key).await;
        assert_error(&refused, StatusCode::UNAUTHORIZED);
        let keys = list_keys(&server, &user.access).await;
        assert_eq!(listed(&keys, &old.id)["status"], "revoked");
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn the_old_key_works_through_its_grace_then_is_401() {
    with_app(|server, _ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let old = create_key(&server, &user.access, json!({ "name": "svc" })).await;
        // Cached before the rotation: the rotation makes every cache reload it.
        let before = get_with_key(&server, "/protected/service-only", &old.key).await;
        assert_eq!(before.status_code(), StatusCode::OK);

        let response = rotate_key(
            &server,
            &user.access,
            &old.id,
            Some(json!({ "gracePeriodSeconds": 1 })),
        )
        .await;
        assert_eq!(response.status_code(), StatusCode::CREATED);
        let new_key = response.json::<Value>()["key"]
            .as_str()
            .unwrap()
            .to_string();
        let during = get_with_key(&server, "/protected/service-only", &old.key).await;
        assert_eq!(during.status_code(), StatusCode::OK);

        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let response = get_with_key(&server, "/protected/service-only", &old.key).await;
            if response.status_code() == StatusCode::UNAUTHORIZED {
                assert_error(&response, StatusCode::UNAUTHORIZED);
                break;
            }
            assert_eq!(response.status_code(), StatusCode::OK);
            assert!(
                Instant::now() < deadline,
                "still working 5 s into a 1 s grace"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let new = get_with_key(&server, "/protected/service-only", &new_key).await;
        assert_eq!(new.status_code(), StatusCode::OK);
        let keys = list_keys(&server, &user.access).await;
        assert_eq!(listed(&keys, &old.id)["status"], "expired");
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn a_grace_of_zero_revokes_the_old_key_at_once() {
    with_app(|server, _ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let old = create_key(&server, &user.access, json!({ "name": "svc" })).await;
        let before = get_with_key(&server, "/protected/service-only", &old.key).await;
        assert_eq!(before.status_code(), StatusCode::OK);

        let response = rotate_key(
            &server,
            &user.access,
            &old.id,
            Some(json!({ "gracePeriodSeconds": 0 })),
        )
        .await;
        assert_eq!(response.status_code(), StatusCode::CREATED);
        let new: Value = response.json();
        let refused = get_with_key(&server, "/protected/service-only", &old.key).await;
        assert_error(&refused, StatusCode::UNAUTHORIZED);
        let works = get_with_key(
            &server,
            "/protected/service-only",
            new["key"].as_str().unwrap(),
        )
        .await;
        assert_eq!(works.status_code(), StatusCode::OK);

        let keys = list_keys(&server, &user.access).await;
        let retired = listed(&keys, &old.id);
        assert_eq!(retired["status"], "revoked");
        assert_eq!(retired["isActive"], false);
        assert_eq!(retired["rotatedTo"], new["id"]);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn rotating_a_revoked_expired_or_rotated_key_is_409() {
    with_app(|server, ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let revoked = create_key(&server, &user.access, json!({ "name": "revoked" })).await;
        revoke_key(&server, &user.access, &revoked.id).await;
        let rotated = create_key(&server, &user.access, json!({ "name": "rotated" })).await;
        let first = rotate_key(&server, &user.access, &rotated.id, None).await;
        assert_eq!(first.status_code(), StatusCode::CREATED);
        let expired = create_key(&server, &user.access, json!({ "name": "expired" })).await;
        api_keys::Entity::update_many()
            .col_expr(
                api_keys::Column::ExpiresAt,
                Expr::value(chrono::Utc::now().fixed_offset() - chrono::Duration::minutes(1)),
            )
            .filter(api_keys::Column::Id.eq(expired.id.parse::<uuid::Uuid>().unwrap()))
            .exec(&ctx.db)
            .await
            .unwrap();

        let before = list_keys(&server, &user.access).await;
        for (id, message) in [
            (&revoked.id, "API key is revoked"),
            (&rotated.id, "API key has already been rotated"),
            (&expired.id, "API key has expired"),
        ] {
            let response = rotate_key(&server, &user.access, id, None).await;
            assert_eq!(assert_error(&response, StatusCode::CONFLICT), message);
        }
        let keys = list_keys(&server, &user.access).await;
        assert_eq!(keys, before, "a refused rotation changed a key");
        assert_eq!(listed(&keys, &expired.id)["status"], "expired");
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn rotate_is_404_for_another_users_key_and_400_for_bad_input() {
    with_app(|server, _ctx| async move {
        let ada = signup(&server, "ada@example.com").await;
        let bob = signup(&server, "bob@example.com").await;
        let key = create_key(&server, &ada.access, json!({ "name": "svc" })).await;
        let before = list_keys(&server, &ada.access).await;

        let by_bob = rotate_key(&server, &bob.access, &key.id, None).await;
        assert_error(&by_bob, StatusCode::NOT_FOUND);
        let unknown = "00000000-0000-4000-8000-000000000000";
        assert_error(
            &rotate_key(&server, &ada.access, unknown, None).await,
            StatusCode::NOT_FOUND,
        );
        assert_error(
            &rotate_key(&server, &ada.access, "not-a-uuid", None).await,
            StatusCode::BAD_REQUEST,
        );
        for body in [
            json!({ "gracePeriodSeconds": -1 }),
            json!({ "gracePeriodSeconds": 604_801 }),
            json!({ "gracePeriodSeconds": 1.5 }),
            json!({ "gracePeriodSeconds": "60" }),
            json!({ "gracePeriod": 60 }),
            json!([]),
        ] {
            let response = rotate_key(&server, &ada.access, &key.id, Some(body)).await;
            assert_error(&response, StatusCode::BAD_REQUEST);
        }
        let as_text = server
            .post(&format!("/keys/{}/rotate", key.id))
            .authorization_bearer(&ada.access)
            .text("gracePeriodSeconds=60")
            .await;
        assert_error(&as_text, StatusCode::BAD_REQUEST);
        let out_of_range = rotate_key(
            &server,
            &ada.access,
            &key.id,
            Some(json!({ "gracePeriodSeconds": 604_801 })),
        )
        .await;
        assert_body_snapshot!(out_of_range.json::<Value>(), {});

        let after = list_keys(&server, &ada.access).await;
        assert_eq!(after, before, "a refused rotation wrote something");
        assert_eq!(after[0]["status"], "active");
        let works = get_with_key(&server, "/protected/service-only", &key.key).await;
        assert_eq!(works.status_code(), StatusCode::OK);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn a_key_in_its_grace_period_does_not_count_against_the_cap() {
    with_app(|server, ctx| async move {
        let max = state(&ctx).settings.max_active_keys;
        let user = signup(&server, "ada@example.com").await;
        let mut keys = Vec::new();
        for n in 0..max {
            keys.push(
                create_key(&server, &user.access, json!({ "name": format!("key {n}") })).await,
            );
        }
        let rotated = rotate_key(&server, &user.access, &keys[0].id, Some(Value::Null)).await;
        assert_eq!(
            rotated.status_code(),
            StatusCode::CREATED,
            "{}",
            rotated.text()
        );
        let over = post_key(&server, &user.access, &json!({ "name": "one too many" })).await;
        let message = assert_error(&over, StatusCode::CONFLICT);
        assert!(message.as_str().unwrap().contains("Limit of"), "{message}");
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn concurrent_rotations_of_one_key_make_one_successor() {
    with_app(|server, _ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let key = create_key(&server, &user.access, json!({ "name": "svc" })).await;
        let responses = all_at_once(
            (0..6).map(|_| rotate_key(&server, &user.access, &key.id, Some(json!({})))),
        )
        .await;
        let created = responses
            .iter()
            .filter(|response| response.status_code() == StatusCode::CREATED)
            .count();
        assert_eq!(created, 1);
        for refused in responses
            .iter()
            .filter(|response| response.status_code() != StatusCode::CREATED)
        {
            assert_error(refused, StatusCode::CONFLICT);
        }
        assert_eq!(
            list_keys(&server, &user.access)
                .await
                .as_array()
                .unwrap()
                .len(),
            2
        );
    })
    .await;
}
