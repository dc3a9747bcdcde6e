//! Application keys: the JWT signing key (with its `kid`) and the verification keys of
//! earlier `kid`s, the field-encryption keys, the blind-index key and the VAPID key Web
//! Push wake-ups are signed with. Production supplies
//! them through configuration (Helm `existingSecret`); the embedded default creates
//! development keys once, persists them in the data directory and says so loudly.

use std::collections::HashMap;
use std::path::Path;

use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::{SigningKey, VerifyingKey};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{FieldCipher, b64, b64_decode, random_bytes};
use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("configuration key {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
    #[error("development key file {path}: {source}")]
    DevFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// All keys the server holds. None of them opens a conversation or an escalation.
pub struct Keys {
    pub jwt_signing_kid: String,
    /// PKCS#8 DER of the signing key, as jsonwebtoken wants it.
    pub jwt_signing_der: Zeroizing<Vec<u8>>,
    pub jwt_verifying: HashMap<String, VerifyingKey>,
    /// The same Ed25519 key, for franking stamps (domain-separated messages; published with
    /// the earlier keys at `/v1/franking-keys` so old stamps keep verifying).
    pub signing: SigningKey,
    pub fields: FieldCipher,
    /// HMAC key for blind indexes (login names), so lookups work on encrypted fields.
    pub index: Zeroizing<[u8; 32]>,
    /// The VAPID (RFC 8292) P-256 key of Web Push wake-ups; `None` when production keys
    /// are configured without one (Web Push is then off).
    pub vapid: Option<p256::SecretKey>,
    /// True when any key came from the development key file.
    pub development: bool,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("jwt_signing_kid", &self.jwt_signing_kid)
            .field(
                "jwt_verifying",
                &self.jwt_verifying.keys().collect::<Vec<_>>(),
            )
            .field("fields", &self.fields)
            .field("vapid", &self.vapid.is_some())
            .field("development", &self.development)
            .finish_non_exhaustive()
    }
}

/// The development key file: generated once, kept in the data directory.
#[derive(Serialize, Deserialize)]
struct DevKeyFile {
    jwt_kid: String,
    jwt_seed: String,
    field_kid: String,
    field_key: String,
    index_key: String,
    /// Added after the first release: a file without it derives one from `jwt_seed`.
    #[serde(default)]
    vapid_key: Option<String>,
}

fn decode32(key: &'static str, value: &str) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let bytes = Zeroizing::new(b64_decode(value.trim()).ok_or(KeyError::Invalid {
        key,
        reason: "expected base64url".into(),
    })?);
    let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| KeyError::Invalid {
        key,
        reason: "expected exactly 32 bytes".into(),
    })?;
    Ok(Zeroizing::new(arr))
}

/// Parses `kid:base64url,kid2:base64url`.
fn parse_kid_list(key: &'static str, value: &str) -> Result<Vec<(String, String)>, KeyError> {
    value
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|item| {
            let (kid, v) = item.trim().split_once(':').ok_or(KeyError::Invalid {
                key,
                reason: "expected kid:base64url[,kid:base64url…]".into(),
            })?;
            if kid.is_empty() || kid.len() > 64 {
                return Err(KeyError::Invalid {
                    key,
                    reason: "key ids are 1–64 characters".into(),
                });
            }
            Ok((kid.to_owned(), v.to_owned()))
        })
        .collect()
}

impl Keys {
    /// Loads keys from configuration, filling whatever is missing from the development key
    /// file (created on first use).
    pub fn load(config: &Config) -> Result<Keys, KeyError> {
        Keys::load_with(config, || load_or_create_dev_file(&config.data_dir))
    }

    /// Checks every configured key exactly as [`Keys::load`] would, without creating the
    /// development key file (`config check` must refuse what `serve` would refuse, and
    /// write nothing).
    pub fn check(config: &Config) -> Result<(), KeyError> {
        let path = config.data_dir.join("dev-keys.json");
        Keys::load_with(config, || {
            if path.exists() {
                load_or_create_dev_file(&config.data_dir)
            } else {
                Ok(fresh_dev_keys())
            }
        })
        .map(|_| ())
    }

