//! The MLS delivery service: key packages, conversations (MLS groups under a membership
//! policy), commits, application messages with per-group sequence numbers, welcomes and the
//! per-device stream. Every MLS payload is opaque to the server except its public framing;
//! binary values travel as unpadded base64url.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A batch of 1–100 key packages in all (TLS-serialized MLS messages carrying a
/// KeyPackage). `key_packages` have a device credential (used where members are known to
/// each other, e.g. supervision); a last-resort package replaces the device's previous one.
/// `pseudonymous` ones carry a random pseudonym as credential and are used for
/// introductions: their binding to the device travels beside them, never inside the group.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct KeyPackageUpload {
    #[serde(default)]
    #[schema(max_items = 100)]
    pub key_packages: Vec<String>,
    #[serde(default)]
    #[schema(max_items = 100)]
    pub pseudonymous: Vec<PseudonymousKeyPackage>,
}

/// A one-time key package whose credential is a pseudonym (`"PBP1"` + 16 random bytes).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct PseudonymousKeyPackage {
    #[schema(
        min_length = 2,
        max_length = 21846,
        pattern = r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
    )]
    pub key_package: String,
    /// The device's Ed25519 signature over `signed::leaf_binding_message` of the package's leaf
    /// signature key, base64url.
    #[schema(
        min_length = 86,
        max_length = 86,
        pattern = r"^[A-Za-z0-9_-]{85}[AQgw]$"
    )]
    pub leaf_binding: String,
}

/// How many one-time key packages the device has left; replenish below `replenish_below`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct KeyPackageStatus {
    pub remaining: u32,
    pub has_last_resort: bool,
    /// Unclaimed pseudonymous key packages (introductions; there is no last resort).
    pub pseudonymous_remaining: u32,
    pub replenish_below: u32,
}

/// Claim one key package for every live device of a member the conversation's policy
/// allows. In supervision conversations name the user; in introductions name the role
/// (`counterpart`, or `introducing_hp` once both parties granted `invite_hp`) — parties
/// never learn each other's user ids.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct KeyPackageClaim {
    pub user_id: Option<Uuid>,
    pub member: Option<ClaimTarget>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum ClaimTarget {
    Counterpart,
    IntroducingHp,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct ClaimedKeyPackage {
    /// Hex of the KeyPackageRef; the Welcome for it is routed to its device.
    pub key_package_ref: String,
    pub key_package: String,
    pub last_resort: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum ConversationKind {
    /// A peer supporter and the HPs assigned to supervise them.
    Supervision,
    /// The two parties of an introduction under pseudonyms (and the introducing HP, once
    /// both consented).
    Introduction,
}

/// Create a conversation. The server assigns the MLS group id; the creating device then
/// claims key packages, creates the group with that id and opens it with its first commit.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct ConversationCreate {
    pub kind: ConversationKind,
    /// For `supervision`: the peer supporter.
    pub peer_id: Option<Uuid>,
    /// For `introduction`: the active introduction (creating twice returns the existing
    /// conversation).
    pub introduction_id: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Conversation {
    pub id: Uuid,
    pub kind: ConversationKind,
    /// The clinic the conversation belongs to; not shown to introduction parties.
    pub clinic_id: Option<Uuid>,
    pub introduction_id: Option<Uuid>,
    /// MLS group id, base64url.
    pub group_id: String,
    /// The epoch the server has accepted; commits must target it. 0 until the group is
    /// opened by its creator's first commit.
    pub epoch: u64,
    /// Users whose devices the policy allows as members (empty for introductions: parties
    /// never learn user ids).
    pub allowed_users: Vec<Uuid>,
    /// The highest sequence number in the conversation.
    pub last_seq: u64,
    /// The calling device's acknowledged cursor.
    pub acked_seq: u64,
    pub created_at: DateTime<Utc>,
}

/// A commit for the group's current epoch. The welcome (if members are added) is released to
/// the added devices only if the commit is accepted.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct CommitUpload {
    /// The epoch the commit was created in (must equal the conversation's current epoch).
    pub epoch: u64,
    /// TLS-serialized MLS message: a PublicMessage carrying the Commit.
    #[schema(min_length = 1, max_length = 262144)]
    pub commit: String,
    /// TLS-serialized MLS message carrying the Welcome, when the commit adds members.
    #[serde(default)]
    #[schema(max_length = 262144)]
    pub welcome: Option<String>,
    /// TLS-serialized MLS message: GroupInfo of the new epoch with the ratchet tree extension
    /// (kept for rejoins; the first commit of a group opens it from this).
    #[schema(min_length = 1, max_length = 262144)]
    pub group_info: String,
    /// For pseudonymous groups: the device's signature over `signed::leaf_binding_message` of its
    /// own (new) leaf signature key, base64url — how the server knows whose leaf it is.
    #[serde(default)]
    #[schema(
        min_length = 86,
        max_length = 86,
        pattern = r"^[A-Za-z0-9_-]{85}[AQgw]$"
    )]
    pub leaf_binding: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct CommitAccepted {
    pub epoch: u64,
    pub seq: u64,
}

