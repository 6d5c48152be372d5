//! Every presentation of a key is counted once, under its outcome, and the
//! counts reach `/keys/{id}/usage` after a flush.

use authgate::{
    auth::{api_key::ApiKey, cache::Revocation, revocations},
    models::_entities::api_keys,
    tasks::users::SetUserActive,
    workers::usage,
};
use axum::http::StatusCode;
use loco_rs::task::{Task, Vars};
use sea_orm::{sea_query::Expr, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};
use serial_test::parallel;

use super::support::{
    create_key, get_with_key, get_with_token, revoke_key, signup, state, with_app, Key,
};

async fn present(server: &axum_test::TestServer, key: &Key, times: usize, status: StatusCode) {
    for _ in 0..times {
        let response = get_with_key(server, "/protected/service-only", &key.key).await;
        assert_eq!(response.status_code(), status, "{}", response.text());
    }
}

async fn totals(server: &axum_test::TestServer, access: &str, key: &Key) -> Value {
    let response = get_with_token(server, &format!("/keys/{}/usage", key.id), access).await;
    assert_eq!(
        response.status_code(),
        StatusCode::OK,
        "{}",
        response.text()
    );
    response.json::<Value>()["totals"].clone()
}

#[tokio::test]
#[parallel]
async fn each_presentation_is_counted_under_its_outcome() {
    with_app(|server, ctx| async move {
        let ada = signup(&server, "ada@example.com").await;
        let limited = create_key(
            &server,
            &ada.access,
            json!({ "name": "limited", "rateLimit": { "requests": 2, "perSeconds": 60 } }),
        )
        .await;
        let revoked = create_key(&server, &ada.access, json!({ "name": "revoked" })).await;
        let expired = create_key(&server, &ada.access, json!({ "name": "expired" })).await;

        present(&server, &limited, 2, StatusCode::OK).await;
        present(&server, &limited, 3, StatusCode::TOO_MANY_REQUESTS).await;

        present(&server, &revoked, 1, StatusCode::OK).await;
        let response = revoke_key(&server, &ada.access, &revoked.id).await;
        assert_eq!(response.status_code(), StatusCode::OK);
        present(&server, &revoked, 4, StatusCode::UNAUTHORIZED).await;

        // Expire the key in the database, as time would, and evict it.
        let past = (chrono::Utc::now() - chrono::Duration::seconds(1)).fixed_offset();
        api_keys::Entity::update_many()
            .col_expr(api_keys::Column::ExpiresAt, Expr::value(past))
            .filter(api_keys::Column::Id.eq(expired.id.parse::<uuid::Uuid>().unwrap()))
            .exec(&ctx.db)
            .await
            .unwrap();
        let hash = ApiKey::parse(&expired.key).unwrap().hash();
        revocations::publish(&ctx, &state(&ctx), Revocation::Key(hash))
            .await
            .unwrap();
        present(&server, &expired, 2, StatusCode::UNAUTHORIZED).await;

        // An inactive owner's keys are disabled.
        let bob = signup(&server, "bob@example.com").await;
        let bobs = create_key(&server, &bob.access, json!({ "name": "bobs" })).await;
        present(&server, &bobs, 1, StatusCode::OK).await;
        let vars = |email: &str| Vars::from_cli_args(vec![("email".into(), email.into())]);
        SetUserActive { active: false }
            .run(&ctx, &vars("bob@example.com"))
            .await
            .unwrap();
        present(&server, &bobs, 3, StatusCode::UNAUTHORIZED).await;
        SetUserActive { active: true }
            .run(&ctx, &vars("bob@example.com"))
            .await
            .unwrap();

        usage::flush(&ctx, &state(&ctx)).await.unwrap();

        let counts =
            |total: u64, valid: u64, limited: u64, expired: u64, revoked: u64, disabled: u64| {
                json!({ "total": total, "valid": valid, "rateLimited": limited, "expired": expired,
                    "revoked": revoked, "disabled": disabled })
            };
        assert_eq!(
            totals(&server, &ada.access, &limited).await,
            counts(5, 2, 3, 0, 0, 0)
        );
        assert_eq!(
            totals(&server, &ada.access, &revoked).await,
            counts(5, 1, 0, 0, 4, 0)
        );
        assert_eq!(
            totals(&server, &ada.access, &expired).await,
            counts(2, 0, 0, 2, 0, 0)
        );
        assert_eq!(
            totals(&server, &bob.access, &bobs).await,
            counts(4, 1, 0, 0, 0, 3)
        );
    })
    .await;
}