    fn load_with(
        config: &Config,
        dev_keys: impl FnOnce() -> Result<DevKeyFile, KeyError>,
    ) -> Result<Keys, KeyError> {
        let needs_dev = config.jwt_signing_key.is_none()
            || config.field_keys.is_none()
            || config.index_key.is_none();
        let dev = if needs_dev { Some(dev_keys()?) } else { None };

        let (jwt_kid, jwt_seed) = match (&config.jwt_signing_key, &config.jwt_signing_kid, &dev) {
            (Some(k), Some(kid), _) => (
                kid.clone(),
                decode32("PEERBRIDGE_JWT_SIGNING_KEY", k.expose_secret())?,
            ),
            (_, _, Some(d)) => (d.jwt_kid.clone(), decode32("dev jwt_seed", &d.jwt_seed)?),
            _ => unreachable_keys()?,
        };
        let signing = SigningKey::from_bytes(&jwt_seed);
        let der = signing.to_pkcs8_der().map_err(|e| KeyError::Invalid {
            key: "PEERBRIDGE_JWT_SIGNING_KEY",
            reason: e.to_string(),
        })?;
        let mut jwt_verifying = HashMap::new();
        jwt_verifying.insert(jwt_kid.clone(), signing.verifying_key());
        if let Some(list) = &config.jwt_verify_keys {
            for (kid, v) in parse_kid_list("PEERBRIDGE_JWT_VERIFY_KEYS", list)? {
                let raw = decode32("PEERBRIDGE_JWT_VERIFY_KEYS", &v)?;
                let vk = VerifyingKey::from_bytes(&raw).map_err(|_| KeyError::Invalid {
                    key: "PEERBRIDGE_JWT_VERIFY_KEYS",
                    reason: format!("key {kid} is not an Ed25519 public key"),
                })?;
                jwt_verifying.entry(kid).or_insert(vk);
            }
        }

        let mut field_keys = HashMap::new();
        let active = match (&config.field_keys, &dev) {
            (Some(list), _) => {
                let items = parse_kid_list("PEERBRIDGE_FIELD_KEYS", list.expose_secret())?;
                if items.is_empty() {
                    return Err(KeyError::Invalid {
                        key: "PEERBRIDGE_FIELD_KEYS",
                        reason: "no keys given".into(),
                    });
                }
                let default_active = items[0].0.clone();
                for (kid, v) in items {
                    field_keys.insert(kid, decode32("PEERBRIDGE_FIELD_KEYS", &v)?);
                }
                config.field_key_active.clone().unwrap_or(default_active)
            }
            (None, Some(d)) => {
                field_keys.insert(
                    d.field_kid.clone(),
                    decode32("dev field_key", &d.field_key)?,
                );
                d.field_kid.clone()
            }
            _ => unreachable_keys()?,
        };
        let fields = FieldCipher::new(active, field_keys).ok_or(KeyError::Invalid {
            key: "PEERBRIDGE_FIELD_KEY_ACTIVE",
            reason: "names a key id that is not in PEERBRIDGE_FIELD_KEYS".into(),
        })?;

        let index = match (&config.index_key, &dev) {
            (Some(k), _) => decode32("PEERBRIDGE_INDEX_KEY", k.expose_secret())?,
            (None, Some(d)) => decode32("dev index_key", &d.index_key)?,
            _ => unreachable_keys()?,
        };

        let vapid = match (&config.vapid_private_key, &dev) {
            (Some(k), _) => Some(vapid_key(
                "PEERBRIDGE_VAPID_PRIVATE_KEY",
                k.expose_secret(),
            )?),
            (None, Some(d)) => Some(match &d.vapid_key {
                Some(k) => vapid_key("dev vapid_key", k)?,
                None => derived_dev_vapid(decode32("dev jwt_seed", &d.jwt_seed)?.as_ref()),
            }),
            (None, None) => None,
        };

        Ok(Keys {
            jwt_signing_kid: jwt_kid,
            jwt_signing_der: Zeroizing::new(der.as_bytes().to_vec()),
            jwt_verifying,
            signing,
            fields,
            index,
            vapid,
            development: dev.is_some(),
        })
    }

