//! Schema of authgate: one migration per table, run the same on SQLite and PostgreSQL.
#![allow(elided_lifetimes_in_paths)]
#![allow(clippy::wildcard_imports)]
pub use sea_orm_migration::prelude::*;

mod m20261130_000001_users;
mod m20261130_000002_sessions;
mod m20261130_000003_api_keys;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261130_000001_users::Migration),
            Box::new(m20261130_000002_sessions::Migration),
            Box::new(m20261130_000003_api_keys::Migration),
            // inject-above (do not remove this comment)
        ]
    }
}
