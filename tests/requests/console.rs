//! `/console`: a page and files for browsers, each with the security headers,
//! holding nothing that belongs to a user.

use authgate::console::CONTENT_SECURITY_POLICY;
use axum::http::StatusCode;
use axum_test::TestResponse;
use serial_test::parallel;

use super::support::with_app;

const SCRIPTS: [&str; 7] = [
    "app.js",
    "api.js",
    "dom.js",
    "chart.js",
    "keys.js",
    "webhooks.js",
    "events.js",
];

fn assert_security_headers(response: &TestResponse) {
    assert_eq!(
        response.header("content-security-policy"),
        CONTENT_SECURITY_POLICY
    );
    assert_eq!(response.header("x-content-type-options"), "nosniff");
    assert_eq!(response.header("referrer-policy"), "no-referrer");
    assert_eq!(response.header("x-frame-options"), "DENY");
}

#[test]
fn the_policy_allows_nothing_inline_and_no_framing() {
    assert_eq!(
        CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    );
    assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
}

#[tokio::test]
#[parallel]
async fn console_is_html_with_the_security_headers_and_not_stored() {
    with_app(|server, _ctx| async move {
        let page = server.get("/console").await;
        assert_eq!(page.status_code(), StatusCode::OK);
        assert_eq!(page.header("content-type"), "text/html; charset=utf-8");
        assert_security_headers(&page);
        assert_eq!(page.header("cache-control"), "no-store");
        assert!(page
            .text()
            .contains(r#"<script type="module" src="/console/app.js">"#));
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn console_files_have_their_content_types_and_the_headers() {
    with_app(|server, _ctx| async move {
        for (path, content_type) in SCRIPTS
            .iter()
            .map(|name| (format!("/console/{name}"), "text/javascript; charset=utf-8"))
            .chain([
                ("/console/app.css".into(), "text/css; charset=utf-8"),
                ("/console/icon.svg".into(), "image/svg+xml"),
            ])
        {
            let response = server.get(&path).await;
            assert_eq!(response.status_code(), StatusCode::OK, "{path}");
            assert_eq!(response.header("content-type"), content_type, "{path}");
            assert_security_headers(&response);
            assert!(!response.text().is_empty(), "{path}");
        }
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn an_unknown_file_or_method_is_refused_with_the_headers() {
    with_app(|server, _ctx| async move {
        let response = server.get("/console/secrets.txt").await;
        assert_eq!(response.status_code(), StatusCode::NOT_FOUND);
        assert_security_headers(&response);
        let traversal = server.get("/console/..%2Fapi%2Fdocs").await;
        assert_eq!(traversal.status_code(), StatusCode::NOT_FOUND);
        for path in ["/console", "/console/app.js"] {
            let post = server.post(path).await;
            assert_eq!(post.status_code(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
            assert_security_headers(&post);
        }
    })
    .await;
}

/// The page is the same for everyone: no key, token or secret, and nothing
/// inline for the policy to refuse (scripts, style attributes, handlers).
#[tokio::test]
#[parallel]
async fn the_page_holds_no_secret_and_nothing_inline() {
    with_app(|server, _ctx| async move {
        let html = server.get("/console").await.text();
        for secret in ["sk_", "whsec_", "eyJ", "accessToken", "refreshToken"] {
            assert!(!html.contains(secret), "{secret} in the page");
        }
        assert!(!html.contains("style="), "an inline style");
        assert!(!html.contains("<style"), "a style element");
        let handler = html
            .split_whitespace()
            .find(|word| word.starts_with("on") && word.contains('='));
        assert_eq!(handler, None, "an inline event handler");
        let scripts: Vec<&str> = html
            .match_indices("<script")
            .map(|(at, _)| &html[at..])
            .collect();
        assert_eq!(scripts.len(), 1);
        assert!(scripts[0].starts_with(r#"<script type="module" src="/console/"#));
    })
    .await;
}

/// Tokens live in the script's memory only: no file of the console touches
/// persistent browser storage or cookies.
#[tokio::test]
#[parallel]
async fn no_console_script_stores_anything_in_the_browser() {
    with_app(|server, _ctx| async move {
        for name in SCRIPTS {
            let script = server.get(&format!("/console/{name}")).await.text();
            for storage in [
                "localStorage",
                "sessionStorage",
                "indexedDB",
                "document.cookie",
                "innerHTML",
            ] {
                assert!(!script.contains(storage), "{name} uses {storage}");
            }
        }
    })
    .await;
}

/// The console is static: it is served while the database is down (the API
/// it calls says 503 for itself).
#[tokio::test]
#[parallel]
async fn the_console_is_served_without_the_database() {
    with_app(|server, ctx| async move {
        ctx.db.close_by_ref().await.expect("close the pool");
        let page = server.get("/console").await;
        assert_eq!(page.status_code(), StatusCode::OK);
        let script = server.get("/console/app.js").await;
        assert_eq!(script.status_code(), StatusCode::OK);
    })
    .await;
}
