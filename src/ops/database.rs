//! The database as requests see it. After one request finds it unreachable,
//! routes that need it answer 503 + `Retry-After` at once, instead of each
//! waiting out the pool's connect timeout, while a single probe checks every
//! 250 ms whether it is back. Credentials verified earlier keep being served
//! from the cache meanwhile (`AUTH_STALE_IF_ERROR`, see `auth::cache`).
//!
//! A lost connection is proof enough; a pool timeout is not (a busy pool times
//! out too), so it only starts the probe, which marks the database down if it
//! cannot reach it. The probe opens a connection of its own (on PostgreSQL),
//! so a busy pool cannot make a healthy database look down.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::{Duration, Instant},
};

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use sea_orm::{ConnAcquireErr, DatabaseConnection, DbErr, RuntimeErr};

use crate::error::ApiError;

/// What a 503 tells a client to wait.
pub const RETRY_AFTER_SECS: u64 = 1;
const PROBE_EVERY: Duration = Duration::from_millis(250);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

pub struct DatabaseHealth {
    db: DatabaseConnection,
    /// Where the probe connects on PostgreSQL, outside the pool.
    postgres_uri: Option<String>,
    down: AtomicBool,
    probing: AtomicBool,
    /// When a readiness check last reached the database.
    last_ready: Mutex<Option<Instant>>,
}

impl DatabaseHealth {
    pub fn new(db: DatabaseConnection, uri: &str) -> Arc<Self> {
        let postgres = uri.starts_with("postgres://") || uri.starts_with("postgresql://");
        Arc::new(Self {
            db,
            postgres_uri: postgres.then(|| uri.to_string()),
            down: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            last_ready: Mutex::new(None),
        })
    }

    /// The database whose health this is.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// True when a readiness check reached the database less than `within`
    /// ago: readiness polled every second, by any number of balancers, costs
    /// at most one round trip a second.
    pub fn ready_within(&self, within: Duration) -> bool {
        self.last_ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|at| at.elapsed() < within)
    }

    /// Notes a readiness check that reached the database.
    pub fn note_ready(&self) {
        *self
            .last_ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    /// # Errors
    /// `DatabaseUnavailable` while the database is known to be unreachable.
    pub fn check(&self) -> Result<(), ApiError> {
        if self.is_down() {
            Err(ApiError::DatabaseUnavailable { lost: true })
        } else {
            Ok(())
        }
    }

    /// Notes `err` of a database call.
    pub fn observe(self: &Arc<Self>, err: &DbErr) {
        match classify(err) {
            Failure::ConnectionLost => self.report(true),
            Failure::PoolTimeout => self.report(false),
            Failure::Statement => {}
        }
    }

    /// A call could not reach the database: `lost` (a connection failed) marks
    /// it down at once; otherwise (a wait that timed out) the probe decides.
    pub fn report(self: &Arc<Self>, lost: bool) {
        if lost {
            self.set_down();
        }
        self.probe(lost);
    }

    fn set_down(&self) {
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "database unreachable; answering 503 on database routes until it is back"
            );
        }
    }

    /// Starts the probe unless one runs. It checks every 250 ms until the
    /// database answers; a first failed check marks it down (`known_down`: it
    /// is already).
    fn probe(self: &Arc<Self>, known_down: bool) {
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let health = self.clone();
        tokio::spawn(async move {
            if !known_down && health.reachable().await {
                health.probing.store(false, Ordering::Release);
                return;
            }
            health.set_down();
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                if health.reachable().await {
                    break;
                }
            }
            health.down.store(false, Ordering::Relaxed);
            health.probing.store(false, Ordering::Release);
            tracing::info!("database is back");
        });
    }

    /// One check, bounded in time, on a connection of its own on PostgreSQL.
    async fn reachable(&self) -> bool {
        let check = async {
            match &self.postgres_uri {
                Some(uri) => {
                    use sqlx::Connection;
                    let mut connection = sqlx::PgConnection::connect(uri).await?;
                    connection.ping().await?;
                    connection.close().await
                }
                None => self
                    .db
                    .ping()
                    .await
                    .map_err(|err| sqlx::Error::Protocol(err.to_string())),
            }
        };
        matches!(tokio::time::timeout(PROBE_TIMEOUT, check).await, Ok(Ok(())))
    }
}

/// What a failed database call says about the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// No connection could be opened, or one was lost: the database is gone.
    ConnectionLost,
    /// No pooled connection in time: gone, or only busy.
    PoolTimeout,
    /// The statement failed; the database answered.
    Statement,
}

/// True when `err` says the database could not be reached in time (no
/// connection, a connection lost, the server shutting down, no pooled
/// connection), not that a statement failed: the client may retry.
pub fn is_unreachable(err: &DbErr) -> bool {
    classify(err) != Failure::Statement
}

/// True when `err` is a lost or refused connection, not just a wait that timed out.
pub fn is_connection_lost(err: &DbErr) -> bool {
    classify(err) == Failure::ConnectionLost
}

fn classify(err: &DbErr) -> Failure {
    match err {
        DbErr::ConnectionAcquire(ConnAcquireErr::Timeout) => Failure::PoolTimeout,
        DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed) => Failure::ConnectionLost,
        DbErr::Conn(runtime) | DbErr::Exec(runtime) | DbErr::Query(runtime) => match runtime {
            RuntimeErr::SqlxError(err) => classify_sqlx(err),
            RuntimeErr::Internal(_) => Failure::Statement,
        },
        _ => Failure::Statement,
    }
}

fn classify_sqlx(err: &sqlx::Error) -> Failure {
    match err {
        sqlx::Error::PoolTimedOut => Failure::PoolTimeout,
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => Failure::ConnectionLost,
        // SQLSTATE class 08: connection exception; 57: operator intervention
        // (the server shutting down or starting up, or terminating our connection).
        sqlx::Error::Database(db_err)
            if db_err
                .code()
                .is_some_and(|code| code.starts_with("08") || code.starts_with("57")) =>
        {
            Failure::ConnectionLost
        }
        _ => Failure::Statement,
    }
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
