//! [`PeerbridgeClient`]: the one object an app holds per device. It owns the client core
//! (MLS state in the encrypted store), the SDK state (session, cursors, inbox, outbox) and
//! the network (HTTP here, the WebSocket in `stream.rs`).
//!
//! Concurrency: every method takes `&self` (the FFI hands out `Arc`s). The MLS client and
//! the state store sit behind plain mutexes that are never held across an `.await`; each
//! conversation has an async lock that serializes its send, sync and commit steps; token
//! refresh is single-flight behind its own async lock, because presenting a spent refresh
//! token revokes the whole session.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use peerbridge_mls::{
    AddCandidate, Client as MlsClient, ClientOptions, Envelope, GroupId, MessageId, PendingCommit,
    StoreKey,
};
use peerbridge_openapi::Role;
use peerbridge_openapi::auth::{
    Challenge, ChallengeRequest, DeviceLogin, DeviceRegistration, InviteRedeem, LogoutRequest,
    PasswordLogin, RefreshRequest, Session,
};
use peerbridge_openapi::delivery::{
    Ack, ClaimedKeyPackage, CommitAccepted, CommitUpload, Conversation, ConversationCreate,
    ConversationKind, EntryKind, GroupInfoOut, KeyPackageClaim, KeyPackageStatus, KeyPackageUpload,
    LogPage, MessageAccepted, MessageSend, Welcome,
};
use peerbridge_openapi::signed::login_challenge_message;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Result, SdkError};
use crate::events::{Event, Member, map_mls_event};
use crate::http::{Api, Reply, b64, unb64};
use crate::state::{self, StateError};
use crate::stream::Receiver;

/// How many recent client ids each conversation remembers for deduplication.
const RECENT_IDS: usize = 256;
/// Log page size when syncing.
const PAGE: u32 = 200;
/// Refresh this long before the access token expires (clock skew, slow networks).
const REFRESH_MARGIN: chrono::Duration = chrono::Duration::seconds(60);

/// Tunables with defaults suited to a phone.
#[derive(Debug, Clone)]
pub struct SdkOptions {
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// Attempts for a send on transport errors (same client id each time).
    pub max_send_attempts: u32,
    /// Attempts for a commit that loses its epoch to another member (409 `stale_epoch`).
    pub max_commit_attempts: u32,
    /// First retry delay; doubles per attempt.
    pub retry_base_delay: Duration,
    /// How often the receive loop polls while the WebSocket is down.
    pub poll_interval: Duration,
    /// Upper bound of the WebSocket reconnect backoff.
    pub max_reconnect_backoff: Duration,
    /// A socket silent this long is considered dead (the server pings every 20 s).
    pub stream_silence_timeout: Duration,
    /// Tests only: sees every response body and stream frame received.
    pub wire_tap: Option<crate::http::WireTap>,
    /// Tests only: panic after the MLS step of a received message, before the SDK's own
    /// rows, as a process killed at that instant would stop.
    #[doc(hidden)]
    pub crash_after_mls_step: bool,
}

impl Default for SdkOptions {
    fn default() -> Self {
        SdkOptions {
            request_timeout: Duration::from_secs(30),
            max_send_attempts: 4,
            max_commit_attempts: 5,
            retry_base_delay: Duration::from_millis(250),
            poll_interval: Duration::from_secs(30),
            max_reconnect_backoff: Duration::from_secs(60),
            stream_silence_timeout: Duration::from_secs(50),
            wire_tap: None,
            crash_after_mls_step: false,
        }
    }
}

/// Who this device is signed in as (no tokens).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SessionInfo {
    pub user_id: Uuid,
    pub device_id: Uuid,
    pub clinic_id: Option<Uuid>,
    pub role: Role,
    /// Whether tokens are held (false after logout or a revoked session; `login` restores).
    pub signed_in: bool,
    pub access_token_expires_at: Option<DateTime<Utc>>,
}

/// A conversation as the app lists it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ConversationInfo {
    pub id: Uuid,
    pub kind: ConversationKind,
    pub clinic_id: Option<Uuid>,
    /// Users whose devices may be members (the conversation's policy on the server).
    pub allowed_users: Vec<Uuid>,
    /// The epoch the server has accepted.
    pub epoch: u64,
    /// The highest sequence number in the conversation's log.
    pub last_seq: u64,
    /// This device holds the group (it created or joined it).
    pub joined: bool,
    /// Entries this device has not read yet.
    pub unread: bool,
}

/// The account and its tokens, kept sealed in the state store.
#[derive(Clone, Serialize, Deserialize)]
struct Account {
    user_id: Uuid,
    device_id: Uuid,
    clinic_id: Option<Uuid>,
    role: Role,
    tokens: Option<Tokens>,
}

#[derive(Clone, Serialize, Deserialize)]
struct Tokens {
    access_token: String,
    /// As the server states it (for display).
    access_expires_at: DateTime<Utc>,
    /// When to refresh, on this device's clock: receipt time plus the token's lifetime
    /// (`exp - iat`) minus a margin, so a phone whose clock is off neither refreshes on
    /// every call nor waits for 401s.
    refresh_at_local: DateTime<Utc>,
    refresh_token: String,
    refresh_expires_at: DateTime<Utc>,
}

impl Account {
    fn from_session(s: Session) -> Account {
        let refresh_at_local = Utc::now() + token_lifetime(&s.access_token) - REFRESH_MARGIN;
        Account {
            user_id: s.user_id,
            device_id: s.device_id,
            clinic_id: s.clinic_id,
            role: s.role,
            tokens: Some(Tokens {
                access_token: s.access_token,
                access_expires_at: s.access_token_expires_at,
                refresh_at_local,
                refresh_token: s.refresh_token,
                refresh_expires_at: s.refresh_token_expires_at,
            }),
        }
    }
}

/// Per-conversation SDK state.
#[derive(Clone, Default, Serialize, Deserialize)]
pub(crate) struct ConvState {
    /// The MLS group id (base64url), once this device holds the group.
    group_id: Option<String>,
    /// Everything up to here has been processed (the `after` of the next read).
    pub(crate) cursor: u64,
    /// Acknowledged to the server up to here.
    acked: u64,
    /// Recently processed client ids and message ids (deduplication of replays).
    recent: VecDeque<Uuid>,
    /// Undelivered events live in rows `inbox/<conv>/<n>` for `inbox_head <= n < inbox_next`.
    inbox_head: u64,
    inbox_next: u64,
    /// Messages encrypted but not yet confirmed stored by the server.
    outbox: Vec<Outgoing>,
    /// A commit of this group could not be processed: rejoin at the end of the sync.
    needs_rejoin: bool,
    /// The introduction this conversation belongs to.
    #[serde(default)]
    pub(crate) introduction: Option<Uuid>,
    /// This device's leaf here is pseudonymous (a party of an introduction).
    #[serde(default)]
    pub(crate) pseudonymous: bool,
    /// The conversation's history (what the app shows) lives in rows `hist/<conv>/<n>` for
    /// `n < history_len`, oldest first.
    #[serde(default)]
    history_len: u64,
}

