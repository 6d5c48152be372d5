//! `/protected`: the three guards, one route each, with the old service's messages.

use std::sync::Arc;

use loco_rs::controller::Routes;

use crate::{
    auth::{
        extract::{AnyAuth, ServiceAuth, UserAuth},
        AuthState,
    },
    error::ErrorBody,
    views::{protected::ProtectedResponse, JsonBody},
};

/// Users only: a Bearer access token.
#[utoipa::path(get, path = "/protected/user-only", tag = "protected", security(("bearerAuth" = [])),
    responses((status = 200, body = ProtectedResponse), (status = 401, body = ErrorBody)))]
pub async fn user_only(UserAuth(principal): UserAuth) -> JsonBody<ProtectedResponse> {
    JsonBody(ProtectedResponse::for_user(
        "This route is accessible only with user JWT token",
        principal,
    ))
}

/// Services only: an `x-api-key`.
#[utoipa::path(get, path = "/protected/service-only", tag = "protected", security(("apiKey" = [])),
    responses((status = 200, body = ProtectedResponse), (status = 401, body = ErrorBody),
        (status = 429, description = "Over the key's rate limit", body = ErrorBody)))]
pub async fn service_only(ServiceAuth(principal): ServiceAuth) -> JsonBody<ProtectedResponse> {
    JsonBody(ProtectedResponse::for_service(
        "This route is accessible only with API key",
        principal,
    ))
}

/// Either; an `x-api-key` header, when present, decides.
#[utoipa::path(get, path = "/protected/flexible", tag = "protected",
    security(("bearerAuth" = []), ("apiKey" = [])),
    responses((status = 200, body = ProtectedResponse), (status = 401, body = ErrorBody),
        (status = 429, description = "Over the key's rate limit", body = ErrorBody)))]
pub async fn flexible(auth: AnyAuth) -> JsonBody<ProtectedResponse> {
    JsonBody(ProtectedResponse::for_any(
        "This route accepts both user JWT and API key",
        auth,
    ))
}

/// Served with the credential layer's state, not Loco's `AppContext` (see
/// `auth::Credentials`).
pub fn routes(state: &Arc<AuthState>) -> Routes {
    use axum::routing::get;
    Routes::new()
        .prefix("/protected")
        .add("/user-only", get(user_only).with_state(state.clone()))
        .add("/service-only", get(service_only).with_state(state.clone()))
        .add("/flexible", get(flexible).with_state(state.clone()))
}
