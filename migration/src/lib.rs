//! Schema of authgate: migrations in order, run the same on SQLite and PostgreSQL.
#![allow(elided_lifetimes_in_paths)]
#![allow(clippy::wildcard_imports)]
pub use sea_orm_migration::prelude::*;

mod m20261130_000001_users;
mod m20261130_000002_sessions;
mod m20261130_000003_api_keys;
mod m20261201_000004_key_usage;
mod m20261201_000005_key_rotation;
mod m20261202_000006_events;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261130_000001_users::Migration),
            Box::new(m20261130_000002_sessions::Migration),
            Box::new(m20261130_000003_api_keys::Migration),
            Box::new(m20261201_000004_key_usage::Migration),
            Box::new(m20261201_000005_key_rotation::Migration),
            Box::new(m20261202_000006_events::Migration),
            // inject-above (do not remove this comment)
        ]
    }
}
