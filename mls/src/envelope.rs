//! The in-group content envelope: what travels inside an MLS application message. It has an
//! explicit version byte and a hand-written, frozen encoding (golden fixtures in
//! `tests/fixtures/` fail if it changes), and it is decoded defensively: anything unknown or
//! oversized is a typed [`EnvelopeError`], never a panic.
//!
//! Wire format, version 1 (all integers big-endian, strings UTF-8 with a u32 length prefix):
//!
//! ```text
//! envelope     = version:u8 (=1) kind:u8 body
//! kind 1 text  = id:[16] sent_at:u64 body:string(<= MAX_TEXT_BYTES)
//! kind 2 rcpt  = count:u16 (<= MAX_RECEIPT_IDS) id:[16]*count
//! kind 3 note  = notice_kind:u16 text:string(<= MAX_NOTICE_BYTES)
//! kind 4 card  = id:[16] sent_at:u64 first_name:opt_string(<= 200) phone:opt_string(<= 50)
//!                photo:opt_bytes(<= MAX_PHOTO_BYTES)
//! opt_x        = present:u8 (0 | 1) [x]
//! ```
//!
//! Later issues add kinds (consent, identity card, excerpt) with new kind numbers; an old
//! client reports them as [`EnvelopeError::UnknownKind`] so the app can say "update to read
//! this" instead of dropping it silently.

use crate::codec::{CodecError, Reader, Writer};

/// The only envelope version this build writes and reads.
pub const ENVELOPE_VERSION: u8 = 1;
/// The largest encoded envelope accepted (the server caps a whole MLS message at 64 KiB).
pub const MAX_ENVELOPE_BYTES: usize = 60 * 1024;
/// The largest text body, in UTF-8 bytes.
pub const MAX_TEXT_BYTES: usize = 48 * 1024;
/// The most message ids one receipt may acknowledge.
pub const MAX_RECEIPT_IDS: usize = 1024;
/// The largest system-notice text, in UTF-8 bytes.
pub const MAX_NOTICE_BYTES: usize = 4 * 1024;

const KIND_TEXT: u8 = 1;
const KIND_RECEIPT: u8 = 2;
const KIND_SYSTEM_NOTICE: u8 = 3;
const KIND_IDENTITY_CARD: u8 = 4;
/// The largest photo on an identity card.
pub const MAX_PHOTO_BYTES: usize = 40 * 1024;
const MAX_NAME_BYTES: usize = 200;
const MAX_PHONE_BYTES: usize = 50;

/// A client-generated message id (16 random bytes, e.g. a UUID's bytes). The same id is
/// used as the delivery service's idempotency key, so a resend is stored once and receivers
/// deduplicate on it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId([u8; 16]);

impl MessageId {
    /// A fresh random id from the OS RNG.
    pub fn random() -> Self {
        use rand::RngCore;
        let mut id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        MessageId(id)
    }

    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        MessageId(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl std::fmt::Debug for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MessageId(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// What a system notice announces. The numeric codes are part of the wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoticeKind {
    /// Free-form information shown as a system line.
    Info,
    /// The sender paused the conversation.
    ConversationPaused,
    /// The sender resumed the conversation.
    ConversationResumed,
    /// The sender is leaving the conversation.
    ParticipantLeft,
    /// The sender changed the disappearing-messages timer (the text carries the new value).
    DisappearingTimerChanged,
    /// The sender asked the clinic to have a clinician check in (a flag or "I need help
    /// now"). The text is the clinic's wording in the sender's language; a reader's app shows
    /// the clinic's wording in the reader's own language when it has it.
    ClinicianAsked,
}

impl NoticeKind {
    /// The stable wire code.
    pub const fn code(self) -> u16 {
        match self {
            NoticeKind::Info => 1,
            NoticeKind::ConversationPaused => 2,
            NoticeKind::ConversationResumed => 3,
            NoticeKind::ParticipantLeft => 4,
            NoticeKind::DisappearingTimerChanged => 5,
            NoticeKind::ClinicianAsked => 6,
        }
    }

    pub const fn from_code(code: u16) -> Option<Self> {
        Some(match code {
            1 => NoticeKind::Info,
            2 => NoticeKind::ConversationPaused,
            3 => NoticeKind::ConversationResumed,
            4 => NoticeKind::ParticipantLeft,
            5 => NoticeKind::DisappearingTimerChanged,
            6 => NoticeKind::ClinicianAsked,
            _ => return None,
        })
    }
}

/// One piece of in-group content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Envelope {
    /// A text message.
    Text {
        id: MessageId,
        body: String,
        /// Milliseconds since the Unix epoch on the sender's clock (display only; ordering
        /// comes from the delivery service's per-group sequence).
        sent_at: u64,
    },
    /// "I have read these messages."
    Receipt { ids: Vec<MessageId> },
    /// A line the app renders as a system event rather than as speech.
    SystemNotice { kind: NoticeKind, text: String },
    /// Who the sender is, as they chose to show it — sent only after both parties' signed
    /// consents to reveal. Every field is optional.
    IdentityCard {
        id: MessageId,
        sent_at: u64,
        first_name: Option<String>,
        phone: Option<String>,
        photo: Option<Vec<u8>>,
    },
}

/// Why an envelope could not be encoded or decoded. Variants are stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the envelope is {len} bytes; the limit is {max}")]
    TooLarge { len: usize, max: usize },
    #[error("envelope version {0} is not supported by this client")]
    UnknownVersion(u8),
    #[error("envelope kind {0} is not supported by this client")]
    UnknownKind(u8),
    #[error("system notice kind {0} is not supported by this client")]
    UnknownNoticeKind(u16),
    #[error("a field exceeds its limit: {field} is {len}, the limit is {max}")]
    FieldTooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("the envelope is malformed: {0}")]
    Malformed(#[from] CodecError),
}

