//! The OpenAPI document and Swagger UI.

use std::collections::BTreeSet;

use authgate::{
    app::App,
    console::CONSOLE_PATH,
    controllers::{docs::ApiDoc, verify::FORWARD_AUTH_ALIASES},
};
use axum::http::StatusCode;
use loco_rs::app::Hooks;
use serde_json::Value;
use serial_test::parallel;
use utoipa::OpenApi;

use super::support::with_app;

#[tokio::test]
#[parallel]
async fn swagger_ui_is_served_at_api_docs() {
    with_app(|server, _ctx| async move {
        let page = server.get("/api/docs").await;
        assert_eq!(page.status_code(), StatusCode::OK);
        assert!(page.content_type().starts_with("text/html"));
        assert!(page.text().contains("swagger-ui"));
        let script = server.get("/api/docs/swagger-initializer.js").await;
        assert_eq!(script.status_code(), StatusCode::OK);
        assert!(script.text().contains("/api/docs/openapi.json"));
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn the_document_declares_both_security_schemes() {
    with_app(|server, _ctx| async move {
        let response = server.get("/api/docs/openapi.json").await;
        assert_eq!(response.status_code(), StatusCode::OK);
        let document: Value = response.json();
        let schemes = &document["components"]["securitySchemes"];
        assert_eq!(schemes["bearerAuth"]["scheme"], "bearer");
        assert_eq!(schemes["apiKey"]["name"], "x-api-key");
        assert_eq!(schemes["apiKey"]["in"], "header");
    })
    .await;
}

#[tokio::test]
#[parallel]
async fn every_route_is_documented_and_every_document_path_routed() {
    with_app(|_server, ctx| async move {
        let routed: BTreeSet<(String, String)> = App::routes(&ctx)
            .collect()
            .into_iter()
            .filter(|route| !route.uri.starts_with("/api/docs"))
            // The console's page and files are for browsers, not API routes.
            .filter(|route| !route.uri.starts_with(CONSOLE_PATH))
            .filter(|route| route.uri != FORWARD_AUTH_ALIASES)
            .flat_map(|route| {
                route
                    .actions
                    .iter()
                    .map(|method| (route.uri.clone(), method.to_string().to_lowercase()))
                    .collect::<Vec<_>>()
            })
            // Forward auth answers every method for Envoy; the document shows GET.
            .filter(|(uri, method)| uri != "/auth/verify" || method == "get")
            .collect();
        let document = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let documented: BTreeSet<(String, String)> = document["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, operations)| {
                operations
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(|method| (path.clone(), method.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(!routed.is_empty());
        assert_eq!(routed, documented);
    })
    .await;
}
