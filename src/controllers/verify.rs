//! authgate in front of services it does not host: `POST /keys/verify` answers
//! whether a key is good (for a service in any language), and `GET /auth/verify`
//! is the forward-auth endpoint of nginx `auth_request`, Traefik ForwardAuth and
//! Envoy ext_authz. Both answer from the verification cache, like the guards.

use std::sync::Arc;

use axum::{
    extract::State,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode},
};
use loco_rs::controller::Routes;
use serde::Deserialize;
use utoipa::ToSchema;

use super::ApiJson;
use crate::{
    auth::{
        api_key::ApiKey,
        extract::{present_key, AnyAuth, ClientIp},
        outcome::Outcome,
        AuthState,
    },
    error::{ApiResult, ErrorBody},
    views::{verify::KeyVerification, JsonBody},
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyKeyRequest {
    /// The key a client presented to the calling service.
    #[schema(example = "sk_1a2b…")]
    pub key: String,
}

/// Verifies a key for another service. It is a use of the key: it counts in
/// its usage and last-used time and spends one request of its rate limit.
#[utoipa::path(post, path = "/keys/verify", tag = "verify", request_body = VerifyKeyRequest,
    responses(
        (status = 200, description = "The outcome, whatever it is", body = KeyVerification),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 429, description = "Too many unknown keys from this client", body = ErrorBody),
        (status = 503, description = "The key must be looked up and the database is unreachable", body = ErrorBody),
    ))]
pub async fn verify_key(
    State(state): State<Arc<AuthState>>,
    ClientIp(client): ClientIp,
    ApiJson(body): ApiJson<VerifyKeyRequest>,
) -> ApiResult<JsonBody<KeyVerification>> {
    let Ok(key) = ApiKey::parse(&body.key) else {
        state.metrics.key_verified(Outcome::NotFound);
        return Ok(JsonBody(KeyVerification::not_found()));
    };
    let verdict = present_key(&state, &key, client).await?;
    Ok(JsonBody(verdict.into()))
}

/// Forward auth: the flexible guard's rules (`x-api-key` decides when present,
/// else the Bearer token). 200 with an empty body and the identity in
/// `X-Authgate-*` headers, or the guards' 401/429. Identity headers the client
/// sent are never read. Any method and any path under `/auth/verify/` gets the
/// same answer (Envoy sends the client's own method and path).
#[utoipa::path(get, path = "/auth/verify", tag = "verify",
    security(("bearerAuth" = []), ("apiKey" = [])),
    responses(
        (status = 200, description = "Authenticated; see the headers",
            headers(
                ("X-Authgate-Access-Type" = String, description = "`user` or `service`"),
                ("X-Authgate-User-Id" = String, description = "The user's id"),
                ("X-Authgate-Key-Id" = String, description = "The key's id (service only)"),
            )),
        (status = 401, body = ErrorBody),
        (status = 429, description = "Over the key's rate limit, or too many unknown keys", body = ErrorBody),
    ))]
pub async fn forward_auth(auth: AnyAuth) -> (StatusCode, HeaderMap) {
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    match auth {
        AnyAuth::User(user) => {
            set("x-authgate-access-type", "user".into());
            set("x-authgate-user-id", user.user_id.to_string());
        }
        AnyAuth::Service(service) => {
            set("x-authgate-access-type", "service".into());
            set("x-authgate-user-id", service.user_id.to_string());
            set("x-authgate-key-id", service.key_id.to_string());
        }
    }
    (StatusCode::OK, headers)
}

/// Methods and sub-paths that forward auth answers besides the documented
/// `GET /auth/verify`: Envoy's `ext_authz` HTTP service keeps the client's
/// method and appends the client's path to the configured prefix.
pub const FORWARD_AUTH_ALIASES: &str = "/auth/verify/{*path}";

/// Served with the credential layer's state, not Loco's `AppContext` (see
/// `auth::Credentials`).
pub fn routes(state: &Arc<AuthState>) -> Routes {
    use axum::routing::{get, MethodFilter};
    let other_methods = MethodFilter::POST
        .or(MethodFilter::PUT)
        .or(MethodFilter::PATCH)
        .or(MethodFilter::DELETE)
        .or(MethodFilter::OPTIONS);
    let forward = || {
        get(forward_auth)
            .on(other_methods, forward_auth)
            .with_state(state.clone())
    };
    Routes::new()
        .add(
            "/keys/verify",
            axum::routing::post(verify_key).with_state(state.clone()),
        )
        .add("/auth/verify", forward())
        .add(FORWARD_AUTH_ALIASES, forward())
}
