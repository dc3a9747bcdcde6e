//! The per-device MLS client: key packages, groups, commits that wait for the server's verdict,
//! welcomes, external-commit rejoin, application messages, a future-epoch buffer and safety
//! codes. Bytes in, bytes out; its only IO is the encrypted store file.
//!
//! Invariants (DESIGN.md §5, "client core rules"):
//! - every public operation is one store transaction: it commits everything or nothing;
//! - an own commit is merged only in [`Client::commit_accepted`]; [`Client::commit_rejected`]
//!   discards it; the pending commit is persisted and cleared atomically with that answer;
//! - a key package's private keys are deleted in the same transaction that creates the group
//!   from its Welcome (last-resort packages are kept);
//! - every member a commit, external join or Welcome would add is checked with the caller's
//!   [`AddPolicy`]; refused changes are not merged.

use std::collections::BTreeSet;
#[cfg(not(target_arch = "wasm32"))]
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::{
    BasicCredential, Capabilities, Ciphersuite, CredentialWithKey, ExtensionType,
    GroupId as MlsGroupId, KeyPackage, KeyPackageIn, LeafNodeIndex, LeafNodeParameters, Member,
    MlsGroup, MlsGroupJoinConfig, MlsMessageBodyIn, MlsMessageIn, MlsMessageOut,
    PURE_PLAINTEXT_WIRE_FORMAT_POLICY, ProcessedMessageContent, ProtocolMessage, ProtocolVersion,
    SenderRatchetConfiguration, StagedWelcome, WelcomeError,
};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::RustCrypto;
use openmls_traits::OpenMlsProvider;
use openmls_traits::types::SignatureScheme;
use zeroize::Zeroizing;

use crate::codec::{Reader, Writer};
use crate::envelope::{Envelope, EnvelopeError};
use crate::error::{Error, Result};
use crate::identity::DeviceIdentity;
use crate::policy::{AddCandidate, AddKind, AddPolicy, MemberInfo};
use crate::store::{Staged, Store, StoreKey};

mod app_rows;
mod buffer;
mod groups;
mod inspection;
mod joining;
mod key_packages;
mod messages;
mod records;

/// The one ciphersuite Peerbridge uses (DESIGN.md §5).
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;
const SIGNATURE_SCHEME: SignatureScheme = SignatureScheme::ED25519;
/// The exporter label of the safety code.
const SAFETY_CODE_LABEL: &str = "peerbridge safety code v1";
/// Application messages are padded to a multiple of this many bytes (hides exact lengths).
const PADDING_BYTES: usize = 64;
/// How far out of order a member's messages may arrive (resends can reorder a few).
const OUT_OF_ORDER_TOLERANCE: u32 = 32;
const MAXIMUM_FORWARD_DISTANCE: u32 = 1000;
/// Sanity bound when reading this crate's own records back (they are never this large).
const MAX_RECORD_FIELD: usize = 64 * 1024 * 1024;

const IDENTITY_KEY: &[u8] = b"pb/device-identity";
/// Namespace of the app's own rows (apart from openmls' `mls/` and the client's `pb/`).
const APP_NAMESPACE: &[u8] = b"app/";
const GROUPS_KEY: &[u8] = b"pb/groups";

/// The signed formats live in the contract crate (`peerbridge_openapi::signed`), shared with
/// the server; a leaf's basic credential is `device_public_key (32) || Ed25519 signature
/// (64)` over [`leaf_binding_message`], so any member (and the server) can check that a
/// leaf belongs to the device it names.
pub use peerbridge_openapi::signed::{PSEUDONYM_PREFIX, leaf_binding_message};

/// Parses and verifies a leaf credential (see [`leaf_binding_message`]); returns the device
/// public key it proves.
pub fn verify_leaf_credential(credential: &[u8], leaf_signature_key: &[u8]) -> Option<[u8; 32]> {
    if credential.len() != 96 {
        return None;
    }
    let device: [u8; 32] = credential[..32].try_into().ok()?;
    verify_signature(
        &device,
        &leaf_binding_message(leaf_signature_key),
        &credential[32..],
    )
    .then_some(device)
}

/// The pseudonym a credential carries, if it is a well-formed pseudonymous credential.
pub fn pseudonym_of(credential: &[u8]) -> Option<[u8; 16]> {
    credential
        .strip_prefix(PSEUDONYM_PREFIX)
        .and_then(|p| <[u8; 16]>::try_from(p).ok())
}

