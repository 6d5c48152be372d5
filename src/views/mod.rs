//! Response bodies: camelCase JSON, described for OpenAPI by the same structs.

pub mod auth;
pub mod events;
pub mod keys;
pub mod protected;
pub mod usage;
pub mod verify;

use axum::{
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;

/// A JSON response written into room for all of it at once, for the bodies
/// the cache-answered routes send on every request: axum's `Json` starts with
/// 128 bytes and grows (copying) for a principal's ~230.
pub struct JsonBody<T>(pub T);

impl<T: Serialize> IntoResponse for JsonBody<T> {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(512);
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response(),
            Err(err) => ApiError::internal(err).into_response(),
        }
    }
}

/// A confirmation sentence, e.g. `{"message": "Logged out successfully"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageResponse {
    pub message: &'static str,
}

/// `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    #[schema(example = "ok")]
    pub status: &'static str,
    pub timestamp: chrono::DateTime<chrono::Utc>,
}

/// `GET /ready`: whether this instance can serve, and what it depends on.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyResponse {
    /// `ready`, or `unavailable` while the database cannot be reached.
    #[schema(example = "ready")]
    pub status: &'static str,
    pub checks: ReadyChecks,
}

/// Each dependency: `ok`, `down`, or `disabled` (not configured).
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyChecks {
    #[schema(example = "ok")]
    pub database: &'static str,
    /// Shared rate-limit counters (`REDIS_URL`).
    #[schema(example = "disabled")]
    pub redis: &'static str,
    /// Revocations from other instances (PostgreSQL `LISTEN`).
    #[schema(example = "ok")]
    pub notifications: &'static str,
}
