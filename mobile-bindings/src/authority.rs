//! Who may read an excerpt is decided by the clinic, not by the server. A clinic admin's
//! device holds the clinic's escalation authority (an Ed25519 key generated here and never
//! sent anywhere) and certifies each HP device's escalation key after comparing its
//! fingerprint with the one that device shows. Every client pins the authority: from the
//! invite link it enrolled with (`…/join#code=…&authority=…`, made by the inviting HP's
//! client from its own pin, not by the server) or, failing that, on first use; a raising
//! client then seals only to keys certified by its pin. A recipient the server adds, or an
//! authority the server swaps in later, gets nothing.

use std::collections::BTreeMap;

use ed25519_dalek::{Signer, SigningKey};
use peerbridge_openapi::escalation::{
    EscalationAuthority, EscalationAuthorityCreate, EscalationCertificateUpload, EscalationKeyInfo,
    EscalationRecipient,
};
use peerbridge_openapi::signed::{escalation_certificate_message, escalation_key_message};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::client::PeerbridgeClient;
use crate::error::{Result, SdkError};
use crate::http::{b64, unb64};

/// Authority keys this device trusts, per clinic.
const PINS: &str = "escalation-authority-pins";
/// The authority's secret, on the clinic admin's device that created it.
const AUTHORITY_SECRET: &str = "escalation-authority-secret";

#[derive(Serialize, Deserialize)]
struct HeldAuthority {
    clinic: Uuid,
    secret: Vec<u8>,
}

/// What a person compares between two screens to know an escalation key is the one its
/// device shows: the first 10 bytes of SHA-256 over a domain label and the key, as five
/// groups of four hex digits ("1A2B 3C4D 5E6F 7081 92A3").
pub fn key_fingerprint(public_key: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"peerbridge/escalation-fingerprint/v1\n");
    h.update(public_key);
    h.finalize()[..10]
        .chunks(2)
        .map(|c| format!("{:02X}{:02X}", c[0], c[1]))
        .collect::<Vec<_>>()
        .join(" ")
}

fn same_fingerprint(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_uppercase())
            .collect::<String>()
    };
    norm(a) == norm(b)
}

/// An HP device's escalation key as a clinic admin reviews it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema, uniffi::Record)]
pub struct EscalationKeyReview {
    pub device_id: Uuid,
    pub user_id: Uuid,
    pub display_name: String,
    pub device_label: String,
    /// Compare with the fingerprint the HP's own device shows before certifying.
    pub fingerprint: String,
    pub published_at: chrono::DateTime<chrono::Utc>,
    pub certified: bool,
}

/// The invite code and the authority key an invite link carries.
pub(crate) struct InviteLink {
    pub code: String,
    pub authority: Option<Vec<u8>>,
}

/// Reads a bare code, `code=…&authority=…`, or a whole `…/join#code=…&authority=…` link.
pub(crate) fn parse_invite(input: &str) -> Result<InviteLink> {
    let input = input.trim();
    let params = input.rsplit_once('#').map_or(input, |(_, f)| f);
    if !params.contains('=') {
        return Ok(InviteLink {
            code: params.to_owned(),
            authority: None,
        });
    }
    let mut code = None;
    let mut authority = None;
    for pair in params.split('&') {
        match pair.split_once('=') {
            Some(("code", v)) => code = Some(v.to_owned()),
            Some(("authority", v)) => {
                authority = Some(
                    unb64("authority", v)
                        .ok()
                        .filter(|k| k.len() == 32)
                        .ok_or_else(|| {
                            SdkError::InvalidInput("the invite link's clinic key is damaged".into())
                        })?,
                );
            }
            _ => {}
        }
    }
    Ok(InviteLink {
        code: code.ok_or_else(|| SdkError::InvalidInput("the invite link has no code".into()))?,
        authority,
    })
}

impl PeerbridgeClient {
    fn pins(&self) -> Result<BTreeMap<Uuid, Vec<u8>>> {
        Ok(self.state_get(PINS)?.unwrap_or_default())
    }

    /// Pins a clinic's authority; a different key for a clinic already pinned is refused.
    pub(crate) fn pin_authority(&self, clinic: Uuid, key: &[u8]) -> Result<()> {
        let mut pins = self.pins()?;
        match pins.get(&clinic) {
            Some(k) if k.as_slice() == key => Ok(()),
            Some(_) => Err(SdkError::InvalidInput(
                "this device already trusts another escalation key for this clinic".into(),
            )),
            None => {
                pins.insert(clinic, key.to_vec());
                self.state_put(PINS, &pins)
            }
        }
    }

