//! `GET /metrics`: Prometheus metrics (see `ops::metrics`). Open in development
//! and test; in production only with `Authorization: Bearer $METRICS_TOKEN`,
//! and not there at all (404) without one.

use axum::{
    extract::State,
    http::{header, HeaderMap},
    response::IntoResponse,
};
use loco_rs::{app::AppContext, controller::Routes};

use crate::{
    auth::AuthState,
    error::{ApiResult, ErrorBody},
    ops::metrics::{self, CONTENT_TYPE},
};

#[utoipa::path(get, path = "/metrics", tag = "health",
    security((), ("bearerAuth" = [])),
    responses(
        (status = 200, description = "OpenMetrics text: request, verification and cache counters, queue gauges", content_type = "application/openmetrics-text", body = String),
        (status = 401, description = "METRICS_TOKEN is set and the request does not carry it", body = ErrorBody),
        (status = 404, description = "Production without METRICS_TOKEN", body = ErrorBody),
    ))]
pub async fn metrics(
    State(ctx): State<AppContext>,
    headers: HeaderMap,
) -> ApiResult<impl IntoResponse> {
    let state = AuthState::of(&ctx)?;
    metrics::authorize(&state.settings.metrics, &headers)?;
    Ok((
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        state.metrics.render(&state),
    ))
}

pub fn routes() -> Routes {
    Routes::new().add("/metrics", axum::routing::get(metrics))
}
