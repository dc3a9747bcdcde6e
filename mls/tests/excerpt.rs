//! Escalation excerpts: sealed to an HP device's key with HPKE they open only there; the HP
//! verifies each message's franking commitment and the server's stamp; changed text,
//! reordered messages, a message from another conversation, a forged stamp or an unknown
//! server key all fail.

use std::collections::BTreeMap;

use ed25519_dalek::{Signer, SigningKey};
use peerbridge_mls::excerpt::{self, EscalationKey, Excerpt, ExcerptError, ExcerptMessage, Stamp};
use peerbridge_mls::{Envelope, MessageId};
use peerbridge_openapi::signed::franking_stamp_message;

struct Server {
    key: SigningKey,
}

impl Server {
    fn stamp(&self, commitment: &[u8; 32], group: &[u8], sender: &str, seq: u64, at: i64) -> Stamp {
        let sig = self
            .key
            .sign(&franking_stamp_message(commitment, group, sender, seq, at));
        Stamp {
            sender: sender.into(),
            seq,
            received_at: at,
            kid: "k1".into(),
            signature: sig.to_bytes().to_vec(),
        }
    }

    fn keys(&self) -> BTreeMap<String, [u8; 32]> {
        BTreeMap::from([("k1".to_string(), self.key.verifying_key().to_bytes())])
    }
}

/// A message as the sender franked it and the server stamped it.
fn delivered(server: &Server, group: &[u8], sender: &str, seq: u64, text: &str) -> ExcerptMessage {
    let plaintext = Envelope::Text {
        id: MessageId::random(),
        sent_at: 1_700_000_000 + seq,
        body: text.into(),
    }
    .encode()
    .expect("encode");
    let f = excerpt::frank(&plaintext);
    ExcerptMessage {
        stamp: server.stamp(
            &f.commitment,
            group,
            sender,
            seq,
            1_700_000_000 + seq as i64,
        ),
        franking_key: *f.key,
        commitment: f.commitment,
        plaintext,
    }
}

fn server() -> Server {
    Server {
        key: SigningKey::from_bytes(&[9u8; 32]),
    }
}

