//! A flag end to end through the SDK: a peer flags an imminent suicide risk quoting two of
//! the service user's messages; the on-duty HP's device is woken over its stream, opens the
//! sealed excerpt and verifies both messages' franking stamps; changed, reordered and
//! foreign messages fail verification; the server's database holds none of the excerpt's
//! text; the service user is told in the conversation that a clinician will check in.

use std::time::Duration;

use peerbridge_mobile::api::escalation::{FlagKind, RiskCategory, Severity};
use peerbridge_mobile::{ConnectionState, Event, SdkError};
use peerbridge_tests::api::Staff;
use peerbridge_tests::{TestApp, backends};
use serde_json::json;
use uuid::Uuid;

mod common;

use common::*;

/// Puts `hps` on duty (always) with short test deadlines and the clinic's notice in
/// bokmål, nynorsk and English.
async fn on_duty(app: &TestApp, admin: &Staff, clinic: Uuid, hps: &[Uuid], notice: [&str; 3]) {
    app.client()
        .put(
            &format!("/v1/clinics/{clinic}/escalation-settings"),
            Some(admin.token()),
            json!({ "on_duty": hps, "next_responders": [], "imminent_minutes": 5,
                    "urgent_minutes": 15, "concerning_minutes": 240, "routine_hour": 10,
                    "notice_nb": notice[0], "notice_nn": notice[1], "notice_en": notice[2] }),
        )
        .await
        .expect(200);
}