/// Whether a verified Ed25519 `signature` by `signature_key` covers `message` (false on
/// any malformed input).
pub fn verify_signature(signature_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Ok(key) = <[u8; 32]>::try_from(signature_key) else {
        return false;
    };
    let (Ok(key), Ok(sig)) = (
        ed25519_dalek::VerifyingKey::from_bytes(&key),
        ed25519_dalek::Signature::from_slice(signature),
    ) else {
        return false;
    };
    key.verify_strict(message, &sig).is_ok()
}

/// How a device appears in a group's tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    /// The device's registered key and its signature over the leaf key: members know
    /// which device (and so which person) a leaf is (supervision, clinicians).
    Device,
    /// A fresh random pseudonym per leaf: nothing links the leaf to the device or to its
    /// other conversations. The device's binding signature goes to the server only.
    Pseudonymous,
}

/// A signature by this device's leaf key in a group (e.g. over a consent statement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSignature {
    pub signature_key: Vec<u8>,
    pub signature: Vec<u8>,
}

/// An MLS group id as Peerbridge uses it: 1 to 255 opaque bytes chosen by the creator.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(Vec<u8>);

impl GroupId {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self> {
        let bytes = bytes.into();
        if bytes.is_empty() || bytes.len() > 255 {
            return Err(Error::InvalidGroupId);
        }
        Ok(GroupId(bytes))
    }

    /// 16 random bytes.
    pub fn random() -> Self {
        use rand::RngCore;
        let mut id = vec![0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        GroupId(id)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn to_mls(&self) -> MlsGroupId {
        MlsGroupId::from_slice(&self.0)
    }
}

impl std::fmt::Debug for GroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GroupId(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// An MLS epoch (the group state's version number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Epoch(pub u64);

impl std::fmt::Display for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A key package ready to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedKeyPackage {
    /// TLS-serialized `MLSMessage` carrying the key package.
    pub key_package: Vec<u8>,
    /// The key package's hash reference (RFC 9420 `KeyPackageRef`); Welcomes are routed by it.
    pub hash_ref: Vec<u8>,
    /// Carries the last-resort extension (may be used more than once).
    pub last_resort: bool,
    /// The leaf's public signature key.
    pub signature_key: Vec<u8>,
    /// For pseudonymous packages: the device's signature over
    /// [`leaf_binding_message`]`(signature_key)`, for the server only.
    pub leaf_binding: Option<Vec<u8>>,
}

/// Who produced a pending commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitKind {
    /// A member's commit (create, add, remove, self-update).
    Member,
    /// An external commit rejoining the group from a GroupInfo.
    ExternalRejoin,
}

/// An own commit waiting for the server's answer. Send it; then call
/// [`Client::commit_accepted`] on success or [`Client::commit_rejected`] on a 409.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCommit {
    pub group_id: GroupId,
    /// The epoch the commit is framed in: the server accepts it only while this is the
    /// group's current epoch; accepted, the group moves to `epoch + 1`.
    pub epoch: Epoch,
    /// TLS-serialized `MLSMessage` (a `PublicMessage`, so the server can read the framing).
    pub commit: Vec<u8>,
    /// TLS-serialized Welcome for added devices, if any.
    pub welcome: Option<Vec<u8>>,
    /// TLS-serialized `MLSMessage` GroupInfo of the new epoch, with the ratchet tree and the
    /// external public key, for the server's public group state and for rejoins.
    pub group_info: Vec<u8>,
    pub kind: CommitKind,
    /// In a pseudonymous group: the device's signature over [`leaf_binding_message`] of its
    /// own leaf key, for the server (which must learn whose leaf it is without the group
    /// learning it). `None` in device-credential groups.
    pub leaf_binding: Option<Vec<u8>>,
}

/// The result of joining from a Welcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub group_id: GroupId,
    pub epoch: Epoch,
    pub members: Vec<MemberInfo>,
    /// The member whose commit added this device.
    pub added_by: Option<MemberInfo>,
}

/// A message waiting in the future-epoch buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferedMessage {
    pub epoch: Epoch,
    pub received_at: SystemTime,
}

/// Why a message was deliberately skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoredReason {
    /// This device's own application message, echoed by the server.
    OwnMessage,
    /// A handshake message of an epoch this device has already left (e.g. a losing commit).
    PastEpochHandshake,
    /// A standalone proposal; Peerbridge clients only send commits.
    StandaloneProposal,
}

/// A franked message's opening: the exact envelope bytes, the one-time key and the
/// commitment the server stamped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Franked {
    pub plaintext: Vec<u8>,
    pub key: [u8; 32],
    pub commitment: [u8; 32],
}

