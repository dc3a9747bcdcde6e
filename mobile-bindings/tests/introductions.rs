//! An introduction end to end through the SDK, on SQLite and PostgreSQL: an HP of the
//! peer's clinic approves the peer, the service user's HP records needs, gets suggestions
//! and proposes; both accept; they chat under aliases; a withdrawn consent and a consent
//! forged by the server do not reveal anything; both consent and each receives the other's
//! identity card; the HP cannot join with one `invite_hp` consent and joins with both.
//! Everything the two parties' clients receive before the reveal is recorded and searched
//! for anything that identifies the counterpart or links their other introductions.

use peerbridge_mobile::api::introductions::{
    ConsentScope, Gender, IntroductionState, Needs, Topic,
};
use peerbridge_mobile::{Event, IdentityCard, SdkError};
use peerbridge_tests::{TestApp, backends};
use uuid::Uuid;

mod common;

use common::*;

#[tokio::test]
async fn an_introduction_from_suggestion_to_reveal_and_the_hp_invited_by_both() {
    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let op = app.bootstrap_operator().await;
        let (home, hp_home) = clinic(&app, &op, "Haukeland", "vest").await;
        let (away, hp_away) = clinic(&app, &op, "Stavanger", "vest").await;
        let hp = staff_sdk(&app, &hp_home).await;
        let hp_b = staff_sdk(&app, &hp_away).await;
        hp.client
            .set_topics(
                home,
                vec![
                    Topic {
                        key: "disclosure".into(),
                        label: "Disclosure".into(),
                    },
                    Topic {
                        key: "newly_diagnosed".into(),
                        label: "Newly diagnosed".into(),
                    },
                ],
            )
            .await
            .expect("topics");

        let su = enroll(
            &app,
            &hp_home,
            home,
            "service_user",
            "Solveig Brukersen",
            "+47 911 11 111",
        )
        .await;
        let other_su = enroll(
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
            &hp_away,
            away,
            "peer",
            "Per Likemann",
            "+47 922 22 222",
        )
        .await;
        let local_peer = enroll(&app, &hp_home, home, "peer", "Lise Lokal", "+47 944 44 444").await;
        let first_peer = enroll(
            &app,
            &hp_home,
            home,
            "peer",
            "Frida Først",
            "+47 955 55 555",
        )
        .await;

        // The peer's clinic approves them for remote support; two local peers too.
        approved(
            &hp_b,
            away,
            &peer,
            profile(&["nb", "en"], &["disclosure"], true),
        )
        .await;
        approved(&hp, home, &local_peer, profile(&["so"], &[], false)).await;
        approved(
            &hp,
            home,
            &first_peer,
            profile(&["nb"], &["disclosure"], false),
        )
        .await;

        // Each party already has another introduction, to show nothing links them.
        let earlier = hp
            .client
            .propose_introduction(home, &proposal(su.user_id, first_peer.user_id))
            .await
            .expect("propose");
        let earlier_conv = both_accept(&su, &first_peer, earlier.id).await;
        su.client
            .send_text(earlier_conv, "hei fra før")
            .await
            .expect("send");
        let other = hp
            .client
            .propose_introduction(home, &proposal(other_su.user_id, peer.user_id))
            .await
            .expect("propose");
        let other_conv = both_accept(&other_su, &peer, other.id).await;
        peer.client
            .send_text(other_conv, "hei, Ola")
            .await
            .expect("send");
        record(
            &other_su,
            other_su.client.sync(other_conv).await.expect("sync"),
        );

        // Needs, suggestions (the remote peer first, explained), proposal.
        hp.client
            .set_needs(
                home,
                su.user_id,
                &Needs {
                    languages: vec!["nb".into()],
                    preferred_gender: Some(Gender::Woman),
                    preferred_age_bands: vec![],
                    region: None,
                    topics: vec!["disclosure".into()],
                    accepts_remote: true,
                },
            )
            .await
            .expect("needs");
        let s = hp
            .client
            .suggestions(home, su.user_id)
            .await
            .expect("suggestions");
        assert_eq!(s[0].peer_id, peer.user_id, "{s:#?}");
        assert!(s[0].remote);
        assert!(
            s[0].parts
                .iter()
                .any(|p| p.explanation.contains("speaks nb"))
        );
        assert!(s.iter().any(|x| x.peer_id == local_peer.user_id));
        assert!(
            !s.iter().any(|x| x.peer_id == first_peer.user_id),
            "already introduced"
        );
        let intro = hp
            .client
            .propose_introduction(home, &proposal(su.user_id, peer.user_id))
            .await
            .expect("propose")
            .id;

        // Both see an alias and a blurb; both accept; they chat.
        let su_view = su.client.introduction(intro).await.expect("view");
        let peer_view = peer.client.introduction(intro).await.expect("view");
        assert_eq!(su_view.counterpart_alias, peer_view.my_alias);
        let conv = both_accept(&su, &peer, intro).await;
        su.client
            .send_text(conv, "Hei, takk for at du ville snakke med meg")
            .await
            .expect("send");
        let got = record(&peer, peer.client.sync(conv).await.expect("sync"));
        assert_eq!(
            texts(&got),
            vec!["Hei, takk for at du ville snakke med meg"]
        );
        peer.client
            .send_text(conv, "Så fint å høre fra deg")
            .await
            .expect("send");
        let got = record(&su, su.client.sync(conv).await.expect("sync"));
        assert_eq!(texts(&got), vec!["Så fint å høre fra deg"]);
        assert_eq!(
            su.client.safety_code(conv).expect("code"),
            peer.client.safety_code(conv).expect("code")
        );

        su.client
            .set_identity_card(&IdentityCard {
                first_name: Some("Solveig".into()),
                phone: Some("+47 911 11 111".into()),
                photo: None,
            })
            .expect("card");
        peer.client
            .set_identity_card(&IdentityCard {
                first_name: Some("Per".into()),
                phone: Some("+47 922 22 222".into()),
                photo: Some(vec![0xFF, 0xD8]),
            })
            .expect("card");

        // A withdrawn consent prevents the reveal.
        peer.client
            .consent(intro, ConsentScope::Reveal)
            .await
            .expect("consent");
        peer.client
            .withdraw_consent(intro, ConsentScope::Reveal)
            .await
            .expect("withdraw");
        // The server forges the peer's grant: a record not signed by the peer's leaf; the
        // right statement correctly signed by a key that is no member of the group; and the
        // peer's real grant from another introduction, copied into this one.
        forge_grant(&app, intro).await;
        let group = {
            use peerbridge_server::delivery::entities::conversation;
            use sea_orm::EntityTrait;
            conversation::Entity::find_by_id(conv)
                .one(&app.state.db)
                .await
                .expect("read")
                .expect("conversation")
                .group_id
        };
        let outsider = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let at = chrono::Utc::now().timestamp() + 120;
        let statement = peerbridge_mobile::api::signed::consent_statement(
            intro,
            &group,
            ConsentScope::Reveal,
            peerbridge_mobile::api::introductions::ConsentAction::Grant,
            at,
        );
        insert_consent(
            &app,
            intro,
            at,
            outsider.verifying_key().to_bytes().to_vec(),
            ed25519_dalek::Signer::sign(&outsider, &statement)
                .to_bytes()
                .to_vec(),
        )
        .await;
        peer.client
            .consent(other.id, ConsentScope::Reveal)
            .await
            .expect("consent elsewhere");
        {
            use peerbridge_server::introductions::entities::consent;
            use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
            let elsewhere = consent::Entity::find()
                .filter(consent::Column::IntroductionId.eq(other.id))
                .one(&app.state.db)
                .await
                .expect("read")
                .expect("the peer's grant in the other introduction");
            insert_consent(
                &app,
                intro,
                elsewhere.issued_at + 300,
                elsewhere.signature_key.clone(),
                elsewhere.signature.clone(),
            )
            .await;
            insert_consent(
                &app,
                intro,
                elsewhere.issued_at,
                elsewhere.signature_key,
                elsewhere.signature,
            )
            .await;
        }
        let state = su
            .client
            .consent(intro, ConsentScope::Reveal)
            .await
            .expect("consent");
        assert!(state.my_reveal && !state.their_reveal, "{state:?}");
        assert_eq!(
            state.rejected, 4,
            "every forged record was rejected: {state:?}"
        );
        // The server now drops the peer's withdrawal, replaying the earlier grant: the
        // service user's client has seen the withdrawal and is not taken back.
        {
            use peerbridge_server::introductions::entities::consent;
            use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
            let dropped = consent::Entity::delete_many()
                .filter(consent::Column::IntroductionId.eq(intro))
                .filter(consent::Column::Action.eq("withdraw"))
                .exec(&app.state.db)
                .await
                .expect("drop");
            assert_eq!(dropped.rows_affected, 1);
        }
        let replayed = su.client.consent_state(intro).await.expect("state");
        assert!(
            replayed.my_reveal && !replayed.their_reveal && !replayed.card_sent,
            "{replayed:?}"
        );
        // Nor is the peer's own client: it knows it withdrew.
        let own = peer.client.consent_state(intro).await.expect("state");
        assert!(
            !own.my_reveal && own.their_reveal && !own.card_sent,
            "{own:?}"
        );
        assert!(
            !state.card_sent,
            "no card without the counterpart's valid consent"
        );
        let got = record(&peer, peer.client.sync(conv).await.expect("sync"));
        assert!(cards(&got).is_empty());
        let events = record(&su, su.client.sync(conv).await.expect("sync"));
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::ConsentRejected { .. })),
            "{events:?}"
        );

        // Everything both received before the reveal: no identity of the counterpart, nothing
        // of their other introductions.
        let leaf_of = |d: &Device, c: Uuid| {
            d.client
                .members(c)
                .expect("members")
                .into_iter()
                .find(|m| m.is_me)
                .expect("me")
                .device_key
        };
        let peer_in_other = leaf_of(&peer, other_conv);
        let su_in_earlier = leaf_of(&su, earlier_conv);
        assert_absent(
            "the service user",
            &su.wire.snapshot(),
            &[("introduction", intro.to_string())],
            &[
                ("user id", peer.user_id.to_string()),
                ("name", "Per Likemann".into()),
                ("first name", "Per\"".into()),
                ("phone", "922 22 222".into()),
                ("clinic", away.to_string()),
                ("other introduction", other.id.to_string()),
                ("other conversation", other_conv.to_string()),
                ("alias in the other introduction", other.peer_alias.clone()),
                ("leaf key in the other introduction", peer_in_other.clone()),
                ("device key", peer.client.device_public_key()),
            ],
        );
        assert_absent(
            "the peer",
            &peer.wire.snapshot(),
            &[("introduction", intro.to_string())],
            &[
                ("user id", su.user_id.to_string()),
                ("name", "Solveig".into()),
                ("phone", "911 11 111".into()),
                ("clinic", home.to_string()),
                ("introducing HP", hp.user_id.to_string()),
                ("other introduction", earlier.id.to_string()),
                ("other conversation", earlier_conv.to_string()),
                (
                    "alias in the other introduction",
                    earlier.service_user_alias.clone(),
                ),
                ("leaf key in the other introduction", su_in_earlier.clone()),
                ("device key", su.client.device_public_key()),
            ],
        );

        // Both consent: each sends its card once, inside the group, and gets the other's.
        let p = peer
            .client
            .consent(intro, ConsentScope::Reveal)
            .await
            .expect("consent");
        assert!(p.my_reveal && p.their_reveal && p.card_sent, "{p:?}");
        let s2 = su.client.consent_state(intro).await.expect("state");
        assert!(s2.card_sent, "{s2:?}");
        let got = su.client.sync(conv).await.expect("sync");
        assert_eq!(
            cards(&got),
            vec![(Some("Per".into()), Some("+47 922 22 222".into()))]
        );
        let got = peer.client.sync(conv).await.expect("sync");
        assert_eq!(
            cards(&got),
            vec![(Some("Solveig".into()), Some("+47 911 11 111".into()))]
        );
        let card = su
            .client
            .counterpart_card(intro)
            .expect("state")
            .expect("kept");
        assert_eq!(card.photo.as_deref(), Some([0xFF, 0xD8].as_slice()));
        assert!(matches!(
            peer.client
                .withdraw_consent(intro, ConsentScope::Reveal)
                .await,
            Err(SdkError::Conflict(_))
        ));

        // The HP cannot join with one invite_hp consent, and joins with both.
        su.client
            .consent(intro, ConsentScope::InviteHp)
            .await
            .expect("consent");
        let refused = hp.client.join_introduction(conv, intro).await;
        assert!(
            matches!(refused, Err(SdkError::NotFound(_) | SdkError::Forbidden(_))),
            "{refused:?}"
        );
        peer.client
            .consent(intro, ConsentScope::InviteHp)
            .await
            .expect("consent");
        let joined = hp
            .client
            .join_introduction(conv, intro)
            .await
            .expect("the HP joins");
        assert!(joined.iter().any(|e| matches!(e, Event::Joined { .. })));
        for d in [&su, &peer] {
            let events = d.client.sync(conv).await.expect("sync");
            assert!(
                !events
                    .iter()
                    .any(|e| matches!(e, Event::MembershipChangeRefused { .. })),
                "the parties' clients admit the invited HP: {events:?}"
            );
        }
        su.client
            .send_text(conv, "Velkommen, Hanne!")
            .await
            .expect("send");
        let got = hp.client.sync(conv).await.expect("sync");
        assert_eq!(texts(&got), vec!["Velkommen, Hanne!"]);
        let members = peer.client.members(conv).expect("members");
        assert_eq!(members.len(), 3);
    }
}

