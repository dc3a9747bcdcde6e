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

/// Decodes unpadded base64url, as the API document states for every binary value (a padded
/// value is refused, not guessed at). Non-zero trailing bits are accepted: the decoded
/// bytes are what is checked (as a key or signature), not the canonical form of their
/// encoding.
pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    const UNPADDED: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::RequireNone),
    );
    UNPADDED.decode(s).ok()
}

/// SHA-256 hex of a high-entropy secret (refresh tokens, invite codes): enough to store
/// them without being able to present them, since they cannot be guessed.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `signature` is a valid (strict) Ed25519 signature by `public_key` over
/// `message`; false for any malformed key or signature.
pub fn ed25519_verifies(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    use ed25519_dalek::{Signature, VerifyingKey};
    let Ok(key) = <[u8; 32]>::try_from(public_key) else {
        return false;
    };
    let (Ok(key), Ok(sig)) = (
        VerifyingKey::from_bytes(&key),
        Signature::from_slice(signature),
    ) else {
        return false;
    };
    key.verify_strict(message, &sig).is_ok()
}

/// A serde unit enum's wire name (`"suicide_risk"`), as stored in text columns.
pub fn enum_str<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The enum a stored wire name names, if any.
pub fn enum_parse<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

/// The enum a stored column holds. A value no variant names is a corrupt row: an internal
/// error naming the column (never the value), not a silent guess of a variant.
pub fn stored<T: serde::de::DeserializeOwned>(
    column: &'static str,
    s: &str,
) -> crate::error::ApiResult<T> {
    enum_parse(s).ok_or_else(|| {
        crate::error::ApiError::internal(anyhow::anyhow!(
            "corrupt row: {column} holds a value no variant names"
        ))
    })
}

/// Random bytes from the OS.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use rand::RngCore;
    let mut b = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

#[cfg(test)]
mod b64_tests {
    use super::*;

    #[test]
    fn base64_values_are_unpadded_base64url() {
        let key = [7u8; 32];
        let unpadded = b64(&key);
        assert_eq!(b64_decode(&unpadded), Some(key.to_vec()));
        assert_eq!(b64_decode(&format!("{unpadded}=")), None, "padding refused");
        assert_eq!(b64_decode("AA=="), None);
        assert_eq!(b64_decode("AA"), Some(vec![0]));
        assert_eq!(b64_decode("a+b/"), None, "standard alphabet refused");
    }
}
