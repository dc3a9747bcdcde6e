//! Standard Web Push for browser subscriptions: the message encryption of RFC 8291
//! (`aes128gcm`, RFC 8188, one record) and the VAPID authorization of RFC 8292 (an ES256
//! JWT for the push service's origin). Pure functions over RustCrypto primitives; `push`
//! decides when to send and what (only a content-free wake-up ever goes through here).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use p256::ecdsa::signature::Signer;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use sha2::Sha256;
use zeroize::Zeroizing;

// Not `crate::crypto`: configuration reads `push`, and `crypto` reads configuration.
fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes a stored key (written canonically by `b64`).
pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

/// Length of an uncompressed P-256 point (`0x04 ‖ x ‖ y`), the subscription's `p256dh`.
pub const P256DH_LEN: usize = 65;
/// Length of the subscription's `auth` secret.
pub const AUTH_LEN: usize = 16;
/// The record size announced in the header; one record holds every wake-up.
const RECORD_SIZE: u32 = 4096;
/// How long a VAPID token is valid (RFC 8292 allows at most 24 hours).
const VAPID_TTL_SECS: i64 = 12 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum WebPushError {
    #[error("the subscription's p256dh is not an uncompressed P-256 point")]
    BadPublicKey,
    #[error("the subscription's auth secret is not {AUTH_LEN} bytes")]
    BadAuth,
    #[error("the payload does not fit one record")]
    TooLarge,
    #[error("encryption failed")]
    Encrypt,
    #[error("the endpoint has no origin")]
    NoOrigin,
}

/// A browser's subscription keys, checked: the user agent's ECDH public key and the auth
/// secret it shares with the application server.
#[derive(Clone)]
pub struct SubscriptionKeys {
    ua_public: PublicKey,
    auth: [u8; AUTH_LEN],
}

impl SubscriptionKeys {
    /// Parses raw key bytes: `p256dh` must be a 65-byte uncompressed point on the curve,
    /// `auth` exactly 16 bytes.
    pub fn new(p256dh: &[u8], auth: &[u8]) -> Result<SubscriptionKeys, WebPushError> {
        if p256dh.len() != P256DH_LEN || p256dh[0] != 0x04 {
            return Err(WebPushError::BadPublicKey);
        }
        let ua_public =
            PublicKey::from_sec1_bytes(p256dh).map_err(|_| WebPushError::BadPublicKey)?;
        let auth: [u8; AUTH_LEN] = auth.try_into().map_err(|_| WebPushError::BadAuth)?;
        Ok(SubscriptionKeys { ua_public, auth })
    }
}

/// Encrypts `plaintext` for the subscription with a fresh salt and ephemeral key.
pub fn encrypt(keys: &SubscriptionKeys, plaintext: &[u8]) -> Result<Vec<u8>, WebPushError> {
    let mut salt = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut salt);
    let ephemeral = SecretKey::random(&mut rand::rngs::OsRng);
    encrypt_with(keys, plaintext, &salt, &ephemeral)
}

/// RFC 8291 §3–4 with the salt and the application server's ephemeral key given (the RFC's
/// Appendix A fixes both).
pub fn encrypt_with(
    keys: &SubscriptionKeys,
    plaintext: &[u8],
    salt: &[u8; 16],
    ephemeral: &SecretKey,
) -> Result<Vec<u8>, WebPushError> {
    // One record: the plaintext, the last-record delimiter 0x02 and the 16-byte tag.
    if plaintext.len() + 1 + 16 > RECORD_SIZE as usize {
        return Err(WebPushError::TooLarge);
    }
    let as_public = ephemeral.public_key().to_encoded_point(false);
    let ua_public = keys.ua_public.to_encoded_point(false);
    let shared =
        p256::ecdh::diffie_hellman(ephemeral.to_nonzero_scalar(), keys.ua_public.as_affine());

    // IKM = HKDF(auth, ecdh_secret, "WebPush: info" ‖ 0 ‖ ua_public ‖ as_public, 32)
    let mut key_info = Vec::with_capacity(14 + 2 * P256DH_LEN);
    key_info.extend_from_slice(b"WebPush: info\0");
    key_info.extend_from_slice(ua_public.as_bytes());
    key_info.extend_from_slice(as_public.as_bytes());
    let mut ikm = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(&keys.auth[..]), shared.raw_secret_bytes())
        .expand(&key_info, ikm.as_mut())
        .map_err(|_| WebPushError::Encrypt)?;

    // RFC 8188: CEK and nonce from the salt.
    let prk = Hkdf::<Sha256>::new(Some(&salt[..]), ikm.as_ref());
    let mut cek = Zeroizing::new([0u8; 16]);
    let mut nonce = [0u8; 12];
    prk.expand(b"Content-Encoding: aes128gcm\0", cek.as_mut())
        .map_err(|_| WebPushError::Encrypt)?;
    prk.expand(b"Content-Encoding: nonce\0", &mut nonce)
        .map_err(|_| WebPushError::Encrypt)?;

    let mut record = Zeroizing::new(Vec::with_capacity(plaintext.len() + 1));
    record.extend_from_slice(plaintext);
    record.push(0x02);
    let cipher = Aes128Gcm::new_from_slice(cek.as_ref()).map_err(|_| WebPushError::Encrypt)?;
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &record,
                aad: b"",
            },
        )
        .map_err(|_| WebPushError::Encrypt)?;

    // Header: salt ‖ rs ‖ idlen ‖ keyid (the ephemeral public key), then the record.
    let mut out = Vec::with_capacity(16 + 4 + 1 + P256DH_LEN + sealed.len());
    out.extend_from_slice(salt);
    out.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    out.push(P256DH_LEN as u8);
    out.extend_from_slice(as_public.as_bytes());
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// The application server's VAPID identity: a P-256 key and the operator contact.
pub struct Vapid {
    key: p256::ecdsa::SigningKey,
    public_b64: String,
    subject: String,
}

