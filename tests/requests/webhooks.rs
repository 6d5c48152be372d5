//! `/webhooks`: endpoints (the secret shown once, at most ten, bad input
//! refused with nothing stored), their test event, and delivery: signed,
//! retried on the schedule, `Retry-After` honoured, 410 and long failure
//! disable, every attempt recorded. A receiver runs in the test on loopback.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use authgate::events::{delivery::Deliverer, signing};
use axum::{
    body::Bytes,
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
};
use axum_test::{TestResponse, TestServer};
use chrono::{DateTime, TimeDelta, Utc};
use loco_rs::app::AppContext;
use serde_json::{json, Value};
use serial_test::parallel;

use super::support::{assert_error, create_key, get_with_token, json_ok, signup, state, with_app};
use crate::assert_body_snapshot;

async fn post_webhook(server: &TestServer, access: &str, body: &Value) -> TestResponse {
    server
        .post("/webhooks")
        .authorization_bearer(access)
        .json(body)
        .await
}

async fn create_webhook(server: &TestServer, access: &str, url: &str, events: Value) -> Value {
    let response = post_webhook(server, access, &json!({ "url": url, "events": events })).await;
    assert_eq!(
        response.status_code(),
        StatusCode::CREATED,
        "{}",
        response.text()
    );
    response.json()
}

async fn deliveries(server: &TestServer, access: &str, id: &str) -> Vec<Value> {
    let body =
        json_ok(&get_with_token(server, &format!("/webhooks/{id}/deliveries"), access).await);
    body["deliveries"].as_array().unwrap().clone()
}

