//! The Loco application: routes, start-up checks, background tasks and shutdown.

use std::{path::Path, sync::Arc};

use async_trait::async_trait;
use axum::{
    extract::DefaultBodyLimit,
    http::{header, HeaderName, HeaderValue, Method},
    Router as AxumRouter,
};
use loco_rs::{
    app::{AppContext, Hooks},
    bgworker::{BackgroundWorker, Queue},
    boot::{create_app, shutdown_signal, BootResult, ServeParams, StartMode},
    config::Config,
    controller::{middleware::MiddlewareLayer, AppRoutes, Routes},
    db::truncate_table,
    environment::Environment,
    task::Tasks,
    Error, Result,
};
use migration::Migrator;
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowOrigin, CorsLayer},
};

use crate::{
    auth::{extract::API_KEY_HEADER, revocations, AuthState},
    console, controllers,
    error::ApiError,
    events,
    models::_entities::{api_keys, events as event_rows, sessions, users},
    ops::{self, access_log::AccessLog, database::DatabaseHealth},
    settings::{Resolved, Settings},
    tasks,
    workers::usage::{self, UsageWorker},
};

pub struct App;

fn resolve_settings(config: &Config, environment: &Environment) -> Result<Resolved> {
    Settings::from_config(config.settings.as_ref())
        .and_then(|settings| settings.resolve(environment))
        .map_err(Error::Message)
}

/// A panic fails its own request with a 500 in the error shape (logged with
/// its message), not the connection.
fn answer_panic(panic: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("no message");
    ApiError::internal(format!("panic: {message}")).into_response()
}

/// Browsers may call from these origins only. Credentials travel in headers, not
/// cookies, so `Access-Control-Allow-Credentials` is never sent, and never `*`.
fn cors_layer(origins: &[String]) -> Result<Option<CorsLayer>> {
    if origins.is_empty() {
        return Ok(None);
    }
    let origins = origins
        .iter()
        .map(|origin| {
            HeaderValue::from_str(origin)
                .map_err(|_| Error::Message(format!("CORS_ORIGINS: `{origin}` is not an origin")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static(API_KEY_HEADER),
            ])
            .expose_headers([
                header::RETRY_AFTER,
                HeaderName::from_static("ratelimit-limit"),
                HeaderName::from_static("ratelimit-remaining"),
                HeaderName::from_static("ratelimit-reset"),
            ]),
    ))
}