/// Application plaintexts carry `"PBK1" || franking key (32) || envelope`; the commitment
/// `HMAC-SHA256(key, envelope)` travels in the authenticated data as `"PBF1" || commitment`.
const FRANKED_PREFIX: &[u8] = b"PBK1";

/// What processing a message (or an own commit's acceptance) did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Decoded application content.
    Message {
        group_id: GroupId,
        epoch: Epoch,
        sender: MemberInfo,
        envelope: Envelope,
        /// The sender's franking opening, when the message was franked: keep it (with the
        /// server's stamp) to quote the message verifiably in an escalation excerpt.
        franking: Option<Franked>,
    },
    /// Application content that decrypted but whose envelope this client cannot read (e.g. a
    /// newer kind). The MLS state advanced; the app can show "update to read this".
    UnreadableMessage {
        group_id: GroupId,
        epoch: Epoch,
        sender: MemberInfo,
        error: EnvelopeError,
    },
    MemberAdded {
        group_id: GroupId,
        member: MemberInfo,
        kind: AddKind,
        added_by: Option<MemberInfo>,
    },
    MemberRemoved {
        group_id: GroupId,
        member: MemberInfo,
    },
    EpochChanged {
        group_id: GroupId,
        epoch: Epoch,
    },
    /// A commit removed this device; the group is now inactive.
    RemovedFromGroup {
        group_id: GroupId,
    },
    /// Another member's commit for the same epoch won; this device's pending commit was
    /// discarded (the server will have answered 409). Retry the operation.
    OwnCommitDiscarded {
        group_id: GroupId,
        epoch: Epoch,
    },
    /// The server fanned out this device's pending commit. It is still merged only by
    /// [`Client::commit_accepted`].
    OwnCommitEchoed {
        group_id: GroupId,
        epoch: Epoch,
    },
    /// A commit that would add members the policy refuses was not merged. The group stays at
    /// its epoch; later messages are buffered until the app resolves it (rejoin or leave).
    CommitRefused {
        group_id: GroupId,
        epoch: Epoch,
        committer: Option<MemberInfo>,
        refused: Vec<MemberInfo>,
    },
    /// A message for a future epoch was kept until its epoch arrives.
    Buffered {
        group_id: GroupId,
        epoch: Epoch,
    },
    /// A buffered message was dropped (expired, or failed when replayed).
    BufferedDropped {
        group_id: GroupId,
        epoch: Epoch,
        reason: String,
    },
    Ignored {
        group_id: GroupId,
        epoch: Epoch,
        reason: IgnoredReason,
    },
}

/// Where the client reads the time (for buffer expiry); tests supply their own.
pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[cfg(not(target_arch = "wasm32"))]
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    /// In the browser `std`'s clock panics; the host's `Date.now()` (through `web-time`)
    /// gives the same value as a `std::time::SystemTime`.
    #[cfg(target_arch = "wasm32")]
    fn now(&self) -> SystemTime {
        let since = web_time::SystemTime::now()
            .duration_since(web_time::UNIX_EPOCH)
            .unwrap_or_default();
        UNIX_EPOCH + since
    }
}

/// Tunables with safe defaults.
#[derive(Clone)]
pub struct ClientOptions {
    /// The most future-epoch messages kept per group; beyond it `process` fails with
    /// [`Error::BufferFull`] and the client should rejoin.
    pub max_buffered_per_group: usize,
    /// How long a future-epoch message is kept before [`Client::expire_buffered`] drops it.
    pub buffer_ttl: Duration,
    /// How many past epochs' secrets are kept to decrypt late application messages.
    pub max_past_epochs: usize,
    pub clock: Arc<dyn Clock>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            max_buffered_per_group: 256,
            buffer_ttl: Duration::from_secs(24 * 3600),
            max_past_epochs: 3,
            clock: Arc::new(SystemClock),
        }
    }
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("max_buffered_per_group", &self.max_buffered_per_group)
            .field("buffer_ttl", &self.buffer_ttl)
            .field("max_past_epochs", &self.max_past_epochs)
            .finish_non_exhaustive()
    }
}

/// openmls' view of the client: RustCrypto for crypto and randomness, the store for state.
struct Provider<'a> {
    crypto: &'a RustCrypto,
    store: &'a Store,
}

