//! What an operator sees: one access-log line per request (with the route
//! template and the principal, never a secret), `x-request-id` on every
//! response, and `/metrics` counters that move by exactly the requests made.
//! `/ready` asks the database at most once a second. (`/ready` with the
//! database gone: `outage.rs`; HTTPS: `tests/tls.py`.)

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use authgate::{
    ops::metrics::{authorize, CONTENT_TYPE},
    settings::MetricsAccess,
};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum_test::{TestResponse, TestServer};
use serde_json::{json, Value};
use serial_test::parallel;
use sha2::{Digest, Sha256};

use super::support::{
    create_key, get_with_key, get_with_token, revoke_key, signup, state, with_app, PASSWORD,
};

/// The access log's lines, as written.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// The line of the request `response` answered, found by its request id.
fn line_of(lines: &[Value], response: &TestResponse) -> Value {
    let request_id = response.header("x-request-id");
    let request_id = request_id.to_str().unwrap();
    lines
        .iter()
        .find(|line| line["requestId"] == request_id)
        .unwrap_or_else(|| panic!("no line for {request_id} in {lines:#?}"))
        .clone()
}

#[tokio::test]
#[parallel]
async fn each_request_leaves_one_line_with_its_route_and_principal_and_no_secret() {
    with_app(|server, ctx| async move {
        let log = Captured::default();
        assert!(state(&ctx).access_log.write_to(log.clone()));

        let user = signup(&server, "ada@example.com").await;
        let key = create_key(&server, &user.access, json!({ "name": "svc" })).await;
        let by_key = server
            .get("/protected/service-only")
            .add_header("x-api-key", &key.key)
            .add_header("x-forwarded-for", "203.0.113.7")
            .await;
        assert_eq!(by_key.status_code(), StatusCode::OK);
        let by_token = get_with_token(&server, "/protected/user-only", &user.access).await;
        assert_eq!(by_token.status_code(), StatusCode::OK);
        let usage = get_with_token(
            &server,
            &format!("/keys/{}/usage?granularity=day", key.id),
            &user.access,
        )
        .await;
        assert_eq!(usage.status_code(), StatusCode::OK, "{}", usage.text());
        let refused = get_with_key(&server, "/protected/service-only", "sk_garbage").await;
        assert_eq!(refused.status_code(), StatusCode::UNAUTHORIZED);
        let unmatched = server
            .get(&format!("/nowhere/{}?key={}", key.id, key.key))
            .await;
        assert_eq!(unmatched.status_code(), StatusCode::NOT_FOUND);
        let login = server
            .post("/auth/login")
            .json(&json!({ "email": "ada@example.com", "password": PASSWORD }))
            .await;
        assert_eq!(login.status_code(), StatusCode::OK);

        state(&ctx).access_log.flush();
        let text = log.text();
        let lines: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).expect("each line is JSON"))
            .collect();
        // signup, create, the six above.
        assert_eq!(lines.len(), 8, "{text}");

        let service = line_of(&lines, &by_key);
        assert_eq!(service["method"], "GET");
        assert_eq!(service["route"], "/protected/service-only");
        assert_eq!(service["status"], 200);
        assert_eq!(service["clientIp"], "203.0.113.7");
        assert_eq!(service["userId"], user.id.as_str());
        assert_eq!(service["keyId"], key.id.as_str());
        assert!(service["durationMs"]
            .as_f64()
            .is_some_and(|ms| ms.is_finite() && ms >= 0.0));
        assert!(chrono::DateTime::parse_from_rfc3339(service["time"].as_str().unwrap()).is_ok());

        let person = line_of(&lines, &by_token);
        assert_eq!(person["userId"], user.id.as_str());
        assert!(person.get("keyId").is_none(), "{person}");

        let report = line_of(&lines, &usage);
        assert_eq!(report["route"], "/keys/{id}/usage");

        let bad_key = line_of(&lines, &refused);
        assert_eq!(bad_key["status"], 401);
        assert!(bad_key.get("userId").is_none(), "{bad_key}");

        let nowhere = line_of(&lines, &unmatched);
        assert_eq!(nowhere["route"], "unmatched");
        assert_eq!(nowhere["status"], 404);

        let key_hash = hex::encode(Sha256::digest(key.key.as_bytes()));
        for secret in [
            key.key.as_str(),
            &key.key[3..],
            &key_hash,
            user.access.as_str(),
            user.refresh.as_str(),
            PASSWORD,
            "ada@example.com",
            "$2b$",
        ] {
            assert!(
                !text.contains(secret),
                "{secret} in the access log:\n{text}"
            );
        }
        for line in &lines {
            let mut fields: Vec<&str> = line
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            fields.sort_unstable();
            let known = [
                "clientIp",
                "durationMs",
                "keyId",
                "method",
                "requestId",
                "route",
                "status",
                "time",
                "userId",
            ];
            assert!(fields.iter().all(|field| known.contains(field)), "{line}");
        }
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn every_response_has_a_request_id_and_a_safe_one_sent_is_kept() {
    with_app(|server, _ctx| async move {
        let health = server.get("/health").await;
        let generated = health.header("x-request-id");
        assert!(uuid::Uuid::parse_str(generated.to_str().unwrap()).is_ok());
        let kept = server
            .get("/health")
            .add_header("x-request-id", "edge-7f3a.1")
            .await;
        assert_eq!(kept.header("x-request-id"), "edge-7f3a.1");
        let email = server
            .get("/health")
            .add_header("x-request-id", "ada@example.com")
            .await;
        assert_ne!(email.header("x-request-id"), "ada@example.com");
        for response in [
            server.get("/nowhere").await,
            server.delete("/health").await,
            server.get("/keys").await,
            server.get("/metrics").await,
        ] {
            assert!(response.maybe_header("x-request-id").is_some());
        }
    })
    .await;
}

/// Every sample of the exposition, by name and labels as printed.
fn samples(text: &str) -> std::collections::HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

async fn scrape(server: &TestServer) -> std::collections::HashMap<String, f64> {
    let response = server.get("/metrics").await;
    assert_eq!(response.status_code(), StatusCode::OK);
    assert_eq!(response.header(header::CONTENT_TYPE), CONTENT_TYPE);
    samples(&response.text())
}

/// How much each series moved between two scrapes (absent: 0).
fn moved(
    before: &std::collections::HashMap<String, f64>,
    after: &std::collections::HashMap<String, f64>,
    series: &str,
) -> f64 {
    after.get(series).copied().unwrap_or(0.0) - before.get(series).copied().unwrap_or(0.0)
}

#[tokio::test]
#[parallel]
async fn metrics_count_exactly_the_requests_made_per_outcome() {
    with_app(|server, ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let key = create_key(&server, &user.access, json!({ "name": "svc" })).await;
        let limited = create_key(
            &server,
            &user.access,
            json!({ "name": "limited", "rateLimit": { "requests": 1, "perSeconds": 60 } }),
        )
        .await;
        let gone = create_key(&server, &user.access, json!({ "name": "gone" })).await;
        assert_eq!(
            revoke_key(&server, &user.access, &gone.id).await.status_code(),
            StatusCode::OK
        );
        let unissued = authgate::auth::api_key::ApiKey::generate()
            .unwrap()
            .reveal()
            .to_string();
        let claims = state(&ctx).tokens.verify_access(&user.access).unwrap();
        let expired = state(&ctx)
            .tokens
            .issue_pair(
                claims.sub,
                &claims.email,
                claims.sid,
                chrono::Utc::now() - chrono::Duration::hours(1),
            )
            .unwrap()
            .access_token;

        let before = scrape(&server).await;
        let statuses = |path: &'static str, key: &str| {
            let server = &server;
            let key = key.to_string();
            async move { get_with_key(server, path, &key).await.status_code().as_u16() }
        };
        for _ in 0..3 {
            assert_eq!(statuses("/protected/service-only", &key.key).await, 200);
        }
        assert_eq!(statuses("/protected/flexible", &key.key).await, 200);
        assert_eq!(statuses("/protected/service-only", &limited.key).await, 200);
        assert_eq!(statuses("/protected/service-only", &limited.key).await, 429);
        assert_eq!(statuses("/protected/service-only", &gone.key).await, 401);
        assert_eq!(statuses("/protected/service-only", &unissued).await, 401);
        assert_eq!(statuses("/protected/service-only", "sk_not-a-key").await, 401);
        let verified = server
            .post("/keys/verify")
            .json(&json!({ "key": "sk_not-a-key" }))
            .await;
        assert_eq!(verified.json::<Value>()["code"], "NOT_FOUND");
        for _ in 0..2 {
            let ok = get_with_token(&server, "/protected/user-only", &user.access).await;
            assert_eq!(ok.status_code(), StatusCode::OK);
        }
        let bad = get_with_token(&server, "/protected/user-only", "not.a.token").await;
        assert_eq!(bad.status_code(), StatusCode::UNAUTHORIZED);
        let late = get_with_token(&server, "/protected/user-only", &expired).await;
        assert_eq!(late.status_code(), StatusCode::UNAUTHORIZED);
        let logout = server
            .post("/auth/logout")
            .authorization_bearer(&user.access)
            .await;
        assert_eq!(logout.status_code(), StatusCode::OK, "{}", logout.text());
        let after_logout = get_with_token(&server, "/protected/user-only", &user.access).await;
        assert_eq!(after_logout.status_code(), StatusCode::UNAUTHORIZED);
        let after = scrape(&server).await;

        let keys = |outcome: &str| {
            moved(&before, &after, &format!("authgate_key_verifications_total{{outcome=\"{outcome}\"}}"))
        };
        assert_eq!(keys("valid"), 5.0);
        assert_eq!(keys("rate_limited"), 1.0);
        assert_eq!(keys("revoked"), 1.0);
        // The unissued key, the malformed one at the guard and at /keys/verify.
        assert_eq!(keys("not_found"), 3.0);
        assert_eq!(keys("expired") + keys("disabled"), 0.0);

        let tokens = |outcome: &str| {
            moved(&before, &after, &format!("authgate_token_verifications_total{{outcome=\"{outcome}\"}}"))
        };
        // Two user-only calls and logout's own guard.
        assert_eq!(tokens("valid"), 3.0);
        assert_eq!(tokens("invalid"), 1.0);
        assert_eq!(tokens("expired"), 1.0);
        assert_eq!(tokens("revoked"), 1.0);

        let requests = |method: &str, route: &str, status: u16| {
            moved(
                &before,
                &after,
                &format!("authgate_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}}"),
            )
        };
        assert_eq!(requests("GET", "/protected/service-only", 200), 4.0);
        assert_eq!(requests("GET", "/protected/service-only", 429), 1.0);
        assert_eq!(requests("GET", "/protected/service-only", 401), 3.0);
        assert_eq!(requests("GET", "/protected/flexible", 200), 1.0);
        assert_eq!(requests("POST", "/keys/verify", 200), 1.0);
        assert_eq!(requests("GET", "/protected/user-only", 200), 2.0);
        assert_eq!(requests("GET", "/protected/user-only", 401), 3.0);
        assert_eq!(requests("POST", "/auth/logout", 200), 1.0);
        // The first scrape is counted by the second one.
        assert_eq!(requests("GET", "/metrics", 200), 1.0);
        assert_eq!(
            moved(
                &before,
                &after,
                "authgate_http_request_duration_seconds_count{route=\"/protected/service-only\"}"
            ),
            8.0
        );

        // Each well-formed key presented is one key-cache lookup (the malformed
        // ones are refused before it).
        let key_lookups: f64 = ["hit", "miss", "stale"]
            .iter()
            .map(|result| {
                moved(&before, &after, &format!("authgate_cache_requests_total{{cache=\"keys\",result=\"{result}\"}}"))
            })
            .sum();
        assert_eq!(key_lookups, 8.0);
        for gauge in [
            "authgate_bcrypt_queue_depth",
            "authgate_pending_last_used_keys",
            "authgate_pending_usage_entries",
            "authgate_cache_entries{cache=\"keys\"}",
        ] {
            assert!(after.contains_key(gauge), "{gauge} missing");
        }
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn the_metrics_exposition_names_every_family_and_no_identity() {
    with_app(|server, _ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let key = create_key(&server, &user.access, json!({ "name": "svc" })).await;
        get_with_key(&server, "/protected/service-only", &key.key).await;
        let text = server.get("/metrics").await.text();
        for family in [
            "authgate_http_requests",
            "authgate_http_request_duration_seconds",
            "authgate_key_verifications",
            "authgate_token_verifications",
            "authgate_cache_requests",
            "authgate_bcrypt_queue_depth",
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{family}:\n{text}"
            );
        }
        for identity in [
            user.id.as_str(),
            key.id.as_str(),
            key.key.as_str(),
            "ada@example.com",
            "127.0.0.1",
        ] {
            assert!(!text.contains(identity), "{identity} in the metrics");
        }
    })
    .await;
}

