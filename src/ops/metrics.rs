//! Prometheus metrics for `GET /metrics`: requests by route and status, key and
//! token verifications by outcome, cache hits, and the queues that hold work in
//! memory. Counters of a fixed label set are resolved once, at start-up, and
//! counting them is an atomic increment; requests by route and status are
//! found per request in their families (a read lock and a hash); gauges are
//! read when scraped. Label values are bounded: route templates, outcome names, status
//! codes, never an id, email, key or address.

use std::hash::{Hash, Hasher};

use axum::{
    extract::MatchedPath,
    http::{HeaderMap, Method},
};
use prometheus_client::{
    encoding::{text, EncodeLabelSet, EncodeLabelValue, LabelValueEncoder},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use sha2::{Digest, Sha256};

use crate::{
    auth::{
        cache::Lookup, extract::bearer_token, outcome::Outcome, tokens::TokenRejection, AuthState,
    },
    error::ApiError,
    settings::MetricsAccess,
};

/// What `/metrics` answers with: OpenMetrics text, which Prometheus asks for
/// and parses natively.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Request durations, in seconds: a request answered from memory takes tens of
/// microseconds, a login (bcrypt) hundreds of milliseconds.
const DURATION_BUCKETS: [f64; 16] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// A request's route as a label value: the template it matched (shared with
/// axum, no copy per request), or `unmatched`.
#[derive(Clone, Debug)]
pub enum RouteLabel {
    Matched(MatchedPath),
    Unmatched,
}

impl RouteLabel {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Matched(path) => path.as_str(),
            Self::Unmatched => "unmatched",
        }
    }
}

impl PartialEq for RouteLabel {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for RouteLabel {}

impl Hash for RouteLabel {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl EncodeLabelValue for RouteLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: RouteLabel,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: RouteLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheNameLabels {
    cache: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// Webhook delivery attempts by result, for the delivery worker to count
/// into (`authgate_webhook_deliveries_total{result}`). The default counts
/// into nothing registered.
#[derive(Clone, Default)]
pub struct DeliveryCounters {
    succeeded: Counter,
    failed: Counter,
}

impl DeliveryCounters {
    /// One attempt: a 2xx, or anything else (a status, a timeout, a refusal).
    pub fn attempted(&self, succeeded: bool) {
        if succeeded {
            self.succeeded.inc();
        } else {
            self.failed.inc();
        }
    }
}

/// How an access token fared (`authgate_token_verifications_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenOutcome {
    Valid,
    /// Malformed, badly signed, or not an access token.
    Invalid,
    /// Past its `exp`.
    Expired,
    /// Its session was logged out, revoked, ended, or its user deactivated.
    Revoked,
}

impl TokenOutcome {
    const ALL: [Self; 4] = [Self::Valid, Self::Invalid, Self::Expired, Self::Revoked];

    pub const fn label(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Invalid => "invalid",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

impl From<TokenRejection> for TokenOutcome {
    fn from(rejection: TokenRejection) -> Self {
        match rejection {
            TokenRejection::Expired => Self::Expired,
            TokenRejection::Invalid => Self::Invalid,
        }
    }
}

const KEY_OUTCOMES: [Outcome; 6] = [
    Outcome::Valid,
    Outcome::NotFound,
    Outcome::Revoked,
    Outcome::Expired,
    Outcome::Disabled,
    Outcome::RateLimited,
];

/// A key outcome as a label value: the contract's code in lower case.
pub const fn outcome_label(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Valid => "valid",
        Outcome::NotFound => "not_found",
        Outcome::Revoked => "revoked",
        Outcome::Expired => "expired",
        Outcome::Disabled => "disabled",
        Outcome::RateLimited => "rate_limited",
    }
}

/// The verification caches, as the `cache` label names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheName {
    /// Key hash → key record (an unknown key's "no such key" included).
    Keys,
    /// Session id → session state.
    Sessions,
    /// Access token digest → claims already verified.
    Tokens,
}

impl CacheName {
    const ALL: [Self; 3] = [Self::Keys, Self::Sessions, Self::Tokens];

    const fn label(self) -> &'static str {
        match self {
            Self::Keys => "keys",
            Self::Sessions => "sessions",
            Self::Tokens => "tokens",
        }
    }
}

/// A cache lookup's result: a fresh entry, none, or one past its TTL (reloaded,
/// or served while the database is down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheResult {
    Hit,
    Miss,
    Stale,
}

impl CacheResult {
    const ALL: [Self; 3] = [Self::Hit, Self::Miss, Self::Stale];