impl ConvState {
    /// The history row for this device's own message, stored at `seq`.
    fn record_own(
        &mut self,
        conv: Uuid,
        record: Option<Event>,
        stored_at: u64,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>> {
        let Some(mut e) = record else {
            return Ok(Vec::new());
        };
        if let Event::Text { seq, .. } = &mut e {
            *seq = stored_at;
        }
        let row = (hist_key(conv, self.history_len), Some(state::encode(&e)?));
        self.history_len += 1;
        Ok(vec![row])
    }

    pub(crate) fn group_id_known(&self) -> bool {
        self.group_id.is_some()
    }

    pub(crate) fn group_id_set(&mut self, gid: String) {
        self.group_id = Some(gid);
    }

    fn remember(&mut self, id: Uuid) {
        if !self.recent.contains(&id) {
            if self.recent.len() >= RECENT_IDS {
                self.recent.pop_front();
            }
            self.recent.push_back(id);
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct Outgoing {
    client_id: Uuid,
    ciphertext: String,
    /// This device's own message as its history shows it once stored (`seq` filled in then).
    #[serde(default)]
    record: Option<Event>,
}

/// The membership policy this SDK applies to every member a commit, join or welcome would
/// put next to this device. Outside introductions: device credentials that verify. In an
/// introduction: the two parties' pseudonymous leaves (one each when the group opens; a
/// party's own rejoin), and a device-credential member only if it is one of the
/// introducing HP's devices *and* this client holds valid signed `invite_hp` consents of
/// both parties (`intro.admitted`). Anything else is refused and shown.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConvPolicy {
    pub(crate) intro: Option<IntroPolicy>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct IntroPolicy {
    /// Device keys of the introducing HP admitted by both parties' verified consents.
    pub(crate) admitted: Vec<Vec<u8>>,
    /// Pseudonymous members in the group before the change being checked.
    pub(crate) pseudonymous_members: usize,
}

impl peerbridge_mls::AddPolicy for ConvPolicy {
    fn allows(&self, c: &AddCandidate<'_>) -> bool {
        use peerbridge_mls::AddKind;
        if !c.member.verified {
            return false;
        }
        match &self.intro {
            None => !c.member.pseudonymous,
            Some(p) if c.member.pseudonymous => match c.kind {
                AddKind::ExistingMember | AddKind::ExternalJoin => true,
                AddKind::AddedByCommit => p.pseudonymous_members < 2,
            },
            Some(p) => p.admitted.contains(&c.member.identity),
        }
    }
}

pub(crate) fn conv_key(id: Uuid) -> String {
    format!("conv/{id}")
}

fn inbox_key(id: Uuid, n: u64) -> String {
    format!("inbox/{id}/{n}")
}

fn hist_key(id: Uuid, n: u64) -> String {
    format!("hist/{id}/{n}")
}

/// What a conversation's history keeps: what the app shows as lines.
fn shown(e: &Event) -> bool {
    matches!(
        e,
        Event::Text { .. }
            | Event::Notice { .. }
            | Event::IdentityCard { .. }
            | Event::MessagesPurged { .. }
    )
}

/// A page of a conversation's history, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HistoryPage {
    pub events: Vec<Event>,
    /// Pass as `before` for the next (older) page; `None` at the beginning.
    pub before: Option<u64>,
}

/// Marks a client id this device sent, until its echo in the log is skipped.
fn own_key(id: Uuid, client_id: Uuid) -> String {
    format!("own/{id}/{client_id}")
}

const ACCOUNT_KEY: &str = "account";
const CONVS_KEY: &str = "convs";

/// One device's Peerbridge client. Create it once per storage directory and share it.
pub struct PeerbridgeClient {
    pub(crate) api: Api,
    pub(crate) options: SdkOptions,
    mls: Mutex<MlsClient>,
    device_key: [u8; 32],
    account: Mutex<Option<Account>>,
    refresh_lock: tokio::sync::Mutex<()>,
    conv_locks: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
    pub(crate) receiver: tokio::sync::Mutex<Receiver>,
    /// Per introduction conversation: the HP device keys admitted by verified consents.
    pub(crate) admitted_hp: Mutex<HashMap<Uuid, Vec<Vec<u8>>>>,
}

impl std::fmt::Debug for PeerbridgeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerbridgeClient")
            .field("server", &self.api.base())
            .field("device_key", &b64(&self.device_key))
            .finish_non_exhaustive()
    }
}

impl PeerbridgeClient {
    /// Opens the device's storage (creating it and a new device identity on first use).
    /// `storage_key` is exactly 32 bytes from the platform keystore; a different key than the
    /// one the directory was created with fails with [`SdkError::WrongStorageKey`] and
    /// changes nothing. Use one client per directory at a time.
    pub fn open(
        server_url: &str,
        storage_dir: impl Into<PathBuf>,
        storage_key: &[u8],
    ) -> Result<PeerbridgeClient> {
        Self::open_with_options(server_url, storage_dir, storage_key, SdkOptions::default())
    }

    pub fn open_with_options(
        server_url: &str,
        storage_dir: impl Into<PathBuf>,
        storage_key: &[u8],
        options: SdkOptions,
    ) -> Result<PeerbridgeClient> {
        let key: [u8; 32] = storage_key
            .try_into()
            .map_err(|_| SdkError::InvalidInput("the storage key is exactly 32 bytes".into()))?;
        let dir = storage_dir.into();
        std::fs::create_dir_all(&dir)
            .map_err(|e| SdkError::Storage(format!("cannot create the storage directory: {e}")))?;
        let api = Api::new(
            server_url,
            options.request_timeout,
            options.wire_tap.clone(),
        )?;
        let mls = MlsClient::open(
            dir.join("mls.db"),
            &StoreKey::from_bytes(key),
            ClientOptions::default(),
        )?;
        let account = state::get::<Account>(&mls, ACCOUNT_KEY)?;
        let device_key = mls.identity().public_key();
        Ok(PeerbridgeClient {
            api,
            options,
            mls: Mutex::new(mls),
            device_key,
            account: Mutex::new(account),
            refresh_lock: tokio::sync::Mutex::new(()),
            conv_locks: Mutex::new(HashMap::new()),
            receiver: tokio::sync::Mutex::new(Receiver::default()),
            admitted_hp: Mutex::new(HashMap::new()),
        })
    }

    /// This device's Ed25519 public key (unpadded base64url), as registered at enrollment.
    pub fn device_public_key(&self) -> String {
        b64(&self.device_key)
    }

    // ------------------------------------------------------------------ plumbing

    pub(crate) fn mls(&self) -> Result<MutexGuard<'_, MlsClient>> {
        self.mls
            .lock()
            .map_err(|_| SdkError::Storage("the MLS client lock was poisoned".into()))
    }

