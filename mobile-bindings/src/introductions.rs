//! Introductions in the SDK: the HP side (profiles, needs, suggestions, proposals), the
//! parties' side (accept, decline, pause, close, block, report), opening the pseudonymous
//! conversation when both accepted, signed consents and the identity-card reveal, and the
//! introducing HP joining once both parties consented.
//!
//! Trust rules, all enforced here and not by the server:
//! - A consent counts only if its signature verifies against a current member leaf of this
//!   device's own view of the group: the counterpart's must come from a pseudonymous leaf
//!   that is not ours, ours from our own leaf. A record that fails is reported
//!   ([`Event::ConsentRejected`]) and ignored, so the server cannot forge a consent.
//! - The latest valid statement per side and scope (by its signed `issued_at`; at the same
//!   second a withdrawal wins) decides, and the client keeps that state itself: its own
//!   actions as it took them, and the newest valid counterpart statement it has seen. The
//!   server's list can only move it forward, so a grant replayed after a withdrawal this
//!   client saw (or made) changes nothing. (Not covered: a withdrawal the server withholds
//!   before this client ever saw it; the withdrawing side never sends its card, but this side
//!   may still send its own.)
//! - The identity card is sent once, inside the group, only when both sides' latest valid
//!   `reveal` statements are grants. After that, this side's reveal cannot be withdrawn.
//! - The introducing HP's devices are admitted to the group only when both sides' latest
//!   valid `invite_hp` statements are grants and the joining device is one the server lists
//!   for the introducing HP; any other add is refused and shown.

use chrono::Utc;
use peerbridge_mls::{Client as MlsClient, CredentialKind, Envelope, GroupId, MessageId};
use peerbridge_openapi::Role;
use peerbridge_openapi::delivery::{
    ClaimTarget, Conversation, ConversationCreate, ConversationKind, KeyPackageClaim,
};
use peerbridge_openapi::introductions::{
    BoundaryCategory, BoundaryReport, BoundaryReportCreate, ConsentAction, ConsentRecord,
    ConsentScope, ConsentUpload, IntroductionCreate, IntroductionDetail, IntroductionState, Needs,
    NeedsRecord, OwnPeerProfileUpdate, PartyIntroduction, PeerApproval, PeerProfile,
    PeerProfileUpdate, Rematch, Suggestion, Topic, TopicList,
};
use peerbridge_openapi::signed::consent_statement;
use reqwest::Method;
use uuid::Uuid;

use crate::client::{ConvPolicy, ConvState, IntroPolicy, PeerbridgeClient, conv_key};
use crate::error::{Result, SdkError};
use crate::events::Event;
pub use crate::hooks::cards::IdentityCard;
use crate::hooks::cards::card_received_key;
use crate::http::{b64, unb64};
use crate::state;

/// The consents this client has verified for an introduction.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema, uniffi::Record,
)]
pub struct ConsentState {
    pub my_reveal: bool,
    pub their_reveal: bool,
    pub my_invite_hp: bool,
    pub their_invite_hp: bool,
    /// Records that failed verification and were ignored.
    pub rejected: u32,
    /// This device has sent its identity card.
    pub card_sent: bool,
}

const CARD_KEY: &str = "identity-card";

fn card_sent_key(intro: Uuid) -> String {
    format!("card-sent/{intro}")
}

/// The consent state this client keeps itself, per introduction: for each (whose, scope)
/// the newest verified record it has seen, and its own actions as it took them. The
/// server's list can add newer records but never take the client back: a grant the server
/// replays after a withdrawal the client has seen, or a grant of its own after it withdrew,
/// changes nothing.
fn consent_seen_key(intro: Uuid) -> String {
    format!("consent-seen/{intro}")
}

/// (mine, reveal) → (issued_at, grant), as a list for the store's codec.
type ConsentSlots = Vec<((bool, bool), (i64, bool))>;

