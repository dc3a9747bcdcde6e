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
#[cfg(not(target_arch = "wasm32"))]
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
    LogEntry, LogPage, MessageAccepted, MessageSend, Welcome,
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

mod conversations;
mod key_packages;
mod receiving;
mod sending;
mod sessions;

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
    /// The browser's write-ahead hook: awaited before every request (see
    /// `platform::BeforeSend`); the web layer sets it to its IndexedDB flush.
    #[cfg(target_arch = "wasm32")]
    pub before_send: Option<crate::platform::BeforeSend>,
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
            #[cfg(target_arch = "wasm32")]
            before_send: None,
        }
    }
}

/// Who this device is signed in as (no tokens).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema, uniffi::Record)]
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema, uniffi::Record)]
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

/// What a conversation's history keeps: what the app shows as lines, and the counterpart's
/// read receipts (shown as "read" marks, so they must survive a restart).
fn shown(e: &Event) -> bool {
    matches!(
        e,
        Event::Text { .. }
            | Event::Receipt { .. }
            | Event::Notice { .. }
            | Event::IdentityCard { .. }
            | Event::MessagesPurged { .. }
    )
}

/// A page of a conversation's history, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema, uniffi::Record)]
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
    /// Serialises changes to the queued flags (raising and delivering may overlap).
    pub(crate) flag_outbox_lock: tokio::sync::Mutex<()>,
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

/// The storage key: exactly 32 bytes (from the platform keystore, or unwrapped in the
/// browser).
fn storage_key_of(bytes: &[u8]) -> Result<StoreKey> {
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|_| SdkError::InvalidInput("the storage key is exactly 32 bytes".into()))?;
    Ok(StoreKey::from_bytes(key))
}

impl PeerbridgeClient {
    /// Opens the device's storage (creating it and a new device identity on first use).
    /// `storage_key` is exactly 32 bytes from the platform keystore; a different key than the
    /// one the directory was created with fails with [`SdkError::WrongStorageKey`] and
    /// changes nothing. Use one client per directory at a time.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open(
        server_url: &str,
        storage_dir: impl Into<PathBuf>,
        storage_key: &[u8],
    ) -> Result<PeerbridgeClient> {
        Self::open_with_options(server_url, storage_dir, storage_key, SdkOptions::default())
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn open_with_options(
        server_url: &str,
        storage_dir: impl Into<PathBuf>,
        storage_key: &[u8],
        options: SdkOptions,
    ) -> Result<PeerbridgeClient> {
        let key = storage_key_of(storage_key)?;
        let dir = storage_dir.into();
        std::fs::create_dir_all(&dir)
            .map_err(|e| SdkError::Storage(format!("cannot create the storage directory: {e}")))?;
        let mls = MlsClient::open(dir.join("mls.db"), &key, ClientOptions::default())?;
        Self::with_store(server_url, mls, options)
    }

    /// Opens the device's storage over a row backend (the browser's IndexedDB image), with
    /// the same key check, identity and state rules as [`Self::open_with_options`].
    pub fn open_with_backend(
        server_url: &str,
        backend: Box<dyn peerbridge_mls::RowBackend>,
        storage_key: &[u8],
        options: SdkOptions,
    ) -> Result<PeerbridgeClient> {
        let key = storage_key_of(storage_key)?;
        let mls = MlsClient::open_backend(backend, &key, None, ClientOptions::default())?;
        Self::with_store(server_url, mls, options)
    }

    fn with_store(
        server_url: &str,
        mls: MlsClient,
        options: SdkOptions,
    ) -> Result<PeerbridgeClient> {
        #[cfg_attr(not(target_arch = "wasm32"), allow(unused_mut))]
        let mut api = Api::new(
            server_url,
            options.request_timeout,
            options.wire_tap.clone(),
        )?;
        #[cfg(target_arch = "wasm32")]
        {
            api.before_send = options.before_send.clone();
        }
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
            flag_outbox_lock: tokio::sync::Mutex::new(()),
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
        crate::platform::sleep(self.options.retry_base_delay.saturating_mul(factor)).await;
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
