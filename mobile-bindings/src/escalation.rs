//! Escalation in the SDK: a peer flags a conversation (a service user asks for help now)
//! with an excerpt of franked messages sealed to every responder device; HP devices keep an
//! escalation key, open excerpts and verify each message's commitment and server stamp; the
//! queue, acknowledgement and resolution; crisis resources.
//!
//! Received franked messages are kept by the `hooks::franking` receive hook. The in-conversation notice that a clinician
//! was asked to check in is always sent after a flag, in the clinic's wording.

use std::collections::BTreeMap;

use peerbridge_mls::excerpt::{self, EscalationKey, Excerpt, ExcerptMessage};
use peerbridge_mls::{Envelope, NoticeKind};
use peerbridge_openapi::Role;
use peerbridge_openapi::delivery::FrankingKeys;
use peerbridge_openapi::escalation::{
    Consultation, ConsultationCreate, ConsultationKind, CrisisResourceList, Debrief, DebriefCreate,
    EscalationKeyUpload, Flag, FlagCreate, FlagDetail, FlagKind, FlagNote, FlagOutcome,
    FlagProgress, FlagReassign, FlagReceipt, FlagResolve, Locale, RiskCategory, SealedExcerpt,
    Severity, SubjectIdentity, SubjectRequest,
};
use peerbridge_openapi::signed::escalation_key_message;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::client::PeerbridgeClient;
use crate::error::{Result, SdkError};
use crate::events::Event;
use crate::hooks::detector::{RiskSuggestion, suggest_risk};
use crate::hooks::franking::{KeptMessage, franked_key};
use crate::http::{b64, unb64};

pub(crate) const ESCALATION_KEY: &str = "escalation-key";
/// Flags raised on this device that the server has not confirmed yet.
const FLAG_OUTBOX: &str = "flag-outbox";
/// The person's language for what the clinic says back (`set_locale`).
const LOCALE: &str = "locale";
/// How each visible flag looked when this device last caught up (`flag_catch_up`).
const FLAGS_SEEN: &str = "flags-seen";
/// The clinic's crisis numbers as last fetched, per language (`draft_offer` works offline).
const CRISIS_RESOURCES: &str = "crisis-resources";
/// How long `draft_offer` waits for the clinic's list before it shows what it has.
const OFFER_FETCH_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// What the app offers a person whose own draft reads as risk: the crisis numbers (the
/// clinic's, in their language) and the help they can ask for here. Only an offer: nothing
/// is sent, flagged or kept by it, and the draft never leaves the device.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, uniffi::Record)]
pub struct DraftOffer {
    /// What the on-device detector read in the draft.
    pub suggestion: RiskSuggestion,
    pub resources: CrisisResourceList,
    /// This person can press "I need help now" (service users).
    pub help_now: bool,
    /// This person can ask their supervisors for an urgent talk (peer supporters).
    pub debrief: bool,
}

/// A flag waiting on the device: the excerpt in the clear (the device's store is sealed),
/// sealed to the responders only when it is delivered, so an offline raise needs nothing
/// from the server.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct QueuedFlag {
    client_id: Uuid,
    conversation: Uuid,
    kind: FlagKind,
    category: Option<RiskCategory>,
    severity: Option<Severity>,
    excerpt: Excerpt,
}

/// A flag this device raised that has not reached the clinic yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema, uniffi::Record)]
pub struct QueuedFlagInfo {
    pub client_id: Uuid,
    pub conversation: Uuid,
    pub kind: FlagKind,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct StoredEscalationKey {
    pub(crate) secret: Vec<u8>,
    pub(crate) public: Vec<u8>,
}

/// One verified line of an opened excerpt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema, uniffi::Record)]
pub struct ExcerptLine {
    pub seq: u64,
    /// The sender as the conversation knows them (an alias in introductions).
    pub sender: String,
    pub received_at: i64,
    pub text: String,
}

/// A flag as its responder opened and verified it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, uniffi::Record)]
pub struct OpenedFlag {
    pub flag: Flag,
    pub note: String,
    pub lines: Vec<ExcerptLine>,
}

impl PeerbridgeClient {
    // ------------------------------------------------------------------ raising

