//! Server-side cryptography: application keys (JWT signing, field encryption, blind index),
//! one-time codes and token hashing. Nothing here can open a conversation or an escalation:
//! the server never holds such keys.

pub mod codes;
pub mod fields;
pub mod keys;

pub use fields::FieldCipher;
pub use keys::Keys;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Unpadded base64url, the encoding of every binary value in the API.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes unpadded (or padded) base64url.
pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
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
