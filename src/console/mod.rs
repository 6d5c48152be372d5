//! The web console at `/console`: a single-page app, embedded in the binary,
//! that signs in and manages keys, usage, webhooks and events through the same
//! JSON API and credentials as any other client. The server only hands out
//! static files; it holds no session and renders nothing per user.

use axum::{
    extract::Request,
    http::{header, HeaderName, HeaderValue},
    middleware::Next,
    response::{IntoResponse, Response},
};
use loco_rs::controller::Routes;

use crate::{
    controllers::{method_not_allowed, ApiPath},
    error::ApiError,
};

pub const CONSOLE_PATH: &str = "/console";

/// Scripts and styles only from files of this origin (none inline, nothing
/// from elsewhere), calls only to this origin, never inside a frame.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
    base-uri 'none'; form-action 'self'";

const HTML: &str = "text/html; charset=utf-8";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// A file of the console: its name under `/console/`, type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const SHELL: &str = include_str!("assets/index.html");

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: CSS,
        body: include_str!("assets/app.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: SVG,
        body: include_str!("assets/icon.svg"),
    },
    Asset {
        name: "app.js",
        content_type: JAVASCRIPT,
        body: include_str!("assets/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: JAVASCRIPT,
        body: include_str!("assets/api.js"),
    },
    Asset {
        name: "dom.js",
        content_type: JAVASCRIPT,
        body: include_str!("assets/dom.js"),
    },
    Asset {
        name: "chart.js",
        content_type: JAVASCRIPT,
        body: include_str!("assets/chart.js"),
    },
    Asset {
        name: "keys.js",
        content_type: JAVASCRIPT,
        body: include_str!("assets/keys.js"),
    },
    Asset {
        name: "webhooks.js",
        content_type: JAVASCRIPT,
        body: include_str!("assets/webhooks.js"),
    },
    Asset {
        name: "events.js",
        content_type: JAVASCRIPT,
        body: include_str!("assets/events.js"),
    },
];

/// The page itself. It never changes per user, but is not stored anywhere:
/// a new binary's page (and so its scripts) is what the next load gets.
async fn shell() -> Response {
    (
        [
            (header::CONTENT_TYPE, HTML),
            (header::CACHE_CONTROL, "no-store"),
        ],
        SHELL,
    )
        .into_response()
}

/// Scripts, styles and the icon: cached, but checked again on every load.
async fn asset(ApiPath(name): ApiPath<String>) -> Result<Response, ApiError> {
    let asset = ASSETS
        .iter()
        .find(|asset| asset.name == name)
        .ok_or(ApiError::RouteNotFound)?;
    Ok((
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        asset.body,
    )
        .into_response())
}

/// Every console response, a 404 included, carries the browser protections.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Static content only: no route here reads a credential or the database, so
/// none sits behind the database check and none can bypass a guard. The wrong
/// method's answer is set here, not left to the app-wide one, so that it too
/// passes through the headers.
pub fn routes() -> Routes {
    Routes::new()
        .add(
            CONSOLE_PATH,
            axum::routing::get(shell).fallback(method_not_allowed),
        )
        .add(
            "/console/{file}",
            axum::routing::get(asset).fallback(method_not_allowed),
        )
        .layer(axum::middleware::from_fn(security_headers))
}