#[async_trait]
impl Hooks for App {
    fn app_name() -> &'static str {
        env!("CARGO_CRATE_NAME")
    }

    async fn boot(
        mode: StartMode,
        environment: &Environment,
        config: Config,
    ) -> Result<BootResult> {
        create_app::<Self, Migrator>(mode, environment, config).await
    }

    /// Refuses a bad configuration (in production: weak secrets; anywhere: TLS
    /// files that cannot serve) before anything is opened or created, the
    /// database included.
    async fn load_config(environment: &Environment) -> Result<Config> {
        let config = environment.load()?;
        let settings = resolve_settings(&config, environment)?;
        if let Some(files) = &settings.tls {
            ops::tls::acceptor(files).map_err(Error::Message)?;
        }
        Ok(config)
    }

    /// Builds the credential layer's state, before anything can serve a request.
    async fn after_context(mut ctx: AppContext) -> Result<AppContext> {
        // axum clones the app context for every request, and with it the settings'
        // JSON tree (dozens of allocations: it tripled the cost of a request), so
        // they are taken out and kept parsed in `AuthState`. `cargo loco start`
        // builds a second context from the first one's config: then the settings
        // are read again from the same files.
        if ctx.config.settings.is_none() {
            ctx.config.settings = Self::load_config(&ctx.environment).await?.settings;
        }
        let settings = resolve_settings(&ctx.config, &ctx.environment)?;
        ctx.config.settings = None;
        let state = AuthState::new(
            settings,
            DatabaseHealth::new(ctx.db.clone(), &ctx.config.database.uri),
        )
        .map_err(Error::Message)?;
        if AccessLog::wanted(&ctx.config.logger) {
            // Buffered: the log's thread writes lines in batches when busy.
            state
                .access_log
                .write_to(std::io::BufWriter::new(std::io::stdout()));
        }
        ctx.shared_store.insert(Arc::new(state));
        // Instances starting together on one PostgreSQL database migrate it one
        // at a time.
        if ctx.config.database.auto_migrate {
            ops::migrations::migrate_one_at_a_time(&ctx.config.database.uri, &ctx.db).await?;
        }
        Ok(ctx)
    }

    /// Unknown routes answer in the API's error shape.
    async fn before_routes(_ctx: &AppContext) -> Result<AxumRouter<AppContext>> {
        Ok(AxumRouter::new().fallback(controllers::route_not_found))
    }

    /// Around routing, outermost first: the edge (`ops::edge`: request id,
    /// metrics and access log, size bounds, `REQUEST_TIMEOUT`, fail-fast on a
    /// lost database, `RateLimit-*` headers); CORS only for configured
    /// origins; a panic answers 500 in the error shape; bodies are bounded.
    /// Inside routing: wrong methods answer in the API's error shape (axum sets
    /// this on the routes registered so far, so it goes after them), and the
    /// matched route is noted for the access log.
    ///
    /// The layers wrap the router rather than each route (`Router::layer`, as
    /// Loco's middlewares do, which are therefore off: see `middlewares`):
    /// axum clones a route's whole chain of services, down to the handler and
    /// its `AppContext`, at every layer of it, on every request; around the
    /// router, that chain is cloned once per request, and cheaply (`Arc`s),
    /// but for CORS when `CORS_ORIGINS` is set (its lists of origins and
    /// headers).
    async fn after_routes(router: AxumRouter, ctx: &AppContext) -> Result<AxumRouter> {
        let state = AuthState::of(ctx).map_err(|err| Error::Message(err.to_string()))?;
        let routed = router
            .method_not_allowed_fallback(controllers::method_not_allowed)
            .layer(ops::edge::RecordRouteLayer);
        let around = ServiceBuilder::new()
            .layer(ops::edge::EdgeLayer::new(state.clone()))
            .option_layer(cors_layer(&state.settings.cors_origins)?)
            // The panic catcher boxes the body its own way; back to axum's.
            .map_response(|response: axum::http::Response<_>| response.map(axum::body::Body::new))
            .layer(CatchPanicLayer::custom(answer_panic))
            .layer(DefaultBodyLimit::max(controllers::MAX_BODY_BYTES))
            .service(routed);
        Ok(AxumRouter::new().fallback_service(around))
    }

    /// None of Loco's: the app's own layers wrap the router (`after_routes`).
    fn middlewares(_ctx: &AppContext) -> Vec<Box<dyn MiddlewareLayer>> {
        Vec::new()
    }

    /// The account and key routes cannot answer without the database: while it
    /// is down they get 503 at once. The protected and verify routes answer
    /// from the verification cache and check the database themselves on a miss.
    fn routes(ctx: &AppContext) -> AppRoutes {
        // Only a context not built by `after_context` lacks the state; then
        // `after_routes` refuses to start.
        let Ok(state) = AuthState::of(ctx) else {
            return AppRoutes::empty();
        };
        let needs_database = |routes: Routes| {
            routes.layer(axum::middleware::from_fn_with_state(
                state.database.clone(),
                ops::database::required,
            ))
        };
        AppRoutes::empty()
            .add_route(needs_database(controllers::auth::routes()))
            .add_route(needs_database(controllers::keys::routes()))
            .add_route(needs_database(controllers::usage::routes()))
            .add_route(needs_database(controllers::events::routes()))
            .add_route(needs_database(controllers::webhooks::routes()))
            .add_route(controllers::protected::routes(&state))
            .add_route(controllers::verify::routes(&state))
            .add_route(controllers::health::routes(&state))
            .add_route(controllers::metrics::routes())
            .add_route(controllers::docs::routes())
            .add_route(console::routes())
    }

    /// Serves until SIGINT/SIGTERM (in-flight requests get `SHUTDOWN_TIMEOUT`),
    /// then writes the last-used times still in memory: after the server has
    /// stopped taking requests, so none is lost. (Loco's `on_shutdown` runs
    /// before in-flight requests finish.)
    async fn serve(app: AxumRouter, ctx: &AppContext, params: &ServeParams) -> Result<()> {
        let state = AuthState::of(ctx).map_err(|err| Error::Message(err.to_string()))?;
        usage::spawn_ticker(ctx, state.clone());
        revocations::spawn_listener(ctx, state.clone());
        events::delivery::spawn(
            &ctx.db,
            &state.settings.webhooks,
            state.metrics.webhook_deliveries(),
        );

        let tls = state
            .settings
            .tls
            .as_ref()
            .map(ops::tls::acceptor)
            .transpose()
            .map_err(Error::Message)?;
        let listener =
            tokio::net::TcpListener::bind(format!("{}:{}", params.binding, params.port)).await?;
        if tls.is_some() {
            tracing::info!(port = params.port, "serving HTTPS (h2, http/1.1)");
        }
        ops::server::serve(app, listener, &state.settings.http, tls, shutdown_signal()).await?;
        state.access_log.flush();

        let flushed = usage::flush_now(ctx, &state).await?;
        tracing::info!(
            keys = flushed,
            "last-used times and usage flushed at shutdown"
        );
        Ok(())
    }

    async fn connect_workers(ctx: &AppContext, queue: &Queue) -> Result<()> {
        queue.register(UsageWorker::build(ctx)).await?;
        Ok(())
    }

    fn register_tasks(tasks: &mut Tasks) {
        tasks.register(tasks::users::SetUserActive { active: false });
        tasks.register(tasks::users::SetUserActive { active: true });
        tasks.register(tasks::keys::RevokeKey);
        tasks.register(tasks::keys::PruneKeys);
        tasks.register(tasks::usage::PruneUsage);
        tasks.register(tasks::events::PruneEvents);
    }

    async fn truncate(ctx: &AppContext) -> Result<()> {
        truncate_table(&ctx.db, event_rows::Entity).await?;
        truncate_table(&ctx.db, api_keys::Entity).await?;
        truncate_table(&ctx.db, sessions::Entity).await?;
        truncate_table(&ctx.db, users::Entity).await?;
        Ok(())
    }

    async fn seed(_ctx: &AppContext, _base: &Path) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{body::Body, http::Request, routing::get};
    use tower::ServiceExt;

    async fn preflight(layer: Option<CorsLayer>, origin: &str) -> axum::http::HeaderMap {
        let router = AxumRouter::new().route("/keys", get(|| async { "ok" }));
        let router = match layer {
            Some(layer) => router.layer(layer),
            None => router,
        };
        let request = Request::builder()
            .method(Method::OPTIONS)
            .uri("/keys")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
            .body(Body::empty())
            .unwrap();
        router.oneshot(request).await.unwrap().headers().clone()
    }

    #[tokio::test]
    async fn cors_allows_configured_origins_only_and_never_credentials() {
        let allowed = "https://app.example.com";
        let layer = || cors_layer(&[allowed.to_string()]).unwrap();
        let headers = preflight(layer(), allowed).await;
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], allowed);
        assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS));
        let other = preflight(layer(), "https://evil.example.com").await;
        assert!(!other.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
    }

    #[tokio::test]
    async fn a_panic_is_a_500_in_the_error_shape_without_its_message() {
        let router = AxumRouter::new()
            .route("/boom", get(|| async { panic!("secret detail") as &str }))
            .layer(CatchPanicLayer::custom(answer_panic));
        let response = router
            .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), 500);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["statusCode"], 500);
        assert_eq!(body["message"], "Internal server error");
        assert!(!body.to_string().contains("secret detail"));
    }

    #[tokio::test]
    async fn no_cors_by_default() {
        assert!(cors_layer(&[]).unwrap().is_none());
        let headers = preflight(None, "https://app.example.com").await;
        assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
    }
}