    /// The authority this device seals under for `clinic`: its pin, or (first use) the
    /// server's, which it then pins. `None` only while neither exists.
    pub(crate) fn authority_of(
        &self,
        clinic: Uuid,
        server_says: Option<&str>,
    ) -> Result<Option<Vec<u8>>> {
        if let Some(k) = self.pins()?.remove(&clinic) {
            if server_says.is_some_and(|s| unb64("public_key", s).ok().as_deref() != Some(&k)) {
                tracing::warn!(
                    "the server presents another escalation authority than the pinned one; its certificates are refused"
                );
            }
            return Ok(Some(k));
        }
        let Some(k) = server_says.map(|s| unb64("public_key", s)).transpose()? else {
            return Ok(None);
        };
        self.pin_authority(clinic, &k)?;
        Ok(Some(k))
    }

    /// The recipients a flag from `conv` is sealed to: with an authority, only keys it
    /// certified for their device; before a clinic has one, keys their device signed.
    pub(crate) async fn trusted_recipients(
        &self,
        conv: Uuid,
    ) -> Result<Vec<(EscalationRecipient, Vec<u8>)>> {
        let auth: EscalationAuthority = self
            .get(&format!("/v1/conversations/{conv}/escalation-authority"))
            .await?;
        let authority = self.authority_of(auth.clinic_id, auth.public_key.as_deref())?;
        let recipients: Vec<EscalationRecipient> = self
            .get(&format!("/v1/conversations/{conv}/escalation-recipients"))
            .await?;
        let mut out = Vec::new();
        for r in recipients {
            let Ok(pk) = unb64("public_key", &r.public_key) else {
                continue;
            };
            let trusted = match &authority {
                Some(a) => r
                    .certificate
                    .as_deref()
                    .and_then(|c| unb64("certificate", c).ok())
                    .is_some_and(|c| {
                        peerbridge_mls::verify_signature(
                            a,
                            &escalation_certificate_message(auth.clinic_id, r.device_id, &pk),
                            &c,
                        )
                    }),
                None => match (
                    unb64("device_key", &r.device_key),
                    unb64("signature", &r.signature),
                ) {
                    (Ok(d), Ok(s)) => {
                        peerbridge_mls::verify_signature(&d, &escalation_key_message(&pk), &s)
                    }
                    _ => false,
                },
            };
            if trusted {
                out.push((r, pk));
            } else {
                tracing::warn!("an escalation key without a valid certificate; not sealed to");
            }
        }
        Ok(out)
    }

    /// Clinic admins: creates the clinic's escalation authority on this device (the secret
    /// never leaves it), publishes its public key, pins it, and certifies this device's own
    /// escalation key if it has one. Calling it again on the same device is harmless.
    pub async fn setup_escalation_authority(&self) -> Result<EscalationAuthority> {
        let clinic = self.own_clinic()?;
        let held = match self.state_get::<HeldAuthority>(AUTHORITY_SECRET)? {
            Some(h) if h.clinic == clinic => h,
            _ => {
                let key = SigningKey::generate(&mut rand::rngs::OsRng);
                let h = HeldAuthority {
                    clinic,
                    secret: key.to_bytes().to_vec(),
                };
                self.state_put(AUTHORITY_SECRET, &h)?;
                h
            }
        };
        let public = signing_key(&held)?.verifying_key().to_bytes();
        let created: EscalationAuthority = self
            .authed(
                Method::PUT,
                &format!("/v1/clinics/{clinic}/escalation-authority"),
                Some(&EscalationAuthorityCreate {
                    public_key: b64(&public),
                }),
            )
            .await?
            .json()?;
        self.pin_authority(clinic, &public)?;
        if let Some(fp) = self.escalation_key_fingerprint()? {
            let me = self.session_info()?.device_id;
            if let Err(e) = self.certify_escalation_key(me, fp).await {
                tracing::warn!(
                    code = e.code(),
                    "this device's own key could not be certified"
                );
            }
        }
        Ok(created)
    }

    /// Clinic admins: the clinic's HP devices with escalation keys, with the fingerprint
    /// computed here (not taken from the server) to compare with each device's screen.
    pub async fn escalation_keys(&self) -> Result<Vec<EscalationKeyReview>> {
        let clinic = self.own_clinic()?;
        let keys: Vec<EscalationKeyInfo> = self
            .get(&format!("/v1/clinics/{clinic}/escalation-keys"))
            .await?;
        Ok(keys
            .into_iter()
            .filter_map(|k| {
                let pk = unb64("public_key", &k.public_key).ok()?;
                Some(EscalationKeyReview {
                    device_id: k.device_id,
                    user_id: k.user_id,
                    display_name: k.display_name,
                    device_label: k.device_label,
                    fingerprint: key_fingerprint(&pk),
                    published_at: k.published_at,
                    certified: k.certified,
                })
            })
            .collect())
    }

