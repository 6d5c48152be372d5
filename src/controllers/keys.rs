//! `/keys`: a signed-in user creates, lists, rotates and revokes their API keys.

use axum::{extract::State, http::StatusCode, Json};
use chrono::{DateTime, TimeDelta, Utc};
use loco_rs::{app::AppContext, controller::Routes};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{validation_failed, ApiJson, ApiPath, OptionalApiJson};
use crate::{
    auth::{
        api_key::{ApiKey, KeyHash},
        cache::Revocation,
        extract::UserAuth,
        revocations, AuthState,
    },
    error::{ApiError, ApiResult, ErrorBody},
    models::{api_keys, users::parse_name},
    views::{
        keys::{CreatedKeyResponse, KeyView, RateLimitBody, RotatedKeyResponse},
        MessageResponse,
    },
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateKeyRequest {
    /// 1 to 100 characters, trimmed; unique among the user's active keys.
    #[schema(example = "billing-service", min_length = 1, max_length = 100)]
    pub name: String,
    /// RFC 3339, in the future. Without it the key does not expire.
    #[schema(example = "2030-01-01T00:00:00Z", format = DateTime)]
    pub expires_at: Option<String>,
    /// Requests this key may make per window; over it, 429 with `Retry-After`.
    pub rate_limit: Option<RateLimitBody>,
}

fn parse_expires_at(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let at = DateTime::parse_from_rfc3339(text.trim())
        .map_err(|_| {
            "expiresAt must be an RFC 3339 date-time, e.g. 2030-01-01T00:00:00Z".to_string()
        })?
        .with_timezone(&Utc);
    if at <= now {
        return Err("expiresAt must be in the future".into());
    }
    Ok(at)
}

/// Creates a key. The response is the only time the key is shown.
#[utoipa::path(post, path = "/keys/create", tag = "keys", request_body = CreateKeyRequest,
    security(("bearerAuth" = [])),
    responses(
        (status = 201, body = CreatedKeyResponse),
        (status = 400, description = "Bad name or expiresAt", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 409, description = "Name in use by an active key, or too many active keys", body = ErrorBody),
    ))]
pub async fn create(
    State(ctx): State<AppContext>,
    UserAuth(principal): UserAuth,
    ApiJson(body): ApiJson<CreateKeyRequest>,
) -> ApiResult<(StatusCode, Json<CreatedKeyResponse>)> {
    let state = AuthState::of(&ctx)?;
    let name = parse_name("name", &body.name);
    let expires_at = body
        .expires_at
        .as_deref()
        .map(|text| parse_expires_at(text, Utc::now()))
        .transpose();
    let rate_limit = body.rate_limit.map(RateLimitBody::parse).transpose();
    let (name, expires_at, rate_limit) = match (name, expires_at, rate_limit) {
        (Ok(name), Ok(expires_at), Ok(rate_limit)) => (name, expires_at, rate_limit),
        (name, expires_at, rate_limit) => {
            return Err(validation_failed([
                name.err(),
                expires_at.err(),
                rate_limit.err(),
            ]))
        }
    };
    let key = ApiKey::generate().map_err(ApiError::internal)?;
    let new_key = api_keys::NewKey {
        key_hash: key.hash().to_hex(),
        prefix: key.display_prefix().to_string(),
        name,
        expires_at,
        rate_limit,
    };
    let model = api_keys::create(
        &ctx.db,
        principal.user_id,
        new_key,
        state.settings.max_active_keys,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKeyResponse::new(model, &key)),
    ))
}

/// The caller's keys, newest first. Never the key itself.
#[utoipa::path(get, path = "/keys", tag = "keys", security(("bearerAuth" = [])),
    responses(
        (status = 200, body = Vec<KeyView>),
        (status = 401, body = ErrorBody),
    ))]
