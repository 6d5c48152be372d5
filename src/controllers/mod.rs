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