/// An application message (an MLS PrivateMessage) with the client's id for idempotency.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct MessageSend {
    pub client_id: Uuid,
    /// TLS-serialized MLS PrivateMessage, at most 64 KiB decoded.
    #[schema(min_length = 1, max_length = 87384)]
    pub ciphertext: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct MessageAccepted {
    pub seq: u64,
    /// False when this `client_id` was already stored (a retry): nothing was stored twice.
    pub created: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum EntryKind {
    Application,
    Commit,
}

/// One entry of a conversation's log, in sequence order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct LogEntry {
    pub seq: u64,
    pub kind: EntryKind,
    pub client_id: Option<Uuid>,
    pub epoch: u64,
    pub payload: String,
    pub created_at: DateTime<Utc>,
    /// The server's stamp on the sender's franking commitment (application messages that
    /// carry one), for verifiable escalation excerpts.
    pub franking: Option<FrankingStamp>,
}

/// The server's signature over
/// `peerbridge_openapi::signed::franking_stamp_message(commitment, group_id, sender, seq,
/// received_at)` with the Ed25519 key `kid` (see `GET /v1/franking-keys`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct FrankingStamp {
    /// The sender's commitment (32 bytes), base64url.
    pub commitment: String,
    /// Who sent it, as the conversation knows them: an introduction alias, `clinician`, or
    /// `user:<id>` in supervision conversations.
    pub sender: String,
    pub seq: u64,
    /// Unix seconds when the server accepted the message.
    pub received_at: i64,
    pub kid: String,
    pub signature: String,
}

/// The server's franking verification keys by `kid` (Ed25519, base64url).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FrankingKeys {
    pub keys: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct LogPage {
    pub items: Vec<LogEntry>,
    /// Pass as `after` to read on: the last sequence number this page scanned, including
    /// entries whose ciphertext was deleted (or the `after` given when nothing was scanned).
    /// It always advances while `has_more` is true.
    pub cursor: u64,
    pub has_more: bool,
    /// Entries in this page's range whose ciphertext was deleted (every device acknowledged
    /// it, or its retention ended) and which are therefore missing from `items`. When
    /// `commits` is non-zero the reader's group state is behind: rejoin the conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purged: Option<PurgedRange>,
}

/// A run of log entries a page skipped because their ciphertext no longer exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct PurgedRange {
    /// Sequence number of the first skipped entry.
    pub from_seq: u64,
    /// Sequence number of the last skipped entry.
    pub to_seq: u64,
    /// How many entries were skipped (application messages and commits).
    pub count: u64,
    /// How many of them were commits.
    pub commits: u64,
}

/// Acknowledge everything up to and including `seq`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Ack {
    pub seq: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Welcome {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub welcome: String,
    pub key_package_ref: String,
    /// Read the conversation from here (`after=start_seq`): entries up to it predate the join.
    pub start_seq: u64,
}

/// Latest GroupInfo, for a device that fell out of sync and rejoins by external commit.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct GroupInfoOut {
    pub epoch: u64,
    pub group_info: String,
}

/// Where this device's content-free wake-ups go, on an operator-allowed push gateway: a
/// UnifiedPush-style URL, or with `keys` a browser's Web Push subscription (its `endpoint`
/// as `url`), whose wake-ups are then encrypted to the keys (RFC 8291) and signed with the
/// server's VAPID key (RFC 8292).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct PushEndpoint {
    #[schema(min_length = 1, max_length = 2048)]
    pub url: String,
    #[serde(default)]
    pub keys: Option<WebPushKeys>,
}

