//! Throttling of the unauthenticated routes: login failures per account and IP
//! (with a looser ceiling per account, so one attacker cannot lock an account
//! out for everyone), and attempts per IP on login, signup and refresh. An IPv6
//! client counts by its /64.

use super::{
    extract::rate_limit_subject,
    rate_limit::{Limit, Usage},
    AuthState,
};
use crate::{error::ApiError, models::users::Email};

/// One rate-limited route's attempts from one client IP.
#[derive(Debug, Clone, Copy)]
pub enum Route {
    Login,
    Signup,
    Refresh,
}

/// Counts an attempt on `route` from `ip`.
///
/// # Errors
/// `TooManyRequests` once the IP is over the route's limit.
pub async fn attempt(state: &AuthState, route: Route, ip: &str) -> Result<(), ApiError> {
    let limits = &state.settings.limits;
    let (name, limit) = match route {
        Route::Login => ("login", limits.login_per_ip),
        Route::Signup => ("signup", limits.signup_per_ip),
        Route::Refresh => ("refresh", limits.refresh_per_ip),
    };
    let usage = state
        .limiter
        .hit(&format!("{name}:ip:{}", subject(ip)), limit)
        .await;
    if usage.exceeded() {
        return Err(too_many(&usage));
    }
    Ok(())
}

/// The failure counters of a login for `email` from `ip`.
pub struct LoginFailures {
    account_ip: String,
    account: String,
}

impl LoginFailures {
    pub fn new(email: &Email, ip: &str) -> Self {
        Self {
            account_ip: format!("login-failures:{}:{}", email.as_str(), subject(ip)),
            account: format!("login-failures:{}", email.as_str()),
        }
    }

    fn counters(&self, state: &AuthState) -> [(&str, Limit); 2] {
        let limits = &state.settings.limits;
        [
            (&self.account_ip, limits.login_failures_per_account_ip),
            (&self.account, limits.login_failures_per_account),
        ]
    }

    /// Counts this attempt as a failure before the password is checked, so that
    /// parallel guesses cannot all pass a check made before any of them counts;
    /// a successful login takes it back with [`Self::clear`].
    ///
    /// The account-and-IP counter goes first: a client locked out there stops
    /// adding to the account's ceiling, which would lock the owner out everywhere.
    ///
    /// # Errors
    /// `TooManyRequests` once either counter is over its limit; the password is
    /// not even checked then.
    pub async fn presume_failure(&self, state: &AuthState) -> Result<(), ApiError> {
        for (key, limit) in self.counters(state) {
            let usage = state.limiter.hit(key, limit).await;
            if usage.exceeded() {
                return Err(too_many(&usage));
            }
        }
        Ok(())
    }

    /// A successful login clears the account's failures.
    pub async fn clear(&self, state: &AuthState) {
        for (key, _) in self.counters(state) {
            state.limiter.reset(key).await;
        }
    }
}

/// What per-IP counters count under (`ip` is an address, or `unknown`).
fn subject(ip: &str) -> String {
    ip.parse()
        .map_or_else(|_| ip.to_string(), rate_limit_subject)
}

pub fn too_many(usage: &Usage) -> ApiError {
    ApiError::TooManyRequests {
        retry_after_secs: usage.retry_after_secs(),
    }
}
