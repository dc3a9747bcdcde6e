//! The delivery service's view of MLS (RFC 9420/9750): it parses public framing, validates
//! key packages, and keeps each group's *public* state (openmls `PublicGroup`) to verify every
//! commit — sender is a member, signatures hold, the epoch is current — and to learn which
//! leaves a commit adds or removes. It never holds a key that decrypts anything.

use std::collections::HashMap;

use openmls::prelude::*;
use openmls_memory_storage::MemoryStorage;
use openmls_rust_crypto::RustCrypto;
use tls_codec::Deserialize as TlsDeserialize;

/// The only ciphersuite Peerbridge speaks.
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

#[derive(Debug, thiserror::Error)]
pub enum MlsError {
    #[error("not a valid MLS message: {0}")]
    Malformed(String),
    #[error("wrong MLS message type: expected {0}")]
    WrongType(&'static str),
    #[error("unsupported ciphersuite")]
    Ciphersuite,
    #[error("key package invalid: {0}")]
    KeyPackage(String),
    #[error("key package lifetime does not cover now")]
    Lifetime,
    #[error("group info invalid: {0}")]
    GroupInfo(String),
    #[error("commit rejected: {0}")]
    Commit(String),
    #[error("internal MLS state error: {0}")]
    State(String),
}

fn message(bytes: &[u8]) -> Result<MlsMessageBodyIn, MlsError> {
    let m = MlsMessageIn::tls_deserialize_exact(bytes)
        .map_err(|e| MlsError::Malformed(e.to_string()))?;
    Ok(m.extract())
}

/// The device key a leaf credential binds to, if the device's signature over the leaf
/// signature key verifies (see `peerbridge_openapi::signed::leaf_binding_message`).
pub fn credential_device(credential: &[u8], leaf_signature_key: &[u8]) -> Option<[u8; 32]> {
    let (device, sig) = credential.split_at_checked(32)?;
    let device: [u8; 32] = device.try_into().ok()?;
    binding_verifies(&device, leaf_signature_key, sig).then_some(device)
}

/// A pseudonymous credential (`"PBP1" || 16 random bytes`) names nobody; the leaf's owner is
/// known to the server only through a separate leaf binding.
use peerbridge_openapi::signed::PSEUDONYM_PREFIX;

/// What a leaf's credential says about its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeafCredential {
    /// A device credential that verifies: the device's public key.
    Device([u8; 32]),
    /// A well-formed pseudonym (owner known only from a leaf binding).
    Pseudonym,
    /// Anything else: such a leaf is refused.
    Invalid,
}

pub fn leaf_credential(credential: &[u8], leaf_signature_key: &[u8]) -> LeafCredential {
    if credential.len() == PSEUDONYM_PREFIX.len() + 16 && credential.starts_with(PSEUDONYM_PREFIX) {
        return LeafCredential::Pseudonym;
    }
    match credential_device(credential, leaf_signature_key) {
        Some(d) => LeafCredential::Device(d),
        None => LeafCredential::Invalid,
    }
}

/// Whether `binding` is `device_key`'s signature over the leaf binding message of
/// `leaf_signature_key`.
pub fn binding_verifies(device_key: &[u8], leaf_signature_key: &[u8], binding: &[u8]) -> bool {
    crate::crypto::ed25519_verifies(
        device_key,
        &peerbridge_openapi::signed::leaf_binding_message(leaf_signature_key),
        binding,
    )
}

/// What the server keeps of a validated key package.
#[derive(Debug, Clone)]
pub struct ParsedKeyPackage {
    pub kp_ref: Vec<u8>,
    pub credential: LeafCredential,
    pub signature_key: Vec<u8>,
    pub last_resort: bool,
    pub not_after: u64,
}

/// Validates a key package (signatures, lifetime against `now_unix`, ciphersuite).
pub fn parse_key_package(bytes: &[u8], now_unix: u64) -> Result<ParsedKeyPackage, MlsError> {
    let kp_in = match message(bytes) {
        Ok(MlsMessageBodyIn::KeyPackage(kp)) => kp,
        Ok(_) => return Err(MlsError::WrongType("KeyPackage")),
        // A bare KeyPackage (not wrapped in an MlsMessage) is accepted too.
        Err(_) => KeyPackageIn::tls_deserialize_exact(bytes)
            .map_err(|e| MlsError::Malformed(e.to_string()))?,
    };
    let crypto = RustCrypto::default();
    let kp = kp_in
        .validate(&crypto, ProtocolVersion::Mls10)
        .map_err(|e| match e {
            KeyPackageVerifyError::LifetimeError(_) | KeyPackageVerifyError::MissingLifetime => {
                MlsError::Lifetime
            }
            other => MlsError::KeyPackage(other.to_string()),
        })?;
    if kp.ciphersuite() != CIPHERSUITE {
        return Err(MlsError::Ciphersuite);
    }
    let lt = kp.life_time();
    if lt.not_after() <= now_unix || lt.not_before() > now_unix + 300 {
        return Err(MlsError::Lifetime);
    }
    let kp_ref = kp
        .hash_ref(&crypto)
        .map_err(|e| MlsError::State(e.to_string()))?;
    let leaf = kp.leaf_node();
    let credential = leaf_credential(
        leaf.credential().serialized_content(),
        leaf.signature_key().as_slice(),
    );
    if credential == LeafCredential::Invalid {
        return Err(MlsError::KeyPackage(
            "the leaf credential is neither signed by a device nor a pseudonym".into(),
        ));
    }
    Ok(ParsedKeyPackage {
        kp_ref: kp_ref.as_slice().to_vec(),
        credential,
        signature_key: leaf.signature_key().as_slice().to_vec(),
        last_resort: kp.last_resort(),
        not_after: lt.not_after(),
    })
}