    const fn label(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Stale => "stale",
        }
    }

    /// A remembered "no such key" is a hit: the cache answered.
    pub fn of<T>(lookup: &Lookup<T>) -> Self {
        match lookup {
            Lookup::Known(_) | Lookup::Unknown => Self::Hit,
            Lookup::Stale(_) => Self::Stale,
            Lookup::Miss => Self::Miss,
        }
    }
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram, fn() -> Histogram>,
    key_verifications: [Counter; KEY_OUTCOMES.len()],
    token_verifications: [Counter; TokenOutcome::ALL.len()],
    cache_requests: [[Counter; CacheResult::ALL.len()]; CacheName::ALL.len()],
    cache_entries: [Gauge; CacheName::ALL.len()],
    bcrypt_queue_depth: Gauge,
    pending_last_used: Gauge,
    pending_usage: Gauge,
    webhook_deliveries: DeliveryCounters,
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "authgate_http_requests",
            "HTTP requests answered, by method, route template and status",
            requests.clone(),
        );
        let durations = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram,
        );
        registry.register(
            "authgate_http_request_duration_seconds",
            "Time from a request's arrival to its response, by route template",
            durations.clone(),
        );
        let keys = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "authgate_key_verifications",
            "API keys presented, by outcome (valid, not_found, revoked, expired, disabled, rate_limited)",
            keys.clone(),
        );
        let tokens = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "authgate_token_verifications",
            "Access tokens presented, by outcome (valid, invalid, expired, revoked)",
            tokens.clone(),
        );
        let caches = Family::<CacheLabels, Counter>::default();
        registry.register(
            "authgate_cache_requests",
            "Verification cache lookups, by cache (keys, sessions, tokens) and result (hit, miss, stale)",
            caches.clone(),
        );
        let entries = Family::<CacheNameLabels, Gauge>::default();
        registry.register(
            "authgate_cache_entries",
            "Entries in each verification cache (approximate)",
            entries.clone(),
        );
        let bcrypt_queue_depth = Gauge::default();
        registry.register(
            "authgate_bcrypt_queue_depth",
            "Password hashes and checks waiting for a bcrypt thread",
            bcrypt_queue_depth.clone(),
        );
        let pending_last_used = Gauge::default();
        registry.register(
            "authgate_pending_last_used_keys",
            "Keys whose last-used time is in memory, not yet written",
            pending_last_used.clone(),
        );
        let pending_usage = Gauge::default();
        registry.register(
            "authgate_pending_usage_entries",
            "(key, hour) usage counters in memory, not yet written",
            pending_usage.clone(),
        );
        let deliveries = Family::<ResultLabels, Counter>::default();
        registry.register(
            "authgate_webhook_deliveries",
            "Webhook delivery attempts, by result (succeeded: a 2xx; failed: anything else)",
            deliveries.clone(),
        );
        let delivery_result = |result| deliveries.get_or_create_owned(&ResultLabels { result });
        Self {
            key_verifications: KEY_OUTCOMES.map(|outcome| {
                keys.get_or_create_owned(&OutcomeLabels {
                    outcome: outcome_label(outcome),
                })
            }),
            token_verifications: TokenOutcome::ALL.map(|outcome| {
                tokens.get_or_create_owned(&OutcomeLabels {
                    outcome: outcome.label(),
                })
            }),
            cache_requests: CacheName::ALL.map(|cache| {
                CacheResult::ALL.map(|result| {
                    caches.get_or_create_owned(&CacheLabels {
                        cache: cache.label(),
                        result: result.label(),
                    })
                })
            }),
            cache_entries: CacheName::ALL.map(|cache| {
                entries.get_or_create_owned(&CacheNameLabels {
                    cache: cache.label(),
                })
            }),
            webhook_deliveries: DeliveryCounters {
                succeeded: delivery_result("succeeded"),
                failed: delivery_result("failed"),
            },
            registry,
            requests,
            durations,
            bcrypt_queue_depth,
            pending_last_used,
            pending_usage,
        }
    }

    /// Counts one answered request.
    pub fn request(&self, method: &Method, route: &RouteLabel, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method_label(method),
                route: route.clone(),
                status,
            })
            .inc();
        self.durations
            .get_or_create(&RouteLabels {
                route: route.clone(),
            })
            .observe(seconds);
    }

    pub fn key_verified(&self, outcome: Outcome) {
        let index = KEY_OUTCOMES
            .iter()
            .position(|known| *known == outcome)
            .unwrap_or_default();
        self.key_verifications[index].inc();
    }

    pub fn token_verified(&self, outcome: TokenOutcome) {
        self.token_verifications[outcome as usize].inc();
    }

    /// The counters the webhook delivery worker counts its attempts into.
    pub fn webhook_deliveries(&self) -> DeliveryCounters {
        self.webhook_deliveries.clone()
    }

    pub fn cache_request(&self, cache: CacheName, result: CacheResult) {
        self.cache_requests[cache as usize][result as usize].inc();
    }

    /// The exposition, with the gauges read from `state` now.
    pub fn render(&self, state: &AuthState) -> String {
        let [keys, sessions, tokens] = state.cache.entry_counts();
        for (gauge, count) in self.cache_entries.iter().zip([keys, sessions, tokens]) {
            gauge.set(saturating_i64(count));
        }
        self.bcrypt_queue_depth
            .set(saturating_i64(state.passwords.queue_depth() as u64));
        self.pending_last_used
            .set(saturating_i64(state.last_used.pending() as u64));
        self.pending_usage
            .set(saturating_i64(state.usage.pending() as u64));
        let mut body = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail.
        let _ = text::encode(&mut body, &self.registry);
        body
    }
}

fn saturating_i64(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// The method as a bounded label value: the standard ones, else `other`.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Whether a scrape with `headers` may read the metrics: open, or the Bearer
/// token; hidden (404, like any unknown route) in production without a token.
///
/// # Errors
/// `RouteNotFound` when hidden; 401 without the right token.
pub fn authorize(access: &MetricsAccess, headers: &HeaderMap) -> Result<(), ApiError> {
    match access {
        MetricsAccess::Open => Ok(()),
        MetricsAccess::Hidden => Err(ApiError::RouteNotFound),
        MetricsAccess::Token(expected) => {
            let presented = bearer_token(headers);
            // Compared as digests: equal lengths, so the time taken says nothing
            // about how much of the token was right.
            let matches = presented.is_some_and(|token| {
                Sha256::digest(token.as_bytes()) == Sha256::digest(expected.as_bytes())
            });
            if matches {
                Ok(())
            } else {
                Err(ApiError::unauthorized("A valid metrics token is required"))
            }
        }
    }
}
