//! HTTP handlers, thin: parse, call the model, shape the view.

pub mod auth;
pub mod docs;
pub mod events;
pub mod health;
pub mod keys;
pub mod metrics;
pub mod protected;
pub mod usage;
pub mod verify;
pub mod webhooks;

use axum::{
    body::{Body, Bytes},
    extract::{FromRequest, FromRequestParts, Query, Request},
    http::{request::Parts, StatusCode},
};
use serde::de::DeserializeOwned;

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

/// A JSON body that may be left out: no body at all, or `null`, reads as
/// `T::default()`; any other body is read exactly as [`ApiJson`] reads it
/// (content type, unknown fields, size).
pub struct OptionalApiJson<T>(pub T);

impl<T, S> FromRequest<S> for OptionalApiJson<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|rejection| match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
                _ => ApiError::BadRequest("Could not read the request body".into()),
            })?;
        if bytes.is_empty() {
            return Ok(Self(T::default()));
        }
        let ApiJson(value) = ApiJson::<Option<T>>::from_request(
            Request::from_parts(parts, Body::from(bytes)),
            state,
        )
        .await?;
        Ok(Self(value.unwrap_or_default()))
    }
}

/// `axum::extract::Query` whose rejections (an unknown or repeated parameter)
/// are a 400 in the API's error shape.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(value) = Query::from_request_parts(parts, state)
            .await
            .map_err(|rejection| {
                let text = rejection.body_text();
                let problem = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                ApiError::BadRequest(problem.to_string())
            })?;
        Ok(Self(value))
    }
}

const MAX_HEADER_BYTES: usize = 16 * 1024;
const MAX_URI_BYTES: usize = 2048;

/// Bodies over 64 KiB get 413 (see `App::after_routes`).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Bounds the work any request can cause before a handler sees it: headers
/// over 16 KiB get 431, URIs over 2 KiB get 414.
pub fn oversized(request: &Request) -> Option<ApiError> {
    let uri_bytes = request
        .uri()
        .path_and_query()
        .map_or(0, |path| path.as_str().len());
    if uri_bytes > MAX_URI_BYTES {
        return Some(ApiError::UriTooLong);
    }
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    (header_bytes > MAX_HEADER_BYTES).then_some(ApiError::HeadersTooLarge)
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
