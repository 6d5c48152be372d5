//! Key rotation: an old key points to its successor (`rotated_to`) and keeps
//! working through a grace period; the successor points back (`rotated_from`).
//! Both are plain ids, not foreign keys: pruning an old key leaves its
//! successor's `rotated_from` naming a key that is gone, as an audit trail would.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    RotatedTo,
    RotatedFrom,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        for column in [ApiKeys::RotatedTo, ApiKeys::RotatedFrom] {
            m.alter_table(
                Table::alter()
                    .table(ApiKeys::Table)
                    .add_column(ColumnDef::new(column).uuid().null())
                    .to_owned(),
            )
            .await?;
        }
        // The name passes to the successor while the old key is in its grace
        // period: unique among keys neither revoked nor rotated.
        let db = m.get_connection();
        db.execute_unprepared("DROP INDEX idx_api_keys_user_active_name")
            .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX idx_api_keys_user_current_name \
             ON api_keys (user_id, name) WHERE revoked_at IS NULL AND rotated_to IS NULL",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        db.execute_unprepared("DROP INDEX idx_api_keys_user_current_name")
            .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX idx_api_keys_user_active_name \
             ON api_keys (user_id, name) WHERE revoked_at IS NULL",
        )
        .await?;
        for column in [ApiKeys::RotatedFrom, ApiKeys::RotatedTo] {
            m.alter_table(
                Table::alter()
                    .table(ApiKeys::Table)
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
