//! One error type for the whole API. Each variant knows its status; every failure,
//! axum's own rejections included, is answered in the old service's JSON shape
//! `{statusCode, error, message}`.

use axum::{
    extract::rejection::{JsonRejection, PathRejection},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use sea_orm::DbErr;
use serde::Serialize;
use utoipa::ToSchema;

/// The challenge a 401 carries, so a client knows which credential the route wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    Bearer,
    ApiKey,
}

impl Challenge {
    const fn header_value(self) -> &'static str {
        match self {
            Self::Bearer => "Bearer realm=\"authgate\"",
            Self::ApiKey => "ApiKey realm=\"authgate\", header=\"x-api-key\"",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Input that failed validation: one message per problem.
    #[error("validation failed")]
    Validation(Vec<String>),
    #[error("{0}")]
    BadRequest(String),
    #[error("{message}")]
    Unauthorized {
        message: &'static str,
        challenge: Challenge,
    },
    #[error("{0}")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("request headers too large")]
    HeadersTooLarge,
    #[error("request URI too long")]
    UriTooLong,
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("server busy")]
    Busy { retry_after_secs: u64 },
    /// The database cannot be reached: a client may retry soon, and the
    /// instance stops trying it per request until a probe finds it back.
    #[error("database unavailable")]
    DatabaseUnavailable {
        /// A connection failed (rather than a wait for one timing out).
        lost: bool,
    },
    #[error("request timed out")]
    RequestTimeout,
    #[error("route not found")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A real server fault. The cause is logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    #[schema(example = 401)]
    pub status_code: u16,
    #[schema(example = "Unauthorized")]
    pub error: String,
    pub message: ErrorMessage,
}

/// A sentence, or for validation errors one sentence per problem.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ErrorMessage {
    One(String),
    Many(Vec<String>),
}

impl ApiError {
    pub const fn unauthorized(message: &'static str) -> Self {
        Self::Unauthorized {
            message,
            challenge: Challenge::Bearer,
        }
    }

    pub const fn invalid_api_key() -> Self {
        Self::Unauthorized {
            message: "Invalid or missing API key",
            challenge: Challenge::ApiKey,
        }
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) | Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Busy { .. } | Self::DatabaseUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn message(&self) -> ErrorMessage {
        let sentence: &str = match self {
            Self::Validation(problems) => return ErrorMessage::Many(problems.clone()),
            Self::BadRequest(message) | Self::Conflict(message) => message,
            Self::Unauthorized { message, .. } | Self::NotFound(message) => message,
            Self::PayloadTooLarge => "Request body exceeds 64 KiB",
            Self::HeadersTooLarge => "Request headers exceed 16 KiB",
            Self::UriTooLong => "Request URI exceeds 2048 bytes",
            Self::TooManyRequests { .. } => "Too many requests, try again later",
            Self::Busy { .. } => "Server busy, try again shortly",
            Self::DatabaseUnavailable { .. } => {
                "Service temporarily unavailable, try again shortly"
            }
            Self::RequestTimeout => "Request took too long",
            Self::RouteNotFound => "Route not found",
            Self::MethodNotAllowed => "Method not allowed on this route",
            Self::Internal(_) => "Internal server error",
        };
        ErrorMessage::One(sentence.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(cause) = &self {
            tracing::error!(
                request_id = crate::ops::access_log::current_request_id().as_deref(),
                error = %cause,
                "request failed with an internal error"
            );
        }
        let status = self.status();
        let body = ErrorBody {
            status_code: status.as_u16(),
            error: status.canonical_reason().unwrap_or("Error").to_string(),
            message: self.message(),
        };
        let mut response = (status, Json(body)).into_response();
        if let Self::DatabaseUnavailable { lost } = self {
            // Tells the edge (`ops::edge`) that this instance lost its database.
            response
                .extensions_mut()
                .insert(DatabaseUnreachable { lost });
        }
        let headers = response.headers_mut();
        match self {
            Self::Unauthorized { challenge, .. } => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge.header_value()),
                );
            }
            Self::TooManyRequests { retry_after_secs } | Self::Busy { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            Self::DatabaseUnavailable { .. } => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(crate::ops::database::RETRY_AFTER_SECS),
                );
            }
            _ => {}
        }
        response
    }
}

/// Marks a response that failed because the database could not be reached.
#[derive(Debug, Clone, Copy)]
pub struct DatabaseUnreachable {
    pub lost: bool,
}

/// A lost database is a 503 the client may retry; any other database error is
/// a fault of ours.
impl From<DbErr> for ApiError {
    fn from(err: DbErr) -> Self {
        if crate::ops::database::is_unreachable(&err) {
            Self::DatabaseUnavailable {
                lost: crate::ops::database::is_connection_lost(&err),
            }
        } else {
            Self::internal(err)
        }
    }
}

/// Bad JSON, a wrong content type or an oversized body: never a 500, and the
/// message names the problem without echoing the body (which may hold a password).
impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(err) => {
                Self::BadRequest(data_error_message(&err.body_text()))
            }
            JsonRejection::JsonSyntaxError(_) => Self::BadRequest("Malformed JSON body".into()),
            JsonRejection::MissingJsonContentType(_) => {
                Self::BadRequest("Content-Type must be application/json".into())
            }
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            _ => Self::BadRequest("Could not read the request body".into()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(_: PathRejection) -> Self {
        Self::BadRequest("Malformed id in path".into())
    }
}

/// serde's message for a body of the wrong shape, minus axum's prefix and any
/// quoted value serde may have copied from the input.
fn data_error_message(body_text: &str) -> String {
    let text = body_text
        .strip_prefix("Failed to deserialize the JSON body into the target type: ")
        .unwrap_or(body_text);
    let text = text.split(" at line ").next().unwrap_or(text);
    match text.find(": invalid type: string \"") {
        Some(pos) => format!("{}: invalid type: string", &text[..pos]),
        None if text.starts_with("invalid type: string \"") => "invalid type: string".into(),
        None => text.to_string(),
    }
}

/// The models' errors as HTTP, at one place; their database errors go the way
/// of every other `DbErr`.
impl From<crate::models::ModelError> for ApiError {
    fn from(err: crate::models::ModelError) -> Self {
        use crate::models::ModelError;
        match err {
            ModelError::Conflict(message) => Self::Conflict(message),
            ModelError::NotFound(message) => Self::NotFound(message),
            ModelError::Db(err) => Self::from(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_errors_do_not_echo_string_values() {
        let message = data_error_message(
            "Failed to deserialize the JSON body into the target type: rateLimit: invalid type: string \"hunter22\", expected struct RateLimit at line 1 column 40",
        );
        assert_eq!(message, "rateLimit: invalid type: string");
        assert!(!message.contains("hunter22"));
    }

    #[test]
    fn unknown_field_message_names_the_field() {
        let message = data_error_message(
            "Failed to deserialize the JSON body into the target type: unknown field `admin`, expected `email` at line 1 column 8",
        );
        assert_eq!(message, "unknown field `admin`, expected `email`");
    }
}
