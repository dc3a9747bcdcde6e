//! Escalation: risk flags raised from a conversation with an excerpt sealed (HPKE, RFC 9180)
//! to the HP devices that may have to act; the clinic's ladder of responders; the HP queue;
//! crisis resources; debrief requests and the consultation log.
//!
//! The server stores and routes a flag but never holds a key that opens its excerpt: each
//! sealed copy is addressed to one HP device's escalation key, which that device publishes
//! signed with its device key (`signed::escalation_key_message`).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Publish this HP device's escalation key (replaces the previous one).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct EscalationKeyUpload {
    /// X25519 public key (32 bytes), base64url.
    #[schema(
        min_length = 43,
        max_length = 43,
        pattern = r"^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$"
    )]
    pub public_key: String,
    /// The device's Ed25519 signature over `signed::escalation_key_message`, base64url.
    #[schema(
        min_length = 86,
        max_length = 86,
        pattern = r"^[A-Za-z0-9_-]{85}[AQgw]$"
    )]
    pub signature: String,
}

/// A device an excerpt may be sealed to. A raising client seals only to keys whose
/// `certificate` verifies under the clinic's escalation authority it pinned (from the invite
/// link or on first use); the server's word that a device is a responder is not enough.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct EscalationRecipient {
    /// The HP device.
    pub device_id: Uuid,
    /// The HP device's Ed25519 public key, base64url (verifies `signature`).
    pub device_key: String,
    /// X25519 public key, base64url.
    pub public_key: String,
    pub signature: String,
    /// The clinic's escalation authority's Ed25519 signature over
    /// `signed::escalation_certificate_message(clinic, device_id, public_key)`, base64url;
    /// absent until a clinic admin certified this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

/// A clinic's escalation authority: the Ed25519 key (held on a clinic admin's device) that
/// certifies which HP devices may read excerpts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct EscalationAuthority {
    pub clinic_id: Uuid,
    /// Ed25519 public key, base64url; absent while the clinic has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
}

/// Set the clinic's escalation authority (once; a clinic admin's device keeps the secret).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct EscalationAuthorityCreate {
    /// Ed25519 public key (32 bytes), base64url.
    #[schema(
        min_length = 43,
        max_length = 43,
        pattern = r"^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$"
    )]
    pub public_key: String,
}

/// An HP device's escalation key as a clinic admin reviews it for certification.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct EscalationKeyInfo {
    pub device_id: Uuid,
    pub user_id: Uuid,
    pub display_name: String,
    pub device_label: String,
    /// X25519 public key, base64url.
    pub public_key: String,
    /// The device's signature over `signed::escalation_key_message`, base64url.
    pub signature: String,
    /// The device's Ed25519 public key, base64url.
    pub device_key: String,
    pub published_at: DateTime<Utc>,
    /// Whether the current key carries a certificate by the clinic's authority.
    pub certified: bool,
}

/// A clinic admin's certificate for one HP device's current escalation key.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct EscalationCertificateUpload {
    /// The key being certified (must be the device's current key), base64url.
    #[schema(
        min_length = 43,
        max_length = 43,
        pattern = r"^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$"
    )]
    pub public_key: String,
    /// The authority's Ed25519 signature over `signed::escalation_certificate_message`.
    #[schema(
        min_length = 86,
        max_length = 86,
        pattern = r"^[A-Za-z0-9_-]{85}[AQgw]$"
    )]
    pub signature: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum RiskCategory {
    SelfHarm,
    SuicideRisk,
    HarmToOthers,
    MedicalUrgency,
    Safeguarding,
    BoundaryViolation,
    Other,
}

/// Ordered from most to least urgent.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum Severity {
    Imminent,
    Urgent,
    Concerning,
    Routine,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum FlagKind {
    /// A peer supporter's flag with a category and severity of their choosing.
    Flag,
    /// A service user's "I need help now" (category other, severity imminent).
    HelpNow,
}

/// One sealed copy of the excerpt, for one recipient device.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct SealedExcerpt {
    /// The recipient's HPKE public key, base64url (must be a current escalation key).
    #[schema(
        min_length = 43,
        max_length = 43,
        pattern = r"^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$"
    )]
    pub public_key: String,
    /// HPKE encapsulated key, base64url.
    #[schema(
        min_length = 2,
        max_length = 342,
        pattern = r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
    )]
    pub enc: String,
    /// HPKE ciphertext of the excerpt, base64url (at most 256 KiB).
    #[schema(
        min_length = 2,
        max_length = 349526,
        pattern = r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
    )]
    pub ciphertext: String,
}

