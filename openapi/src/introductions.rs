//! Matching and introductions: peer profiles, service users' needs, ranked suggestions,
//! pseudonymous introductions, signed consents to reveal identity or invite the HP, blocks
//! and boundary reports.
//!
//! Two audiences see introductions through different shapes. The clinic's HPs see
//! [`IntroductionDetail`] (user ids, outcomes, reports). The two parties see only
//! [`PartyIntroduction`]: per-introduction aliases and the HP's blurb — never a user id,
//! name, phone, clinic or anything used in another introduction. A decline shows to the
//! other party exactly as an expiry does (`ended`, and only once the proposal would have
//! expired).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------
// Vocabulary

/// A topic of the clinic's editable list (`key` is stable, compared across clinics of a
/// network; `label` is what HPs read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Topic {
    /// 1–40 of `a-z`, `0-9`, `_`.
    #[schema(pattern = "^[a-z0-9_]{1,40}$", example = "newly_diagnosed")]
    pub key: String,
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$",
        example = "Newly diagnosed"
    )]
    pub label: String,
}

/// Replace the clinic's topic list (1–100 topics, keys unique).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct TopicList {
    #[schema(min_items = 1, max_items = 100)]
    pub topics: Vec<Topic>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum Gender {
    Woman,
    Man,
    NonBinary,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum AgeBand {
    #[serde(rename = "18-29")]
    From18To29,
    #[serde(rename = "30-39")]
    From30To39,
    #[serde(rename = "40-49")]
    From40To49,
    #[serde(rename = "50-59")]
    From50To59,
    #[serde(rename = "60+")]
    From60,
}

// ---------------------------------------------------------------------------------------
// Peer profiles

/// What an HP keeps about a peer supporter. Absent fields on a first write take their
/// defaults (no languages, no topics, capacity 3, not remote).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct PeerProfileUpdate {
    /// ISO 639-1 codes, e.g. `nb`, `nn`, `en`, `so`, `ti` (at most 10).
    #[serde(default)]
    #[schema(schema_with = language_codes)]
    pub languages: Vec<String>,
    pub gender: Option<Gender>,
    pub age_band: Option<AgeBand>,
    /// A coarse region (county), 1–100 characters.
    #[schema(
        max_length = 100,
        pattern = r"^(?:[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*)?$"
    )]
    pub region: Option<String>,
    #[schema(maximum = 80)]
    pub years_since_diagnosis: Option<u16>,
    /// Topic keys from the clinic's list (at most 30).
    #[serde(default)]
    #[schema(schema_with = topic_keys)]
    pub topics: Vec<String>,
    /// Offers support to service users of other clinics of the same network.
    #[serde(default)]
    pub remote_support: bool,
    /// Most active introductions at once (0–50); absent keeps the current value.
    #[schema(maximum = 50)]
    pub capacity: Option<u16>,
    /// When the peer is usually available, e.g. "weekday evenings" (at most 200 characters).
    #[schema(
        max_length = 200,
        pattern = r"^(?:[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*)?$"
    )]
    pub availability: Option<String>,
}

/// What a peer supporter may change about themselves.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct OwnPeerProfileUpdate {
    #[schema(maximum = 50)]
    pub capacity: Option<u16>,
    #[schema(
        max_length = 200,
        pattern = r"^(?:[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*)?$"
    )]
    pub availability: Option<String>,
    /// Pause: no new introductions are suggested or proposed; existing ones go on.
    pub paused: Option<bool>,
}

/// Approve a peer supporter after training.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct PeerApproval {
    /// The day the training was completed.
    pub trained_on: NaiveDate,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct PeerProfile {
    pub peer_id: Uuid,
    pub clinic_id: Uuid,
    pub approved: bool,
    pub trained_on: Option<NaiveDate>,
    pub approved_at: Option<DateTime<Utc>>,
    pub approved_by: Option<Uuid>,
    pub languages: Vec<String>,
    pub gender: Option<Gender>,
    pub age_band: Option<AgeBand>,
    pub region: Option<String>,
    pub years_since_diagnosis: Option<u16>,
    pub topics: Vec<String>,
    pub remote_support: bool,
    pub capacity: u16,
    pub availability: Option<String>,
    pub paused: bool,
    /// Introductions proposed, active or paused right now.
    pub active_introductions: u32,
    pub updated_at: DateTime<Utc>,
}