fn seqs_of(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Text { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_flag_reaches_the_on_duty_hp_who_opens_and_verifies_the_excerpt() {
    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let op = app.bootstrap_operator().await;
        let (home, hp_home) = clinic(&app, &op, "Haukeland", "vest").await;
        let admin = app
            .create_staff(&op, home, "clinic_admin", "Arne Admin")
            .await;
        let hp = staff_sdk(&app, &hp_home).await;
        hp.client
            .ensure_escalation_key()
            .await
            .expect("escalation key");
        on_duty(
            &app,
            &admin,
            home,
            &[hp.user_id],
            [
                "En sykepleier fra klinikken tar kontakt med deg.",
                "Ein sjukepleiar tek kontakt.",
                "A nurse will contact you.",
            ],
        )
        .await;
        let su = enroll(
            &app,
            &hp_home,
            home,
            "service_user",
            "Solveig Brukersen",
            "+47 911 11 111",
        )
        .await;
        let su2 = enroll(
            &app,
            &hp_home,
            home,
            "service_user",
            "Ola Annensen",
            "+47 933 33 333",
        )
        .await;
        let peer = enroll(
            &app,
            &hp_home,
            home,
            "peer",
            "Per Likemann",
            "+47 922 22 222",
        )
        .await;
        approved(&hp, home, &peer, profile(&["nb"], &[], false)).await;
        let (intro, conv) = introduced(&hp, home, &su, &peer).await;
        let (_, conv2) = introduced(&hp, home, &su2, &peer).await;

        let said = [
            "Jeg har bestemt meg for å ta livet mitt i kveld",
            "Jeg har samlet pillene og tar dem i kveld",
        ];
        su.client.send_text(conv, "Hei igjen").await.expect("send");
        for s in said {
            su.client.send_text(conv, s).await.expect("send");
        }
        su2.client
            .send_text(conv2, "Jeg har det bra i dag")
            .await
            .expect("send");
        let got = peer.client.sync(conv).await.expect("sync");
        let seqs = seqs_of(&got);
        // The peer's device suggests a flag for the risk messages (and only for them).
        let suggested: Vec<u64> = got
            .iter()
            .filter_map(|e| match e {
                Event::RiskSuggested { seq, severity, .. } => {
                    assert_eq!(severity, "imminent");
                    Some(*seq)
                }
                _ => None,
            })
            .collect();
        assert_eq!(suggested, seqs[1..].to_vec());
        assert_eq!(seqs.len(), 3);
        let other = seqs_of(&peer.client.sync(conv2).await.expect("sync"));

        // The HP's device listens on its stream; the flag is raised once it is connected
        // (a flag wakes the devices whose stream is open at that moment).
        let mut hp_events = listen(&hp.client);
        let connected = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(batch) = hp_events.recv().await {
                if batch.contains(&Event::ConnectionChanged {
                    state: ConnectionState::Connected,
                }) {
                    return;
                }
            }
        });
        connected.await.expect("the HP's stream connects");
        let receipt = peer
            .client
            .raise_flag(
                conv,
                RiskCategory::SuicideRisk,
                Severity::Imminent,
                "Sounded calm and decided.",
                &seqs[1..],
            )
            .await
            .expect("flag stored");
        assert_eq!(
            receipt.notice,
            "En sykepleier fra klinikken tar kontakt med deg."
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let batch = tokio::time::timeout_at(deadline, hp_events.recv())
                .await
                .expect("woken within 20 s")
                .expect("loop");
            if batch
                .iter()
                .any(|e| matches!(e, Event::FlagChanged { flag } if *flag == receipt.id))
            {
                break;
            }
        }
        let queue = hp.client.flags().await.expect("queue");
        assert_eq!(queue[0].id, receipt.id);
        let opened = hp
            .client
            .open_flag(receipt.id)
            .await
            .expect("opens and verifies");
        assert_eq!(opened.note, "Sounded calm and decided.");
        assert_eq!(
            opened
                .lines
                .iter()
                .map(|l| l.text.as_str())
                .collect::<Vec<_>>(),
            said.to_vec()
        );
        let su_alias = su.client.introduction(intro).await.expect("view").my_alias;
        assert!(opened.lines.iter().all(|l| l.sender == su_alias));

        // The identity only for a stated reason; a blank one is refused before anything is
        // read.
        assert!(matches!(
            hp.client.flag_subject(receipt.id, " \t ").await,
            Err(SdkError::InvalidInput(_))
        ));
        let who = hp
            .client
            .flag_subject(receipt.id, "Calling back: the excerpt says tonight.")
            .await
            .expect("identity");
        assert_eq!(who.user_id, su.user_id);

        // "I need help now" without quoting anything: the clinician can still open it.
        let help = su
            .client
            .help_now(conv, "Kan noen ringe meg?", &[])
            .await
            .expect("help now");
        let opened_help = hp.client.open_flag(help.id).await.expect("opens");
        assert_eq!(opened_help.flag.kind, FlagKind::HelpNow);
        assert!(opened_help.lines.is_empty());
        assert_eq!(opened_help.note, "Kan noen ringe meg?");

        // Tampering fails: a changed text, a reordering, a message from another conversation.
        let (flag, ex) = hp.client.opened_excerpt(receipt.id).await.expect("open");
        let mut changed = ex.clone();
        let mut envelope =
            peerbridge_mls::Envelope::decode(&changed.messages[1].plaintext).expect("envelope");
        if let peerbridge_mls::Envelope::Text { body, .. } = &mut envelope {
            *body = "Jeg har det fint".into();
        }
        changed.messages[1].plaintext = envelope.encode().expect("encode");
        let mut reordered = ex.clone();
        reordered.messages.swap(0, 1);
        let second = peer
            .client
            .raise_flag(conv2, RiskCategory::Other, Severity::Routine, "", &other)
            .await
            .expect("flag");
        let (_, foreign_ex) = hp.client.opened_excerpt(second.id).await.expect("open");
        let mut foreign = ex.clone();
        foreign.messages[1] = foreign_ex.messages[0].clone();
        for bad in [changed, reordered, foreign] {
            assert!(matches!(
                hp.client.verify_excerpt(&flag, &bad).await,
                Err(SdkError::Mls(_))
            ));
        }

        // The service user is told in the conversation.
        let got = su.client.sync(conv).await.expect("sync");
        assert!(got.iter().any(|e| matches!(e, Event::Notice { text, .. } if text == "En sykepleier fra klinikken tar kontakt med deg.")), "{got:?}");

        // After the session the peer asks for a debrief and logs the consultation.
        let d = peer
            .client
            .request_debrief(Some(intro), true)
            .await
            .expect("debrief");
        let supervisor_view = app
            .client()
            .get("/v1/debriefs", Some(hp_home.token()))
            .await
            .expect(200)
            .json();
        assert!(
            supervisor_view.as_array().is_some_and(|a| a.is_empty()),
            "not this peer's supervisor"
        );
        assert_eq!(d.severity, Severity::Urgent);
        let today = chrono::Utc::now().date_naive();
        peer.client
            .log_consultation(
                today,
                45,
                peerbridge_mobile::api::escalation::ConsultationKind::Chat,
            )
            .await
            .expect("consultation");
        assert_eq!(peer.client.my_consultations().await.expect("log").len(), 1);

        // The server holds no plaintext of what was said.
        use peerbridge_server::delivery::entities::log_entry;
        use peerbridge_server::escalation::entities::excerpt;
        use sea_orm::EntityTrait;
        let mut stored: Vec<Vec<u8>> = excerpt::Entity::find()
            .all(&app.state.db)
            .await
            .expect("rows")
            .into_iter()
            .map(|e| e.ciphertext)
            .collect();
        stored.extend(
            log_entry::Entity::find()
                .all(&app.state.db)
                .await
                .expect("rows")
                .into_iter()
                .filter_map(|e| e.payload),
        );
        assert!(stored.len() > 4);
        for s in said {
            let needle = s.as_bytes();
            assert!(
                !stored
                    .iter()
                    .any(|b| b.windows(needle.len()).any(|w| w == needle))
            );
        }
    }
}

