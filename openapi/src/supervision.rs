//! Supervision: which HPs supervise which peer supporters. The assignment decides who may be
//! a member of a peer's supervision conversation.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Assign an HP of the peer's clinic as one of the peer's supervisors.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct SupervisorAssign {
    pub hp_id: Uuid,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct SupervisorAssignment {
    pub clinic_id: Uuid,
    pub peer_id: Uuid,
    pub hp_id: Uuid,
    pub assigned_by: Uuid,
    pub assigned_at: DateTime<Utc>,
}
