//! A device's long-term Ed25519 identity. The private key never leaves the device; the
//! server learns the public key at enrollment and afterwards only sees signatures.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer, SigningKey};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("a device secret key is exactly 32 bytes")]
    BadLength,
}

/// A device signing key.
pub struct DeviceIdentity {
    key: SigningKey,
}

impl std::fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceIdentity")
            .field("public_key", &self.public_key_b64())
            .finish_non_exhaustive()
    }
}

impl DeviceIdentity {
    /// A new random identity from the OS RNG.
    pub fn generate() -> Self {
        DeviceIdentity {
            key: SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    /// Restores an identity from its 32-byte secret (as kept in the on-device store).
    pub fn from_secret(secret: &[u8]) -> Result<Self, IdentityError> {
        let arr: [u8; 32] = secret.try_into().map_err(|_| IdentityError::BadLength)?;
        Ok(DeviceIdentity {
            key: SigningKey::from_bytes(&arr),
        })
    }

    /// The secret to persist (zeroized on drop).
    pub fn secret(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.key.to_bytes())
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The public key as the API carries it (unpadded base64url).
    pub fn public_key_b64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.public_key())
    }

    /// Signs arbitrary bytes (callers build domain-separated messages).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// Signs and encodes for the API.
    pub fn sign_b64(&self, message: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(self.sign(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};

    #[test]
    fn a_restored_identity_signs_verifiably_with_the_same_key() {
        let id = DeviceIdentity::generate();
        let again = DeviceIdentity::from_secret(id.secret().as_ref()).expect("32 bytes");
        assert_eq!(id.public_key(), again.public_key());
        let sig = Signature::from_bytes(&again.sign(b"hello"));
        let vk = VerifyingKey::from_bytes(&id.public_key()).expect("valid key");
        assert!(vk.verify(b"hello", &sig).is_ok());
        assert!(vk.verify(b"hellO", &sig).is_err());
        assert_eq!(
            DeviceIdentity::from_secret(&[0u8; 31]).err(),
            Some(IdentityError::BadLength)
        );
    }
}
