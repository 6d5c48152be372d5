//! The OpenAPI document, derived from the handlers and bodies themselves, and
//! Swagger UI served from assets vendored at build time.

use std::sync::{Arc, LazyLock};

use axum::{
    http::header,
    response::{Html, IntoResponse, Response},
    Json,
};
use loco_rs::controller::Routes;
use utoipa::{
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};
use utoipa_swagger_ui::Config;

use super::{auth, events, health, keys, metrics, protected, usage, verify, webhooks, ApiPath};
use crate::error::ApiError;

pub const DOCS_PATH: &str = "/api/docs";
const DOCUMENT_PATH: &str = "/api/docs/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(title = "authgate", description = "Sign-in with JWTs and API keys for services."),
    paths(
        auth::signup, auth::login, auth::refresh, auth::logout, auth::me,
        keys::create, keys::list, keys::revoke, keys::rotate,
        usage::key_usage, usage::user_usage,
        events::list,
        webhooks::create, webhooks::list, webhooks::delete, webhooks::test, webhooks::deliveries,
        protected::user_only, protected::service_only, protected::flexible,
        health::health, health::ready, metrics::metrics,
        verify::verify_key, verify::forward_auth,
    ),
    components(schemas(crate::error::ErrorBody)),
    modifiers(&SecuritySchemes),
)]
pub struct ApiDoc;

/// `bearerAuth` (an access token) and `apiKey` (the `x-api-key` header).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearerAuth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-api-key"))),
        );
    }
}

static SWAGGER_CONFIG: LazyLock<Arc<Config<'static>>> =
    LazyLock::new(|| Arc::new(Config::new([DOCUMENT_PATH])));

async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// Swagger UI's page. Served at `/api/docs` itself (no redirect, as the old
/// service did), so its relative asset links are anchored with a `<base>`.
async fn index() -> Result<Html<String>, ApiError> {
    let file = swagger_file("index.html")?;
    let page = String::from_utf8_lossy(&file.bytes).replacen(
        "<head>",
        &format!("<head><base href=\"{DOCS_PATH}/\">"),
        1,
    );
    Ok(Html(page))
}

async fn asset(ApiPath(file): ApiPath<String>) -> Result<Response, ApiError> {
    let file = swagger_file(&file)?;
    Ok((
        [(header::CONTENT_TYPE, file.content_type)],
        file.bytes.into_owned(),
    )
        .into_response())
}

fn swagger_file(path: &str) -> Result<utoipa_swagger_ui::SwaggerFile<'static>, ApiError> {
    utoipa_swagger_ui::serve(path, SWAGGER_CONFIG.clone())
        .map_err(ApiError::internal)?
        .ok_or(ApiError::RouteNotFound)
}

pub fn routes() -> Routes {
    Routes::new()
        .add(DOCUMENT_PATH, axum::routing::get(document))
        .add(DOCS_PATH, axum::routing::get(index))
        .add("/api/docs/{*file}", axum::routing::get(asset))
}
