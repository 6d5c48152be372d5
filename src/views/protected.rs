//! Bodies of the `/protected` routes: who called, and with which credential.

use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::extract::{AnyAuth, ServicePrincipal, UserPrincipal};

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccessType {
    User,
    Service,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrincipalView {
    pub user_id: Uuid,
    #[schema(value_type = String)]
    pub email: Arc<str>,
    #[serde(rename = "type")]
    pub kind: AccessType,
    /// Present for API-key callers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProtectedResponse {
    pub message: &'static str,
    pub user: PrincipalView,
    pub access_type: AccessType,
}

impl ProtectedResponse {
    pub fn for_user(message: &'static str, principal: UserPrincipal) -> Self {
        Self {
            message,
            user: PrincipalView {
                user_id: principal.user_id,
                email: principal.email,
                kind: AccessType::User,
                key_id: None,
            },
            access_type: AccessType::User,
        }
    }

    pub fn for_service(message: &'static str, principal: ServicePrincipal) -> Self {
        Self {
            message,
            user: PrincipalView {
                user_id: principal.user_id,
                email: principal.email,
                kind: AccessType::Service,
                key_id: Some(principal.key_id),
            },
            access_type: AccessType::Service,
        }
    }

    pub fn for_any(message: &'static str, auth: AnyAuth) -> Self {
        match auth {
            AnyAuth::User(principal) => Self::for_user(message, principal),
            AnyAuth::Service(principal) => Self::for_service(message, principal),
        }
    }
}