#[test]
fn metrics_are_refused_without_the_token_and_hidden_without_one_in_production() {
    let with = |value: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    };
    let status = |result: Result<(), authgate::error::ApiError>| {
        result.map_or_else(|err| err.status(), |()| StatusCode::OK)
    };
    let token = MetricsAccess::Token("scrape-secret".into());
    assert_eq!(
        status(authorize(&token, &HeaderMap::new())),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(authorize(&token, &with("Bearer wrong"))),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(authorize(&token, &with("Basic scrape-secret"))),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(authorize(&token, &with("Bearer scrape-secret"))),
        StatusCode::OK
    );
    assert_eq!(
        status(authorize(
            &MetricsAccess::Hidden,
            &with("Bearer scrape-secret")
        )),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status(authorize(&MetricsAccess::Open, &HeaderMap::new())),
        StatusCode::OK
    );
}

#[tokio::test]
#[parallel]
async fn readiness_is_checked_at_most_once_a_second() {
    with_app(|server, ctx| async move {
        assert_eq!(server.get("/ready").await.status_code(), StatusCode::OK);
        ctx.db.close_by_ref().await.expect("close the pool");
        // Within the second, the last check stands: a balancer polling every
        // second, or ten of them, costs the database one round trip a second.
        assert_eq!(server.get("/ready").await.status_code(), StatusCode::OK);
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let ready = server.get("/ready").await;
        assert_eq!(ready.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(ready.json::<Value>()["checks"]["database"], "down");
    })
    .await;
}