/// When the peer supporter is the one at risk, the service user's flag names them. A flag
/// raised while the server cannot be reached waits on the phone under its one client id and
/// reaches the clinic once when the server is back; its raiser then follows it: received,
/// acknowledged, resolved (and nobody else can).
#[tokio::test]
async fn a_service_users_flag_about_the_peer_raised_offline_reaches_the_clinic_once_and_its_raiser_follows_it()
 {
    use peerbridge_mobile::api::escalation::{FlagOutcome, FlagStatus};
    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let op = app.bootstrap_operator().await;
        let (home, hp_home) = clinic(&app, &op, "Haukeland", "vest").await;
        let admin = app
            .create_staff(&op, home, "clinic_admin", "Arne Admin")
            .await;
        let hp = staff_sdk(&app, &hp_home).await;
        hp.client.ensure_escalation_key().await.expect("key");
        on_duty(
            &app,
            &admin,
            home,
            &[hp.user_id],
            [
                "En sykepleier tar kontakt.",
                "Ein sjukepleiar tek kontakt.",
                "A nurse will call.",
            ],
        )
        .await;
        // The service user's phone reaches the server through a relay that can lose answers.
        let relay = peerbridge_tests::lossy::LossyProxy::start(&app.base).await;
        let su = enroll_at(
            &relay.base,
            &app,
            &hp_home,
            home,
            "service_user",
            "Solveig Brukersen",
            "+47 911 11 111",
        )
        .await;
        let peer = enroll(
            &app,
            &hp_home,
            home,
            "peer",
            "Per Likemann",
            "+47 922 22 222",
        )
        .await;
        approved(&hp, home, &peer, profile(&["nb"], &[], false)).await;
        let (_, conv) = introduced(&hp, home, &su, &peer).await;
        peer.client
            .send_text(
                conv,
                "Ærlig talt orker jeg ikke mer, jeg vil ikke leve lenger",
            )
            .await
            .expect("send");
        let seqs: Vec<u64> = su
            .client
            .sync(conv)
            .await
            .expect("sync")
            .iter()
            .filter_map(|e| match e {
                Event::Text { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect();
        assert_eq!(seqs.len(), 1);

        // The server goes away: the flag stays on the phone.
        app.shutdown.shutdown().await;
        let e = su
            .client
            .raise_flag(
                conv,
                RiskCategory::SuicideRisk,
                Severity::Urgent,
                "Han skriver at han ikke vil leve.",
                &seqs,
            )
            .await
            .expect_err("the server is down");
        assert_eq!(e.code(), "network");
        let queued = su.client.queued_flags().expect("queued");
        assert_eq!(queued.len(), 1);

        // Back on the same address: the next sync delivers it, once.
        let addr = app.base.trim_start_matches("http://").to_owned();
        let back = app.spawn_sibling(|raw| raw.bind = addr.clone()).await;
        let events = su.client.sync_all().await.expect("sync after the restart");
        let raised: Vec<(uuid::Uuid, uuid::Uuid)> = events
            .iter()
            .filter_map(|e| match e {
                Event::FlagRaised {
                    flag,
                    client_id,
                    asked,
                    ..
                } => {
                    assert!(asked);
                    Some((*flag, *client_id))
                }
                _ => None,
            })
            .collect();
        assert_eq!(raised.len(), 1, "{events:?}");
        let (flag, client_id) = raised[0];
        assert_eq!(
            client_id, queued[0].client_id,
            "the same flag, not a new one"
        );
        assert!(su.client.queued_flags().expect("queued").is_empty());
        let again = su.client.sync_all().await.expect("sync");
        assert!(!again.iter().any(|e| matches!(e, Event::FlagRaised { .. })));
        {
            use peerbridge_server::escalation::entities::flag as flags;
            use sea_orm::{EntityTrait, PaginatorTrait};
            let stored = flags::Entity::find()
                .count(&back.state.db)
                .await
                .expect("count");
            assert_eq!(stored, 1);
        }

        // The clinician opens it: the person at risk is the peer supporter.
        let opened = hp.client.open_flag(flag).await.expect("opens and verifies");
        assert_eq!(opened.flag.subject_id, peer.user_id);
        assert_eq!(opened.flag.raised_by, su.user_id);
        assert_eq!(opened.lines.len(), 1);
        let who = hp
            .client
            .flag_subject(
                flag,
                "Ringer likepersonen: han skriver at han ikke vil leve.",
            )
            .await
            .expect("identity");
        assert_eq!(who.user_id, peer.user_id);
        assert_eq!(who.display_name.as_deref(), Some("Per Likemann"));

        // The raiser follows it; the person it is about cannot.
        let progress = su.client.flag_progress(flag).await.expect("progress");
        assert_eq!(progress.status, FlagStatus::Open);
        assert!(matches!(
            peer.client.flag_progress(flag).await,
            Err(SdkError::NotFound(_))
        ));
        hp.client.acknowledge_flag(flag).await.expect("ack");
        assert_eq!(
            su.client
                .flag_progress(flag)
                .await
                .expect("progress")
                .status,
            FlagStatus::Acknowledged
        );
        hp.client
            .resolve_flag(flag, FlagOutcome::ContactedThePerson, None)
            .await
            .expect("resolve");
        let mine = su.client.my_flags().await.expect("mine");
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].status, FlagStatus::Resolved);
        assert!(mine[0].resolved_at.is_some());

        // The server stores a flag but its answer is lost on the way: the phone's retry is
        // the same flag, stored once.
        peer.client
            .send_text(conv, "Jeg har skrevet et brev til familien min")
            .await
            .expect("send");
        let seq = su
            .client
            .sync(conv)
            .await
            .expect("sync")
            .iter()
            .find_map(|e| match e {
                Event::Text { seq, .. } => Some(*seq),
                _ => None,
            })
            .expect("received");
        relay.lose_answers("POST", "/flags", 1);
        let receipt = su
            .client
            .raise_flag(
                conv,
                RiskCategory::SuicideRisk,
                Severity::Imminent,
                "",
                &[seq],
            )
            .await
            .expect("stored despite the lost answer");
        assert_eq!(relay.lost(), 1, "the first answer was lost");
        {
            use peerbridge_server::escalation::entities::flag as flags;
            use sea_orm::EntityTrait;
            let stored = flags::Entity::find()
                .all(&back.state.db)
                .await
                .expect("read");
            assert_eq!(stored.len(), 2, "one flag per raise");
            assert!(stored.iter().any(|f| f.id == receipt.id));
        }
        assert!(su.client.queued_flags().expect("queued").is_empty());

        // Nobody left to alert: the conversation is told plainly that the clinic received
        // it, never (not even in a reader's app) that a clinician was asked.
        {
            use peerbridge_server::accounts::entities::user;
            use sea_orm::prelude::Expr;
            use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
            user::Entity::update_many()
                .col_expr(user::Column::Status, Expr::value("deactivated"))
                .filter(user::Column::ClinicId.eq(home))
                .filter(user::Column::Role.is_in(["hp", "clinic_admin"]))
                .exec(&back.state.db)
                .await
                .expect("deactivate");
        }
        let lonely = su
            .client
            .help_now(conv, "", &[])
            .await
            .expect("stored all the same");
        assert!(!lonely.asked);
        let told = peer.client.sync(conv).await.expect("sync");
        let notices: Vec<(&str, &str)> = told
            .iter()
            .filter_map(|e| match e {
                Event::Notice { kind, text, .. } => Some((kind.as_str(), text.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(notices.last().map(|(k, _)| *k), Some("info"), "{notices:?}");
        assert!(
            notices
                .last()
                .is_some_and(|(_, t)| t.contains("ingen har bekreftet")),
            "{notices:?}"
        );
        back.shutdown.shutdown().await;
    }
}

/// Who reads an excerpt is the clinic's decision, not the server's. A clinic admin's device
/// creates the clinic's escalation authority and certifies an HP device's key after
/// comparing fingerprints (a wrong fingerprint is refused). The service user's phone pins
/// the authority from the HP's invite link, the peer's on first use. A reader the server
/// adds (a device it made up, whose key its own device signed and a key of the server's
/// certified) is listed by the server but gets no copy; nor does a real HP whose key is not
/// certified yet; after the server swaps in an authority of its own, pinned phones still
/// seal only to the certified device. The admin holds no copy it could not open.
#[tokio::test]
async fn only_keys_the_clinic_certified_receive_an_excerpt() {
    use ed25519_dalek::{Signer, SigningKey};
    use peerbridge_mobile::api::EnrolleeRole;
    use peerbridge_openapi::signed::{escalation_certificate_message, escalation_key_message};
    use peerbridge_server::accounts::entities::device;
    use peerbridge_server::escalation::entities::{authority, escalation_key, excerpt};
    use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, Set};

    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let op = app.bootstrap_operator().await;
        let (home, hp_home) = clinic(&app, &op, "Haukeland", "vest").await;
        let admin_staff = app
            .create_staff(&op, home, "clinic_admin", "Arne Admin")
            .await;
        let night_staff = app.create_staff(&op, home, "hp", "Nina Natt").await;
        let admin = staff_sdk(&app, &admin_staff).await;
        let hp = staff_sdk(&app, &hp_home).await;
        let night = staff_sdk(&app, &night_staff).await;
        for d in [&hp, &night] {
            d.client.ensure_escalation_key().await.expect("key");
        }
        let device_of = |d: &Device| d.client.session().expect("s").expect("s").device_id;
        let (hp_device, night_device) = (device_of(&hp), device_of(&night));
        on_duty(
            &app,
            &admin_staff,
            home,
            &[hp.user_id, night.user_id],
            [
                "Klinikken tar kontakt.",
                "Klinikken tek kontakt.",
                "The clinic will contact you.",
            ],
        )
        .await;

        // The admin's device creates the authority and certifies the day HP's key, after
        // reading its fingerprint off the HP's screen; someone else's fingerprint is refused.
        let created = admin
            .client
            .setup_escalation_authority()
            .await
            .expect("authority");
        assert_eq!(created.clinic_id, home);
        let hp_fp = hp
            .client
            .escalation_key_fingerprint()
            .expect("fp")
            .expect("fp");
        let night_fp = night
            .client
            .escalation_key_fingerprint()
            .expect("fp")
            .expect("fp");
        let review = admin.client.escalation_keys().await.expect("review");
        assert_eq!(review.len(), 2);
        assert!(review.iter().all(|k| !k.certified));
        assert!(
            review
                .iter()
                .any(|k| k.device_id == hp_device && k.fingerprint == hp_fp)
        );
        assert!(matches!(
            admin
                .client
                .certify_escalation_key(hp_device, night_fp.clone())
                .await,
            Err(SdkError::InvalidInput(_))
        ));
        assert!(matches!(
            hp.client
                .certify_escalation_key(night_device, night_fp)
                .await,
            Err(SdkError::Forbidden(_))
        ));
        admin
            .client
            .certify_escalation_key(hp_device, hp_fp.to_lowercase())
            .await
            .expect("certified");
        // Publishing the same key again (every sign-in) keeps its certificate.
        hp.client.ensure_escalation_key().await.expect("again");
        let review = admin.client.escalation_keys().await.expect("review");
        assert!(
            review
                .iter()
                .any(|k| k.device_id == hp_device && k.certified)
        );
        assert!(
            review
                .iter()
                .any(|k| k.device_id == night_device && !k.certified)
        );

        // The service user enrolls with the link the HP's app made (it carries the
        // authority the HP's device pinned); the peer with the bare code.
        let invite = hp
            .client
            .create_invite(
                home,
                EnrolleeRole::ServiceUser,
                Some("Solveig Brukersen".into()),
                Some("+47 911 11 111".into()),
            )
            .await
            .expect("invite");
        assert!(
            invite.qr_payload.contains("&authority="),
            "{}",
            invite.qr_payload
        );
        let su = enroll_with(&app.base, &invite.qr_payload).await;
        assert_eq!(
            su.client.escalation_authority_fingerprint().expect("pin"),
            admin
                .client
                .escalation_authority_fingerprint()
                .expect("pin")
        );
        let peer = enroll(
            &app,
            &hp_home,
            home,
            "peer",
            "Per Likemann",
            "+47 922 22 222",
        )
        .await;
        assert_eq!(
            peer.client.escalation_authority_fingerprint().expect("pin"),
            None
        );
        approved(&hp, home, &peer, profile(&["nb"], &[], false)).await;
        let (_, conv) = introduced(&hp, home, &su, &peer).await;
        su.client
            .send_text(conv, "Jeg orker ikke mer, jeg vil ta livet mitt")
            .await
            .expect("send");
        let seqs = seqs_of(&peer.client.sync(conv).await.expect("sync"));

        // The server adds a reader: a device of its own making on the HP's account, its key
        // signed by that device (all the old check asked for) and "certified" by a key of
        // the server's.
        let rogue_device = SigningKey::from_bytes(&[9; 32]);
        let rogue_authority = SigningKey::from_bytes(&[10; 32]);
        let rogue_hpke = peerbridge_mls::excerpt::EscalationKey::generate().expect("hpke");
        let rogue_id = Uuid::new_v4();
        device::ActiveModel {
            id: Set(rogue_id),
            user_id: Set(hp.user_id),
            public_key: Set(rogue_device.verifying_key().to_bytes().to_vec()),
            label: Set("Workstation".into()),
            created_at: Set(chrono::Utc::now()),
            last_seen_at: Set(None),
            revoked_at: Set(None),
            tokens_not_before: Set(None),
            push_url: Set(None),
            push_p256dh: Set(None),
            push_auth: Set(None),
            stream_seen_at: Set(None),
        }
        .insert(&app.state.db)
        .await
        .expect("rogue device");
        escalation_key::ActiveModel {
            device_id: Set(rogue_id),
            public_key: Set(rogue_hpke.public.clone()),
            signature: Set(rogue_device
                .sign(&escalation_key_message(&rogue_hpke.public))
                .to_bytes()
                .to_vec()),
            created_at: Set(chrono::Utc::now()),
            certificate: Set(Some(
                rogue_authority
                    .sign(&escalation_certificate_message(
                        home,
                        rogue_id,
                        &rogue_hpke.public,
                    ))
                    .to_bytes()
                    .to_vec(),
            )),
        }
        .insert(&app.state.db)
        .await
        .expect("rogue key");
        // The server does offer it (so its absence below is the client's doing).
        let peer_principal = peerbridge_server::auth::extract::Principal {
            user_id: peer.user_id,
            device_id: device_of(&peer),
            clinic_id: Some(home),
            role: peerbridge_mobile::Role::Peer,
        };
        let listed: Vec<String> =
            peerbridge_server::escalation::service::recipients(&app.state, &peer_principal, conv)
                .await
                .expect("recipients")
                .into_iter()
                .map(|r| r.device_id.to_string())
                .collect();
        for d in [rogue_id, hp_device, night_device] {
            assert!(listed.contains(&d.to_string()), "{d} listed");
        }

        let copies = |flag: Uuid| {
            let db = app.state.db.clone();
            async move {
                let mut d: Vec<Uuid> = excerpt::Entity::find()
                    .filter(excerpt::Column::FlagId.eq(flag))
                    .all(&db)
                    .await
                    .expect("rows")
                    .into_iter()
                    .map(|e| e.device_id)
                    .collect();
                d.sort();
                d
            }
        };
        let flag = peer
            .client
            .raise_flag(conv, RiskCategory::SuicideRisk, Severity::Urgent, "", &seqs)
            .await
            .expect("flag");
        assert_eq!(copies(flag.id).await, vec![hp_device]);
        // The peer's app set no language: the clinic's bokmål wording.
        assert_eq!(flag.notice, "Klinikken tar kontakt.");
        let opened = hp
            .client
            .open_flag(flag.id)
            .await
            .expect("the certified HP reads it");
        assert_eq!(opened.lines.len(), 1);
        assert!(matches!(
            night.client.open_flag(flag.id).await,
            Err(SdkError::NotFound(_))
        ));
        // The peer pinned the authority on first use.
        assert_eq!(
            peer.client.escalation_authority_fingerprint().expect("pin"),
            admin
                .client
                .escalation_authority_fingerprint()
                .expect("pin")
        );

        // The server swaps in its own authority: the service user's phone (pinned from the
        // link) still seals only to the device the clinic certified.
        let mut a = authority::Entity::find_by_id(home)
            .one(&app.state.db)
            .await
            .expect("row")
            .expect("row")
            .into_active_model();
        a.public_key = Set(rogue_authority.verifying_key().to_bytes().to_vec());
        a.update(&app.state.db).await.expect("swap");
        // The service user reads the app in nynorsk: the clinic answers in nynorsk.
        su.client
            .set_locale(peerbridge_mobile::api::escalation::Locale::Nn)
            .expect("locale");
        let help = su
            .client
            .help_now(conv, "Kan noen ringe meg?", &[])
            .await
            .expect("help now");
        assert_eq!(help.notice, "Klinikken tek kontakt.");
        assert_eq!(copies(help.id).await, vec![hp_device]);
        hp.client.open_flag(help.id).await.expect("opens");

        // The admin's device is at the top of the ladder but published no key: it holds no
        // copy it could not open.
        let admin_device = device_of(&admin);
        for f in [flag.id, help.id] {
            assert!(!copies(f).await.contains(&admin_device));
        }

        // The night HP's device was not listening when either flag was raised (no notice
        // could reach it); when it connects it still hears of both.
        let mut night_events = listen(&night.client);
        let mut heard = std::collections::BTreeSet::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !(heard.contains(&flag.id) && heard.contains(&help.id)) {
            let batch = tokio::time::timeout_at(deadline, night_events.recv())
                .await
                .expect("told of the flags raised while away within 20 s")
                .expect("loop");
            for e in batch {
                if let Event::FlagChanged { flag } = e {
                    heard.insert(flag);
                }
            }
        }
    }
}

/// Rows the server holds that a person's draft could have caused: the conversation's log
/// entries and the clinic's flags.
async fn sent_and_flagged(app: &TestApp, conv: Uuid) -> (u64, u64) {
    use peerbridge_server::delivery::entities::log_entry;
    use peerbridge_server::escalation::entities::flag as flags;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let entries = log_entry::Entity::find()
        .filter(log_entry::Column::ConversationId.eq(conv))
        .count(&app.state.db)
        .await
        .expect("count");
    let flagged = flags::Entity::find()
        .count(&app.state.db)
        .await
        .expect("count");
    (entries, flagged)
}

#[tokio::test]
async fn a_risky_draft_offers_its_writer_help_and_nothing_is_sent_or_flagged_until_they_act() {
    use peerbridge_mobile::api::escalation::Locale;
    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let op = app.bootstrap_operator().await;
        let (home, hp_home) = clinic(&app, &op, "Haukeland", "vest").await;
        let hp = staff_sdk(&app, &hp_home).await;
        hp.client.ensure_escalation_key().await.expect("key");
        let su = enroll(
            &app,
            &hp_home,
            home,
            "service_user",
            "Solveig Brukersen",
            "+47 911 11 111",
        )
        .await;
        let peer = enroll(
            &app,
            &hp_home,
            home,
            "peer",
            "Per Likemann",
            "+47 922 22 222",
        )
        .await;
        approved(&hp, home, &peer, profile(&["nb", "nn"], &[], false)).await;
        let (_, conv) = introduced(&hp, home, &su, &peer).await;
        // The clinic's own numbers in nynorsk; the service user reads the app in nynorsk.
        app.client()
            .put(
                &format!("/v1/clinics/{home}/crisis-resources"),
                Some(hp_home.token()),
                json!({ "locale": "nn", "resources": [
                    { "label": "Naudnummer", "phone": "113" },
                    { "label": "Klinikken på dagtid", "phone": "+47 55 97 50 00" }] }),
            )
            .await
            .expect(200);
        su.client.set_locale(Locale::Nn).expect("locale");
        let before = sent_and_flagged(&app, conv).await;

        // Safe drafts, including ones about the medication routine, offer nothing.
        for safe in [
            "Har fylt dosetten for neste veke, og no et eg middag.",
            "Takk for praten i går, det hjelpte å høyre korleis du gjorde det.",
            "Eg gruar meg litt til legetimen på torsdag.",
        ] {
            assert_eq!(
                su.client.draft_offer(safe).await.expect("offer"),
                None,
                "{safe}"
            );
        }
        // A risky draft: the clinic's numbers in the writer's language, and the button.
        let draft = "Eg orkar ikkje meir, eg vil ikkje leve lenger";
        let offer = su
            .client
            .draft_offer(draft)
            .await
            .expect("offer")
            .expect("a risky draft gets an offer");
        assert_eq!(offer.resources.locale, Locale::Nn);
        let phones: Vec<&str> = offer
            .resources
            .resources
            .iter()
            .map(|r| r.phone.as_str())
            .collect();
        assert_eq!(phones, ["113", "+47 55 97 50 00"]);
        assert!(offer.help_now && !offer.debrief);
        // A peer writing the same gets their supervisors' urgent talk instead.
        let peers = peer
            .client
            .draft_offer("I can't do this anymore, I want to end it all")
            .await
            .expect("offer")
            .expect("the peer's risky draft gets an offer");
        assert!(!peers.help_now && peers.debrief);
        assert_eq!(peers.resources.locale, Locale::Nb);

        // Nothing left the device: no message, no flag, nothing queued to go.
        assert_eq!(sent_and_flagged(&app, conv).await, before);
        assert!(su.client.queued_flags().expect("queued").is_empty());
        assert!(
            !peer
                .client
                .sync(conv)
                .await
                .expect("sync")
                .iter()
                .any(|e| matches!(e, Event::Text { .. })),
            "the counterpart received nothing"
        );

        // Positive control: the person's own actions are what the counts see.
        su.client.send_text(conv, draft).await.expect("send");
        su.client.help_now(conv, "", &[]).await.expect("help now");
        let (entries, flagged) = sent_and_flagged(&app, conv).await;
        assert!(entries > before.0);
        assert_eq!(flagged, before.1 + 1);
        // ...and the counterpart's sync, which showed no text above, shows the one sent.
        assert!(
            peer.client
                .sync(conv)
                .await
                .expect("sync")
                .iter()
                .any(|e| matches!(e, Event::Text { body, .. } if body == draft)),
            "the peer receives what the person chose to send"
        );

        // Offline, the offer still comes: the clinic's list as last fetched, or the national
        // numbers on a device that never fetched one.
        app.shutdown.shutdown().await;
        let offline = su
            .client
            .draft_offer(draft)
            .await
            .expect("offer offline")
            .expect("offer");
        assert_eq!(offline.resources, offer.resources);
        hp.client.set_locale(Locale::En).expect("locale");
        let national = hp
            .client
            .draft_offer("I am going to kill myself tonight")
            .await
            .expect("offer offline")
            .expect("offer");
        assert_eq!(national.resources.locale, Locale::En);
        assert_eq!(national.resources.resources[0].phone, "113");
        assert!(!national.help_now && !national.debrief);
    }
}