// ---------------------------------------------------------------------------------------
// Needs and suggestions

/// A service user's needs and preferences, in the peer profiles' vocabulary.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Needs {
    /// Languages the user is comfortable in (ISO 639-1, at most 10).
    #[serde(default)]
    #[schema(schema_with = language_codes)]
    pub languages: Vec<String>,
    pub preferred_gender: Option<Gender>,
    #[serde(default)]
    #[schema(max_items = 5)]
    pub preferred_age_bands: Vec<AgeBand>,
    #[schema(
        max_length = 100,
        pattern = r"^(?:[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*)?$"
    )]
    pub region: Option<String>,
    /// Topic keys from the clinic's list (at most 30).
    #[serde(default)]
    #[schema(schema_with = topic_keys)]
    pub topics: Vec<String>,
    /// Accepts a peer supporter from another clinic of the network (chat only).
    #[serde(default = "yes")]
    pub accepts_remote: bool,
}

fn yes() -> bool {
    true
}

/// At most 10 ISO 639-1 codes (two letters, any case; stored lower-case).
fn language_codes() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[A-Za-z]{2}$"))
                .examples(["nb"]),
        )
        .max_items(Some(10))
        .build()
}

/// At most 30 keys from the clinic's topic list.
fn topic_keys() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[a-z0-9_]{1,40}$"))
                .examples(["newly_diagnosed"]),
        )
        .max_items(Some(30))
        .build()
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct NeedsRecord {
    pub user_id: Uuid,
    #[serde(flatten)]
    pub needs: Needs,
    pub updated_by: Uuid,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum Criterion {
    Language,
    Preference,
    Topics,
    Load,
    /// Same region, other region, or remote (another clinic of the network).
    Region,
}

/// One criterion's share of a suggestion's score.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct ScorePart {
    pub criterion: Criterion,
    pub points: u32,
    pub max_points: u32,
    /// Why, in words an HP reads, e.g. "speaks nb (wanted: nb, en)".
    pub explanation: String,
}

/// A ranked peer for a service user. Peers at capacity, paused, not approved, in an open
/// introduction with the user, or declined or blocked by the user are never suggested.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Suggestion {
    pub rank: u32,
    pub peer_id: Uuid,
    /// The peer's home clinic (another clinic of the network when `remote`).
    pub clinic_id: Uuid,
    pub remote: bool,
    /// 0–100, the sum of `parts`.
    pub score: u32,
    pub parts: Vec<ScorePart>,
    pub profile: PeerProfile,
}

// ---------------------------------------------------------------------------------------
// Introductions (HP side)

/// Propose an introduction. Blurbs are short and must not identify anyone (the HP's
/// responsibility; the server rejects digits runs that look like phone numbers).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct IntroductionCreate {
    /// Client-generated id: proposing twice with one id creates one introduction.
    pub client_id: Uuid,
    pub service_user_id: Uuid,
    pub peer_id: Uuid,
    /// What the service user reads about the peer (1–500 characters).
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub blurb_for_service_user: String,
    /// What the peer reads about the service user (1–500 characters).
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub blurb_for_peer: String,
    /// Hours until an unanswered proposal expires (1–720, default 168).
    #[schema(minimum = 1, maximum = 720)]
    pub expires_in_hours: Option<u32>,
}

/// Close this introduction and propose the service user to another peer, without blame.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Rematch {
    pub client_id: Uuid,
    pub peer_id: Uuid,
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub blurb_for_service_user: String,
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub blurb_for_peer: String,
    #[schema(minimum = 1, maximum = 720)]
    pub expires_in_hours: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum IntroductionState {
    /// Waiting for both parties.
    Proposed,
    /// Both accepted: the conversation is open.
    Active,
    /// Paused by a party or the HP: no messages until resumed.
    Paused,
    /// Declined, expired, closed, re-matched or blocked (see `outcome` on the HP side).
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum Response {
    Pending,
    Accepted,
    Declined,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum Party {
    ServiceUser,
    Peer,
}

/// How an introduction ended (HP side only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum IntroductionOutcome {
    DeclinedByServiceUser,
    DeclinedByPeer,
    Expired,
    ClosedByServiceUser,
    ClosedByPeer,
    ClosedByHp,
    Rematched,
    BlockedByServiceUser,
    BlockedByPeer,
}

/// Who has granted what, as recorded by the server (the clients verify the signatures).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct ConsentSummary {
    pub service_user_reveal: bool,
    pub peer_reveal: bool,
    pub service_user_invite_hp: bool,
    pub peer_invite_hp: bool,
}

