//! Shared steps of the request tests: a fresh app and database per test, and the
//! calls most tests begin with.

use std::{future::Future, task::Poll};

use authgate::{app::App, auth::AuthState};
use axum::http::StatusCode;
use axum_test::{TestResponse, TestServer};
use loco_rs::{app::AppContext, testing::prelude::request_with_create_db};
use serde_json::{json, Value};

pub const PASSWORD: &str = "correct horse battery";

/// Runs `test` against the real router on a database of its own (SQLite, or
/// PostgreSQL when `DATABASE_URL` says so), then closes the pool so the
/// database can be dropped.
pub async fn with_app<F, Fut>(test: F)
where
    F: FnOnce(TestServer, AppContext) -> Fut,
    Fut: Future<Output = ()>,
{
    request_with_create_db::<App, _, _>(|server, ctx| async move {
        test(server, ctx.clone()).await;
        ctx.db.close_by_ref().await.expect("close the pool");
    })
    .await;
}

pub fn state(ctx: &AppContext) -> std::sync::Arc<AuthState> {
    AuthState::of(ctx).expect("booted with AuthState")
}

/// A signed-up user's tokens and id.
pub struct User {
    pub id: String,
    pub access: String,
    pub refresh: String,
}

pub async fn signup(server: &TestServer, email: &str) -> User {
    let response = server
        .post("/auth/signup")
        .json(&json!({ "email": email, "password": PASSWORD, "name": "Ada" }))
        .await;
    assert_eq!(
        response.status_code(),
        StatusCode::CREATED,
        "{}",
        response.text()
    );
    let body: Value = response.json();
    User {
        id: body["user"]["id"].as_str().unwrap().to_string(),
        access: body["accessToken"].as_str().unwrap().to_string(),
        refresh: body["refreshToken"].as_str().unwrap().to_string(),
    }
}

/// A created key's id and the key itself.
pub struct Key {
    pub id: String,
    pub key: String,
}

/// `POST /keys/create` with `body`, as the user of `access`.
pub async fn post_key(server: &TestServer, access: &str, body: &Value) -> TestResponse {
    server
        .post("/keys/create")
        .authorization_bearer(access)
        .json(body)
        .await
}

pub async fn create_key(server: &TestServer, access: &str, body: Value) -> Key {
    let response = post_key(server, access, &body).await;
    assert_eq!(
        response.status_code(),
        StatusCode::CREATED,
        "{}",
        response.text()
    );
    let body: Value = response.json();
    Key {
        id: body["id"].as_str().unwrap().to_string(),
        key: body["key"].as_str().unwrap().to_string(),
    }
}

/// `GET /keys` as the user of `access`: asserts a 200 and returns the list.
pub async fn list_keys(server: &TestServer, access: &str) -> Value {
    json_ok(&get_with_token(server, "/keys", access).await)
}

/// `DELETE /keys/{id}` as the user of `access`.
pub async fn revoke_key(server: &TestServer, access: &str, id: &str) -> TestResponse {
    server
        .delete(&format!("/keys/{id}"))
        .authorization_bearer(access)
        .await
}

/// A well-formed key (valid checksum) that was never issued.
pub fn unissued_key() -> String {
    authgate::auth::api_key::ApiKey::generate()
        .unwrap()
        .reveal()
        .to_string()
}

/// Asserts a 200 and returns the body.
pub fn json_ok(response: &TestResponse) -> Value {
    assert_eq!(
        response.status_code(),
        StatusCode::OK,
        "{}",
        response.text()
    );
    response.json()
}

/// Asserts the old service's error shape and returns the message.
pub fn assert_error(response: &TestResponse, status: StatusCode) -> Value {
    assert_eq!(response.status_code(), status, "{}", response.text());
    let body: Value = response.json();
    assert_eq!(body["statusCode"], status.as_u16());
    assert_eq!(body["error"], status.canonical_reason().unwrap());
    if status == StatusCode::UNAUTHORIZED {
        assert!(response.maybe_header("www-authenticate").is_some());
    }
    body["message"].clone()
}

/// Redacts what changes from run to run: ids, tokens, keys, timestamps.
#[macro_export]
macro_rules! assert_body_snapshot {
    ($body:expr, { $($path:expr),* $(,)? }) => {
        insta::assert_json_snapshot!($body, {
            $($path => "[redacted]",)*
        })
    };
}

/// `GET path` with an `x-api-key`.
pub async fn get_with_key(server: &TestServer, path: &str, key: &str) -> TestResponse {
    server.get(path).add_header("x-api-key", key).await
}

/// `GET path` with a Bearer token.
pub async fn get_with_token(server: &TestServer, path: &str, token: &str) -> TestResponse {
    server.get(path).authorization_bearer(token).await
}

/// `POST /auth/refresh` with `refresh_token`.
pub async fn refresh(server: &TestServer, refresh_token: &str) -> TestResponse {
    server
        .post("/auth/refresh")
        .json(&json!({ "refreshToken": refresh_token }))
        .await
}

/// Drives every request at once, as `futures::future::join_all` would, so their
/// handlers interleave at each await; the responses come back in order.
pub async fn all_at_once<F: Future>(requests: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<_> = requests.into_iter().map(|r| Some(Box::pin(r))).collect();
    let mut answers: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        for (request, answer) in pending.iter_mut().zip(answers.iter_mut()) {
            if let Some(future) = request {
                if let Poll::Ready(output) = future.as_mut().poll(cx) {
                    *answer = Some(output);
                    *request = None;
                }
            }
        }
        if pending.iter().all(Option::is_none) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    answers.into_iter().map(Option::unwrap).collect()
}