/// Whether a record (issued_at, grant) is newer than what was seen. At the same second a
/// withdrawal wins over a grant: a replay can never beat a withdrawal by a tie.
fn newer(record: (i64, bool), seen: Option<(i64, bool)>) -> bool {
    match seen {
        None => true,
        Some(s) => (record.0, !record.1) > (s.0, !s.1),
    }
}

impl PeerbridgeClient {
    // ------------------------------------------------------------------ HP side

    pub async fn topics(&self, clinic: Uuid) -> Result<Vec<Topic>> {
        self.get(&format!("/v1/clinics/{clinic}/topics")).await
    }

    pub async fn set_topics(&self, clinic: Uuid, topics: Vec<Topic>) -> Result<Vec<Topic>> {
        self.authed(
            Method::PUT,
            &format!("/v1/clinics/{clinic}/topics"),
            Some(&TopicList { topics }),
        )
        .await?
        .json()
    }

    pub async fn peer_profiles(&self, clinic: Uuid) -> Result<Vec<PeerProfile>> {
        self.get(&format!("/v1/clinics/{clinic}/peers")).await
    }

    pub async fn set_peer_profile(
        &self,
        clinic: Uuid,
        peer: Uuid,
        profile: &PeerProfileUpdate,
    ) -> Result<PeerProfile> {
        self.authed(
            Method::PUT,
            &format!("/v1/clinics/{clinic}/peers/{peer}/profile"),
            Some(profile),
        )
        .await?
        .json()
    }

    pub async fn approve_peer(
        &self,
        clinic: Uuid,
        peer: Uuid,
        trained_on: chrono::NaiveDate,
    ) -> Result<PeerProfile> {
        self.authed(
            Method::POST,
            &format!("/v1/clinics/{clinic}/peers/{peer}/approval"),
            Some(&PeerApproval { trained_on }),
        )
        .await?
        .json()
    }

    pub async fn withdraw_peer_approval(&self, clinic: Uuid, peer: Uuid) -> Result<PeerProfile> {
        self.authed::<()>(
            Method::DELETE,
            &format!("/v1/clinics/{clinic}/peers/{peer}/approval"),
            None,
        )
        .await?
        .json()
    }

    /// One peer's profile as the clinic sees it.
    pub async fn peer_profile(&self, clinic: Uuid, peer: Uuid) -> Result<PeerProfile> {
        self.get(&format!("/v1/clinics/{clinic}/peers/{peer}/profile"))
            .await
    }

    /// A service user's recorded needs (what suggestions rank peers by).
    pub async fn needs(&self, clinic: Uuid, user: Uuid) -> Result<NeedsRecord> {
        self.get(&format!("/v1/clinics/{clinic}/users/{user}/needs"))
            .await
    }

    pub async fn set_needs(&self, clinic: Uuid, user: Uuid, needs: &Needs) -> Result<NeedsRecord> {
        self.authed(
            Method::PUT,
            &format!("/v1/clinics/{clinic}/users/{user}/needs"),
            Some(needs),
        )
        .await?
        .json()
    }

    pub async fn suggestions(&self, clinic: Uuid, user: Uuid) -> Result<Vec<Suggestion>> {
        self.get(&format!(
            "/v1/clinics/{clinic}/users/{user}/suggestions?limit=20"
        ))
        .await
    }

    pub async fn propose_introduction(
        &self,
        clinic: Uuid,
        proposal: &IntroductionCreate,
    ) -> Result<IntroductionDetail> {
        self.authed(
            Method::POST,
            &format!("/v1/clinics/{clinic}/introductions"),
            Some(proposal),
        )
        .await?
        .json()
    }

    pub async fn clinic_introductions(&self, clinic: Uuid) -> Result<Vec<IntroductionDetail>> {
        self.get(&format!("/v1/clinics/{clinic}/introductions"))
            .await
    }

    pub async fn clinic_introduction(&self, clinic: Uuid, id: Uuid) -> Result<IntroductionDetail> {
        self.get(&format!("/v1/clinics/{clinic}/introductions/{id}"))
            .await
    }

