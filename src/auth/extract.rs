//! The three guards of the old service as axum extractors. A handler that takes
//! `UserAuth` cannot run without a valid access token, one that takes
//! `ServiceAuth` without a valid API key; `AnyAuth` accepts either and says which.
//! A route's protection is visible in its signature.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{header, request::Parts, Extensions, HeaderMap},
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use ipnet::{IpNet, Ipv6Net};

use super::{
    api_key::{ApiKey, KeyHash},
    cache::{KeyRecord, Lookup, SessionRecord, TokenDigest},
    outcome::{verify_key, KeyVerdict, Outcome},
    throttle::too_many,
    tokens::{AccessClaims, TokenRejection},
    AuthState, Credentials,
};
use crate::{
    error::ApiError,
    models::{api_keys, sessions},
    ops::{
        access_log::Principal,
        edge::RequestNotes,
        metrics::{CacheName, CacheResult, TokenOutcome},
    },
};

pub const API_KEY_HEADER: &str = "x-api-key";
const INVALID_TOKEN: &str = "Invalid or missing access token";

/// A person, signed in with an access token of a live session.
#[derive(Debug, Clone)]
pub struct UserPrincipal {
    pub user_id: Uuid,
    pub email: Arc<str>,
    pub session_id: Uuid,
}

/// A service, calling with an API key.
#[derive(Debug, Clone)]
pub struct ServicePrincipal {
    pub user_id: Uuid,
    pub email: Arc<str>,
    pub key_id: Uuid,
}

/// Bearer access token only (the old `JwtAuthGuard`).
pub struct UserAuth(pub UserPrincipal);

/// `x-api-key` only (the old `ApiKeyAuthGuard`).
pub struct ServiceAuth(pub ServicePrincipal);

/// Either credential (the old `FlexibleAuthGuard`). When an `x-api-key` header is
/// present it decides, with no fallback to the Bearer token, so a bad key is
/// never rescued by a token sent alongside it.
pub enum AnyAuth {
    User(UserPrincipal),
    Service(ServicePrincipal),
}

impl<S: Credentials> FromRequestParts<S> for UserAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = state.credentials()?;
        user_principal(parts, &state).await.map(Self)
    }
}

impl<S: Credentials> FromRequestParts<S> for ServiceAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = state.credentials()?;
        service_principal(parts, &state).await.map(Self)
    }
}

impl<S: Credentials> FromRequestParts<S> for AnyAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = state.credentials()?;
        if parts.headers.contains_key(API_KEY_HEADER) {
            service_principal(parts, &state).await.map(Self::Service)
        } else {
            user_principal(parts, &state).await.map(Self::User)
        }
    }
}

async fn user_principal(parts: &Parts, state: &AuthState) -> Result<UserPrincipal, ApiError> {
    let token = bearer_token(&parts.headers).ok_or(ApiError::unauthorized(INVALID_TOKEN))?;
    let now = Utc::now();
    let claims = access_claims(state, token, now).map_err(|rejection| {
        state.metrics.token_verified(TokenOutcome::from(rejection));
        ApiError::unauthorized(INVALID_TOKEN)
    })?;
    let Some(session) = session_record(state, claims.sid)
        .await?
        .filter(|session| session.user_id == claims.sub && session.accepts_at(now))
    else {
        state.metrics.token_verified(TokenOutcome::Revoked);
        return Err(ApiError::unauthorized(INVALID_TOKEN));
    };
    state.metrics.token_verified(TokenOutcome::Valid);
    note_principal(parts, session.user_id, None);
    Ok(UserPrincipal {
        user_id: session.user_id,
        email: session.email.clone(),
        session_id: claims.sid,
    })
}

