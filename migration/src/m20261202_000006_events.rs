//! Events and webhooks: `events` is each account's audit log and the webhook
//! outbox; `webhook_endpoints` are where a user wants events sent;
//! `webhook_deliveries` holds one row per attempt to send an event to an
//! endpoint, the pending ones being the work queue. `api_keys` gains
//! `expiry_recorded_at`, set when the `key.expired` event of a key is written,
//! so the periodic sweep finds each expiry once, even after old events are pruned.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Events {
    Table,
    Id,
    UserId,
    Type,
    Data,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    Id,
    UserId,
    Url,
    Events,
    Description,
    Secret,
    Enabled,
    DisabledReason,
    FailingSince,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    EndpointId,
    EventId,
    Attempt,
    Status,
    ResponseStatus,
    Error,
    DurationMs,
    CreatedAt,
    NextAttemptAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    ExpiryRecordedAt,
}

fn timestamp(column: impl IntoIden) -> ColumnDef {
    ColumnDef::new(column)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Events::Table)
                .col(ColumnDef::new(Events::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(Events::UserId).uuid().not_null())
                .col(ColumnDef::new(Events::Type).string().not_null())
                // JSON as text: the same on both backends, never queried inside.
                .col(ColumnDef::new(Events::Data).text().not_null())
                .col(timestamp(Events::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk-events-user_id-to-users")
                        .from(Events::Table, Events::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // `GET /events` pages a user's events newest first by (created_at, id).
        m.create_index(
            Index::create()
                .name("idx_events_user_created")
                .table(Events::Table)
                .col(Events::UserId)
                .col((Events::CreatedAt, IndexOrder::Desc))
                .col((Events::Id, IndexOrder::Desc))
                .to_owned(),
        )
        .await?;
        // `events:prune` deletes by age alone.
        m.create_index(
            Index::create()
                .name("idx_events_created_at")
                .table(Events::Table)
                .col(Events::CreatedAt)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(WebhookEndpoints::Table)
                .col(
                    ColumnDef::new(WebhookEndpoints::Id)
                        .uuid()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(WebhookEndpoints::UserId).uuid().not_null())
                .col(ColumnDef::new(WebhookEndpoints::Url).text().not_null())
                // The subscribed event types, a JSON array of strings.
                .col(ColumnDef::new(WebhookEndpoints::Events).text().not_null())
                .col(ColumnDef::new(WebhookEndpoints::Description).text())
                // `whsec_…`: kept as is, since it must sign every delivery.
                .col(ColumnDef::new(WebhookEndpoints::Secret).string().not_null())
                .col(
                    ColumnDef::new(WebhookEndpoints::Enabled)
                        .boolean()
                        .not_null()
                        .default(true),
                )
                .col(ColumnDef::new(WebhookEndpoints::DisabledReason).text())
                // When the current run of failed attempts began; null after a success.
                .col(ColumnDef::new(WebhookEndpoints::FailingSince).timestamp_with_time_zone())
                .col(timestamp(WebhookEndpoints::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk-webhook_endpoints-user_id-to-users")
                        .from(WebhookEndpoints::Table, WebhookEndpoints::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_webhook_endpoints_user_id")
                .table(WebhookEndpoints::Table)
                .col(WebhookEndpoints::UserId)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(WebhookDeliveries::Table)
                .col(
                    ColumnDef::new(WebhookDeliveries::Id)
                        .uuid()
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(WebhookDeliveries::EndpointId)
                        .uuid()
                        .not_null(),
                )
                .col(ColumnDef::new(WebhookDeliveries::EventId).uuid().not_null())
                .col(
                    ColumnDef::new(WebhookDeliveries::Attempt)
                        .integer()
                        .not_null(),
                )
                // pending | succeeded | failed
                .col(
                    ColumnDef::new(WebhookDeliveries::Status)
                        .string()
                        .not_null(),
                )
                .col(ColumnDef::new(WebhookDeliveries::ResponseStatus).integer())
                .col(ColumnDef::new(WebhookDeliveries::Error).text())
                .col(ColumnDef::new(WebhookDeliveries::DurationMs).integer())
                .col(timestamp(WebhookDeliveries::CreatedAt))
                // Pending: when it is due (or when a claim on it lapses).
                .col(ColumnDef::new(WebhookDeliveries::NextAttemptAt).timestamp_with_time_zone())
                .foreign_key(
                    ForeignKey::create()
                        .name("fk-webhook_deliveries-endpoint_id-to-webhook_endpoints")
                        .from(WebhookDeliveries::Table, WebhookDeliveries::EndpointId)
                        .to(WebhookEndpoints::Table, WebhookEndpoints::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk-webhook_deliveries-event_id-to-events")
                        .from(WebhookDeliveries::Table, WebhookDeliveries::EventId)
                        .to(Events::Table, Events::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // An endpoint's attempts, newest first (`GET /webhooks/{id}/deliveries`).
        m.create_index(
            Index::create()
                .name("idx_webhook_deliveries_endpoint_created")
                .table(WebhookDeliveries::Table)
                .col(WebhookDeliveries::EndpointId)
                .col((WebhookDeliveries::CreatedAt, IndexOrder::Desc))
                .to_owned(),
        )
        .await?;
        // Pruning events cascades to their deliveries.
        m.create_index(
            Index::create()
                .name("idx_webhook_deliveries_event_id")
                .table(WebhookDeliveries::Table)
                .col(WebhookDeliveries::EventId)
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        // The delivery worker claims due pending attempts: only they are indexed.
        db.execute_unprepared(
            "CREATE INDEX idx_webhook_deliveries_due \
             ON webhook_deliveries (next_attempt_at) WHERE status = 'pending'",
        )
        .await?;

        m.alter_table(
            Table::alter()
                .table(ApiKeys::Table)
                .add_column(ColumnDef::new(ApiKeys::ExpiryRecordedAt).timestamp_with_time_zone())
                .to_owned(),
        )
        .await?;
        // The expiry sweep looks only at keys that expire and have no event yet.
        db.execute_unprepared(
            "CREATE INDEX idx_api_keys_expiry_unrecorded \
             ON api_keys (expires_at) WHERE expiry_recorded_at IS NULL",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        db.execute_unprepared("DROP INDEX idx_api_keys_expiry_unrecorded")
            .await?;
        m.alter_table(
            Table::alter()
                .table(ApiKeys::Table)
                .drop_column(ApiKeys::ExpiryRecordedAt)
                .to_owned(),
        )
        .await?;
        for table in [
            WebhookDeliveries::Table.into_iden(),
            WebhookEndpoints::Table.into_iden(),
            Events::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
