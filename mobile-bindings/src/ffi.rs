//! The UniFFI export: what the Android and iOS apps see. One [`Peerbridge`] object per
//! device wraps the Rust SDK ([`PeerbridgeClient`]); every method converts arguments, calls
//! the SDK and converts the result, and adds nothing else but the event loop the app
//! starts, suspends and resumes. Async methods run on UniFFI's tokio runtime; a panic inside
//! one is caught here and arrives as [`PeerbridgeError::Internal`], never as a crash.
//!
//! Ids are strings (UUIDs), instants are `java.time.Instant` / `Date`, calendar dates are
//! `YYYY-MM-DD` strings; the API records and enums come from `peerbridge_openapi`.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use peerbridge_openapi::clinics::{Clinic, Invite, InviteCreated, StaffCreate, StaffCreated};
use peerbridge_openapi::delivery::KeyPackageStatus;
use peerbridge_openapi::escalation::{
    Consultation, ConsultationKind, ConsultationReport, CrisisResourceList, Debrief,
    EscalationAuthority, EscalationSettings, Flag, FlagDetail, FlagOutcome, FlagProgress,
    FlagReceipt, Locale, RiskCategory, Severity, SubjectIdentity,
};
use peerbridge_openapi::ffi_types::{NaiveDate, Uuid};
use peerbridge_openapi::introductions::{
    BoundaryCategory, BoundaryReport, ConsentScope, IntroductionCreate, IntroductionDetail, Needs,
    NeedsRecord, OwnPeerProfileUpdate, PartyIntroduction, PeerProfile, PeerProfileUpdate, Rematch,
    Suggestion, Topic,
};
use peerbridge_openapi::supervision::SupervisorAssignment;
use peerbridge_openapi::users::{Device, Me, UserDetail, UserSummary};
use peerbridge_openapi::{EnrolleeRole, StaffRole};
use tokio::task::JoinHandle;

use crate::authority::EscalationKeyReview;
use crate::client::{ConversationInfo, HistoryPage, PeerbridgeClient, SessionInfo};
use crate::error::SdkError;
use crate::escalation::{DraftOffer, OpenedFlag, QueuedFlagInfo};
use crate::events::{ConnectionState, Event, Member};
use crate::hooks::detector::RiskSuggestion;
use crate::introductions::{ConsentState, IdentityCard};

/// Every error an app can get, with a stable meaning per variant (its documented code in
/// brackets). `detail` is for logs and developers, never for program logic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum PeerbridgeError {
    /// [`network`] The server could not be reached; retrying later is safe.
    #[error("network: {detail}")]
    Network { detail: String },
    /// [`unauthenticated`] No usable session: enroll, link or log in again.
    #[error("unauthenticated: {detail}")]
    Unauthenticated { detail: String },
    /// [`forbidden`] The role, clinic, conversation policy or account state forbids it
    /// (HTTP 403).
    #[error("forbidden: {detail}")]
    Forbidden { detail: String },
    /// [`not_found`] No such invite, conversation, introduction or flag (or not visible).
    #[error("not found: {detail}")]
    NotFound { detail: String },
    /// [`conflict`] The server's state does not allow this now (HTTP 409).
    #[error("conflict: {detail}")]
    Conflict { detail: String },
    /// [`stale_epoch`] Another member's change won the conversation's epoch (HTTP 409
    /// `stale_epoch`) and the SDK's retries did not succeed.
    #[error("stale epoch: {detail}")]
    StaleEpoch { detail: String },
    /// [`rate_limited`] Too many attempts; retry after the given seconds.
    #[error("rate limited; retry after {retry_after_seconds} s")]
    RateLimited { retry_after_seconds: u64 },
    /// [`invalid_input`] The app passed something invalid or the server refused the content.
    #[error("invalid input: {detail}")]
    InvalidInput { detail: String },
    /// [`storage`] The on-device store could not be read or written.
    #[error("storage: {detail}")]
    Storage { detail: String },
    /// [`wrong_storage_key`] The storage key does not open this storage directory; nothing
    /// was changed or deleted.
    #[error("the storage key does not open this storage directory")]
    WrongStorageKey,
    /// [`mls`] The encryption layer refused an operation or a message.
    #[error("mls: {detail}")]
    Mls { detail: String },
    /// [`server`] The server failed or answered something this SDK does not understand.
    #[error("server: {detail}")]
    Server { detail: String },
    /// [`internal`] A bug in the SDK (caught; the client stays usable). Please report it.
    #[error("internal: {detail}")]
    Internal { detail: String },
}

