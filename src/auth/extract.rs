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
    http::{header, request::Parts},
};
use chrono::{DateTime, Utc};
use loco_rs::app::AppContext;
use uuid::Uuid;

use super::{
    api_key::ApiKey,
    cache::{KeyRecord, Lookup, SessionRecord, TokenDigest},
    rate_limit::UsageSlot,
    throttle::too_many,
    tokens::AccessClaims,
    AuthState,
};
use crate::{
    error::ApiError,
    models::{api_keys, sessions},
};

pub const API_KEY_HEADER: &str = "x-api-key";
const INVALID_TOKEN: &str = "Invalid or missing access token";

/// A person, signed in with an access token of a live session.
#[derive(Debug, Clone)]
pub struct UserPrincipal {
    pub user_id: Uuid,
    pub email: String,
    pub session_id: Uuid,
}

/// A service, calling with an API key.
#[derive(Debug, Clone)]
pub struct ServicePrincipal {
    pub user_id: Uuid,
    pub email: String,
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

impl FromRequestParts<AppContext> for UserAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &AppContext) -> Result<Self, ApiError> {
        let state = AuthState::of(ctx)?;
        user_principal(parts, ctx, &state).await.map(Self)
    }
}

impl FromRequestParts<AppContext> for ServiceAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &AppContext) -> Result<Self, ApiError> {
        let state = AuthState::of(ctx)?;
        service_principal(parts, ctx, &state).await.map(Self)
    }
}

impl FromRequestParts<AppContext> for AnyAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &AppContext) -> Result<Self, ApiError> {
        let state = AuthState::of(ctx)?;
        if parts.headers.contains_key(API_KEY_HEADER) {
            service_principal(parts, ctx, &state)
                .await
                .map(Self::Service)
        } else {
            user_principal(parts, ctx, &state).await.map(Self::User)
        }
    }
}

async fn user_principal(
    parts: &Parts,
    ctx: &AppContext,
    state: &AuthState,
) -> Result<UserPrincipal, ApiError> {
    let token = bearer_token(parts).ok_or(ApiError::unauthorized(INVALID_TOKEN))?;
    let now = Utc::now();
    let claims = access_claims(state, token, now).ok_or(ApiError::unauthorized(INVALID_TOKEN))?;
    let session = session_record(ctx, state, claims.sid)
        .await?
        .filter(|session| session.user_id == claims.sub && session.accepts_at(now))
        .ok_or(ApiError::unauthorized(INVALID_TOKEN))?;
    Ok(UserPrincipal {
        user_id: session.user_id,
        email: session.email.clone(),
        session_id: claims.sid,
    })
}

async fn service_principal(
    parts: &Parts,
    ctx: &AppContext,
    state: &AuthState,
) -> Result<ServicePrincipal, ApiError> {
    // Shape and checksum first: garbage costs no hashing and no lookup.
    let key = parts
        .headers
        .get(API_KEY_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| ApiKey::parse(text).ok())
        .ok_or(ApiError::invalid_api_key())?;
    let now = Utc::now();
    let record = key_record(ctx, state, &key)
        .await?
        .filter(|record| record.accepts_at(now))
        .ok_or(ApiError::invalid_api_key())?;
    state.last_used.record(record.key_id, now);
    if let Some(limit) = record.rate_limit.or(state.settings.limits.default_key) {
        let usage = state
            .limiter
            .hit(&format!("key:{}", record.key_id), limit)
            .await;
        if let Some(slot) = parts.extensions.get::<UsageSlot>() {
            slot.fill(usage);
        }
        if usage.exceeded() {
            return Err(too_many(&usage));
        }
    }
    Ok(ServicePrincipal {
        user_id: record.user_id,
        email: record.email.clone(),
        key_id: record.key_id,
    })
}

fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// The claims of a valid, unexpired access token: remembered from an earlier
/// verification of the same token, else verified now.
fn access_claims(state: &AuthState, token: &str, now: DateTime<Utc>) -> Option<Arc<AccessClaims>> {
    let digest = TokenDigest::of(token);
    if let Some(claims) = state.cache.access_token(&digest) {
        return (now.timestamp() < claims.exp).then_some(claims);
    }
    let claims = Arc::new(state.tokens.verify_access(token)?);
    state.cache.remember_access_token(digest, claims.clone());
    Some(claims)
}

/// The session behind an access token: from the cache, else one query.
async fn session_record(
    ctx: &AppContext,
    state: &AuthState,
    session_id: Uuid,
) -> Result<Option<Arc<SessionRecord>>, ApiError> {
    if let Some(record) = state.cache.session(session_id) {
        return Ok(Some(record));
    }
    let record = sessions::load_record(&ctx.db, session_id)
        .await?
        .map(Arc::new);
    if let Some(record) = &record {
        state.cache.remember_session(session_id, record.clone());
    }
    Ok(record)
}

/// The stored key behind a well-formed key: from the cache (including "no such
/// key"), else one indexed query.
async fn key_record(
    ctx: &AppContext,
    state: &AuthState,
    key: &ApiKey,
) -> Result<Option<Arc<KeyRecord>>, ApiError> {
    let hash = key.hash();
    match state.cache.key(&hash) {
        Lookup::Known(record) => Ok(Some(record)),
        Lookup::Unknown => Ok(None),
        Lookup::Miss => {
            let record = api_keys::load_record(&ctx.db, &hash).await?.map(Arc::new);
            state.cache.remember_key(hash, record.clone());
            Ok(record)
        }
    }
}

/// Where a request came from: kept on the sessions it starts, and the key of
/// the per-IP limits.
pub struct ClientOrigin(pub sessions::Origin);

const MAX_USER_AGENT_CHARS: usize = 256;

impl FromRequestParts<AppContext> for ClientOrigin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &AppContext) -> Result<Self, ApiError> {
        let state = AuthState::of(ctx)?;
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .map(|agent| agent.chars().take(MAX_USER_AGENT_CHARS).collect());
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        let ip = peer.map(|peer| client_ip(peer, parts, &state.settings.trusted_proxies));
        Ok(Self(sessions::Origin {
            user_agent,
            ip: ip.map(|ip| ip.to_string()),
        }))
    }
}

/// The socket's peer, unless it is a trusted proxy: then the nearest address in
/// `X-Forwarded-For` that is not one (the header's left part is the client's to
/// forge, so it is read from the right).
fn client_ip(peer: IpAddr, parts: &Parts, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .find(|hop| !trusted.contains(hop))
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

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        let parts = parts("198.51.100.1, 198.51.100.7");
        assert_eq!(client_ip(stranger, &parts, &[proxy]), stranger);
        assert_eq!(
            client_ip(proxy, &parts, &[proxy]),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn trusted_hops_are_skipped_from_the_right() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let inner: IpAddr = "10.0.0.2".parse().unwrap();
        let parts = parts("198.51.100.1, 10.0.0.2");
        assert_eq!(
            client_ip(proxy, &parts, &[proxy, inner]),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(proxy, &self::parts("garbage"), &[proxy]), proxy);
    }
}
