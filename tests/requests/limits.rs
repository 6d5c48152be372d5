//! Abuse resistance: login throttling, signup floods, per-key rate limits.

use axum::http::StatusCode;
use axum_test::TestServer;
use serde_json::{json, Value};
use serial_test::parallel;

use super::support::{
    all_at_once, assert_error, create_key, get_with_key, list_keys, post_key, signup, with_app,
    PASSWORD,
};
use crate::assert_body_snapshot;

async fn login(
    server: &TestServer,
    email: &str,
    password: &str,
    ip: &str,
) -> axum_test::TestResponse {
    server
        .post("/auth/login")
        .add_header("x-forwarded-for", ip)
        .json(&json!({ "email": email, "password": password }))
        .await
}

fn retry_after(response: &axum_test::TestResponse) -> u64 {
    response
        .header("retry-after")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
#[parallel]
async fn login_brute_force_gets_429_with_retry_after() {
    with_app(|server, _ctx| async move {
        signup(&server, "ada@example.com").await;
        for _ in 0..3 {
            let response =
                login(&server, "ada@example.com", "wrong password", "198.51.100.1").await;
            assert_error(&response, StatusCode::UNAUTHORIZED);
        }
        // Locked for this account from this IP, even with the right password.
        let locked = login(&server, "ada@example.com", PASSWORD, "198.51.100.1").await;
        assert_error(&locked, StatusCode::TOO_MANY_REQUESTS);
        assert!((1..=900).contains(&retry_after(&locked)));
        assert_body_snapshot!(locked.json::<Value>(), {});

        // The owner, elsewhere, still gets in.
        let elsewhere = login(&server, "ada@example.com", PASSWORD, "203.0.113.5").await;
        assert_eq!(elsewhere.status_code(), StatusCode::OK);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn parallel_guesses_get_no_more_tries_than_sequential_ones() {
    with_app(|server, _ctx| async move {
        signup(&server, "ada@example.com").await;
        let guesses = all_at_once(
            (0..20).map(|_| login(&server, "ada@example.com", "wrong password", "198.51.100.1")),
        )
        .await;
        let checked = guesses
            .iter()
            .filter(|response| response.status_code() == StatusCode::UNAUTHORIZED)
            .count();
        assert_eq!(checked, 3, "only the limit's worth of guesses reach bcrypt");
        for refused in guesses
            .iter()
            .filter(|response| response.status_code() != StatusCode::UNAUTHORIZED)
        {
            assert_error(refused, StatusCode::TOO_MANY_REQUESTS);
            assert!((1..=900).contains(&retry_after(refused)));
        }

        let locked = login(&server, "ada@example.com", PASSWORD, "198.51.100.1").await;
        assert_error(&locked, StatusCode::TOO_MANY_REQUESTS);
        assert!((1..=900).contains(&retry_after(&locked)));
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn another_account_on_the_same_ip_can_still_log_in() {
    with_app(|server, _ctx| async move {
        signup(&server, "ada@example.com").await;
        signup(&server, "bob@example.com").await;
        for expected in [StatusCode::UNAUTHORIZED; 3]
            .into_iter()
            .chain([StatusCode::TOO_MANY_REQUESTS])
        {
            let response =
                login(&server, "ada@example.com", "wrong password", "198.51.100.1").await;
            assert_error(&response, expected);
        }
        let bob = login(&server, "bob@example.com", PASSWORD, "198.51.100.1").await;
        assert_eq!(bob.status_code(), StatusCode::OK);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn a_successful_login_resets_the_failures() {
    with_app(|server, _ctx| async move {
        signup(&server, "ada@example.com").await;
        for _ in 0..2 {
            let response =
                login(&server, "ada@example.com", "wrong password", "198.51.100.1").await;
            assert_error(&response, StatusCode::UNAUTHORIZED);
        }
        let ok = login(&server, "ada@example.com", PASSWORD, "198.51.100.1").await;
        assert_eq!(ok.status_code(), StatusCode::OK);
        for _ in 0..2 {
            let response =
                login(&server, "ada@example.com", "wrong password", "198.51.100.1").await;
            assert_error(&response, StatusCode::UNAUTHORIZED);
        }
        let third = login(&server, "ada@example.com", "wrong password", "198.51.100.1").await;
        assert_error(&third, StatusCode::UNAUTHORIZED);
        let fourth = login(&server, "ada@example.com", "wrong password", "198.51.100.1").await;
        assert_error(&fourth, StatusCode::TOO_MANY_REQUESTS);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn failures_from_many_ips_hit_the_accounts_ceiling() {
    with_app(|server, _ctx| async move {
        signup(&server, "ada@example.com").await;
        for ip in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
            for _ in 0..2 {
                let response = login(&server, "ada@example.com", "wrong password", ip).await;
                assert_error(&response, StatusCode::UNAUTHORIZED);
            }
        }
        let fourth_ip = login(&server, "ada@example.com", "wrong password", "198.51.100.4").await;
        assert_error(&fourth_ip, StatusCode::TOO_MANY_REQUESTS);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn unknown_emails_are_throttled_like_known_ones() {
    with_app(|server, _ctx| async move {
        for _ in 0..3 {
            let response = login(
                &server,
                "nobody@example.com",
                "wrong password",
                "198.51.100.1",
            )
            .await;
            assert_error(&response, StatusCode::UNAUTHORIZED);
        }
        let locked = login(
            &server,
            "nobody@example.com",
            "wrong password",
            "198.51.100.1",
        )
        .await;
        assert_error(&locked, StatusCode::TOO_MANY_REQUESTS);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn signup_floods_get_429() {
    with_app(|server, _ctx| async move {
        for n in 0..8 {
            let response = server
                .post("/auth/signup")
                .add_header("x-forwarded-for", "198.51.100.9")
                .json(&json!({ "email": format!("flood{n}@example.com"), "password": PASSWORD }))
                .await;
            assert_eq!(response.status_code(), StatusCode::CREATED);
        }
        let flood = server
            .post("/auth/signup")
            .add_header("x-forwarded-for", "198.51.100.9")
            .json(&json!({ "email": "flood9@example.com", "password": PASSWORD }))
            .await;
        assert_error(&flood, StatusCode::TOO_MANY_REQUESTS);
        assert!(retry_after(&flood) >= 1);
        let other_ip = server
            .post("/auth/signup")
            .add_header("x-forwarded-for", "198.51.100.10")
            .json(&json!({ "email": "flood10@example.com", "password": PASSWORD }))
            .await;
        assert_eq!(other_ip.status_code(), StatusCode::CREATED);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn an_ipv6_client_rotating_addresses_in_its_64_is_one_client() {
    with_app(|server, _ctx| async move {
        let signup_from = |n: u32, ip: String| {
            server
                .post("/auth/signup")
                .add_header("x-forwarded-for", ip)
                .json(&json!({ "email": format!("v6-{n}@example.com"), "password": PASSWORD }))
        };
        for n in 0..8 {
            let response = signup_from(n, format!("2001:db8:7:7::{n:x}")).await;
            assert_eq!(response.status_code(), StatusCode::CREATED);
        }
        let rotated = signup_from(8, "2001:db8:7:7:ffff:ffff:ffff:ffff".into()).await;
        assert_error(&rotated, StatusCode::TOO_MANY_REQUESTS);
        let next_64 = signup_from(9, "2001:db8:7:8::1".into()).await;
        assert_eq!(next_64.status_code(), StatusCode::CREATED);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn a_keys_rate_limit_is_enforced_and_reported() {
    with_app(|server, _ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        let limited = create_key(
            &server,
            &user.access,
            json!({ "name": "limited", "rateLimit": { "requests": 3, "perSeconds": 60 } }),
        )
        .await;
        for remaining in ["2", "1", "0"] {
            let response = get_with_key(&server, "/protected/service-only", &limited.key).await;
            assert_eq!(response.status_code(), StatusCode::OK);
            assert_eq!(response.header("ratelimit-limit"), "3");
            assert_eq!(response.header("ratelimit-remaining"), remaining);
            assert!(response.maybe_header("ratelimit-reset").is_some());
        }
        let over = get_with_key(&server, "/protected/flexible", &limited.key).await;
        assert_error(&over, StatusCode::TOO_MANY_REQUESTS);
        assert!((1..=60).contains(&retry_after(&over)));
        assert_eq!(over.header("ratelimit-remaining"), "0");

        let unlimited = create_key(&server, &user.access, json!({ "name": "free" })).await;
        let free = get_with_key(&server, "/protected/service-only", &unlimited.key).await;
        assert_eq!(free.status_code(), StatusCode::OK);
        assert!(free.maybe_header("ratelimit-limit").is_none());

        let listed = list_keys(&server, &user.access).await;
        let limits: Vec<&Value> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|k| &k["rateLimit"])
            .collect();
        assert_eq!(
            limits,
            [&Value::Null, &json!({ "requests": 3, "perSeconds": 60 })]
        );
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn bad_rate_limits_are_400() {
    with_app(|server, _ctx| async move {
        let user = signup(&server, "ada@example.com").await;
        for rate_limit in [
            json!({ "requests": 0, "perSeconds": 60 }),
            json!({ "requests": 10, "perSeconds": 100_000 }),
            json!({ "requests": -1, "perSeconds": 60 }),
            json!({ "requests": 10 }),
            json!("10/minute"),
        ] {
            let response = post_key(
                &server,
                &user.access,
                &json!({ "name": "k", "rateLimit": rate_limit }),
            )
            .await;
            assert_error(&response, StatusCode::BAD_REQUEST);
            assert!(!response.text().contains("10/minute"), "value echoed");
        }
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn hostile_headers_and_uris_are_4xx() {
    with_app(|server, _ctx| async move {
        let non_utf8 = axum::http::HeaderValue::from_bytes(b"sk_\xff\xfe").unwrap();
        let response = server
            .get("/protected/service-only")
            .add_header("x-api-key", non_utf8)
            .await;
        assert_error(&response, StatusCode::UNAUTHORIZED);
        let non_utf8 = axum::http::HeaderValue::from_bytes(b"Bearer \xff").unwrap();
        let response = server
            .get("/protected/user-only")
            .add_header("authorization", non_utf8)
            .await;
        assert_error(&response, StatusCode::UNAUTHORIZED);

        let huge = "a".repeat(20 * 1024);
        let response = server
            .get("/protected/user-only")
            .add_header("x-padding", huge)
            .await;
        assert_error(&response, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        let long_path = format!("/keys/{}", "a".repeat(3000));
        assert_error(&server.get(&long_path).await, StatusCode::URI_TOO_LONG);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn a_body_that_is_not_utf8_is_400() {
    with_app(|server, _ctx| async move {
        let response = server
            .post("/auth/login")
            .bytes(bytes::Bytes::from_static(
                b"{\"email\": \"\xff\xfe\", \"password\": \"x\"}",
            ))
            .content_type("application/json")
            .await;
        assert_error(&response, StatusCode::BAD_REQUEST);
    })
    .await;
}
