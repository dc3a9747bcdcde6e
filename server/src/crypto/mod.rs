//! Server-side cryptography: application keys (JWT signing, field encryption, blind index),
//! one-time codes and token hashing. Nothing here can open a conversation or an escalation:
//! the server never holds such keys.

pub mod codes;
pub mod fields;
pub mod keys;

pub use fields::FieldCipher;
pub use keys::Keys;

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

/// Unpadded base64url, the encoding of every binary value in the API.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url, padded or not. Non-zero trailing bits are accepted: the decoded bytes
/// are what is checked (as a key or signature), not the canonical form of their encoding.
pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    LENIENT.decode(s).ok()
}

/// SHA-256 hex of a high-entropy secret (refresh tokens, invite codes): enough to store
/// them without being able to present them, since they cannot be guessed.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Random bytes from the OS.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use rand::RngCore;
    let mut b = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}