    /// Blind index of a normalized value: equal inputs give equal outputs under one key,
    /// and nothing about the input can be read from it without the key.
    pub fn blind_index(&self, purpose: &str, value: &str) -> String {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(self.index.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// A VAPID private key: base64url of a 32-byte P-256 scalar (non-zero, below the order).
fn vapid_key(key: &'static str, value: &str) -> Result<p256::SecretKey, KeyError> {
    let raw = decode32(key, value)?;
    p256::SecretKey::from_slice(raw.as_ref()).map_err(|_| KeyError::Invalid {
        key,
        reason: "not a valid P-256 private key".into(),
    })
}

/// A development VAPID key for a development key file written before VAPID existed:
/// derived from the file's JWT seed, so it is stable across restarts without rewriting
/// the file.
fn derived_dev_vapid(seed: &[u8]) -> p256::SecretKey {
    use sha2::{Digest, Sha256};
    let mut counter = 0u8;
    loop {
        let d = Sha256::new()
            .chain_update(b"peerbridge dev vapid key")
            .chain_update([counter])
            .chain_update(seed)
            .finalize();
        // A digest is a valid scalar except with probability about 2^-32.
        if let Ok(k) = p256::SecretKey::from_slice(&d) {
            return k;
        }
        counter = counter.wrapping_add(1);
    }
}

/// A fresh VAPID private key in the configuration format (for `peerbridge admin gen-keys`),
/// with its public key as browsers take it.
pub fn generate_vapid_b64() -> (String, String) {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let k = p256::SecretKey::random(&mut rand::rngs::OsRng);
    (
        b64(&k.to_bytes()),
        b64(k.public_key().to_encoded_point(false).as_bytes()),
    )
}

fn unreachable_keys<T>() -> Result<T, KeyError> {
    Err(KeyError::Invalid {
        key: "PEERBRIDGE_JWT_SIGNING_KEY",
        reason: "no key configured and no development key file".into(),
    })
}

fn load_or_create_dev_file(data_dir: &Path) -> Result<DevKeyFile, KeyError> {
    let path = data_dir.join("dev-keys.json");
    let err = |source| KeyError::DevFile {
        path: path.display().to_string(),
        source,
    };
    if path.exists() {
        let text = Zeroizing::new(std::fs::read_to_string(&path).map_err(err)?);
        return serde_json::from_str(&text).map_err(|e| {
            err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                e.to_string(),
            ))
        });
    }
    std::fs::create_dir_all(data_dir).map_err(err)?;
    let file = fresh_dev_keys();
    let text = Zeroizing::new(serde_json::to_string_pretty(&file).unwrap_or_default());
    write_private(&path, text.as_bytes()).map_err(err)?;
    Ok(file)
}

fn fresh_dev_keys() -> DevKeyFile {
    DevKeyFile {
        jwt_kid: format!("dev-{}", hex::encode(random_bytes::<4>())),
        jwt_seed: b64(&random_bytes::<32>()),
        field_kid: format!("dev-{}", hex::encode(random_bytes::<4>())),
        field_key: b64(&random_bytes::<32>()),
        index_key: b64(&random_bytes::<32>()),
        vapid_key: Some(generate_vapid_b64().0),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// Generates a fresh key in the configuration format (for `peerbridge admin gen-key`).
pub fn generate_key_b64() -> String {
    b64(&random_bytes::<32>())
}

/// The base64url public key of a base64url Ed25519 seed (to publish as a verify key).
pub fn public_of_seed(seed_b64: &str) -> Option<String> {
    let seed = decode32("seed", seed_b64).ok()?;
    Some(b64(SigningKey::from_bytes(&seed)
        .verifying_key()
        .as_bytes()))
}
