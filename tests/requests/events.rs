//! `/events`: paging, and what each event type records (never a secret).

use authgate::{
    events::delivery::sweep_expired_keys, models::_entities::events, tasks::users::SetUserActive,
    workers::usage,
};
use axum::http::StatusCode;
use axum_test::TestServer;
use chrono::{TimeDelta, Utc};
use loco_rs::task::{Task, Vars};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{json, Value};
use serial_test::parallel;

use super::support::{
    assert_error, create_key, get_with_key, get_with_token, json_ok, refresh, revoke_key, signup,
    state, with_app, PASSWORD,
};
use crate::assert_body_snapshot;

async fn events_of(server: &TestServer, access: &str) -> Vec<Value> {
    let page = json_ok(&get_with_token(server, "/events?limit=100", access).await);
    page["events"].as_array().unwrap().clone()
}

/// The data of the newest event of `kind`.
fn newest<'a>(events: &'a [Value], kind: &str) -> &'a Value {
    &events
        .iter()
        .find(|event| event["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event in {events:?}"))["data"]
}

fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|event| event["type"].as_str().unwrap())
        .collect()
}

#[tokio::test]
#[parallel]
async fn events_page_newest_first_with_a_cursor() {
    with_app(|server, _ctx| async move {
        let ada = signup(&server, "ada@example.com").await;
        let bob = signup(&server, "bob@example.com").await;
        for name in ["first", "second", "third"] {
            create_key(&server, &ada.access, json!({ "name": name })).await;
        }
        create_key(&server, &bob.access, json!({ "name": "bobs" })).await;

        let mut seen = Vec::new();
        let mut path = "/events?limit=2".to_string();
        let mut pages = 0;
        loop {
            let page = json_ok(&get_with_token(&server, &path, &ada.access).await);
            pages += 1;
            seen.extend(page["events"].as_array().unwrap().clone());
            match page["nextBefore"].as_str() {
                Some(before) => path = format!("/events?limit=2&before={before}"),
                None => break,
            }
        }
        // Four events, two full pages: the second says it is the last.
        assert_eq!(pages, 2);
        let names: Vec<&str> = seen
            .iter()
            .map(|event| event["data"]["name"].as_str().unwrap_or("-"))
            .collect();
        assert_eq!(names, ["third", "second", "first", "-"]);
        assert_eq!(types(&seen).last(), Some(&"session.created"));
        let times: Vec<&str> = seen
            .iter()
            .map(|event| event["createdAt"].as_str().unwrap())
            .collect();
        assert!(times.windows(2).all(|pair| pair[0] >= pair[1]), "{times:?}");

        // The default page holds them all; an unknown cursor gives an empty page.
        let all = json_ok(&get_with_token(&server, "/events", &ada.access).await);
        assert_eq!(all["events"].as_array().unwrap().len(), 4);
        assert_eq!(all["nextBefore"], Value::Null);
        let bobs_event = events_of(&server, &bob.access).await[0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let foreign = json_ok(
            &get_with_token(
                &server,
                &format!("/events?before={bobs_event}"),
                &ada.access,
            )
            .await,
        );
        assert_eq!(foreign, json!({ "events": [], "nextBefore": null }));
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn bad_paging_parameters_are_400() {
    with_app(|server, _ctx| async move {
        let ada = signup(&server, "ada@example.com").await;
        for (query, problem) in [
            ("limit=0", json!(["limit must be 1 to 100"])),
            ("limit=101", json!(["limit must be 1 to 100"])),
            ("before=yesterday", json!(["before must be an event id"])),
            (
                "limit=0&before=x",
                json!(["limit must be 1 to 100", "before must be an event id"]),
            ),
        ] {
            let response = get_with_token(&server, &format!("/events?{query}"), &ada.access).await;
            assert_eq!(
                assert_error(&response, StatusCode::BAD_REQUEST),
                problem,
                "{query}"
            );
        }
        for query in ["limit=ten", "page=2"] {
            let response = get_with_token(&server, &format!("/events?{query}"), &ada.access).await;
            assert_error(&response, StatusCode::BAD_REQUEST);
        }
        assert_error(&server.get("/events").await, StatusCode::UNAUTHORIZED);
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn session_events_say_where_from_and_never_hold_tokens() {
    with_app(|server, ctx| async move {
        let signup_response = server
            .post("/auth/signup")
            .add_header("x-forwarded-for", "203.0.113.7")
            .add_header("user-agent", "curl/8.5")
            .json(&json!({ "email": "ada@example.com", "password": PASSWORD }))
            .await;
        assert_eq!(signup_response.status_code(), StatusCode::CREATED);
        let first: Value = signup_response.json();
        let access = first["accessToken"].as_str().unwrap().to_string();

        let login = |password: &'static str, email: &'static str| {
            server
                .post("/auth/login")
                .add_header("x-forwarded-for", "198.51.100.4")
                .add_header("user-agent", "probe/1")
                .json(&json!({ "email": email, "password": password }))
        };
        assert_eq!(
            login("wrong password", "ada@example.com")
                .await
                .status_code(),
            StatusCode::UNAUTHORIZED
        );
        // An unknown email records nothing anywhere.
        let stored = events::Entity::find().count(&ctx.db).await.unwrap();
        assert_eq!(
            login("wrong password", "nobody@example.com")
                .await
                .status_code(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(events::Entity::find().count(&ctx.db).await.unwrap(), stored);

        let second: Value = login(PASSWORD, "ada@example.com").await.json();
        let second_refresh = second["refreshToken"].as_str().unwrap().to_string();
        // A replayed refresh token revokes its session.
        assert_eq!(
            refresh(&server, &second_refresh).await.status_code(),
            StatusCode::OK
        );
        let replay = server
            .post("/auth/refresh")
            .add_header("x-forwarded-for", "192.0.2.66")
            .json(&json!({ "refreshToken": second_refresh }))
            .await;
        assert_eq!(replay.status_code(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            server
                .post("/auth/logout")
                .authorization_bearer(&access)
                .await
                .status_code(),
            StatusCode::OK
        );

        let access = second["accessToken"].as_str().unwrap();
        let fresh: Value = login(PASSWORD, "ada@example.com").await.json();
        let fresh_access = fresh["accessToken"].as_str().unwrap();
        let page = get_with_token(&server, "/events", fresh_access).await;
        let text = page.text();
        for secret in [access, &second_refresh, fresh_access, PASSWORD] {
            assert!(!text.contains(secret), "an event holds a token or password");
        }
        let events = events_of(&server, fresh_access).await;
        assert_eq!(
            types(&events),
            [
                "session.created",
                "session.revoked",
                "session.reuse_detected",
                "session.created",
                "login.failed",
                "session.created",
            ]
        );
        let signup_session = events.last().unwrap()["data"].clone();
        assert_eq!(signup_session["ip"], "203.0.113.7");
        assert_eq!(signup_session["userAgent"], "curl/8.5");
        assert!(signup_session["sessionId"].is_string());
        assert_eq!(
            newest(&events, "login.failed"),
            &json!({ "ip": "198.51.100.4", "userAgent": "probe/1" })
        );
        let reuse = newest(&events, "session.reuse_detected");
        assert_eq!(reuse["ip"], "192.0.2.66");
        assert_eq!(reuse["sessionId"], events[3]["data"]["sessionId"]);
        assert_eq!(
            newest(&events, "session.revoked"),
            &json!({ "sessionId": signup_session["sessionId"] })
        );
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn key_events_name_the_key_but_never_show_it() {
    with_app(|server, _ctx| async move {
        let ada = signup(&server, "ada@example.com").await;
        let key = create_key(
            &server,
            &ada.access,
            json!({ "name": "billing", "expiresAt": "2999-01-01T00:00:00Z" }),
        )
        .await;
        let rotated = server
            .post(&format!("/keys/{}/rotate", key.id))
            .authorization_bearer(&ada.access)
            .json(&json!({ "gracePeriodSeconds": 600 }))
            .await;
        assert_eq!(rotated.status_code(), StatusCode::CREATED);
        let rotated: Value = rotated.json();
        let new_id = rotated["id"].as_str().unwrap();
        assert_eq!(
            revoke_key(&server, &ada.access, new_id).await.status_code(),
            StatusCode::OK
        );

        let page = get_with_token(&server, "/events", &ada.access).await;
        let text = page.text();
        assert!(!text.contains(&key.key[11..]), "an event shows the key");
        assert!(!text.contains(&rotated["key"].as_str().unwrap()[11..]));
        let events = events_of(&server, &ada.access).await;
        assert_eq!(
            types(&events),
            [
                "key.revoked",
                "key.rotated",
                "key.created",
                "session.created"
            ]
        );
        let created = newest(&events, "key.created");
        assert_eq!(created["keyId"], key.id.as_str());
        assert_eq!(created["prefix"], &key.key[..11]);
        let rotation = newest(&events, "key.rotated");
        assert_eq!(rotation["keyId"], key.id.as_str());
        assert_eq!(rotation["rotatedTo"], new_id);
        assert_ne!(rotation["expiresAt"], "2999-01-01T00:00:00Z");
        assert_eq!(
            newest(&events, "key.revoked")["rotatedFrom"],
            key.id.as_str()
        );
        assert_body_snapshot!(Value::from(events[..3].to_vec()), {
            "[].id", "[].createdAt", "[].data.keyId", "[].data.prefix",
            "[].data.rotatedTo", "[].data.rotatedFrom", "[1].data.expiresAt",
        });
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn a_key_past_its_expiry_is_recorded_once_by_the_sweep() {
    with_app(|server, ctx| async move {
        let ada = signup(&server, "ada@example.com").await;
        let soon = (Utc::now() + TimeDelta::hours(1)).to_rfc3339();
        let expiring = create_key(
            &server,
            &ada.access,
            json!({ "name": "a", "expiresAt": soon }),
        )
        .await;
        let revoked = create_key(
            &server,
            &ada.access,
            json!({ "name": "b", "expiresAt": soon }),
        )
        .await;
        create_key(&server, &ada.access, json!({ "name": "c" })).await;
        revoke_key(&server, &ada.access, &revoked.id).await;

        assert_eq!(sweep_expired_keys(&ctx.db, Utc::now()).await.unwrap(), 0);
        let later = Utc::now() + TimeDelta::hours(2);
        assert_eq!(sweep_expired_keys(&ctx.db, later).await.unwrap(), 1);
        assert_eq!(sweep_expired_keys(&ctx.db, later).await.unwrap(), 0);
        let events = events_of(&server, &ada.access).await;
        let expired: Vec<_> = events
            .iter()
            .filter(|event| event["type"] == "key.expired")
            .collect();
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0]["data"]["keyId"], expiring.id.as_str());
        assert_eq!(expired[0]["data"]["name"], "a");
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn rate_limited_is_recorded_once_per_window_by_the_flush() {
    with_app(|server, ctx| async move {
        let ada = signup(&server, "ada@example.com").await;
        let key = create_key(
            &server,
            &ada.access,
            json!({ "name": "limited", "rateLimit": { "requests": 2, "perSeconds": 60 } }),
        )
        .await;
        let mut statuses = Vec::new();
        for _ in 0..6 {
            let response = get_with_key(&server, "/protected/service-only", &key.key).await;
            statuses.push(response.status_code().as_u16());
        }
        assert_eq!(statuses, [200, 200, 429, 429, 429, 429]);
        // Nothing is written on the request path.
        assert!(!types(&events_of(&server, &ada.access).await).contains(&"key.rate_limited"));
        usage::flush(&ctx, &state(&ctx)).await.unwrap();
        let events = events_of(&server, &ada.access).await;
        let limited: Vec<_> = events
            .iter()
            .filter(|event| event["type"] == "key.rate_limited")
            .collect();
        assert_eq!(limited.len(), 1, "{events:?}");
        let data = &limited[0]["data"];
        assert_eq!(data["keyId"], key.id.as_str());
        assert_eq!(data["name"], "limited");
        assert_eq!(
            data["rateLimit"],
            json!({ "requests": 2, "perSeconds": 60 })
        );
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn deactivation_and_activation_by_task_are_recorded() {
    with_app(|server, ctx| async move {
        let ada = signup(&server, "ada@example.com").await;
        let vars = || Vars::from_cli_args(vec![("email".into(), "ada@example.com".into())]);
        SetUserActive { active: false }
            .run(&ctx, &vars())
            .await
            .unwrap();
        // Already inactive: no second event.
        SetUserActive { active: false }
            .run(&ctx, &vars())
            .await
            .unwrap();
        SetUserActive { active: true }
            .run(&ctx, &vars())
            .await
            .unwrap();
        let login: Value = server
            .post("/auth/login")
            .json(&json!({ "email": "ada@example.com", "password": PASSWORD }))
            .await
            .json();
        let events = events_of(&server, login["accessToken"].as_str().unwrap()).await;
        assert_eq!(
            types(&events),
            [
                "session.created",
                "user.activated",
                "user.deactivated",
                "session.created"
            ]
        );
        assert_eq!(events[1]["data"], json!({ "userId": ada.id }));
    })
    .await;
}
