//! Operations: what keeps the service answering when its database, its clients or
//! its deployment misbehave (database health, the HTTP server's bounds, start-up
//! migrations across instances), and what lets an operator see it (the access
//! log, metrics) and reach it safely (TLS).

pub mod access_log;
pub mod database;
pub mod edge;
pub mod metrics;
pub mod migrations;
pub mod server;
pub mod tls;
