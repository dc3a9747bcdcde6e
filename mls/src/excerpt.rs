//! Verifiable escalation excerpts: message franking, HPKE sealing (RFC 9180) to HP devices'
//! escalation keys, and the HP side's verification.
//!
//! Franking: a sender picks a one-time 32-byte franking key per application message and
//! commits to the plaintext with `HMAC-SHA256(franking_key, plaintext)`; the commitment
//! travels in the MLS authenticated data (readable by the server), the key inside the
//! ciphertext. The server signs a stamp over (commitment, group, sender handle, sequence,
//! time). An excerpt carries, per message, the plaintext, its franking key and the stamp, so
//! an HP's client can check that these exact bytes were delivered by the server in that
//! conversation, from that sender, at that time, in that order — a peer cannot fabricate or
//! alter what a service user said, and the server reads nothing it is not handed.
//!
//! Sealing: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305, base mode, with
//! `info = "peerbridge/excerpt/v1"` and the group id as AAD.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use openmls_rust_crypto::RustCrypto;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::random::OpenMlsRand;
use openmls_traits::types::{HpkeAeadType, HpkeCiphertext, HpkeConfig, HpkeKdfType, HpkeKemType};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::envelope::Envelope;

/// The prefix of a franking commitment in an application message's authenticated data.
pub use peerbridge_openapi::signed::FRANKING_AAD_PREFIX;
const HPKE_INFO: &[u8] = b"peerbridge/excerpt/v1";
const HPKE: HpkeConfig = HpkeConfig(
    HpkeKemType::DhKem25519,
    HpkeKdfType::HkdfSha256,
    HpkeAeadType::ChaCha20Poly1305,
);
/// The largest excerpt accepted when opening (the server caps a sealed copy at 256 KiB).
pub const MAX_EXCERPT_BYTES: usize = 240 * 1024;

/// Why an excerpt cannot be opened or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExcerptError {
    #[error("the excerpt could not be sealed to this key")]
    Seal,
    #[error("the excerpt does not open with this device's escalation key")]
    Open,
    #[error("the excerpt is malformed")]
    Malformed,
    #[error("the excerpt is from another conversation")]
    WrongConversation,
    #[error("message {index} was changed: its text does not match the sender's commitment")]
    Altered { index: usize },
    #[error("message {index} does not carry a valid server stamp")]
    BadStamp { index: usize },
    #[error("message {index} is out of order")]
    OutOfOrder { index: usize },
    #[error("an excerpt holds 1 to 50 messages")]
    Size,
}

/// The one-time key and the commitment of a franked message.
pub struct Franking {
    pub key: Zeroizing<[u8; 32]>,
    pub commitment: [u8; 32],
}

/// Frank `plaintext` with a fresh key.
pub fn frank(plaintext: &[u8]) -> Franking {
    use rand::RngCore;
    let mut key = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(key.as_mut());
    let commitment = commitment(&key, plaintext);
    Franking { key, commitment }
}

/// `HMAC-SHA256(key, plaintext)`.
pub fn commitment(key: &[u8; 32], plaintext: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(plaintext);
    mac.finalize().into_bytes().into()
}

fn commitment_matches(key: &[u8; 32], plaintext: &[u8], expected: &[u8]) -> bool {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(plaintext);
    mac.verify_slice(expected).is_ok()
}

/// The authenticated data carrying a commitment.
pub fn franking_aad(commitment: &[u8; 32]) -> Vec<u8> {
    [FRANKING_AAD_PREFIX, commitment.as_slice()].concat()
}

/// The server's stamp on a message, as the delivery service returned it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub sender: String,
    pub seq: u64,
    pub received_at: i64,
    pub kid: String,
    pub signature: Vec<u8>,
}

/// One message of an excerpt: what was said, the key that opens its commitment, the stamp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExcerptMessage {
    /// The encoded [`Envelope`] exactly as it was sent.
    pub plaintext: Vec<u8>,
    pub franking_key: [u8; 32],
    pub commitment: [u8; 32],
    pub stamp: Stamp,
}

/// What a flag's raiser seals to the responders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Excerpt {
    pub version: u8,
    pub group_id: Vec<u8>,
    /// The raiser's note (may be empty).
    pub note: String,
    pub messages: Vec<ExcerptMessage>,
}

/// A message that passed verification.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedMessage {
    pub seq: u64,
    pub sender: String,
    pub received_at: i64,
    pub envelope: Envelope,
}

