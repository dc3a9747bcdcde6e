//! Every SDK operation the apps use, exported one to one: `"jsName" fn rust_name(args) ->
//! "TypeScript result" = |sdk| the SDK call`. Each becomes a method of `PeerbridgeWeb`
//! returning a Promise that resolves after the operation's store writes are in IndexedDB
//! (`Inner::run`). Arguments arrive as JS values and are parsed here (`arg`): a value of the
//! wrong shape is `invalid_input`, never a panic. `tests/surface.rs` checks this list
//! against the SDK's public operations (an SDK operation missing here fails it), and the
//! browser suite checks that every name here is a method in the built package.
//!
//! TypeScript names (`SessionInfo`, `Event`, …) are the SDK's and the contract's types,
//! declared in `types.d.ts` (generated from their schemas, see `web-sdk/build`).

use peerbridge_mobile::SdkError;
use serde::de::DeserializeOwned;
use uuid::Uuid;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::web::PeerbridgeWeb;

/// Parses one argument from JavaScript.
fn arg<T: DeserializeOwned>(v: JsValue) -> Result<T, SdkError> {
    serde_wasm_bindgen::from_value(v).map_err(|e| SdkError::InvalidInput(e.to_string()))
}

/// A UUID argument (a string).
fn id(v: JsValue) -> Result<Uuid, SdkError> {
    arg::<Uuid>(v)
}