    /// A peer supporter flags the conversation: the messages at `seqs` (as received here)
    /// and the note are sealed to every responder device; then the conversation is told
    /// that a clinician was asked to check in.
    pub async fn raise_flag(
        &self,
        conversation: Uuid,
        category: RiskCategory,
        severity: Severity,
        note: &str,
        seqs: &[u64],
    ) -> Result<FlagReceipt> {
        self.raise(
            conversation,
            FlagKind::Flag,
            Some(category),
            Some(severity),
            note,
            seqs,
        )
        .await
    }

    /// A service user's "I need help now" (category and severity preset by the server).
    pub async fn help_now(
        &self,
        conversation: Uuid,
        note: &str,
        seqs: &[u64],
    ) -> Result<FlagReceipt> {
        self.raise(conversation, FlagKind::HelpNow, None, None, note, seqs)
            .await
    }

    async fn raise(
        &self,
        conv: Uuid,
        kind: FlagKind,
        category: Option<RiskCategory>,
        severity: Option<Severity>,
        note: &str,
        seqs: &[u64],
    ) -> Result<FlagReceipt> {
        let st = self.joined_state(conv)?;
        let gid = self.group_of(&st)?;
        let mut messages = Vec::new();
        for seq in seqs {
            let kept: KeptMessage = self
                .state_get(&franked_key(conv, *seq))?
                .ok_or_else(|| SdkError::NotFound(format!("no received message {seq} to quote")))?;
            let stamp = kept.stamp.ok_or_else(|| {
                SdkError::InvalidInput(format!("message {seq} carries no server stamp"))
            })?;
            messages.push(ExcerptMessage {
                plaintext: kept.plaintext,
                franking_key: kept.key,
                commitment: kept.commitment,
                stamp,
            });
        }
        // Queued on the device before anything leaves it, under one client id for good: a
        // retry after a lost answer, or the delivery after the phone was offline, is the same
        // flag to the server (stored once).
        let queued = QueuedFlag {
            client_id: Uuid::new_v4(),
            conversation: conv,
            kind,
            category,
            severity,
            excerpt: Excerpt {
                version: 1,
                group_id: gid.as_bytes().to_vec(),
                note: note.to_owned(),
                messages,
            },
        };
        {
            let _g = self.flag_outbox_lock.lock().await;
            let mut outbox: Vec<QueuedFlag> = self.state_get(FLAG_OUTBOX)?.unwrap_or_default();
            outbox.push(queued.clone());
            self.state_put(FLAG_OUTBOX, &outbox)?;
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.deliver_flag(&queued).await {
                Err(e) if e.is_transient() && attempt < self.options.max_send_attempts => {
                    self.backoff(attempt).await;
                }
                // Still queued: the next sync (the stream's, on reconnecting) delivers it and
                // reports `Event::FlagRaised`.
                Err(e) if e.is_transient() => return Err(e),
                other => {
                    self.unqueue_flag(queued.client_id).await?;
                    let receipt = other?;
                    self.tell_conversation(conv, &receipt).await;
                    return Ok(receipt);
                }
            }
        }
    }

    /// Seals the excerpt to the responders' current keys and posts the flag (one attempt).
    async fn deliver_flag(&self, q: &QueuedFlag) -> Result<FlagReceipt> {
        let conv = q.conversation;
        // Only keys the clinic's authority certified (see `authority`): the server cannot
        // slip in a reader of its own. With none trusted the flag still goes, unreadable
        // by nobody because it holds no copy: the alarm matters more than the quote.
        let mut excerpts = Vec::new();
        for (r, pk) in self.trusted_recipients(conv).await? {
            let (enc, ct) =
                excerpt::seal(&q.excerpt, &pk).map_err(|e| SdkError::Mls(e.to_string()))?;
            excerpts.push(SealedExcerpt {
                public_key: r.public_key.clone(),
                enc: b64(&enc),
                ciphertext: b64(&ct),
            });
        }
        self.authed(
            Method::POST,
            &format!("/v1/conversations/{conv}/flags"),
            Some(&FlagCreate {
                client_id: q.client_id,
                kind: q.kind,
                category: q.category,
                severity: q.severity,
                excerpts,
                locale: self.state_get(LOCALE)?,
                subject: None,
            }),
        )
        .await?
        .json()
    }

