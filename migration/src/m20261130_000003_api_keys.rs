//! `api_keys`: keys that services present in `x-api-key`, stored as SHA-256 only.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    UserId,
    KeyHash,
    Prefix,
    Name,
    IsActive,
    ExpiresAt,
    LastUsedAt,
    RevokedAt,
    RateLimitRequests,
    RateLimitPerSeconds,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ApiKeys::Table)
                .col(ColumnDef::new(ApiKeys::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(ApiKeys::UserId).uuid().not_null())
                .col(
                    ColumnDef::new(ApiKeys::KeyHash)
                        .string()
                        .not_null()
                        .unique_key(),
                )
                .col(ColumnDef::new(ApiKeys::Prefix).string().not_null())
                .col(ColumnDef::new(ApiKeys::Name).string().not_null())
                .col(
                    ColumnDef::new(ApiKeys::IsActive)
                        .boolean()
                        .not_null()
                        .default(true),
                )
                .col(ColumnDef::new(ApiKeys::ExpiresAt).timestamp_with_time_zone())
                .col(ColumnDef::new(ApiKeys::LastUsedAt).timestamp_with_time_zone())
                .col(ColumnDef::new(ApiKeys::RevokedAt).timestamp_with_time_zone())
                .col(ColumnDef::new(ApiKeys::RateLimitRequests).integer())
                .col(ColumnDef::new(ApiKeys::RateLimitPerSeconds).integer())
                .col(
                    ColumnDef::new(ApiKeys::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ApiKeys::UpdatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk-api_keys-user_id-to-users")
                        .from(ApiKeys::Table, ApiKeys::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // A name is unique among a user's keys that are not revoked; revoked keys keep
        // their row (audit) and free the name. Partial indexes work on both backends.
        m.get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX idx_api_keys_user_active_name \
                 ON api_keys (user_id, name) WHERE revoked_at IS NULL",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ApiKeys::Table).to_owned())
            .await
    }
}
