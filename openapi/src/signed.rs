//! Every byte string Peerbridge signs, and every magic prefix it recognises, in one place.
//! Clients and server build these bytes from here and nowhere else; each is frozen by a
//! golden test below, so a change to a format is a deliberate new version (`/v2`), never an
//! accident that splits old signatures from new verifiers.

use uuid::Uuid;

use crate::introductions::{ConsentAction, ConsentScope};

/// Prefix of a pseudonymous leaf's BasicCredential identity: `"PBP1" || pseudonym (16)`.
/// A device credential is `device_public_key (32) || signature (64)` instead (see
/// [`leaf_binding_message`]), so the two cannot be confused by length or prefix.
pub const PSEUDONYM_PREFIX: &[u8] = b"PBP1";

/// Prefix of a franked application message's authenticated data:
/// `"PBF1" || commitment (32)`. The server stamps messages whose AAD has this form.
pub const FRANKING_AAD_PREFIX: &[u8] = b"PBF1";

/// The domain-separated bytes a device signs to answer a login challenge.
/// Clients and server must build exactly these bytes.
pub fn login_challenge_message(challenge_id: Uuid, nonce_b64: &str) -> Vec<u8> {
    format!("peerbridge/login/v1\n{challenge_id}\n{nonce_b64}").into_bytes()
}

/// The domain-separated bytes a device signs to bind an MLS leaf signature key to itself.
/// A leaf's BasicCredential identity is `device_public_key (32) || signature (64)` over these
/// bytes; server and members verify it, so nobody can put a leaf in a group on behalf of a
/// device that did not sign it.
pub fn leaf_binding_message(signature_key: &[u8]) -> Vec<u8> {
    let mut m = b"peerbridge/leaf/v1\n".to_vec();
    m.extend_from_slice(signature_key);
    m
}

/// The bytes a party's device signs (with its leaf signature key in the introduction's MLS
/// group) to state a consent or its withdrawal:
///
/// ```text
/// "peerbridge/consent/v1\n" || introduction_id (16) || group_id_len (u16 BE) || group_id
///   || scope (u8: 1 reveal, 2 invite_hp) || action (u8: 1 grant, 2 withdraw)
///   || issued_at (i64 BE, unix seconds)
/// ```
///
/// Server and counterpart rebuild these bytes from the record's fields, so neither the
/// scope, the action nor the time can be changed without breaking the signature.
pub fn consent_statement(
    introduction_id: Uuid,
    group_id: &[u8],
    scope: ConsentScope,
    action: ConsentAction,
    issued_at_unix: i64,
) -> Vec<u8> {
    let mut m = b"peerbridge/consent/v1\n".to_vec();
    m.extend_from_slice(introduction_id.as_bytes());
    let len = u16::try_from(group_id.len()).unwrap_or(u16::MAX);
    m.extend_from_slice(&len.to_be_bytes());
    m.extend_from_slice(&group_id[..usize::from(len).min(group_id.len())]);
    m.push(match scope {
        ConsentScope::Reveal => 1,
        ConsentScope::InviteHp => 2,
    });
    m.push(match action {
        ConsentAction::Grant => 1,
        ConsentAction::Withdraw => 2,
    });
    m.extend_from_slice(&issued_at_unix.to_be_bytes());
    m
}

/// The bytes an HP device signs (Ed25519, device key) to publish its HPKE X25519 public
/// key: `"peerbridge/escalation-key/v1\n" || public_key (32)`.
pub fn escalation_key_message(hpke_public_key: &[u8]) -> Vec<u8> {
    let mut m = b"peerbridge/escalation-key/v1\n".to_vec();
    m.extend_from_slice(hpke_public_key);
    m
}

/// The bytes a clinic's escalation authority signs (Ed25519, a key held on a clinic admin's
/// device, never by the server) to certify that an HP device's escalation key may receive
/// excerpts from the clinic's conversations:
/// `"peerbridge/escalation-cert/v1\n" || clinic_id (16) || device_id (16) || public_key (32)`.
/// A raising client pins the authority's public key (from the invite link, or on first use)
/// and seals only to keys certified by it, so a recipient the server adds is refused.
pub fn escalation_certificate_message(
    clinic_id: Uuid,
    device_id: Uuid,
    hpke_public_key: &[u8],
) -> Vec<u8> {
    let mut m = b"peerbridge/escalation-cert/v1\n".to_vec();
    m.extend_from_slice(clinic_id.as_bytes());
    m.extend_from_slice(device_id.as_bytes());
    m.extend_from_slice(hpke_public_key);
    m
}