#[tokio::test]
async fn pause_holds_messages_block_stops_them_and_the_clinic_hears_of_both() {
    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let op = app.bootstrap_operator().await;
        let (home, hp_home) = clinic(&app, &op, "Haukeland", "vest").await;
        let hp = staff_sdk(&app, &hp_home).await;
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
        approved(&hp, home, &peer, profile(&["nb"], &[], false)).await;
        let (intro, conv) = introduced(&hp, home, &su, &peer).await;
        su.client.send_text(conv, "hei").await.expect("send");

        // Paused by the service user: nothing flows until they resume; the peer cannot —
        // although the server had just answered the peer's access to this conversation from
        // its cache (the positive control: the refusal overrules a cached answer).
        access_cached(&app, &peer, conv).await;
        let v = su.client.pause_introduction(intro).await.expect("pause");
        assert_eq!(v.state, IntroductionState::Paused);
        let r = peer.client.send_text(conv, "er du der?").await;
        assert!(matches!(r, Err(SdkError::Conflict(_))), "{r:?}");
        assert!(matches!(
            peer.client.resume_introduction(intro).await,
            Err(SdkError::Forbidden(_))
        ));
        su.client.resume_introduction(intro).await.expect("resume");
        peer.client
            .send_text(conv, "er du der?")
            .await
            .expect("send after resume");
        let got = su.client.sync(conv).await.expect("sync");
        assert_eq!(texts(&got), vec!["er du der?"]);

        // A boundary report reaches the clinic's HP with its note.
        su.client
            .report_boundary(
                intro,
                peerbridge_mobile::api::introductions::BoundaryCategory::DatingRequest,
                Some("asked me out".into()),
            )
            .await
            .expect("report");
        let reports = hp
            .client
            .boundary_reports(home, intro)
            .await
            .expect("reports");
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].note.as_deref(), Some("asked me out"));

        // Blocked by the peer: no further messages either way (cached access or not); the HP
        // sees why.
        access_cached(&app, &su, conv).await;
        access_cached(&app, &peer, conv).await;
        let b = peer.client.block_counterpart(intro).await.expect("block");
        assert!(b.blocked_by_me);
        for d in [&su, &peer] {
            let r = d.client.send_text(conv, "hallo?").await;
            assert!(matches!(r, Err(SdkError::Forbidden(_))), "{r:?}");
        }
        let d = hp
            .client
            .clinic_introduction(home, intro)
            .await
            .expect("detail");
        assert_eq!(
            d.outcome,
            Some(peerbridge_mobile::api::introductions::IntroductionOutcome::BlockedByPeer)
        );
        assert_eq!(
            su.client.introduction(intro).await.expect("view").state,
            IntroductionState::Ended
        );
        let got = su.client.sync(conv).await.expect("sync");
        assert!(texts(&got).is_empty());
    }
}

/// Reads the conversation twice as `d` and shows the server answered the second read's
/// access check (visibility and membership) from its cache.
async fn access_cached(app: &TestApp, d: &Device, conv: Uuid) {
    let cache = app.state.bus.auth_cache();
    d.client.sync(conv).await.expect("sync");
    let (hits, _) = cache.access_counts();
    d.client.sync(conv).await.expect("sync");
    assert!(
        cache.access_counts().0 > hits,
        "the second read was not answered from the access cache"
    );
}