/// A Web Push subscription's keys, as `PushSubscription.toJSON().keys` gives them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct WebPushKeys {
    /// Unpadded base64url of the browser's uncompressed P-256 public key (65 bytes).
    #[schema(pattern = r"^[A-Za-z0-9_-]{87}$")]
    pub p256dh: String,
    /// Unpadded base64url of the 16-byte authentication secret.
    #[schema(pattern = r"^[A-Za-z0-9_-]{22}$")]
    pub auth: String,
}

/// The server's VAPID public key: unpadded base64url of the uncompressed P-256 point, the
/// `applicationServerKey` of `pushManager.subscribe`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct VapidKey {
    pub public_key: String,
}

/// A notice on a device's stream (`GET /v1/stream`, one JSON text frame each) and on the
/// server's bus. It says what to read, never what happened in the clear: no plaintext, no
/// name. The one exception to "read it yourself" is a small application message, which a
/// `message` notice may carry as its `entry` (end-to-end encrypted, exactly as the log
/// holds it) so a connected device need not read the log for it. A client matches every
/// variant; a type or field it does not know (from a newer server) is ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Notice {
    /// First frame after connecting: the stream is this device's.
    Hello { device_id: Uuid },
    /// The conversation's log has entries up to `seq` (read from the device's cursor).
    /// `entry`, when present, is the entry at `seq` itself (an application message of at
    /// most 4 KiB of ciphertext): a device whose cursor is at `seq - 1` may take it as read
    /// from the log; any other device reads from its cursor as usual.
    Message {
        conversation_id: Uuid,
        seq: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        entry: Option<Box<LogEntry>>,
    },
    /// The conversation's group changed (a commit at `seq`): read from the cursor.
    Commit { conversation_id: Uuid, seq: u64 },
    /// A Welcome into the conversation waits for this device; its log starts after `seq`.
    Welcome { conversation_id: Uuid, seq: u64 },
    /// An introduction the device's user is part of changed (proposal, consent, state).
    Introduction { introduction_id: Uuid },
    /// A flag changed; `event` is what happened (e.g. `raised`, `acknowledged`).
    Flag { flag_id: Uuid, event: String },
    /// A debrief was requested or acknowledged.
    Debrief { debrief_id: Uuid },
    /// Notices may have been missed (the server's bus was interrupted): read everything.
    Resync,
}

impl Notice {
    /// The JSON text frame.
    pub fn to_json(&self) -> String {
        // A map of strings and ids always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod notice_tests {
    use super::*;

    #[test]
    fn notices_have_a_fixed_wire_form() {
        let id = Uuid::from_u128(1);
        let cases = [
            (
                Notice::Message {
                    conversation_id: id,
                    seq: 7,
                    entry: None,
                },
                r#"{"type":"message","conversation_id":"00000000-0000-0000-0000-000000000001","seq":7}"#,
            ),
            (
                Notice::Message {
                    conversation_id: id,
                    seq: 7,
                    entry: Some(Box::new(LogEntry {
                        seq: 7,
                        kind: EntryKind::Application,
                        client_id: Some(id),
                        epoch: 1,
                        payload: "AA".into(),
                        created_at: DateTime::<Utc>::UNIX_EPOCH,
                        franking: None,
                    })),
                },
                r#"{"type":"message","conversation_id":"00000000-0000-0000-0000-000000000001","seq":7,"entry":{"seq":7,"kind":"application","client_id":"00000000-0000-0000-0000-000000000001","epoch":1,"payload":"AA","created_at":"1970-01-01T00:00:00Z","franking":null}}"#,
            ),
            (Notice::Resync, r#"{"type":"resync"}"#),
            (
                Notice::Flag {
                    flag_id: id,
                    event: "raised".into(),
                },
                r#"{"type":"flag","flag_id":"00000000-0000-0000-0000-000000000001","event":"raised"}"#,
            ),
            (
                Notice::Debrief { debrief_id: id },
                r#"{"type":"debrief","debrief_id":"00000000-0000-0000-0000-000000000001"}"#,
            ),
        ];
        for (n, json) in cases {
            assert_eq!(n.to_json(), json);
            assert_eq!(serde_json::from_str::<Notice>(json).expect("parses"), n);
        }
        assert!(serde_json::from_str::<Notice>(r#"{"type":"party"}"#).is_err());
    }
}