    async fn unqueue_flag(&self, client_id: Uuid) -> Result<()> {
        let _g = self.flag_outbox_lock.lock().await;
        let mut outbox: Vec<QueuedFlag> = self.state_get(FLAG_OUTBOX)?.unwrap_or_default();
        outbox.retain(|q| q.client_id != client_id);
        self.state_put(FLAG_OUTBOX, &outbox)
    }

    /// The notice is part of raising a flag: the wording is the server's, the notice is not
    /// optional. When somebody was alerted it is a `clinician_asked` notice (readers' apps
    /// show the clinic's wording in their own language); when nobody could be, a plain
    /// `info` line with the server's "received, not yet confirmed": no reader's app may turn
    /// it into "a clinician was asked".
    async fn tell_conversation(&self, conv: Uuid, receipt: &FlagReceipt) {
        let kind = if receipt.asked {
            NoticeKind::ClinicianAsked
        } else {
            NoticeKind::Info
        };
        if let Err(e) = self
            .send_envelope(
                conv,
                &Envelope::SystemNotice {
                    kind,
                    text: receipt.notice.clone(),
                },
            )
            .await
        {
            tracing::warn!(code = e.code(), "the check-in notice could not be sent yet");
        }
    }

    /// Delivers the flags still queued on this device (for `only` one conversation, or all):
    /// one attempt each; each delivered flag is reported as `Event::FlagRaised` in its
    /// conversation's inbox. A transport failure leaves the rest queued for the next sync;
    /// a refusal (the conversation is gone, the server says no) drops that flag and reports
    /// it as `Event::FlagFailed`.
    pub(crate) async fn flush_flags(&self, only: Option<Uuid>) -> Result<()> {
        let queued: Vec<QueuedFlag> = self.state_get(FLAG_OUTBOX)?.unwrap_or_default();
        for q in queued {
            if only.is_some_and(|c| c != q.conversation) {
                continue;
            }
            let event = match self.deliver_flag(&q).await {
                Ok(receipt) => {
                    self.tell_conversation(q.conversation, &receipt).await;
                    Event::FlagRaised {
                        conversation: q.conversation,
                        flag: receipt.id,
                        client_id: q.client_id,
                        asked: receipt.asked,
                    }
                }
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => Event::FlagFailed {
                    conversation: q.conversation,
                    client_id: q.client_id,
                    reason: e.code().to_owned(),
                },
            };
            self.unqueue_flag(q.client_id).await?;
            let lock = self.conv_lock(q.conversation);
            let _g = lock.lock().await;
            self.push_events(q.conversation, vec![event])?;
        }
        Ok(())
    }

    /// Flags this device raised that have not reached the clinic yet.
    pub fn queued_flags(&self) -> Result<Vec<QueuedFlagInfo>> {
        let queued: Vec<QueuedFlag> = self.state_get(FLAG_OUTBOX)?.unwrap_or_default();
        Ok(queued
            .into_iter()
            .map(|q| QueuedFlagInfo {
                client_id: q.client_id,
                conversation: q.conversation,
                kind: q.kind,
            })
            .collect())
    }

    /// Where a flag this user raised stands: received (open, not yet acknowledged),
    /// acknowledged or resolved, and the clinic's out-of-hours service when it was raised
    /// out of hours. `Event::FlagChanged` tells when it moves.
    pub async fn flag_progress(&self, flag: Uuid) -> Result<FlagProgress> {
        self.get(&format!("/v1/flags/{flag}/progress")).await
    }