impl OpenMlsProvider for Provider<'_> {
    type CryptoProvider = RustCrypto;
    type RandProvider = RustCrypto;
    type StorageProvider = Store;

    fn storage(&self) -> &Store {
        self.store
    }

    fn crypto(&self) -> &RustCrypto {
        self.crypto
    }

    fn rand(&self) -> &RustCrypto {
        self.crypto
    }
}

/// The per-group pending commit record, persisted with the commit.
struct PendingRecord {
    commit: PendingCommit,
    /// For an external rejoin: the new group's state, applied only on acceptance.
    parked: Staged,
}

/// One device's MLS client.
pub struct Client {
    store: Store,
    crypto: RustCrypto,
    identity: DeviceIdentity,
    options: ClientOptions,
    /// Inside [`Client::atomically`]: operations stage their writes and undo only their own
    /// on failure; the outermost scope commits everything at once.
    scope_depth: usize,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("identity", &self.identity)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Opens (or creates) the store at `path`. A new store gets a freshly generated device
    /// identity. A wrong key fails with [`Error::WrongStoreKey`] and changes nothing.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open(path: impl AsRef<Path>, key: &StoreKey, options: ClientOptions) -> Result<Client> {
        Self::open_inner(path.as_ref(), key, None, options)
    }

    /// Like [`Client::open`], but a new store adopts `identity` (e.g. one already enrolled);
    /// an existing store must hold the same identity ([`Error::IdentityMismatch`]).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open_with_identity(
        path: impl AsRef<Path>,
        key: &StoreKey,
        identity: DeviceIdentity,
        options: ClientOptions,
    ) -> Result<Client> {
        Self::open_inner(path.as_ref(), key, Some(identity), options)
    }

    /// Opens (or creates) a store over `backend` (the browser's [`MemoryBackend`] image, for
    /// one), with the same key check and identity rules as [`Client::open_with_identity`]
    /// (`identity` `None`: a new store generates one).
    ///
    /// [`MemoryBackend`]: crate::MemoryBackend
    pub fn open_backend(
        backend: Box<dyn crate::RowBackend>,
        key: &StoreKey,
        identity: Option<DeviceIdentity>,
        options: ClientOptions,
    ) -> Result<Client> {
        let (store, _created) = Store::open_backend(backend, key)?;
        Self::with_store(store, identity, options)
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn open_inner(
        path: &Path,
        key: &StoreKey,
        supplied: Option<DeviceIdentity>,
        options: ClientOptions,
    ) -> Result<Client> {
        let (store, _created) = Store::open(path, key)?;
        Self::with_store(store, supplied, options)
    }

    fn with_store(
        store: Store,
        supplied: Option<DeviceIdentity>,
        options: ClientOptions,
    ) -> Result<Client> {
        let identity = match (store.get(IDENTITY_KEY)?, supplied) {
            (Some(secret), None) => DeviceIdentity::from_secret(&secret)
                .map_err(|_| Error::StoreCorrupt("bad device identity".into()))?,
            (Some(secret), Some(id)) => {
                if secret.as_slice() != id.secret().as_slice() {
                    return Err(Error::IdentityMismatch);
                }
                id
            }
            (None, supplied) => {
                let id = supplied.unwrap_or_else(DeviceIdentity::generate);
                store.put(IDENTITY_KEY, id.secret().to_vec())?;
                store.commit()?;
                id
            }
        };
        Ok(Client {
            store,
            crypto: RustCrypto::default(),
            identity,
            options,
            scope_depth: 0,
        })
    }

    /// The device identity kept in the store.
    pub fn identity(&self) -> &DeviceIdentity {
        &self.identity
    }

    // ---------------------------------------------------------------- plumbing

    fn provider(&self) -> Provider<'_> {
        Provider {
            crypto: &self.crypto,
            store: &self.store,
        }
    }

    /// Runs `f` as one store transaction: commit on success, discard on failure. Inside
    /// [`Client::atomically`] it only stages, and a failure undoes just its own writes.
    fn transact<T>(&mut self, f: impl FnOnce(&Self) -> Result<T>) -> Result<T> {
        if self.scope_depth > 0 {
            let savepoint = self.store.savepoint()?;
            let out = f(self);
            if out.is_err() {
                self.store.rollback_to(savepoint)?;
            }
            return out;
        }
        self.store.discard();
        match f(self) {
            Ok(v) => {
                self.store.commit()?;
                Ok(v)
            }
            Err(e) => {
                self.store.discard();
                Err(e)
            }
        }
    }

    /// Runs a read-only `f`; anything it might have staged is dropped (inside a scope, only
    /// what `f` staged).
    fn read<T>(&self, f: impl FnOnce(&Self) -> Result<T>) -> Result<T> {
        if self.scope_depth > 0 {
            let savepoint = self.store.savepoint()?;
            let out = f(self);
            self.store.rollback_to(savepoint)?;
            return out;
        }
        let out = f(self);
        self.store.discard();
        out
    }

    /// Maps an openmls error, preferring the store failure that caused it, if any.
    fn mls_err(&self, e: impl std::fmt::Display) -> Error {
        match self.store.take_failure() {
            Some(store_error) => store_error.into(),
            None => Error::Mls(e.to_string()),
        }
    }

    fn welcome_err<S: std::fmt::Debug>(&self, e: WelcomeError<S>) -> Error {
        match e {
            WelcomeError::NoMatchingKeyPackage => Error::NoMatchingKeyPackage,
            other => self.mls_err(format!("{other:?}")),
        }
    }

    fn now_ms(&self) -> u64 {
        self.options
            .clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }

    fn join_config(&self) -> MlsGroupJoinConfig {
        MlsGroupJoinConfig::builder()
            .wire_format_policy(PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
            .padding_size(PADDING_BYTES)
            .max_past_epochs(self.options.max_past_epochs)
            .sender_ratchet_configuration(SenderRatchetConfiguration::new(
                OUT_OF_ORDER_TOLERANCE,
                MAXIMUM_FORWARD_DISTANCE,
            ))
            .use_ratchet_tree_extension(true)
            .build()
    }

    /// A fresh leaf signature key (one per key package or group, so per conversation),
    /// stored for later use.
    fn new_signer(&self) -> Result<SignatureKeyPair> {
        let signer = SignatureKeyPair::new(SIGNATURE_SCHEME).map_err(|e| self.mls_err(e))?;
        signer.store(&self.store)?;
        Ok(signer)
    }

    fn signer_for(&self, group: &MlsGroup) -> Result<SignatureKeyPair> {
        let leaf = group.own_leaf_node().ok_or(Error::NotAMember)?;
        SignatureKeyPair::read(
            &self.store,
            leaf.signature_key().as_slice(),
            SIGNATURE_SCHEME,
        )
        .ok_or_else(|| {
            self.store
                .take_failure()
                .map(Error::from)
                .unwrap_or_else(|| Error::StoreCorrupt("a leaf signature key is missing".into()))
        })
    }

    /// A device credential names the device by its registered Ed25519 public key and
    /// proves it with the device's signature over the leaf signature key; a pseudonymous
    /// one is `"PBP1"` and 16 random bytes (or the given pseudonym), naming nobody.
    fn credential_for(
        &self,
        signer: &SignatureKeyPair,
        kind: CredentialKind,
        pseudonym: Option<[u8; 16]>,
    ) -> CredentialWithKey {
        let leaf_key = signer.to_public_vec();
        let identity = match kind {
            CredentialKind::Device => {
                let binding = self.identity.sign(&leaf_binding_message(&leaf_key));
                [self.identity.public_key().as_slice(), binding.as_slice()].concat()
            }
            CredentialKind::Pseudonymous => {
                let p = pseudonym.unwrap_or_else(|| {
                    use rand::RngCore;
                    let mut p = [0u8; 16];
                    rand::rngs::OsRng.fill_bytes(&mut p);
                    p
                });
                [PSEUDONYM_PREFIX, p.as_slice()].concat()
            }
        };
        CredentialWithKey {
            credential: BasicCredential::new(identity).into(),
            signature_key: leaf_key.into(),
        }
    }

    /// The device's signature binding a leaf key to it (sent to the server only).
    fn leaf_binding(&self, leaf_signature_key: &[u8]) -> Vec<u8> {
        self.identity
            .sign(&leaf_binding_message(leaf_signature_key))
            .to_vec()
    }

    /// The binding of this device's leaf in `group`, if that leaf is pseudonymous.
    fn own_leaf_binding(&self, group: &MlsGroup) -> Option<Vec<u8>> {
        let leaf = group.own_leaf_node()?;
        pseudonym_of(leaf.credential().serialized_content())?;
        Some(self.leaf_binding(leaf.signature_key().as_slice()))
    }

    fn parse_key_package(&self, bytes: &[u8]) -> Result<KeyPackage> {
        let kp_in = match MlsMessageIn::tls_deserialize_exact(bytes) {
            Ok(msg) => match msg.extract() {
                MlsMessageBodyIn::KeyPackage(kp) => kp,
                _ => {
                    return Err(Error::UnexpectedMessage {
                        expected: "KeyPackage",
                    });
                }
            },
            Err(_) => KeyPackageIn::tls_deserialize_exact(bytes)
                .map_err(|e| Error::InvalidKeyPackage(e.to_string()))?,
        };
        let kp = kp_in
            .validate(&self.crypto, ProtocolVersion::Mls10)
            .map_err(|e| Error::InvalidKeyPackage(e.to_string()))?;
        if kp.ciphersuite() != CIPHERSUITE {
            return Err(Error::InvalidKeyPackage("wrong ciphersuite".into()));
        }
        let leaf = kp.leaf_node();
        let credential = leaf.credential().serialized_content();
        if verify_leaf_credential(credential, leaf.signature_key().as_slice()).is_none()
            && pseudonym_of(credential).is_none()
        {
            return Err(Error::InvalidKeyPackage(
                "the credential is neither bound to a device key nor a pseudonym".into(),
            ));
        }
        Ok(kp)
    }

    fn load(&self, group_id: &GroupId) -> Result<Option<MlsGroup>> {
        Ok(MlsGroup::load(&self.store, &group_id.to_mls())?)
    }

    fn load_member_group(&self, group_id: &GroupId) -> Result<MlsGroup> {
        let group = self.load(group_id)?.ok_or(Error::UnknownGroup)?;
        if !group.is_active() {
            return Err(Error::NotAMember);
        }
        Ok(group)
    }

    fn current_epoch(&self, group_id: &GroupId) -> Result<Epoch> {
        let group = self.load(group_id)?.ok_or(Error::UnknownGroup)?;
        Ok(Epoch(group.epoch().as_u64()))
    }
}

