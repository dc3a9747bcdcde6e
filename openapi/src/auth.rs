//! Enrollment and authentication: invites, staff setup, password + TOTP, device
//! challenge–response, token refresh. Device public keys and signatures travel as unpadded
//! base64url.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::Role;

/// A device's Ed25519 public key being registered, with a label the user recognises.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct DeviceRegistration {
    /// Ed25519 public key, 32 bytes, unpadded base64url. It must decode to a curve point
    /// (`validation_failed` otherwise, which a pattern cannot express).
    #[schema(min_length = 43, max_length = 43, pattern = r"^[A-Za-z0-9_-]{43}$")]
    pub public_key: String,
    /// 1–64 characters, e.g. "Android phone". Shown only to the user and their clinic.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub label: String,
}

/// Tokens for one device session.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Session {
    pub user_id: Uuid,
    pub device_id: Uuid,
    /// Absent for operators, who belong to no clinic.
    pub clinic_id: Option<Uuid>,
    pub role: Role,
    /// Always `Bearer`.
    pub token_type: String,
    /// Signed JWT (EdDSA), valid for at most 15 minutes.
    pub access_token: String,
    pub access_token_expires_at: DateTime<Utc>,
    /// Opaque, single use: each refresh returns a new one. Presenting a spent one revokes
    /// the whole session.
    pub refresh_token: String,
    pub refresh_token_expires_at: DateTime<Utc>,
}

/// Redeem an invite on a new device.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct InviteRedeem {
    /// The code as typed (case, dashes and spaces do not matter) or from the QR payload.
    #[schema(min_length = 16, max_length = 40, pattern = r"^[0-9A-Za-z -]+$")]
    pub code: String,
    pub device: DeviceRegistration,
}

/// First step of staff setup: choose a password, receive the TOTP secret to enrol.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct StaffSetupBegin {
    #[schema(min_length = 16, max_length = 40, pattern = r"^[0-9A-Za-z -]+$")]
    pub setup_code: String,
    /// 12–256 characters.
    #[schema(min_length = 12, max_length = 256)]
    pub password: String,
}

/// TOTP provisioning for an authenticator app (SHA-1, 6 digits, 30 s).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct TotpProvisioning {
    /// Base32 secret, for manual entry.
    pub totp_secret: String,
    /// `otpauth://` URI, for a QR code.
    pub otpauth_uri: String,
}

/// Second step of staff setup: prove the authenticator works and register the first device.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct StaffSetupComplete {
    #[schema(min_length = 16, max_length = 40, pattern = r"^[0-9A-Za-z -]+$")]
    pub setup_code: String,
    #[schema(pattern = r"^[0-9]{6}$")]
    pub totp_code: String,
    pub device: DeviceRegistration,
}

/// Staff login with password and TOTP, from a registered or a new device.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct PasswordLogin {
    #[schema(
        pattern = r"^[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]{3,254}$"
    )]
    pub login: String,
    #[schema(min_length = 1, max_length = 256)]
    pub password: String,
    #[schema(pattern = r"^[0-9]{6}$")]
    pub totp_code: String,
    /// The device logging in; registered to the account if its key is new.
    pub device: DeviceRegistration,
}

/// Ask for a login challenge for a registered device.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct ChallengeRequest {
    pub device_id: Uuid,
}

/// A one-time nonce to sign with the device key, valid for a short time.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Challenge {
    pub challenge_id: Uuid,
    /// 32 random bytes, unpadded base64url.
    pub nonce: String,
    pub expires_at: DateTime<Utc>,
}

/// Answer a challenge: an Ed25519 signature over `signed::login_challenge_message`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct DeviceLogin {
    pub challenge_id: Uuid,
    pub device_id: Uuid,
    /// 64-byte signature, unpadded base64url.
    #[schema(min_length = 86, max_length = 86, pattern = r"^[A-Za-z0-9_-]{86}$")]
    pub signature: String,
}

/// Exchange a refresh token for a new session (the presented token is spent).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct RefreshRequest {
    #[schema(min_length = 1, max_length = 200)]
    pub refresh_token: String,
}

/// End the session a refresh token belongs to.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct LogoutRequest {
    #[schema(min_length = 1, max_length = 200)]
    pub refresh_token: String,
}
