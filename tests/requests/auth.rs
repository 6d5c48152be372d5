//! `/auth` and `/health` as a client of the old service sees them.

use authgate::{auth::tokens::TokenKeys, models::users, tasks::users::SetUserActive};
use axum::http::StatusCode;
use loco_rs::task::{Task, Vars};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{json, Value};
use serial_test::parallel;

use super::support::{
    assert_error, get_with_token, json_ok, refresh, signup, state, with_app, PASSWORD,
};
use crate::assert_body_snapshot;

#[tokio::test]
#[parallel]
async fn signup_returns_the_user_and_a_token_pair() {
    with_app(|server, _ctx| async move {
        let response = server
            .post("/auth/signup")
            .json(&json!({ "email": "  Ada@Example.com ", "password": PASSWORD, "name": "Ada" }))
            .await;
        assert_eq!(response.status_code(), StatusCode::CREATED);
        let body: Value = response.json();
        assert_eq!(body["user"]["email"], "ada@example.com");
        assert_ne!(body["accessToken"], body["refreshToken"]);
        assert_body_snapshot!(body, { ".user.id", ".accessToken", ".refreshToken" });
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn signup_without_name_stores_null() {
    with_app(|server, _ctx| async move {
        let response = server
            .post("/auth/signup")
            .json(&json!({ "email": "noname@example.com", "password": PASSWORD }))
            .await;
        assert_eq!(response.status_code(), StatusCode::CREATED);
        assert_eq!(response.json::<Value>()["user"]["name"], Value::Null);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn email_is_unique_case_insensitively() {
    with_app(|server, _ctx| async move {
        signup(&server, "ada@example.com").await;
        let response = server
            .post("/auth/signup")
            .json(&json!({ "email": "ADA@example.COM", "password": PASSWORD }))
            .await;
        let message = assert_error(&response, StatusCode::CONFLICT);
        assert_eq!(message, "Email already registered");
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn invalid_signups_are_400_and_create_nothing() {
    with_app(|server, ctx| async move {
        let cases = [
            json!({ "email": "not-an-email", "password": PASSWORD }),
            json!({ "email": "short@example.com", "password": "1234567" }),
            json!({ "email": "long@example.com", "password": "a".repeat(73) }),
            json!({ "email": "field@example.com", "password": PASSWORD, "admin": true }),
            json!({ "email": "missing@example.com" }),
            json!({ "email": "name@example.com", "password": PASSWORD, "name": "a\u{0}b" }),
            json!({ "email": "name@example.com", "password": PASSWORD, "name": "x".repeat(101) }),
            json!({ "email": 42, "password": PASSWORD }),
        ];
        for body in cases {
            let response = server.post("/auth/signup").json(&body).await;
            assert_error(&response, StatusCode::BAD_REQUEST);
            assert!(!response.text().contains(PASSWORD), "password echoed");
        }
        let count = users::Entity::find().count(&ctx.db).await.unwrap();
        assert_eq!(count, 0);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn validation_lists_every_problem() {
    with_app(|server, _ctx| async move {
        let response = server
            .post("/auth/signup")
            .json(&json!({ "email": "nope", "password": "short" }))
            .await;
        assert_error(&response, StatusCode::BAD_REQUEST);
        assert_body_snapshot!(response.json::<Value>(), {});
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn malformed_bodies_are_400_json() {
    with_app(|server, _ctx| async move {
        let response = server
            .post("/auth/login")
            .text("{\"email\": ")
            .content_type("application/json")
            .await;
        assert_eq!(
            assert_error(&response, StatusCode::BAD_REQUEST),
            "Malformed JSON body"
        );

        let response = server
            .post("/auth/login")
            .text("email=a@b.io")
            .content_type("text/plain")
            .await;
        assert_eq!(
            assert_error(&response, StatusCode::BAD_REQUEST),
            "Content-Type must be application/json"
        );

        let response = server
            .post("/auth/login")
            .text(r#"{"email": "a@b.io", "password": "xxxxxxxx", "password": "yyyyyyyy"}"#)
            .content_type("application/json")
            .await;
        let message = assert_error(&response, StatusCode::BAD_REQUEST);
        assert!(
            message.as_str().unwrap().contains("duplicate field"),
            "{message}"
        );
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn bodies_over_64_kib_are_413() {
    with_app(|server, _ctx| async move {
        let response = server
            .post("/auth/signup")
            .json(&json!({ "email": "big@example.com", "password": PASSWORD, "name": "x".repeat(70_000) }))
            .await;
        assert_error(&response, StatusCode::PAYLOAD_TOO_LARGE);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn login_returns_a_new_session() {
    with_app(|server, _ctx| async move {
        let first = signup(&server, "ada@example.com").await;
        let response = server
            .post("/auth/login")
            .json(&json!({ "email": "ADA@example.com", "password": PASSWORD }))
            .await;
        assert_eq!(response.status_code(), StatusCode::OK);
        let body: Value = response.json();
        assert_eq!(body["user"]["id"], first.id.as_str());
        assert_ne!(body["refreshToken"], first.refresh.as_str());
        assert_body_snapshot!(body, { ".user.id", ".accessToken", ".refreshToken" });
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn wrong_password_and_unknown_email_get_the_same_401() {
    with_app(|server, _ctx| async move {
        signup(&server, "ada@example.com").await;
        let wrong = server
            .post("/auth/login")
            .json(&json!({ "email": "ada@example.com", "password": "wrong password" }))
            .await;
        let unknown = server
            .post("/auth/login")
            .json(&json!({ "email": "bob@example.com", "password": "wrong password" }))
            .await;
        assert_error(&wrong, StatusCode::UNAUTHORIZED);
        assert_error(&unknown, StatusCode::UNAUTHORIZED);
        assert_eq!(wrong.text(), unknown.text());
        assert_eq!(
            wrong.header("www-authenticate"),
            unknown.header("www-authenticate")
        );
        assert_body_snapshot!(wrong.json::<Value>(), {});
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn refresh_rotates_the_pair() {
    with_app(|server, ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let body = json_ok(&refresh(&server, &user.refresh).await);
        let fields: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert_eq!(fields, ["accessToken", "refreshToken"]);
        let new_refresh = body["refreshToken"].as_str().unwrap();
        let access = body["accessToken"].as_str().unwrap();
        assert_ne!(new_refresh, user.refresh);
        assert_ne!(access, user.access);

        // The new pair belongs to the same user and the same session.
        let tokens = &state(&ctx).tokens;
        let old_refresh = tokens.verify_refresh(&user.refresh).unwrap();
        let new_access = tokens.verify_access(access).unwrap();
        let new_refresh_claims = tokens.verify_refresh(new_refresh).unwrap();
        assert_eq!(new_access.sub.to_string(), user.id);
        assert_eq!(new_refresh_claims.sub.to_string(), user.id);
        assert_eq!(new_access.sid, old_refresh.sid);
        assert_eq!(new_refresh_claims.sid, old_refresh.sid);
        // Rotation does not extend the session.
        assert_eq!(new_refresh_claims.exp, old_refresh.exp);

        let me = get_with_token(&server, "/auth/me", access).await;
        assert_eq!(me.status_code(), StatusCode::OK);

        let again = refresh(&server, new_refresh).await;
        assert_eq!(again.status_code(), StatusCode::OK);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn reusing_an_old_refresh_token_revokes_the_session() {
    with_app(|server, _ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let rotated = json_ok(&refresh(&server, &user.refresh).await);
        let reuse = refresh(&server, &user.refresh).await;
        assert_error(&reuse, StatusCode::UNAUTHORIZED);

        // The thief's replay burned the whole session: the rotated tokens die too.
        let current = refresh(&server, rotated["refreshToken"].as_str().unwrap()).await;
        assert_error(&current, StatusCode::UNAUTHORIZED);
        let me = server
            .get("/auth/me")
            .authorization_bearer(rotated["accessToken"].as_str().unwrap())
            .await;
        assert_error(&me, StatusCode::UNAUTHORIZED);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn access_and_refresh_tokens_are_not_interchangeable() {
    with_app(|server, _ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let as_refresh = refresh(&server, &user.access).await;
        assert_error(&as_refresh, StatusCode::UNAUTHORIZED);
        let as_access = get_with_token(&server, "/auth/me", &user.refresh).await;
        assert_error(&as_access, StatusCode::UNAUTHORIZED);
        let garbage = refresh(&server, "not.a.jwt").await;
        assert_error(&garbage, StatusCode::UNAUTHORIZED);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn logout_revokes_the_session_at_once() {
    with_app(|server, _ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        // Warm the verification cache: logout must evict it.
        let me = get_with_token(&server, "/auth/me", &user.access).await;
        assert_eq!(me.status_code(), StatusCode::OK);

        let response = server
            .post("/auth/logout")
            .authorization_bearer(&user.access)
            .await;
        assert_eq!(response.status_code(), StatusCode::OK);
        assert_eq!(
            response.json::<Value>(),
            json!({ "message": "Logged out successfully" })
        );

        let me = get_with_token(&server, "/auth/me", &user.access).await;
        assert_error(&me, StatusCode::UNAUTHORIZED);
        let refresh = refresh(&server, &user.refresh).await;
        assert_error(&refresh, StatusCode::UNAUTHORIZED);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn logout_of_one_session_keeps_the_others() {
    with_app(|server, _ctx| async move {
        let first = signup(&server, "ada@example.com").await;
        let second = json_ok(
            &server
                .post("/auth/login")
                .json(&json!({ "email": "ada@example.com", "password": PASSWORD }))
                .await,
        );
        let logout = server
            .post("/auth/logout")
            .authorization_bearer(&first.access)
            .await;
        assert_eq!(logout.status_code(), StatusCode::OK);
        let me = server
            .get("/auth/me")
            .authorization_bearer(second["accessToken"].as_str().unwrap())
            .await;
        assert_eq!(me.status_code(), StatusCode::OK);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn me_shows_the_profile() {
    with_app(|server, _ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let response = get_with_token(&server, "/auth/me", &user.access).await;
        assert_eq!(response.status_code(), StatusCode::OK);
        let body: Value = response.json();
        assert_eq!(body["id"], user.id.as_str());
        assert_body_snapshot!(body, { ".id", ".createdAt" });
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn missing_or_malformed_bearer_is_401_with_challenge() {
    with_app(|server, _ctx| async move {
        let none = server.get("/auth/me").await;
        assert_error(&none, StatusCode::UNAUTHORIZED);
        assert!(none
            .header("www-authenticate")
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
        let basic = server
            .get("/auth/me")
            .add_header("authorization", "Basic YTpi")
            .await;
        assert_error(&basic, StatusCode::UNAUTHORIZED);
        let garbage = get_with_token(&server, "/auth/me", "garbage").await;
        assert_error(&garbage, StatusCode::UNAUTHORIZED);
        assert_body_snapshot!(garbage.json::<Value>(), {});
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn deactivated_users_tokens_and_logins_fail() {
    with_app(|server, ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let me = get_with_token(&server, "/auth/me", &user.access).await;
        assert_eq!(me.status_code(), StatusCode::OK);

        let vars = Vars::from_cli_args(vec![("email".to_string(), "ada@example.com".to_string())]);
        SetUserActive { active: false }
            .run(&ctx, &vars)
            .await
            .unwrap();

        let me = get_with_token(&server, "/auth/me", &user.access).await;
        assert_error(&me, StatusCode::UNAUTHORIZED);
        let refresh = refresh(&server, &user.refresh).await;
        assert_error(&refresh, StatusCode::UNAUTHORIZED);
        let login = server
            .post("/auth/login")
            .json(&json!({ "email": "ada@example.com", "password": PASSWORD }))
            .await;
        assert_error(&login, StatusCode::UNAUTHORIZED);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn unknown_routes_and_wrong_methods_answer_json() {
    with_app(|server, _ctx| async move {
        let missing = server.get("/nope").await;
        assert_eq!(
            assert_error(&missing, StatusCode::NOT_FOUND),
            "Route not found"
        );
        let wrong_method = server.get("/auth/login").await;
        assert_error(&wrong_method, StatusCode::METHOD_NOT_ALLOWED);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn health_is_ok() {
    with_app(|server, _ctx| async move {
        let response = server.get("/health").await;
        assert_eq!(response.status_code(), StatusCode::OK);
        assert_body_snapshot!(response.json::<Value>(), { ".timestamp" });
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn an_access_token_expires_even_after_it_was_cached() {
    with_app(|server, ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let claims = state(&ctx).tokens.verify_access(&user.access).unwrap();
        // Same secrets as config/test.yaml, a one-second lifetime, the same session.
        let short_lived = TokenKeys::new(
            "authgate-test-access-secret-0123456789abcdef",
            "authgate-test-refresh-secret-0123456789abcdef",
            std::time::Duration::from_secs(1),
        )
        .issue_pair(
            claims.sub,
            &claims.email,
            claims.sid,
            chrono::Utc::now() + chrono::Duration::days(1),
        )
        .unwrap()
        .access_token;
        let fresh = get_with_token(&server, "/auth/me", &short_lived).await;
        assert_eq!(fresh.status_code(), StatusCode::OK);
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        let expired = get_with_token(&server, "/auth/me", &short_lived).await;
        assert_error(&expired, StatusCode::UNAUTHORIZED);
    })
    .await;
}