async fn service_principal(parts: &Parts, state: &AuthState) -> Result<ServicePrincipal, ApiError> {
    // Shape and checksum first: garbage costs no hashing and no lookup. It is
    // answered as a key that does not exist, and counted as one.
    let Some(key) = parts
        .headers
        .get(API_KEY_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| ApiKey::parse(text).ok())
    else {
        state.metrics.key_verified(Outcome::NotFound);
        return Err(ApiError::invalid_api_key());
    };
    let verdict = present_key(state, &key, request_client_ip(parts, state)).await?;
    if let (Some(usage), Some(notes)) = (verdict.rate_limit, parts.extensions.get::<RequestNotes>())
    {
        notes.rate_limit(usage);
    }
    match (verdict.outcome, verdict.record, verdict.rate_limit) {
        (Outcome::Valid, Some(record), _) => {
            note_principal(parts, record.user_id, Some(record.key_id));
            Ok(ServicePrincipal {
                user_id: record.user_id,
                email: record.email.clone(),
                key_id: record.key_id,
            })
        }
        (Outcome::RateLimited, _, Some(usage)) => Err(too_many(&usage)),
        _ => Err(ApiError::invalid_api_key()),
    }
}

/// Tells the access log who is calling.
fn note_principal(parts: &Parts, user_id: Uuid, key_id: Option<Uuid>) {
    if let Some(notes) = parts.extensions.get::<RequestNotes>() {
        notes.principal(Principal { user_id, key_id });
    }
}