/// A leaf of the group's tree: its index, its credential and its signature key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    pub index: u32,
    pub credential: LeafCredential,
    pub signature_key: Vec<u8>,
}

/// The public state of a group after creation or a commit.
#[derive(Debug)]
pub struct GroupState {
    pub group_id: Vec<u8>,
    pub epoch: u64,
    pub leaves: Vec<Leaf>,
    /// Serialized public state, to store and reload.
    pub state: Vec<u8>,
}

fn serialize_storage(storage: &MemoryStorage) -> Result<Vec<u8>, MlsError> {
    let values = storage
        .values
        .read()
        .map_err(|_| MlsError::State("storage lock poisoned".into()))?;
    let mut entries: Vec<(&Vec<u8>, &Vec<u8>)> = values.iter().collect();
    entries.sort();
    let mut out = Vec::new();
    for (k, v) in entries {
        out.extend_from_slice(&(k.len() as u32).to_be_bytes());
        out.extend_from_slice(k);
        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
        out.extend_from_slice(v);
    }
    Ok(out)
}

fn deserialize_storage(mut bytes: &[u8]) -> Result<MemoryStorage, MlsError> {
    let bad = || MlsError::State("stored public group state is corrupt".into());
    let mut map = HashMap::new();
    let take = |bytes: &mut &[u8]| -> Result<Vec<u8>, MlsError> {
        if bytes.len() < 4 {
            return Err(bad());
        }
        let n = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        if bytes.len() < 4 + n {
            return Err(bad());
        }
        let v = bytes[4..4 + n].to_vec();
        *bytes = &bytes[4 + n..];
        Ok(v)
    };
    while !bytes.is_empty() {
        let k = take(&mut bytes)?;
        let v = take(&mut bytes)?;
        map.insert(k, v);
    }
    let storage = MemoryStorage::default();
    *storage
        .values
        .write()
        .map_err(|_| MlsError::State("storage lock poisoned".into()))? = map;
    Ok(storage)
}

fn leaves_of(group: &PublicGroup) -> Vec<Leaf> {
    group
        .members()
        .map(|m| Leaf {
            index: m.index.u32(),
            credential: leaf_credential(m.credential.serialized_content(), &m.signature_key),
            signature_key: m.signature_key.clone(),
        })
        .collect()
}

fn state_of(group: &PublicGroup, storage: &MemoryStorage) -> Result<GroupState, MlsError> {
    Ok(GroupState {
        group_id: group.group_id().as_slice().to_vec(),
        epoch: group.group_context().epoch().as_u64(),
        leaves: leaves_of(group),
        state: serialize_storage(storage)?,
    })
}

/// Starts tracking a group from its GroupInfo, which must carry the ratchet tree extension.
pub fn group_from_info(group_info: &[u8]) -> Result<GroupState, MlsError> {
    let vgi = match message(group_info)? {
        MlsMessageBodyIn::GroupInfo(gi) => gi,
        _ => return Err(MlsError::WrongType("GroupInfo")),
    };
    if vgi.ciphersuite() != CIPHERSUITE {
        return Err(MlsError::Ciphersuite);
    }
    let tree = vgi
        .extensions()
        .ratchet_tree()
        .map(|rt| rt.ratchet_tree().clone())
        .ok_or_else(|| MlsError::GroupInfo("the ratchet tree extension is missing".into()))?;
    let crypto = RustCrypto::default();
    let storage = MemoryStorage::default();
    let (group, _) = PublicGroup::from_external(&crypto, &storage, tree, vgi, ProposalStore::new())
        .map_err(|e| MlsError::GroupInfo(e.to_string()))?;
    state_of(&group, &storage)
}

/// The epoch and group a GroupInfo describes (without tracking it).
pub fn group_info_epoch(group_info: &[u8]) -> Result<(Vec<u8>, u64), MlsError> {
    match message(group_info)? {
        MlsMessageBodyIn::GroupInfo(gi) => {
            Ok((gi.group_id().as_slice().to_vec(), gi.epoch().as_u64()))
        }
        _ => Err(MlsError::WrongType("GroupInfo")),
    }
}

