//! Append-only migrations written with the schema DSL and string names. They never import
//! today's entities, so an old migration compiles forever. Add a new file; never edit one
//! that has shipped.

use sea_orm_migration::prelude::*;

mod m20261124_000001_platform;
mod m20261124_000002_supervision;
mod m20261124_000003_delivery;
mod m20261124_000004_push;
mod m20261124_000005_introductions;
mod m20261124_000006_escalation;
mod m20261206_000007_web_push;
mod m20261206_000008_rosters;
mod m20261207_000009_escalation_authority;
mod m20261207_000010_unread_ciphertext;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_platform::Migration),
            Box::new(m20261124_000002_supervision::Migration),
            Box::new(m20261124_000003_delivery::Migration),
            Box::new(m20261124_000004_push::Migration),
            Box::new(m20261124_000005_introductions::Migration),
            Box::new(m20261124_000006_escalation::Migration),
            Box::new(m20261206_000007_web_push::Migration),
            Box::new(m20261206_000008_rosters::Migration),
            Box::new(m20261207_000009_escalation_authority::Migration),
            Box::new(m20261207_000010_unread_ciphertext::Migration),
        ]
    }
}
