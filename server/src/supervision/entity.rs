//! The `supervision_assignments` table.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "supervision_assignments")]
pub struct Model {
    pub clinic_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub peer_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub hp_id: Uuid,
    pub assigned_by: Uuid,
    pub assigned_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
