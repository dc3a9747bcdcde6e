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
    fn now(&self) -> SystemTime {
        SystemTime::now()
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
    pub fn open(path: impl AsRef<Path>, key: &StoreKey, options: ClientOptions) -> Result<Client> {
        Self::open_inner(path.as_ref(), key, None, options)
    }

    /// Like [`Client::open`], but a new store adopts `identity` (e.g. one already enrolled);
    /// an existing store must hold the same identity ([`Error::IdentityMismatch`]).
    pub fn open_with_identity(
        path: impl AsRef<Path>,
        key: &StoreKey,
        identity: DeviceIdentity,
        options: ClientOptions,
    ) -> Result<Client> {
        Self::open_inner(path.as_ref(), key, Some(identity), options)
    }

    fn open_inner(
        path: &Path,
        key: &StoreKey,
        supplied: Option<DeviceIdentity>,
        options: ClientOptions,
    ) -> Result<Client> {
        let (store, _created) = Store::open(path, key)?;
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

    // ---------------------------------------------------------------- key packages

    /// `n` one-time key packages, each with its hash reference. Their
    /// private keys stay in the store until a Welcome using them is processed.
    pub fn generate_key_packages(&mut self, n: usize) -> Result<Vec<GeneratedKeyPackage>> {
        self.transact(|c| {
            (0..n)
                .map(|_| c.new_key_package(false, CredentialKind::Device))
                .collect()
        })
    }

    /// `n` one-time pseudonymous key packages (for introductions): a fresh pseudonym and
    /// leaf key each, with the device's leaf binding for the server. There is no
    /// pseudonymous last-resort package: reusing one would link introductions.
    pub fn generate_pseudonymous_key_packages(
        &mut self,
        n: usize,
    ) -> Result<Vec<GeneratedKeyPackage>> {
        self.transact(|c| {
            (0..n)
                .map(|_| c.new_key_package(false, CredentialKind::Pseudonymous))
                .collect()
        })
    }

    /// A last-resort key package (RFC 9420 last_resort extension): the server hands it out
    /// when the one-time packages are exhausted; its keys survive being used.
    pub fn last_resort_key_package(&mut self) -> Result<GeneratedKeyPackage> {
        self.transact(|c| c.new_key_package(true, CredentialKind::Device))
    }

    fn new_key_package(
        &self,
        last_resort: bool,
        kind: CredentialKind,
    ) -> Result<GeneratedKeyPackage> {
        let signer = self.new_signer()?;
        let mut builder = KeyPackage::builder().leaf_node_capabilities(capabilities());
        if last_resort {
            builder = builder.mark_as_last_resort();
        }
        let bundle = builder
            .build(
                CIPHERSUITE,
                &self.provider(),
                &signer,
                self.credential_for(&signer, kind, None),
            )
            .map_err(|e| self.mls_err(e))?;
        let kp = bundle.key_package();
        let hash_ref = kp
            .hash_ref(&self.crypto)
            .map_err(|e| self.mls_err(e))?
            .as_slice()
            .to_vec();
        let key_package = MlsMessageOut::from(kp.clone())
            .to_bytes()
            .map_err(|e| self.mls_err(e))?;
        let signature_key = signer.to_public_vec();
        Ok(GeneratedKeyPackage {
            key_package,
            hash_ref,
            last_resort,
            leaf_binding: (kind == CredentialKind::Pseudonymous)
                .then(|| self.leaf_binding(&signature_key)),
            signature_key,
        })
    }

    // ---------------------------------------------------------------- groups and commits

    /// Creates a group at epoch 0 with this device alone, and stages the first commit adding
    /// the devices of `key_packages` (TLS `MLSMessage` or bare `KeyPackage` bytes). With no key
    /// packages the commit is an empty one that publishes the group's first GroupInfo. If the
    /// server rejects it (e.g. the id is taken), the epoch-0 group remains until
    /// [`Client::forget_group`].
    pub fn create_group(
        &mut self,
        group_id: &GroupId,
        key_packages: &[Vec<u8>],
    ) -> Result<PendingCommit> {
        self.create_group_with(group_id, key_packages, CredentialKind::Device)
    }

    /// [`Client::create_group`] with this device's leaf of the given kind (pseudonymous for
    /// introductions).
    pub fn create_group_with(
        &mut self,
        group_id: &GroupId,
        key_packages: &[Vec<u8>],
        kind: CredentialKind,
    ) -> Result<PendingCommit> {
        let kps = key_packages
            .iter()
            .map(|kp| self.parse_key_package(kp))
            .collect::<Result<Vec<_>>>()?;
        self.transact(|c| {
            if c.load(group_id)?.is_some() || c.get_pending(group_id)?.is_some() {
                return Err(Error::GroupExists);
            }
            let signer = c.new_signer()?;
            let mut group = MlsGroup::builder()
                .with_group_id(group_id.to_mls())
                .ciphersuite(CIPHERSUITE)
                .with_wire_format_policy(PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
                .padding_size(PADDING_BYTES)
                .max_past_epochs(c.options.max_past_epochs)
                .sender_ratchet_configuration(SenderRatchetConfiguration::new(
                    OUT_OF_ORDER_TOLERANCE,
                    MAXIMUM_FORWARD_DISTANCE,
                ))
                .use_ratchet_tree_extension(true)
                .with_capabilities(capabilities())
                .build(
                    &c.provider(),
                    &signer,
                    c.credential_for(&signer, kind, None),
                )
                .map_err(|e| c.mls_err(e))?;
            c.index_group(group_id, true)?;
            let empty = kps.is_empty();
            c.stage_commit(group_id, &mut group, kps, vec![], empty)
        })
    }

    /// Stages a commit adding the devices of `key_packages`; its Welcome goes to them.
    pub fn add_members(
        &mut self,
        group_id: &GroupId,
        key_packages: &[Vec<u8>],
    ) -> Result<PendingCommit> {
        let kps = key_packages
            .iter()
            .map(|kp| self.parse_key_package(kp))
            .collect::<Result<Vec<_>>>()?;
        self.transact(|c| {
            let mut group = c.load_member_group(group_id)?;
            c.stage_commit(group_id, &mut group, kps, vec![], false)
        })
    }

    /// Stages a commit removing the members at `leaf_indices` (see [`Client::members`]).
    pub fn remove_members(
        &mut self,
        group_id: &GroupId,
        leaf_indices: &[u32],
    ) -> Result<PendingCommit> {
        self.transact(|c| {
            let mut group = c.load_member_group(group_id)?;
            let mut removes = Vec::with_capacity(leaf_indices.len());
            for &i in leaf_indices {
                let idx = LeafNodeIndex::new(i);
                if group.member_at(idx).is_none() {
                    return Err(Error::UnknownMember(i));
                }
                removes.push(idx);
            }
            c.stage_commit(group_id, &mut group, vec![], removes, false)
        })
    }

    /// Stages a commit that refreshes this device's leaf keys (post-compromise security).
    pub fn self_update(&mut self, group_id: &GroupId) -> Result<PendingCommit> {
        self.transact(|c| {
            let mut group = c.load_member_group(group_id)?;
            c.stage_commit(group_id, &mut group, vec![], vec![], true)
        })
    }

    /// The commit waiting for the server's answer, if any (to resend after a restart).
    pub fn pending_commit(&self, group_id: &GroupId) -> Result<Option<PendingCommit>> {
        self.read(|c| Ok(c.get_pending(group_id)?.map(|r| r.commit)))
    }

    /// The server accepted the pending commit: merge it, then replay buffered messages that
    /// have become current. `policy` vets members added by those replayed commits.
    pub fn commit_accepted(
        &mut self,
        group_id: &GroupId,
        policy: &dyn AddPolicy,
    ) -> Result<Vec<Event>> {
        self.transact(|c| {
            let record = c.get_pending(group_id)?.ok_or(Error::NoPendingCommit)?;
            match record.commit.kind {
                CommitKind::Member => {
                    let mut group = c.load(group_id)?.ok_or(Error::UnknownGroup)?;
                    group
                        .merge_pending_commit(&c.provider())
                        .map_err(|e| c.mls_err(e))?;
                }
                CommitKind::ExternalRejoin => {
                    c.store.restage(record.parked)?;
                    c.index_group(group_id, true)?;
                }
            }
            c.delete_pending(group_id)?;
            let epoch = c.current_epoch(group_id)?;
            let mut events = vec![Event::EpochChanged {
                group_id: group_id.clone(),
                epoch,
            }];
            c.drain_buffer(group_id, policy, &mut events)?;
            Ok(events)
        })
    }

    /// The server rejected the pending commit (e.g. 409, another commit won the epoch):
    /// discard it. The group stays at its epoch and usable; process the winning commit, then
    /// retry the operation.
    pub fn commit_rejected(&mut self, group_id: &GroupId) -> Result<()> {
        self.transact(|c| {
            let record = c.get_pending(group_id)?.ok_or(Error::NoPendingCommit)?;
            if record.commit.kind == CommitKind::Member
                && let Some(mut group) = c.load(group_id)?
            {
                group
                    .clear_pending_commit(&c.store)
                    .map_err(|e| c.mls_err(e))?;
            }
            c.delete_pending(group_id)
        })
    }

    fn stage_commit(
        &self,
        group_id: &GroupId,
        group: &mut MlsGroup,
        adds: Vec<KeyPackage>,
        removes: Vec<LeafNodeIndex>,
        force_self_update: bool,
    ) -> Result<PendingCommit> {
        if self.get_pending(group_id)?.is_some() || group.pending_commit().is_some() {
            return Err(Error::CommitPending);
        }
        let signer = self.signer_for(group)?;
        let epoch = Epoch(group.epoch().as_u64());
        let provider = self.provider();
        let bundle = group
            .commit_builder()
            .propose_adds(adds)
            .propose_removals(removes)
            .force_self_update(force_self_update)
            .load_psks(provider.storage())
            .map_err(|e| self.mls_err(e))?
            .build(provider.rand(), provider.crypto(), &signer, |_| true)
            .map_err(|e| self.mls_err(e))?
            .stage_commit(&provider)
            .map_err(|e| self.mls_err(e))?;
        let (commit, welcome, group_info) = bundle.into_messages();
        let group_info =
            group_info.ok_or_else(|| Error::Mls("the commit produced no GroupInfo".into()))?;
        let pending = PendingCommit {
            group_id: group_id.clone(),
            epoch,
            commit: commit.to_bytes().map_err(|e| self.mls_err(e))?,
            welcome: welcome
                .map(|w| w.to_bytes())
                .transpose()
                .map_err(|e| self.mls_err(e))?,
            group_info: group_info.to_bytes().map_err(|e| self.mls_err(e))?,
            kind: CommitKind::Member,
            leaf_binding: self.own_leaf_binding(group),
        };
        self.put_pending(&PendingRecord {
            commit: pending.clone(),
            parked: Staged::new(),
        })?;
        Ok(pending)
    }

    // ---------------------------------------------------------------- joining

    /// Joins a group from a Welcome (TLS `MLSMessage`). Every existing member is checked with
    /// `policy`; a refusal leaves the store untouched (the key package stays usable).
    pub fn join_from_welcome(&mut self, welcome: &[u8], policy: &dyn AddPolicy) -> Result<Joined> {
        let welcome = match parse_message(welcome)?.extract() {
            MlsMessageBodyIn::Welcome(w) => w,
            _ => {
                return Err(Error::UnexpectedMessage {
                    expected: "Welcome",
                });
            }
        };
        self.transact(|c| {
            let provider = c.provider();
            let staged = StagedWelcome::build_from_welcome(&provider, &c.join_config(), welcome)
                .map_err(|e| c.welcome_err(e))?
                .replace_old_group()
                .build()
                .map_err(|e| c.welcome_err(e))?;
            let group_id = GroupId::new(staged.group_context().group_id().as_slice().to_vec())?;
            let own = staged.own_leaf_index();
            let members: Vec<MemberInfo> = staged.members().map(member_info).collect();
            let added_by = staged
                .members()
                .find(|m| m.index == staged.welcome_sender_index())
                .map(member_info);
            let refused: Vec<MemberInfo> = members
                .iter()
                .filter(|m| m.leaf_index != own.u32())
                .filter(|m| !allowed(policy, &group_id, m, AddKind::ExistingMember, None))
                .cloned()
                .collect();
            if !refused.is_empty() {
                return Err(Error::PolicyRefused { refused });
            }
            let group = staged.into_group(&provider).map_err(|e| c.welcome_err(e))?;
            // A re-add replaces whatever this device still had for the group.
            c.delete_pending(&group_id)?;
            c.clear_buffer(&group_id)?;
            c.index_group(&group_id, true)?;
            Ok(Joined {
                group_id,
                epoch: Epoch(group.epoch().as_u64()),
                members,
                added_by,
            })
        })
    }

    /// Rejoins a group this device fell out of sync with (or lost), by an external commit
    /// from the GroupInfo the server keeps (TLS `MLSMessage`). The new state is parked until
    /// [`Client::commit_accepted`]; until then the old state stays as it was and messages for
    /// the group are buffered. If this device's old leaf is still in the tree it is removed
    /// by the same commit.
    pub fn rejoin(&mut self, group_info: &[u8], policy: &dyn AddPolicy) -> Result<PendingCommit> {
        self.rejoin_as(group_info, policy, CredentialKind::Device)
    }

    /// [`Client::rejoin`]; if this device holds no state of the group at all, its new leaf
    /// is of `kind` (pseudonymous in an introduction).
    pub fn rejoin_as(
        &mut self,
        group_info: &[u8],
        policy: &dyn AddPolicy,
        kind: CredentialKind,
    ) -> Result<PendingCommit> {
        let group_info = match parse_message(group_info)?.extract() {
            MlsMessageBodyIn::GroupInfo(gi) => gi,
            _ => {
                return Err(Error::UnexpectedMessage {
                    expected: "GroupInfo",
                });
            }
        };
        let group_id = GroupId::new(group_info.group_id().as_slice().to_vec())?;
        let epoch = Epoch(group_info.epoch().as_u64());
        self.transact(|c| {
            if c.get_pending(&group_id)?.is_some() {
                return Err(Error::CommitPending);
            }
            // Reusing the old leaf's signature key lets openmls remove the stale leaf inline.
            let old = c.load(&group_id)?;
            let old_key = old
                .as_ref()
                .and_then(|g| g.own_leaf_node())
                .and_then(|leaf| {
                    SignatureKeyPair::read(
                        &c.store,
                        leaf.signature_key().as_slice(),
                        SIGNATURE_SCHEME,
                    )
                });
            let signer = match old_key {
                Some(k) => k,
                None => c.new_signer()?,
            };
            // The new leaf keeps the old leaf's kind and pseudonym (so openmls can replace
            // the stale leaf); a device that lost the group entirely rejoins as `kind`.
            let old_credential = old
                .as_ref()
                .and_then(|g| g.own_leaf_node())
                .map(|l| l.credential().serialized_content().to_vec());
            let (leaf_kind, pseudonym) = match old_credential.as_deref().and_then(pseudonym_of) {
                Some(p) => (CredentialKind::Pseudonymous, Some(p)),
                None if old_credential.is_some() => (CredentialKind::Device, None),
                None => (kind, None),
            };
            if let Some(mut old) = old {
                old.delete(&c.store).map_err(|e| c.mls_err(e))?;
            }
            let provider = c.provider();
            let (group, bundle) = MlsGroup::external_commit_builder()
                .with_config(c.join_config())
                .build_group(
                    &provider,
                    group_info,
                    c.credential_for(&signer, leaf_kind, pseudonym),
                )
                .map_err(|e| c.mls_err(e))?
                .leaf_node_parameters(
                    LeafNodeParameters::builder()
                        .with_capabilities(capabilities())
                        .build(),
                )
                .load_psks(provider.storage())
                .map_err(|e| c.mls_err(e))?
                .build(provider.rand(), provider.crypto(), &signer, |_| true)
                .map_err(|e| c.mls_err(e))?
                .finalize(&provider)
                .map_err(|e| c.mls_err(e))?;
            let own = group.own_leaf_index();
            let refused: Vec<MemberInfo> = group
                .members()
                .filter(|m| m.index != own)
                .map(member_info)
                .filter(|m| !allowed(policy, &group_id, m, AddKind::ExistingMember, None))
                .collect();
            if !refused.is_empty() {
                return Err(Error::PolicyRefused { refused });
            }
            let (commit, _welcome, new_info) = bundle.into_messages();
            let new_info = match new_info {
                Some(gi) => gi,
                None => group
                    .export_group_info(provider.crypto(), &signer, true)
                    .map_err(|e| c.mls_err(e))?,
            };
            let pending = PendingCommit {
                group_id: group_id.clone(),
                epoch,
                commit: commit.to_bytes().map_err(|e| c.mls_err(e))?,
                welcome: None,
                group_info: new_info.to_bytes().map_err(|e| c.mls_err(e))?,
                kind: CommitKind::ExternalRejoin,
                leaf_binding: c.own_leaf_binding(&group),
            };
            // Park the new group's state (and the old one's deletion) with the record.
            let parked = c.store.take_staged()?;
            c.put_pending(&PendingRecord {
                commit: pending.clone(),
                parked,
            })?;
            Ok(pending)
        })
    }

    /// Deletes everything this device holds for a group (after leaving or being removed).
    pub fn forget_group(&mut self, group_id: &GroupId) -> Result<()> {
        self.transact(|c| {
            if let Some(mut group) = c.load(group_id)? {
                group.delete(&c.store).map_err(|e| c.mls_err(e))?;
            }
            c.delete_pending(group_id)?;
            c.clear_buffer(group_id)?;
            c.index_group(group_id, false)
        })
    }

    // ---------------------------------------------------------------- messages

    /// Encrypts an envelope as an MLS `PrivateMessage` (TLS `MLSMessage` bytes).
    pub fn encrypt(&mut self, group_id: &GroupId, envelope: &Envelope) -> Result<Vec<u8>> {
        let encoded = envelope.encode()?;
        // Franking: a fresh key per message; the commitment goes to the server in the clear
        // (authenticated data), the key only inside the ciphertext.
        let franking = crate::excerpt::frank(&encoded);
        let plaintext = [FRANKED_PREFIX, franking.key.as_slice(), &encoded].concat();
        self.transact(|c| {
            if c.get_pending(group_id)?
                .is_some_and(|r| r.commit.kind == CommitKind::ExternalRejoin)
            {
                return Err(Error::CommitPending);
            }
            let mut group = c.load_member_group(group_id)?;
            let signer = c.signer_for(&group)?;
            group.set_aad(crate::excerpt::franking_aad(&franking.commitment));
            let out = group
                .create_message(&c.provider(), &signer, &plaintext)
                .map_err(|e| c.mls_err(e))?
                .to_bytes()
                .map_err(|e| c.mls_err(e));
            group.set_aad(Vec::new());
            out
        })
    }

    /// Processes one message from the delivery service (TLS `MLSMessage`: a commit or an
    /// application message). Messages of a future epoch are buffered and replayed when the
    /// epoch arrives. `policy` vets every member a commit would add.
    pub fn process(&mut self, message: &[u8], policy: &dyn AddPolicy) -> Result<Vec<Event>> {
        let protocol = parse_protocol(message)?;
        let group_id = GroupId::new(protocol.group_id().as_slice().to_vec())
            .map_err(|_| Error::UnknownGroup)?;
        self.transact(|c| {
            let mut events = Vec::new();
            let changed = c.process_one(&group_id, protocol, message, policy, &mut events)?;
            if changed {
                c.drain_buffer(&group_id, policy, &mut events)?;
            }
            Ok(events)
        })
    }

    /// Returns whether the epoch changed.
    fn process_one(
        &self,
        group_id: &GroupId,
        protocol: ProtocolMessage,
        raw: &[u8],
        policy: &dyn AddPolicy,
        events: &mut Vec<Event>,
    ) -> Result<bool> {
        let msg_epoch = Epoch(protocol.epoch().as_u64());
        let rejoining = self
            .get_pending(group_id)?
            .is_some_and(|r| r.commit.kind == CommitKind::ExternalRejoin);
        let Some(mut group) = self.load(group_id)? else {
            if rejoining {
                self.buffer(group_id, msg_epoch, raw, events)?;
                return Ok(false);
            }
            return Err(Error::UnknownGroup);
        };
        let current = Epoch(group.epoch().as_u64());
        // While a rejoin is pending, the old state still reads application messages of its
        // own epochs; everything else waits for the server's answer.
        if rejoining
            && (protocol.is_handshake_message() || msg_epoch > current || !group.is_active())
        {
            self.buffer(group_id, msg_epoch, raw, events)?;
            return Ok(false);
        }
        if !group.is_active() {
            return Err(Error::NotAMember);
        }
        if msg_epoch > current {
            self.buffer(group_id, msg_epoch, raw, events)?;
            return Ok(false);
        }
        if msg_epoch < current && protocol.is_handshake_message() {
            events.push(Event::Ignored {
                group_id: group_id.clone(),
                epoch: msg_epoch,
                reason: IgnoredReason::PastEpochHandshake,
            });
            return Ok(false);
        }
        let savepoint = self.store.savepoint()?;
        let provider = self.provider();
        let processed = group
            .process_message(&provider, protocol)
            .map_err(|e| self.mls_err(e))?;
        let sender = match processed.sender() {
            openmls::prelude::Sender::Member(i) => group.member_at(*i).map(member_info),
            _ => None,
        };
        let is_external = matches!(
            processed.sender(),
            openmls::prelude::Sender::NewMemberCommit
        );
        let aad = processed.aad().to_vec();
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(app) => {
                let sender = sender.ok_or_else(|| Error::Mls("no sender".into()))?;
                let (bytes, franking) = unfrank(app.into_bytes(), &aad);
                let (decoded, franking) = match franking {
                    Err(e) => (Err(e), None),
                    Ok(f) => (Envelope::decode(&bytes), f),
                };
                events.push(match decoded {
                    Ok(envelope) => Event::Message {
                        group_id: group_id.clone(),
                        epoch: msg_epoch,
                        sender,
                        envelope,
                        franking,
                    },
                    Err(error) => Event::UnreadableMessage {
                        group_id: group_id.clone(),
                        epoch: msg_epoch,
                        sender,
                        error,
                    },
                });
                Ok(false)
            }
            ProcessedMessageContent::OwnPrivateMessage => {
                events.push(Event::Ignored {
                    group_id: group_id.clone(),
                    epoch: msg_epoch,
                    reason: IgnoredReason::OwnMessage,
                });
                Ok(false)
            }
            ProcessedMessageContent::ProposalMessage(_)
            | ProcessedMessageContent::ExternalJoinProposalMessage(_) => {
                events.push(Event::Ignored {
                    group_id: group_id.clone(),
                    epoch: msg_epoch,
                    reason: IgnoredReason::StandaloneProposal,
                });
                Ok(false)
            }
            ProcessedMessageContent::OwnPendingCommit => {
                // Nothing of the processing needs keeping; merging waits for the server's 2xx.
                self.store.rollback_to(savepoint)?;
                events.push(Event::OwnCommitEchoed {
                    group_id: group_id.clone(),
                    epoch: msg_epoch,
                });
                Ok(false)
            }
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                let before: Vec<MemberInfo> = group.members().map(member_info).collect();
                let had_pending = group.pending_commit().is_some();
                let self_removed = staged.self_removed();
                // An external joiner is the committer; its leaf is the update-path leaf.
                let joiner_key = if is_external {
                    staged
                        .update_path_leaf_node()
                        .map(|leaf| leaf.signature_key().as_slice().to_vec())
                } else {
                    None
                };
                group
                    .merge_staged_commit(&provider, *staged)
                    .map_err(|e| self.mls_err(e))?;
                let after: Vec<MemberInfo> = group.members().map(member_info).collect();
                // A leaf counts as new when its index, device or signature key changed, so a
                // leaf swapped in under a known device name is vetted like an add.
                let key =
                    |m: &MemberInfo| (m.leaf_index, m.identity.clone(), m.signature_key.clone());
                let before_keys: BTreeSet<_> = before.iter().map(key).collect();
                let after_keys: BTreeSet<_> = after.iter().map(key).collect();
                let kind = if is_external {
                    AddKind::ExternalJoin
                } else {
                    AddKind::AddedByCommit
                };
                // A rejoining device may keep its leaf index and keys; it is still reported
                // (and vetted) as an external join.
                let added: Vec<MemberInfo> = after
                    .iter()
                    .filter(|m| {
                        !before_keys.contains(&key(m))
                            || joiner_key.as_deref() == Some(m.signature_key.as_slice())
                    })
                    .cloned()
                    .collect();
                let refused: Vec<MemberInfo> = added
                    .iter()
                    .filter(|m| !allowed(policy, group_id, m, kind, sender.as_ref()))
                    .cloned()
                    .collect();
                if !refused.is_empty() {
                    self.store.rollback_to(savepoint)?;
                    events.push(Event::CommitRefused {
                        group_id: group_id.clone(),
                        epoch: msg_epoch,
                        committer: sender,
                        refused,
                    });
                    return Ok(false);
                }
                if had_pending {
                    // Another commit won this epoch; ours can never be accepted.
                    self.delete_pending(group_id)?;
                    events.push(Event::OwnCommitDiscarded {
                        group_id: group_id.clone(),
                        epoch: msg_epoch,
                    });
                }
                for member in added {
                    events.push(Event::MemberAdded {
                        group_id: group_id.clone(),
                        member,
                        kind,
                        added_by: sender.clone(),
                    });
                }
                for member in before.iter().filter(|m| !after_keys.contains(&key(m))) {
                    events.push(Event::MemberRemoved {
                        group_id: group_id.clone(),
                        member: member.clone(),
                    });
                }
                events.push(Event::EpochChanged {
                    group_id: group_id.clone(),
                    epoch: Epoch(group.epoch().as_u64()),
                });
                if self_removed {
                    self.clear_buffer(group_id)?;
                    events.push(Event::RemovedFromGroup {
                        group_id: group_id.clone(),
                    });
                    return Ok(false);
                }
                Ok(true)
            }
        }
    }

    // ---------------------------------------------------------------- future-epoch buffer

    /// The messages waiting for a future epoch of `group_id`, oldest first.
    pub fn buffered(&self, group_id: &GroupId) -> Result<Vec<BufferedMessage>> {
        self.read(|c| {
            Ok(c.buffer_index(group_id)?
                .entries
                .iter()
                .map(|e| BufferedMessage {
                    epoch: Epoch(e.epoch),
                    received_at: UNIX_EPOCH + Duration::from_millis(e.received_at_ms),
                })
                .collect())
        })
    }

    /// Drops buffered messages older than the configured TTL in every group and returns how
    /// many were dropped.
    pub fn expire_buffered(&mut self) -> Result<usize> {
        self.transact(|c| {
            let mut dropped = 0;
            for group_id in c.group_ids()? {
                dropped += c.expire_group_buffer(&group_id)?;
            }
            Ok(dropped)
        })
    }

    fn expire_group_buffer(&self, group_id: &GroupId) -> Result<usize> {
        let cutoff = self
            .now_ms()
            .saturating_sub(u64::try_from(self.options.buffer_ttl.as_millis()).unwrap_or(u64::MAX));
        let mut index = self.buffer_index(group_id)?;
        let (expired, kept): (Vec<_>, Vec<_>) = index
            .entries
            .into_iter()
            .partition(|e| e.received_at_ms < cutoff);
        index.entries = kept;
        for e in &expired {
            self.store.delete(&buffer_item_key(group_id, e.seq))?;
        }
        if !expired.is_empty() {
            self.put_buffer_index(group_id, &index)?;
        }
        Ok(expired.len())
    }

    fn buffer(
        &self,
        group_id: &GroupId,
        epoch: Epoch,
        raw: &[u8],
        events: &mut Vec<Event>,
    ) -> Result<()> {
        self.expire_group_buffer(group_id)?;
        let mut index = self.buffer_index(group_id)?;
        if index.entries.len() >= self.options.max_buffered_per_group {
            return Err(Error::BufferFull);
        }
        let seq = index.next_seq;
        index.next_seq += 1;
        index.entries.push(BufferEntry {
            seq,
            epoch: epoch.0,
            received_at_ms: self.now_ms(),
        });
        self.store
            .put(&buffer_item_key(group_id, seq), raw.to_vec())?;
        self.put_buffer_index(group_id, &index)?;
        events.push(Event::Buffered {
            group_id: group_id.clone(),
            epoch,
        });
        Ok(())
    }

    /// Replays buffered messages whose epoch has arrived, in arrival order, until none is
    /// ready. A message that fails on replay is dropped (reported), not retried forever.
    fn drain_buffer(
        &self,
        group_id: &GroupId,
        policy: &dyn AddPolicy,
        events: &mut Vec<Event>,
    ) -> Result<()> {
        loop {
            let Some(group) = self.load(group_id)? else {
                return Ok(());
            };
            if !group.is_active() {
                return Ok(());
            }
            let current = group.epoch().as_u64();
            let mut index = self.buffer_index(group_id)?;
            let Some(pos) = index.entries.iter().position(|e| e.epoch <= current) else {
                return Ok(());
            };
            let entry = index.entries.remove(pos);
            let item_key = buffer_item_key(group_id, entry.seq);
            let raw = self.store.get(&item_key)?;
            self.store.delete(&item_key)?;
            self.put_buffer_index(group_id, &index)?;
            let savepoint = self.store.savepoint()?;
            let outcome = raw
                .ok_or_else(|| Error::StoreCorrupt("a buffered message is missing".into()))
                .and_then(|raw| {
                    let protocol = parse_protocol(&raw)?;
                    self.process_one(group_id, protocol, &raw, policy, events)
                });
            if let Err(e) = outcome {
                self.store.rollback_to(savepoint)?;
                if matches!(e, Error::StoreIo(_)) {
                    return Err(e);
                }
                events.push(Event::BufferedDropped {
                    group_id: group_id.clone(),
                    epoch: Epoch(entry.epoch),
                    reason: e.code().to_string(),
                });
            }
        }
    }

    // ---------------------------------------------------------------- inspection

    /// The groups this device has state for.
    pub fn groups(&self) -> Result<Vec<GroupId>> {
        self.read(|c| c.group_ids())
    }

    pub fn epoch(&self, group_id: &GroupId) -> Result<Epoch> {
        self.read(|c| c.current_epoch(group_id))
    }

    /// The current members, by leaf index.
    pub fn members(&self, group_id: &GroupId) -> Result<Vec<MemberInfo>> {
        self.read(|c| {
            let group = c.load(group_id)?.ok_or(Error::UnknownGroup)?;
            Ok(group.members().map(member_info).collect())
        })
    }

    /// This device's leaf index in the group.
    pub fn own_leaf_index(&self, group_id: &GroupId) -> Result<u32> {
        self.read(|c| {
            let group = c.load_member_group(group_id)?;
            Ok(group.own_leaf_index().u32())
        })
    }

    /// Signs `message` with this device's current leaf key in the group (e.g. a consent
    /// statement). Anyone holding the group state can check it against the member's leaf;
    /// nobody else can produce it.
    pub fn sign_as_member(&self, group_id: &GroupId, message: &[u8]) -> Result<MemberSignature> {
        use openmls_traits::signatures::Signer as _;
        let group = self.load_member_group(group_id)?;
        let signer = self.signer_for(&group)?;
        let signature = signer
            .sign(message)
            .map_err(|e| Error::Mls(format!("signing failed: {e:?}")))?;
        Ok(MemberSignature {
            signature_key: signer.to_public_vec(),
            signature,
        })
    }

    /// The current member whose leaf key is `signature_key`, if `signature` by it over
    /// `message` verifies; `None` for a non-member key or a bad signature.
    pub fn verify_member_signature(
        &self,
        group_id: &GroupId,
        message: &[u8],
        signature_key: &[u8],
        signature: &[u8],
    ) -> Result<Option<MemberInfo>> {
        let group = self.load_member_group(group_id)?;
        let Some(member) = group
            .members()
            .find(|m| m.signature_key == signature_key)
            .map(member_info)
        else {
            return Ok(None);
        };
        Ok(verify_signature(signature_key, message, signature).then_some(member))
    }

    /// A short code two members compare out of band: 20 digits in groups of five, derived
    /// with the MLS exporter from the current epoch. Members at the same epoch of the same
    /// group see the same code; it changes with every epoch and differs between groups.
    pub fn safety_code(&self, group_id: &GroupId) -> Result<String> {
        self.read(|c| {
            let group = c.load_member_group(group_id)?;
            let secret = group
                .export_secret(&c.crypto, SAFETY_CODE_LABEL, group_id.as_bytes(), 20)
                .map_err(|e| c.mls_err(e))?;
            let groups: Vec<String> = secret
                .chunks(5)
                .map(|chunk| {
                    let n = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
                    format!("{:05}", n % 100_000)
                })
                .collect();
            Ok(groups.join(" "))
        })
    }

    // ------------------------------------------------------- the app's rows, atomically

    /// Runs `f` as one atomic step of the device store: every client operation inside it
    /// (e.g. [`Client::process`]) and every [`Client::app_write`] lands in one SQLite
    /// transaction when `f` succeeds, and nothing of it when `f` fails or the process dies
    /// first. This is how the app makes a received message's ratchet step and its own
    /// bookkeeping (cursor, inbox, history) one write: a message key is never consumed
    /// without the message being kept. External rejoins (`rejoin*`) park their state and
    /// must not run inside a scope.
    pub fn atomically<T, E: From<Error>>(
        &mut self,
        f: impl FnOnce(&mut Client) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        // Outermost: start from an empty stage; nested: remember it to undo only this part.
        let savepoint = if self.scope_depth == 0 {
            self.store.discard();
            None
        } else {
            Some(self.store.savepoint().map_err(Error::from)?)
        };
        self.scope_depth += 1;
        let out = f(self);
        self.scope_depth -= 1;
        match (&out, savepoint) {
            (Ok(_), None) => self.store.commit().map_err(Error::from)?,
            (Err(_), None) => self.store.discard(),
            (Err(_), Some(sp)) => self.store.rollback_to(sp).map_err(Error::from)?,
            (Ok(_), Some(_)) => {}
        }
        out
    }

    /// Reads one of the app's own rows (sealed in the same store as the MLS state; inside
    /// [`Client::atomically`] it sees the step's writes).
    pub fn app_get(&self, key: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>> {
        Ok(self.store.get(&app_key(key))?)
    }

    /// Writes (`Some`) and deletes (`None`) app rows in one transaction (or as part of the
    /// enclosing [`Client::atomically`] step).
    pub fn app_write(
        &mut self,
        batch: impl IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<()> {
        self.transact(|c| {
            for (key, value) in batch {
                match value {
                    Some(v) => c.store.put(&app_key(&key), v)?,
                    None => c.store.delete(&app_key(&key))?,
                }
            }
            Ok(())
        })
    }

    /// Folds the store's write-ahead log into its file (every commit is already durable;
    /// this leaves one compact file when the app goes to the background).
    pub fn checkpoint(&self) -> Result<()> {
        Ok(self.store.checkpoint()?)
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

    // ---------------------------------------------------------------- own records

    fn group_ids(&self) -> Result<Vec<GroupId>> {
        let Some(raw) = self.store.get(GROUPS_KEY)? else {
            return Ok(Vec::new());
        };
        let mut r = Reader::new(&raw);
        let n = r.u32().map_err(corrupt)?;
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(GroupId::new(r.bytes(255).map_err(corrupt)?.to_vec())?);
        }
        r.finish().map_err(corrupt)?;
        Ok(out)
    }

    fn index_group(&self, group_id: &GroupId, present: bool) -> Result<()> {
        let mut ids = self.group_ids()?;
        let had = ids.contains(group_id);
        if had == present {
            return Ok(());
        }
        if present {
            ids.push(group_id.clone());
        } else {
            ids.retain(|g| g != group_id);
        }
        let mut w = Writer::new();
        w.u32(u32::try_from(ids.len()).unwrap_or(u32::MAX));
        for id in &ids {
            w.bytes(id.as_bytes());
        }
        Ok(self.store.put(GROUPS_KEY, w.finish())?)
    }

    fn get_pending(&self, group_id: &GroupId) -> Result<Option<PendingRecord>> {
        let Some(raw) = self.store.get(&record_key(group_id, b"pending"))? else {
            return Ok(None);
        };
        decode_pending(group_id, &raw).map(Some).map_err(corrupt)
    }

    fn put_pending(&self, record: &PendingRecord) -> Result<()> {
        Ok(self.store.put(
            &record_key(&record.commit.group_id, b"pending"),
            encode_pending(record),
        )?)
    }

    fn delete_pending(&self, group_id: &GroupId) -> Result<()> {
        Ok(self.store.delete(&record_key(group_id, b"pending"))?)
    }

    fn buffer_index(&self, group_id: &GroupId) -> Result<BufferIndex> {
        match self.store.get(&record_key(group_id, b"buffer"))? {
            None => Ok(BufferIndex::default()),
            Some(raw) => decode_buffer_index(&raw).map_err(corrupt),
        }
    }

    fn put_buffer_index(&self, group_id: &GroupId, index: &BufferIndex) -> Result<()> {
        Ok(self
            .store
            .put(&record_key(group_id, b"buffer"), encode_buffer_index(index))?)
    }

    fn clear_buffer(&self, group_id: &GroupId) -> Result<()> {
        let index = self.buffer_index(group_id)?;
        for e in &index.entries {
            self.store.delete(&buffer_item_key(group_id, e.seq))?;
        }
        Ok(self.store.delete(&record_key(group_id, b"buffer"))?)
    }
}

/// Splits a franked plaintext and checks its commitment against the authenticated data. A
/// plaintext without the franking prefix is an unfranked envelope; a franked one whose
/// commitment does not match is refused (the sender committed to something else).
fn unfrank(
    plaintext: Vec<u8>,
    aad: &[u8],
) -> (Vec<u8>, std::result::Result<Option<Franked>, EnvelopeError>) {
    let Some(rest) = plaintext.strip_prefix(FRANKED_PREFIX) else {
        return (plaintext, Ok(None));
    };
    let (Some(key), Some(claimed)) = (
        rest.get(..32).and_then(|k| <[u8; 32]>::try_from(k).ok()),
        aad.strip_prefix(crate::excerpt::FRANKING_AAD_PREFIX)
            .and_then(|c| <[u8; 32]>::try_from(c).ok()),
    ) else {
        return (
            Vec::new(),
            Err(EnvelopeError::Malformed(
                crate::codec::CodecError::Truncated,
            )),
        );
    };
    let envelope = rest[32..].to_vec();
    if crate::excerpt::commitment(&key, &envelope) != claimed {
        return (
            Vec::new(),
            Err(EnvelopeError::Malformed(crate::codec::CodecError::BadTag(
                0xF1,
            ))),
        );
    }
    (
        envelope.clone(),
        Ok(Some(Franked {
            plaintext: envelope,
            key,
            commitment: claimed,
        })),
    )
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

/// Version 2 adds the leaf binding; version 1 records (no binding) still load.
const RECORD_VERSION: u8 = 2;

fn encode_pending(record: &PendingRecord) -> Vec<u8> {
    let p = &record.commit;
    let mut w = Writer::new();
    w.u8(RECORD_VERSION)
        .u8(match p.kind {
            CommitKind::Member => 1,
            CommitKind::ExternalRejoin => 2,
        })
        .u64(p.epoch.0)
        .bytes(&p.commit)
        .opt_bytes(p.welcome.as_deref())
        .bytes(&p.group_info)
        .opt_bytes(p.leaf_binding.as_deref())
        .u32(u32::try_from(record.parked.len()).unwrap_or(u32::MAX));
    for (row, value) in &record.parked {
        w.raw(row).opt_bytes(value.as_ref().map(|v| v.as_slice()));
    }
    w.finish()
}

fn decode_pending(
    group_id: &GroupId,
    raw: &[u8],
) -> std::result::Result<PendingRecord, crate::codec::CodecError> {
    use crate::codec::CodecError;
    let mut r = Reader::new(raw);
    let version = r.u8()?;
    if version != 1 && version != RECORD_VERSION {
        return Err(CodecError::BadTag(version));
    }
    let kind = match r.u8()? {
        1 => CommitKind::Member,
        2 => CommitKind::ExternalRejoin,
        other => return Err(CodecError::BadTag(other)),
    };
    let epoch = Epoch(r.u64()?);
    let commit = r.bytes(MAX_RECORD_FIELD)?.to_vec();
    let welcome = r.opt_bytes(MAX_RECORD_FIELD)?.map(<[u8]>::to_vec);
    let group_info = r.bytes(MAX_RECORD_FIELD)?.to_vec();
    let leaf_binding = if version >= 2 {
        r.opt_bytes(MAX_RECORD_FIELD)?.map(<[u8]>::to_vec)
    } else {
        None
    };
    let n = r.u32()?;
    let mut parked = Staged::new();
    for _ in 0..n {
        let row: [u8; 32] = r.fixed()?;
        let value = r
            .opt_bytes(MAX_RECORD_FIELD)?
            .map(|v| zeroize::Zeroizing::new(v.to_vec()));
        parked.insert(row, value);
    }
    r.finish()?;
    Ok(PendingRecord {
        commit: PendingCommit {
            group_id: group_id.clone(),
            epoch,
            commit,
            welcome,
            group_info,
            kind,
            leaf_binding,
        },
        parked,
    })
}

#[derive(Debug, Default)]
struct BufferIndex {
    next_seq: u64,
    entries: Vec<BufferEntry>,
}

#[derive(Debug)]
struct BufferEntry {
    seq: u64,
    epoch: u64,
    received_at_ms: u64,
}

fn encode_buffer_index(index: &BufferIndex) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(RECORD_VERSION)
        .u64(index.next_seq)
        .u32(u32::try_from(index.entries.len()).unwrap_or(u32::MAX));
    for e in &index.entries {
        w.u64(e.seq).u64(e.epoch).u64(e.received_at_ms);
    }
    w.finish()
}

fn decode_buffer_index(raw: &[u8]) -> std::result::Result<BufferIndex, crate::codec::CodecError> {
    let mut r = Reader::new(raw);
    let version = r.u8()?;
    if version != RECORD_VERSION {
        return Err(crate::codec::CodecError::BadTag(version));
    }
    let next_seq = r.u64()?;
    let n = r.u32()?;
    let mut entries = Vec::new();
    for _ in 0..n {
        entries.push(BufferEntry {
            seq: r.u64()?,
            epoch: r.u64()?,
            received_at_ms: r.u64()?,
        });
    }
    r.finish()?;
    Ok(BufferIndex { next_seq, entries })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_client_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<super::Client>();
    }
}
