//! When the database goes away: cached credentials keep working, database routes
//! answer 503 at once, `/ready` says so. And a client minting unknown keys is
//! cut off before it costs lookups.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{json, Value};
use serial_test::parallel;

use super::support::{
    assert_error, create_key, get_with_key, get_with_token, signup, state, unissued_key, with_app,
};

#[tokio::test]
#[parallel]
async fn ready_reports_each_dependency() {
    with_app(|server, _ctx| async move {
        let response = server.get("/ready").await;
        assert_eq!(response.status_code(), StatusCode::OK);
        assert_eq!(
            response.json::<Value>(),
            json!({
                "status": "ready",
                "checks": { "database": "ok", "redis": "disabled", "notifications": "disabled" }
            })
        );
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn a_lost_database_fails_fast_and_cached_credentials_keep_working() {
    with_app(|server, ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let key = create_key(&server, &user.access, json!({ "name": "svc" })).await;
        for _ in 0..2 {
            let by_key = get_with_key(&server, "/protected/service-only", &key.key).await;
            assert_eq!(by_key.status_code(), StatusCode::OK);
            let by_token = get_with_token(&server, "/protected/user-only", &user.access).await;
            assert_eq!(by_token.status_code(), StatusCode::OK);
        }

        // The pool closed: every query fails as if the server were gone.
        ctx.db.close_by_ref().await.expect("close the pool");

        let first = get_with_token(&server, "/keys", &user.access).await;
        assert_error(&first, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(first.header("retry-after"), "1");
        assert!(
            state(&ctx).database.is_down(),
            "the failure marks the database down"
        );

        let started = Instant::now();
        let next = get_with_token(&server, "/keys", &user.access).await;
        assert_error(&next, StatusCode::SERVICE_UNAVAILABLE);
        let login = server
            .post("/auth/login")
            .json(&json!({ "email": "ada@example.com", "password": "whatever it is" }))
            .await;
        assert_error(&login, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            started.elapsed() < Duration::from_millis(250),
            "{:?}",
            started.elapsed()
        );

        let by_key = get_with_key(&server, "/protected/service-only", &key.key).await;
        assert_eq!(by_key.status_code(), StatusCode::OK, "{}", by_key.text());
        let by_token = get_with_token(&server, "/protected/flexible", &user.access).await;
        assert_eq!(
            by_token.status_code(),
            StatusCode::OK,
            "{}",
            by_token.text()
        );
        // A key never seen before cannot be checked: 503, not a false 401.
        let unknown = get_with_key(&server, "/protected/service-only", &unissued_key()).await;
        assert_error(&unknown, StatusCode::SERVICE_UNAVAILABLE);

        let ready = server.get("/ready").await;
        assert_eq!(ready.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(ready.json::<Value>()["checks"]["database"], "down");
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn unknown_keys_past_the_limit_get_429_and_known_keys_keep_working() {
    with_app(|server, _ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let key = create_key(&server, &user.access, json!({ "name": "svc" })).await;
        let warm = get_with_key(&server, "/protected/service-only", &key.key).await;
        assert_eq!(warm.status_code(), StatusCode::OK);
        // config/test.yaml: 5 unknown keys per client per minute.
        for _ in 0..5 {
            let response = get_with_key(&server, "/protected/service-only", &unissued_key()).await;
            assert_error(&response, StatusCode::UNAUTHORIZED);
        }
        for _ in 0..3 {
            let response = get_with_key(&server, "/protected/service-only", &unissued_key()).await;
            assert_error(&response, StatusCode::TOO_MANY_REQUESTS);
            assert!(
                response
                    .header("retry-after")
                    .to_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
                    >= 1
            );
        }
        // A known key, cached, still works for that client.
        let known = get_with_key(&server, "/protected/service-only", &key.key).await;
        assert_eq!(known.status_code(), StatusCode::OK, "{}", known.text());
        // Another client is not affected.
        let elsewhere = server
            .get("/protected/service-only")
            .add_header("x-api-key", unissued_key())
            .add_header("x-forwarded-for", "198.51.100.77")
            .await;
        assert_error(&elsewhere, StatusCode::UNAUTHORIZED);
    })
    .await;
}
