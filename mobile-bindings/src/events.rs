//! What the SDK reports to the app: conversation events with the delivery sequence number
//! they came from, and the summaries the app lists. Plain data, serializable, so the FFI
//! layer only converts and the SDK can keep undelivered events in its durable inbox.

use peerbridge_mls::{Envelope, MemberInfo, NoticeKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::http::b64;

/// A group member (one device of one user).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, uniffi::Record)]
pub struct Member {
    /// The device's Ed25519 public key (unpadded base64url) as proven by its leaf credential;
    /// for a pseudonymous member (an introduction's party) its per-conversation pseudonym.
    pub device_key: String,
    /// The member is an introduction's party under a pseudonym, not a named device.
    #[serde(default)]
    pub pseudonymous: bool,
    /// The member's leaf index (stable while it stays a member).
    pub leaf_index: u32,
    /// The leaf's credential is signed by `device_key` (unverified members are never let in).
    pub verified: bool,
    /// This is the device the SDK runs on.
    pub is_me: bool,
}

impl Member {
    pub(crate) fn from_mls(m: &MemberInfo, me: &[u8]) -> Member {
        Member {
            device_key: b64(&m.identity),
            leaf_index: m.leaf_index,
            pseudonymous: m.pseudonymous,
            verified: m.verified,
            is_me: m.verified && m.identity == me,
        }
    }
}

/// Something that happened in a conversation, in delivery order. `seq` is the position in
/// the conversation's log on the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, uniffi::Enum)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A text message. `id` is the sender's message id (also its delivery client id).
    Text {
        conversation: Uuid,
        seq: u64,
        id: Uuid,
        sender: Member,
        body: String,
        /// Milliseconds since the Unix epoch on the sender's clock (display only).
        sent_at: u64,
    },
    /// The sender has read these messages.
    Receipt {
        conversation: Uuid,
        seq: u64,
        sender: Member,
        ids: Vec<Uuid>,
    },
    /// A system line (pause, resume, left, timer change, info).
    Notice {
        conversation: Uuid,
        seq: u64,
        sender: Member,
        /// `info`, `conversation_paused`, `conversation_resumed`, `participant_left`,
        /// `disappearing_timer_changed`, `clinician_asked` (the clinic was asked to have a
        /// clinician check in; show the clinic's wording in the reader's language, from
        /// `crisis_resources`, when it has it).
        kind: String,
        text: String,
    },
    /// An introduction changed on the server (proposed, accepted, paused, ended, a consent
    /// recorded): re-read it with `introduction()`.
    IntroductionChanged {
        introduction: Uuid,
    },
    /// A consent record failed this client's verification (not signed by the member it
    /// claims, or altered): it is ignored. A server trying to forge a consent shows here.
    ConsentRejected {
        introduction: Uuid,
        reason: String,
    },
    /// The on-device detector read risk in a received message (`seq`): suggest a flag and
    /// show the clinic's crisis resources. Only a suggestion; a person decides.
    RiskSuggested {
        conversation: Uuid,
        seq: u64,
        /// `suicide_risk` or `self_harm`.
        category: String,
        /// `imminent`, `urgent` or `concerning`.
        severity: String,
    },
    /// A flag in this clinician's queue was raised, escalated to them or changed: re-read
    /// the queue (`flags()`), open it (`open_flag()`). For the person who raised it: it was
    /// acknowledged or resolved; re-read `flag_progress()`.
    FlagChanged {
        flag: Uuid,
    },
    /// A flag raised while the device could not reach the server (it stayed queued) has now
    /// reached the clinic; `asked`: somebody was alerted (else it waits in the queue).
    FlagRaised {
        conversation: Uuid,
        flag: Uuid,
        client_id: Uuid,
        asked: bool,
    },
    /// A queued flag was refused by the server when it was delivered (`reason` is the
    /// error code): it is not stored; the app should offer to raise it again or to call.
    FlagFailed {
        conversation: Uuid,
        client_id: Uuid,
        reason: String,
    },
    /// A debrief was requested by a peer this clinician supervises, or (for the peer) a
    /// supervisor acknowledged one: re-read `debrief_queue()`.
    DebriefChanged {
        debrief: Uuid,
    },
    /// This device sent its identity card: both parties' signed consents to reveal held.
    IdentityCardSent {
        conversation: Uuid,
    },
    /// The counterpart's identity card, sent after both consented to reveal.
    IdentityCard {
        conversation: Uuid,
        seq: u64,
        sender: Member,
        first_name: Option<String>,
        phone: Option<String>,
        /// Photo bytes, unpadded base64url.
        photo: Option<String>,
    },
    /// Content from a newer app version this SDK cannot read ("update to read this").
    UnreadableMessage {
        conversation: Uuid,
        seq: u64,
        sender: Member,
        reason: String,
    },
    /// A log entry that could not be processed (damaged, or keys no longer held). It is
    /// skipped; the conversation goes on.
    Undecryptable {
        conversation: Uuid,
        seq: u64,
        reason: String,
    },
    MemberAdded {
        conversation: Uuid,
        member: Member,
        added_by: Option<Member>,
    },
    MemberRemoved {
        conversation: Uuid,
        member: Member,
    },
    /// A commit would have added members the client policy refuses; it was not merged.
    /// Show it: the server (or a member) tried to add someone.
    MembershipChangeRefused {
        conversation: Uuid,
        epoch: u64,
        refused: Vec<Member>,
    },
    EpochChanged {
        conversation: Uuid,
        epoch: u64,
    },
    /// This device joined the conversation (by welcome or rejoin).
    Joined {
        conversation: Uuid,
        epoch: u64,
        members: Vec<Member>,
    },
    /// A welcome could not be used (e.g. its members failed the policy); it was dismissed.
    JoinFailed {
        conversation: Uuid,
        reason: String,
    },
    /// Log entries `from_seq..=to_seq` were deleted on the server before this device read
    /// them (their retention ended while it was away): `count` messages or commits are
    /// missing from this conversation here. When commits were among them the SDK rejoins
    /// the conversation by itself (a `Joined` event follows).
    MessagesPurged {
        conversation: Uuid,
        from_seq: u64,
        to_seq: u64,
        count: u64,
        commits: u64,
    },
    /// This device was removed from the conversation.
    Removed {
        conversation: Uuid,
    },
    /// A queued message (after `send_text` failed with `network`) has now been stored.
    Sent {
        conversation: Uuid,
        id: Uuid,
        seq: u64,
    },
    /// A queued message was refused by the server and dropped.
    SendFailed {
        conversation: Uuid,
        id: Uuid,
        reason: String,
    },
    /// The receive loop's connection changed (never stored; only the live loop reports it).
    ConnectionChanged {
        state: ConnectionState,
    },
}