    /// `pause`, `resume` or `close` an introduction as the clinic's HP.
    pub async fn hp_introduction_action(
        &self,
        clinic: Uuid,
        id: Uuid,
        action: &str,
    ) -> Result<IntroductionDetail> {
        if !matches!(action, "pause" | "resume" | "close") {
            return Err(SdkError::InvalidInput("pause, resume or close".into()));
        }
        self.authed::<()>(
            Method::POST,
            &format!("/v1/clinics/{clinic}/introductions/{id}/{action}"),
            None,
        )
        .await?
        .json()
    }

    pub async fn rematch(&self, clinic: Uuid, id: Uuid, r: &Rematch) -> Result<IntroductionDetail> {
        self.authed(
            Method::POST,
            &format!("/v1/clinics/{clinic}/introductions/{id}/rematch"),
            Some(r),
        )
        .await?
        .json()
    }

    pub async fn boundary_reports(&self, clinic: Uuid, id: Uuid) -> Result<Vec<BoundaryReport>> {
        self.get(&format!("/v1/clinics/{clinic}/introductions/{id}/reports"))
            .await
    }

    pub async fn mark_report_handled(
        &self,
        clinic: Uuid,
        id: Uuid,
        report: Uuid,
    ) -> Result<BoundaryReport> {
        self.authed::<()>(
            Method::POST,
            &format!("/v1/clinics/{clinic}/introductions/{id}/reports/{report}/handled"),
            None,
        )
        .await?
        .json()
    }

    /// The introducing HP joins the introduction's conversation (an external commit), which
    /// the server and the parties' clients allow only after both parties granted
    /// `invite_hp`.
    pub async fn join_introduction(
        &self,
        conversation: Uuid,
        introduction: Uuid,
    ) -> Result<Vec<Event>> {
        let lock = self.conv_lock(conversation);
        let _g = lock.lock().await;
        let mut st = self.conv_state(conversation)?.unwrap_or_default();
        st.introduction = Some(introduction);
        st.pseudonymous = false;
        self.save_conv(conversation, &mut st, Vec::new())?;
        self.rejoin_locked(conversation).await?;
        self.drain_locked(conversation)
    }

    // ------------------------------------------------------------------ peer self

    pub async fn own_peer_profile(&self) -> Result<PeerProfile> {
        self.get("/v1/me/peer-profile").await
    }

    pub async fn update_own_peer_profile(
        &self,
        update: &OwnPeerProfileUpdate,
    ) -> Result<PeerProfile> {
        self.authed(Method::PATCH, "/v1/me/peer-profile", Some(update))
            .await?
            .json()
    }

    // ------------------------------------------------------------------ parties

    pub async fn introductions(&self) -> Result<Vec<PartyIntroduction>> {
        self.get("/v1/introductions").await
    }

    pub async fn introduction(&self, id: Uuid) -> Result<PartyIntroduction> {
        self.get(&format!("/v1/introductions/{id}")).await
    }

    async fn party_action(&self, id: Uuid, action: &str) -> Result<PartyIntroduction> {
        self.authed::<()>(
            Method::POST,
            &format!("/v1/introductions/{id}/{action}"),
            None,
        )
        .await?
        .json()
    }

    /// Accepts; when both have accepted, opens the conversation (or waits for the other
    /// side's Welcome) and returns the conversation's events so far.
    pub async fn accept_introduction(&self, id: Uuid) -> Result<PartyIntroduction> {
        let intro = self.party_action(id, "accept").await?;
        if intro.state == IntroductionState::Active {
            self.open_introduction(id).await?;
        }
        self.introduction(id).await
    }

    pub async fn decline_introduction(&self, id: Uuid) -> Result<PartyIntroduction> {
        self.party_action(id, "decline").await
    }

    pub async fn pause_introduction(&self, id: Uuid) -> Result<PartyIntroduction> {
        self.party_action(id, "pause").await
    }

    pub async fn resume_introduction(&self, id: Uuid) -> Result<PartyIntroduction> {
        self.party_action(id, "resume").await
    }

    pub async fn close_introduction(&self, id: Uuid) -> Result<PartyIntroduction> {
        self.party_action(id, "close").await
    }