fn capabilities() -> Capabilities {
    Capabilities::new(
        None,
        Some(&[CIPHERSUITE]),
        Some(&[ExtensionType::LastResort]),
        None,
        None,
    )
}

fn member_info(m: Member) -> MemberInfo {
    let raw = m.credential.serialized_content();
    let (identity, verified, pseudonymous) = match verify_leaf_credential(raw, &m.signature_key) {
        Some(device) => (device.to_vec(), true, false),
        None => match pseudonym_of(raw) {
            Some(p) => (p.to_vec(), true, true),
            None => (raw.to_vec(), false, false),
        },
    };
    MemberInfo {
        leaf_index: m.index.u32(),
        identity,
        signature_key: m.signature_key,
        verified,
        pseudonymous,
    }
}

/// Asks the policy, refusing unverified credentials outright.
fn allowed(
    policy: &dyn AddPolicy,
    group_id: &GroupId,
    member: &MemberInfo,
    kind: AddKind,
    added_by: Option<&MemberInfo>,
) -> bool {
    member.verified
        && policy.allows(&AddCandidate {
            group_id: group_id.as_bytes(),
            member,
            kind,
            added_by,
        })
}

fn parse_message(bytes: &[u8]) -> Result<MlsMessageIn> {
    MlsMessageIn::tls_deserialize_exact(bytes).map_err(|e| Error::MalformedMessage(e.to_string()))
}

