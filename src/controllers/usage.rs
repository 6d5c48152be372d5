//! `/keys/{id}/usage` and `/usage`: how often the caller's keys were presented,
//! per hour or day and outcome. Uses appear once the background flush has
//! written them (`LAST_USED_FLUSH_INTERVAL`).

use axum::{extract::State, Json};
use chrono::{DateTime, Utc};
use loco_rs::{app::AppContext, controller::Routes};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::{validation_failed, ApiPath, ApiQuery};
use crate::{
    auth::extract::UserAuth,
    error::{ApiError, ApiResult, ErrorBody},
    models::key_usage::{self, Granularity, UsageRange},
    views::usage::{GranularityBody, KeyUsageResponse, UsageResponse},
};

/// The range and bucket width of a report.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// RFC 3339, aligned down to its hour or UTC day. Default: `to` minus 24
    /// hours (`hour`) or 30 days (`day`).
    #[param(value_type = Option<String>, format = DateTime, example = "2030-01-01T00:00:00Z")]
    pub from: Option<String>,
    /// RFC 3339, aligned up to its hour or UTC day. Default: now.
    #[param(value_type = Option<String>, format = DateTime, example = "2030-01-02T00:00:00Z")]
    pub to: Option<String>,
    /// `hour` (the default) or `day`. At most 1,000 buckets.
    #[param(value_type = Option<GranularityBody>)]
    pub granularity: Option<String>,
}

impl UsageParams {
    /// The range these parameters ask for, `now` standing in for a missing `to`.
    fn range(&self, now: DateTime<Utc>) -> Result<UsageRange, ApiError> {
        let granularity = match self.granularity.as_deref() {
            None | Some("hour") => Ok(Granularity::Hour),
            Some("day") => Ok(Granularity::Day),
            Some(_) => Err("granularity must be hour or day".to_string()),
        };
        let from = parse_time("from", self.from.as_deref());
        let to = parse_time("to", self.to.as_deref());
        let (granularity, from, to) = match (granularity, from, to) {
            (Ok(granularity), Ok(from), Ok(to)) => (granularity, from, to),
            (granularity, from, to) => {
                return Err(validation_failed([from.err(), to.err(), granularity.err()]))
            }
        };
        UsageRange::new(granularity, from, to, now)
            .map_err(|problem| validation_failed([Some(problem)]))
    }
}

fn parse_time(field: &str, text: Option<&str>) -> Result<Option<DateTime<Utc>>, String> {
    text.map(|text| {
        DateTime::parse_from_rfc3339(text.trim())
            .map(|at| at.with_timezone(&Utc))
            .map_err(|_| {
                format!("{field} must be an RFC 3339 date-time, e.g. 2030-01-01T00:00:00Z")
            })
    })
    .transpose()
}

/// One of the caller's keys: its presentations per bucket and outcome.
#[utoipa::path(get, path = "/keys/{id}/usage", tag = "usage", security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The key's id"), UsageParams),
    responses(
        (status = 200, body = KeyUsageResponse),
        (status = 400, description = "Malformed id, from, to or granularity; from not before to; more than 1,000 buckets", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such key among the caller's", body = ErrorBody),
    ))]
pub async fn key_usage(
    State(ctx): State<AppContext>,
    UserAuth(principal): UserAuth,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<UsageParams>,
) -> ApiResult<Json<KeyUsageResponse>> {
    let range = params.range(Utc::now())?;
    let rows = key_usage::of_key(&ctx.db, principal.user_id, id, &range)
        .await?
        .ok_or(ApiError::NotFound("API key not found"))?;
    Ok(Json(KeyUsageResponse::new(id, &range, rows)))
}

/// All of the caller's keys: presentations per bucket and outcome, and per key.
#[utoipa::path(get, path = "/usage", tag = "usage", security(("bearerAuth" = [])),
    params(UsageParams),
    responses(
        (status = 200, body = UsageResponse),
        (status = 400, description = "Malformed from, to or granularity; from not before to; more than 1,000 buckets", body = ErrorBody),
        (status = 401, body = ErrorBody),
    ))]
pub async fn user_usage(
    State(ctx): State<AppContext>,
    UserAuth(principal): UserAuth,
    ApiQuery(params): ApiQuery<UsageParams>,
) -> ApiResult<Json<UsageResponse>> {
    let range = params.range(Utc::now())?;
    let rows = key_usage::of_user(&ctx.db, principal.user_id, &range).await?;
    Ok(Json(UsageResponse::new(&range, rows)))
}

pub fn routes() -> Routes {
    Routes::new()
        .add("/keys/{id}/usage", axum::routing::get(key_usage))
        .add("/usage", axum::routing::get(user_usage))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(from: Option<&str>, to: Option<&str>, granularity: Option<&str>) -> UsageParams {
        UsageParams {
            from: from.map(String::from),
            to: to.map(String::from),
            granularity: granularity.map(String::from),
        }
    }

    fn problems(result: Result<UsageRange, ApiError>) -> Vec<String> {
        match result {
            Err(ApiError::Validation(problems)) => problems,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn every_unreadable_parameter_is_named() {
        let now = Utc::now();
        let found = problems(
            params(
                Some("yesterday"),
                Some("2026-13-01T00:00:00Z"),
                Some("week"),
            )
            .range(now),
        );
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].starts_with("from "));
        assert!(found[1].starts_with("to "));
        assert_eq!(found[2], "granularity must be hour or day");
    }

    #[test]
    fn now_stands_in_for_a_missing_to() {
        let now: DateTime<Utc> = "2026-03-01T23:30:00Z".parse().unwrap();
        let range = params(None, None, Some("day")).range(now).unwrap();
        assert_eq!(
            range.to(),
            "2026-03-02T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(range.bucket_count(), 30);
        let future_from = params(Some("2026-03-02T00:00:00Z"), None, None).range(now);
        assert_eq!(problems(future_from), ["from must be before to"]);
    }
}