    /// The flags this user raised, newest first (at most 100).
    pub async fn my_flags(&self) -> Result<Vec<FlagProgress>> {
        self.get("/v1/me/flags").await
    }

    /// The language the person reads the app in: the clinic's answer to a flag (the
    /// receipt's notice, the "received, not yet confirmed" line) comes back in it. Kept on
    /// the device, so a flag delivered later from the outbox uses it too.
    pub fn set_locale(&self, locale: Locale) -> Result<()> {
        if self.state_get::<Locale>(LOCALE)? == Some(locale) {
            return Ok(());
        }
        self.state_put(LOCALE, &locale)
    }

    /// After (re)connecting: a `FlagChanged` for every flag this user can see that is new,
    /// changed or gone since this device last looked. Notices sent while the device was away
    /// are lost with the socket; a flag raised at night must not wait for the next one.
    /// Responders compare the clinic queue, raisers their own flags.
    pub(crate) async fn flag_catch_up(&self) -> Result<Vec<Event>> {
        let now: BTreeMap<Uuid, String> = match self.session_info()?.role {
            Role::Hp | Role::ClinicAdmin => self
                .flags()
                .await?
                .into_iter()
                .map(|f| {
                    let look = format!(
                        "{:?}|{}|{:?}|{:?}|{}",
                        f.status, f.level, f.assigned_to, f.acknowledged_by, f.deadline_at
                    );
                    (f.id, look)
                })
                .collect(),
            Role::Peer | Role::ServiceUser => self
                .my_flags()
                .await?
                .into_iter()
                .map(|f| (f.id, format!("{:?}|{:?}", f.status, f.acknowledged_at)))
                .collect(),
            Role::Operator => return Ok(Vec::new()),
        };
        let before: BTreeMap<Uuid, String> = self.state_get(FLAGS_SEEN)?.unwrap_or_default();
        let mut changed: Vec<Uuid> = now
            .iter()
            .filter(|(id, look)| before.get(*id) != Some(*look))
            .map(|(id, _)| *id)
            .collect();
        changed.extend(before.keys().filter(|id| !now.contains_key(*id)));
        if before != now {
            self.state_put(FLAGS_SEEN, &now)?;
        }
        Ok(changed
            .into_iter()
            .map(|flag| Event::FlagChanged { flag })
            .collect())
    }

    // ------------------------------------------------------------------ responders

    /// Creates (once) and publishes this HP device's escalation key, signed by the device.
    pub async fn ensure_escalation_key(&self) -> Result<()> {
        let key = match self.state_get::<StoredEscalationKey>(ESCALATION_KEY)? {
            Some(k) => k,
            None => {
                let k = EscalationKey::generate().map_err(|e| SdkError::Mls(e.to_string()))?;
                let stored = StoredEscalationKey {
                    secret: k.secret.to_vec(),
                    public: k.public.clone(),
                };
                self.state_put(ESCALATION_KEY, &stored)?;
                stored
            }
        };
        let signature = self.device_sign(&escalation_key_message(&key.public))?;
        self.authed(
            Method::PUT,
            "/v1/me/escalation-key",
            Some(&EscalationKeyUpload {
                public_key: b64(&key.public),
                signature: b64(&signature),
            }),
        )
        .await?;
        Ok(())
    }

    /// The caller's queue (most severe first, then oldest).
    pub async fn flags(&self) -> Result<Vec<Flag>> {
        self.get("/v1/flags").await
    }

