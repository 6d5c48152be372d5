//! HTTP handlers, thin: parse, call the model, shape the view.

pub mod auth;
pub mod docs;
pub mod health;
pub mod keys;
pub mod protected;

use axum::extract::{FromRequest, FromRequestParts};

use crate::error::ApiError;

/// `axum::Json` whose rejections (bad JSON, wrong content type, unknown or
/// missing fields, oversized body) answer in the API's error shape.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `axum::extract::Path` whose rejections are a 400 in the API's error shape.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

const MAX_HEADER_BYTES: usize = 16 * 1024;
const MAX_URI_BYTES: usize = 2048;

/// Middleware bounding the work any request can cause before a handler sees it:
/// headers over 16 KiB get 431, URIs over 2 KiB get 414. (Bodies are bounded to
/// 64 KiB by Loco's `limit_payload`.)
pub async fn bounded_request(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let uri_bytes = request
        .uri()
        .path_and_query()
        .map_or(0, |path| path.as_str().len());
    if uri_bytes > MAX_URI_BYTES {
        return ApiError::UriTooLong.into_response();
    }
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return ApiError::HeadersTooLarge.into_response();
    }
    next.run(request).await
}

/// Unknown routes, in the API's error shape rather than an empty 404.
pub async fn route_not_found() -> ApiError {
    ApiError::RouteNotFound
}

/// Known routes called with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// One message per problem found, as the old service's validation answered.
pub fn validation_failed<const N: usize>(problems: [Option<String>; N]) -> ApiError {
    ApiError::Validation(problems.into_iter().flatten().collect())
}
