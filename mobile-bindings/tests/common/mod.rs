//! Shared set-up for the SDK suites: clinics, SDK devices with a wire tap, approved peers,
//! introductions both parties accepted.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use std::time::Duration;
use tokio::sync::mpsc;

use peerbridge_mobile::api::introductions::{
    AgeBand, Gender, IntroductionCreate, IntroductionState, PeerProfileUpdate,
};
use peerbridge_mobile::{Event, PeerbridgeClient, SdkOptions, WireTap};
use peerbridge_tests::{Staff, TestApp};
use serde_json::json;
use uuid::Uuid;

/// What one device received: every HTTP body and stream frame, and decrypted texts.
#[derive(Clone, Default)]
pub struct Wire(Arc<Mutex<Vec<String>>>);

impl Wire {
    pub fn tap(&self) -> WireTap {
        let w = self.0.clone();
        WireTap(Arc::new(move |s: &str| {
            w.lock().expect("lock").push(s.to_owned())
        }))
    }

    pub fn push(&self, s: String) {
        self.0.lock().expect("lock").push(s);
    }

    pub fn snapshot(&self) -> Vec<String> {
        self.0.lock().expect("lock").clone()
    }
}

pub struct Device {
    pub client: Arc<PeerbridgeClient>,
    pub wire: Wire,
    pub user_id: Uuid,
    _dir: tempfile::TempDir,
}

pub fn options(wire: &Wire) -> SdkOptions {
    SdkOptions {
        retry_base_delay: Duration::from_millis(20),
        wire_tap: Some(wire.tap()),
        ..SdkOptions::default()
    }
}

pub async fn clinic(app: &TestApp, op: &Staff, name: &str, network: &str) -> (Uuid, Staff) {
    let id: Uuid = app
        .client()
        .post(
            "/v1/clinics",
            Some(op.token()),
            json!({ "name": name, "network": network }),
        )
        .await
        .expect(201)
        .json()["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("id");
    let hp = app.create_staff(op, id, "hp", "Hanne Sykepleier").await;
    (id, hp)
}

/// Enrolls a user on an SDK device with a name and phone the clinic records.
pub async fn enroll(
    app: &TestApp,
    hp: &Staff,
    clinic: Uuid,
    role: &str,
    name: &str,
    phone: &str,
) -> Device {
    enroll_at(&app.base, app, hp, clinic, role, name, phone).await
}

/// Enrolls a device that reaches the server at `base` (e.g. through a relay).
pub async fn enroll_at(
    base: &str,
    app: &TestApp,
    hp: &Staff,
    clinic: Uuid,
    role: &str,
    name: &str,
    phone: &str,
) -> Device {
    let invite: serde_json::Value = app
        .client()
        .post(
            &format!("/v1/clinics/{clinic}/invites"),
            Some(hp.token()),
            json!({ "role": role, "display_name": name, "phone": phone }),
        )
        .await
        .expect(201)
        .json();
    enroll_with(base, invite["code"].as_str().expect("code")).await
}

/// A new phone enrolled with an invite code or a whole invite link.
pub async fn enroll_with(base: &str, invite: &str) -> Device {
    let dir = tempfile::tempdir().expect("tempdir");
    let wire = Wire::default();
    let client = PeerbridgeClient::open_with_options(base, dir.path(), &[7; 32], options(&wire))
        .expect("open");
    let s = client.enroll(invite, "Phone").await.expect("enroll");
    client.ensure_key_packages().await.expect("key packages");
    Device {
        client: Arc::new(client),
        wire,
        user_id: s.user_id,
        _dir: dir,
    }
}

pub async fn staff_sdk(app: &TestApp, staff: &Staff) -> Device {
    let dir = tempfile::tempdir().expect("tempdir");
    let wire = Wire::default();
    let client =
        PeerbridgeClient::open_with_options(&app.base, dir.path(), &[8; 32], options(&wire))
            .expect("open");
    let s = client
        .staff_login(
            &staff.login,
            &staff.password,
            &app.fresh_totp(&staff.totp_secret),
            "Workstation",
        )
        .await
        .expect("staff login");
    client.ensure_key_packages().await.expect("key packages");
    Device {
        client: Arc::new(client),
        wire,
        user_id: s.user_id,
        _dir: dir,
    }
}

pub fn profile(languages: &[&str], topics: &[&str], remote: bool) -> PeerProfileUpdate {
    PeerProfileUpdate {
        languages: languages.iter().map(|s| s.to_string()).collect(),
        gender: Some(Gender::Woman),
        age_band: Some(AgeBand::From40To49),
        region: Some("Rogaland".into()),
        years_since_diagnosis: Some(15),
        topics: topics.iter().map(|s| s.to_string()).collect(),
        remote_support: remote,
        capacity: Some(3),
        availability: Some("evenings".into()),
    }
}

pub async fn approved(hp: &Device, clinic: Uuid, peer: &Device, p: PeerProfileUpdate) {
    hp.client
        .set_peer_profile(clinic, peer.user_id, &p)
        .await
        .expect("profile");
    let today = chrono::Utc::now().date_naive();
    let a = hp
        .client
        .approve_peer(clinic, peer.user_id, today)
        .await
        .expect("approve");
    assert!(a.approved);
}

pub fn proposal(su: Uuid, peer: Uuid) -> IntroductionCreate {
    IntroductionCreate {
        client_id: Uuid::new_v4(),
        service_user_id: su,
        peer_id: peer,
        blurb_for_service_user: "Has lived with HIV for fifteen years; good listener.".into(),
        blurb_for_peer: "Recently diagnosed, wants to talk about disclosure.".into(),
        expires_in_hours: None,
    }
}

/// Both accept; returns the introduction's conversation once both devices are in it.
pub async fn both_accept(a: &Device, b: &Device, intro: Uuid) -> Uuid {
    a.client
        .accept_introduction(intro)
        .await
        .expect("a accepts");
    let v = b
        .client
        .accept_introduction(intro)
        .await
        .expect("b accepts");
    assert_eq!(v.state, IntroductionState::Active);
    let conv = v.conversation_id.expect("opened");
    for d in [a, b] {
        record(d, d.client.sync_all().await.expect("sync"));
    }
    conv
}

/// Keeps decrypted content in the device's record too.
pub fn record(d: &Device, events: Vec<Event>) -> Vec<Event> {
    for e in &events {
        d.wire.push(format!("{e:?}"));
    }
    events
}

pub fn texts(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Text { body, .. } => Some(body.clone()),
            _ => None,
        })
        .collect()
}

