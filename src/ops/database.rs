//! The database as requests see it. After one request finds it unreachable,
//! routes that need it answer 503 + `Retry-After` at once, instead of each
//! waiting out the pool's connect timeout, while a single probe checks every
//! 250 ms whether it is back. Credentials verified earlier keep being served
//! from the cache meanwhile (`AUTH_STALE_IF_ERROR`, see `auth::cache`).

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use sea_orm::{ConnAcquireErr, DatabaseConnection, DbErr, RuntimeErr};

use crate::error::{ApiError, DatabaseUnreachable};

/// What a 503 tells a client to wait.
pub const RETRY_AFTER_SECS: u64 = 1;
const PROBE_EVERY: Duration = Duration::from_millis(250);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

pub struct DatabaseHealth {
    db: DatabaseConnection,
    down: AtomicBool,
    probing: AtomicBool,
}

impl DatabaseHealth {
    pub fn new(db: DatabaseConnection) -> Arc<Self> {
        Arc::new(Self {
            db,
            down: AtomicBool::new(false),
            probing: AtomicBool::new(false),
        })
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// # Errors
    /// `DatabaseUnavailable` while the database is known to be unreachable.
    pub fn check(&self) -> Result<(), ApiError> {
        if self.is_down() {
            Err(ApiError::DatabaseUnavailable)
        } else {
            Ok(())
        }
    }

    /// Notes `err` of a database call: a lost database is marked down.
    pub fn observe(self: &Arc<Self>, err: &DbErr) {
        if is_unreachable(err) {
            self.mark_down();
        }
    }

    /// Marks the database down and starts the probe that will mark it up again.
    pub fn mark_down(self: &Arc<Self>) {
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "database unreachable; answering 503 on database routes until it is back"
            );
        }
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let health = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                let ping = tokio::time::timeout(PROBE_TIMEOUT, health.db.ping()).await;
                if matches!(ping, Ok(Ok(()))) {
                    break;
                }
            }
            health.down.store(false, Ordering::Relaxed);
            health.probing.store(false, Ordering::Release);
            tracing::info!("database is back");
        });
    }
}

/// True when `err` says the database could not be reached (no connection, a
/// connection lost, the server shutting down), not that a statement failed.
pub fn is_unreachable(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(ConnAcquireErr::Timeout | ConnAcquireErr::ConnectionClosed) => {
            true
        }
        DbErr::Conn(runtime) | DbErr::Exec(runtime) | DbErr::Query(runtime) => match runtime {
            RuntimeErr::SqlxError(err) => sqlx_unreachable(err),
            RuntimeErr::Internal(_) => false,
        },
        _ => false,
    }
}

fn sqlx_unreachable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE class 08: connection exception; 57: operator intervention
        // (the server shutting down, or terminating our connection).
        sqlx::Error::Database(db_err) => db_err
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57")),
        _ => false,
    }
}

/// Middleware on every route: a response that failed for want of the database
/// marks it down, so that the next requests fail fast.
pub async fn observe(
    State(health): State<Arc<DatabaseHealth>>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    if response.extensions().get::<DatabaseUnreachable>().is_some() {
        health.mark_down();
    }
    response
}

/// Middleware on the routes that cannot answer without the database: 503 at
/// once while it is down.
pub async fn required(
    State(health): State<Arc<DatabaseHealth>>,
    request: Request,
    next: Next,
) -> Response {
    use axum::response::IntoResponse;
    match health.check() {
        Ok(()) => next.run(request).await,
        Err(err) => err.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_connections_are_unreachable_and_statement_errors_are_not() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(is_unreachable(&DbErr::Conn(RuntimeErr::SqlxError(
            Arc::new(io)
        ))));
        assert!(is_unreachable(&DbErr::ConnectionAcquire(
            ConnAcquireErr::Timeout
        )));
        assert!(is_unreachable(&DbErr::Query(RuntimeErr::SqlxError(
            Arc::new(sqlx::Error::PoolTimedOut)
        ))));
        assert!(!is_unreachable(&DbErr::Query(RuntimeErr::SqlxError(
            Arc::new(sqlx::Error::RowNotFound)
        ))));
        assert!(!is_unreachable(&DbErr::RecordNotFound("x".into())));
    }
}
