//! `/events`: the caller's audit log, newest first, a page at a time.

use axum::{extract::State, Json};
use loco_rs::{app::AppContext, controller::Routes};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::{validation_failed, ApiQuery};
use crate::{
    auth::extract::UserAuth,
    error::{ApiError, ApiResult, ErrorBody},
    models::events,
    views::events::{EventView, EventsPage},
};

const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: u64 = 100;

/// A page of events.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsParams {
    /// Events per page, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100, default = 50)]
    pub limit: Option<u64>,
    /// The `nextBefore` of the previous page: the events older than this
    /// event. An id that is not one of the caller's events gives an empty page.
    #[param(value_type = Option<Uuid>)]
    pub before: Option<String>,
}

/// Parses `limit` (or its default), 1 to `MAX_LIMIT`.
pub fn parse_limit(limit: Option<u64>) -> Result<u64, String> {
    match limit.unwrap_or(DEFAULT_LIMIT) {
        limit @ 1..=MAX_LIMIT => Ok(limit),
        _ => Err(format!("limit must be 1 to {MAX_LIMIT}")),
    }
}

/// The caller's events, newest first: sign-ins, failed logins, key changes,
/// rate-limit refusals, webhook tests.
#[utoipa::path(get, path = "/events", tag = "events", security(("bearerAuth" = [])),
    params(EventsParams),
    responses(
        (status = 200, body = EventsPage),
        (status = 400, description = "limit out of range, malformed before", body = ErrorBody),
        (status = 401, body = ErrorBody),
    ))]
pub async fn list(
    State(ctx): State<AppContext>,
    UserAuth(principal): UserAuth,
    ApiQuery(params): ApiQuery<EventsParams>,
) -> ApiResult<Json<EventsPage>> {
    let limit = parse_limit(params.limit);
    let before = params
        .before
        .as_deref()
        .map(|text| {
            Uuid::parse_str(text.trim()).map_err(|_| "before must be an event id".to_string())
        })
        .transpose();
    let (limit, before) = match (limit, before) {
        (Ok(limit), Ok(before)) => (limit, before),
        (limit, before) => return Err(validation_failed([limit.err(), before.err()])),
    };
    // One more than asked tells whether an older page exists.
    let mut rows = events::page(&ctx.db, principal.user_id, before, limit + 1).await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(usize::try_from(limit).map_err(ApiError::internal)?);
    let next_before = more.then(|| rows.last().map(|event| event.id)).flatten();
    Ok(Json(EventsPage {
        events: rows.into_iter().map(EventView::from).collect(),
        next_before,
    }))
}

pub fn routes() -> Routes {
    Routes::new().add("/events", axum::routing::get(list))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_defaults_to_50_and_stays_within_1_to_100() {
        assert_eq!(parse_limit(None), Ok(50));
        assert_eq!(parse_limit(Some(1)), Ok(1));
        assert_eq!(parse_limit(Some(100)), Ok(100));
        assert!(parse_limit(Some(0)).is_err());
        assert!(parse_limit(Some(101)).is_err());
    }
}