/// The token of an `Authorization: Bearer …` header (the scheme in any case).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// The claims of a valid, unexpired access token: remembered from an earlier
/// verification of the same token, else verified now.
fn access_claims(
    state: &AuthState,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Arc<AccessClaims>, TokenRejection> {
    let digest = TokenDigest::of(token);
    if let Some(claims) = state.cache.access_token(&digest) {
        state
            .metrics
            .cache_request(CacheName::Tokens, CacheResult::Hit);
        return if now.timestamp() < claims.exp {
            Ok(claims)
        } else {
            Err(TokenRejection::Expired)
        };
    }
    state
        .metrics
        .cache_request(CacheName::Tokens, CacheResult::Miss);
    let claims = Arc::new(state.tokens.check_access(token)?);
    state.cache.remember_access_token(digest, claims.clone());
    Ok(claims)
}

/// The session behind an access token: from the cache, else one query. A
/// stale entry is reloaded, or served while the database cannot be reached.
async fn session_record(
    state: &AuthState,
    session_id: Uuid,
) -> Result<Option<Arc<SessionRecord>>, ApiError> {
    let lookup = state.cache.session(session_id);
    state
        .metrics
        .cache_request(CacheName::Sessions, CacheResult::of(&lookup));
    match lookup {
        Lookup::Known(record) => Ok(Some(record)),
        // Boxed, as a key's lookup is (see `key_record`).
        Lookup::Stale(record) => Box::pin(load_session(state, session_id))
            .await
            .or_else(|err| serve_stale(err, record)),
        Lookup::Unknown | Lookup::Miss => Box::pin(load_session(state, session_id)).await,
    }
}

async fn load_session(
    state: &AuthState,
    session_id: Uuid,
) -> Result<Option<Arc<SessionRecord>>, ApiError> {
    state.database.check()?;
    let generation = state.cache.generation();
    let record = sessions::load_record(state.database.connection(), session_id)
        .await
        .map_err(|err| database_failed(state, err))?
        .map(|row| Arc::new(SessionRecord::from(row)));
    if let Some(record) = &record {
        state
            .cache
            .remember_session(generation, session_id, record.clone());
    }
    Ok(record)
}

/// Presents a well-formed key from `client`: finds it (cache, else one query),
/// decides its outcome and records it. What the key guard and `POST
/// /keys/verify` share.
///
/// # Errors
/// 429 past the client's unknown-key limit; 503 when the key must be looked up
/// and the database cannot be reached.
pub async fn present_key(
    state: &AuthState,
    key: &ApiKey,
    client: Option<IpAddr>,
) -> Result<KeyVerdict, ApiError> {
    let record = key_record(state, key, client).await?;
    Ok(verify_key(state, record, Utc::now()).await)
}

/// The stored key behind a well-formed key: from the cache (including "no such
/// key"), else one indexed query. A client past its unknown-key limit gets 429
/// instead of a lookup; a stale entry is reloaded, or served while the database
/// cannot be reached.
async fn key_record(
    state: &AuthState,
    key: &ApiKey,
    client: Option<IpAddr>,
) -> Result<Option<Arc<KeyRecord>>, ApiError> {
    let hash = key.hash();
    let lookup = state.cache.key(&hash);
    state
        .metrics
        .cache_request(CacheName::Keys, CacheResult::of(&lookup));
    match lookup {
        Lookup::Known(record) => Ok(Some(record)),
        // Boxed: a lookup's future is large, and the guard's future (moved
        // whole, every request) would carry its size for the cached keys too.
        lookup => Box::pin(look_up_key(state, hash, lookup, client)).await,
    }
}

async fn look_up_key(
    state: &AuthState,
    hash: KeyHash,
    lookup: Lookup<Arc<KeyRecord>>,
    client: Option<IpAddr>,
) -> Result<Option<Arc<KeyRecord>>, ApiError> {
    match lookup {
        Lookup::Known(record) => Ok(Some(record)),
        Lookup::Stale(record) => load_key(state, hash)
            .await
            .or_else(|err| serve_stale(err, record)),
        // The client's counter is named only here: a known key costs no formatting.
        Lookup::Unknown => {
            UnknownKeys::of(client).presented(state).await?;
            Ok(None)
        }
        Lookup::Miss => {
            let unknown_keys = UnknownKeys::of(client);
            unknown_keys.check(state).await?;
            let record = load_key(state, hash).await?;
            if record.is_none() {
                unknown_keys.presented(state).await?;
            }
            Ok(record)
        }
    }
}

async fn load_key(state: &AuthState, hash: KeyHash) -> Result<Option<Arc<KeyRecord>>, ApiError> {
    state.database.check()?;
    let generation = state.cache.generation();
    let record = api_keys::load_record(state.database.connection(), &hash.to_hex())
        .await
        .map_err(|err| database_failed(state, err))?
        .map(|row| Arc::new(KeyRecord::from(row)));
    state.cache.remember_key(generation, hash, record.clone());
    Ok(record)
}

/// A failed credential load: a lost database is marked down at once, so that
/// the next requests serve stale entries without waiting for it.
fn database_failed(state: &AuthState, err: sea_orm::DbErr) -> ApiError {
    state.database.observe(&err);
    ApiError::from(err)
}

/// While the database is unreachable, a stale entry is the best answer there is.
fn serve_stale<T>(err: ApiError, record: T) -> Result<Option<T>, ApiError> {
    match err {
        ApiError::DatabaseUnavailable { .. } => Ok(Some(record)),
        other => Err(other),
    }
}

/// The unknown-key counter of one client: a flood of minted keys (the checksum
/// is public) costs one lookup per key only up to the limit.
struct UnknownKeys(Option<String>);

impl UnknownKeys {
    fn of(client: Option<IpAddr>) -> Self {
        Self(client.map(|ip| format!("unknown-keys:{}", rate_limit_subject(ip))))
    }

    /// # Errors
    /// `TooManyRequests` once the client has presented its limit of unknown keys.
    async fn check(&self, state: &AuthState) -> Result<(), ApiError> {
        let Some(counter) = &self.0 else {
            return Ok(());
        };
        let usage = state
            .limiter
            .peek(counter, state.settings.limits.unknown_keys_per_ip)
            .await;
        if usage.exhausted() {
            return Err(too_many(&usage));
        }
        Ok(())
    }

    /// Counts one unknown key.
    ///
    /// # Errors
    /// `TooManyRequests` when this one is over the limit.
    async fn presented(&self, state: &AuthState) -> Result<(), ApiError> {
        let Some(counter) = &self.0 else {
            return Ok(());
        };
        let usage = state
            .limiter
            .hit(counter, state.settings.limits.unknown_keys_per_ip)
            .await;
        if usage.exceeded() {
            return Err(too_many(&usage));
        }
        Ok(())
    }
}

/// The client's address (see [`client_ip`]), when the request came over a socket.
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Credentials> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = state.credentials()?;
        Ok(Self(request_client_ip(parts, &state)))
    }
}

