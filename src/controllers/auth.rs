//! `/auth`: sign up, log in, refresh, log out, and who am I.

use axum::{extract::State, http::StatusCode, Json};
use loco_rs::{app::AppContext, controller::Routes};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{validation_failed, ApiJson};
use crate::{
    auth::{
        extract::{ClientOrigin, UserAuth},
        password::Password,
        session,
        throttle::{self, LoginFailures, Route},
        AuthState,
    },
    error::{ApiError, ApiResult, ErrorBody},
    models::{
        events::{self, EventType, NewEvent},
        users::{self, check_new_password, parse_name, Email},
    },
    views::{
        auth::{AuthResponse, MeResponse, TokenPairResponse},
        MessageResponse,
    },
};

const INVALID_CREDENTIALS: &str = "Invalid email or password";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    #[schema(example = "ada@example.com", format = Email, max_length = 254)]
    pub email: String,
    /// 8 to 72 bytes.
    #[schema(example = "correct horse battery", min_length = 8, max_length = 72)]
    pub password: String,
    /// 1 to 100 characters, trimmed.
    #[schema(example = "Ada", min_length = 1, max_length = 100)]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "ada@example.com", format = Email, max_length = 254)]
    pub email: String,
    #[schema(example = "correct horse battery")]
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Creates an account and signs it in.
#[utoipa::path(post, path = "/auth/signup", tag = "auth", request_body = SignupRequest,
    responses(
        (status = 201, body = AuthResponse),
        (status = 400, description = "Invalid email, password or name", body = ErrorBody),
        (status = 409, description = "Email already registered", body = ErrorBody),
        (status = 429, description = "Too many signups from this IP", body = ErrorBody),
    ))]
pub async fn signup(
    State(ctx): State<AppContext>,
    ClientOrigin(origin): ClientOrigin,
    ApiJson(body): ApiJson<SignupRequest>,
) -> ApiResult<(StatusCode, Json<AuthResponse>)> {
    let state = AuthState::of(&ctx)?;
    throttle::attempt(&state, Route::Signup, origin.ip_or_unknown()).await?;
    let email = Email::parse(&body.email);
    let password = check_new_password(&body.password);
    let name = body
        .name
        .as_deref()
        .map(|name| parse_name("name", name))
        .transpose();
    let (email, name) = match (email, password, name) {
        (Ok(email), Ok(()), Ok(name)) => (email, name),
        (email, password, name) => {
            return Err(validation_failed([email.err(), password.err(), name.err()]))
        }
    };

    let password_hash = state.passwords.hash(&Password::new(body.password)).await?;
    let user = users::create(&ctx.db, &email, password_hash, name).await?;
    let pair = session::start(&ctx, &state, &user, origin).await?;
    Ok((StatusCode::CREATED, Json(AuthResponse::new(user, pair))))
}

/// Signs in with email and password. An unknown email and a wrong password get
/// the same answer after the same work; a refused login of a known account is
/// recorded (`login.failed`), an unknown email records nothing.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, body = AuthResponse),
        (status = 400, body = ErrorBody),
        (status = 401, description = "Invalid email or password", body = ErrorBody),
        (status = 429, description = "Too many attempts; see Retry-After", body = ErrorBody),
    ))]
pub async fn login(
    State(ctx): State<AppContext>,
    ClientOrigin(origin): ClientOrigin,
    ApiJson(body): ApiJson<LoginRequest>,
) -> ApiResult<Json<AuthResponse>> {
    let state = AuthState::of(&ctx)?;
    throttle::attempt(&state, Route::Login, origin.ip_or_unknown()).await?;
    let email = Email::parse(&body.email).map_err(|problem| ApiError::Validation(vec![problem]))?;
    let failures = LoginFailures::new(&email, origin.ip_or_unknown());
    failures.presume_failure(&state).await?;
    let user = match check_credentials(&ctx, &state, &email, Password::new(body.password)).await? {
        Credentials::Valid(user) => user,
        Credentials::Refused(account) => {
            if let Some(user_id) = account {
                let data = serde_json::json!({ "ip": origin.ip, "userAgent": origin.user_agent });
                let event = NewEvent::now(user_id, EventType::LoginFailed, data);
                events::record_all(&ctx.db, vec![event]).await?;
            }
            return Err(ApiError::unauthorized(INVALID_CREDENTIALS));
        }
    };
    failures.clear(&state).await;
    let pair = session::start(&ctx, &state, &user, origin).await?;
    Ok(Json(AuthResponse::new(user, pair)))
}