    /// Blocks the counterpart: the introduction ends, no further messages are delivered and
    /// the clinic's HPs are told.
    pub async fn block_counterpart(&self, id: Uuid) -> Result<PartyIntroduction> {
        self.party_action(id, "block").await
    }

    pub async fn report_boundary(
        &self,
        id: Uuid,
        category: BoundaryCategory,
        note: Option<String>,
    ) -> Result<BoundaryReport> {
        self.authed(
            Method::POST,
            &format!("/v1/introductions/{id}/reports"),
            Some(&BoundaryReportCreate {
                client_id: Uuid::new_v4(),
                category,
                note,
            }),
        )
        .await?
        .json()
    }

    /// Opens an active introduction's conversation: the server's conversation is created
    /// once (whoever asks first); the first party whose opening commit is accepted creates
    /// the group with the counterpart's pseudonymous devices, the other joins from the
    /// Welcome. Returns the conversation id.
    pub async fn open_introduction(&self, id: Uuid) -> Result<Uuid> {
        let conv = self.introduction_conversation(id).await?;
        let lock = self.conv_lock(conv.id);
        let _g = lock.lock().await;
        let mut st = self.conv_state(conv.id)?.unwrap_or_default();
        st.introduction = Some(id);
        st.pseudonymous = true;
        // The app's call and the event loop's notice can both open on this device; one may
        // have lost to the other party while this one waited for the lock, so the epoch
        // read before the lock is stale: read it again before claiming key packages (a
        // second claim would find the counterpart's packages spent).
        let conv = if st.group_id_known() || conv.epoch > 0 {
            conv
        } else {
            self.introduction_conversation(id).await?
        };
        if st.group_id_known() || conv.epoch > 0 {
            self.save_conv(conv.id, &mut st, Vec::new())?;
            self.add_known(conv.id)?;
            drop(_g);
            self.accept_welcomes().await?;
            return Ok(conv.id);
        }
        let claimed: Vec<peerbridge_openapi::delivery::ClaimedKeyPackage> = self
            .authed(
                Method::POST,
                &format!("/v1/conversations/{}/key-packages/claim", conv.id),
                Some(&KeyPackageClaim {
                    user_id: None,
                    member: Some(ClaimTarget::Counterpart),
                }),
            )
            .await?
            .json()?;
        let kps = claimed
            .iter()
            .map(|c| unb64("key_package", &c.key_package))
            .collect::<Result<Vec<_>>>()?;
        let gid = GroupId::new(unb64("group_id", &conv.group_id)?)?;
        let pc = self
            .mls()?
            .create_group_with(&gid, &kps, CredentialKind::Pseudonymous)?;
        match self.submit(conv.id, &pc).await {
            Ok(accepted) => {
                st.group_id_set(b64(gid.as_bytes()));
                self.save_conv(conv.id, &mut st, Vec::new())?;
                let events = self.accepted(conv.id, &gid, &[])?;
                let mut st = self.joined_state(conv.id)?;
                st.cursor = accepted.seq;
                self.save_conv(conv.id, &mut st, events)?;
                self.add_known(conv.id)?;
            }
            Err(e) => {
                {
                    let mut mls = self.mls()?;
                    let _ = mls.commit_rejected(&gid);
                    mls.forget_group(&gid)?;
                }
                self.save_conv(conv.id, &mut st, Vec::new())?;
                self.add_known(conv.id)?;
                match e {
                    // The other party opened it first: their Welcome brings us in.
                    SdkError::StaleEpoch(_) => {
                        drop(_g);
                        self.accept_welcomes().await?;
                    }
                    other => return Err(other),
                }
            }
        }
        Ok(conv.id)
    }

    /// The introduction's conversation as the server has it now (created on first call).
    async fn introduction_conversation(&self, id: Uuid) -> Result<Conversation> {
        self.authed(
            Method::POST,
            "/v1/conversations",
            Some(&ConversationCreate {
                kind: ConversationKind::Introduction,
                peer_id: None,
                introduction_id: Some(id),
            }),
        )
        .await?
        .json()
    }