fn text(m: &excerpt::VerifiedMessage) -> String {
    match &m.envelope {
        Envelope::Text { body, .. } => body.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_excerpt_sealed_to_an_hp_opens_there_and_verifies() {
    let s = server();
    let group = b"group-a".to_vec();
    let hp = EscalationKey::generate().expect("key");
    let other_hp = EscalationKey::generate().expect("key");
    let ex = Excerpt {
        version: 1,
        group_id: group.clone(),
        note: "Said it twice, sounded calm and decided.".into(),
        messages: vec![
            delivered(
                &s,
                &group,
                "Quiet Heron 42",
                7,
                "I have decided to take my life tonight",
            ),
            delivered(&s, &group, "Quiet Heron 42", 9, "I have the pills here"),
        ],
    };
    let (enc, ct) = excerpt::seal(&ex, &hp.public).expect("seal");
    assert!(
        !ct.windows(10).any(|w| w == b"pills here"),
        "sealed, not plain"
    );
    let opened = excerpt::open(&hp.secret, &enc, &ct, &group).expect("open");
    assert_eq!(opened, ex);
    let verified = excerpt::verify(&opened, &group, &s.keys()).expect("verifies");
    assert_eq!(
        verified.iter().map(text).collect::<Vec<_>>(),
        vec![
            "I have decided to take my life tonight",
            "I have the pills here"
        ]
    );
    assert_eq!(verified[0].sender, "Quiet Heron 42");
    assert_eq!((verified[0].seq, verified[1].seq), (7, 9));

    // Another HP's key, or the wrong conversation as AAD, does not open it.
    assert_eq!(
        excerpt::open(&other_hp.secret, &enc, &ct, &group),
        Err(ExcerptError::Open)
    );
    assert_eq!(
        excerpt::open(&hp.secret, &enc, &ct, b"group-b"),
        Err(ExcerptError::Open)
    );
    let mut bent = ct.clone();
    bent[3] ^= 1;
    assert_eq!(
        excerpt::open(&hp.secret, &enc, &bent, &group),
        Err(ExcerptError::Open)
    );
}

#[test]
fn tampered_excerpts_fail_verification() {
    let s = server();
    let group = b"group-a".to_vec();
    let a = delivered(&s, &group, "Quiet Heron 42", 7, "I want to die");
    let b = delivered(&s, &group, "Quiet Heron 42", 9, "but not today, I promise");
    let good = Excerpt {
        version: 1,
        group_id: group.clone(),
        note: String::new(),
        messages: vec![a.clone(), b.clone()],
    };
    assert!(excerpt::verify(&good, &group, &s.keys()).is_ok());

    // Changed text: the commitment no longer matches.
    let mut changed = good.clone();
    changed.messages[1].plaintext = Envelope::Text {
        id: MessageId::random(),
        sent_at: 1,
        body: "and I will do it".into(),
    }
    .encode()
    .expect("encode");
    assert_eq!(
        excerpt::verify(&changed, &group, &s.keys()),
        Err(ExcerptError::Altered { index: 1 })
    );
    // Changed text with a matching new commitment: the server never stamped that commitment.
    let mut recommitted = changed.clone();
    recommitted.messages[1].commitment = excerpt::commitment(
        &recommitted.messages[1].franking_key,
        &recommitted.messages[1].plaintext,
    );
    assert_eq!(
        excerpt::verify(&recommitted, &group, &s.keys()),
        Err(ExcerptError::BadStamp { index: 1 })
    );
    // Reordered.
    let reordered = Excerpt {
        messages: vec![b.clone(), a.clone()],
        ..good.clone()
    };
    assert_eq!(
        excerpt::verify(&reordered, &group, &s.keys()),
        Err(ExcerptError::OutOfOrder { index: 1 })
    );
    // A message from another conversation, even with a true stamp there.
    let foreign = delivered(&s, b"group-b", "Quiet Heron 42", 8, "I want to die");
    let mixed = Excerpt {
        messages: vec![a.clone(), foreign],
        ..good.clone()
    };
    assert_eq!(
        excerpt::verify(&mixed, &group, &s.keys()),
        Err(ExcerptError::BadStamp { index: 1 })
    );
    // Words put in another sender's mouth.
    let mut resent = good.clone();
    resent.messages[0].stamp.sender = "Steady Otter 17".into();
    assert_eq!(
        excerpt::verify(&resent, &group, &s.keys()),
        Err(ExcerptError::BadStamp { index: 0 })
    );
    // A stamp by a key the server does not publish.
    let impostor = Server {
        key: SigningKey::from_bytes(&[3u8; 32]),
    };
    let forged = Excerpt {
        messages: vec![delivered(&impostor, &group, "Quiet Heron 42", 7, "x")],
        ..good.clone()
    };
    assert_eq!(
        excerpt::verify(&forged, &group, &s.keys()),
        Err(ExcerptError::BadStamp { index: 0 })
    );
    // The whole excerpt claimed for another conversation.
    assert_eq!(
        excerpt::verify(&good, b"group-b", &s.keys()),
        Err(ExcerptError::WrongConversation)
    );
    // Empty.
    let empty = Excerpt {
        messages: vec![],
        ..good
    };
    assert_eq!(
        excerpt::verify(&empty, &group, &s.keys()),
        Err(ExcerptError::Size)
    );
}

#[test]
fn garbage_never_panics() {
    let hp = EscalationKey::generate().expect("key");
    for (enc, ct) in [
        (vec![], vec![]),
        (vec![0u8; 32], vec![1u8; 100]),
        (vec![1u8; 5], vec![0u8; 10]),
    ] {
        assert!(excerpt::open(&hp.secret, &enc, &ct, b"g").is_err());
    }
    assert!(
        excerpt::seal(
            &Excerpt {
                version: 1,
                group_id: vec![1],
                note: String::new(),
                messages: vec![]
            },
            &[0u8; 3]
        )
        .is_err()
    );
}