impl Envelope {
    /// Encodes with the current version. Fails (instead of producing something a receiver
    /// would reject) when a field exceeds its limit.
    pub fn encode(&self) -> Result<Vec<u8>, EnvelopeError> {
        let mut w = Writer::new();
        w.u8(ENVELOPE_VERSION);
        match self {
            Envelope::Text { id, body, sent_at } => {
                check_len("body", body.len(), MAX_TEXT_BYTES)?;
                w.u8(KIND_TEXT)
                    .raw(id.as_bytes())
                    .u64(*sent_at)
                    .bytes(body.as_bytes());
            }
            Envelope::Receipt { ids } => {
                check_len("ids", ids.len(), MAX_RECEIPT_IDS)?;
                // MAX_RECEIPT_IDS fits in u16; checked above.
                let count = u16::try_from(ids.len()).unwrap_or(u16::MAX);
                w.u8(KIND_RECEIPT).u16(count);
                for id in ids {
                    w.raw(id.as_bytes());
                }
            }
            Envelope::SystemNotice { kind, text } => {
                check_len("text", text.len(), MAX_NOTICE_BYTES)?;
                w.u8(KIND_SYSTEM_NOTICE)
                    .u16(kind.code())
                    .bytes(text.as_bytes());
            }
            Envelope::IdentityCard {
                id,
                sent_at,
                first_name,
                phone,
                photo,
            } => {
                let name_len = first_name.as_ref().map_or(0, String::len);
                check_len("first_name", name_len, MAX_NAME_BYTES)?;
                check_len(
                    "phone",
                    phone.as_ref().map_or(0, String::len),
                    MAX_PHONE_BYTES,
                )?;
                check_len("photo", photo.as_ref().map_or(0, Vec::len), MAX_PHOTO_BYTES)?;
                w.u8(KIND_IDENTITY_CARD).raw(id.as_bytes()).u64(*sent_at);
                for field in [
                    first_name.as_deref().map(str::as_bytes),
                    phone.as_deref().map(str::as_bytes),
                    photo.as_deref(),
                ] {
                    match field {
                        Some(v) => {
                            w.u8(1).bytes(v);
                        }
                        None => {
                            w.u8(0);
                        }
                    }
                }
            }
        }
        let out = w.finish();
        if out.len() > MAX_ENVELOPE_BYTES {
            return Err(EnvelopeError::TooLarge {
                len: out.len(),
                max: MAX_ENVELOPE_BYTES,
            });
        }
        Ok(out)
    }

    /// Decodes untrusted bytes (they come from another member's device).
    pub fn decode(input: &[u8]) -> Result<Envelope, EnvelopeError> {
        if input.len() > MAX_ENVELOPE_BYTES {
            return Err(EnvelopeError::TooLarge {
                len: input.len(),
                max: MAX_ENVELOPE_BYTES,
            });
        }
        let mut r = Reader::new(input);
        let version = r.u8()?;
        if version != ENVELOPE_VERSION {
            return Err(EnvelopeError::UnknownVersion(version));
        }
        let envelope = match r.u8()? {
            KIND_TEXT => {
                let id = MessageId(r.fixed()?);
                let sent_at = r.u64()?;
                let body = r.string(MAX_TEXT_BYTES)?;
                Envelope::Text { id, body, sent_at }
            }
            KIND_RECEIPT => {
                let count = usize::from(r.u16()?);
                check_len("ids", count, MAX_RECEIPT_IDS)?;
                // Reject a count the remaining bytes cannot hold before allocating for it.
                if r.remaining() < count * 16 {
                    return Err(CodecError::Truncated.into());
                }
                let mut ids = Vec::with_capacity(count);
                for _ in 0..count {
                    ids.push(MessageId(r.fixed()?));
                }
                Envelope::Receipt { ids }
            }
            KIND_SYSTEM_NOTICE => {
                let code = r.u16()?;
                let kind =
                    NoticeKind::from_code(code).ok_or(EnvelopeError::UnknownNoticeKind(code))?;
                let text = r.string(MAX_NOTICE_BYTES)?;
                Envelope::SystemNotice { kind, text }
            }
            KIND_IDENTITY_CARD => {
                let id = MessageId(r.fixed()?);
                let sent_at = r.u64()?;
                let first_name = optional(&mut r, |r| r.string(MAX_NAME_BYTES))?;
                let phone = optional(&mut r, |r| r.string(MAX_PHONE_BYTES))?;
                let photo = optional(&mut r, |r| Ok(r.bytes(MAX_PHOTO_BYTES)?.to_vec()))?;
                Envelope::IdentityCard {
                    id,
                    sent_at,
                    first_name,
                    phone,
                    photo,
                }
            }
            other => return Err(EnvelopeError::UnknownKind(other)),
        };
        r.finish()?;
        Ok(envelope)
    }
}