/// What an email and password come to.
enum Credentials {
    /// An active user with this password.
    Valid(users::Model),
    /// Refused; the id of the account when the email is known.
    Refused(Option<uuid::Uuid>),
}

/// Checks an email and password, after the same work whether or not the email
/// is known.
async fn check_credentials(
    ctx: &AppContext,
    state: &AuthState,
    email: &Email,
    password: Password,
) -> ApiResult<Credentials> {
    let Some(user) = users::find_by_email(&ctx.db, email).await? else {
        if password.expose().len() <= users::MAX_PASSWORD_BYTES {
            state.passwords.verify_dummy(&password).await?;
        }
        return Ok(Credentials::Refused(None));
    };
    if password.expose().len() > users::MAX_PASSWORD_BYTES {
        // No stored password can be this long: refuse without spending bcrypt on it.
        return Ok(Credentials::Refused(Some(user.id)));
    }
    let matches = state.passwords.verify(&password, &user.password).await?;
    if matches && user.is_active {
        Ok(Credentials::Valid(user))
    } else {
        Ok(Credentials::Refused(Some(user.id)))
    }
}

/// Trades the current refresh token for a new pair. Presenting an older refresh
/// token of the session revokes the session.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, body = TokenPairResponse),
        (status = 400, body = ErrorBody),
        (status = 401, description = "Invalid, expired, revoked or reused refresh token", body = ErrorBody),
        (status = 429, description = "Too many refreshes from this IP", body = ErrorBody),
    ))]
pub async fn refresh(
    State(ctx): State<AppContext>,
    ClientOrigin(origin): ClientOrigin,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> ApiResult<Json<TokenPairResponse>> {
    let state = AuthState::of(&ctx)?;
    throttle::attempt(&state, Route::Refresh, origin.ip_or_unknown()).await?;
    let pair = session::refresh(&ctx, &state, &body.refresh_token, &origin).await?;
    Ok(Json(pair.into()))
}

/// Ends the caller's session: its refresh token and access tokens stop working.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearerAuth" = [])),
    responses(
        (status = 200, body = MessageResponse),
        (status = 401, body = ErrorBody),
    ))]
pub async fn logout(
    State(ctx): State<AppContext>,
    UserAuth(principal): UserAuth,
) -> ApiResult<Json<MessageResponse>> {
    let state = AuthState::of(&ctx)?;
    let ending = session::Ending::Logout;
    session::end(
        &ctx,
        &state,
        principal.user_id,
        principal.session_id,
        ending,
    )
    .await?;
    Ok(Json(MessageResponse {
        message: "Logged out successfully",
    }))
}

/// The signed-in user.
#[utoipa::path(get, path = "/auth/me", tag = "auth", security(("bearerAuth" = [])),
    responses(
        (status = 200, body = MeResponse),
        (status = 401, body = ErrorBody),
    ))]
pub async fn me(
    State(ctx): State<AppContext>,
    UserAuth(principal): UserAuth,
) -> ApiResult<Json<MeResponse>> {
    let user = users::find_by_id(&ctx.db, principal.user_id)
        .await?
        .ok_or(ApiError::unauthorized("Invalid or missing access token"))?;
    Ok(Json(user.into()))
}

pub fn routes() -> Routes {
    Routes::new()
        .prefix("/auth")
        .add("/signup", axum::routing::post(signup))
        .add("/login", axum::routing::post(login))
        .add("/refresh", axum::routing::post(refresh))
        .add("/logout", axum::routing::post(logout))
        .add("/me", axum::routing::get(me))
}