/// Raise a flag on a conversation (its members only).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct FlagCreate {
    /// Client-generated: raising twice with one id stores one flag.
    pub client_id: Uuid,
    pub kind: FlagKind,
    /// Required for `flag`; preset for `help_now`.
    pub category: Option<RiskCategory>,
    pub severity: Option<Severity>,
    /// Sealed copies, one per recipient device from `escalation-recipients` (at most 200).
    #[schema(max_items = 200)]
    pub excerpts: Vec<SealedExcerpt>,
    /// The raiser's language, for the wording of the in-conversation notice.
    pub locale: Option<Locale>,
    /// Who is at risk, in an introduction. Default: the raiser for `help_now`; for a `flag`
    /// the other party (a peer's flag is about the service user, a service user's flag is
    /// about the peer); an HP in the conversation names the party. Ignored in supervision
    /// conversations (the peer supporter is the subject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<FlagParty>,
}

/// A party of an introduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum FlagParty {
    ServiceUser,
    Peer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum FlagStatus {
    Open,
    Acknowledged,
    Resolved,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum FlagOutcome {
    ContactedThePerson,
    ReferredToEmergencyServices,
    FollowUpBooked,
    FalseAlarm,
    Other,
}

/// What the raiser learns: the flag is stored, and what to tell the conversation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct FlagReceipt {
    pub id: Uuid,
    pub status: FlagStatus,
    pub created_at: DateTime<Utc>,
    /// What to tell the conversation, in the raiser's locale when known: the clinic's
    /// wording that a clinician was asked to check in when somebody was alerted; when nobody
    /// could be (no responder at any level), a plain "received, not yet seen" wording
    /// instead. Clients always send it.
    pub notice: String,
    /// Whether at least one clinician was alerted when the flag was stored. `false` means it
    /// waits in the queue with nobody alerted yet: never tell the person somebody was asked.
    pub asked: bool,
    /// Set when nobody was on duty at the clinic (out of hours): the service the clinic
    /// points people to meanwhile, e.g. the legevakt.
    pub out_of_hours: Option<CrisisResource>,
}

/// What the person who raised a flag may know about it: where it stands, never who reads
/// it or what they wrote.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct FlagProgress {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub kind: FlagKind,
    /// `open`: received, not yet acknowledged; `acknowledged`: a clinician has taken it on;
    /// `resolved`: followed up.
    pub status: FlagStatus,
    pub created_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// Whether at least one clinician was alerted when it was stored.
    pub asked: bool,
    /// Set when it was raised out of hours: the service the clinic points people to.
    pub out_of_hours: Option<CrisisResource>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum EventKind {
    Raised,
    Escalated,
    /// Still unacknowledged at the top of the ladder: its responders were alerted again.
    Realerted,
    /// Acknowledged but not resolved within the follow-up time: its responders reminded.
    Overdue,
    Acknowledged,
    Note,
    Reassigned,
    Resolved,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct FlagEvent {
    pub at: DateTime<Utc>,
    pub kind: EventKind,
    pub actor: Option<Uuid>,
    /// The ladder level after an escalation (0 on duty now, or the out-of-hours on-call HPs
    /// when nobody is, and the peer's supervisors; 1 next responders; 2 every HP of the
    /// clinic; 3 the clinic admins, re-alerted until someone acknowledges).
    pub level: Option<u8>,
    pub note: Option<String>,
    pub assigned_to: Option<Uuid>,
    pub outcome: Option<FlagOutcome>,
}

/// A flag in an HP's queue.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Flag {
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub conversation_id: Uuid,
    /// The conversation's MLS group id (base64url): excerpt stamps must name it.
    pub group_id: String,
    pub introduction_id: Option<Uuid>,
    pub kind: FlagKind,
    pub category: RiskCategory,
    pub severity: Severity,
    pub status: FlagStatus,
    /// Who raised it (a peer supporter or the service user).
    pub raised_by: Uuid,
    /// The person at risk (their identity is a separate, audited read).
    pub subject_id: Uuid,
    pub level: u8,
    /// Open: when the current level's time to acknowledge runs out (at the top level, when
    /// it is alerted again). Acknowledged: when its responders are reminded that it is not
    /// resolved yet.
    pub deadline_at: DateTime<Utc>,
    /// Raised while nobody was on duty (routed to the out-of-hours on-call HPs).
    pub out_of_hours: bool,
    pub assigned_to: Option<Uuid>,
    pub acknowledged_by: Option<Uuid>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub outcome: Option<FlagOutcome>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Whether the caller is one of the flag's responders now.
    pub mine: bool,
}

