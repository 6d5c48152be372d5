//! Sign-in sessions: starting one (login, signup), rotating its refresh token with
//! reuse detection, and ending it (logout). Each start and end is recorded as an
//! event in the transaction that makes it.

use chrono::{Duration, Utc};
use loco_rs::app::AppContext;
use sea_orm::TransactionTrait;
use uuid::Uuid;

use super::{
    cache::Revocation,
    revocations,
    tokens::{refresh_hash, TokenPair},
    AuthState,
};
use crate::{
    error::ApiError,
    models::{
        events::{self, EventType, NewEvent},
        sessions, users,
    },
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
    let txn = ctx.db.begin().await?;
    let data = events::session_data(session_id, &origin);
    sessions::create(
        &txn,
        session_id,
        user.id,
        refresh_hash(&pair.refresh_token),
        expires_at,
        origin,
    )
    .await?;
    events::record(
        &txn,
        NewEvent::now(user.id, EventType::SessionCreated, data),
    )
    .await?;
    txn.commit().await?;
    Ok(pair)
}

/// Trades a refresh token for a new pair. Only the session's current refresh token
/// is accepted; a valid but older one means it was stolen or replayed, and the
/// whole session is revoked (`session.reuse_detected`, with where the replay
/// came from).
///
/// # Errors
/// `Unauthorized` for any token that does not buy a new pair.
pub async fn refresh(
    ctx: &AppContext,
    state: &AuthState,
    refresh_token: &str,
    origin: &sessions::Origin,
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
        end(
            ctx,
            state,
            session.user_id,
            session.id,
            Ending::Reuse(origin),
        )
        .await?;
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
        end(
            ctx,
            state,
            session.user_id,
            session.id,
            Ending::Reuse(origin),
        )
        .await?;
        return Err(unauthorized());
    }
    Ok(pair)
}

/// Why a session ends.
pub enum Ending<'a> {
    /// Its user logged out (`session.revoked`).
    Logout,
    /// An old refresh token of it was presented, from this origin
    /// (`session.reuse_detected`).
    Reuse(&'a sessions::Origin),
}

/// Revokes `user_id`'s session here and on every instance, recording why (once,
/// however many requests end it at once).
///
/// # Errors
/// Database errors.
pub async fn end(
    ctx: &AppContext,
    state: &AuthState,
    user_id: Uuid,
    session_id: Uuid,
    ending: Ending<'_>,
) -> Result<(), ApiError> {
    let txn = ctx.db.begin().await?;
    if sessions::revoke(&txn, session_id).await? {
        let (kind, data) = match ending {
            Ending::Logout => (
                EventType::SessionRevoked,
                serde_json::json!({ "sessionId": session_id }),
            ),
            Ending::Reuse(origin) => (
                EventType::SessionReuseDetected,
                events::session_data(session_id, origin),
            ),
        };
        events::record(&txn, NewEvent::now(user_id, kind, data)).await?;
    }
    txn.commit().await?;
    revocations::publish(ctx, state, Revocation::Session(session_id)).await?;
    Ok(())
}
