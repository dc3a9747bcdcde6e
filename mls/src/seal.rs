//! Row sealing for on-device stores: XChaCha20-Poly1305 under a store key, each value bound
//! to its row (and to the store's purpose) through the associated data, so a value copied to
//! another row or another store does not open. Format: `0x01 | nonce[24] | ciphertext+tag`.
//! Used by the client core's MLS store and by the SDK's state store.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use zeroize::Zeroizing;

const SEAL_FORMAT: u8 = 1;
const NONCE_LEN: usize = 24;

/// Why a value could not be sealed or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("a sealed value is malformed")]
    Malformed,
    #[error("a sealed value failed authentication (wrong key, row or tampering)")]
    Authentication,
    #[error("sealing failed")]
    Seal,
}

/// Seals and opens the values of one store.
pub struct RowSealer {
    key: Zeroizing<[u8; 32]>,
    /// Names the store, e.g. `b"peerbridge/store/v1/row\n"`.
    aad_prefix: &'static [u8],
}

impl RowSealer {
    pub fn new(key: Zeroizing<[u8; 32]>, aad_prefix: &'static [u8]) -> Self {
        RowSealer { key, aad_prefix }
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.key.as_ref().into())
    }

    pub fn seal(&self, row: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = [self.aad_prefix, row].concat();
        let ct = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Seal)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(SEAL_FORMAT);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn open(&self, row: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != SEAL_FORMAT {
            return Err(SealError::Malformed);
        }
        let aad = [self.aad_prefix, row].concat();
        self.cipher()
            .decrypt(
                XNonce::from_slice(&sealed[1..1 + NONCE_LEN]),
                Payload {
                    msg: &sealed[1 + NONCE_LEN..],
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError::Authentication)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_opens_only_in_its_row_and_store() {
        let a = RowSealer::new(Zeroizing::new([1; 32]), b"store-a\n");
        let b = RowSealer::new(Zeroizing::new([1; 32]), b"store-b\n");
        let sealed = a.seal(b"row-1", b"secret").expect("seal");
        assert_eq!(
            a.open(b"row-1", &sealed).expect("open").as_slice(),
            b"secret"
        );
        assert_eq!(a.open(b"row-2", &sealed), Err(SealError::Authentication));
        assert_eq!(b.open(b"row-1", &sealed), Err(SealError::Authentication));
        assert_eq!(a.open(b"row-1", &sealed[..10]), Err(SealError::Malformed));
    }
}
