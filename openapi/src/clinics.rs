//! Clinics (tenants) and the staff accounts an operator or clinic admin creates in them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{EnrolleeRole, StaffRole};

/// Create a clinic.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct ClinicCreate {
    /// 1–200 characters, e.g. "Oslo universitetssykehus, Ullevål — infeksjonspoliklinikk".
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// Clinics sharing a network may offer remote peer support to each other's users.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub network: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Clinic {
    pub id: Uuid,
    pub name: String,
    pub network: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Create a staff account (HP or clinic admin) in a clinic. The person finishes setup
/// themselves with the returned one-time setup code.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct StaffCreate {
    pub role: StaffRole,
    /// Login name (e.g. work e-mail), 3–254 characters, case-insensitive.
    #[schema(
        pattern = r"^[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]{3,254}$"
    )]
    pub login: String,
    /// Full name, 1–200 characters. Stored encrypted.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub display_name: String,
    /// Optional phone number. Stored encrypted.
    #[serde(default)]
    #[schema(pattern = r"^\+?(?:[0-9][ -]?){5,15}$")]
    pub phone: Option<String>,
}

/// A created account with its one-time setup code. The code is shown once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct StaffCreated {
    pub user_id: Uuid,
    pub setup_code: String,
    pub setup_code_expires_at: DateTime<Utc>,
}

/// An HP invites a service user or peer of their own clinic.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct InviteCreate {
    pub role: EnrolleeRole,
    /// The person's name as the clinic knows it (optional). Stored encrypted.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub display_name: Option<String>,
    /// Phone number (optional). Stored encrypted.
    #[serde(default)]
    #[schema(pattern = r"^\+?(?:[0-9][ -]?){5,15}$")]
    pub phone: Option<String>,
    /// Hours until the invite expires: 1–720, default 72.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 720)]
    pub expires_in_hours: Option<u32>,
}

/// A created invite. `code` and `qr_payload` are shown once; the server keeps only a hash.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct InviteCreated {
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub role: EnrolleeRole,
    /// 16 Crockford base32 characters in groups of four, e.g. `7K3M-QX9D-2HWT-B8NZ` (80 bits).
    pub code: String,
    /// `<public URL>/join#code=…`: opens the app's join screen with the code filled in (the
    /// code is in the fragment, never sent to a server), for a link or a QR code.
    pub qr_payload: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum InviteStatus {
    Pending,
    Redeemed,
    Expired,
    Revoked,
}

/// An invite as listed to the clinic's staff (never the code).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Invite {
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub role: EnrolleeRole,
    pub status: InviteStatus,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The account created by redeeming it.
    pub redeemed_by: Option<Uuid>,
}
