//! Users and their devices, as seen by the user themselves and by their clinic's staff.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{Role, StaffRole};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum UserStatus {
    Active,
    /// Left the programme: devices revoked, sessions ended, identifying fields erased.
    Deactivated,
}

/// Who the caller is.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Me {
    pub user_id: Uuid,
    pub device_id: Uuid,
    pub clinic_id: Option<Uuid>,
    pub role: Role,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Device {
    pub id: Uuid,
    pub label: String,
    /// Ed25519 public key, unpadded base64url.
    pub public_key: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A user in a clinic listing: no identifying fields.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct UserSummary {
    pub id: Uuid,
    pub clinic_id: Option<Uuid>,
    pub role: Role,
    pub status: UserStatus,
    pub created_at: DateTime<Utc>,
}

/// A user with identifying fields, for the clinic's staff. Every read is audited.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct UserDetail {
    pub id: Uuid,
    pub clinic_id: Option<Uuid>,
    pub role: Role,
    pub status: UserStatus,
    pub display_name: Option<String>,
    pub phone: Option<String>,
    pub created_at: DateTime<Utc>,
    pub deactivated_at: Option<DateTime<Utc>>,
    pub devices: Vec<Device>,
}

/// Change a staff member's role (clinic admins only; staff roles only).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct RoleChange {
    pub role: StaffRole,
}