/// An introduction as the clinic's HPs see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct IntroductionDetail {
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub introduced_by: Uuid,
    pub service_user_id: Uuid,
    pub peer_id: Uuid,
    pub peer_clinic_id: Uuid,
    pub state: IntroductionState,
    pub service_user_response: Response,
    pub peer_response: Response,
    pub outcome: Option<IntroductionOutcome>,
    pub paused_by: Option<Party>,
    pub service_user_alias: String,
    pub peer_alias: String,
    pub blurb_for_service_user: String,
    pub blurb_for_peer: String,
    pub conversation_id: Option<Uuid>,
    pub consents: ConsentSummary,
    /// Boundary reports not yet marked as handled.
    pub open_reports: u32,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Set when the introduction was closed to re-match: the new introduction.
    pub rematched_to: Option<Uuid>,
}

// ---------------------------------------------------------------------------------------
// Introductions (party side)

/// An introduction as one of its two parties sees it: aliases and the blurb only.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct PartyIntroduction {
    pub id: Uuid,
    pub role: Party,
    pub my_alias: String,
    pub counterpart_alias: String,
    /// The HP's words about the counterpart.
    pub blurb: String,
    pub state: IntroductionState,
    pub my_response: Response,
    /// Whether the counterpart accepted (a decline is never shown; see the module docs).
    pub counterpart_accepted: bool,
    /// Who paused, if paused: `true` when it was me (only I or the HP can resume).
    pub paused_by_me: Option<bool>,
    /// Set when both accepted and a party opened the conversation.
    pub conversation_id: Option<Uuid>,
    pub blocked_by_me: bool,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// Device public keys (base64url) of the introducing HP, listed only once both parties
    /// granted `invite_hp`: the clients admit exactly these devices to the group.
    pub hp_device_keys: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum ConsentScope {
    /// Reveal identity cards to each other.
    Reveal,
    /// Let the introducing HP join the conversation.
    InviteHp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum ConsentAction {
    Grant,
    Withdraw,
}

/// A consent statement signed by the party's device with its leaf signature key in the
/// introduction's group (see `signed::consent_statement`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct ConsentUpload {
    pub scope: ConsentScope,
    pub action: ConsentAction,
    /// Unix seconds, within 10 minutes of the server's clock.
    pub issued_at: i64,
    /// The signing leaf's public signature key, base64url.
    #[schema(
        min_length = 43,
        max_length = 43,
        pattern = r"^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$"
    )]
    pub signature_key: String,
    /// Ed25519 signature over `signed::consent_statement`, base64url.
    #[schema(
        min_length = 86,
        max_length = 86,
        pattern = r"^[A-Za-z0-9_-]{85}[AQgw]$"
    )]
    pub signature: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct ConsentRecord {
    pub id: Uuid,
    /// `true` for statements by the caller's side.
    pub mine: bool,
    pub scope: ConsentScope,
    pub action: ConsentAction,
    pub issued_at: i64,
    pub signature_key: String,
    pub signature: String,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum BoundaryCategory {
    DatingRequest,
    FriendshipBeyondRole,
    ContactOutsideApp,
    MoneyOrFavours,
    Disrespect,
    Other,
}

/// Tell the clinic's HPs about a boundary problem (e.g. a dating request). The note is
/// encrypted at rest and shown only to the clinic's HPs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct BoundaryReportCreate {
    pub client_id: Uuid,
    pub category: BoundaryCategory,
    /// At most 1000 characters.
    #[schema(
        max_length = 1000,
        pattern = r"^(?:[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*)?$"
    )]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct BoundaryReport {
    pub id: Uuid,
    pub introduction_id: Uuid,
    pub reported_by: Party,
    pub category: BoundaryCategory,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
    pub handled_at: Option<DateTime<Utc>>,
    pub handled_by: Option<Uuid>,
}
