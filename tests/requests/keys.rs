//! `/keys`: create, list, revoke, and last-used tracking.

use authgate::workers::last_used;
use axum::http::StatusCode;
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

        let flushed = last_used::flush(&ctx, &state(&ctx)).await.unwrap();
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