impl From<SdkError> for PeerbridgeError {
    fn from(e: SdkError) -> Self {
        use PeerbridgeError as P;
        let detail = e.to_string();
        match e {
            SdkError::Network(_) => P::Network { detail },
            SdkError::Unauthenticated(_) => P::Unauthenticated { detail },
            SdkError::Forbidden(_) => P::Forbidden { detail },
            SdkError::NotFound(_) => P::NotFound { detail },
            SdkError::Conflict(_) => P::Conflict { detail },
            SdkError::StaleEpoch(_) => P::StaleEpoch { detail },
            SdkError::RateLimited {
                retry_after_seconds,
            } => P::RateLimited {
                retry_after_seconds,
            },
            SdkError::InvalidInput(_) => P::InvalidInput { detail },
            SdkError::Storage(_) => P::Storage { detail },
            SdkError::WrongStorageKey => P::WrongStorageKey,
            SdkError::Mls(_) => P::Mls { detail },
            SdkError::Server(_) => P::Server { detail },
        }
    }
}

impl PeerbridgeError {
    /// The stable code (the same strings as [`SdkError::code`]).
    pub fn code(&self) -> &'static str {
        match self {
            PeerbridgeError::Network { .. } => "network",
            PeerbridgeError::Unauthenticated { .. } => "unauthenticated",
            PeerbridgeError::Forbidden { .. } => "forbidden",
            PeerbridgeError::NotFound { .. } => "not_found",
            PeerbridgeError::Conflict { .. } => "conflict",
            PeerbridgeError::StaleEpoch { .. } => "stale_epoch",
            PeerbridgeError::RateLimited { .. } => "rate_limited",
            PeerbridgeError::InvalidInput { .. } => "invalid_input",
            PeerbridgeError::Storage { .. } => "storage",
            PeerbridgeError::WrongStorageKey => "wrong_storage_key",
            PeerbridgeError::Mls { .. } => "mls",
            PeerbridgeError::Server { .. } => "server",
            PeerbridgeError::Internal { .. } => "internal",
        }
    }
}

type Res<T> = Result<T, PeerbridgeError>;

/// The stable code of an error, for apps that log or switch on strings.
#[uniffi::export]
pub fn error_code(error: &PeerbridgeError) -> String {
    error.code().to_owned()
}

/// Runs an SDK call, turning a panic into [`PeerbridgeError::Internal`].
async fn guard<T>(f: impl std::future::Future<Output = crate::Result<T>>) -> Res<T> {
    match AssertUnwindSafe(f).catch_unwind().await {
        Ok(r) => r.map_err(PeerbridgeError::from),
        Err(_) => Err(PeerbridgeError::Internal {
            detail: "the SDK hit a bug while handling this call".into(),
        }),
    }
}

fn guard_sync<T>(f: impl FnOnce() -> crate::Result<T>) -> Res<T> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(PeerbridgeError::from),
        Err(_) => Err(PeerbridgeError::Internal {
            detail: "the SDK hit a bug while handling this call".into(),
        }),
    }
}

fn call_listener(f: impl FnOnce()) {
    if std::panic::catch_unwind(AssertUnwindSafe(f)).is_err() {
        tracing::warn!("the app's event listener threw; the receive loop goes on");
    }
}

/// What the app implements to receive events. Called from an SDK thread: hand the work to
/// the app's own dispatcher and return quickly.
#[uniffi::export(with_foreign)]
pub trait PeerbridgeListener: Send + Sync {
    /// New events in delivery order (messages, welcomes, introduction and consent changes,
    /// escalations, connection state).
    fn on_events(&self, events: Vec<Event>);
    /// The event loop stopped because it needs the app (the session ended for good, or
    /// the storage failed). Fix the cause, then call `resume()`.
    fn on_stopped(&self, error: PeerbridgeError);
}

/// The HP's actions on an introduction of their clinic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum HpIntroductionAction {
    Pause,
    Resume,
    Close,
}

/// Reads `text` with the on-device risk detector (bokmål, nynorsk, English). Nothing
/// leaves the device.
#[uniffi::export]
pub fn detect_risk(text: String) -> Option<RiskSuggestion> {
    crate::hooks::detector::suggest_risk(&text)
}

#[derive(Default)]
struct EventLoop {
    listener: Option<Arc<dyn PeerbridgeListener>>,
    task: Option<JoinHandle<()>>,
}

/// One device's Peerbridge client. Create one per storage directory and keep it for the
/// app's lifetime.
#[derive(uniffi::Object)]
pub struct Peerbridge {
    sdk: Arc<PeerbridgeClient>,
    events: Mutex<EventLoop>,
}

impl std::fmt::Debug for Peerbridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peerbridge").finish_non_exhaustive()
    }
}

