//! `/health`: liveness, and the unprotected baseline of the benchmark.

use axum::Json;
use loco_rs::controller::Routes;

use crate::views::HealthResponse;

#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, body = HealthResponse)))]
pub async fn health() -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "ok",
        timestamp: chrono::Utc::now(),
    })
}

pub fn routes() -> Routes {
    Routes::new().add("/health", axum::routing::get(health))
}
