//! `POST /keys/verify` for services in any language, and `GET /auth/verify`
//! for gateways (nginx `auth_request`, Traefik ForwardAuth, Envoy ext_authz).

use authgate::workers::usage;
use axum::http::StatusCode;
use serde_json::{json, Value};
use serial_test::parallel;

use super::support::{
    assert_error, create_key, get_with_key, get_with_token, json_ok, list_keys, revoke_key, signup,
    state, unissued_key, with_app,
};
use crate::assert_body_snapshot;

async fn verify(server: &axum_test::TestServer, key: &str) -> Value {
    json_ok(
        &server
            .post("/keys/verify")
            .json(&json!({ "key": key }))
            .await,
    )
}

#[tokio::test]
#[parallel]
async fn a_valid_key_verifies_with_its_owner_and_rate_limit() {
    with_app(|server, _ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let key = create_key(
            &server,
            &user.access,
            json!({ "name": "billing", "rateLimit": { "requests": 2, "perSeconds": 60 } }),
        )
        .await;
        let first = verify(&server, &key.key).await;
        assert_eq!(first["keyId"], key.id.as_str());
        assert_eq!(first["userId"], user.id.as_str());
        assert_body_snapshot!(first, { ".keyId", ".userId" });
        assert_eq!(verify(&server, &key.key).await["rateLimit"]["remaining"], 0);
        let limited = verify(&server, &key.key).await;
        assert_eq!(limited["valid"], false);
        assert_eq!(limited["code"], "RATE_LIMITED");
        assert!(limited["rateLimit"]["reset"].as_u64().unwrap() >= 1);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn refused_keys_say_why_and_unknown_ones_say_nothing_more() {
    with_app(|server, _ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let key = create_key(&server, &user.access, json!({ "name": "old" })).await;
        assert_eq!(
            revoke_key(&server, &user.access, &key.id)
                .await
                .status_code(),
            StatusCode::OK
        );
        let revoked = verify(&server, &key.key).await;
        assert_eq!(revoked["valid"], false);
        assert_eq!(revoked["code"], "REVOKED");
        assert_eq!(revoked["keyId"], key.id.as_str());
        assert_eq!(revoked["rateLimit"], Value::Null);

        let not_found = json!({ "valid": false, "code": "NOT_FOUND" });
        assert_eq!(verify(&server, &unissued_key()).await, not_found);
        assert_eq!(verify(&server, "sk_not-a-key").await, not_found);
        assert_eq!(verify(&server, "").await, not_found);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn a_verification_is_a_use_of_the_key() {
    with_app(|server, ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let key = create_key(&server, &user.access, json!({ "name": "svc" })).await;
        assert_eq!(verify(&server, &key.key).await["valid"], true);
        usage::flush(&ctx, &state(&ctx)).await.unwrap();
        assert!(list_keys(&server, &user.access).await[0]["lastUsedAt"].is_string());
        let report =
            get_with_token(&server, &format!("/keys/{}/usage", key.id), &user.access).await;
        assert_eq!(report.status_code(), StatusCode::OK);
        assert_eq!(report.json::<Value>()["totals"]["valid"], 1);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn malformed_verify_bodies_are_400() {
    with_app(|server, _ctx| async move {
        for body in [
            json!({}),
            json!({ "key": 7 }),
            json!({ "key": "sk_x", "admin": true }),
        ] {
            let response = server.post("/keys/verify").json(&body).await;
            assert_error(&response, StatusCode::BAD_REQUEST);
        }
        let text = server.post("/keys/verify").text("key=sk_x").await;
        assert_error(&text, StatusCode::BAD_REQUEST);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn forward_auth_answers_with_identity_headers_and_an_empty_body() {
    with_app(|server, _ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let key = create_key(&server, &user.access, json!({ "name": "svc" })).await;

        let by_key = get_with_key(&server, "/auth/verify", &key.key).await;
        assert_eq!(by_key.status_code(), StatusCode::OK);
        assert!(by_key.as_bytes().is_empty());
        assert_eq!(by_key.header("x-authgate-access-type"), "service");
        assert_eq!(by_key.header("x-authgate-user-id"), user.id.as_str());
        assert_eq!(by_key.header("x-authgate-key-id"), key.id.as_str());

        let by_token = get_with_token(&server, "/auth/verify", &user.access).await;
        assert_eq!(by_token.status_code(), StatusCode::OK);
        assert_eq!(by_token.header("x-authgate-access-type"), "user");
        assert_eq!(by_token.header("x-authgate-user-id"), user.id.as_str());
        assert!(by_token.maybe_header("x-authgate-key-id").is_none());
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn forward_auth_answers_the_clients_method_and_path_as_envoy_sends_them() {
    with_app(|server, _ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let key = create_key(&server, &user.access, json!({ "name": "svc" })).await;
        let post = server
            .post("/auth/verify/orders/42")
            .add_header("x-api-key", key.key.as_str())
            .await;
        assert_eq!(post.status_code(), StatusCode::OK, "{}", post.text());
        assert_eq!(post.header("x-authgate-key-id"), key.id.as_str());
        let delete = server
            .delete("/auth/verify")
            .authorization_bearer(&user.access)
            .await;
        assert_eq!(delete.status_code(), StatusCode::OK);
        assert_eq!(delete.header("x-authgate-access-type"), "user");
        let refused = server.patch("/auth/verify/anything").await;
        assert_error(&refused, StatusCode::UNAUTHORIZED);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn forward_auth_never_trusts_identity_headers_from_the_client() {
    with_app(|server, _ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let key = create_key(&server, &user.access, json!({ "name": "svc" })).await;
        let forged = "00000000-0000-0000-0000-000000000001";

        let without_credential = server
            .get("/auth/verify")
            .add_header("x-authgate-user-id", forged)
            .add_header("x-authgate-access-type", "service")
            .await;
        assert_error(&without_credential, StatusCode::UNAUTHORIZED);
        assert!(without_credential
            .maybe_header("x-authgate-user-id")
            .is_none());

        let with_key = server
            .get("/auth/verify")
            .add_header("x-api-key", key.key.as_str())
            .add_header("x-authgate-user-id", forged)
            .await;
        assert_eq!(with_key.status_code(), StatusCode::OK);
        assert_eq!(with_key.header("x-authgate-user-id"), user.id.as_str());

        let bad_key = get_with_key(&server, "/auth/verify", "sk_garbage").await;
        assert_error(&bad_key, StatusCode::UNAUTHORIZED);
        assert!(!bad_key.text().contains("sk_garbage"));
    })
    .await;
}
