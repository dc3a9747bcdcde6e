//! Encryption at rest of identifying fields (names, phone numbers, TOTP secrets) with
//! XChaCha20-Poly1305 under an application key that carries a key id, so keys can rotate:
//! new writes use the active key, old rows stay readable by their key id until re-encrypted.
//!
//! Stored format: `0x01 | kid_len | kid | nonce[24] | ciphertext+tag`. The associated data
//! binds a value to its table, column and row, so a ciphertext moved to another row fails.

use std::collections::HashMap;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

const VERSION: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum FieldError {
    #[error("encrypted field has an unknown format")]
    Format,
    #[error("encrypted field uses key id {0}, which is not configured")]
    UnknownKey(String),
    #[error("encrypted field failed authentication (wrong key, row or tampering)")]
    Decrypt,
}

/// The set of field keys and which one encrypts new values.
pub struct FieldCipher {
    active: String,
    keys: HashMap<String, Zeroizing<[u8; 32]>>,
}

impl std::fmt::Debug for FieldCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FieldCipher")
            .field("active", &self.active)
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl FieldCipher {
    /// `keys` must contain `active`.
    pub fn new(active: String, keys: HashMap<String, Zeroizing<[u8; 32]>>) -> Option<Self> {
        keys.contains_key(&active)
            .then_some(FieldCipher { active, keys })
    }

    pub fn active_kid(&self) -> &str {
        &self.active
    }

    /// Encrypts `plain` for the given place (`"users.display_name"`, row id).
    pub fn seal(&self, place: &str, row: &str, plain: &str) -> Vec<u8> {
        let key = &self.keys[&self.active];
        let cipher = XChaCha20Poly1305::new(key.as_ref().into());
        let nonce_bytes = super::random_bytes::<24>();
        let aad = format!("{place}:{row}");
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce_bytes),
                Payload {
                    msg: plain.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .unwrap_or_default();
        let kid = self.active.as_bytes();
        let mut out = Vec::with_capacity(2 + kid.len() + 24 + ct.len());
        out.push(VERSION);
        out.push(kid.len() as u8);
        out.extend_from_slice(kid);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ct);
        out
    }

    /// Decrypts a value sealed for the same place and row.
    pub fn open(&self, place: &str, row: &str, sealed: &[u8]) -> Result<String, FieldError> {
        let (&version, rest) = sealed.split_first().ok_or(FieldError::Format)?;
        if version != VERSION {
            return Err(FieldError::Format);
        }
        let (&kid_len, rest) = rest.split_first().ok_or(FieldError::Format)?;
        let kid_len = kid_len as usize;
        if rest.len() < kid_len + 24 + 16 {
            return Err(FieldError::Format);
        }
        let kid = std::str::from_utf8(&rest[..kid_len]).map_err(|_| FieldError::Format)?;
        let key = self
            .keys
            .get(kid)
            .ok_or_else(|| FieldError::UnknownKey(kid.to_owned()))?;
        let nonce = &rest[kid_len..kid_len + 24];
        let ct = &rest[kid_len + 24..];
        let aad = format!("{place}:{row}");
        let cipher = XChaCha20Poly1305::new(key.as_ref().into());
        let plain = cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| FieldError::Decrypt)?;
        String::from_utf8(plain).map_err(|_| FieldError::Format)
    }

    /// Whether a sealed value was written under a key other than the active one.
    pub fn is_stale(&self, sealed: &[u8]) -> bool {
        Self::kid_of(sealed).is_some_and(|kid| kid != self.active)
    }

    /// The key id a sealed value was written with (for re-encryption after rotation).
    pub fn kid_of(sealed: &[u8]) -> Option<&str> {
        let kid_len = *sealed.get(1)? as usize;
        std::str::from_utf8(sealed.get(2..2 + kid_len)?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher(active: &str, kids: &[&str]) -> FieldCipher {
        let keys = kids
            .iter()
            .map(|k| {
                (
                    k.to_string(),
                    Zeroizing::new(crate::crypto::random_bytes::<32>()),
                )
            })
            .collect();
        FieldCipher::new(active.into(), keys).expect("active present")
    }

    #[test]
    fn a_sealed_field_opens_only_in_its_own_row() {
        let c = cipher("k1", &["k1"]);
        let sealed = c.seal("users.display_name", "row-1", "Kari Nordmann");
        assert!(!sealed.windows(4).any(|w| w == b"Kari"));
        assert_eq!(
            c.open("users.display_name", "row-1", &sealed)
                .expect("opens"),
            "Kari Nordmann"
        );
        assert!(matches!(
            c.open("users.display_name", "row-2", &sealed),
            Err(FieldError::Decrypt)
        ));
        assert!(matches!(
            c.open("users.phone", "row-1", &sealed),
            Err(FieldError::Decrypt)
        ));
    }

    #[test]
    fn rotation_keeps_old_values_readable_and_writes_with_the_new_key() {
        let mut old = cipher("k1", &["k1"]);
        let sealed_old = old.seal("t.c", "r", "+47 900 00 000");
        let new_key = Zeroizing::new(crate::crypto::random_bytes::<32>());
        old.keys.insert("k2".into(), new_key);
        old.active = "k2".into();
        assert_eq!(
            old.open("t.c", "r", &sealed_old).expect("old readable"),
            "+47 900 00 000"
        );
        let sealed_new = old.seal("t.c", "r", "x");
        assert_eq!(FieldCipher::kid_of(&sealed_new), Some("k2"));
        assert_eq!(FieldCipher::kid_of(&sealed_old), Some("k1"));
    }

    #[test]
    fn truncated_or_foreign_bytes_are_errors_not_panics() {
        let c = cipher("k1", &["k1"]);
        for bad in [&b""[..], &[1u8][..], &[1, 200, 1, 2][..], &[9, 0][..]] {
            assert!(c.open("t", "r", bad).is_err());
        }
        let other = cipher("zz", &["zz"]);
        let sealed = other.seal("t", "r", "v");
        assert!(matches!(
            c.open("t", "r", &sealed),
            Err(FieldError::UnknownKey(_))
        ));
    }
}
