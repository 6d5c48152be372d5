//! Response bodies: camelCase JSON, described for OpenAPI by the same structs.

pub mod auth;
pub mod keys;
pub mod protected;

use serde::Serialize;
use utoipa::ToSchema;

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