impl Drop for Peerbridge {
    fn drop(&mut self) {
        if let Ok(mut ev) = self.events.lock()
            && let Some(t) = ev.task.take()
        {
            t.abort();
        }
    }
}

impl Peerbridge {
    fn take_task(&self) -> Option<JoinHandle<()>> {
        self.events.lock().ok().and_then(|mut ev| ev.task.take())
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Peerbridge {
    /// Opens (or creates, with a new device identity) the device's storage under
    /// `storage_dir`. `storage_key` is exactly 32 random bytes the app keeps in the Android
    /// Keystore / iOS Keychain; a different key fails with `WrongStorageKey` and changes
    /// nothing.
    #[uniffi::constructor]
    pub fn new(
        server_url: String,
        storage_dir: String,
        storage_key: Vec<u8>,
    ) -> Result<Arc<Self>, PeerbridgeError> {
        let sdk = guard_sync(|| {
            PeerbridgeClient::open(&server_url, PathBuf::from(storage_dir), &storage_key)
        })?;
        Ok(Arc::new(Peerbridge {
            sdk: Arc::new(sdk),
            events: Mutex::new(EventLoop::default()),
        }))
    }

    // ---------------------------------------------------------------- events

    /// Starts receiving: `listener` gets every batch of new events until `suspend()`.
    /// Replaces an earlier listener.
    pub async fn start(&self, listener: Arc<dyn PeerbridgeListener>) {
        if let Some(t) = self.take_task() {
            t.abort();
            let _ = t.await;
        }
        if let Ok(mut ev) = self.events.lock() {
            ev.listener = Some(listener);
        }
        self.resume().await;
    }

    /// The app goes to the background: the socket is closed, the receive loop stops and the
    /// state is on disk; the listener is told `Suspended`. Nothing is lost: the server keeps
    /// messages until this device acknowledges them.
    pub async fn suspend(&self) {
        if let Some(t) = self.take_task() {
            t.abort();
            let _ = t.await;
        }
        self.sdk.close_stream().await;
        let listener = self.events.lock().ok().and_then(|ev| ev.listener.clone());
        if let Some(l) = listener {
            call_listener(|| {
                l.on_events(vec![Event::ConnectionChanged {
                    state: ConnectionState::Suspended,
                }])
            });
        }
    }

    /// The app is in the foreground again: reconnects and catches up (no-op while running or
    /// before `start`).
    pub async fn resume(&self) {
        let Ok(mut ev) = self.events.lock() else {
            return;
        };
        if ev.task.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let Some(listener) = ev.listener.clone() else {
            return;
        };
        let sdk = self.sdk.clone();
        ev.task = Some(tokio::spawn(async move {
            loop {
                match guard(sdk.next_events()).await {
                    // An exception thrown by the app's listener must not end the loop (the
                    // events were handed over; the app owns what it does with them).
                    Ok(events) => call_listener(|| listener.on_events(events)),
                    Err(e) => {
                        call_listener(|| listener.on_stopped(e));
                        return;
                    }
                }
            }
        }));
    }

    /// Waits for the next batch of events without a listener (an alternative to `start`
    /// for apps that pull).
    pub async fn next_events(&self) -> Res<Vec<Event>> {
        guard(self.sdk.next_events()).await
    }

    // ---------------------------------------------------------------- sessions and devices

    /// This device's Ed25519 public key (base64url), as shown when linking a new phone.
    pub fn device_public_key(&self) -> String {
        self.sdk.device_public_key()
    }

    pub fn session(&self) -> Res<Option<SessionInfo>> {
        guard_sync(|| self.sdk.session())
    }

    /// Enrolls this device with the one-time invite code or invite link from the clinic.
    pub async fn enroll(&self, invite_code: String, device_label: String) -> Res<SessionInfo> {
        guard(self.sdk.enroll(&invite_code, &device_label)).await
    }

    /// Staff setup, step one: returns the authenticator secret for the setup code.
    pub async fn begin_staff_setup(
        &self,
        setup_code: String,
        password: String,
    ) -> Res<peerbridge_openapi::auth::TotpProvisioning> {
        guard(self.sdk.begin_staff_setup(&setup_code, &password)).await
    }

    /// Staff setup, step two: confirms the authenticator and registers this device.
    pub async fn complete_staff_setup(
        &self,
        setup_code: String,
        totp_code: String,
        device_label: String,
    ) -> Res<SessionInfo> {
        guard(
            self.sdk
                .complete_staff_setup(&setup_code, &totp_code, &device_label),
        )
        .await
    }

    /// Staff sign-in with password and authenticator code.
    pub async fn staff_login(
        &self,
        login: String,
        password: String,
        totp_code: String,
        device_label: String,
    ) -> Res<SessionInfo> {
        guard(
            self.sdk
                .staff_login(&login, &password, &totp_code, &device_label),
        )
        .await
    }

    /// A new session with the device key (after `logout` or an ended session).
    pub async fn login(&self) -> Res<SessionInfo> {
        guard(self.sdk.login()).await
    }

    pub async fn logout(&self) -> Res<()> {
        guard(self.sdk.logout()).await
    }

    pub async fn me(&self) -> Res<Me> {
        guard(self.sdk.me()).await
    }

    pub async fn devices(&self) -> Res<Vec<Device>> {
        guard(self.sdk.devices()).await
    }

    /// Registers another phone's public key with this account (then call `link_device` on
    /// that phone with the returned device id).
    pub async fn add_device(&self, public_key: String, label: String) -> Res<Device> {
        guard(self.sdk.add_device(&public_key, &label)).await
    }

    /// On a new phone: takes over the device id another device of the account registered.
    pub async fn link_device(&self, device_id: Uuid) -> Res<SessionInfo> {
        guard(self.sdk.link_device(device_id)).await
    }

    pub async fn revoke_device(&self, device_id: Uuid) -> Res<()> {
        guard(self.sdk.revoke_device(device_id)).await
    }

    /// Where content-free wake-ups go (an allowed push gateway URL with the FCM/APNs token).
    pub async fn register_push_endpoint(&self, url: String) -> Res<()> {
        guard(self.sdk.register_push_endpoint(&url)).await
    }

    /// The server's VAPID public key (base64url), for a Web Push subscription.
    pub async fn vapid_public_key(&self) -> Res<String> {
        guard(self.sdk.vapid_public_key()).await
    }

    /// Registers a Web Push subscription (endpoint and base64url keys).
    pub async fn register_web_push(
        &self,
        endpoint: String,
        p256dh: String,
        auth: String,
    ) -> Res<()> {
        guard(self.sdk.register_web_push(&endpoint, &p256dh, &auth)).await
    }

    pub async fn clear_push_endpoint(&self) -> Res<()> {
        guard(self.sdk.clear_push_endpoint()).await
    }

    pub async fn ensure_key_packages(&self) -> Res<KeyPackageStatus> {
        guard(self.sdk.ensure_key_packages()).await
    }

    // ---------------------------------------------------------------- conversations

    pub async fn conversations(&self) -> Res<Vec<ConversationInfo>> {
        guard(self.sdk.conversations()).await
    }

    pub async fn create_supervision_conversation(&self, peer_id: Uuid) -> Res<ConversationInfo> {
        guard(self.sdk.create_supervision_conversation(peer_id)).await
    }

    pub async fn add_user(&self, conversation: Uuid, user_id: Uuid) -> Res<Vec<Event>> {
        guard(self.sdk.add_user(conversation, user_id)).await
    }

    pub async fn self_update(&self, conversation: Uuid) -> Res<Vec<Event>> {
        guard(self.sdk.self_update(conversation)).await
    }

    pub async fn accept_welcomes(&self) -> Res<Vec<Event>> {
        guard(self.sdk.accept_welcomes()).await
    }

    pub async fn rejoin(&self, conversation: Uuid) -> Res<Vec<Event>> {
        guard(self.sdk.rejoin(conversation)).await
    }

    pub fn members(&self, conversation: Uuid) -> Res<Vec<Member>> {
        guard_sync(|| self.sdk.members(conversation))
    }

    /// The 20-digit code two members compare in person.
    pub fn safety_code(&self, conversation: Uuid) -> Res<String> {
        guard_sync(|| self.sdk.safety_code(conversation))
    }

    /// Sends a text; returns its id once the server stored it.
    pub async fn send_text(&self, conversation: Uuid, text: String) -> Res<Uuid> {
        guard(self.sdk.send_text(conversation, &text)).await
    }

    pub async fn send_read_receipt(&self, conversation: Uuid, ids: Vec<Uuid>) -> Res<()> {
        guard(self.sdk.send_read_receipt(conversation, ids)).await
    }

    /// The conversation's history on this device, a page of at most `limit` lines ending
    /// before `before` (the newest page when `None`).
    pub fn history(&self, conversation: Uuid, before: Option<u64>, limit: u32) -> Res<HistoryPage> {
        guard_sync(|| self.sdk.history(conversation, before, limit))
    }

    pub async fn sync(&self, conversation: Uuid) -> Res<Vec<Event>> {
        guard(self.sdk.sync(conversation)).await
    }

    pub async fn sync_all(&self) -> Res<Vec<Event>> {
        guard(self.sdk.sync_all()).await
    }

    // ---------------------------------------------------------------- clinic side (HPs)

    pub async fn create_invite(
        &self,
        clinic: Uuid,
        role: EnrolleeRole,
        display_name: Option<String>,
        phone: Option<String>,
    ) -> Res<InviteCreated> {
        guard(self.sdk.create_invite(clinic, role, display_name, phone)).await
    }

    pub async fn assign_supervisor(
        &self,
        clinic: Uuid,
        peer: Uuid,
        hp: Uuid,
    ) -> Res<SupervisorAssignment> {
        guard(self.sdk.assign_supervisor(clinic, peer, hp)).await
    }

    pub async fn supervisors(&self, clinic: Uuid, peer: Uuid) -> Res<Vec<SupervisorAssignment>> {
        guard(self.sdk.supervisors(clinic, peer)).await
    }

    /// The caller's own supervision assignments (a peer's supervisors, an HP's peers).
    pub async fn my_supervision(&self) -> Res<Vec<SupervisorAssignment>> {
        guard(self.sdk.my_supervision()).await
    }

    pub async fn clinics(&self) -> Res<Vec<Clinic>> {
        guard(self.sdk.clinics()).await
    }

    pub async fn clinic(&self, clinic: Uuid) -> Res<Clinic> {
        guard(self.sdk.clinic(clinic)).await
    }

    pub async fn clinic_users(&self, clinic: Uuid) -> Res<Vec<UserSummary>> {
        guard(self.sdk.clinic_users(clinic)).await
    }

    /// One user with identifying fields (audited on the server).
    pub async fn clinic_user(&self, clinic: Uuid, user: Uuid) -> Res<UserDetail> {
        guard(self.sdk.clinic_user(clinic, user)).await
    }

    pub async fn deactivate_user(&self, clinic: Uuid, user: Uuid) -> Res<UserSummary> {
        guard(self.sdk.deactivate_user(clinic, user)).await
    }

    pub async fn change_role(&self, clinic: Uuid, user: Uuid, role: StaffRole) -> Res<UserSummary> {
        guard(self.sdk.change_role(clinic, user, role)).await
    }

    pub async fn invites(&self, clinic: Uuid) -> Res<Vec<Invite>> {
        guard(self.sdk.invites(clinic)).await
    }

    pub async fn revoke_invite(&self, clinic: Uuid, invite: Uuid) -> Res<Invite> {
        guard(self.sdk.revoke_invite(clinic, invite)).await
    }

    pub async fn create_staff(&self, clinic: Uuid, staff: StaffCreate) -> Res<StaffCreated> {
        guard(self.sdk.create_staff(clinic, &staff)).await
    }

    pub async fn escalation_settings(&self, clinic: Uuid) -> Res<EscalationSettings> {
        guard(self.sdk.escalation_settings(clinic)).await
    }

    pub async fn set_escalation_settings(
        &self,
        clinic: Uuid,
        settings: EscalationSettings,
    ) -> Res<EscalationSettings> {
        guard(self.sdk.set_escalation_settings(clinic, &settings)).await
    }

    pub async fn set_crisis_resources(
        &self,
        clinic: Uuid,
        resources: CrisisResourceList,
    ) -> Res<CrisisResourceList> {
        guard(self.sdk.set_crisis_resources(clinic, &resources)).await
    }

    pub async fn consultation_report(
        &self,
        clinic: Uuid,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Res<ConsultationReport> {
        guard(self.sdk.consultation_report(clinic, from, to)).await
    }

    /// The consultation report as CSV text.
    pub async fn consultation_report_csv(
        &self,
        clinic: Uuid,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Res<String> {
        guard(self.sdk.consultation_report_csv(clinic, from, to)).await
    }

    pub async fn topics(&self, clinic: Uuid) -> Res<Vec<Topic>> {
        guard(self.sdk.topics(clinic)).await
    }

    pub async fn set_topics(&self, clinic: Uuid, topics: Vec<Topic>) -> Res<Vec<Topic>> {
        guard(self.sdk.set_topics(clinic, topics)).await
    }

    pub async fn peer_profiles(&self, clinic: Uuid) -> Res<Vec<PeerProfile>> {
        guard(self.sdk.peer_profiles(clinic)).await
    }

    pub async fn set_peer_profile(
        &self,
        clinic: Uuid,
        peer: Uuid,
        profile: PeerProfileUpdate,
    ) -> Res<PeerProfile> {
        guard(self.sdk.set_peer_profile(clinic, peer, &profile)).await
    }

    pub async fn approve_peer(
        &self,
        clinic: Uuid,
        peer: Uuid,
        trained_on: NaiveDate,
    ) -> Res<PeerProfile> {
        guard(self.sdk.approve_peer(clinic, peer, trained_on)).await
    }

    pub async fn withdraw_peer_approval(&self, clinic: Uuid, peer: Uuid) -> Res<PeerProfile> {
        guard(self.sdk.withdraw_peer_approval(clinic, peer)).await
    }

    pub async fn peer_profile(&self, clinic: Uuid, peer: Uuid) -> Res<PeerProfile> {
        guard(self.sdk.peer_profile(clinic, peer)).await
    }

    pub async fn needs(&self, clinic: Uuid, user: Uuid) -> Res<NeedsRecord> {
        guard(self.sdk.needs(clinic, user)).await
    }

    pub async fn set_needs(&self, clinic: Uuid, user: Uuid, needs: Needs) -> Res<NeedsRecord> {
        guard(self.sdk.set_needs(clinic, user, &needs)).await
    }

    pub async fn suggestions(&self, clinic: Uuid, user: Uuid) -> Res<Vec<Suggestion>> {
        guard(self.sdk.suggestions(clinic, user)).await
    }

    pub async fn propose_introduction(
        &self,
        clinic: Uuid,
        proposal: IntroductionCreate,
    ) -> Res<IntroductionDetail> {
        guard(self.sdk.propose_introduction(clinic, &proposal)).await
    }

    pub async fn clinic_introductions(&self, clinic: Uuid) -> Res<Vec<IntroductionDetail>> {
        guard(self.sdk.clinic_introductions(clinic)).await
    }

    pub async fn clinic_introduction(&self, clinic: Uuid, id: Uuid) -> Res<IntroductionDetail> {
        guard(self.sdk.clinic_introduction(clinic, id)).await
    }

    pub async fn hp_introduction_action(
        &self,
        clinic: Uuid,
        id: Uuid,
        action: HpIntroductionAction,
    ) -> Res<IntroductionDetail> {
        let action = match action {
            HpIntroductionAction::Pause => "pause",
            HpIntroductionAction::Resume => "resume",
            HpIntroductionAction::Close => "close",
        };
        guard(self.sdk.hp_introduction_action(clinic, id, action)).await
    }

    pub async fn rematch(
        &self,
        clinic: Uuid,
        id: Uuid,
        rematch: Rematch,
    ) -> Res<IntroductionDetail> {
        guard(self.sdk.rematch(clinic, id, &rematch)).await
    }

    pub async fn boundary_reports(&self, clinic: Uuid, id: Uuid) -> Res<Vec<BoundaryReport>> {
        guard(self.sdk.boundary_reports(clinic, id)).await
    }

    pub async fn mark_report_handled(
        &self,
        clinic: Uuid,
        id: Uuid,
        report: Uuid,
    ) -> Res<BoundaryReport> {
        guard(self.sdk.mark_report_handled(clinic, id, report)).await
    }

    /// The introducing HP joins an introduction's conversation (only after both parties'
    /// `invite_hp` consents).
    pub async fn join_introduction(
        &self,
        conversation: Uuid,
        introduction: Uuid,
    ) -> Res<Vec<Event>> {
        guard(self.sdk.join_introduction(conversation, introduction)).await
    }

    // ---------------------------------------------------------------- introductions (parties)

    pub async fn own_peer_profile(&self) -> Res<PeerProfile> {
        guard(self.sdk.own_peer_profile()).await
    }

    pub async fn update_own_peer_profile(&self, update: OwnPeerProfileUpdate) -> Res<PeerProfile> {
        guard(self.sdk.update_own_peer_profile(&update)).await
    }

    pub async fn introductions(&self) -> Res<Vec<PartyIntroduction>> {
        guard(self.sdk.introductions()).await
    }

    pub async fn introduction(&self, id: Uuid) -> Res<PartyIntroduction> {
        guard(self.sdk.introduction(id)).await
    }

    pub async fn accept_introduction(&self, id: Uuid) -> Res<PartyIntroduction> {
        guard(self.sdk.accept_introduction(id)).await
    }

    pub async fn decline_introduction(&self, id: Uuid) -> Res<PartyIntroduction> {
        guard(self.sdk.decline_introduction(id)).await
    }

    pub async fn pause_introduction(&self, id: Uuid) -> Res<PartyIntroduction> {
        guard(self.sdk.pause_introduction(id)).await
    }

    pub async fn resume_introduction(&self, id: Uuid) -> Res<PartyIntroduction> {
        guard(self.sdk.resume_introduction(id)).await
    }

    pub async fn close_introduction(&self, id: Uuid) -> Res<PartyIntroduction> {
        guard(self.sdk.close_introduction(id)).await
    }

    pub async fn block_counterpart(&self, id: Uuid) -> Res<PartyIntroduction> {
        guard(self.sdk.block_counterpart(id)).await
    }

    pub async fn report_boundary(
        &self,
        id: Uuid,
        category: BoundaryCategory,
        note: Option<String>,
    ) -> Res<BoundaryReport> {
        guard(self.sdk.report_boundary(id, category, note)).await
    }

    /// Opens the introduction's conversation (the first party to accept does this; the SDK
    /// also does it on acceptance). Returns the conversation id.
    pub async fn open_introduction(&self, id: Uuid) -> Res<Uuid> {
        guard(self.sdk.open_introduction(id)).await
    }

    pub async fn consent(&self, id: Uuid, scope: ConsentScope) -> Res<ConsentState> {
        guard(self.sdk.consent(id, scope)).await
    }

    pub async fn withdraw_consent(&self, id: Uuid, scope: ConsentScope) -> Res<ConsentState> {
        guard(self.sdk.withdraw_consent(id, scope)).await
    }

    pub async fn consent_state(&self, id: Uuid) -> Res<ConsentState> {
        guard(self.sdk.consent_state(id)).await
    }

    /// What this user shows when both consent to reveal (kept sealed on the device).
    pub fn set_identity_card(&self, card: IdentityCard) -> Res<()> {
        guard_sync(|| self.sdk.set_identity_card(&card))
    }

    /// The counterpart's card, once both revealed.
    pub fn counterpart_card(&self, introduction: Uuid) -> Res<Option<IdentityCard>> {
        guard_sync(|| self.sdk.counterpart_card(introduction))
    }

    // ---------------------------------------------------------------- escalation

    /// A peer flags risk in a conversation, quoting the messages at `seqs` (sealed to the
    /// responders' keys with their franking proofs).
    pub async fn raise_flag(
        &self,
        conversation: Uuid,
        category: RiskCategory,
        severity: Severity,
        note: String,
        seqs: Vec<u64>,
    ) -> Res<FlagReceipt> {
        guard(
            self.sdk
                .raise_flag(conversation, category, severity, &note, &seqs),
        )
        .await
    }

    /// "I need help now" from a service user (imminent), optionally quoting messages.
    pub async fn help_now(
        &self,
        conversation: Uuid,
        note: String,
        seqs: Vec<u64>,
    ) -> Res<FlagReceipt> {
        guard(self.sdk.help_now(conversation, &note, &seqs)).await
    }

    /// HPs: publishes this device's escalation key (call after sign-in).
    pub async fn ensure_escalation_key(&self) -> Res<()> {
        guard(self.sdk.ensure_escalation_key()).await
    }

    /// The person's language for the clinic's answers to a flag (kept on the device).
    pub fn set_locale(&self, locale: Locale) -> Res<()> {
        guard_sync(|| self.sdk.set_locale(locale))
    }

    /// HPs: the fingerprint of this device's escalation key, to show the certifying admin.
    pub fn escalation_key_fingerprint(&self) -> Res<Option<String>> {
        guard_sync(|| self.sdk.escalation_key_fingerprint())
    }

    /// The fingerprint of the clinic's escalation authority this device trusts, if any.
    pub fn escalation_authority_fingerprint(&self) -> Res<Option<String>> {
        guard_sync(|| self.sdk.escalation_authority_fingerprint())
    }

    /// Clinic admins: creates the clinic's escalation authority on this device.
    pub async fn setup_escalation_authority(&self) -> Res<EscalationAuthority> {
        guard(self.sdk.setup_escalation_authority()).await
    }

    /// Clinic admins: HP devices' escalation keys with locally computed fingerprints.
    pub async fn escalation_keys(&self) -> Res<Vec<EscalationKeyReview>> {
        guard(self.sdk.escalation_keys()).await
    }

    /// Clinic admins (the authority's device): certifies a key whose fingerprint matches.
    pub async fn certify_escalation_key(&self, device_id: Uuid, fingerprint: String) -> Res<()> {
        guard(self.sdk.certify_escalation_key(device_id, fingerprint)).await
    }

    /// The HP's queue: most severe and oldest first.
    pub async fn flags(&self) -> Res<Vec<Flag>> {
        guard(self.sdk.flags()).await
    }

    pub async fn flag(&self, id: Uuid) -> Res<FlagDetail> {
        guard(self.sdk.flag(id)).await
    }

    /// Opens the flag's excerpt and verifies every quoted message's franking stamp.
    pub async fn open_flag(&self, id: Uuid) -> Res<OpenedFlag> {
        guard(self.sdk.open_flag(id)).await
    }

    pub async fn acknowledge_flag(&self, id: Uuid) -> Res<FlagDetail> {
        guard(self.sdk.acknowledge_flag(id)).await
    }

    pub async fn add_flag_note(&self, id: Uuid, note: String) -> Res<FlagDetail> {
        guard(self.sdk.add_flag_note(id, note)).await
    }

    pub async fn reassign_flag(&self, id: Uuid, hp: Uuid) -> Res<FlagDetail> {
        guard(self.sdk.reassign_flag(id, hp)).await
    }

    /// Who the flagged person is, for a stated reason (kept with the audit entry).
    pub async fn flag_subject(&self, id: Uuid, reason: String) -> Res<SubjectIdentity> {
        guard(self.sdk.flag_subject(id, &reason)).await
    }

    pub async fn resolve_flag(
        &self,
        id: Uuid,
        outcome: FlagOutcome,
        note: Option<String>,
    ) -> Res<FlagDetail> {
        guard(self.sdk.resolve_flag(id, outcome, note)).await
    }

    pub async fn crisis_resources(&self, locale: Locale) -> Res<CrisisResourceList> {
        guard(self.sdk.crisis_resources(locale)).await
    }

    /// When the person's own draft reads as risk: the crisis numbers and the help they can
    /// ask for, to offer before they send it. Read on the device; nothing is sent or flagged.
    pub async fn draft_offer(&self, draft: String) -> Res<Option<DraftOffer>> {
        guard(self.sdk.draft_offer(&draft)).await
    }

    pub async fn request_debrief(&self, introduction: Option<Uuid>, urgent: bool) -> Res<Debrief> {
        guard(self.sdk.request_debrief(introduction, urgent)).await
    }

    pub async fn debrief_queue(&self) -> Res<Vec<Debrief>> {
        guard(self.sdk.debrief_queue()).await
    }

    pub async fn my_debriefs(&self) -> Res<Vec<Debrief>> {
        guard(self.sdk.my_debriefs()).await
    }

    /// Where a flag this user raised stands (received, acknowledged, resolved).
    pub async fn flag_progress(&self, flag: Uuid) -> Res<FlagProgress> {
        guard(self.sdk.flag_progress(flag)).await
    }

    /// The flags this user raised, newest first.
    pub async fn my_flags(&self) -> Res<Vec<FlagProgress>> {
        guard(self.sdk.my_flags()).await
    }

    /// Flags raised on this device that have not reached the clinic yet.
    pub fn queued_flags(&self) -> Res<Vec<QueuedFlagInfo>> {
        guard_sync(|| self.sdk.queued_flags())
    }

    pub async fn acknowledge_debrief(&self, id: Uuid) -> Res<Debrief> {
        guard(self.sdk.acknowledge_debrief(id)).await
    }

    pub async fn log_consultation(
        &self,
        date: NaiveDate,
        duration_minutes: u32,
        kind: ConsultationKind,
    ) -> Res<Consultation> {
        guard(self.sdk.log_consultation(date, duration_minutes, kind)).await
    }

    pub async fn my_consultations(&self) -> Res<Vec<Consultation>> {
        guard(self.sdk.my_consultations()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sdk_error_keeps_its_code_across_the_boundary() {
        let all = [
            SdkError::Network("x".into()),
            SdkError::Unauthenticated("x".into()),
            SdkError::Forbidden("x".into()),
            SdkError::NotFound("x".into()),
            SdkError::Conflict("x".into()),
            SdkError::StaleEpoch("x".into()),
            SdkError::RateLimited {
                retry_after_seconds: 7,
            },
            SdkError::InvalidInput("x".into()),
            SdkError::Storage("x".into()),
            SdkError::WrongStorageKey,
            SdkError::Mls("x".into()),
            SdkError::Server("x".into()),
        ];
        for e in all {
            let code = e.code();
            let p = PeerbridgeError::from(e);
            assert_eq!(p.code(), code);
            assert_eq!(error_code(&p), code);
        }
        assert_eq!(
            PeerbridgeError::from(SdkError::RateLimited {
                retry_after_seconds: 7
            }),
            PeerbridgeError::RateLimited {
                retry_after_seconds: 7
            }
        );
    }

    #[tokio::test]
    async fn a_panic_inside_a_call_is_an_internal_error() {
        let r: Res<()> = guard(async { panic!("boom") }).await;
        assert_eq!(r.map_err(|e| e.code()), Err("internal"));
        let r: Res<()> = guard_sync(|| panic!("boom"));
        assert_eq!(r.map_err(|e| e.code()), Err("internal"));
    }

    #[test]
    fn the_detector_is_reachable_and_only_suggests() {
        let s = detect_risk("I am going to kill myself tonight".into()).expect("risk");
        assert_eq!(s.category, RiskCategory::SuicideRisk);
        assert_eq!(detect_risk("We had a lovely walk today".into()), None);
    }
}