macro_rules! export {
    ($(
        $(#[$doc:meta])*
        $js:literal fn $name:ident ( $($arg:ident : $ts:literal),* ) -> $ret:literal
            = |$sdk:ident| $call:expr;
    )*) => {$(
        #[wasm_bindgen]
        impl PeerbridgeWeb {
            $(#[$doc])*
            #[wasm_bindgen(js_name = $js, unchecked_return_type = $ret)]
            pub fn $name(
                &self,
                $( #[wasm_bindgen(unchecked_param_type = $ts)] $arg: JsValue ),*
            ) -> js_sys::Promise {
                let inner = self.inner();
                future_to_promise(async move {
                    let $sdk = inner.client();
                    let r = async { $call }.await;
                    inner.run(r).await
                })
            }
        }
    )*};
}

export! {
    // ------------------------------------------------------------ sessions and devices
    /// The current session, or `null` before enrolment.
    "session" fn session() -> "Promise<SessionInfo | null>" = |sdk| sdk.session();
    /// Redeems an invite code or invite link (`…#code=…&authority=…`) with this device.
    "enroll" fn enroll(invite_code: "string", device_label: "string") -> "Promise<SessionInfo>"
        = |sdk| sdk.enroll(&arg::<String>(invite_code)?, &arg::<String>(device_label)?).await;
    /// Staff setup, step one: the authenticator secret for the setup code.
    "beginStaffSetup" fn begin_staff_setup(setup_code: "string", password: "string")
        -> "Promise<TotpProvisioning>"
        = |sdk| sdk.begin_staff_setup(&arg::<String>(setup_code)?, &arg::<String>(password)?).await;
    /// Staff setup, step two: confirms the authenticator and registers this device.
    "completeStaffSetup" fn complete_staff_setup(setup_code: "string", totp_code: "string", device_label: "string")
        -> "Promise<SessionInfo>"
        = |sdk| sdk.complete_staff_setup(
            &arg::<String>(setup_code)?, &arg::<String>(totp_code)?, &arg::<String>(device_label)?).await;
    /// Staff sign-in with password and authenticator code.
    "staffLogin" fn staff_login(login: "string", password: "string", totp_code: "string", device_label: "string")
        -> "Promise<SessionInfo>"
        = |sdk| sdk.staff_login(&arg::<String>(login)?, &arg::<String>(password)?,
            &arg::<String>(totp_code)?, &arg::<String>(device_label)?).await;
    /// A new session with the device key.
    "login" fn login() -> "Promise<SessionInfo>" = |sdk| sdk.login().await;
    "logout" fn logout() -> "Promise<null>" = |sdk| sdk.logout().await;
    "me" fn me() -> "Promise<Me>" = |sdk| sdk.me().await;
    "devices" fn devices() -> "Promise<Device[]>" = |sdk| sdk.devices().await;
    /// Registers another device's public key with this account.
    "addDevice" fn add_device(public_key: "string", label: "string") -> "Promise<Device>"
        = |sdk| sdk.add_device(&arg::<String>(public_key)?, &arg::<String>(label)?).await;
    /// On a new device: takes over the device id another device registered.
    "linkDevice" fn link_device(device_id: "string") -> "Promise<SessionInfo>"
        = |sdk| sdk.link_device(id(device_id)?).await;
    "revokeDevice" fn revoke_device(device_id: "string") -> "Promise<null>"
        = |sdk| sdk.revoke_device(id(device_id)?).await;
    /// Where content-free wake-ups go (an allowed push service URL).
    "registerPushEndpoint" fn register_push_endpoint(url: "string") -> "Promise<null>"
        = |sdk| sdk.register_push_endpoint(&arg::<String>(url)?).await;
    /// The server's VAPID public key (base64url): `applicationServerKey` for
    /// `pushManager.subscribe`.
    "vapidPublicKey" fn vapid_public_key() -> "Promise<string>" = |sdk| sdk.vapid_public_key().await;
    /// Registers a Web Push subscription: its `endpoint` and base64url `keys.p256dh` and
    /// `keys.auth`.
    "registerWebPush" fn register_web_push(endpoint: "string", p256dh: "string", auth: "string")
        -> "Promise<null>"
        = |sdk| sdk.register_web_push(&arg::<String>(endpoint)?, &arg::<String>(p256dh)?,
            &arg::<String>(auth)?).await;
    "clearPushEndpoint" fn clear_push_endpoint() -> "Promise<null>"
        = |sdk| sdk.clear_push_endpoint().await;
    "ensureKeyPackages" fn ensure_key_packages() -> "Promise<KeyPackageStatus>"
        = |sdk| sdk.ensure_key_packages().await;

    // ------------------------------------------------------------ conversations
    "conversations" fn conversations() -> "Promise<ConversationInfo[]>"
        = |sdk| sdk.conversations().await;
    "createSupervisionConversation" fn create_supervision_conversation(peer_id: "string")
        -> "Promise<ConversationInfo>"
        = |sdk| sdk.create_supervision_conversation(id(peer_id)?).await;
    "addUser" fn add_user(conversation: "string", user_id: "string") -> "Promise<Event[]>"
        = |sdk| sdk.add_user(id(conversation)?, id(user_id)?).await;
    "selfUpdate" fn self_update(conversation: "string") -> "Promise<Event[]>"
        = |sdk| sdk.self_update(id(conversation)?).await;
    "acceptWelcomes" fn accept_welcomes() -> "Promise<Event[]>" = |sdk| sdk.accept_welcomes().await;
    "rejoin" fn rejoin(conversation: "string") -> "Promise<Event[]>"
        = |sdk| sdk.rejoin(id(conversation)?).await;
    "members" fn members(conversation: "string") -> "Promise<Member[]>"
        = |sdk| sdk.members(id(conversation)?);
    /// The 20-digit code two members compare in person.
    "safetyCode" fn safety_code(conversation: "string") -> "Promise<string>"
        = |sdk| sdk.safety_code(id(conversation)?);
    /// Sends a text; resolves to its id once it is durable in the outbox and sent (or
    /// queued to retry).
    "sendText" fn send_text(conversation: "string", text: "string") -> "Promise<string>"
        = |sdk| sdk.send_text(id(conversation)?, &arg::<String>(text)?).await;
    "sendReadReceipt" fn send_read_receipt(conversation: "string", ids: "string[]") -> "Promise<null>"
        = |sdk| sdk.send_read_receipt(id(conversation)?, arg::<Vec<Uuid>>(ids)?).await;
    /// A page of stored history (at most `limit` lines before `before`; the newest page
    /// when `before` is null).
    "history" fn history(conversation: "string", before: "number | null", limit: "number")
        -> "Promise<HistoryPage>"
        = |sdk| sdk.history(id(conversation)?, arg::<Option<u64>>(before)?, arg::<u32>(limit)?);
    "sync" fn sync(conversation: "string") -> "Promise<Event[]>"
        = |sdk| sdk.sync(id(conversation)?).await;
    "syncAll" fn sync_all() -> "Promise<Event[]>" = |sdk| sdk.sync_all().await;
    /// Waits for the next events (stream or polling); never resolves to an empty list. For
    /// apps that pull instead of `start`.
    "nextEvents" fn next_events() -> "Promise<Event[]>" = |sdk| sdk.next_events().await;

    // ------------------------------------------------------------ clinic side (HPs)
    "createInvite" fn create_invite(clinic: "string", role: "EnrolleeRole",
        display_name: "string | null", phone: "string | null") -> "Promise<InviteCreated>"
        = |sdk| sdk.create_invite(id(clinic)?, arg(role)?, arg(display_name)?, arg(phone)?).await;
    "assignSupervisor" fn assign_supervisor(clinic: "string", peer: "string", hp: "string")
        -> "Promise<SupervisorAssignment>"
        = |sdk| sdk.assign_supervisor(id(clinic)?, id(peer)?, id(hp)?).await;
    "supervisors" fn supervisors(clinic: "string", peer: "string") -> "Promise<SupervisorAssignment[]>"
        = |sdk| sdk.supervisors(id(clinic)?, id(peer)?).await;
    /// The caller's supervision assignments: a peer's supervisors, or the peers an HP
    /// supervises.
    "mySupervision" fn my_supervision() -> "Promise<SupervisorAssignment[]>"
        = |sdk| sdk.my_supervision().await;
    /// Every clinic (operators).
    "clinics" fn clinics() -> "Promise<Clinic[]>" = |sdk| sdk.clinics().await;
    "clinic" fn clinic(clinic: "string") -> "Promise<Clinic>" = |sdk| sdk.clinic(id(clinic)?).await;
    /// The clinic's users, without identifying fields.
    "clinicUsers" fn clinic_users(clinic: "string") -> "Promise<UserSummary[]>"
        = |sdk| sdk.clinic_users(id(clinic)?).await;
    /// One user with name, phone and devices (audited on the server).
    "clinicUser" fn clinic_user(clinic: "string", user: "string") -> "Promise<UserDetail>"
        = |sdk| sdk.clinic_user(id(clinic)?, id(user)?).await;
    "deactivateUser" fn deactivate_user(clinic: "string", user: "string") -> "Promise<UserSummary>"
        = |sdk| sdk.deactivate_user(id(clinic)?, id(user)?).await;
    "changeRole" fn change_role(clinic: "string", user: "string", role: "StaffRole")
        -> "Promise<UserSummary>"
        = |sdk| sdk.change_role(id(clinic)?, id(user)?, arg(role)?).await;
    /// The clinic's invites (never their codes).
    "invites" fn invites(clinic: "string") -> "Promise<Invite[]>" = |sdk| sdk.invites(id(clinic)?).await;
    "revokeInvite" fn revoke_invite(clinic: "string", invite: "string") -> "Promise<Invite>"
        = |sdk| sdk.revoke_invite(id(clinic)?, id(invite)?).await;
    /// A staff account; the setup code in the result is shown once.
    "createStaff" fn create_staff(clinic: "string", staff: "StaffCreate") -> "Promise<StaffCreated>"
        = |sdk| sdk.create_staff(id(clinic)?, &arg(staff)?).await;
    "escalationSettings" fn escalation_settings(clinic: "string") -> "Promise<EscalationSettings>"
        = |sdk| sdk.escalation_settings(id(clinic)?).await;
    "setEscalationSettings" fn set_escalation_settings(clinic: "string", settings: "EscalationSettings")
        -> "Promise<EscalationSettings>"
        = |sdk| sdk.set_escalation_settings(id(clinic)?, &arg(settings)?).await;
    "setCrisisResources" fn set_crisis_resources(clinic: "string", resources: "CrisisResourceList")
        -> "Promise<CrisisResourceList>"
        = |sdk| sdk.set_crisis_resources(id(clinic)?, &arg(resources)?).await;
    /// `from` and `to` are `YYYY-MM-DD` dates (inclusive).
    "consultationReport" fn consultation_report(clinic: "string", from: "string", to: "string")
        -> "Promise<ConsultationReport>"
        = |sdk| sdk.consultation_report(id(clinic)?, arg(from)?, arg(to)?).await;
    /// The same report as CSV text.
    "consultationReportCsv" fn consultation_report_csv(clinic: "string", from: "string", to: "string")
        -> "Promise<string>"
        = |sdk| sdk.consultation_report_csv(id(clinic)?, arg(from)?, arg(to)?).await;
    "topics" fn topics(clinic: "string") -> "Promise<Topic[]>" = |sdk| sdk.topics(id(clinic)?).await;
    "setTopics" fn set_topics(clinic: "string", topics: "Topic[]") -> "Promise<Topic[]>"
        = |sdk| sdk.set_topics(id(clinic)?, arg(topics)?).await;
    "peerProfiles" fn peer_profiles(clinic: "string") -> "Promise<PeerProfile[]>"
        = |sdk| sdk.peer_profiles(id(clinic)?).await;
    "setPeerProfile" fn set_peer_profile(clinic: "string", peer: "string", profile: "PeerProfileUpdate")
        -> "Promise<PeerProfile>"
        = |sdk| sdk.set_peer_profile(id(clinic)?, id(peer)?, &arg(profile)?).await;
    /// `trainedOn` is a `YYYY-MM-DD` date.
    "approvePeer" fn approve_peer(clinic: "string", peer: "string", trained_on: "string")
        -> "Promise<PeerProfile>"
        = |sdk| sdk.approve_peer(id(clinic)?, id(peer)?, arg(trained_on)?).await;
    "withdrawPeerApproval" fn withdraw_peer_approval(clinic: "string", peer: "string")
        -> "Promise<PeerProfile>"
        = |sdk| sdk.withdraw_peer_approval(id(clinic)?, id(peer)?).await;
    "peerProfile" fn peer_profile(clinic: "string", peer: "string") -> "Promise<PeerProfile>"
        = |sdk| sdk.peer_profile(id(clinic)?, id(peer)?).await;
    "needs" fn needs(clinic: "string", user: "string") -> "Promise<NeedsRecord>"
        = |sdk| sdk.needs(id(clinic)?, id(user)?).await;
    "setNeeds" fn set_needs(clinic: "string", user: "string", needs: "Needs") -> "Promise<NeedsRecord>"
        = |sdk| sdk.set_needs(id(clinic)?, id(user)?, &arg(needs)?).await;
    "suggestions" fn suggestions(clinic: "string", user: "string") -> "Promise<Suggestion[]>"
        = |sdk| sdk.suggestions(id(clinic)?, id(user)?).await;
    "proposeIntroduction" fn propose_introduction(clinic: "string", proposal: "IntroductionCreate")
        -> "Promise<IntroductionDetail>"
        = |sdk| sdk.propose_introduction(id(clinic)?, &arg(proposal)?).await;
    "clinicIntroductions" fn clinic_introductions(clinic: "string") -> "Promise<IntroductionDetail[]>"
        = |sdk| sdk.clinic_introductions(id(clinic)?).await;
    "clinicIntroduction" fn clinic_introduction(clinic: "string", introduction: "string")
        -> "Promise<IntroductionDetail>"
        = |sdk| sdk.clinic_introduction(id(clinic)?, id(introduction)?).await;
    "hpIntroductionAction" fn hp_introduction_action(clinic: "string", introduction: "string",
        action: "\"pause\" | \"resume\" | \"close\"") -> "Promise<IntroductionDetail>"
        = |sdk| sdk.hp_introduction_action(id(clinic)?, id(introduction)?, &arg::<String>(action)?).await;
    "rematch" fn rematch(clinic: "string", introduction: "string", rematch: "Rematch")
        -> "Promise<IntroductionDetail>"
        = |sdk| sdk.rematch(id(clinic)?, id(introduction)?, &arg(rematch)?).await;
    "boundaryReports" fn boundary_reports(clinic: "string", introduction: "string")
        -> "Promise<BoundaryReport[]>"
        = |sdk| sdk.boundary_reports(id(clinic)?, id(introduction)?).await;
    "markReportHandled" fn mark_report_handled(clinic: "string", introduction: "string", report: "string")
        -> "Promise<BoundaryReport>"
        = |sdk| sdk.mark_report_handled(id(clinic)?, id(introduction)?, id(report)?).await;
    /// The introducing HP joins an introduction's conversation (only after both parties'
    /// `invite_hp` consents).
    "joinIntroduction" fn join_introduction(conversation: "string", introduction: "string")
        -> "Promise<Event[]>"
        = |sdk| sdk.join_introduction(id(conversation)?, id(introduction)?).await;

    // ------------------------------------------------------------ introductions (parties)
    "ownPeerProfile" fn own_peer_profile() -> "Promise<PeerProfile>" = |sdk| sdk.own_peer_profile().await;
    "updateOwnPeerProfile" fn update_own_peer_profile(update: "OwnPeerProfileUpdate")
        -> "Promise<PeerProfile>"
        = |sdk| sdk.update_own_peer_profile(&arg(update)?).await;
    "introductions" fn introductions() -> "Promise<PartyIntroduction[]>" = |sdk| sdk.introductions().await;
    "introduction" fn introduction(introduction: "string") -> "Promise<PartyIntroduction>"
        = |sdk| sdk.introduction(id(introduction)?).await;
    "acceptIntroduction" fn accept_introduction(introduction: "string") -> "Promise<PartyIntroduction>"
        = |sdk| sdk.accept_introduction(id(introduction)?).await;
    "declineIntroduction" fn decline_introduction(introduction: "string") -> "Promise<PartyIntroduction>"
        = |sdk| sdk.decline_introduction(id(introduction)?).await;
    "pauseIntroduction" fn pause_introduction(introduction: "string") -> "Promise<PartyIntroduction>"
        = |sdk| sdk.pause_introduction(id(introduction)?).await;
    "resumeIntroduction" fn resume_introduction(introduction: "string") -> "Promise<PartyIntroduction>"
        = |sdk| sdk.resume_introduction(id(introduction)?).await;
    "closeIntroduction" fn close_introduction(introduction: "string") -> "Promise<PartyIntroduction>"
        = |sdk| sdk.close_introduction(id(introduction)?).await;
    "blockCounterpart" fn block_counterpart(introduction: "string") -> "Promise<PartyIntroduction>"
        = |sdk| sdk.block_counterpart(id(introduction)?).await;
    "reportBoundary" fn report_boundary(introduction: "string", category: "BoundaryCategory",
        note: "string | null") -> "Promise<BoundaryReport>"
        = |sdk| sdk.report_boundary(id(introduction)?, arg(category)?, arg(note)?).await;
    /// Opens the introduction's conversation; resolves to the conversation id.
    "openIntroduction" fn open_introduction(introduction: "string") -> "Promise<string>"
        = |sdk| sdk.open_introduction(id(introduction)?).await;
    "consent" fn consent(introduction: "string", scope: "ConsentScope") -> "Promise<ConsentState>"
        = |sdk| sdk.consent(id(introduction)?, arg(scope)?).await;
    "withdrawConsent" fn withdraw_consent(introduction: "string", scope: "ConsentScope")
        -> "Promise<ConsentState>"
        = |sdk| sdk.withdraw_consent(id(introduction)?, arg(scope)?).await;
    "consentState" fn consent_state(introduction: "string") -> "Promise<ConsentState>"
        = |sdk| sdk.consent_state(id(introduction)?).await;
    /// What this user shows when both consent to reveal (kept sealed on the device).
    "setIdentityCard" fn set_identity_card(card: "IdentityCard") -> "Promise<null>"
        = |sdk| sdk.set_identity_card(&arg(card)?);
    /// The counterpart's card, once both revealed.
    "counterpartCard" fn counterpart_card(introduction: "string") -> "Promise<IdentityCard | null>"
        = |sdk| sdk.counterpart_card(id(introduction)?);

    // ------------------------------------------------------------ escalation
    /// A peer flags risk, quoting the messages at `seqs` (sealed to the responders' keys
    /// with their franking proofs).
    "raiseFlag" fn raise_flag(conversation: "string", category: "RiskCategory", severity: "Severity",
        note: "string", seqs: "number[]") -> "Promise<FlagReceipt>"
        = |sdk| sdk.raise_flag(id(conversation)?, arg(category)?, arg(severity)?,
            &arg::<String>(note)?, &arg::<Vec<u64>>(seqs)?).await;
    /// "I need help now" (imminent), optionally quoting messages.
    "helpNow" fn help_now(conversation: "string", note: "string", seqs: "number[]") -> "Promise<FlagReceipt>"
        = |sdk| sdk.help_now(id(conversation)?, &arg::<String>(note)?, &arg::<Vec<u64>>(seqs)?).await;
    /// HPs: publishes this device's escalation key (call after sign-in).
    "ensureEscalationKey" fn ensure_escalation_key() -> "Promise<null>"
        = |sdk| sdk.ensure_escalation_key().await;
    /// The person's language for the clinic's answers to a flag (kept on the device).
    "setLocale" fn set_locale(locale: "Locale") -> "Promise<null>" = |sdk| sdk.set_locale(arg(locale)?);
    /// HPs: the fingerprint of this device's escalation key, to show the certifying admin.
    "escalationKeyFingerprint" fn escalation_key_fingerprint() -> "Promise<string | null>"
        = |sdk| sdk.escalation_key_fingerprint();
    /// The fingerprint of the clinic's escalation authority this device trusts, if any.
    "escalationAuthorityFingerprint" fn escalation_authority_fingerprint() -> "Promise<string | null>"
        = |sdk| sdk.escalation_authority_fingerprint();
    /// Clinic admins: creates the clinic's escalation authority on this device.
    "setupEscalationAuthority" fn setup_escalation_authority() -> "Promise<EscalationAuthority>"
        = |sdk| sdk.setup_escalation_authority().await;
    /// Clinic admins: HP devices' escalation keys with locally computed fingerprints.
    "escalationKeys" fn escalation_keys() -> "Promise<EscalationKeyReview[]>"
        = |sdk| sdk.escalation_keys().await;
    /// Clinic admins (the authority's device): certifies a key whose fingerprint matches.
    "certifyEscalationKey" fn certify_escalation_key(device: "string", fingerprint: "string") -> "Promise<null>"
        = |sdk| sdk.certify_escalation_key(id(device)?, arg::<String>(fingerprint)?).await;
    /// The HP's queue: most severe and oldest first.
    "flags" fn flags() -> "Promise<Flag[]>" = |sdk| sdk.flags().await;
    "flag" fn flag(flag: "string") -> "Promise<FlagDetail>" = |sdk| sdk.flag(id(flag)?).await;
    /// Opens the flag's excerpt and verifies every quoted message's franking stamp.
    "openFlag" fn open_flag(flag: "string") -> "Promise<OpenedFlag>" = |sdk| sdk.open_flag(id(flag)?).await;
    "acknowledgeFlag" fn acknowledge_flag(flag: "string") -> "Promise<FlagDetail>"
        = |sdk| sdk.acknowledge_flag(id(flag)?).await;
    "addFlagNote" fn add_flag_note(flag: "string", note: "string") -> "Promise<FlagDetail>"
        = |sdk| sdk.add_flag_note(id(flag)?, arg(note)?).await;
    "reassignFlag" fn reassign_flag(flag: "string", hp: "string") -> "Promise<FlagDetail>"
        = |sdk| sdk.reassign_flag(id(flag)?, id(hp)?).await;
    /// Who the flagged person is; `reason` (1–500 characters) is kept with the server's
    /// audit entry of the read.
    "flagSubject" fn flag_subject(flag: "string", reason: "string") -> "Promise<SubjectIdentity>"
        = |sdk| sdk.flag_subject(id(flag)?, &arg::<String>(reason)?).await;
    "resolveFlag" fn resolve_flag(flag: "string", outcome: "FlagOutcome", note: "string | null")
        -> "Promise<FlagDetail>"
        = |sdk| sdk.resolve_flag(id(flag)?, arg(outcome)?, arg(note)?).await;
    "crisisResources" fn crisis_resources(locale: "Locale") -> "Promise<CrisisResourceList>"
        = |sdk| sdk.crisis_resources(arg(locale)?).await;
    /// When the person's own draft reads as risk: what to offer them before they send it.
    "draftOffer" fn draft_offer(draft: "string") -> "Promise<DraftOffer | null>"
        = |sdk| sdk.draft_offer(&arg::<String>(draft)?).await;
    "requestDebrief" fn request_debrief(introduction: "string | null", urgent: "boolean") -> "Promise<Debrief>"
        = |sdk| sdk.request_debrief(arg(introduction)?, arg(urgent)?).await;
    "debriefQueue" fn debrief_queue() -> "Promise<Debrief[]>" = |sdk| sdk.debrief_queue().await;
    /// The debriefs this peer supporter requested.
    "myDebriefs" fn my_debriefs() -> "Promise<Debrief[]>" = |sdk| sdk.my_debriefs().await;
    /// Where a flag this user raised stands (received, acknowledged, resolved).
    "flagProgress" fn flag_progress(flag: "string") -> "Promise<FlagProgress>"
        = |sdk| sdk.flag_progress(id(flag)?).await;
    /// The flags this user raised, newest first.
    "myFlags" fn my_flags() -> "Promise<FlagProgress[]>" = |sdk| sdk.my_flags().await;
    /// Flags raised on this device that have not reached the clinic yet.
    "queuedFlags" fn queued_flags() -> "Promise<QueuedFlagInfo[]>" = |sdk| sdk.queued_flags();
    "acknowledgeDebrief" fn acknowledge_debrief(debrief: "string") -> "Promise<Debrief>"
        = |sdk| sdk.acknowledge_debrief(id(debrief)?).await;
    /// `date` is `YYYY-MM-DD`.
    "logConsultation" fn log_consultation(date: "string", duration_minutes: "number", kind: "ConsultationKind")
        -> "Promise<Consultation>"
        = |sdk| sdk.log_consultation(arg(date)?, arg(duration_minutes)?, arg(kind)?).await;
    "myConsultations" fn my_consultations() -> "Promise<Consultation[]>" = |sdk| sdk.my_consultations().await;
}