/// How the device is receiving.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, uniffi::Enum,
)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    /// The WebSocket is up: events arrive as they happen.
    Connected,
    /// The WebSocket is down: the SDK polls and reconnects with backoff.
    Reconnecting,
    /// The app suspended the client (background): nothing is received until `resume`.
    Suspended,
}

impl Event {
    /// The conversation the event belongs to (`None` for introduction-level events).
    pub fn conversation(&self) -> Option<Uuid> {
        Some(match self {
            Event::IntroductionChanged { .. }
            | Event::ConsentRejected { .. }
            | Event::FlagChanged { .. }
            | Event::DebriefChanged { .. }
            | Event::ConnectionChanged { .. } => return None,
            Event::IdentityCardSent { conversation } => *conversation,
            Event::FlagRaised { conversation, .. } | Event::FlagFailed { conversation, .. } => {
                *conversation
            }
            Event::Text { conversation, .. }
            | Event::Receipt { conversation, .. }
            | Event::Notice { conversation, .. }
            | Event::RiskSuggested { conversation, .. }
            | Event::IdentityCard { conversation, .. }
            | Event::UnreadableMessage { conversation, .. }
            | Event::Undecryptable { conversation, .. }
            | Event::MemberAdded { conversation, .. }
            | Event::MemberRemoved { conversation, .. }
            | Event::MembershipChangeRefused { conversation, .. }
            | Event::EpochChanged { conversation, .. }
            | Event::Joined { conversation, .. }
            | Event::JoinFailed { conversation, .. }
            | Event::Removed { conversation }
            | Event::MessagesPurged { conversation, .. }
            | Event::Sent { conversation, .. }
            | Event::SendFailed { conversation, .. } => *conversation,
        })
    }
}

fn notice_kind(k: NoticeKind) -> &'static str {
    match k {
        NoticeKind::Info => "info",
        NoticeKind::ConversationPaused => "conversation_paused",
        NoticeKind::ConversationResumed => "conversation_resumed",
        NoticeKind::ParticipantLeft => "participant_left",
        NoticeKind::DisappearingTimerChanged => "disappearing_timer_changed",
        NoticeKind::ClinicianAsked => "clinician_asked",
    }
}

/// What one client-core event means for the app. `None` for bookkeeping events.
pub(crate) fn map_mls_event(
    e: peerbridge_mls::Event,
    conversation: Uuid,
    seq: u64,
    me: &[u8],
) -> Option<Event> {
    use peerbridge_mls::Event as E;
    let m = |info: &MemberInfo| Member::from_mls(info, me);
    Some(match e {
        E::Message {
            sender, envelope, ..
        } => match envelope {
            Envelope::Text { id, body, sent_at } => Event::Text {
                conversation,
                seq,
                id: Uuid::from_bytes(*id.as_bytes()),
                sender: m(&sender),
                body,
                sent_at,
            },
            Envelope::Receipt { ids } => Event::Receipt {
                conversation,
                seq,
                sender: m(&sender),
                ids: ids
                    .iter()
                    .map(|i| Uuid::from_bytes(*i.as_bytes()))
                    .collect(),
            },
            Envelope::SystemNotice { kind, text } => Event::Notice {
                conversation,
                seq,
                sender: m(&sender),
                kind: notice_kind(kind).to_owned(),
                text,
            },
            Envelope::IdentityCard {
                first_name,
                phone,
                photo,
                ..
            } => Event::IdentityCard {
                conversation,
                seq,
                sender: m(&sender),
                first_name,
                phone,
                photo: photo.as_deref().map(b64),
            },
        },
        E::UnreadableMessage { sender, error, .. } => Event::UnreadableMessage {
            conversation,
            seq,
            sender: m(&sender),
            reason: error.to_string(),
        },
        E::MemberAdded {
            member, added_by, ..
        } => Event::MemberAdded {
            conversation,
            member: m(&member),
            added_by: added_by.as_ref().map(m),
        },
        E::MemberRemoved { member, .. } => Event::MemberRemoved {
            conversation,
            member: m(&member),
        },
        E::EpochChanged { epoch, .. } => Event::EpochChanged {
            conversation,
            epoch: epoch.0,
        },
        E::RemovedFromGroup { .. } => Event::Removed { conversation },
        E::CommitRefused { epoch, refused, .. } => Event::MembershipChangeRefused {
            conversation,
            epoch: epoch.0,
            refused: refused.iter().map(m).collect(),
        },
        E::BufferedDropped { reason, .. } => Event::Undecryptable {
            conversation,
            seq,
            reason: format!("a buffered message was dropped: {reason}"),
        },
        // Bookkeeping: handled by the client (echo, discard) or invisible to the app.
        _ => return None,
    })
}
