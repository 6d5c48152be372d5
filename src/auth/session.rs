//! Sign-in sessions: starting one (login, signup), rotating its refresh token with
//! reuse detection, and ending it (logout).

use chrono::{Duration, Utc};
use loco_rs::app::AppContext;
use uuid::Uuid;

use super::{
    cache::Revocation,
    revocations,
    tokens::{refresh_hash, TokenPair},
    AuthState,
};
use crate::{
    error::ApiError,
    models::{sessions, users},
};

const INVALID_REFRESH: &str = "Invalid or expired refresh token";

/// Opens a session for `user` and signs its first token pair.
///
/// # Errors
/// Database errors.
pub async fn start(
    ctx: &AppContext,
    state: &AuthState,
    user: &users::Model,
    origin: sessions::Origin,
) -> Result<TokenPair, ApiError> {
    let session_id = Uuid::new_v4();
    let ttl = Duration::from_std(state.settings.refresh_ttl).map_err(ApiError::internal)?;
    let expires_at = Utc::now() + ttl;
    let pair = state
        .tokens
        .issue_pair(user.id, &user.email, session_id, expires_at)
        .map_err(ApiError::internal)?;
    sessions::create(
        &ctx.db,
        session_id,
        user.id,
        refresh_hash(&pair.refresh_token),
        expires_at,
        origin,
    )
    .await?;
    Ok(pair)
}

/// Trades a refresh token for a new pair. Only the session's current refresh token
/// is accepted; a valid but older one means it was stolen or replayed, and the
/// whole session is revoked.
///
/// # Errors
/// `Unauthorized` for any token that does not buy a new pair.
pub async fn refresh(
    ctx: &AppContext,
    state: &AuthState,
    refresh_token: &str,
) -> Result<TokenPair, ApiError> {
    let unauthorized = || ApiError::unauthorized(INVALID_REFRESH);
    let claims = state
        .tokens
        .verify_refresh(refresh_token)
        .ok_or_else(unauthorized)?;
    let session = sessions::find(&ctx.db, claims.sid)
        .await?
        .filter(|session| session.user_id == claims.sub && session.revoked_at.is_none())
        .ok_or_else(unauthorized)?;
    let presented_hash = refresh_hash(refresh_token);
    if session.refresh_hash != presented_hash {
        tracing::warn!(session_id = %session.id, "refresh token reuse detected; revoking the session");
        end(ctx, state, session.id).await?;
        return Err(unauthorized());
    }
    let user = users::find_by_id(&ctx.db, session.user_id)
        .await?
        .filter(|user| user.is_active)
        .ok_or_else(unauthorized)?;
    let expires_at = session.expires_at.with_timezone(&Utc);
    let pair = state
        .tokens
        .issue_pair(user.id, &user.email, session.id, expires_at)
        .map_err(ApiError::internal)?;
    let rotated = sessions::rotate(
        &ctx.db,
        session.id,
        &presented_hash,
        refresh_hash(&pair.refresh_token),
    )
    .await?;
    if !rotated {
        // Another request rotated this token first: the same token was used twice.
        end(ctx, state, session.id).await?;
        return Err(unauthorized());
    }
    Ok(pair)
}

/// Revokes a session here and on every instance.
///
/// # Errors
/// Database errors.
pub async fn end(ctx: &AppContext, state: &AuthState, session_id: Uuid) -> Result<(), ApiError> {
    sessions::revoke(&ctx.db, session_id).await?;
    revocations::publish(ctx, state, Revocation::Session(session_id)).await?;
    Ok(())
}