    /// Called for an `introduction` stream notice: opens the conversation when it became
    /// active, re-checks consents (and reveals when both hold), and tells the app.
    pub(crate) async fn on_introduction_changed(&self, id: Uuid) -> Result<Vec<Event>> {
        let mut out = vec![Event::IntroductionChanged { introduction: id }];
        let Ok(intro) = self.introduction(id).await else {
            return Ok(out); // not a party (e.g. the introducing HP): nothing to open
        };
        if intro.state == IntroductionState::Active && !self.has_group_for(id)? {
            self.open_introduction(id).await?;
        }
        if let Some(conv) = intro.conversation_id
            && self.conv_state(conv)?.is_some_and(|s| s.group_id_known())
        {
            out.extend(self.sync(conv).await?);
            let (_, events) = self.check_consents(id, conv).await?;
            out.extend(events);
        }
        Ok(out)
    }

    fn has_group_for(&self, intro: Uuid) -> Result<bool> {
        for conv in self.known_conversations()? {
            if self
                .conv_state(conv)?
                .is_some_and(|s| s.introduction == Some(intro) && s.group_id_known())
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn conversation_of(&self, intro: &PartyIntroduction) -> Result<(Uuid, GroupId)> {
        let conv = intro
            .conversation_id
            .ok_or_else(|| SdkError::Conflict("the conversation has not been opened yet".into()))?;
        let st = self.joined_state(conv)?;
        Ok((conv, self.group_of(&st)?))
    }

    // ------------------------------------------------------------------ consents

    /// Signs and records a consent (`reveal` or `invite_hp`) with this device's leaf key in
    /// the introduction's group; then reveals if both consents now hold.
    pub async fn consent(&self, id: Uuid, scope: ConsentScope) -> Result<ConsentState> {
        self.record_consent(id, scope, ConsentAction::Grant).await
    }

    /// Withdraws a consent (refused once this device has sent its identity card).
    pub async fn withdraw_consent(&self, id: Uuid, scope: ConsentScope) -> Result<ConsentState> {
        if scope == ConsentScope::Reveal && self.state_get::<bool>(&card_sent_key(id))?.is_some() {
            return Err(SdkError::Conflict(
                "the identity card was already sent; the reveal cannot be withdrawn".into(),
            ));
        }
        self.record_consent(id, scope, ConsentAction::Withdraw)
            .await
    }

    async fn record_consent(
        &self,
        id: Uuid,
        scope: ConsentScope,
        action: ConsentAction,
    ) -> Result<ConsentState> {
        let intro = self.introduction(id).await?;
        let (conv, gid) = self.conversation_of(&intro)?;
        {
            // Sign with the leaf the server (and the counterpart) will see: catch up first.
            let lock = self.conv_lock(conv);
            let _g = lock.lock().await;
            self.sync_locked(conv).await?;
        }
        // Strictly after this device's previous action on the introduction, so a grant after
        // a withdrawal in the same second is not taken for the older one.
        let slots: ConsentSlots = self.state_get(&consent_seen_key(id))?.unwrap_or_default();
        let last_own = slots
            .iter()
            .filter(|((mine, _), _)| *mine)
            .map(|(_, (at, _))| *at)
            .max()
            .unwrap_or(i64::MIN);
        let issued_at = Utc::now().timestamp().max(last_own.saturating_add(1));
        let statement = consent_statement(id, gid.as_bytes(), scope, action, issued_at);
        let sig = self.mls()?.sign_as_member(&gid, &statement)?;
        let _: ConsentRecord = self
            .authed(
                Method::POST,
                &format!("/v1/introductions/{id}/consents"),
                Some(&ConsentUpload {
                    scope,
                    action,
                    issued_at,
                    signature_key: b64(&sig.signature_key),
                    signature: b64(&sig.signature),
                }),
            )
            .await?
            .json()?;
        // The client's own action is its own truth from now on.
        let mut slots: ConsentSlots = self.state_get(&consent_seen_key(id))?.unwrap_or_default();
        let slot = (true, scope == ConsentScope::Reveal);
        slots.retain(|(k, _)| *k != slot);
        slots.push((slot, (issued_at, action == ConsentAction::Grant)));
        self.state_put(&consent_seen_key(id), &slots)?;
        let (state, events) = self.check_consents(id, conv).await?;
        self.push_events(conv, events)?;
        Ok(state)
    }

    /// The consents as this client verifies them now.
    pub async fn consent_state(&self, id: Uuid) -> Result<ConsentState> {
        let intro = self.introduction(id).await?;
        let (conv, _) = self.conversation_of(&intro)?;
        let (state, events) = self.check_consents(id, conv).await?;
        self.push_events(conv, events)?;
        Ok(state)
    }

    /// Verifies the consents, updates the HP admission policy and sends the identity card
    /// when both reveal consents hold.
    pub(crate) async fn check_consents(
        &self,
        id: Uuid,
        conv: Uuid,
    ) -> Result<(ConsentState, Vec<Event>)> {
        let (mut state, mut events) = self.verify_consents(id, conv).await?;
        if state.my_reveal && state.their_reveal && !state.card_sent {
            let card = self
                .state_get::<IdentityCard>(CARD_KEY)?
                .unwrap_or_default();
            let envelope = Envelope::IdentityCard {
                id: MessageId::random(),
                sent_at: u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0),
                first_name: card.first_name,
                phone: card.phone,
                photo: card.photo,
            };
            self.send_envelope(conv, &envelope).await?;
            self.state_put(&card_sent_key(id), &true)?;
            state.card_sent = true;
            events.push(Event::IdentityCardSent { conversation: conv });
        }
        Ok((state, events))
    }

    /// Verifies every consent record against this device's group view and updates the HP
    /// admission policy (no lock taken, nothing sent).
    pub(crate) async fn verify_consents(
        &self,
        id: Uuid,
        conv: Uuid,
    ) -> Result<(ConsentState, Vec<Event>)> {
        let records: Vec<ConsentRecord> = self
            .get(&format!("/v1/introductions/{id}/consents"))
            .await?;
        let st = self.joined_state(conv)?;
        let gid = self.group_of(&st)?;
        let own_leaf = self.mls()?.own_leaf_index(&gid)?;
        let mut events = Vec::new();
        let mut state = ConsentState::default();
        // (mine, reveal) -> (issued_at, grant): what this client has seen before, then newer
        // verified records only.
        let kept: ConsentSlots = self.state_get(&consent_seen_key(id))?.unwrap_or_default();
        let own: std::collections::HashSet<(bool, bool)> =
            kept.iter().filter(|(k, _)| k.0).map(|(k, _)| *k).collect();
        let mut latest: std::collections::HashMap<(bool, bool), (i64, bool)> =
            kept.into_iter().collect();
        for r in &records {
            let statement = consent_statement(id, gid.as_bytes(), r.scope, r.action, r.issued_at);
            let (Ok(key), Ok(sig)) = (
                unb64("signature_key", &r.signature_key),
                unb64("signature", &r.signature),
            ) else {
                state.rejected += 1;
                continue;
            };
            let signer = self
                .mls()?
                .verify_member_signature(&gid, &statement, &key, &sig)?;
            let valid = match &signer {
                Some(m) if r.mine => m.leaf_index == own_leaf,
                Some(m) => m.pseudonymous && m.leaf_index != own_leaf,
                None => false,
            };
            if !valid {
                state.rejected += 1;
                events.push(Event::ConsentRejected {
                    introduction: id,
                    reason: "a consent record is not signed by the member it names".into(),
                });
                continue;
            }
            let slot = (r.mine, r.scope == ConsentScope::Reveal);
            let grant = r.action == ConsentAction::Grant;
            // This device's own actions are known here; the server's copy of them is only
            // read when this device has none (e.g. restored on a new phone).
            if own.contains(&slot) {
                continue;
            }
            if newer((r.issued_at, grant), latest.get(&slot).copied()) {
                latest.insert(slot, (r.issued_at, grant));
            }
        }
        let mut slots: ConsentSlots = latest.iter().map(|(k, v)| (*k, *v)).collect();
        slots.sort();
        self.state_put(&consent_seen_key(id), &slots)?;
        let holds = |mine: bool, reveal: bool| latest.get(&(mine, reveal)).is_some_and(|(_, g)| *g);
        state.my_reveal = holds(true, true);
        state.their_reveal = holds(false, true);
        state.my_invite_hp = holds(true, false);
        state.their_invite_hp = holds(false, false);
        // HP admission: both invite_hp grants verified here, and only the devices the
        // server lists for the introducing HP.
        let admitted = if state.my_invite_hp && state.their_invite_hp {
            let intro = self.introduction(id).await?;
            intro
                .hp_device_keys
                .iter()
                .filter_map(|k| unb64("hp_device_keys", k).ok())
                .collect()
        } else {
            Vec::new()
        };
        self.set_admitted_hp(conv, admitted);
        state.card_sent = self.state_get::<bool>(&card_sent_key(id))?.is_some();
        Ok((state, events))
    }

    /// What this user will show when both consent to reveal (kept sealed on the device).
    pub fn set_identity_card(&self, card: &IdentityCard) -> Result<()> {
        if card
            .photo
            .as_ref()
            .is_some_and(|p| p.len() > peerbridge_mls::envelope::MAX_PHOTO_BYTES)
        {
            return Err(SdkError::InvalidInput("the photo is at most 40 KiB".into()));
        }
        self.state_put(CARD_KEY, card)
    }

    /// The counterpart's identity card, once received.
    pub fn counterpart_card(&self, id: Uuid) -> Result<Option<IdentityCard>> {
        self.state_get(&card_received_key(id))
    }

    // ------------------------------------------------------------------ policy

    fn set_admitted_hp(&self, conv: Uuid, admitted: Vec<Vec<u8>>) {
        self.admitted_hp
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(conv, admitted);
    }

    /// The introducing HP's device keys this client admitted (both consents verified).
    pub(crate) fn admitted_hp_keys(&self, conv: Uuid) -> Vec<Vec<u8>> {
        self.admitted_hp
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&conv)
            .cloned()
            .unwrap_or_default()
    }

