//! The credential layer: everything that turns a password, a token or a key into
//! a principal, and everything that makes a credential stop working.

pub mod api_key;
pub mod cache;
pub mod extract;
pub mod last_used;
pub mod outcome;
pub mod password;
pub mod rate_limit;
pub mod revocations;
pub mod session;
pub mod throttle;
pub mod tokens;

use std::sync::Arc;

use loco_rs::app::AppContext;

use crate::{
    error::ApiError,
    events::rate_limited::RateLimitedKeys,
    ops::{access_log::AccessLog, database::DatabaseHealth, metrics::Metrics},
    settings::Resolved,
    usage::UsageCounters,
};
use cache::VerificationCache;
use last_used::LastUsed;
use password::PasswordHasher;
use rate_limit::RateLimiter;
use revocations::ListenerStatus;
use tokens::TokenKeys;

/// The state the credential layer shares across requests, built once at start-up
/// and kept in Loco's shared store.
pub struct AuthState {
    pub settings: Resolved,
    pub tokens: TokenKeys,
    pub passwords: PasswordHasher,
    pub cache: VerificationCache,
    pub last_used: LastUsed,
    pub usage: UsageCounters,
    /// `key.rate_limited` events noted on the request path, written by the flush.
    pub rate_limited: RateLimitedKeys,
    pub limiter: RateLimiter,
    /// Whether the database answers: credential loads fail fast while it does not.
    pub database: Arc<DatabaseHealth>,
    pub listener: ListenerStatus,
    pub metrics: Metrics,
    pub access_log: AccessLog,
}

impl AuthState {
    /// # Errors
    /// When the bcrypt cost is out of range, its threads cannot start, or `REDIS_URL`
    /// is malformed.
    pub fn new(settings: Resolved, database: Arc<DatabaseHealth>) -> Result<Self, String> {
        Ok(Self {
            tokens: TokenKeys::new(
                &settings.access_secret,
                &settings.refresh_secret,
                settings.access_ttl,
            ),
            passwords: PasswordHasher::new(settings.bcrypt_cost)?,
            cache: VerificationCache::new(
                settings.cache_max_entries,
                settings.cache_ttl,
                settings.cache_negative_ttl,
                settings.cache_stale_if_error,
            ),
            last_used: LastUsed::default(),
            usage: UsageCounters::default(),
            rate_limited: RateLimitedKeys::default(),
            limiter: RateLimiter::new(settings.redis_url.as_deref())?,
            database,
            listener: ListenerStatus::default(),
            metrics: Metrics::new(),
            access_log: AccessLog::default(),
            settings,
        })
    }

    /// The state of a booted app.
    ///
    /// # Errors
    /// Only if the app was booted without `App::after_context`, a bug.
    pub fn of(ctx: &AppContext) -> Result<Arc<Self>, ApiError> {
        ctx.shared_store
            .get::<Arc<Self>>()
            .ok_or_else(|| ApiError::internal("AuthState missing from the shared store"))
    }
}

/// A router's state the guards can find the credential layer in: Loco's
/// `AppContext`, or the layer itself, for the routes that answer from the
/// cache (`/health`, `/protected/*`, verify): axum clones a route's state for
/// every request, and an `Arc` is cheaper to clone than an `AppContext`.
pub trait Credentials: Send + Sync {
    /// # Errors
    /// Only for an `AppContext` booted without `App::after_context`, a bug.
    fn credentials(&self) -> Result<Arc<AuthState>, ApiError>;
}

impl Credentials for AppContext {
    fn credentials(&self) -> Result<Arc<AuthState>, ApiError> {
        AuthState::of(self)
    }
}

impl Credentials for Arc<AuthState> {
    fn credentials(&self) -> Result<Arc<AuthState>, ApiError> {
        Ok(self.clone())
    }
}
