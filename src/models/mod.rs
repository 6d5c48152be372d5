//! The tables and what may be done to them. Models speak in rows and their own
//! [`ModelError`], never in HTTP: `error.rs` maps that error to a response.

pub mod _entities;
pub mod api_keys;
pub mod events;
pub mod key_usage;
pub mod sessions;
pub mod users;
pub mod webhook_deliveries;
pub mod webhook_endpoints;

use sea_orm::{DbErr, SqlErr};

/// Why a model function did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The change would break a rule of the data: a taken name, a cap reached.
    #[error("{0}")]
    Conflict(String),
    /// No such row (or none the caller may see); the message names what is missing.
    #[error("{0}")]
    NotFound(&'static str),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A unique-constraint violation becomes the conflict it means, at one place;
/// any other database error stays one.
pub(crate) fn on_unique_violation(err: DbErr, conflict: &str) -> ModelError {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => ModelError::Conflict(conflict.into()),
        _ => ModelError::Db(err),
    }
}
