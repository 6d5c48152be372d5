//! A bare axum "hello" on 127.0.0.1:$PORT (default 3301), tokio's default
//! runtime (one worker per core): the most a route can do on this machine,
//! for bench/run to measure authgate against.

use axum::{routing::get, Router};

#[tokio::main]
async fn main() {
    let port = std::env::var("PORT").unwrap_or_else(|_| "3301".into());
    let app = Router::new().route("/", get(|| async { "hello" }));
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}"))
        .await
        .expect("bind the port");
    axum::serve(listener, app).await.expect("serve");
}
