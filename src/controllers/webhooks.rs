//! `/webhooks`: a signed-in user's webhook endpoints, their test event and
//! their delivery attempts. The secret is shown once, at creation.

use axum::{extract::State, http::StatusCode, Json};
use loco_rs::{app::AppContext, controller::Routes};
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{events::parse_limit, validation_failed, ApiJson, ApiPath, ApiQuery};
use crate::{
    auth::{extract::UserAuth, AuthState},
    error::{ApiError, ApiResult, ErrorBody},
    events::{address::AddressPolicy, signing},
    models::{
        events::{self, EventType, Fanout, NewEvent},
        webhook_deliveries,
        webhook_endpoints::{self, NewEndpoint, ALL_EVENTS},
    },
    views::{
        events::{
            CreatedWebhookResponse, DeliveriesResponse, DeliveryView, TestWebhookResponse,
            WebhookView,
        },
        MessageResponse,
    },
};

const MAX_DESCRIPTION_CHARS: usize = 500;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// Where deliveries are POSTed: http(s), at most 2,048 characters, no
    /// credentials; in production https to a public address.
    #[schema(example = "https://hooks.example.com/authgate", max_length = 2048)]
    pub url: String,
    /// The event types to send, or `["*"]` for all of them.
    #[schema(example = json!(["key.created", "key.rotated", "key.revoked"]))]
    pub events: Vec<String>,
    /// Up to 500 characters.
    #[schema(example = "billing alerts", max_length = 500)]
    pub description: Option<String>,
}

/// The endpoint a request asks for, checked: every problem is named.
fn parse_endpoint(
    body: CreateWebhookRequest,
    policy: &AddressPolicy,
) -> Result<(String, Vec<String>, Option<String>), ApiError> {
    let url = policy.check_url(&body.url).map(|url| url.to_string());
    let events = parse_event_types(body.events);
    let description = parse_description(body.description);
    match (url, events, description) {
        (Ok(url), Ok(events), Ok(description)) => Ok((url, events, description)),
        (url, events, description) => Err(validation_failed([
            url.err(),
            events.err(),
            description.err(),
        ])),
    }
}

fn parse_event_types(types: Vec<String>) -> Result<Vec<String>, String> {
    if types.is_empty() {
        return Err(r#"events must name at least one event type, or be ["*"]"#.into());
    }
    let mut parsed: Vec<String> = Vec::new();
    for kind in types {
        let kind = kind.trim();
        if !webhook_endpoints::is_event_type(kind) {
            return Err(format!(
                "events: unknown event type; known: {}, or \"*\"",
                EventType::ALL.map(EventType::as_str).join(", ")
            ));
        }
        if !parsed.iter().any(|seen| seen == kind) {
            parsed.push(kind.to_string());
        }
    }
    if parsed.iter().any(|kind| kind == ALL_EVENTS) {
        return Ok(vec![ALL_EVENTS.to_string()]);
    }
    Ok(parsed)
}

fn parse_description(description: Option<String>) -> Result<Option<String>, String> {
    let Some(description) = description else {
        return Ok(None);
    };
    let description = description.trim();
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        Err(format!(
            "description must be at most {MAX_DESCRIPTION_CHARS} characters"
        ))
    } else if description.chars().any(char::is_control) {
        Err("description must not contain control characters".into())
    } else {
        Ok(Some(description.to_string()).filter(|text| !text.is_empty()))
    }
}

/// Adds a webhook endpoint. The response is the only time its signing secret
/// is shown.
#[utoipa::path(post, path = "/webhooks", tag = "webhooks", request_body = CreateWebhookRequest,
    security(("bearerAuth" = [])),
    responses(
        (status = 201, body = CreatedWebhookResponse),
        (status = 400, description = "Bad url (not http(s), too long, with credentials, or in production not https or private), unknown event type, bad description", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 409, description = "The caller has 10 endpoints already", body = ErrorBody),
    ))]
pub async fn create(
    State(ctx): State<AppContext>,
    UserAuth(principal): UserAuth,
    ApiJson(body): ApiJson<CreateWebhookRequest>,
) -> ApiResult<(StatusCode, Json<CreatedWebhookResponse>)> {
    let state = AuthState::of(&ctx)?;
    let (url, events, description) = parse_endpoint(body, &state.settings.webhooks.addresses)?;
    let secret = signing::new_secret().map_err(ApiError::internal)?;
    let endpoint = webhook_endpoints::create(
        &ctx.db,
        principal.user_id,
        NewEndpoint {
            url,
            events,
            description,
            secret,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(endpoint.into())))
}

/// The caller's webhook endpoints, newest first. Never their secrets.
#[utoipa::path(get, path = "/webhooks", tag = "webhooks", security(("bearerAuth" = [])),
    responses(
        (status = 200, body = Vec<WebhookView>),
        (status = 401, body = ErrorBody),
    ))]