/// Where a request came from: kept on the sessions it starts, and the key of
/// the per-IP limits.
pub struct ClientOrigin(pub sessions::Origin);

const MAX_USER_AGENT_CHARS: usize = 256;

impl<S: Credentials> FromRequestParts<S> for ClientOrigin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = state.credentials()?;
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .map(|agent| agent.chars().take(MAX_USER_AGENT_CHARS).collect());
        let ip = request_client_ip(parts, &state);
        Ok(Self(sessions::Origin {
            user_agent,
            ip: ip.map(|ip| ip.to_string()),
        }))
    }
}

/// The client of a request served from a socket (always, but in some tests).
fn request_client_ip(parts: &Parts, state: &AuthState) -> Option<IpAddr> {
    client_ip_of(
        &parts.headers,
        &parts.extensions,
        &state.settings.trusted_proxies,
    )
}

/// The client of a request with these headers and extensions (see
/// [`client_ip`]); `None` when it did not come over a socket.
pub fn client_ip_of(
    headers: &HeaderMap,
    extensions: &Extensions,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| client_ip(info.0.ip(), headers, trusted))
}

/// What per-IP limits count under: the address, or for IPv6 its /64 (one
/// subscriber's allocation: counting single addresses would let a client
/// rotate through 2^64 of them).
pub fn rate_limit_subject(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(_) => ip.to_string(),
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or_else(
            || Ipv6Net::new(v6, 64).map_or_else(|_| ip.to_string(), |net| net.trunc().to_string()),
            |v4| v4.to_string(),
        ),
    }
}

/// The socket's peer, unless it is a trusted proxy: then the nearest address in
/// `X-Forwarded-For` that is not one (the header's left part is the client's to
/// forge, so it is read from the right).
fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
        .rev()
        .find(|hop| !is_trusted(hop))
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(forwarded: &str) -> Parts {
        Request::builder()
            .header("x-forwarded-for", forwarded)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    fn net(text: &str) -> IpNet {
        text.parse().unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy = ip("10.0.0.1");
        let stranger = ip("203.0.113.9");
        let parts = parts("198.51.100.1, 198.51.100.7");
        assert_eq!(
            client_ip(stranger, &parts.headers, &[net("10.0.0.1/32")]),
            stranger
        );
        assert_eq!(
            client_ip(proxy, &parts.headers, &[net("10.0.0.1/32")]),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn trusted_hops_are_skipped_from_the_right_and_ranges_are_trusted_whole() {
        let proxy = ip("10.0.0.1");
        let parts = parts("198.51.100.1, 10.0.0.2");
        assert_eq!(
            client_ip(proxy, &parts.headers, &[net("10.0.0.0/24")]),
            ip("198.51.100.1")
        );
        assert_eq!(
            client_ip(
                proxy,
                &self::parts("garbage").headers,
                &[net("10.0.0.0/24")]
            ),
            proxy
        );
    }

    #[test]
    fn ipv6_clients_are_limited_per_64() {
        assert_eq!(
            rate_limit_subject(ip("2001:db8:1:2:aaaa::1")),
            rate_limit_subject(ip("2001:db8:1:2:bbbb::9"))
        );
        assert_ne!(
            rate_limit_subject(ip("2001:db8:1:2::1")),
            rate_limit_subject(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            rate_limit_subject(ip("::ffff:198.51.100.7")),
            "198.51.100.7"
        );
        assert_eq!(rate_limit_subject(ip("198.51.100.7")), "198.51.100.7");
    }

    fn future_size<'a, F>(_: fn(&'a Parts, &'a AuthState) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// The guards' futures are moved whole on every request: their database
    /// and Redis paths are boxed, so a cached credential does not pay for
    /// them (they were 1,504 and 1,328 bytes before).
    #[test]
    fn the_guards_futures_stay_small() {
        for (guard, size) in [
            ("service", future_size(service_principal)),
            ("user", future_size(user_principal)),
        ] {
            assert!(size <= 384, "the {guard} guard's future is {size} bytes");
        }
    }
}
