//! Golden fixtures freezing the envelope wire format (the signed byte formats are frozen in
//! `peerbridge_openapi::signed`): a change fails here, so changing a format is a deliberate act. To
//! record new fixtures after an intended change, run with `PEERBRIDGE_BLESS=1` and commit
//! the diff together with a version bump.

use std::path::PathBuf;

use peerbridge_mls::{Envelope, MessageId, NoticeKind};

fn fixtures() -> Vec<(&'static str, Vec<u8>, Option<Envelope>)> {
    let id1 =
        MessageId::from_bytes(*b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10");
    let id2 = MessageId::from_bytes([0xAB; 16]);
    let envelopes = vec![
        (
            "envelope-v1-text",
            Envelope::Text {
                id: id1,
                body: "Hei! Hvordan går det? 🙂".into(),
                sent_at: 1_717_171_717_171,
            },
        ),
        (
            "envelope-v1-receipt",
            Envelope::Receipt {
                ids: vec![id1, id2],
            },
        ),
        (
            "envelope-v1-system-notice",
            Envelope::SystemNotice {
                kind: NoticeKind::DisappearingTimerChanged,
                text: "24h".into(),
            },
        ),
        (
            "envelope-v1-system-notice-clinician-asked",
            Envelope::SystemNotice {
                kind: NoticeKind::ClinicianAsked,
                text: "Ein sjukepleiar frå klinikken tek kontakt med deg.".into(),
            },
        ),
        (
            "envelope-v1-identity-card",
            Envelope::IdentityCard {
                id: id2,
                sent_at: 1_717_171_717_999,
                first_name: Some("Åse".into()),
                phone: Some("+47 912 34 567".into()),
                photo: Some(vec![0xFF, 0xD8, 0xFF, 0xE0]),
            },
        ),
        (
            "envelope-v1-identity-card-empty",
            Envelope::IdentityCard {
                id: id1,
                sent_at: 0,
                first_name: None,
                phone: None,
                photo: None,
            },
        ),
    ];
    envelopes
        .into_iter()
        .map(|(name, e)| (name, e.encode().expect("encodes"), Some(e)))
        .collect()
}

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.hex"))
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<String>() + "\n"
}

fn from_hex(text: &str) -> Vec<u8> {
    let text = text.trim();
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn serialized_formats_match_the_golden_fixtures() {
    let bless = std::env::var_os("PEERBRIDGE_BLESS").is_some();
    for (name, bytes, envelope) in fixtures() {
        let path = fixture_path(name);
        if bless {
            std::fs::write(&path, to_hex(&bytes)).expect("write fixture");
        }
        let frozen = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("missing fixture {}: {e}", path.display()));
        assert_eq!(
            to_hex(&bytes),
            frozen,
            "the serialized form of {name} changed; if intended, bump the version and bless"
        );
        if let Some(envelope) = envelope {
            assert_eq!(
                Envelope::decode(&from_hex(&frozen)),
                Ok(envelope),
                "the frozen {name} must still decode"
            );
        }
    }
}
