//! Tables owned by escalation and supervision follow-up.

macro_rules! table {
    ($module:ident, $table:literal, { $($body:tt)* }) => {
        pub mod $module {
            use sea_orm::entity::prelude::*;

            #[sea_orm::model]
            #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
            #[sea_orm(table_name = $table)]
            pub struct Model {
                $($body)*
            }

            impl ActiveModelBehavior for ActiveModel {}
        }
    };
}

table!(escalation_key, "escalation_keys", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub device_id: Uuid,
    pub public_key: Vec<u8>,
    pub signature: Vec<u8>,
    pub created_at: DateTimeUtc,
    /// The clinic authority's signature over `signed::escalation_certificate_message`.
    pub certificate: Option<Vec<u8>>,
});

table!(authority, "escalation_authorities", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub clinic_id: Uuid,
    pub public_key: Vec<u8>,
    pub created_by: Uuid,
    pub created_at: DateTimeUtc,
});

table!(settings, "escalation_settings", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub clinic_id: Uuid,
    pub imminent_minutes: i32,
    pub urgent_minutes: i32,
    pub concerning_minutes: i32,
    pub routine_hour: i32,
    pub notice_nb: String,
    pub notice_nn: String,
    pub notice_en: String,
    pub updated_at: DateTimeUtc,
    pub time_zone: String,
    pub followup_minutes: i32,
    pub ooh_phone: Option<String>,
    pub ooh_label_nb: Option<String>,
    pub ooh_label_nn: Option<String>,
    pub ooh_label_en: Option<String>,
});

table!(shift, "escalation_shifts", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub hp_id: Uuid,
    pub level: i32,
    /// Bit i set: the shift starts on `ShiftDay` number i (Mon = 0 … Sun = 6, holiday = 7).
    pub days: i32,
    pub start_minute: i32,
    pub end_minute: i32,
});

table!(on_call, "escalation_on_call", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub clinic_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub hp_id: Uuid,
    pub position: i32,
});

table!(roster, "escalation_roster", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub clinic_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub hp_id: Uuid,
    pub level: i32,
});

table!(flag, "flags", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub conversation_id: Uuid,
    pub introduction_id: Option<Uuid>,
    pub client_id: Uuid,
    pub kind: String,
    pub category: String,
    pub severity: String,
    pub severity_rank: i32,
    pub status: String,
    pub raised_by: Uuid,
    pub raised_device: Uuid,
    pub subject_id: Uuid,
    pub peer_id: Option<Uuid>,
    pub level: i32,
    pub deadline_at: DateTimeUtc,
    pub assigned_to: Option<Uuid>,
    pub acknowledged_by: Option<Uuid>,
    pub acknowledged_at: Option<DateTimeUtc>,
    pub outcome: Option<String>,
    pub resolved_by: Option<Uuid>,
    pub resolved_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub out_of_hours: bool,
    pub asked: bool,
});

table!(excerpt, "flag_excerpts", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub flag_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub device_id: Uuid,
    pub public_key: Vec<u8>,
    pub enc: Vec<u8>,
    pub ciphertext: Vec<u8>,
});

table!(event, "flag_events", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub flag_id: Uuid,
    pub at: DateTimeUtc,
    pub kind: String,
    pub actor: Option<Uuid>,
    pub level: Option<i32>,
    pub note_enc: Option<Vec<u8>>,
    pub assigned_to: Option<Uuid>,
    pub outcome: Option<String>,
});

table!(crisis_resource, "crisis_resources", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub clinic_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub locale: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub position: i32,
    pub label: String,
    pub phone: String,
    pub description: Option<String>,
});

table!(debrief, "debriefs", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub client_id: Uuid,
    pub peer_id: Uuid,
    pub introduction_id: Option<Uuid>,
    pub severity: String,
    pub status: String,
    pub deadline_at: DateTimeUtc,
    pub acknowledged_by: Option<Uuid>,
    pub acknowledged_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
});

table!(consultation, "consultations", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub client_id: Uuid,
    pub peer_id: Uuid,
    pub date: Date,
    pub duration_minutes: i32,
    pub kind: String,
    pub created_at: DateTimeUtc,
});

table!(lease, "job_leases", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub holder: String,
    pub expires_at: DateTimeUtc,
});
