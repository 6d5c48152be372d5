//! Bodies of `/events` and `/webhooks`. Only `CreatedWebhookResponse` ever
//! shows an endpoint's secret.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::models::{events, webhook_deliveries, webhook_endpoints};

/// One thing that happened to the account.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub id: Uuid,
    /// `session.created`, `key.revoked`, … (README, "Events and webhooks").
    #[serde(rename = "type")]
    #[schema(example = "key.created")]
    pub kind: String,
    pub created_at: DateTime<Utc>,
    /// Depends on the type; never a key, token, hash, password or secret.
    #[schema(value_type = Object, example = json!({"keyId": "0b8f1f2e-6f7a-4a39-9a57-3c2f7d1e9b10", "name": "billing", "prefix": "sk_1a2b3c4d", "expiresAt": null}))]
    pub data: serde_json::Value,
}

impl From<events::Model> for EventView {
    fn from(event: events::Model) -> Self {
        Self {
            id: event.id,
            kind: event.r#type,
            created_at: event.created_at.with_timezone(&Utc),
            data: serde_json::from_str(&event.data).unwrap_or_default(),
        }
    }
}

/// `GET /events`: newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventsPage {
    pub events: Vec<EventView>,
    /// Pass as `before` for the next (older) page; `null` on the last page.
    pub next_before: Option<Uuid>,
}

/// A webhook endpoint as `GET /webhooks` lists it: never its secret.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    pub id: Uuid,
    #[schema(example = "https://hooks.example.com/authgate")]
    pub url: String,
    /// Event types, or `["*"]` for all.
    #[schema(example = json!(["key.created", "key.revoked"]))]
    pub events: Vec<String>,
    pub description: Option<String>,
    /// False once disabled (410 Gone, or failing for `WEBHOOK_DISABLE_AFTER`).
    pub enabled: bool,
    /// Why it was disabled, or `null`.
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<webhook_endpoints::Model> for WebhookView {
    fn from(endpoint: webhook_endpoints::Model) -> Self {
        Self {
            id: endpoint.id,
            events: webhook_endpoints::event_types(&endpoint),
            url: endpoint.url,
            description: endpoint.description,
            enabled: endpoint.enabled,
            disabled_reason: endpoint.disabled_reason,
            created_at: endpoint.created_at.with_timezone(&Utc),
        }
    }
}

/// The one response that shows the endpoint's secret: keep it to verify
/// deliveries, it cannot be shown again.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedWebhookResponse {
    pub id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    /// `whsec_` + base64 of 32 random bytes: the Standard Webhooks signing secret.
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYq=")]
    pub secret: String,
}

impl From<webhook_endpoints::Model> for CreatedWebhookResponse {
    fn from(endpoint: webhook_endpoints::Model) -> Self {
        Self {
            id: endpoint.id,
            events: webhook_endpoints::event_types(&endpoint),
            url: endpoint.url,
            description: endpoint.description,
            enabled: endpoint.enabled,
            created_at: endpoint.created_at.with_timezone(&Utc),
            secret: endpoint.secret,
        }
    }
}

/// `POST /webhooks/{id}/test`: the `webhook.test` event queued for the endpoint.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestWebhookResponse {
    pub event_id: Uuid,
}

/// Where a delivery attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatusBody {
    Pending,
    Succeeded,
    Failed,
}

/// One attempt to deliver an event to the endpoint.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    pub id: Uuid,
    /// The event, and the `webhook-id` of every attempt to deliver it.
    pub event_id: Uuid,
    #[serde(rename = "type")]
    #[schema(example = "key.created")]
    pub kind: String,
    /// 1 for the first attempt.
    pub attempt: i32,
    pub status: DeliveryStatusBody,
    /// The receiver's HTTP status, or `null` (no answer, or not attempted yet).
    pub response_status: Option<i32>,
    /// Why it failed, or `null`.
    pub error: Option<String>,
    pub duration_ms: Option<i32>,
    pub created_at: DateTime<Utc>,
    /// When a pending attempt is due; `null` once made.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl DeliveryView {
    pub fn new(delivery: webhook_deliveries::Model, kind: String) -> Self {
        let status = match delivery.status.as_str() {
            "succeeded" => DeliveryStatusBody::Succeeded,
            "failed" => DeliveryStatusBody::Failed,
            _ => DeliveryStatusBody::Pending,
        };
        Self {
            id: delivery.id,
            event_id: delivery.event_id,
            kind,
            attempt: delivery.attempt,
            status,
            response_status: delivery.response_status,
            error: delivery.error,
            duration_ms: delivery.duration_ms,
            created_at: delivery.created_at.with_timezone(&Utc),
            next_attempt_at: delivery.next_attempt_at.map(|at| at.with_timezone(&Utc)),
        }
    }
}

/// `GET /webhooks/{id}/deliveries`: newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveriesResponse {
    pub deliveries: Vec<DeliveryView>,
}