/// The bytes the server signs (Ed25519, its franking key) to stamp an application message:
/// `"peerbridge/frank/v1\n" || commitment (32) || group_id_len (u16 BE) || group_id ||
/// sender_len (u16 BE) || sender (UTF-8 handle) || seq (u64 BE) || received_at (i64 BE,
/// unix seconds)`.
pub fn franking_stamp_message(
    commitment: &[u8],
    group_id: &[u8],
    sender: &str,
    seq: u64,
    received_at_unix: i64,
) -> Vec<u8> {
    let mut m = b"peerbridge/frank/v1\n".to_vec();
    m.extend_from_slice(commitment);
    for part in [group_id, sender.as_bytes()] {
        let len = u16::try_from(part.len()).unwrap_or(u16::MAX);
        m.extend_from_slice(&len.to_be_bytes());
        m.extend_from_slice(&part[..usize::from(len).min(part.len())]);
    }
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&received_at_unix.to_be_bytes());
    m
}

#[cfg(test)]
mod golden {
    //! Fixed inputs, fixed bytes. If one of these fails, a signed format changed: every
    //! signature made by a deployed client or server would stop verifying.

    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    const ID: Uuid = Uuid::from_u128(0x0011_2233_4455_6677_8899_aabb_ccdd_eeff);

    #[test]
    fn prefixes() {
        assert_eq!(PSEUDONYM_PREFIX, b"PBP1");
        assert_eq!(FRANKING_AAD_PREFIX, b"PBF1");
    }

    #[test]
    fn login_challenge() {
        assert_eq!(
            login_challenge_message(ID, "bm9uY2U"),
            b"peerbridge/login/v1\n00112233-4455-6677-8899-aabbccddeeff\nbm9uY2U".to_vec()
        );
    }

    #[test]
    fn leaf_binding() {
        assert_eq!(
            hex(&leaf_binding_message(&[0xab; 4])),
            format!("{}abababab", hex(b"peerbridge/leaf/v1\n"))
        );
    }

    #[test]
    fn escalation_certificate() {
        assert_eq!(
            hex(&escalation_certificate_message(
                ID,
                Uuid::from_u128(1),
                &[0x01, 0x02]
            )),
            format!(
                "{}00112233445566778899aabbccddeeff000000000000000000000000000000010102",
                hex(b"peerbridge/escalation-cert/v1\n")
            )
        );
    }

    #[test]
    fn escalation_key() {
        assert_eq!(
            hex(&escalation_key_message(&[0x01, 0x02])),
            format!("{}0102", hex(b"peerbridge/escalation-key/v1\n"))
        );
    }

    #[test]
    fn franking_stamp() {
        assert_eq!(
            hex(&franking_stamp_message(
                &[0xcc; 2],
                b"gid",
                "peer",
                7,
                1_700_000_000
            )),
            format!(
                "{}cccc0003{}0004{}0000000000000007000000006553f100",
                hex(b"peerbridge/frank/v1\n"),
                hex(b"gid"),
                hex(b"peer")
            )
        );
    }

    #[test]
    fn consent() {
        assert_eq!(
            hex(&consent_statement(
                ID,
                b"g",
                ConsentScope::InviteHp,
                ConsentAction::Withdraw,
                -1
            )),
            format!(
                "{}00112233445566778899aabbccddeeff000167{}ffffffffffffffff",
                hex(b"peerbridge/consent/v1\n"),
                "0202"
            )
        );
        assert_eq!(
            hex(&consent_statement(
                ID,
                b"",
                ConsentScope::Reveal,
                ConsentAction::Grant,
                0
            ))[hex(b"peerbridge/consent/v1\n").len() + 32..],
            "000001010000000000000000".to_string()
        );
    }
}