impl std::fmt::Debug for Vapid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vapid")
            .field("public_key", &self.public_b64)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl Vapid {
    pub fn new(secret: &SecretKey, subject: &str) -> Vapid {
        Vapid {
            key: p256::ecdsa::SigningKey::from(secret),
            public_b64: b64(secret.public_key().to_encoded_point(false).as_bytes()),
            subject: subject.to_owned(),
        }
    }

    /// The public key as browsers take it (`applicationServerKey`): base64url of the
    /// uncompressed point.
    pub fn public_key_b64(&self) -> &str {
        &self.public_b64
    }

    /// The `Authorization` header value for a push to `endpoint`:
    /// `vapid t=<ES256 JWT {aud: origin, exp, sub}>, k=<public key>`.
    pub fn authorization(
        &self,
        endpoint: &reqwest::Url,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<String, WebPushError> {
        let origin = endpoint.origin();
        if !origin.is_tuple() {
            return Err(WebPushError::NoOrigin);
        }
        let header = b64(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({
            "aud": origin.ascii_serialization(),
            "exp": now.timestamp() + VAPID_TTL_SECS,
            "sub": self.subject,
        });
        let signing_input = format!("{header}.{}", b64(claims.to_string().as_bytes()));
        let sig: p256::ecdsa::Signature = self.key.sign(signing_input.as_bytes());
        Ok(format!(
            "vapid t={signing_input}.{}, k={}",
            b64(&sig.to_bytes()),
            self.public_b64
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Vec<u8> {
        b64_decode(s).expect("base64url")
    }

    // RFC 8291 Appendix A.
    const PLAINTEXT: &str = "When I grow up, I want to be a watermelon";
    const AS_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
    const AS_PUBLIC: &str =
        "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
    const UA_PUBLIC: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
    const SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";
    const BODY: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";

    #[test]
    fn the_rfc_8291_worked_example_encrypts_to_the_published_body() {
        let keys = SubscriptionKeys::new(&b(UA_PUBLIC), &b(AUTH)).expect("keys");
        let ephemeral = SecretKey::from_slice(&b(AS_PRIVATE)).expect("as key");
        assert_eq!(
            ephemeral.public_key().to_encoded_point(false).as_bytes(),
            b(AS_PUBLIC).as_slice()
        );
        let salt: [u8; 16] = b(SALT).try_into().expect("salt");
        let body = encrypt_with(&keys, PLAINTEXT.as_bytes(), &salt, &ephemeral).expect("encrypt");
        assert_eq!(b64(&body), BODY);
    }

    #[test]
    fn fresh_encryptions_differ_and_bad_keys_are_refused() {
        let keys = SubscriptionKeys::new(&b(UA_PUBLIC), &b(AUTH)).expect("keys");
        let one = encrypt(&keys, b"{}").expect("encrypt");
        let two = encrypt(&keys, b"{}").expect("encrypt");
        assert_ne!(one, two, "fresh salt and ephemeral key each time");
        assert_eq!(one.len(), 86 + 2 + 1 + 16);

        let mut compressed = b(UA_PUBLIC);
        compressed[0] = 0x02;
        assert!(SubscriptionKeys::new(&compressed, &b(AUTH)).is_err());
        let mut off_curve = b(UA_PUBLIC);
        off_curve[64] ^= 1;
        assert!(SubscriptionKeys::new(&off_curve, &b(AUTH)).is_err());
        assert!(SubscriptionKeys::new(&b(UA_PUBLIC)[..64], &b(AUTH)).is_err());
        assert!(SubscriptionKeys::new(&b(UA_PUBLIC), &[0; 15]).is_err());
        assert!(matches!(
            encrypt(&keys, &[0; 4096]),
            Err(WebPushError::TooLarge)
        ));
    }

    #[test]
    fn the_vapid_header_carries_a_jwt_that_verifies_with_the_published_key() {
        use p256::ecdsa::signature::Verifier;
        let secret = SecretKey::from_slice(&b(AS_PRIVATE)).expect("key");
        let vapid = Vapid::new(&secret, "mailto:ops@clinic.example");
        assert_eq!(vapid.public_key_b64(), AS_PUBLIC);
        let endpoint: reqwest::Url = "https://push.example.net:8443/wpush/v2/abc?x=1"
            .parse()
            .expect("url");
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("time");
        let value = vapid.authorization(&endpoint, now).expect("header");
        let rest = value.strip_prefix("vapid t=").expect("scheme");
        let (jwt, k) = rest.split_once(", k=").expect("k");
        assert_eq!(k, AS_PUBLIC);
        let (input, sig) = jwt.rsplit_once('.').expect("signature");
        let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&b(k)).expect("public key");
        let sig = p256::ecdsa::Signature::from_slice(&b(sig)).expect("r‖s");
        key.verify(input.as_bytes(), &sig).expect("verifies");
        let (head, claims) = input.split_once('.').expect("parts");
        let head: serde_json::Value = serde_json::from_slice(&b(head)).expect("header");
        assert_eq!(head["alg"], "ES256");
        let claims: serde_json::Value = serde_json::from_slice(&b(claims)).expect("claims");
        assert_eq!(claims["aud"], "https://push.example.net:8443");
        assert_eq!(claims["sub"], "mailto:ops@clinic.example");
        let exp = claims["exp"].as_i64().expect("exp");
        assert!(exp > now.timestamp() && exp <= now.timestamp() + 24 * 3600);
    }
}