    /// Opens a flag's excerpt sealed to this device (without verifying it).
    pub async fn opened_excerpt(&self, id: Uuid) -> Result<(Flag, Excerpt)> {
        let d: FlagDetail = self.get(&format!("/v1/flags/{id}")).await?;
        let sealed = d
            .excerpt
            .ok_or_else(|| SdkError::NotFound("no excerpt was sealed to this device".into()))?;
        let key: StoredEscalationKey = self
            .state_get(ESCALATION_KEY)?
            .ok_or_else(|| SdkError::NotFound("this device has no escalation key".into()))?;
        let group = unb64("group_id", &d.flag.group_id)?;
        let ex = excerpt::open(
            &key.secret,
            &unb64("enc", &sealed.enc)?,
            &unb64("ciphertext", &sealed.ciphertext)?,
            &group,
        )
        .map_err(|e| SdkError::Mls(e.to_string()))?;
        Ok((d.flag, ex))
    }

    /// Verifies an excerpt against the flag's conversation and the server's franking keys:
    /// changed, reordered or foreign messages fail.
    pub async fn verify_excerpt(&self, flag: &Flag, ex: &Excerpt) -> Result<Vec<ExcerptLine>> {
        let keys: FrankingKeys = self.get("/v1/franking-keys").await?;
        let keys: BTreeMap<String, [u8; 32]> = keys
            .keys
            .iter()
            .filter_map(|(kid, k)| {
                let k = unb64("franking key", k).ok()?;
                Some((kid.clone(), <[u8; 32]>::try_from(k.as_slice()).ok()?))
            })
            .collect();
        let group = unb64("group_id", &flag.group_id)?;
        let verified =
            excerpt::verify(ex, &group, &keys).map_err(|e| SdkError::Mls(e.to_string()))?;
        Ok(verified
            .into_iter()
            .map(|m| ExcerptLine {
                seq: m.seq,
                sender: m.sender,
                received_at: m.received_at,
                text: match m.envelope {
                    Envelope::Text { body, .. } => body,
                    other => format!("{other:?}"),
                },
            })
            .collect())
    }

    /// Opens and verifies a flag's excerpt.
    pub async fn open_flag(&self, id: Uuid) -> Result<OpenedFlag> {
        let (flag, ex) = self.opened_excerpt(id).await?;
        // "I need help now" may quote nothing: there is then nothing to verify, and the
        // clinician still needs the flag (and its note) open. A risk flag must quote.
        let lines = if ex.messages.is_empty() && flag.kind == FlagKind::HelpNow {
            Vec::new()
        } else {
            self.verify_excerpt(&flag, &ex).await?
        };
        Ok(OpenedFlag {
            flag,
            note: ex.note,
            lines,
        })
    }

    /// A flag with its history (audited on the server).
    pub async fn flag(&self, id: Uuid) -> Result<FlagDetail> {
        self.get(&format!("/v1/flags/{id}")).await
    }

    /// Adds a note to a flag (sealed at rest on the server).
    pub async fn add_flag_note(&self, id: Uuid, note: String) -> Result<FlagDetail> {
        self.authed(
            Method::POST,
            &format!("/v1/flags/{id}/notes"),
            Some(&FlagNote { note }),
        )
        .await?
        .json()
    }

    /// Hands a flag to another HP of the clinic.
    pub async fn reassign_flag(&self, id: Uuid, hp: Uuid) -> Result<FlagDetail> {
        self.authed(
            Method::POST,
            &format!("/v1/flags/{id}/reassign"),
            Some(&FlagReassign { hp_id: hp }),
        )
        .await?
        .json()
    }

    /// Who the flagged person is, to reach them. `reason` (1–500 characters, not blank) says
    /// why and is kept with the read's audit entry.
    pub async fn flag_subject(&self, id: Uuid, reason: &str) -> Result<SubjectIdentity> {
        self.authed(
            Method::POST,
            &format!("/v1/flags/{id}/subject"),
            Some(&SubjectRequest {
                reason: reason.to_owned(),
            }),
        )
        .await?
        .json()
    }

    pub async fn acknowledge_flag(&self, id: Uuid) -> Result<FlagDetail> {
        self.authed::<()>(Method::POST, &format!("/v1/flags/{id}/acknowledge"), None)
            .await?
            .json()
    }