fn parse_protocol(bytes: &[u8]) -> Result<ProtocolMessage> {
    match parse_message(bytes)?.extract() {
        MlsMessageBodyIn::PublicMessage(m) => Ok(m.into()),
        MlsMessageBodyIn::PrivateMessage(m) => Ok(m.into()),
        _ => Err(Error::UnexpectedMessage {
            expected: "a group message (commit or application message)",
        }),
    }
}

fn corrupt(e: impl std::fmt::Display) -> Error {
    Error::StoreCorrupt(e.to_string())
}

/// `app/<key>`: a row of the app's own.
fn app_key(key: &[u8]) -> Vec<u8> {
    [APP_NAMESPACE, key].concat()
}

/// `pb/group/<len><group id>/<what>`: the client's own per-group records.
fn record_key(group_id: &GroupId, what: &[u8]) -> Vec<u8> {
    let id = group_id.as_bytes();
    let mut k = Vec::with_capacity(10 + id.len() + what.len());
    k.extend_from_slice(b"pb/group/");
    // GroupId guarantees 1..=255 bytes.
    k.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
    k.extend_from_slice(id);
    k.push(b'/');
    k.extend_from_slice(what);
    k
}

fn buffer_item_key(group_id: &GroupId, seq: u64) -> Vec<u8> {
    let mut k = record_key(group_id, b"buffer/");
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_client_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<super::Client>();
    }
}