fn optional<T>(
    r: &mut Reader<'_>,
    read: impl FnOnce(&mut Reader<'_>) -> Result<T, CodecError>,
) -> Result<Option<T>, EnvelopeError> {
    match r.u8()? {
        0 => Ok(None),
        1 => Ok(Some(read(r)?)),
        other => Err(CodecError::BadTag(other).into()),
    }
}

fn check_len(field: &'static str, len: usize, max: usize) -> Result<(), EnvelopeError> {
    if len > max {
        Err(EnvelopeError::FieldTooLong { field, len, max })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Envelope> {
        vec![
            Envelope::Text {
                id: MessageId::random(),
                body: "hei på deg ✓".into(),
                sent_at: 1_700_000_000_000,
            },
            Envelope::Receipt {
                ids: vec![MessageId::random(), MessageId::random()],
            },
            Envelope::Receipt { ids: vec![] },
            Envelope::SystemNotice {
                kind: NoticeKind::ConversationPaused,
                text: String::new(),
            },
        ]
    }

    #[test]
    fn every_kind_round_trips() {
        for e in samples() {
            let bytes = e.encode().expect("encodes");
            assert_eq!(Envelope::decode(&bytes), Ok(e));
        }
    }

    #[test]
    fn unknown_versions_kinds_and_notice_kinds_are_typed_errors() {
        assert_eq!(
            Envelope::decode(&[2, 1]),
            Err(EnvelopeError::UnknownVersion(2))
        );
        assert_eq!(
            Envelope::decode(&[1, 99, 0]),
            Err(EnvelopeError::UnknownKind(99))
        );
        assert_eq!(
            Envelope::decode(&[1, 3, 0, 77, 0, 0, 0, 0]),
            Err(EnvelopeError::UnknownNoticeKind(77))
        );
        assert!(matches!(
            Envelope::decode(&[]),
            Err(EnvelopeError::Malformed(CodecError::Truncated))
        ));
    }

    #[test]
    fn truncated_padded_and_oversized_inputs_never_panic() {
        for e in samples() {
            let bytes = e.encode().expect("encodes");
            for cut in 0..bytes.len() {
                assert!(Envelope::decode(&bytes[..cut]).is_err());
            }
            let mut padded = bytes.clone();
            padded.push(0);
            assert!(matches!(
                Envelope::decode(&padded),
                Err(EnvelopeError::Malformed(CodecError::TrailingBytes(1)))
            ));
        }
        // A receipt that claims 1000 ids but carries none.
        assert!(Envelope::decode(&[1, 2, 0x03, 0xE8]).is_err());
        // A receipt over the id limit.
        assert!(matches!(
            Envelope::decode(&[1, 2, 0xFF, 0xFF]),
            Err(EnvelopeError::FieldTooLong { field: "ids", .. })
        ));
        // A text whose length prefix claims 4 GiB.
        let mut huge = vec![1, 1];
        huge.extend_from_slice(&[0; 24]);
        huge.extend_from_slice(&[0xFF; 4]);
        assert!(matches!(
            Envelope::decode(&huge),
            Err(EnvelopeError::Malformed(CodecError::TooLong { .. }))
        ));
        assert!(matches!(
            Envelope::decode(&vec![1; MAX_ENVELOPE_BYTES + 1]),
            Err(EnvelopeError::TooLarge { .. })
        ));
        // Invalid UTF-8 in a body.
        let mut bad = vec![1, 1];
        bad.extend_from_slice(&[0; 24]);
        bad.extend_from_slice(&[0, 0, 0, 1, 0xFF]);
        assert!(matches!(
            Envelope::decode(&bad),
            Err(EnvelopeError::Malformed(CodecError::NotUtf8))
        ));
    }

    #[test]
    fn oversized_fields_are_refused_at_encoding() {
        let e = Envelope::Text {
            id: MessageId::from_bytes([0; 16]),
            body: "x".repeat(MAX_TEXT_BYTES + 1),
            sent_at: 0,
        };
        assert!(matches!(
            e.encode(),
            Err(EnvelopeError::FieldTooLong { field: "body", .. })
        ));
    }
}
