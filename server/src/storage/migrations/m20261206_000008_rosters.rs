//! Escalation that holds out of hours: shifts on the clinic's clock, the out-of-hours
//! on-call list and contact, the clinic's time zone and follow-up interval; per flag,
//! whether it was raised out of hours and whether anybody was alerted; flag wake-ups owed
//! to devices, written with the change that owes them.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000008_rosters"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("escalation_shifts")
                .col(uuid("id").primary_key())
                .col(uuid("clinic_id"))
                .col(uuid("hp_id"))
                .col(integer("level"))
                .col(integer("days"))
                .col(integer("start_minute"))
                .col(integer("end_minute"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("escalation_shifts_clinic")
                .table("escalation_shifts")
                .col("clinic_id")
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("escalation_on_call")
                .col(uuid("clinic_id"))
                .col(uuid("hp_id"))
                .col(integer("position"))
                .primary_key(Index::create().col("clinic_id").col("hp_id"))
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("flag_wakeups")
                .col(uuid("id").primary_key())
                .col(uuid("device_id"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("due_at"))
                .col(integer("attempts"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("flag_wakeups_due")
                .table("flag_wakeups")
                .col("due_at")
                .take(),
        )
        .await?;
        // One column per statement: SQLite's ALTER TABLE adds one column at a time.
        let settings = [
            string_len("time_zone", 64).default("Europe/Oslo").take(),
            integer("followup_minutes").default(120).take(),
            string_len_null("ooh_phone", 50),
            string_len_null("ooh_label_nb", 200),
            string_len_null("ooh_label_nn", 200),
            string_len_null("ooh_label_en", 200),
        ];
        for mut column in settings {
            m.alter_table(
                Table::alter()
                    .table("escalation_settings")
                    .add_column(&mut column)
                    .take(),
            )
            .await?;
        }
        for mut column in [
            boolean("out_of_hours").default(false).take(),
            boolean("asked").default(true).take(),
        ] {
            m.alter_table(Table::alter().table("flags").add_column(&mut column).take())
                .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for c in ["out_of_hours", "asked"] {
            m.alter_table(Table::alter().table("flags").drop_column(c).take())
                .await?;
        }
        for c in [
            "time_zone",
            "followup_minutes",
            "ooh_phone",
            "ooh_label_nb",
            "ooh_label_nn",
            "ooh_label_en",
        ] {
            m.alter_table(
                Table::alter()
                    .table("escalation_settings")
                    .drop_column(c)
                    .take(),
            )
            .await?;
        }
        m.drop_table(Table::drop().table("flag_wakeups").take())
            .await?;
        m.drop_table(Table::drop().table("escalation_on_call").take())
            .await?;
        m.drop_table(Table::drop().table("escalation_shifts").take())
            .await
    }
}