pub async fn list(
    State(ctx): State<AppContext>,
    UserAuth(principal): UserAuth,
) -> ApiResult<Json<Vec<KeyView>>> {
    let keys = api_keys::list(&ctx.db, principal.user_id).await?;
    let now = Utc::now();
    Ok(Json(
        keys.into_iter().map(|key| KeyView::new(key, now)).collect(),
    ))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RotateKeyRequest {
    /// How long the old key keeps working, in seconds: 0 (revoked at once) to
    /// 604800 (a week). Never past the old key's own expiry.
    #[schema(example = 3600, default = 3600, minimum = 0, maximum = 604_800)]
    pub grace_period_seconds: Option<i64>,
}

const DEFAULT_GRACE_SECONDS: i64 = 3_600;
const MAX_GRACE_SECONDS: i64 = 604_800;

fn parse_grace(seconds: Option<i64>) -> Result<TimeDelta, String> {
    match seconds.unwrap_or(DEFAULT_GRACE_SECONDS) {
        seconds @ 0..=MAX_GRACE_SECONDS => Ok(TimeDelta::seconds(seconds)),
        _ => Err(format!(
            "gracePeriodSeconds must be 0 to {MAX_GRACE_SECONDS}"
        )),
    }
}

/// Replaces a key with a new one of the same name, rate limit and expiry, shown
/// this once. The old key keeps working through the grace period (default an
/// hour), then answers 401; a grace period of 0 revokes it at once.
#[utoipa::path(post, path = "/keys/{id}/rotate", tag = "keys", security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The id of the key to replace")),
    request_body = Option<RotateKeyRequest>,
    responses(
        (status = 201, body = RotatedKeyResponse),
        (status = 400, description = "Malformed id or body, gracePeriodSeconds out of range", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such key among the caller's", body = ErrorBody),
        (status = 409, description = "The key is revoked, expired or rotated already", body = ErrorBody),
    ))]
pub async fn rotate(
    State(ctx): State<AppContext>,
    UserAuth(principal): UserAuth,
    ApiPath(id): ApiPath<Uuid>,
    OptionalApiJson(body): OptionalApiJson<RotateKeyRequest>,
) -> ApiResult<(StatusCode, Json<RotatedKeyResponse>)> {
    let state = AuthState::of(&ctx)?;
    let grace = parse_grace(body.grace_period_seconds)
        .map_err(|problem| validation_failed([Some(problem)]))?;
    let key = ApiKey::generate().map_err(ApiError::internal)?;
    let successor = api_keys::Successor {
        key_hash: key.hash().to_hex(),
        prefix: key.display_prefix().to_string(),
    };
    let rotation = api_keys::rotate(&ctx.db, principal.user_id, id, successor, grace).await?;
    // The old key's expiry changed (or it was revoked): every instance drops
    // what it cached of it and reads it again.
    let hash = KeyHash::from_hex(&rotation.old.key_hash)
        .ok_or_else(|| ApiError::internal("stored key hash is not hex"))?;
    revocations::publish(&ctx, &state, Revocation::Key(hash)).await?;
    Ok((
        StatusCode::CREATED,
        Json(RotatedKeyResponse {
            key: CreatedKeyResponse::new(rotation.new, &key),
            rotated_from: rotation.old.id,
        }),
    ))
}

/// Revokes one of the caller's keys; it stops working at once, on every instance.
#[utoipa::path(delete, path = "/keys/{id}", tag = "keys", security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The key's id")),
    responses(
        (status = 200, body = MessageResponse),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such key among the caller's", body = ErrorBody),
    ))]
pub async fn revoke(
    State(ctx): State<AppContext>,
    UserAuth(principal): UserAuth,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<MessageResponse>> {
    let state = AuthState::of(&ctx)?;
    let key = api_keys::revoke(&ctx.db, id, Some(principal.user_id)).await?;
    let hash = KeyHash::from_hex(&key.key_hash)
        .ok_or_else(|| ApiError::internal("stored key hash is not hex"))?;
    revocations::publish(&ctx, &state, Revocation::Key(hash)).await?;
    Ok(Json(MessageResponse {
        message: "API key revoked successfully",
    }))
}

pub fn routes() -> Routes {
    Routes::new()
        .add("/keys", axum::routing::get(list))
        .add("/keys/create", axum::routing::post(create))
        .add("/keys/{id}", axum::routing::delete(revoke))
        .add("/keys/{id}/rotate", axum::routing::post(rotate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_at_must_be_rfc3339_in_the_future() {
        let now = Utc::now();
        assert!(parse_expires_at("2999-01-01T00:00:00Z", now).is_ok());
        assert!(parse_expires_at("2999-01-01T00:00:00+02:00", now).is_ok());
        assert_eq!(
            parse_expires_at("2000-01-01T00:00:00Z", now).unwrap_err(),
            "expiresAt must be in the future"
        );
        assert!(parse_expires_at("tomorrow", now).is_err());
        assert!(parse_expires_at("2999-01-01", now).is_err());
    }

    #[test]
    fn grace_defaults_to_an_hour_and_stays_within_a_week() {
        assert_eq!(parse_grace(None), Ok(TimeDelta::hours(1)));
        assert_eq!(parse_grace(Some(0)), Ok(TimeDelta::zero()));
        assert_eq!(parse_grace(Some(604_800)), Ok(TimeDelta::weeks(1)));
        assert!(parse_grace(Some(604_801)).is_err());
        assert!(parse_grace(Some(-1)).is_err());
    }
}