#[tokio::test]
#[parallel]
async fn create_shows_the_secret_once_and_the_list_never() {
    with_app(|server, _ctx| async move {
        let ada = signup(&server, "ada@example.com").await;
        let response = post_webhook(
            &server,
            &ada.access,
            &json!({
                "url": "https://hooks.example.com/authgate",
                "events": ["key.created", "key.revoked", "key.created"],
                "description": "  billing alerts ",
            }),
        )
        .await;
        assert_eq!(response.status_code(), StatusCode::CREATED);
        let created: Value = response.json();
        let secret = created["secret"].as_str().unwrap();
        assert_eq!(
            signing::decode_secret(secret).map(|key| key.len()),
            Some(32)
        );
        assert_body_snapshot!(created, { ".id", ".createdAt", ".secret" });

        let list = get_with_token(&server, "/webhooks", &ada.access).await;
        assert!(
            !list.text().contains(&secret[6..]),
            "the secret is shown again"
        );
        let listed = json_ok(&list);
        assert_eq!(listed[0]["id"], created["id"]);
        assert!(listed[0].get("secret").is_none());
        assert_body_snapshot!(listed, { "[].id", "[].createdAt" });
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn bad_webhooks_are_400_and_store_nothing() {
    with_app(|server, _ctx| async move {
        let ada = signup(&server, "ada@example.com").await;
        let long = format!("https://hooks.example.com/{}", "a".repeat(2048));
        let cases = [
            json!({ "url": "ftp://hooks.example.com/", "events": ["*"] }),
            json!({ "url": "hooks.example.com/in", "events": ["*"] }),
            json!({ "url": long, "events": ["*"] }),
            json!({ "url": "https://user:pass@hooks.example.com/", "events": ["*"] }),
            json!({ "url": "https://hooks.example.com/", "events": ["key.stolen"] }),
            json!({ "url": "https://hooks.example.com/", "events": [] }),
            json!({ "url": "https://hooks.example.com/", "events": "*" }),
            json!({ "url": "https://hooks.example.com/" }),
            json!({ "url": "https://hooks.example.com/", "events": ["*"], "description": "x".repeat(501) }),
            json!({ "url": "https://hooks.example.com/", "events": ["*"], "secret": "whsec_mine" }),
        ];
        for body in &cases {
            let response = post_webhook(&server, &ada.access, body).await;
            assert_error(&response, StatusCode::BAD_REQUEST);
        }
        let every = post_webhook(
            &server,
            &ada.access,
            &json!({ "url": "ftp://user@x/", "events": ["nope"], "description": "a\u{0}b" }),
        )
        .await;
        let problems = assert_error(&every, StatusCode::BAD_REQUEST);
        assert_body_snapshot!(problems, {});
        assert_eq!(json_ok(&get_with_token(&server, "/webhooks", &ada.access).await), json!([]));
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn the_eleventh_webhook_is_409() {
    with_app(|server, _ctx| async move {
        let ada = signup(&server, "ada@example.com").await;
        for n in 0..10 {
            create_webhook(
                &server,
                &ada.access,
                &format!("https://h{n}.example.com/"),
                json!(["*"]),
            )
            .await;
        }
        let eleventh = post_webhook(
            &server,
            &ada.access,
            &json!({ "url": "https://h10.example.com/", "events": ["*"] }),
        )
        .await;
        assert_eq!(
            assert_error(&eleventh, StatusCode::CONFLICT),
            "Limit of 10 webhook endpoints reached; delete one first"
        );
        let listed = json_ok(&get_with_token(&server, "/webhooks", &ada.access).await);
        assert_eq!(listed.as_array().unwrap().len(), 10);
        // Another user has room of their own.
        let bob = signup(&server, "bob@example.com").await;
        create_webhook(
            &server,
            &bob.access,
            "https://bob.example.com/",
            json!(["*"]),
        )
        .await;
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn another_users_webhook_is_404_and_a_malformed_id_400() {
    with_app(|server, _ctx| async move {
        let ada = signup(&server, "ada@example.com").await;
        let bob = signup(&server, "bob@example.com").await;
        let hook =
            create_webhook(&server, &ada.access, "https://a.example.com/", json!(["*"])).await;
        let id = hook["id"].as_str().unwrap();
        for (method, path) in [
            ("DELETE", format!("/webhooks/{id}")),
            ("POST", format!("/webhooks/{id}/test")),
            ("GET", format!("/webhooks/{id}/deliveries")),
        ] {
            let as_bob = match method {
                "DELETE" => server.delete(&path),
                "POST" => server.post(&path),
                _ => server.get(&path),
            }
            .authorization_bearer(&bob.access)
            .await;
            assert_eq!(
                assert_error(&as_bob, StatusCode::NOT_FOUND),
                "Webhook endpoint not found"
            );
            let malformed = path.replace(id, "not-a-uuid");
            let response = match method {
                "DELETE" => server.delete(&malformed),
                "POST" => server.post(&malformed),
                _ => server.get(&malformed),
            }
            .authorization_bearer(&ada.access)
            .await;
            assert_error(&response, StatusCode::BAD_REQUEST);
        }
        let bad_limit = get_with_token(
            &server,
            &format!("/webhooks/{id}/deliveries?limit=0"),
            &ada.access,
        )
        .await;
        assert_error(&bad_limit, StatusCode::BAD_REQUEST);

        let deleted = server
            .delete(&format!("/webhooks/{id}"))
            .authorization_bearer(&ada.access)
            .await;
        assert_eq!(
            json_ok(&deleted),
            json!({ "message": "Webhook endpoint deleted successfully" })
        );
        let again = server
            .delete(&format!("/webhooks/{id}"))
            .authorization_bearer(&ada.access)
            .await;
        assert_error(&again, StatusCode::NOT_FOUND);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn events_queue_deliveries_to_subscribed_endpoints_and_tests_to_one() {
    with_app(|server, _ctx| async move {
        let ada = signup(&server, "ada@example.com").await;
        let keys_only = create_webhook(
            &server,
            &ada.access,
            "https://a.example.com/",
            json!(["key.created"]),
        )
        .await;
        let everything =
            create_webhook(&server, &ada.access, "https://b.example.com/", json!(["*"])).await;
        let logins = create_webhook(
            &server,
            &ada.access,
            "https://c.example.com/",
            json!(["login.failed"]),
        )
        .await;
        let key = create_key(&server, &ada.access, json!({ "name": "billing" })).await;

        let id = |hook: &Value| hook["id"].as_str().unwrap().to_string();
        for hook in [&keys_only, &everything] {
            let queued = deliveries(&server, &ada.access, &id(hook)).await;
            assert_eq!(queued.len(), 1);
            assert_eq!(queued[0]["type"], "key.created");
            assert_eq!(queued[0]["status"], "pending");
            assert_eq!(queued[0]["attempt"], 1);
        }
        assert!(deliveries(&server, &ada.access, &id(&logins))
            .await
            .is_empty());

        let test = server
            .post(&format!("/webhooks/{}/test", id(&logins)))
            .authorization_bearer(&ada.access)
            .await;
        assert_eq!(test.status_code(), StatusCode::ACCEPTED);
        let event_id = test.json::<Value>()["eventId"].clone();
        let queued = deliveries(&server, &ada.access, &id(&logins)).await;
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0]["type"], "webhook.test");
        assert_eq!(queued[0]["eventId"], event_id);
        assert_body_snapshot!(queued[0], { ".id", ".eventId", ".createdAt", ".nextAttemptAt" });
        // The test goes to that endpoint only, even past subscriptions to "*".
        assert_eq!(
            deliveries(&server, &ada.access, &id(&everything))
                .await
                .len(),
            1
        );
        let events = json_ok(&get_with_token(&server, "/events", &ada.access).await);
        assert_eq!(events["events"][0]["id"], event_id);
        assert_eq!(
            events["events"][0]["data"]["webhookId"],
            id(&logins).as_str()
        );
        assert_eq!(events["events"][1]["data"]["keyId"], key.id.as_str());
    })
    .await;
}

/// A local receiver: answers each request with the next scripted response
/// (200 once the script is done) and keeps what it was sent.
struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<(HeaderMap, String)>>>,
}

type Scripted = (StatusCode, Vec<(&'static str, &'static str)>, String);

async fn receiver(script: Vec<Scripted>) -> Receiver {
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = seen.clone();
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let script = script.clone();
            let kept = kept.clone();
            async move {
                kept.lock()
                    .unwrap()
                    .push((headers, String::from_utf8_lossy(&body).into_owned()));
                let (status, headers, body) = script.lock().unwrap().pop_front().unwrap_or((
                    StatusCode::OK,
                    Vec::new(),
                    String::new(),
                ));
                let mut response = (status, body).into_response();
                for (name, value) in headers {
                    response.headers_mut().insert(name, value.parse().unwrap());
                }
                response
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Receiver { url, seen }
}

fn deliverer(ctx: &AppContext) -> Arc<Deliverer> {
    let state = state(ctx);
    Arc::new(
        Deliverer::new(&ctx.db, &state.settings.webhooks)
            .unwrap()
            .counted_in(state.metrics.webhook_deliveries()),
    )
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

#[tokio::test]
#[parallel]
async fn deliveries_are_signed_and_retried_until_one_succeeds() {
    with_app(|server, ctx| async move {
        let ada = signup(&server, "ada@example.com").await;
        let receiver = receiver(vec![
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                vec![],
                "x".repeat(1 << 20),
            ),
            (
                StatusCode::FOUND,
                vec![("location", "http://127.0.0.1:1/elsewhere")],
                String::new(),
            ),
        ])
        .await;
        let hook =
            create_webhook(&server, &ada.access, &receiver.url, json!(["key.created"])).await;
        let hook_id = hook["id"].as_str().unwrap();
        let secret = hook["secret"].as_str().unwrap();
        let key = create_key(&server, &ada.access, json!({ "name": "billing" })).await;
        let deliverer = deliverer(&ctx);

        let now = Utc::now();
        assert_eq!(deliverer.deliver_due(now).await.unwrap(), 1);
        // The second attempt is due about 5 s later (±20 %), the third about 5 min after it.
        assert_eq!(deliverer.deliver_due(now).await.unwrap(), 0);
        assert_eq!(
            deliverer
                .deliver_due(now + TimeDelta::seconds(7))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            deliverer
                .deliver_due(now + TimeDelta::seconds(200))
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            deliverer
                .deliver_due(now + TimeDelta::minutes(20))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            deliverer
                .deliver_due(now + TimeDelta::days(2))
                .await
                .unwrap(),
            0
        );

        let seen = receiver.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 3, "the redirect was not followed");
        let metrics = server.get("/metrics").await.text();
        for counted in [
            "authgate_webhook_deliveries_total{result=\"failed\"} 2",
            "authgate_webhook_deliveries_total{result=\"succeeded\"} 1",
        ] {
            assert!(metrics.contains(counted), "{counted} not in:\n{metrics}");
        }
        let key_bytes = signing::decode_secret(secret).unwrap();
        let ids: Vec<&str> = seen
            .iter()
            .map(|(headers, _)| headers["webhook-id"].to_str().unwrap())
            .collect();
        assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
        for (headers, body) in &seen {
            let id = headers["webhook-id"].to_str().unwrap();
            let timestamp: i64 = headers["webhook-timestamp"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(
                headers["webhook-signature"].to_str().unwrap(),
                signing::sign(&key_bytes, id, timestamp, body)
            );
            assert_eq!(headers["content-type"], "application/json");
            let body: Value = serde_json::from_str(body).unwrap();
            assert_eq!(body["type"], "key.created");
            assert_eq!(body["data"]["keyId"], key.id.as_str());
            assert_eq!(body["data"]["name"], "billing");
            assert!(body["timestamp"].is_string());
        }

        let attempts = deliveries(&server, &ada.access, hook_id).await;
        let summary: Vec<(i64, &str, Option<i64>)> = attempts
            .iter()
            .map(|a| {
                (
                    a["attempt"].as_i64().unwrap(),
                    a["status"].as_str().unwrap(),
                    a["responseStatus"].as_i64(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (3, "succeeded", Some(200)),
                (2, "failed", Some(302)),
                (1, "failed", Some(500))
            ]
        );
        assert!(attempts
            .iter()
            .all(|a| a["eventId"].as_str() == Some(ids[0])));
        let error = attempts[2]["error"].as_str().unwrap();
        assert!(
            error.starts_with("HTTP 500: xxx") && error.len() < 400,
            "{error}"
        );
        assert!(attempts.iter().all(|a| a["nextAttemptAt"].is_null()));
        let listed = json_ok(&get_with_token(&server, "/webhooks", &ada.access).await);
        assert_eq!(listed[0]["enabled"], true);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn retry_after_is_honoured_on_429_and_503() {
    with_app(|server, ctx| async move {
        let ada = signup(&server, "ada@example.com").await;
        let receiver = receiver(vec![(
            StatusCode::SERVICE_UNAVAILABLE,
            vec![("retry-after", "3600")],
            String::new(),
        )])
        .await;
        let hook = create_webhook(&server, &ada.access, &receiver.url, json!(["*"])).await;
        create_key(&server, &ada.access, json!({ "name": "billing" })).await;
        let deliverer = deliverer(&ctx);
        let now = Utc::now();
        assert_eq!(deliverer.deliver_due(now).await.unwrap(), 1);
        let attempts = deliveries(&server, &ada.access, hook["id"].as_str().unwrap()).await;
        assert_eq!(attempts[0]["status"], "pending");
        let next = at(attempts[0]["nextAttemptAt"].as_str().unwrap());
        assert!(next >= now + TimeDelta::seconds(3600), "{next}");
        assert_eq!(
            deliverer
                .deliver_due(now + TimeDelta::minutes(30))
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            deliverer
                .deliver_due(now + TimeDelta::minutes(61))
                .await
                .unwrap(),
            1
        );
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn gone_disables_the_endpoint_at_once() {
    with_app(|server, ctx| async move {
        let ada = signup(&server, "ada@example.com").await;
        let receiver = receiver(vec![(StatusCode::GONE, vec![], String::new())]).await;
        let hook = create_webhook(&server, &ada.access, &receiver.url, json!(["*"])).await;
        let hook_id = hook["id"].as_str().unwrap();
        create_key(&server, &ada.access, json!({ "name": "one" })).await;
        create_key(&server, &ada.access, json!({ "name": "two" })).await;
        let deliverer = deliverer(&ctx);
        // The endpoint gets its events in order; the first answer disables it.
        assert_eq!(deliverer.deliver_due(Utc::now()).await.unwrap(), 2);
        assert_eq!(receiver.seen.lock().unwrap().len(), 1);
        let listed = json_ok(&get_with_token(&server, "/webhooks", &ada.access).await);
        assert_eq!(listed[0]["enabled"], false);
        assert_eq!(
            listed[0]["disabledReason"],
            "The endpoint answered 410 Gone"
        );
        let attempts = deliveries(&server, &ada.access, hook_id).await;
        assert!(
            attempts.iter().all(|a| a["status"] == "failed"),
            "{attempts:?}"
        );
        // Nothing more is queued for it, and it cannot be tested.
        create_key(&server, &ada.access, json!({ "name": "three" })).await;
        assert_eq!(deliveries(&server, &ada.access, hook_id).await.len(), 2);
        let test = server
            .post(&format!("/webhooks/{hook_id}/test"))
            .authorization_bearer(&ada.access)
            .await;
        assert_error(&test, StatusCode::CONFLICT);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn an_endpoint_failing_for_disable_after_is_disabled() {
    with_app(|server, ctx| async move {
        let ada = signup(&server, "ada@example.com").await;
        // Nothing listens on the receiver's port once it is closed.
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}/hook", listener.local_addr().unwrap())
        };
        let hook = create_webhook(&server, &ada.access, &closed, json!(["*"])).await;
        create_key(&server, &ada.access, json!({ "name": "one" })).await;
        let deliverer = deliverer(&ctx);
        let now = Utc::now();
        assert_eq!(deliverer.deliver_due(now).await.unwrap(), 1);
        let listed = json_ok(&get_with_token(&server, "/webhooks", &ada.access).await);
        assert_eq!(listed[0]["enabled"], true);
        assert_eq!(
            deliverer
                .deliver_due(now + TimeDelta::days(6))
                .await
                .unwrap(),
            1
        );
        let listed = json_ok(&get_with_token(&server, "/webhooks", &ada.access).await);
        assert_eq!(listed[0]["enabled"], false);
        assert_eq!(
            listed[0]["disabledReason"],
            "Every attempt failed for 5days"
        );
        let attempts = deliveries(&server, &ada.access, hook["id"].as_str().unwrap()).await;
        assert!(
            attempts[1]["error"]
                .as_str()
                .unwrap()
                .starts_with("Connection failed"),
            "{attempts:?}"
        );
    })
    .await;
}