pub async fn list(
    State(ctx): State<AppContext>,
    UserAuth(principal): UserAuth,
) -> ApiResult<Json<Vec<WebhookView>>> {
    let endpoints = webhook_endpoints::list(&ctx.db, principal.user_id).await?;
    Ok(Json(endpoints.into_iter().map(WebhookView::from).collect()))
}

/// Deletes one of the caller's webhook endpoints, with its pending deliveries.
#[utoipa::path(delete, path = "/webhooks/{id}", tag = "webhooks", security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The endpoint's id")),
    responses(
        (status = 200, body = MessageResponse),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such endpoint among the caller's", body = ErrorBody),
    ))]
pub async fn delete(
    State(ctx): State<AppContext>,
    UserAuth(principal): UserAuth,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<MessageResponse>> {
    webhook_endpoints::delete(&ctx.db, principal.user_id, id).await?;
    Ok(Json(MessageResponse {
        message: "Webhook endpoint deleted successfully",
    }))
}

/// Queues a `webhook.test` event for this endpoint alone, whatever it
/// subscribed to; it is delivered like any other.
#[utoipa::path(post, path = "/webhooks/{id}/test", tag = "webhooks", security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The endpoint's id")),
    responses(
        (status = 202, body = TestWebhookResponse),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such endpoint among the caller's", body = ErrorBody),
        (status = 409, description = "The endpoint is disabled", body = ErrorBody),
    ))]
pub async fn test(
    State(ctx): State<AppContext>,
    UserAuth(principal): UserAuth,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<(StatusCode, Json<TestWebhookResponse>)> {
    let endpoint = webhook_endpoints::find(&ctx.db, principal.user_id, id).await?;
    if !endpoint.enabled {
        return Err(ApiError::Conflict("Webhook endpoint is disabled".into()));
    }
    let event = NewEvent::now(
        principal.user_id,
        EventType::WebhookTest,
        json!({ "webhookId": endpoint.id }),
    );
    let event = events::record_alone(&ctx.db, event, Fanout::Endpoint(endpoint.id)).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(TestWebhookResponse { event_id: event.id }),
    ))
}

/// How many attempts to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesParams {
    /// Attempts, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100, default = 50)]
    pub limit: Option<u64>,
}

/// The newest delivery attempts to one of the caller's endpoints: one entry
/// per attempt, the pending next one included.
#[utoipa::path(get, path = "/webhooks/{id}/deliveries", tag = "webhooks", security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The endpoint's id"), DeliveriesParams),
    responses(
        (status = 200, body = DeliveriesResponse),
        (status = 400, description = "Malformed id, limit out of range", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such endpoint among the caller's", body = ErrorBody),
    ))]
pub async fn deliveries(
    State(ctx): State<AppContext>,
    UserAuth(principal): UserAuth,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<DeliveriesParams>,
) -> ApiResult<Json<DeliveriesResponse>> {
    let limit = parse_limit(params.limit).map_err(|problem| validation_failed([Some(problem)]))?;
    let endpoint = webhook_endpoints::find(&ctx.db, principal.user_id, id).await?;
    let rows = webhook_deliveries::list(&ctx.db, endpoint.id, limit).await?;
    Ok(Json(DeliveriesResponse {
        deliveries: rows
            .into_iter()
            .map(|(delivery, kind)| DeliveryView::new(delivery, kind))
            .collect(),
    }))
}

pub fn routes() -> Routes {
    Routes::new()
        .add("/webhooks", axum::routing::post(create).get(list))
        .add("/webhooks/{id}", axum::routing::delete(delete))
        .add("/webhooks/{id}/test", axum::routing::post(test))
        .add("/webhooks/{id}/deliveries", axum::routing::get(deliveries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_are_known_names_or_a_lone_star() {
        let types = |names: &[&str]| names.iter().map(ToString::to_string).collect();
        assert_eq!(
            parse_event_types(types(&["key.created", " key.created", "login.failed"])).unwrap(),
            ["key.created", "login.failed"]
        );
        assert_eq!(
            parse_event_types(types(&["key.created", "*"])).unwrap(),
            ["*"]
        );
        assert!(parse_event_types(types(&["key.stolen"])).is_err());
        assert!(parse_event_types(types(&[])).is_err());
    }

    #[test]
    fn descriptions_are_trimmed_bounded_and_optional() {
        assert_eq!(parse_description(None), Ok(None));
        assert_eq!(parse_description(Some("  ".into())), Ok(None));
        assert_eq!(
            parse_description(Some(" alerts ".into())),
            Ok(Some("alerts".into()))
        );
        assert!(parse_description(Some("x".repeat(501))).is_err());
        assert!(parse_description(Some("a\nb".into())).is_err());
    }
}