pub fn cards(events: &[Event]) -> Vec<(Option<String>, Option<String>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::IdentityCard {
                first_name, phone, ..
            } => Some((first_name.clone(), phone.clone())),
            _ => None,
        })
        .collect()
}

/// Asserts that nothing `who` received over the wire contains any of `secrets`. Positive
/// control first: everything in `present` (things `who` must have received) has to be
/// seen, so a broken wire tap cannot make every absence check pass.
pub fn assert_absent(
    who: &str,
    seen: &[String],
    present: &[(&str, String)],
    secrets: &[(&str, String)],
) {
    assert!(
        !present.is_empty(),
        "an absence check needs a positive control"
    );
    for (what, expected) in present {
        assert!(
            seen.iter().any(|s| s.contains(expected.as_str())),
            "the wire tap never showed {who} their {what}: the absence checks would prove nothing"
        );
    }
    for (what, secret) in secrets {
        assert!(!secret.is_empty());
        if let Some(hit) = seen.iter().find(|s| s.contains(secret.as_str())) {
            panic!("{who} received the counterpart's {what} before the reveal: {hit}");
        }
    }
}

/// Runs a device's receive loop in the background, forwarding every batch.
pub fn listen(client: &Arc<PeerbridgeClient>) -> mpsc::UnboundedReceiver<Vec<Event>> {
    let (tx, rx) = mpsc::unbounded_channel();
    let c = client.clone();
    tokio::spawn(async move {
        loop {
            match c.next_events().await {
                Ok(events) => {
                    if tx.send(events).is_err() {
                        return;
                    }
                }
                Err(e) => panic!("receive loop failed: {e}"),
            }
        }
    });
    rx
}

/// The HP proposes `su` ↔ `peer` and both accept: the introduction and its conversation.
pub async fn introduced(hp: &Device, clinic: Uuid, su: &Device, peer: &Device) -> (Uuid, Uuid) {
    let intro = hp
        .client
        .propose_introduction(clinic, &proposal(su.user_id, peer.user_id))
        .await
        .expect("propose")
        .id;
    (intro, both_accept(su, peer, intro).await)
}

/// Inserts a grant of the peer's `reveal` that the peer never signed (as a compromised
/// server could), newer than anything the peer said.
pub async fn forge_grant(app: &TestApp, intro: Uuid) {
    let fake_key = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    insert_consent(
        app,
        intro,
        chrono::Utc::now().timestamp() + 60,
        fake_key.verifying_key().to_bytes().to_vec(),
        vec![1; 64],
    )
    .await;
}

/// A reveal grant in the peer's name written straight into the server's table, as a
/// compromised server could.
pub async fn insert_consent(
    app: &TestApp,
    intro: Uuid,
    issued_at: i64,
    key: Vec<u8>,
    sig: Vec<u8>,
) {
    use peerbridge_server::introductions::entities::consent;
    use sea_orm::{ActiveModelTrait, Set};
    consent::ActiveModel {
        id: Set(Uuid::new_v4()),
        introduction_id: Set(intro),
        party: Set("peer".into()),
        device_id: Set(Uuid::new_v4()),
        scope: Set("reveal".into()),
        action: Set("grant".into()),
        issued_at: Set(issued_at),
        signature_key: Set(key),
        signature: Set(sig),
        recorded_at: Set(chrono::Utc::now()),
    }
    .insert(&app.state.db)
    .await
    .expect("forged row");
}
