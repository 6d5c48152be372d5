//! `key_usage`: how often each key was presented, per UTC hour and outcome.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum KeyUsage {
    Table,
    KeyId,
    Hour,
    Valid,
    RateLimited,
    Expired,
    Revoked,
    Disabled,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    UserId,
}

fn counter(column: KeyUsage) -> ColumnDef {
    ColumnDef::new(column)
        .big_integer()
        .not_null()
        .default(0)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // The primary key serves a key's report (one key, a range of hours) and the
        // flush's upsert-increment (`ON CONFLICT (key_id, hour)`).
        m.create_table(
            Table::create()
                .table(KeyUsage::Table)
                .col(ColumnDef::new(KeyUsage::KeyId).uuid().not_null())
                .col(
                    ColumnDef::new(KeyUsage::Hour)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(counter(KeyUsage::Valid))
                .col(counter(KeyUsage::RateLimited))
                .col(counter(KeyUsage::Expired))
                .col(counter(KeyUsage::Revoked))
                .col(counter(KeyUsage::Disabled))
                .primary_key(Index::create().col(KeyUsage::KeyId).col(KeyUsage::Hour))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk-key_usage-key_id-to-api_keys")
                        .from(KeyUsage::Table, KeyUsage::KeyId)
                        .to(ApiKeys::Table, ApiKeys::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // `usage:prune` deletes by hour alone.
        m.create_index(
            Index::create()
                .name("idx_key_usage_hour")
                .table(KeyUsage::Table)
                .col(KeyUsage::Hour)
                .to_owned(),
        )
        .await?;
        // A user's report (`GET /usage`) finds the user's keys through this index,
        // then each key's hours through the primary key. `GET /keys` uses it too.
        m.create_index(
            Index::create()
                .name("idx_api_keys_user_id")
                .table(ApiKeys::Table)
                .col(ApiKeys::UserId)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("idx_api_keys_user_id")
                .table(ApiKeys::Table)
                .to_owned(),
        )
        .await?;
        m.drop_table(Table::drop().table(KeyUsage::Table).to_owned())
            .await
    }
}
