//! The three guards: user-only, service-only and flexible.

use authgate::{
    auth::{cache::Revocation, revocations},
    models::users::{self, Email},
    tasks::users::SetUserActive,
};
use axum::http::StatusCode;
use loco_rs::task::{Task, Vars};
use serde_json::{json, Value};
use serial_test::parallel;

use super::support::{
    assert_error, create_key, get_with_key, get_with_token, json_ok, revoke_key, signup, state,
    unissued_key, with_app,
};
use crate::assert_body_snapshot;

#[tokio::test]
#[parallel]
async fn user_only_takes_a_token_not_a_key() {
    with_app(|server, _ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let key = create_key(&server, &user.access, json!({ "name": "svc" })).await;
        let ok = get_with_token(&server, "/protected/user-only", &user.access).await;
        assert_eq!(ok.status_code(), StatusCode::OK);
        assert_body_snapshot!(ok.json::<Value>(), { ".user.userId" });
        let with_key = get_with_key(&server, "/protected/user-only", &key.key).await;
        assert_error(&with_key, StatusCode::UNAUTHORIZED);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn service_only_takes_a_key_not_a_token() {
    with_app(|server, _ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let key = create_key(&server, &user.access, json!({ "name": "svc" })).await;
        let ok = get_with_key(&server, "/protected/service-only", &key.key).await;
        assert_eq!(ok.status_code(), StatusCode::OK);
        let body: Value = ok.json();
        assert_eq!(body["user"]["keyId"], key.id.as_str());
        assert_eq!(body["user"]["userId"], user.id.as_str());
        assert_body_snapshot!(body, { ".user.userId", ".user.keyId" });

        let with_token = get_with_token(&server, "/protected/service-only", &user.access).await;
        assert_error(&with_token, StatusCode::UNAUTHORIZED);
        assert!(with_token
            .header("www-authenticate")
            .to_str()
            .unwrap()
            .starts_with("ApiKey"));
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn flexible_says_which_credential_was_used() {
    with_app(|server, _ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let key = create_key(&server, &user.access, json!({ "name": "svc" })).await;
        let by_token = json_ok(&get_with_token(&server, "/protected/flexible", &user.access).await);
        assert_eq!(by_token["accessType"], "user");
        assert_body_snapshot!(by_token, { ".user.userId" });
        let by_key = json_ok(&get_with_key(&server, "/protected/flexible", &key.key).await);
        assert_eq!(by_key["accessType"], "service");
        assert_eq!(by_key["user"]["keyId"], key.id.as_str());
        let neither = server.get("/protected/flexible").await;
        assert_error(&neither, StatusCode::UNAUTHORIZED);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn flexible_does_not_fall_back_from_a_bad_key_to_the_token() {
    with_app(|server, _ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let response = server
            .get("/protected/flexible")
            .authorization_bearer(&user.access)
            .add_header("x-api-key", "sk_garbage")
            .await;
        assert_error(&response, StatusCode::UNAUTHORIZED);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn revoked_key_is_refused_on_service_only() {
    with_app(|server, _ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let key = create_key(&server, &user.access, json!({ "name": "svc" })).await;
        let warm = get_with_key(&server, "/protected/service-only", &key.key).await;
        assert_eq!(warm.status_code(), StatusCode::OK);
        let revoke = revoke_key(&server, &user.access, &key.id).await;
        assert_eq!(revoke.status_code(), StatusCode::OK);
        let after = get_with_key(&server, "/protected/service-only", &key.key).await;
        assert_error(&after, StatusCode::UNAUTHORIZED);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn expired_key_is_refused_even_when_cached() {
    with_app(|server, _ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let expires_at = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
        let key = create_key(
            &server,
            &user.access,
            json!({ "name": "short-lived", "expiresAt": expires_at.to_rfc3339() }),
        )
        .await;
        let warm = get_with_key(&server, "/protected/service-only", &key.key).await;
        assert_eq!(warm.status_code(), StatusCode::OK);
        tokio::time::sleep(std::time::Duration::from_millis(1700)).await;
        let after = get_with_key(&server, "/protected/service-only", &key.key).await;
        assert_error(&after, StatusCode::UNAUTHORIZED);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn deactivating_the_owner_stops_keys_and_tokens() {
    with_app(|server, ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let key = create_key(&server, &user.access, json!({ "name": "svc" })).await;
        let warm = get_with_key(&server, "/protected/service-only", &key.key).await;
        assert_eq!(warm.status_code(), StatusCode::OK);

        let vars = Vars::from_cli_args(vec![("email".to_string(), "ada@example.com".to_string())]);
        SetUserActive { active: false }
            .run(&ctx, &vars)
            .await
            .unwrap();

        let key_after = get_with_key(&server, "/protected/service-only", &key.key).await;
        assert_error(&key_after, StatusCode::UNAUTHORIZED);
        let token_after = get_with_token(&server, "/protected/user-only", &user.access).await;
        assert_error(&token_after, StatusCode::UNAUTHORIZED);

        SetUserActive { active: true }
            .run(&ctx, &vars)
            .await
            .unwrap();
        let back = get_with_key(&server, "/protected/service-only", &key.key).await;
        assert_eq!(back.status_code(), StatusCode::OK);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn bad_keys_are_401_without_detail() {
    with_app(|server, _ctx| async move {
        let typo = {
            let mut key = unissued_key();
            let last = if key.ends_with('0') { "1" } else { "0" };
            key.replace_range(66.., last);
            key
        };
        for bad in [
            "",
            "sk_",
            "pk_123",
            "SK_ABC",
            typo.as_str(),
            &unissued_key(),
            "sk_é",
        ] {
            let response = get_with_key(&server, "/protected/service-only", bad).await;
            let message = assert_error(&response, StatusCode::UNAUTHORIZED);
            assert_eq!(message, "Invalid or missing API key");
            if !bad.is_empty() {
                assert!(!response.text().contains(bad), "key echoed");
            }
        }
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn garbage_and_unknown_keys_cost_no_query_after_the_first() {
    with_app(|server, ctx| async move {
        let unknown = unissued_key();
        let first = get_with_key(&server, "/protected/service-only", &unknown).await;
        assert_error(&first, StatusCode::UNAUTHORIZED);

        // With the pool closed, any query would fail the request with a 500.
        ctx.db.close_by_ref().await.unwrap();
        let again = get_with_key(&server, "/protected/service-only", &unknown).await;
        assert_error(&again, StatusCode::UNAUTHORIZED);
        let garbage = server
            .get("/protected/service-only")
            .add_header("x-api-key", &format!("sk_{}", "0".repeat(64)))
            .await;
        assert_error(&garbage, StatusCode::UNAUTHORIZED);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn valid_tokens_and_keys_are_served_from_the_cache() {
    with_app(|server, ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let key = create_key(&server, &user.access, json!({ "name": "svc" })).await;
        let warm = get_with_key(&server, "/protected/service-only", &key.key).await;
        assert_eq!(warm.status_code(), StatusCode::OK);
        let warm = get_with_token(&server, "/protected/user-only", &user.access).await;
        assert_eq!(warm.status_code(), StatusCode::OK);

        ctx.db.close_by_ref().await.unwrap();
        let by_key = get_with_key(&server, "/protected/service-only", &key.key).await;
        assert_eq!(by_key.status_code(), StatusCode::OK);
        let by_token = get_with_token(&server, "/protected/user-only", &user.access).await;
        assert_eq!(by_token.status_code(), StatusCode::OK);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn user_revocation_evicts_cached_keys() {
    with_app(|server, ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let key = create_key(&server, &user.access, json!({ "name": "svc" })).await;
        let warm = get_with_key(&server, "/protected/service-only", &key.key).await;
        assert_eq!(warm.status_code(), StatusCode::OK);
        let model = users::set_active(&ctx.db, &Email::parse("ada@example.com").unwrap(), false)
            .await
            .unwrap()
            .unwrap();
        // Without the eviction the cached verdict would still say yes.
        let cached = get_with_key(&server, "/protected/service-only", &key.key).await;
        assert_eq!(cached.status_code(), StatusCode::OK);
        revocations::publish(&ctx, &state(&ctx), Revocation::User(model.id))
            .await
            .unwrap();
        let evicted = get_with_key(&server, "/protected/service-only", &key.key).await;
        assert_error(&evicted, StatusCode::UNAUTHORIZED);
    })
    .await;
}