/// An HP device's escalation key pair (X25519). The app keeps the secret in the device's
/// sealed state; the public key is published signed by the device key.
pub struct EscalationKey {
    pub secret: Zeroizing<Vec<u8>>,
    pub public: Vec<u8>,
}

impl EscalationKey {
    pub fn generate() -> Result<EscalationKey, ExcerptError> {
        let crypto = RustCrypto::default();
        let ikm = crypto.random_vec(32).map_err(|_| ExcerptError::Seal)?;
        let pair = crypto
            .derive_hpke_keypair(HPKE, &ikm)
            .map_err(|_| ExcerptError::Seal)?;
        Ok(EscalationKey {
            secret: Zeroizing::new(pair.private.to_vec()),
            public: pair.public,
        })
    }
}

/// Seals `excerpt` to one recipient's escalation public key: `(enc, ciphertext)`.
pub fn seal(excerpt: &Excerpt, recipient: &[u8]) -> Result<(Vec<u8>, Vec<u8>), ExcerptError> {
    let plain = Zeroizing::new(serde_json::to_vec(excerpt).map_err(|_| ExcerptError::Malformed)?);
    if plain.len() > MAX_EXCERPT_BYTES {
        return Err(ExcerptError::Size);
    }
    let ct = RustCrypto::default()
        .hpke_seal(HPKE, recipient, HPKE_INFO, &excerpt.group_id, &plain)
        .map_err(|_| ExcerptError::Seal)?;
    Ok((
        ct.kem_output.as_slice().to_vec(),
        ct.ciphertext.as_slice().to_vec(),
    ))
}

/// Opens a sealed excerpt with this device's escalation secret. `group_id` is the flag's
/// conversation group (the AAD): an excerpt sealed for another conversation does not open.
pub fn open(
    secret: &[u8],
    enc: &[u8],
    ciphertext: &[u8],
    group_id: &[u8],
) -> Result<Excerpt, ExcerptError> {
    if ciphertext.len() > MAX_EXCERPT_BYTES + 64 {
        return Err(ExcerptError::Size);
    }
    let input = HpkeCiphertext {
        kem_output: enc.to_vec().into(),
        ciphertext: ciphertext.to_vec().into(),
    };
    let plain = Zeroizing::new(
        RustCrypto::default()
            .hpke_open(HPKE, &input, secret, HPKE_INFO, group_id)
            .map_err(|_| ExcerptError::Open)?,
    );
    serde_json::from_slice(&plain).map_err(|_| ExcerptError::Malformed)
}

/// Verifies every message of an opened excerpt against the flag's conversation and the
/// server's franking keys (`kid` → Ed25519 public key): the text matches the sender's
/// commitment, the stamp is the server's signature over (commitment, group, sender,
/// sequence, time), and the messages are in the conversation's order.
pub fn verify(
    excerpt: &Excerpt,
    group_id: &[u8],
    server_keys: &BTreeMap<String, [u8; 32]>,
) -> Result<Vec<VerifiedMessage>, ExcerptError> {
    if excerpt.group_id != group_id {
        return Err(ExcerptError::WrongConversation);
    }
    if excerpt.messages.is_empty() || excerpt.messages.len() > 50 {
        return Err(ExcerptError::Size);
    }
    let mut out = Vec::with_capacity(excerpt.messages.len());
    let mut last_seq = 0u64;
    for (index, m) in excerpt.messages.iter().enumerate() {
        if !commitment_matches(&m.franking_key, &m.plaintext, &m.commitment) {
            return Err(ExcerptError::Altered { index });
        }
        let statement = peerbridge_openapi::signed::franking_stamp_message(
            &m.commitment,
            group_id,
            &m.stamp.sender,
            m.stamp.seq,
            m.stamp.received_at,
        );
        let stamped = server_keys
            .get(&m.stamp.kid)
            .is_some_and(|k| crate::verify_signature(k, &statement, &m.stamp.signature));
        if !stamped {
            return Err(ExcerptError::BadStamp { index });
        }
        if index > 0 && m.stamp.seq <= last_seq {
            return Err(ExcerptError::OutOfOrder { index });
        }
        last_seq = m.stamp.seq;
        let envelope = Envelope::decode(&m.plaintext).map_err(|_| ExcerptError::Malformed)?;
        out.push(VerifiedMessage {
            seq: m.stamp.seq,
            sender: m.stamp.sender.clone(),
            received_at: m.stamp.received_at,
            envelope,
        });
    }
    Ok(out)
}
