//! Operations: what keeps the service answering when its database, its clients or
//! its deployment misbehave (database health, the HTTP server's bounds, start-up
//! migrations across instances).

pub mod database;
pub mod migrations;
pub mod server;