/// A flag with its history and the caller device's sealed excerpt.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct FlagDetail {
    #[serde(flatten)]
    pub flag: Flag,
    pub events: Vec<FlagEvent>,
    /// The copy sealed to the calling device's escalation key, if any.
    pub excerpt: Option<SealedExcerpt>,
}

/// The person at risk, for the clinician who must reach them (audited).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct SubjectIdentity {
    pub user_id: Uuid,
    pub clinic_id: Option<Uuid>,
    pub display_name: Option<String>,
    pub phone: Option<String>,
}

/// Why the clinician needs the flagged person's identity. Kept with the audit entry of the
/// read (sealed, as it may itself name someone).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct SubjectRequest {
    /// 1–500 characters, not blank, e.g. "Calling her back: the excerpt mentions tonight".
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct FlagNote {
    /// At most 2000 characters; encrypted at rest.
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub note: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct FlagReassign {
    /// An HP of the flag's clinic.
    pub hp_id: Uuid,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct FlagResolve {
    pub outcome: FlagOutcome,
    #[schema(
        max_length = 2000,
        pattern = r"^(?:[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*)?$"
    )]
    pub note: Option<String>,
}

/// The clinic's escalation roster and deadlines.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct EscalationSettings {
    /// HPs always on duty (at any hour): the first responders with the peer's supervisors.
    /// Clinics with opening hours use `shifts` instead.
    pub on_duty: Vec<Uuid>,
    /// HPs always next responders, when the on-duty HPs do not acknowledge in time.
    pub next_responders: Vec<Uuid>,
    /// Recurring shifts in `time_zone`: who is on duty (or next responder) when. Nobody on
    /// duty at a moment (no shift and no `on_duty`) is out of hours.
    #[serde(default)]
    #[schema(max_items = 500)]
    pub shifts: Vec<Shift>,
    /// Who is alerted, and where people are pointed, when nobody is on duty.
    #[serde(default)]
    pub out_of_hours: OutOfHours,
    /// The clinic's IANA time zone for shifts and working days (default `Europe/Oslo`).
    #[serde(default = "default_time_zone")]
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"
    )]
    pub time_zone: String,
    /// Minutes an acknowledged flag may stay unresolved before its responders are reminded,
    /// and again at this interval (default 120).
    #[serde(default = "default_followup_minutes")]
    pub followup_minutes: u32,
    /// Minutes to acknowledge (defaults 5, 15, 240).
    pub imminent_minutes: u32,
    pub urgent_minutes: u32,
    pub concerning_minutes: u32,
    /// Routine flags are due at this hour (the clinic's time zone) on the next working day:
    /// not a weekend or a Norwegian public holiday (default 10).
    pub routine_hour: u32,
    /// The in-conversation notice per locale (`nb`, `nn`, `en`); it can be reworded, not
    /// removed.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub notice_nb: String,
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub notice_nn: String,
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub notice_en: String,
}

fn default_time_zone() -> String {
    "Europe/Oslo".into()
}

fn default_followup_minutes() -> u32 {
    120
}

/// A roster level a shift fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum RosterLevel {
    OnDuty,
    NextResponder,
}

/// A day a shift starts on. On a Norwegian public holiday only shifts listing `holiday`
/// apply, whatever the weekday.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum ShiftDay {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
    Holiday,
}

/// A recurring shift on the clinic's local clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Shift {
    /// An active HP of the clinic.
    pub hp_id: Uuid,
    pub level: RosterLevel,
    #[schema(min_items = 1, max_items = 8)]
    pub days: Vec<ShiftDay>,
    /// Local start, `HH:MM`.
    #[schema(
        min_length = 5,
        max_length = 5,
        pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
    )]
    pub start: String,
    /// Local end, `HH:MM`; at or before `start` it ends the next day (a night shift; equal to
    /// `start` is 24 hours).
    #[schema(
        min_length = 5,
        max_length = 5,
        pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
    )]
    pub end: String,
}

/// The clinic's route when nobody is on duty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct OutOfHours {
    /// Active HPs of the clinic alerted first when nobody is on duty (an agreed on-call
    /// rota); empty: the ladder starts with the peer's supervisors, then climbs.
    #[serde(default)]
    #[schema(max_items = 50)]
    pub on_call: Vec<Uuid>,
    /// The service a person who raised a flag out of hours is pointed to meanwhile (e.g.
    /// the local legevakt), per locale like the notice; none: only the crisis resources.
    #[serde(default)]
    pub contact: Option<OutOfHoursContact>,
}