    pub async fn resolve_flag(
        &self,
        id: Uuid,
        outcome: FlagOutcome,
        note: Option<String>,
    ) -> Result<FlagDetail> {
        self.authed(
            Method::POST,
            &format!("/v1/flags/{id}/resolve"),
            Some(&FlagResolve { outcome, note }),
        )
        .await?
        .json()
    }

    pub async fn crisis_resources(&self, locale: Locale) -> Result<CrisisResourceList> {
        let l = locale.code();
        let list: CrisisResourceList = self
            .get(&format!("/v1/crisis-resources?locale={l}"))
            .await?;
        self.state_put(&format!("{CRISIS_RESOURCES}-{l}"), &list)?;
        Ok(list)
    }

    /// The writer's side of the detector: when the person's own `draft` reads as risk, what
    /// to offer them before they send it (`None` for a draft that does not). The draft is
    /// read on this device only. The numbers are the clinic's as last fetched; with none
    /// kept it waits a moment for the server and otherwise offers the national numbers, so
    /// the offer never depends on a connection. Nothing is sent or flagged.
    pub async fn draft_offer(&self, draft: &str) -> Result<Option<DraftOffer>> {
        let Some(suggestion) = suggest_risk(draft) else {
            return Ok(None);
        };
        let role = self.session_info()?.role;
        let locale = self.state_get::<Locale>(LOCALE)?.unwrap_or(Locale::Nb);
        let kept =
            self.state_get::<CrisisResourceList>(&format!("{CRISIS_RESOURCES}-{}", locale.code()))?;
        let resources = match kept {
            Some(list) => list,
            None => {
                match crate::platform::timeout(OFFER_FETCH_WAIT, self.crisis_resources(locale))
                    .await
                {
                    Ok(Ok(list)) => list,
                    _ => CrisisResourceList {
                        locale,
                        resources: peerbridge_openapi::escalation::CrisisResource::defaults(locale),
                        check_in_notice: None,
                    },
                }
            }
        };
        Ok(Some(DraftOffer {
            suggestion,
            resources,
            help_now: role == Role::ServiceUser,
            debrief: role == Role::Peer,
        }))
    }

    // ------------------------------------------------------------------ supervision

    /// A peer supporter asks their supervisors for a debrief (no content travels).
    pub async fn request_debrief(
        &self,
        introduction: Option<Uuid>,
        urgent: bool,
    ) -> Result<Debrief> {
        self.authed(
            Method::POST,
            "/v1/me/debriefs",
            Some(&DebriefCreate {
                client_id: Uuid::new_v4(),
                introduction_id: introduction,
                severity: Some(if urgent {
                    Severity::Urgent
                } else {
                    Severity::Routine
                }),
            }),
        )
        .await?
        .json()
    }

    /// Debrief requests of the peers this HP supervises.
    pub async fn debrief_queue(&self) -> Result<Vec<Debrief>> {
        self.get("/v1/debriefs").await
    }

    /// The debriefs this peer supporter requested, with their state.
    pub async fn my_debriefs(&self) -> Result<Vec<Debrief>> {
        self.get("/v1/me/debriefs").await
    }

    pub async fn acknowledge_debrief(&self, id: Uuid) -> Result<Debrief> {
        self.authed::<()>(
            Method::POST,
            &format!("/v1/debriefs/{id}/acknowledge"),
            None,
        )
        .await?
        .json()
    }

    /// Logs a consultation for the compensation report: date, minutes, kind — never content.
    pub async fn log_consultation(
        &self,
        date: chrono::NaiveDate,
        duration_minutes: u32,
        kind: ConsultationKind,
    ) -> Result<Consultation> {
        self.authed(
            Method::POST,
            "/v1/me/consultations",
            Some(&ConsultationCreate {
                client_id: Uuid::new_v4(),
                date,
                duration_minutes,
                kind,
            }),
        )
        .await?
        .json()
    }

    pub async fn my_consultations(&self) -> Result<Vec<Consultation>> {
        self.get("/v1/me/consultations").await
    }
}