    /// The policy for processing changes to `conv`'s group now (read in the device-store step
    /// that processes them).
    pub(crate) fn policy_in(
        &self,
        mls: &MlsClient,
        conv: Uuid,
        gid: &GroupId,
    ) -> Result<ConvPolicy> {
        let Some(st) = state::get::<ConvState>(mls, &conv_key(conv))? else {
            return Ok(ConvPolicy::default());
        };
        if st.introduction.is_none() {
            return Ok(ConvPolicy::default());
        }
        let pseudonymous_members = mls
            .members(gid)
            .map(|m| m.iter().filter(|m| m.pseudonymous).count())
            .unwrap_or(0);
        Ok(ConvPolicy {
            intro: Some(IntroPolicy {
                admitted: self.admitted_hp_keys(conv),
                pseudonymous_members,
            }),
        })
    }

    /// Before joining from a Welcome: learn whether it is an introduction's group (whose
    /// members are pseudonymous) and remember it.
    pub(crate) async fn welcome_policy(&self, conv: Uuid) -> ConvPolicy {
        let Ok(c) = self
            .get::<Conversation>(&format!("/v1/conversations/{conv}"))
            .await
        else {
            return ConvPolicy::default();
        };
        let Some(intro) = c.introduction_id else {
            return ConvPolicy::default();
        };
        if let Ok(mut st) = self.conv_state(conv).map(Option::unwrap_or_default) {
            st.introduction = Some(intro);
            st.pseudonymous = matches!(
                self.account_role(),
                Ok(Some(Role::Peer | Role::ServiceUser))
            );
            let _ = self.save_conv(conv, &mut st, Vec::new());
        }
        ConvPolicy {
            intro: Some(IntroPolicy {
                admitted: self.admitted_hp_keys(conv),
                pseudonymous_members: 0,
            }),
        }
    }
}