    /// Clinic admins, on the device holding the authority: certifies a device's current
    /// escalation key, only if its fingerprint is the one the admin read off that device
    /// and the device signed it.
    pub async fn certify_escalation_key(&self, device_id: Uuid, fingerprint: String) -> Result<()> {
        let clinic = self.own_clinic()?;
        let held = self
            .state_get::<HeldAuthority>(AUTHORITY_SECRET)?
            .filter(|h| h.clinic == clinic)
            .ok_or_else(|| {
                SdkError::Forbidden(
                    "this device does not hold the clinic's escalation authority".into(),
                )
            })?;
        let keys: Vec<EscalationKeyInfo> = self
            .get(&format!("/v1/clinics/{clinic}/escalation-keys"))
            .await?;
        let k = keys
            .iter()
            .find(|k| k.device_id == device_id)
            .ok_or_else(|| SdkError::NotFound("that device has no escalation key".into()))?;
        let pk = unb64("public_key", &k.public_key)?;
        if !same_fingerprint(&key_fingerprint(&pk), &fingerprint) {
            return Err(SdkError::InvalidInput(
                "the fingerprint does not match that device's key: do not certify it".into(),
            ));
        }
        let signed_by_device = peerbridge_mls::verify_signature(
            &unb64("device_key", &k.device_key)?,
            &escalation_key_message(&pk),
            &unb64("signature", &k.signature)?,
        );
        if !signed_by_device {
            return Err(SdkError::InvalidInput(
                "that key is not signed by its device".into(),
            ));
        }
        let cert =
            signing_key(&held)?.sign(&escalation_certificate_message(clinic, device_id, &pk));
        self.authed(
            Method::PUT,
            &format!("/v1/clinics/{clinic}/escalation-keys/{device_id}/certificate"),
            Some(&EscalationCertificateUpload {
                public_key: b64(&pk),
                signature: b64(&cert.to_bytes()),
            }),
        )
        .await?;
        Ok(())
    }

    /// HPs: the fingerprint of this device's escalation key, to show the certifying admin.
    pub fn escalation_key_fingerprint(&self) -> Result<Option<String>> {
        Ok(self
            .state_get::<crate::escalation::StoredEscalationKey>(crate::escalation::ESCALATION_KEY)?
            .map(|k| key_fingerprint(&k.public)))
    }

    /// The fingerprint of the clinic authority this device trusts, if any (for the settings
    /// screen; the same on every device of the clinic).
    pub fn escalation_authority_fingerprint(&self) -> Result<Option<String>> {
        let clinic = self.own_clinic()?;
        Ok(self.pins()?.get(&clinic).map(|k| key_fingerprint(k)))
    }

    /// Appends this device's pinned authority to an invite link it made, so the invited
    /// person's device pins the clinic's key without asking the server.
    pub(crate) async fn with_authority(&self, clinic: Uuid, qr_payload: &str) -> Result<String> {
        let base = qr_payload
            .split_once("&authority=")
            .map_or(qr_payload, |(b, _)| b);
        let pinned = match self.pins()?.remove(&clinic) {
            Some(k) => Some(k),
            None => {
                let a: EscalationAuthority = self
                    .get(&format!("/v1/clinics/{clinic}/escalation-authority"))
                    .await?;
                self.authority_of(clinic, a.public_key.as_deref())?
            }
        };
        Ok(match pinned {
            Some(k) => format!("{base}&authority={}", b64(&k)),
            None => base.to_owned(),
        })
    }

    fn own_clinic(&self) -> Result<Uuid> {
        self.session_info()?
            .clinic_id
            .ok_or_else(|| SdkError::Forbidden("this account belongs to no clinic".into()))
    }
}

fn signing_key(h: &HeldAuthority) -> Result<SigningKey> {
    let bytes: [u8; 32] = h
        .secret
        .as_slice()
        .try_into()
        .map_err(|_| SdkError::Mls("the stored escalation authority is damaged".into()))?;
    Ok(SigningKey::from_bytes(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invite_links_of_every_shape() {
        let k = b64(&[7u8; 32]);
        let bare = parse_invite(" ABCD-EFGH ").expect("parses");
        assert_eq!((bare.code.as_str(), bare.authority), ("ABCD-EFGH", None));
        let link = parse_invite(&format!("https://x.example/join#code=ABCD&authority={k}"))
            .expect("parses");
        assert_eq!(
            (link.code.as_str(), link.authority),
            ("ABCD", Some(vec![7u8; 32]))
        );
        let frag = parse_invite("code=ABCD").expect("parses");
        assert_eq!((frag.code.as_str(), frag.authority), ("ABCD", None));
        assert!(parse_invite("code=ABCD&authority=AAAA").is_err());
        assert!(parse_invite("authority=AAAA").is_err());
    }

    #[test]
    fn fingerprints_compare_as_people_read_them() {
        let f = key_fingerprint(&[0u8; 32]);
        assert_eq!(f.len(), 24);
        assert_ne!(f, key_fingerprint(&[1u8; 32]));
        assert!(same_fingerprint(&f, &f.to_lowercase().replace(' ', "")));
        assert!(!same_fingerprint(&f, &key_fingerprint(&[1u8; 32])));
    }
}