/// An out-of-hours service, worded per locale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct OutOfHoursContact {
    /// e.g. "113".
    #[schema(
        min_length = 1,
        max_length = 50,
        pattern = r"^[0-9 +()-]*[0-9+()-][0-9 +()-]*$"
    )]
    pub phone: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub label_nb: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub label_nn: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub label_en: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum Locale {
    Nb,
    Nn,
    En,
}

impl Locale {
    /// The wire spelling (`nb`, `nn`, `en`), for query strings and stored rows.
    pub fn code(self) -> &'static str {
        match self {
            Locale::Nb => "nb",
            Locale::Nn => "nn",
            Locale::En => "en",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct CrisisResource {
    /// e.g. "Nødnummer (ambulanse)".
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub label: String,
    /// e.g. "113": digits, spaces, `+`, `-` and parentheses.
    #[schema(
        min_length = 1,
        max_length = 50,
        pattern = r"^[0-9 +()-]*[0-9+()-][0-9 +()-]*$"
    )]
    pub phone: String,
    #[schema(
        max_length = 500,
        pattern = r"^(?:[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*)?$"
    )]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct CrisisResourceList {
    pub locale: Locale,
    #[schema(min_items = 1, max_items = 30)]
    pub resources: Vec<CrisisResource>,
    /// Read-only (ignored when writing; set in the escalation settings): the clinic's
    /// wording, in `locale`, of the notice that a clinician was asked to check in. An app
    /// shows it for a `clinician_asked` notice, so each reader sees the clinic's words in
    /// their own language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(read_only)]
    pub check_in_notice: Option<String>,
}

impl CrisisResource {
    /// The national numbers every person in Norway can call, in `l`: what a clinic that set
    /// none lists, and what an app shows when it cannot reach the server.
    pub fn defaults(l: Locale) -> Vec<CrisisResource> {
        let r = |label: &str, phone: &str, description: &str| CrisisResource {
            label: label.into(),
            phone: phone.into(),
            description: Some(description.into()),
        };
        match l {
            Locale::Nb => vec![
                r(
                    "Nødnummer – ambulanse",
                    "113",
                    "Ved akutt fare for liv og helse",
                ),
                r("Legevakt", "116 117", "Når du trenger lege raskt"),
                r(
                    "Mental Helse hjelpetelefon",
                    "116 123",
                    "Døgnåpen samtaletelefon",
                ),
            ],
            Locale::Nn => vec![
                r(
                    "Naudnummer – ambulanse",
                    "113",
                    "Ved akutt fare for liv og helse",
                ),
                r("Legevakt", "116 117", "Når du treng lege raskt"),
                r(
                    "Mental Helse hjelpetelefon",
                    "116 123",
                    "Døgnope samtaletelefon",
                ),
            ],
            Locale::En => vec![
                r(
                    "Emergency – ambulance",
                    "113",
                    "Immediate danger to life or health",
                ),
                r(
                    "Out-of-hours doctor (legevakt)",
                    "116 117",
                    "When you need a doctor quickly",
                ),
                r("Mental Helse helpline", "116 123", "Open day and night"),
            ],
        }
    }
}

/// A peer supporter asks their supervisors for a debrief (no content).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct DebriefCreate {
    pub client_id: Uuid,
    /// The introduction the session belonged to, if any.
    pub introduction_id: Option<Uuid>,
    /// How soon: `urgent` or `routine` (default routine).
    pub severity: Option<Severity>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Debrief {
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub peer_id: Uuid,
    pub introduction_id: Option<Uuid>,
    pub severity: Severity,
    pub status: FlagStatus,
    pub deadline_at: DateTime<Utc>,
    pub acknowledged_by: Option<Uuid>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum ConsultationKind {
    Chat,
    Call,
    Video,
    Meeting,
}

/// One consultation for the compensation report: date, duration, kind — never content.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct ConsultationCreate {
    pub client_id: Uuid,
    pub date: NaiveDate,
    /// 1–600 minutes.
    pub duration_minutes: u32,
    pub kind: ConsultationKind,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Consultation {
    pub id: Uuid,
    pub peer_id: Uuid,
    pub date: NaiveDate,
    pub duration_minutes: u32,
    pub kind: ConsultationKind,
    pub created_at: DateTime<Utc>,
}

/// One peer's consultations in a period.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct ConsultationReportRow {
    pub peer_id: Uuid,
    pub consultations: u32,
    pub total_minutes: u32,
    pub chat: u32,
    pub call: u32,
    pub video: u32,
    pub meeting: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct ConsultationReport {
    pub clinic_id: Uuid,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub rows: Vec<ConsultationReportRow>,
}