    /// Signs with this device's key (e.g. its escalation key publication).
    pub(crate) fn device_sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        Ok(self.mls()?.identity().sign(message).to_vec())
    }

    pub(crate) fn account_role(&self) -> Result<Option<Role>> {
        Ok(self.account()?.map(|a| a.role))
    }

    fn account(&self) -> Result<Option<Account>> {
        Ok(self
            .account
            .lock()
            .map_err(|_| SdkError::Storage("the account lock was poisoned".into()))?
            .clone())
    }

    fn save_account(&self, a: Account) -> Result<()> {
        self.state_put(ACCOUNT_KEY, &a)?;
        *self
            .account
            .lock()
            .map_err(|_| SdkError::Storage("the account lock was poisoned".into()))? = Some(a);
        Ok(())
    }

    pub(crate) fn conv_lock(&self, id: Uuid) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.conv_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(id).or_default().clone()
    }

    pub(crate) fn conv_state(&self, id: Uuid) -> Result<Option<ConvState>> {
        self.state_get(&conv_key(id))
    }

    /// Persists a conversation's state together with new inbox events, in one transaction.
    pub(crate) fn save_conv(&self, id: Uuid, st: &mut ConvState, events: Vec<Event>) -> Result<()> {
        self.save_conv_with(id, st, events, Vec::new())
    }

    /// Like [`Self::save_conv`], with more rows in the same transaction.
    pub(crate) fn save_conv_with(
        &self,
        id: Uuid,
        st: &mut ConvState,
        events: Vec<Event>,
        batch: Vec<(String, Option<Vec<u8>>)>,
    ) -> Result<()> {
        save_conv_in(&mut *self.mls()?, id, st, events, batch)
    }

    pub(crate) fn checkpoint_state(&self) -> Result<()> {
        Ok(self.mls()?.checkpoint()?)
    }

    pub(crate) fn state_get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        Ok(state::get(&*self.mls()?, key)?)
    }

    pub(crate) fn state_put<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        Ok(state::put(&mut *self.mls()?, key, value)?)
    }

    /// Adds events to a conversation's inbox (under its lock).
    pub(crate) fn push_events(&self, conv: Uuid, events: Vec<Event>) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut st = self.conv_state(conv)?.unwrap_or_default();
        self.save_conv(conv, &mut st, events)
    }

    pub(crate) fn known_conversations(&self) -> Result<Vec<Uuid>> {
        Ok(self.state_get(CONVS_KEY)?.unwrap_or_default())
    }

    pub(crate) fn add_known(&self, id: Uuid) -> Result<()> {
        add_known_in(&mut *self.mls()?, id)
    }

    /// Takes the undelivered events of one conversation (call with its lock held).
    pub(crate) fn drain_locked(&self, id: Uuid) -> Result<Vec<Event>> {
        let Some(mut st) = self.conv_state(id)? else {
            return Ok(Vec::new());
        };
        if st.inbox_head == st.inbox_next {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut batch = Vec::new();
        for n in st.inbox_head..st.inbox_next {
            let key = inbox_key(id, n);
            match state::get::<Event>(&*self.mls()?, &key) {
                Ok(Some(e)) => out.push(e),
                Ok(None) => {}
                // An event that no longer decodes (older SDK format) is dropped, not fatal.
                Err(StateError::Corrupt(_)) => {}
                Err(e) => return Err(e.into()),
            }
            batch.push((key, None));
        }
        st.inbox_head = st.inbox_next;
        batch.push((conv_key(id), Some(state::encode(&st)?)));
        state::write(&mut *self.mls()?, batch)?;
        Ok(out)
    }

    /// Takes the undelivered events of every conversation.
    pub(crate) async fn drain_all(&self) -> Result<Vec<Event>> {
        let mut out = Vec::new();
        for id in self.known_conversations()? {
            let lock = self.conv_lock(id);
            let _g = lock.lock().await;
            out.extend(self.drain_locked(id)?);
        }
        Ok(out)
    }

    pub(crate) fn group_of(&self, st: &ConvState) -> Result<GroupId> {
        let gid = st.group_id.as_deref().ok_or_else(|| {
            SdkError::NotFound("this device has not joined the conversation".into())
        })?;
        GroupId::new(unb64("group_id", gid)?).map_err(SdkError::from)
    }

    pub(crate) fn joined_state(&self, id: Uuid) -> Result<ConvState> {
        self.conv_state(id)?
            .filter(|s| s.group_id.is_some())
            .ok_or_else(|| SdkError::NotFound("this device has not joined the conversation".into()))
    }

    pub(crate) async fn backoff(&self, attempt: u32) {
        let factor = 1u32 << attempt.min(6);
        tokio::time::sleep(self.options.retry_base_delay.saturating_mul(factor)).await;
    }

    // ------------------------------------------------------------------ sessions

    /// Enrolls this device with a one-time invite from the clinic; the device key is
    /// registered and a session starts.
    pub async fn enroll(&self, invite_code: &str, device_label: &str) -> Result<SessionInfo> {
        if self.account()?.is_some() {
            return Err(SdkError::InvalidInput(
                "this device is already enrolled".into(),
            ));
        }
        let body = InviteRedeem {
            code: invite_code.to_owned(),
            device: self.registration(device_label),
        };
        let s: Session = self
            .api
            .call(Method::POST, "/v1/invites/redeem", None, Some(&body))
            .await?
            .json()?;
        self.start_session(s)
    }

    /// Stores a new session's account and tokens.
    pub(crate) fn start_session(&self, s: Session) -> Result<SessionInfo> {
        self.save_account(Account::from_session(s))?;
        self.session_info()
    }

    /// A new phone joins an account: another signed-in device registered this device's
    /// public key ([`Self::device_public_key`]) with `add_device` and passed on the device
    /// id (e.g. by QR code); this device then proves its key and the session starts.
    pub async fn link_device(&self, device_id: Uuid) -> Result<SessionInfo> {
        if self.account()?.is_some() {
            return Err(SdkError::InvalidInput(
                "this device is already enrolled".into(),
            ));
        }
        let _g = self.refresh_lock.lock().await;
        let s = self.device_session(device_id).await?;
        self.start_session(s)
    }

    /// Staff sign-in with password and authenticator code; registers this device's key with
    /// the account if it is new.
    pub async fn staff_login(
        &self,
        login: &str,
        password: &str,
        totp_code: &str,
        device_label: &str,
    ) -> Result<SessionInfo> {
        let body = PasswordLogin {
            login: login.to_owned(),
            password: password.to_owned(),
            totp_code: totp_code.to_owned(),
            device: self.registration(device_label),
        };
        let _g = self.refresh_lock.lock().await;
        let s: Session = self
            .api
            .call(Method::POST, "/v1/auth/password", None, Some(&body))
            .await?
            .json()?;
        self.save_account(Account::from_session(s))?;
        self.session_info()
    }

    /// Starts a new session with the device key (challenge–response). Needed only after the
    /// session ended; expiring tokens are refreshed transparently.
    pub async fn login(&self) -> Result<SessionInfo> {
        let _g = self.refresh_lock.lock().await;
        self.device_login_locked().await?;
        self.session_info()
    }

    /// Ends the session on the server and forgets its tokens (the enrollment stays).
    pub async fn logout(&self) -> Result<()> {
        let _g = self.refresh_lock.lock().await;
        let Some(mut a) = self.account()? else {
            return Ok(());
        };
        if let Some(t) = a.tokens.take() {
            let body = LogoutRequest {
                refresh_token: t.refresh_token,
            };
            match self
                .api
                .call(Method::POST, "/v1/auth/logout", None, Some(&body))
                .await
            {
                Ok(_) | Err(SdkError::Unauthenticated(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.save_account(a)
    }

    /// The signed-in account, if this device is enrolled.
    pub fn session(&self) -> Result<Option<SessionInfo>> {
        Ok(self.account()?.map(|a| SessionInfo {
            user_id: a.user_id,
            device_id: a.device_id,
            clinic_id: a.clinic_id,
            role: a.role,
            signed_in: a.tokens.is_some(),
            access_token_expires_at: a.tokens.map(|t| t.access_expires_at),
        }))
    }

    fn session_info(&self) -> Result<SessionInfo> {
        self.session()?
            .ok_or_else(|| SdkError::Unauthenticated("this device is not enrolled".into()))
    }

    fn registration(&self, label: &str) -> DeviceRegistration {
        DeviceRegistration {
            public_key: b64(&self.device_key),
            label: label.to_owned(),
        }
    }

    /// With the refresh lock held: challenge–response login with the device key.
    async fn device_login_locked(&self) -> Result<String> {
        let a = self
            .account()?
            .ok_or_else(|| SdkError::Unauthenticated("this device is not enrolled".into()))?;
        let s = self.device_session(a.device_id).await?;
        let token = s.access_token.clone();
        self.save_account(Account::from_session(s))?;
        Ok(token)
    }

    /// Challenge–response with the device key for `device_id`.
    async fn device_session(&self, device_id: Uuid) -> Result<Session> {
        let ch: Challenge = self
            .api
            .call(
                Method::POST,
                "/v1/auth/challenge",
                None,
                Some(&ChallengeRequest { device_id }),
            )
            .await?
            .json()?;
        let signature = self
            .mls()?
            .identity()
            .sign_b64(&login_challenge_message(ch.challenge_id, &ch.nonce));
        let s: Session = self
            .api
            .call(
                Method::POST,
                "/v1/auth/device",
                None,
                Some(&DeviceLogin {
                    challenge_id: ch.challenge_id,
                    device_id,
                    signature,
                }),
            )
            .await?
            .json()?;
        Ok(s)
    }

    /// A current access token, refreshed first if it is about to expire.
    pub(crate) async fn access_token(&self) -> Result<String> {
        let a = self
            .account()?
            .ok_or_else(|| SdkError::Unauthenticated("this device is not enrolled".into()))?;
        match a.tokens {
            Some(t) if t.refresh_at_local > Utc::now() => Ok(t.access_token),
            Some(t) => self.refresh_after(&t.access_token).await,
            None => Err(SdkError::Unauthenticated(
                "signed out; call login() to start a new session".into(),
            )),
        }
    }

    /// Single-flight refresh: whoever gets the lock first refreshes; callers that were
    /// waiting with the same stale token get the new one. If the refresh token is no longer
    /// accepted (expired, revoked, reused after a lost response), the device key starts a
    /// new session, so an enrolled device never needs the user for this.
    pub(crate) async fn refresh_after(&self, stale: &str) -> Result<String> {
        let _g = self.refresh_lock.lock().await;
        let a = self
            .account()?
            .ok_or_else(|| SdkError::Unauthenticated("this device is not enrolled".into()))?;
        let Some(t) = a.tokens.clone() else {
            return Err(SdkError::Unauthenticated(
                "signed out; call login() to start a new session".into(),
            ));
        };
        if t.access_token != stale && t.refresh_at_local > Utc::now() {
            return Ok(t.access_token);
        }
        let body = RefreshRequest {
            refresh_token: t.refresh_token,
        };
        match self
            .api
            .call(Method::POST, "/v1/auth/refresh", None, Some(&body))
            .await
        {
            Ok(reply) => {
                let s: Session = reply.json()?;
                let token = s.access_token.clone();
                self.save_account(Account::from_session(s))?;
                return Ok(token);
            }
            Err(SdkError::Unauthenticated(_)) => {
                tracing::info!("refresh token no longer accepted; logging in with the device key");
            }
            Err(e) => return Err(e),
        }
        match self.device_login_locked().await {
            Err(e @ SdkError::Unauthenticated(_)) => {
                // The device key is refused too (e.g. the device was revoked): forget the
                // dead tokens so nothing keeps presenting them.
                let mut a = a;
                a.tokens = None;
                self.save_account(a)?;
                Err(e)
            }
            other => other,
        }
    }

    /// An authenticated request; on 401 the token is refreshed once and the request retried.
    pub(crate) async fn authed<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Reply> {
        let token = self.access_token().await?;
        match self
            .api
            .call(method.clone(), path, Some(&token), body)
            .await
        {
            Err(SdkError::Unauthenticated(_)) => {
                let token = self.refresh_after(&token).await?;
                self.api.call(method, path, Some(&token), body).await
            }
            other => other,
        }
    }

    pub(crate) async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.authed::<()>(Method::GET, path, None).await?.json()
    }

    // ------------------------------------------------------------------ key packages

    /// Uploads key packages when fewer than the server's `replenish_below` remain, and a
    /// last-resort package when none is held. Call after enrollment, at app start, and
    /// after joining conversations (the SDK also does it after accepting welcomes).
    pub async fn ensure_key_packages(&self) -> Result<KeyPackageStatus> {
        let status: KeyPackageStatus = self.get("/v1/key-packages/status").await?;
        let want = (status.replenish_below.saturating_mul(2)).min(100);
        let missing = if status.remaining < status.replenish_below {
            want.saturating_sub(status.remaining) as usize
        } else {
            0
        };
        // Parties of introductions also keep pseudonymous packages (no last resort: reusing
        // one would link their introductions).
        let party = self
            .account()?
            .is_some_and(|a| matches!(a.role, Role::Peer | Role::ServiceUser));
        let missing_pseudonymous =
            if party && status.pseudonymous_remaining < status.replenish_below {
                want.saturating_sub(status.pseudonymous_remaining) as usize
            } else {
                0
            };
        if missing == 0 && status.has_last_resort && missing_pseudonymous == 0 {
            return Ok(status);
        }
        let mut kps = Vec::with_capacity(missing + 1);
        let mut pseudonymous = Vec::with_capacity(missing_pseudonymous);
        {
            let mut mls = self.mls()?;
            for kp in mls.generate_key_packages(missing)? {
                kps.push(b64(&kp.key_package));
            }
            if !status.has_last_resort {
                kps.push(b64(&mls.last_resort_key_package()?.key_package));
            }
            for kp in mls.generate_pseudonymous_key_packages(missing_pseudonymous)? {
                pseudonymous.push(peerbridge_openapi::delivery::PseudonymousKeyPackage {
                    key_package: b64(&kp.key_package),
                    leaf_binding: b64(kp.leaf_binding.as_deref().unwrap_or_default()),
                });
            }
        }
        self.authed(
            Method::POST,
            "/v1/key-packages",
            Some(&KeyPackageUpload {
                key_packages: kps,
                pseudonymous,
            }),
        )
        .await?
        .json()
    }

    // ------------------------------------------------------------------ conversations

    /// The conversations this user takes part in.
    pub async fn conversations(&self) -> Result<Vec<ConversationInfo>> {
        let convs: Vec<Conversation> = self.get("/v1/conversations").await?;
        let mut out = Vec::with_capacity(convs.len());
        for c in convs {
            let st = self.conv_state(c.id)?;
            let joined = st.as_ref().is_some_and(|s| s.group_id.is_some());
            let cursor = st.map(|s| s.cursor).unwrap_or(c.acked_seq);
            out.push(ConversationInfo {
                id: c.id,
                kind: c.kind,
                clinic_id: c.clinic_id,
                allowed_users: c.allowed_users,
                epoch: c.epoch,
                last_seq: c.last_seq,
                joined,
                unread: joined && c.last_seq > cursor,
            });
        }
        Ok(out)
    }

    /// Creates the peer's supervision conversation and opens its MLS group with every
    /// device of the other allowed users (and this user's other devices) that has a key
    /// package. Users without one can be added later with [`Self::add_user`].
    pub async fn create_supervision_conversation(&self, peer_id: Uuid) -> Result<ConversationInfo> {
        let conv: Conversation = self
            .authed(
                Method::POST,
                "/v1/conversations",
                Some(&ConversationCreate {
                    kind: ConversationKind::Supervision,
                    peer_id: Some(peer_id),
                    introduction_id: None,
                }),
            )
            .await?
            .json()?;
        let lock = self.conv_lock(conv.id);
        let _g = lock.lock().await;
        let gid = GroupId::new(unb64("group_id", &conv.group_id)?)?;
        let mut kps = Vec::new();
        for user in &conv.allowed_users {
            match self.claim(conv.id, *user).await {
                Ok(claimed) => kps.extend(claimed),
                // No device of that user has a key package (or only this device exists).
                Err(SdkError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let kps = decode_claimed(&kps)?;
        let mut st = ConvState {
            group_id: Some(conv.group_id.clone()),
            ..ConvState::default()
        };
        let pc = self.mls()?.create_group(&gid, &kps)?;
        match self.submit(conv.id, &pc).await {
            Ok(accepted) => {
                let before = Vec::new();
                let events = self.accepted(conv.id, &gid, &before)?;
                st.cursor = accepted.seq;
                self.save_conv(conv.id, &mut st, events)?;
                self.add_known(conv.id)?;
            }
            Err(e) => {
                let mut mls = self.mls()?;
                let _ = mls.commit_rejected(&gid);
                mls.forget_group(&gid)?;
                return Err(e);
            }
        }
        Ok(ConversationInfo {
            id: conv.id,
            kind: conv.kind,
            clinic_id: conv.clinic_id,
            allowed_users: conv.allowed_users,
            epoch: self.mls()?.epoch(&gid)?.0,
            last_seq: st.cursor,
            joined: true,
            unread: false,
        })
    }

    pub(crate) async fn claim(&self, conv: Uuid, user: Uuid) -> Result<Vec<ClaimedKeyPackage>> {
        self.authed(
            Method::POST,
            &format!("/v1/conversations/{conv}/key-packages/claim"),
            Some(&KeyPackageClaim {
                user_id: Some(user),
                member: None,
            }),
        )
        .await?
        .json()
    }

    pub(crate) async fn submit(&self, conv: Uuid, pc: &PendingCommit) -> Result<CommitAccepted> {
        let body = CommitUpload {
            epoch: pc.epoch.0,
            commit: b64(&pc.commit),
            welcome: pc.welcome.as_deref().map(b64),
            group_info: b64(&pc.group_info),
            leaf_binding: pc.leaf_binding.as_deref().map(b64),
        };
        self.authed(
            Method::POST,
            &format!("/v1/conversations/{conv}/commits"),
            Some(&body),
        )
        .await?
        .json()
    }

    /// Merges an accepted own commit and reports the membership change it made.
    pub(crate) fn accepted(
        &self,
        conv: Uuid,
        gid: &GroupId,
        before: &[Member],
    ) -> Result<Vec<Event>> {
        self.accepted_in(&mut *self.mls()?, conv, gid, before)
    }

    /// [`Self::accepted`] inside a device-store step.
    fn accepted_in(
        &self,
        mls: &mut MlsClient,
        conv: Uuid,
        gid: &GroupId,
        before: &[Member],
    ) -> Result<Vec<Event>> {
        let pol = self.policy_in(mls, conv, gid)?;
        let mls_events = mls.commit_accepted(gid, &pol)?;
        let after: Vec<Member> = mls
            .members(gid)?
            .iter()
            .map(|m| Member::from_mls(m, &self.device_key))
            .collect();
        let mut events = Vec::new();
        for m in after.iter().filter(|m| !before.contains(m)) {
            if !m.is_me {
                events.push(Event::MemberAdded {
                    conversation: conv,
                    member: m.clone(),
                    added_by: None,
                });
            }
        }
        for m in before.iter().filter(|m| !after.contains(m)) {
            events.push(Event::MemberRemoved {
                conversation: conv,
                member: m.clone(),
            });
        }
        events.extend(
            mls_events
                .into_iter()
                .filter_map(|e| map_mls_event(e, conv, 0, &self.device_key)),
        );
        Ok(events)
    }

    pub(crate) fn members_of(&self, gid: &GroupId) -> Result<Vec<Member>> {
        self.members_in(&*self.mls()?, gid)
    }

    fn members_in(&self, mls: &MlsClient, gid: &GroupId) -> Result<Vec<Member>> {
        // A pseudonymous leaf names no device: this device's own is found by its index.
        let own = mls.own_leaf_index(gid).ok();
        Ok(mls
            .members(gid)?
            .iter()
            .map(|m| {
                let mut member = Member::from_mls(m, &self.device_key);
                member.is_me |= Some(m.leaf_index) == own;
                member
            })
            .collect())
    }

    /// Adds every device of `user_id` (which the conversation's policy must allow): claims
    /// their key packages and commits. If another member's commit wins the epoch (409
    /// `stale_epoch`), the commit is discarded, the log is read to catch up and the add is
    /// retried, up to [`SdkOptions::max_commit_attempts`] times.
    pub async fn add_user(&self, conversation: Uuid, user_id: Uuid) -> Result<Vec<Event>> {
        let lock = self.conv_lock(conversation);
        let _g = lock.lock().await;
        let st = self.joined_state(conversation)?;
        let gid = self.group_of(&st)?;
        self.resolve_pending(conversation, &gid).await?;
        // Claimed once: the claimed packages stay reserved for this conversation.
        let kps = decode_claimed(&self.claim(conversation, user_id).await?)?;
        self.commit_with_retry(conversation, &gid, |mls, gid| mls.add_members(gid, &kps))
            .await?;
        self.drain_locked(conversation)
    }

    /// Refreshes this device's keys in the group (post-compromise security).
    pub async fn self_update(&self, conversation: Uuid) -> Result<Vec<Event>> {
        let lock = self.conv_lock(conversation);
        let _g = lock.lock().await;
        let st = self.joined_state(conversation)?;
        let gid = self.group_of(&st)?;
        self.resolve_pending(conversation, &gid).await?;
        self.commit_with_retry(conversation, &gid, |mls, gid| mls.self_update(gid))
            .await?;
        self.drain_locked(conversation)
    }

    /// Stages a commit with `make`, submits it; on `stale_epoch` discards it, catches up on
    /// the log and tries again. A transport failure leaves the commit pending: whether the
    /// server took it is learnt from the log on the next sync.
    async fn commit_with_retry(
        &self,
        conv: Uuid,
        gid: &GroupId,
        make: impl Fn(&mut MlsClient, &GroupId) -> peerbridge_mls::Result<PendingCommit>,
    ) -> Result<()> {
        let attempts = self.options.max_commit_attempts.max(1);
        for attempt in 1..=attempts {
            let before = self.members_of(gid)?;
            let pc = {
                let mut mls = self.mls()?;
                make(&mut mls, gid)?
            };
            match self.submit(conv, &pc).await {
                Ok(_) => {
                    let events = self.accepted(conv, gid, &before)?;
                    let mut st = self.joined_state(conv)?;
                    self.save_conv(conv, &mut st, events)?;
                    return Ok(());
                }
                Err(SdkError::StaleEpoch(detail)) => {
                    tracing::debug!(attempt, "commit lost its epoch; catching up");
                    discard_pending(&mut *self.mls()?, gid)?;
                    if attempt == attempts {
                        return Err(SdkError::StaleEpoch(detail));
                    }
                    self.sync_locked(conv).await?;
                }
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => {
                    discard_pending(&mut *self.mls()?, gid)?;
                    return Err(e);
                }
            }
        }
        Err(SdkError::StaleEpoch("no attempt left".into()))
    }

    /// A commit left pending by an earlier failure: learn the answer from the log, else send
    /// it again.
    async fn resolve_pending(&self, conv: Uuid, gid: &GroupId) -> Result<()> {
        if self.mls()?.pending_commit(gid)?.is_none() {
            return Ok(());
        }
        self.sync_locked(conv).await?;
        let Some(pc) = self.mls()?.pending_commit(gid)? else {
            return Ok(());
        };
        let before = self.members_of(gid)?;
        match self.submit(conv, &pc).await {
            Ok(_) => {
                let events = self.accepted(conv, gid, &before)?;
                let mut st = self.joined_state(conv)?;
                self.save_conv(conv, &mut st, events)
            }
            Err(e) if e.is_transient() => Err(e),
            // The log did not show it and the server refuses it now: it was not accepted.
            Err(_) => discard_pending(&mut *self.mls()?, gid),
        }
    }

    /// Joins every conversation this device has a welcome for, and dismisses welcomes it
    /// cannot use. Returns the conversations' new events.
    pub async fn accept_welcomes(&self) -> Result<Vec<Event>> {
        let welcomes: Vec<Welcome> = self.get("/v1/welcomes").await?;
        let mut out = Vec::new();
        for w in &welcomes {
            let lock = self.conv_lock(w.conversation_id);
            let _g = lock.lock().await;
            self.join_one(w).await?;
            out.extend(self.drain_locked(w.conversation_id)?);
        }
        if !welcomes.is_empty()
            && let Err(e) = self.ensure_key_packages().await
        {
            tracing::warn!(code = e.code(), "replenishing key packages failed");
        }
        Ok(out)
    }

    async fn join_one(&self, w: &Welcome) -> Result<()> {
        let conv = w.conversation_id;
        let existing = self.conv_state(conv)?;
        // Already joined from this welcome and read on from it (a second delivery, or a
        // concurrent accept): joining again would reset the group and replay the log.
        let duplicate = match existing.as_ref().filter(|s| s.cursor >= w.start_seq) {
            Some(st) if st.group_id.is_some() => {
                let gid = self.group_of(st)?;
                self.mls()?.own_leaf_index(&gid).is_ok()
            }
            _ => false,
        };
        let mut events = Vec::new();
        let joined = if duplicate {
            Err(peerbridge_mls::Error::NoMatchingKeyPackage)
        } else {
            match unb64("welcome", &w.welcome) {
                Ok(bytes) => {
                    let pol = self.welcome_policy(conv).await;
                    // The group state and the SDK's record of it are one write.
                    self.mls()?.atomically(|m| -> Result<_> {
                        let j = match m.join_from_welcome(&bytes, &pol) {
                            Ok(j) => j,
                            Err(e) => return Ok(Err(e)),
                        };
                        // The welcome policy may have recorded the introduction just now.
                        let mut st =
                            state::get::<ConvState>(m, &conv_key(conv))?.unwrap_or_default();
                        st.group_id = Some(b64(j.group_id.as_bytes()));
                        st.cursor = w.start_seq;
                        st.acked = w.start_seq;
                        st.needs_rejoin = false;
                        let joined = Event::Joined {
                            conversation: conv,
                            epoch: j.epoch.0,
                            members: j
                                .members
                                .iter()
                                .map(|m| Member::from_mls(m, &self.device_key))
                                .collect(),
                        };
                        save_conv_in(m, conv, &mut st, vec![joined], Vec::new())?;
                        add_known_in(m, conv)?;
                        Ok(Ok(()))
                    })?
                }
                Err(e) => Err(peerbridge_mls::Error::MalformedMessage(e.to_string())),
            }
        };
        match joined {
            Ok(()) => {}
            Err(
                e @ (peerbridge_mls::Error::StoreIo(_)
                | peerbridge_mls::Error::StoreCorrupt(_)
                | peerbridge_mls::Error::WrongStoreKey),
            ) => {
                return Err(e.into());
            }
            // Processed before (a crash before the ack, or a second delivery): just ack.
            Err(peerbridge_mls::Error::NoMatchingKeyPackage)
                if existing.as_ref().is_some_and(|s| s.group_id.is_some()) => {}
            Err(e) => {
                tracing::warn!(code = e.code(), "a welcome could not be used");
                let mut st = existing.unwrap_or_default();
                events.push(Event::JoinFailed {
                    conversation: conv,
                    reason: e.code().to_owned(),
                });
                self.save_conv(conv, &mut st, events)?;
                self.add_known(conv)?;
            }
        }
        match self
            .authed::<()>(Method::POST, &format!("/v1/welcomes/{}/ack", w.id), None)
            .await
        {
            Ok(_) | Err(SdkError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Rejoins a conversation this device fell out of sync with, by an external commit from
    /// the server's GroupInfo. Entries before the rejoin that could not be read stay unread.
    pub async fn rejoin(&self, conversation: Uuid) -> Result<Vec<Event>> {
        let lock = self.conv_lock(conversation);
        let _g = lock.lock().await;
        self.rejoin_locked(conversation).await?;
        self.drain_locked(conversation)
    }

    pub(crate) async fn rejoin_locked(&self, conv: Uuid) -> Result<()> {
        let attempts = self.options.max_commit_attempts.max(1);
        for attempt in 1..=attempts {
            let gi: GroupInfoOut = self
                .get(&format!("/v1/conversations/{conv}/group-info"))
                .await?;
            let bytes = unb64("group_info", &gi.group_info)?;
            let st0 = self.conv_state(conv)?.unwrap_or_default();
            let kind = if st0.pseudonymous {
                peerbridge_mls::CredentialKind::Pseudonymous
            } else {
                peerbridge_mls::CredentialKind::Device
            };
            let pol = ConvPolicy {
                intro: st0.introduction.map(|_| IntroPolicy {
                    admitted: self.admitted_hp_keys(conv),
                    pseudonymous_members: 0,
                }),
            };
            let pc = {
                let mut mls = self.mls()?;
                mls.rejoin_as(&bytes, &pol, kind)?
            };
            let gid = pc.group_id.clone();
            match self.submit(conv, &pc).await {
                Ok(accepted) => {
                    let mls_events = self.mls()?.commit_accepted(&gid, &pol)?;
                    let mut st = self.conv_state(conv)?.unwrap_or_default();
                    st.group_id = Some(b64(gid.as_bytes()));
                    st.cursor = st.cursor.max(accepted.seq);
                    st.needs_rejoin = false;
                    let epoch = self.mls()?.epoch(&gid)?.0;
                    let mut events = vec![Event::Joined {
                        conversation: conv,
                        epoch,
                        members: self.members_of(&gid)?,
                    }];
                    events.extend(
                        mls_events
                            .into_iter()
                            .filter_map(|e| map_mls_event(e, conv, accepted.seq, &self.device_key)),
                    );
                    self.save_conv(conv, &mut st, events)?;
                    self.add_known(conv)?;
                    return Ok(());
                }
                Err(SdkError::StaleEpoch(d)) => {
                    discard_pending(&mut *self.mls()?, &gid)?;
                    if attempt == attempts {
                        return Err(SdkError::StaleEpoch(d));
                    }
                    self.backoff(attempt).await;
                }
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => {
                    discard_pending(&mut *self.mls()?, &gid)?;
                    return Err(e);
                }
            }
        }
        Err(SdkError::StaleEpoch("no attempt left".into()))
    }

    /// The current members of a conversation's group.
    pub fn members(&self, conversation: Uuid) -> Result<Vec<Member>> {
        let st = self.joined_state(conversation)?;
        self.members_of(&self.group_of(&st)?)
    }

    /// A 20-digit code two members compare out of band; equal codes mean they share the same
    /// group state (it changes with every epoch).
    pub fn safety_code(&self, conversation: Uuid) -> Result<String> {
        let st = self.joined_state(conversation)?;
        let gid = self.group_of(&st)?;
        Ok(self.mls()?.safety_code(&gid)?)
    }

    /// The conversation as this device saw it, newest page first: received and sent texts,
    /// notices and identity cards, oldest first within the page. Kept sealed on the device
    /// (the server deletes what every device acknowledged).
    pub fn history(
        &self,
        conversation: Uuid,
        before: Option<u64>,
        limit: u32,
    ) -> Result<HistoryPage> {
        let Some(st) = self.conv_state(conversation)? else {
            return Err(SdkError::NotFound(
                "no such conversation on this device".into(),
            ));
        };
        let end = before.unwrap_or(st.history_len).min(st.history_len);
        let start = end.saturating_sub(u64::from(limit.clamp(1, 500)));
        let mut events = Vec::new();
        for n in start..end {
            match state::get::<Event>(&*self.mls()?, &hist_key(conversation, n)) {
                Ok(Some(e)) => events.push(e),
                Ok(None) | Err(StateError::Corrupt(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(HistoryPage {
            events,
            before: (start > 0).then_some(start),
        })
    }

    /// Tells the other members this device has read these messages (their ids as in
    /// [`Event::Text`]).
    pub async fn send_read_receipt(&self, conversation: Uuid, ids: Vec<Uuid>) -> Result<()> {
        if ids.is_empty() || ids.len() > 500 {
            return Err(SdkError::InvalidInput(
                "a receipt names 1 to 500 messages".into(),
            ));
        }
        let envelope = Envelope::Receipt {
            ids: ids
                .into_iter()
                .map(|id| MessageId::from_bytes(id.into_bytes()))
                .collect(),
        };
        self.send_envelope(conversation, &envelope).await?;
        Ok(())
    }

    // ------------------------------------------------------------------ sending

    /// Encrypts and sends a text message; returns its id once the server has stored it.
    /// Transport failures are retried with the same client id (stored once however often it
    /// arrives). If every attempt fails the error is `network` and the message stays queued:
    /// a later sync sends it and reports [`Event::Sent`].
    pub async fn send_text(&self, conversation: Uuid, text: &str) -> Result<Uuid> {
        let client_id = Uuid::new_v4();
        let envelope = Envelope::Text {
            id: MessageId::from_bytes(client_id.into_bytes()),
            body: text.to_owned(),
            sent_at: u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0),
        };
        self.send_with_id(conversation, client_id, &envelope).await
    }

    /// Sends any envelope (identity cards, notices) like a text message.
    pub(crate) async fn send_envelope(
        &self,
        conversation: Uuid,
        envelope: &Envelope,
    ) -> Result<Uuid> {
        self.send_with_id(conversation, Uuid::new_v4(), envelope)
            .await
    }

    async fn send_with_id(
        &self,
        conversation: Uuid,
        client_id: Uuid,
        envelope: &Envelope,
    ) -> Result<Uuid> {
        let lock = self.conv_lock(conversation);
        let _g = lock.lock().await;
        let mut st = self.joined_state(conversation)?;
        let gid = self.group_of(&st)?;
        // The sender ratchet step and the queued message are one write: a crash leaves
        // either neither or a message that will be sent.
        let out = self.mls()?.atomically(|m| -> Result<Outgoing> {
            let ct = m.encrypt(&gid, envelope)?;
            let record = match envelope {
                Envelope::Text { body, sent_at, .. } => self
                    .members_in(m, &gid)?
                    .into_iter()
                    .find(|m| m.is_me)
                    .map(|sender| Event::Text {
                        conversation,
                        seq: 0,
                        id: client_id,
                        sender,
                        body: body.clone(),
                        sent_at: *sent_at,
                    }),
                _ => None,
            };
            let out = Outgoing {
                client_id,
                ciphertext: b64(&ct),
                record,
            };
            // Queued and marked as ours first: a crash after this still sends it, and the
            // echo of our own message in the log is skipped (this device cannot decrypt it).
            st.outbox.push(out.clone());
            save_conv_in(
                m,
                conversation,
                &mut st,
                Vec::new(),
                vec![(own_key(conversation, client_id), Some(b"1".to_vec()))],
            )?;
            Ok(out)
        })?;
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            match self.post_message(conversation, &out).await {
                Err(e) if e.is_transient() && attempt < self.options.max_send_attempts => {
                    self.backoff(attempt).await;
                }
                other => break other,
            }
        };
        match result {
            Ok(accepted) => {
                let mut st = self.joined_state(conversation)?;
                st.outbox.retain(|o| o.client_id != client_id);
                let rows = st.record_own(conversation, out.record, accepted.seq)?;
                self.save_conv_with(conversation, &mut st, Vec::new(), rows)?;
                Ok(client_id)
            }
            Err(e) if e.is_transient() => Err(e),
            Err(e) => {
                let mut st = self.joined_state(conversation)?;
                st.outbox.retain(|o| o.client_id != client_id);
                self.save_conv_with(
                    conversation,
                    &mut st,
                    Vec::new(),
                    vec![(own_key(conversation, client_id), None)],
                )?;
                Err(e)
            }
        }
    }

    async fn post_message(&self, conv: Uuid, out: &Outgoing) -> Result<MessageAccepted> {
        self.authed(
            Method::POST,
            &format!("/v1/conversations/{conv}/messages"),
            Some(&MessageSend {
                client_id: out.client_id,
                ciphertext: out.ciphertext.clone(),
            }),
        )
        .await?
        .json()
    }

    /// Sends what the outbox still holds (one attempt each; stops at a transport failure).
    async fn flush_outbox(&self, conv: Uuid) -> Result<()> {
        let Some(st) = self.conv_state(conv)? else {
            return Ok(());
        };
        for out in st.outbox.clone() {
            let result = self.post_message(conv, &out).await;
            let event = match result {
                Ok(a) => Event::Sent {
                    conversation: conv,
                    id: out.client_id,
                    seq: a.seq,
                },
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => Event::SendFailed {
                    conversation: conv,
                    id: out.client_id,
                    reason: e.code().to_owned(),
                },
            };
            let mut st = self.joined_state(conv)?;
            st.outbox.retain(|o| o.client_id != out.client_id);
            let rows = match &event {
                Event::Sent { seq, .. } => st.record_own(conv, out.record, *seq)?,
                _ => Vec::new(),
            };
            self.save_conv_with(conv, &mut st, vec![event], rows)?;
        }
        Ok(())
    }

    // ------------------------------------------------------------------ receiving

    /// Reads the conversation's log from the stored cursor, processes it, acknowledges it and
    /// returns the new events (deduplicated by client id and message id).
    pub async fn sync(&self, conversation: Uuid) -> Result<Vec<Event>> {
        let lock = self.conv_lock(conversation);
        let _g = lock.lock().await;
        self.sync_locked(conversation).await?;
        self.drain_locked(conversation)
    }

    /// Accepts waiting welcomes, then syncs every conversation this device has joined.
    pub async fn sync_all(&self) -> Result<Vec<Event>> {
        let mut out = self.accept_welcomes().await?;
        for id in self.known_conversations()? {
            let lock = self.conv_lock(id);
            let _g = lock.lock().await;
            if self.conv_state(id)?.is_some_and(|s| s.group_id.is_some()) {
                match self.sync_locked(id).await {
                    Ok(()) => {}
                    // Removed from the conversation (or it is gone): skip it, go on.
                    Err(SdkError::Forbidden(_) | SdkError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            out.extend(self.drain_locked(id)?);
        }
        Ok(out)
    }

    /// The sync itself; the caller holds the conversation lock. Events go to the inbox.
    pub(crate) async fn sync_locked(&self, conv: Uuid) -> Result<()> {
        match self.flush_outbox(conv).await {
            Ok(()) => {}
            Err(e) if e.is_transient() => {}
            Err(e) => return Err(e),
        }
        let mut st = self.joined_state(conv)?;
        let gid = self.group_of(&st)?;
        let mut consents_checked = false;
        loop {
            let page_start = st.cursor;
            let page: LogPage = self
                .get(&format!(
                    "/v1/conversations/{conv}/messages?after={}&limit={PAGE}",
                    st.cursor
                ))
                .await?;
            // Only a commit can add a member: before processing one, a party re-verifies
            // the consents so an admitted HP's join is accepted (not on every message).
            let commit_ahead = page
                .items
                .iter()
                .any(|e| e.kind == EntryKind::Commit && e.seq > st.cursor);
            if !consents_checked
                && commit_ahead
                && st.pseudonymous
                && let Some(intro) = st.introduction
            {
                consents_checked = true;
                if let Err(e) = self.verify_consents(intro, conv).await {
                    tracing::debug!(
                        code = e.code(),
                        "consents could not be checked before a commit"
                    );
                }
            }
            for entry in &page.items {
                if entry.seq <= st.cursor {
                    continue;
                }
                let mut mls = self.mls()?;
                st = mls.atomically(|m| self.receive_entry(m, conv, &gid, entry, st.clone()))?;
            }
            if page.cursor > st.cursor || page.purged.is_some() {
                st.cursor = st.cursor.max(page.cursor);
                let mut events = Vec::new();
                if let Some(p) = page.purged.filter(|p| p.to_seq > page_start) {
                    events.push(Event::MessagesPurged {
                        conversation: conv,
                        from_seq: p.from_seq.max(page_start + 1),
                        to_seq: p.to_seq,
                        count: p.count,
                        commits: p.commits,
                    });
                    if p.commits > 0 {
                        // The group state missed an epoch change: only a rejoin recovers.
                        st.needs_rejoin = true;
                    }
                }
                self.save_conv(conv, &mut st, events)?;
            }
            // Stop at the end of the log, or if the server's cursor did not move (never
            // loop on a page that makes no progress).
            if !page.has_more || st.cursor <= page_start {
                break;
            }
        }
        if st.needs_rejoin {
            match self.rejoin_locked(conv).await {
                Ok(()) => st = self.joined_state(conv)?,
                Err(e) => tracing::warn!(code = e.code(), "rejoin failed"),
            }
        }
        if self.mls()?.pending_commit(&gid)?.is_some() {
            // Not in the log: still undecided. Leave it to `resolve_pending` of the next
            // commit so a read never sends a commit by itself.
            tracing::debug!("a commit is still pending after the sync");
        }
        if st.cursor > st.acked {
            match self
                .authed(
                    Method::POST,
                    &format!("/v1/conversations/{conv}/ack"),
                    Some(&Ack { seq: st.cursor }),
                )
                .await
            {
                Ok(_) => {
                    st.acked = st.cursor;
                    self.save_conv(conv, &mut st, Vec::new())?;
                }
                // The next sync acknowledges again.
                Err(e) if e.is_transient() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// One received log entry as one atomic step of the device store (run inside
    /// [`MlsClient::atomically`]): the MLS ratchet step, the receive hooks' rows, the
    /// dedup ids, inbox and history events and the moved cursor are written together or
    /// not at all, so a crash can never consume a message key without keeping the message.
    fn receive_entry(
        &self,
        mls: &mut MlsClient,
        conv: Uuid,
        gid: &GroupId,
        entry: &peerbridge_openapi::delivery::LogEntry,
        mut st: ConvState,
    ) -> Result<ConvState> {
        let mut events = Vec::new();
        let mut extra = Vec::new();
        let own = match entry.client_id {
            Some(id) => {
                let key = own_key(conv, id);
                let own = state::get::<serde_json::Value>(mls, &key)?.is_some();
                if own {
                    extra.push((key, None));
                }
                own
            }
            None => false,
        };
        let replay = entry.client_id.is_some_and(|id| st.recent.contains(&id));
        if !own && !replay {
            self.process_entry(mls, conv, gid, entry, &mut st, &mut events)?;
            if self.options.crash_after_mls_step {
                // Test hook: die between the ratchet step and the SDK's rows, as a killed
                // process would. Nothing of this step may reach the store.
                panic!("crash_after_mls_step (test hook)");
            }
            for e in &events {
                self.keep_card(mls, &st, e)?;
            }
        }
        st.cursor = entry.seq;
        if let Some(id) = entry.client_id {
            st.remember(id);
        }
        save_conv_in(mls, conv, &mut st, events, extra)?;
        Ok(st)
    }

    /// Processes one log entry with the client core; unreadable entries become events, a
    /// storage failure stops the sync before the cursor moves.
    fn process_entry(
        &self,
        mls: &mut MlsClient,
        conv: Uuid,
        gid: &GroupId,
        entry: &peerbridge_openapi::delivery::LogEntry,
        st: &mut ConvState,
        events: &mut Vec<Event>,
    ) -> Result<()> {
        let bytes = match unb64("payload", &entry.payload) {
            Ok(b) => b,
            Err(e) => {
                events.push(Event::Undecryptable {
                    conversation: conv,
                    seq: entry.seq,
                    reason: e.to_string(),
                });
                return Ok(());
            }
        };
        let pol = self.policy_in(mls, conv, gid)?;
        let processed = mls.process(&bytes, &pol);
        let mls_events = match processed {
            Ok(evs) => evs,
            Err(
                e @ (peerbridge_mls::Error::StoreIo(_)
                | peerbridge_mls::Error::StoreCorrupt(_)
                | peerbridge_mls::Error::WrongStoreKey),
            ) => return Err(e.into()),
            Err(e) => {
                if entry.kind == EntryKind::Commit || matches!(e, peerbridge_mls::Error::BufferFull)
                {
                    // This device can no longer follow the group.
                    st.needs_rejoin = true;
                }
                events.push(Event::Undecryptable {
                    conversation: conv,
                    seq: entry.seq,
                    reason: e.code().to_owned(),
                });
                return Ok(());
            }
        };
        for e in mls_events {
            match e {
                peerbridge_mls::Event::OwnCommitEchoed { .. } => {
                    // Our in-doubt commit is in the log, so the server accepted it.
                    let before = self.members_in(mls, gid)?;
                    events.extend(self.accepted_in(mls, conv, gid, &before)?);
                }
                peerbridge_mls::Event::Message {
                    envelope: Envelope::Text { id, .. },
                    ..
                } if st.recent.contains(&Uuid::from_bytes(*id.as_bytes())) => {}
                other => {
                    if let peerbridge_mls::Event::Message {
                        envelope: Envelope::Text { id, .. },
                        ..
                    } = &other
                    {
                        st.remember(Uuid::from_bytes(*id.as_bytes()));
                    }
                    if let peerbridge_mls::Event::Message {
                        franking: Some(f), ..
                    } = &other
                    {
                        self.keep_franked(mls, conv, entry, f)?;
                    }
                    if let Some(ev) = map_mls_event(other, conv, entry.seq, &self.device_key) {
                        let suggestion = match &ev {
                            Event::Text { body, .. } => peerbridge_mls::detector::assess(body),
                            _ => None,
                        };
                        events.push(ev);
                        if let Some(s) = suggestion {
                            use peerbridge_mls::detector::{RiskCategory, SeverityHint};
                            events.push(Event::RiskSuggested {
                                conversation: conv,
                                seq: entry.seq,
                                category: match s.category {
                                    RiskCategory::SuicideRisk => "suicide_risk",
                                    RiskCategory::SelfHarm => "self_harm",
                                }
                                .into(),
                                severity: match s.severity_hint {
                                    SeverityHint::Imminent => "imminent",
                                    SeverityHint::Urgent => "urgent",
                                    SeverityHint::Concerning => "concerning",
                                }
                                .into(),
                            });
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Adds a conversation to the known list (in the current transaction or step).
fn add_known_in(mls: &mut MlsClient, id: Uuid) -> Result<()> {
    let mut ids: Vec<Uuid> = state::get(mls, CONVS_KEY)?.unwrap_or_default();
    if !ids.contains(&id) {
        ids.push(id);
        state::put(mls, CONVS_KEY, &ids)?;
    }
    Ok(())
}

/// Stages a conversation's state with new inbox (and history) events and more rows, in the
/// device store's current transaction or atomic step.
pub(crate) fn save_conv_in(
    mls: &mut MlsClient,
    id: Uuid,
    st: &mut ConvState,
    events: Vec<Event>,
    mut batch: Vec<(String, Option<Vec<u8>>)>,
) -> Result<()> {
    for e in events {
        let row = state::encode(&e)?;
        if shown(&e) {
            batch.push((hist_key(id, st.history_len), Some(row.clone())));
            st.history_len += 1;
        }
        batch.push((inbox_key(id, st.inbox_next), Some(row)));
        st.inbox_next += 1;
    }
    batch.push((conv_key(id), Some(state::encode(st)?)));
    Ok(state::write(mls, batch)?)
}

/// The access token's lifetime from its `iat` and `exp` claims (read, not verified: only
/// the server checks tokens). Falls back to five minutes (a 401 still triggers a refresh).
fn token_lifetime(jwt: &str) -> chrono::Duration {
    #[derive(Deserialize)]
    struct Claims {
        iat: i64,
        exp: i64,
    }
    use base64::Engine;
    jwt.split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p.trim_end_matches('='))
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<Claims>(&b).ok())
        .map(|c| chrono::Duration::seconds((c.exp - c.iat).clamp(0, 24 * 3600)))
        .unwrap_or_else(|| chrono::Duration::minutes(5))
}

/// Drops a pending commit; a commit the client core already discarded is fine.
fn discard_pending(mls: &mut MlsClient, gid: &GroupId) -> Result<()> {
    match mls.commit_rejected(gid) {
        Ok(()) | Err(peerbridge_mls::Error::NoPendingCommit) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn decode_claimed(claimed: &[ClaimedKeyPackage]) -> Result<Vec<Vec<u8>>> {
    claimed
        .iter()
        .map(|c| unb64("key_package", &c.key_package))
        .collect()
}

#[cfg(test)]
mod tests {
    use peerbridge_mls::{AddCandidate, AddKind, AddPolicy, MemberInfo};

    use super::{ConvPolicy, IntroPolicy};

    fn member(pseudonymous: bool, identity: &[u8]) -> MemberInfo {
        MemberInfo {
            leaf_index: 3,
            identity: identity.to_vec(),
            signature_key: vec![9; 32],
            verified: true,
            pseudonymous,
        }
    }

    fn allows(p: &ConvPolicy, m: &MemberInfo, kind: AddKind) -> bool {
        p.allows(&AddCandidate {
            group_id: b"g",
            member: m,
            kind,
            added_by: None,
        })
    }

    #[test]
    fn introduction_groups_admit_the_parties_and_only_a_consented_hp() {
        let hp_key = vec![7u8; 32];
        let open = ConvPolicy {
            intro: Some(IntroPolicy {
                admitted: Vec::new(),
                pseudonymous_members: 1,
            }),
        };
        // The counterpart at creation, a party's rejoin: yes.
        assert!(allows(
            &open,
            &member(true, &[1; 16]),
            AddKind::AddedByCommit
        ));
        assert!(allows(
            &open,
            &member(true, &[1; 16]),
            AddKind::ExternalJoin
        ));
        // A clinician's device without both consents: refused, whoever adds it.
        for kind in [
            AddKind::AddedByCommit,
            AddKind::ExternalJoin,
            AddKind::ExistingMember,
        ] {
            assert!(!allows(&open, &member(false, &hp_key), kind));
        }
        let full = ConvPolicy {
            intro: Some(IntroPolicy {
                admitted: vec![hp_key.clone()],
                pseudonymous_members: 2,
            }),
        };
        // A third pseudonymous party is refused; the admitted HP device joins; another
        // device does not.
        assert!(!allows(
            &full,
            &member(true, &[2; 16]),
            AddKind::AddedByCommit
        ));
        assert!(allows(
            &full,
            &member(false, &hp_key),
            AddKind::ExternalJoin
        ));
        assert!(!allows(
            &full,
            &member(false, &[8; 32]),
            AddKind::ExternalJoin
        ));
        // Outside introductions pseudonyms are refused; unverified members always.
        let plain = ConvPolicy::default();
        assert!(!allows(
            &plain,
            &member(true, &[1; 16]),
            AddKind::AddedByCommit
        ));
        assert!(allows(
            &plain,
            &member(false, &hp_key),
            AddKind::AddedByCommit
        ));
        let mut unverified = member(false, &hp_key);
        unverified.verified = false;
        assert!(!allows(&full, &unverified, AddKind::ExternalJoin));
    }
}