/// What an accepted commit changes.
#[derive(Debug)]
pub struct CommitOutcome {
    pub next: GroupState,
    /// The committer's leaf, or `None` for an external commit (a rejoin).
    pub sender: Option<u32>,
    /// KeyPackageRefs of the members it adds.
    pub added_refs: Vec<Vec<u8>>,
    pub removed: Vec<u32>,
}

/// Verifies a commit (a PublicMessage) against the stored public state and applies it.
pub fn process_commit(
    state: &[u8],
    group_id: &[u8],
    commit: &[u8],
) -> Result<CommitOutcome, MlsError> {
    let pm = match message(commit)? {
        MlsMessageBodyIn::PublicMessage(pm) => pm,
        MlsMessageBodyIn::PrivateMessage(_) => {
            return Err(MlsError::Commit(
                "commits travel as public messages so the server can verify them".into(),
            ));
        }
        _ => return Err(MlsError::WrongType("PublicMessage")),
    };
    let storage = deserialize_storage(state)?;
    let gid = GroupId::from_slice(group_id);
    let mut group = PublicGroup::load(&storage, &gid)
        .map_err(|e| MlsError::State(format!("{e:?}")))?
        .ok_or_else(|| MlsError::State("no public state for the group".into()))?;
    let crypto = RustCrypto::default();
    let processed = group
        .process_message(&crypto, ProtocolMessage::from(pm))
        .map_err(|e| MlsError::Commit(e.to_string()))?;
    let sender = match processed.sender() {
        Sender::Member(i) => Some(i.u32()),
        Sender::NewMemberCommit => None,
        _ => return Err(MlsError::Commit("only members commit".into())),
    };
    let staged = match processed.into_content() {
        ProcessedMessageContent::StagedCommitMessage(s) => s,
        _ => return Err(MlsError::WrongType("a Commit")),
    };
    let added_refs = staged
        .add_proposals()
        .map(|p| {
            p.add_proposal()
                .key_package()
                .hash_ref(&crypto)
                .map(|r| r.as_slice().to_vec())
                .map_err(|e| MlsError::State(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let removed = staged
        .remove_proposals()
        .map(|p| p.remove_proposal().removed().u32())
        .collect();
    group
        .merge_commit(&storage, *staged)
        .map_err(|e| MlsError::State(format!("{e:?}")))?;
    Ok(CommitOutcome {
        next: state_of(&group, &storage)?,
        sender,
        added_refs,
        removed,
    })
}

/// The leaves of a stored public group state.
pub fn leaves_of_state(state: &[u8], group_id: &[u8]) -> Result<Vec<Leaf>, MlsError> {
    let storage = deserialize_storage(state)?;
    let group = PublicGroup::load(&storage, &GroupId::from_slice(group_id))
        .map_err(|e| MlsError::State(format!("{e:?}")))?
        .ok_or_else(|| MlsError::State("no public state for the group".into()))?;
    Ok(leaves_of(&group))
}

/// A franking commitment in an application message's authenticated data:
/// `"PBF1" || HMAC-SHA256(franking key, plaintext)`.
use peerbridge_openapi::signed::FRANKING_AAD_PREFIX as FRANKING_PREFIX;

/// What the server reads of an application message: group id, epoch, and the franking
/// commitment if the sender made one.
pub type PrivateFraming = (Vec<u8>, u64, Option<[u8; 32]>);

/// The public framing of an application message (a PrivateMessage).
pub fn private_message_framing(bytes: &[u8]) -> Result<PrivateFraming, MlsError> {
    match message(bytes)? {
        MlsMessageBodyIn::PrivateMessage(pm) => {
            let commitment = pm
                .aad()
                .strip_prefix(FRANKING_PREFIX)
                .and_then(|c| <[u8; 32]>::try_from(c).ok());
            let pm: ProtocolMessage = pm.into();
            Ok((
                pm.group_id().as_slice().to_vec(),
                pm.epoch().as_u64(),
                commitment,
            ))
        }
        _ => Err(MlsError::WrongType("PrivateMessage")),
    }
}

/// The KeyPackageRefs a Welcome is addressed to.
pub fn welcome_recipients(bytes: &[u8]) -> Result<Vec<Vec<u8>>, MlsError> {
    match message(bytes)? {
        MlsMessageBodyIn::Welcome(w) => Ok(w
            .secrets()
            .iter()
            .map(|s| s.new_member().as_slice().to_vec())
            .collect()),
        _ => Err(MlsError::WrongType("Welcome")),
    }
}

/// Group id and epoch of a commit (a PublicMessage), read before verification so a stale
/// commit is answered with the current epoch rather than a verification error.
pub fn commit_framing(bytes: &[u8]) -> Result<(Vec<u8>, u64), MlsError> {
    match message(bytes)? {
        MlsMessageBodyIn::PublicMessage(pm) => {
            Ok((pm.group_id().as_slice().to_vec(), pm.epoch().as_u64()))
        }
        MlsMessageBodyIn::PrivateMessage(_) => Err(MlsError::Commit(
            "commits travel as public messages so the server can verify them".into(),
        )),
        _ => Err(MlsError::WrongType("PublicMessage")),
    }
}
