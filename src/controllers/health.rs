//! `/health`: liveness, touching nothing (and the unprotected baseline of the
//! benchmark). `/ready`: readiness, for a load balancer to stop sending traffic
//! to an instance whose database is unreachable.

use std::sync::Arc;

use axum::{extract::State, http::StatusCode, Json};
use loco_rs::controller::Routes;

use crate::{
    auth::AuthState,
    views::{HealthResponse, ReadyChecks, ReadyResponse},
};

/// How long a successful readiness check stands for the next ones.
const READY_CACHED_FOR: std::time::Duration = std::time::Duration::from_secs(1);

#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, body = HealthResponse)))]
pub async fn health() -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "ok",
        timestamp: chrono::Utc::now(),
    })
}

/// Ready when the database answers; Redis and the revocation listener are
/// reported but do not make the instance unready (it limits from memory
/// without Redis, and its cache TTL bounds a missed revocation). A database
/// that answered within the last second is not asked again; one known to be
/// down is reported at once.
#[utoipa::path(get, path = "/ready", tag = "health", responses(
    (status = 200, body = ReadyResponse),
    (status = 503, description = "The database cannot be reached", body = ReadyResponse),
))]
pub async fn ready(State(state): State<Arc<AuthState>>) -> (StatusCode, Json<ReadyResponse>) {
    let database_up = !state.database.is_down()
        && (state.database.ready_within(READY_CACHED_FOR) || ping(&state).await);
    let checks = ReadyChecks {
        database: if database_up { "ok" } else { "down" },
        redis: match state.limiter.redis_healthy() {
            None => "disabled",
            Some(true) => "ok",
            Some(false) => "down",
        },
        notifications: state.listener.describe(),
    };
    let (status, word) = if database_up {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    (
        status,
        Json(ReadyResponse {
            status: word,
            checks,
        }),
    )
}

/// One round trip, bounded: a readiness probe must answer even when the
/// database hangs.
async fn ping(state: &AuthState) -> bool {
    let ping = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        state.database.connection().ping(),
    )
    .await;
    match ping {
        Ok(Ok(())) => {
            state.database.note_ready();
            true
        }
        Ok(Err(err)) => {
            state.database.observe(&err);
            false
        }
        Err(_) => {
            state.database.report(false);
            false
        }
    }
}

/// Served with the credential layer's state, not Loco's `AppContext` (see
/// `auth::Credentials`).
pub fn routes(state: &Arc<AuthState>) -> Routes {
    use axum::routing::get;
    Routes::new()
        .add("/health", get(health).with_state(state.clone()))
        .add("/ready", get(ready).with_state(state.clone()))
}
