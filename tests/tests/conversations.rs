//! A peer and their supervising HP talk through the delivery service with the real client
//! core: the server stores only ciphertext, orders the log, refuses stale commits and
//! devices outside the policy, and deletes ciphertext once every device acknowledged it.

use peerbridge_openapi::delivery::{
    ClaimedKeyPackage, CommitAccepted, Conversation, MessageAccepted,
};
use peerbridge_tests::mls_device::{MlsDevice, allow_all, unb64};
use peerbridge_tests::{TestApp, backends};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn a_peer_and_their_supervisor_talk_and_the_server_sees_only_ciphertext() {
    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let c = app.client();
        let op = app.bootstrap_operator().await;
        let (clinic, hp) = app.clinic_with_hp(&op, "Supervision").await;
        let outsider = app.create_staff(&op, clinic, "hp", "Not Assigned").await;
        let peer = app
            .redeem(&app.create_invite(&hp, clinic, "peer").await.code)
            .await;
        let (peer_id, hp_id) = (peer.session.user_id, hp.session.user_id);
        c.post(
            &format!("/v1/clinics/{clinic}/peers/{peer_id}/supervisors"),
            Some(hp.token()),
            json!({ "hp_id": hp_id }),
        )
        .await
        .expect(201);

        let mut p = MlsDevice::new(
            c.clone(),
            peer.token(),
            peer.session.device_id,
            &peer.device,
        );
        let mut h = MlsDevice::new(c.clone(), hp.token(), hp.session.device_id, &hp.device);
        let status = h.upload_key_packages(5).await;
        status.expect(200);
        assert_eq!(status.json()["remaining"], 5);
        assert_eq!(status.json()["has_last_resort"], true);
        p.upload_key_packages(5).await.expect(200);

        // The peer opens the supervision conversation and adds the HP's device.
        let conv: Conversation = c
            .post(
                "/v1/conversations",
                Some(peer.token()),
                json!({ "kind": "supervision", "peer_id": peer_id }),
            )
            .await
            .expect(201)
            .parse();
        assert_eq!(conv.epoch, 0);
        assert!(conv.allowed_users.contains(&hp_id));
        // Someone outside the policy cannot see it, claim for it or be added to it.
        c.get(
            &format!("/v1/conversations/{}", conv.id),
            Some(outsider.token()),
        )
        .await
        .expect_problem(404, "not_found");
        p.claim(conv.id, outsider.session.user_id)
            .await
            .expect_problem(403, "policy_violation");
        let claimed: Vec<ClaimedKeyPackage> = p.claim(conv.id, hp_id).await.expect(200).parse();
        assert_eq!(claimed.len(), 1);
        let opened = p.open_group(conv.id, &conv.group_id, &claimed).await;
        opened.expect(201);
        assert_eq!(opened.parse::<CommitAccepted>().epoch, 1);
        let joined = h.accept_welcomes().await;
        assert_eq!(joined.len(), 1);
        assert_eq!(joined[0].0, conv.id);

        // Messages both ways, in order.
        for i in 0..5 {
            p.send_text(
                conv.id,
                &conv.group_id,
                &format!("hei {i} fra peer"),
                Uuid::new_v4(),
            )
            .await
            .expect(201);
        }
        let (texts, h_cursor) = h.read(conv.id, joined[0].1).await;
        assert_eq!(
            texts,
            (0..5)
                .map(|i| format!("hei {i} fra peer"))
                .collect::<Vec<_>>()
        );
        let reply_id = Uuid::new_v4();
        let first: MessageAccepted = h
            .send_text(conv.id, &conv.group_id, "takk, vi snakkes", reply_id)
            .await
            .expect(201)
            .parse();
        // A retried send (same client id, same ciphertext) stores nothing new. Re-encrypting
        // would change the ciphertext, so the retry replays the stored bytes.
        let page = c
            .get(
                &format!(
                    "/v1/conversations/{}/messages?after={}",
                    conv.id,
                    first.seq - 1
                ),
                Some(hp.token()),
            )
            .await
            .expect(200)
            .json();
        let stored = page["items"][0]["payload"]
            .as_str()
            .expect("payload")
            .to_owned();
        let retry = c
            .post(
                &format!("/v1/conversations/{}/messages", conv.id),
                Some(hp.token()),
                json!({ "client_id": reply_id, "ciphertext": stored }),
            )
            .await;
        retry.expect(200);
        assert_eq!(retry.parse::<MessageAccepted>().seq, first.seq);
        // The same client id with another ciphertext is refused, and stores nothing.
        h.send_text(conv.id, &conv.group_id, "noe helt annet", reply_id)
            .await
            .expect_problem(409, "conflict");
        let (texts, p_cursor) = p.read(conv.id, 0).await;
        assert_eq!(texts, vec!["takk, vi snakkes".to_string()]);

        // The stored ciphertext never contains the plaintext.
        let db = app.db.connect().await;
        let rows = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT payload FROM log_entries WHERE payload IS NOT NULL",
            ))
            .await
            .expect("rows");
        assert!(rows.len() >= 6);
        for r in &rows {
            let payload: Vec<u8> = r.try_get("", "payload").expect("payload");
            for needle in [&b"hei "[..], b"fra peer", b"takk"] {
                assert!(!payload.windows(needle.len()).any(|w| w == needle));
            }
        }

        // Stale commit: the HP commits first; the peer's commit for the same epoch is refused
        // with the current epoch; the peer catches up and retries.
        let gid = peerbridge_mls::GroupId::new(unb64(&conv.group_id)).expect("gid");
        let hp_update = h.mls.self_update(&gid).expect("update");
        let peer_update = p.mls.self_update(&gid).expect("update");
        h.submit(conv.id, &hp_update).await.expect(201);
        h.mls.commit_accepted(&gid, &allow_all).expect("merge");
        let stale = p.submit(conv.id, &peer_update).await;
        stale.expect_problem(409, "stale_epoch");
        assert_eq!(stale.json()["current_epoch"], 2);
        p.mls.commit_rejected(&gid).expect("discard");
        let (_, p_cursor) = p.read(conv.id, p_cursor).await;
        let retry = p.mls.self_update(&gid).expect("update");
        p.submit(conv.id, &retry).await.expect(201);
        p.mls.commit_accepted(&gid, &allow_all).expect("merge");
        p.send_text(conv.id, &conv.group_id, "etter oppdatering", Uuid::new_v4())
            .await
            .expect(201);
        let (texts, h_cursor) = h.read(conv.id, h_cursor).await;
        assert_eq!(texts, vec!["etter oppdatering".to_string()]);
        assert_eq!(
            p.mls.safety_code(&gid).expect("code"),
            h.mls.safety_code(&gid).expect("code")
        );

        // Once both devices acknowledged, the ciphertext is gone.
        let (_, p_cursor) = p.read(conv.id, p_cursor).await;
        p.ack(conv.id, p_cursor).await.expect(200);
        h.ack(conv.id, h_cursor).await.expect(200);
        let left = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT COUNT(*) AS n FROM log_entries WHERE payload IS NOT NULL",
            ))
            .await
            .expect("q")
            .expect("row");
        let n: i64 = left.try_get("", "n").expect("n");
        assert_eq!(n, 0, "{backend:?}");
        let metrics = c.get("/metrics", None).await.text;
        assert!(metrics.contains("peerbridge_ciphertext_deleted_total{reason=\"acknowledged\"}"));

        // The outsider gets 404 on every group endpoint.
        for (m, path) in [
            ("GET", format!("/v1/conversations/{}/messages", conv.id)),
            ("GET", format!("/v1/conversations/{}/group-info", conv.id)),
            ("POST", format!("/v1/conversations/{}/ack", conv.id)),
            ("POST", format!("/v1/conversations/{}/messages", conv.id)),
            ("POST", format!("/v1/conversations/{}/commits", conv.id)),
        ] {
            let method = reqwest::Method::from_bytes(m.as_bytes()).expect("m");
            let body = match m {
                "POST" if path.ends_with("ack") => Some(json!({ "seq": 1 })),
                "POST" if path.ends_with("messages") => {
                    Some(json!({ "client_id": Uuid::new_v4(), "ciphertext": "AAAA" }))
                }
                "POST" => Some(json!({ "epoch": 3, "commit": "AAAA", "group_info": "AAAA" })),
                _ => None,
            };
            let r = c
                .request(method, &path, Some(outsider.token()), body.as_ref())
                .await;
            assert_eq!(r.status, 404, "{m} {path}: {}", r.text);
        }
    }
}

#[tokio::test]
async fn of_two_concurrent_commits_one_wins_and_the_losers_welcome_is_never_delivered() {
    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let mut s = app.supervision_pair().await;
        let c = app.client();
        // The HP registers a second device with key packages, which the peer will try to add.
        let extra = peerbridge_mls::DeviceIdentity::generate();
        let r = c
            .post(
                "/v1/auth/password",
                None,
                json!({ "login": s.hp.login, "password": s.hp.password,
                        "totp_code": app.fresh_totp(&s.hp.totp_secret),
                        "device": peerbridge_tests::api::device_json(&extra, "Laptop") }),
            )
            .await;
        let second: peerbridge_openapi::auth::Session = r.expect(200).parse();
        let mut h2 = MlsDevice::new(c.clone(), &second.access_token, second.device_id, &extra);
        h2.upload_key_packages(2).await.expect(200);
        let claimed: Vec<ClaimedKeyPackage> =
            s.p.claim(s.conv.id, s.hp.session.user_id)
                .await
                .expect(200)
                .parse();
        let kps: Vec<Vec<u8>> = claimed.iter().map(|k| unb64(&k.key_package)).collect();
        let gid = peerbridge_mls::GroupId::new(unb64(&s.conv.group_id)).expect("gid");

        // Both commit for epoch 1 at the same time: the peer adds the laptop, the HP updates.
        let add = s.p.mls.add_members(&gid, &kps).expect("add");
        assert!(add.welcome.is_some());
        let update = s.h.mls.self_update(&gid).expect("update");
        let (ra, ru) = tokio::join!(s.p.submit(s.conv.id, &add), s.h.submit(s.conv.id, &update));
        let statuses = [ra.status, ru.status];
        assert!(
            statuses.contains(&201) && statuses.contains(&409),
            "{statuses:?}"
        );
        let (winner_is_add, loser) = if ra.status == 201 {
            (true, &ru)
        } else {
            (false, &ra)
        };
        assert_eq!(loser.code(), "stale_epoch");
        assert_eq!(loser.json()["current_epoch"], 2);

        if winner_is_add {
            s.p.mls.commit_accepted(&gid, &allow_all).expect("merge");
            s.h.mls.commit_rejected(&gid).expect("discard");
            assert_eq!(
                h2.accept_welcomes().await.len(),
                1,
                "the winner's welcome arrives"
            );
        } else {
            s.h.mls.commit_accepted(&gid, &allow_all).expect("merge");
            s.p.mls.commit_rejected(&gid).expect("discard");
            assert!(
                h2.accept_welcomes().await.is_empty(),
                "a rejected commit's welcome is never delivered"
            );
        }
        // The loser re-syncs and retries; nobody loses a message.
        let (_, pc) = s.p.read(s.conv.id, 0).await;
        let (_, hc) = s.h.read(s.conv.id, s.h_start).await;
        let retry = if winner_is_add {
            let u = s.h.mls.self_update(&gid).expect("update");
            s.h.submit(s.conv.id, &u).await
        } else {
            let kps: Vec<Vec<u8>> =
                s.p.claim(s.conv.id, s.hp.session.user_id)
                    .await
                    .expect(200)
                    .parse::<Vec<ClaimedKeyPackage>>()
                    .iter()
                    .map(|k| unb64(&k.key_package))
                    .collect();
            let a = s.p.mls.add_members(&gid, &kps).expect("add");
            s.p.submit(s.conv.id, &a).await
        };
        retry.expect(201);
        if winner_is_add {
            s.h.mls.commit_accepted(&gid, &allow_all).expect("merge");
        } else {
            s.p.mls.commit_accepted(&gid, &allow_all).expect("merge");
            assert_eq!(h2.accept_welcomes().await.len(), 1);
        }
        let (_, pc) = s.p.read(s.conv.id, pc).await;
        let (_, hc) = s.h.read(s.conv.id, hc).await;
        s.p.send_text(s.conv.id, &s.conv.group_id, "alle tre?", Uuid::new_v4())
            .await
            .expect(201);
        let (texts, _) = s.h.read(s.conv.id, hc).await;
        assert_eq!(texts, vec!["alle tre?".to_string()], "{backend:?}");
        let _ = pc;
    }
}

#[tokio::test]
async fn a_device_outside_the_policy_is_refused_by_the_server_and_if_forced_in_by_the_clients() {
    let app = TestApp::spawn(peerbridge_tests::Backend::Sqlite).await;
    let mut s = app.supervision_pair().await;
    // An HP of the same clinic who does not supervise this peer.
    let op = app.bootstrap_operator().await;
    let outsider = app.create_staff(&op, s.clinic, "hp", "Ikke Tildelt").await;
    let mut o = MlsDevice::new(
        app.client(),
        outsider.token(),
        outsider.session.device_id,
        &outsider.device,
    );
    // The peer's device got hold of the outsider's key package out of band and adds it.
    let kp = o
        .mls
        .generate_key_packages(1)
        .expect("kp")
        .remove(0)
        .key_package;
    let gid = peerbridge_mls::GroupId::new(unb64(&s.conv.group_id)).expect("gid");
    let rogue =
        s.p.mls
            .add_members(&gid, &[kp])
            .expect("client builds the add");
    let r = s.p.submit(s.conv.id, &rogue).await;
    r.expect_problem(403, "policy_violation");
    s.p.mls.commit_rejected(&gid).expect("discard");
    assert!(
        o.accept_welcomes().await.is_empty(),
        "no welcome for a refused add"
    );

    // A compromised server forces the commit into the log anyway: the HP's client, which
    // knows who may be in a supervision conversation, refuses it and says so.
    let rogue =
        s.p.mls
            .add_members(
                &gid,
                &[o.mls
                    .generate_key_packages(1)
                    .expect("kp")
                    .remove(0)
                    .key_package],
            )
            .expect("add");
    use sea_orm::{ConnectionTrait, Statement};
    let db = app.db.connect().await;
    let seq: i64 = {
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                format!(
                    "SELECT last_seq FROM conversations WHERE group_id = x'{}'",
                    hex::encode(unb64(&s.conv.group_id))
                ),
            ))
            .await
            .expect("q")
            .expect("row");
        row.try_get("", "last_seq").expect("seq")
    };
    db.execute_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        "INSERT INTO log_entries (conversation_id, seq, kind, client_id, sender_device_id, epoch, payload, payload_hash, created_at, expires_at) \
         VALUES (?, ?, 'commit', NULL, ?, 1, ?, 'forced', ?, ?)",
        [
            s.conv.id.into(),
            (seq + 1).into(),
            s.peer.session.device_id.into(),
            rogue.commit.clone().into(),
            chrono::Utc::now().into(),
            (chrono::Utc::now() + chrono::Duration::days(1)).into(),
        ],
    ))
    .await
    .expect("forced insert");
    db.execute_unprepared(&format!(
        "UPDATE conversations SET last_seq = {} WHERE id = x'{}'",
        seq + 1,
        hex::encode(s.conv.id.as_bytes())
    ))
    .await
    .expect("bump");
    let allowed: Vec<Vec<u8>> = vec![
        s.peer.device.public_key().to_vec(),
        s.hp.device.public_key().to_vec(),
    ];
    let policy =
        move |cand: &peerbridge_mls::AddCandidate<'_>| allowed.contains(&cand.member.identity);
    let page: peerbridge_openapi::delivery::LogPage = app
        .client()
        .get(
            &format!(
                "/v1/conversations/{}/messages?after={}",
                s.conv.id, s.h_start
            ),
            Some(s.hp.token()),
        )
        .await
        .expect(200)
        .parse();
    let forced = page
        .items
        .iter()
        .find(|e| e.seq == (seq + 1) as u64)
        .expect("the forced entry is served");
    let events =
        s.h.mls
            .process(&unb64(&forced.payload), &policy)
            .expect("processed");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, peerbridge_mls::Event::CommitRefused { .. })),
        "{events:?}"
    );
    assert_eq!(
        s.h.mls.epoch(&gid).expect("epoch").0,
        1,
        "the refused commit was not merged"
    );
}

#[tokio::test]
async fn a_device_that_lost_its_group_state_rejoins_from_the_stored_group_info() {
    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let mut s = app.supervision_pair().await;
        let gid = peerbridge_mls::GroupId::new(unb64(&s.conv.group_id)).expect("gid");
        s.p.send_text(s.conv.id, &s.conv.group_id, "før", Uuid::new_v4())
            .await
            .expect(201);
        // The HP's device loses its group state (e.g. restored from an old backup).
        s.h.mls.forget_group(&gid).expect("forget");
        let gi: peerbridge_openapi::delivery::GroupInfoOut = app
            .client()
            .get(
                &format!("/v1/conversations/{}/group-info", s.conv.id),
                Some(s.hp.token()),
            )
            .await
            .expect(200)
            .parse();
        let rejoin =
            s.h.mls
                .rejoin(&unb64(&gi.group_info), &allow_all)
                .expect("external commit");
        let r = s.h.submit(s.conv.id, &rejoin).await;
        r.expect(201);
        s.h.mls.commit_accepted(&gid, &allow_all).expect("merge");
        let seq = r.json()["seq"].as_u64().expect("seq");
        // The peer processes the rejoin; both talk again at the new epoch.
        let (_, pc) = s.p.read(s.conv.id, 0).await;
        s.p.send_text(s.conv.id, &s.conv.group_id, "etter", Uuid::new_v4())
            .await
            .expect(201);
        let (texts, _) = s.h.read(s.conv.id, seq).await;
        assert_eq!(texts, vec!["etter".to_string()], "{backend:?}");
        assert_eq!(
            s.p.mls.safety_code(&gid).expect("code"),
            s.h.mls.safety_code(&gid).expect("code")
        );
        let _ = pc;
    }
}

/// D1: a device away longer than the retention period, in a busy conversation, reads on.
/// More than a page of entries after its cursor have been purged; every page still moves
/// the cursor, reports what was purged, and the entries still stored arrive.
#[tokio::test]
async fn a_cursor_moves_over_more_than_a_page_of_purged_entries_and_the_reader_learns_of_them() {
    use peerbridge_openapi::delivery::LogPage;
    use peerbridge_server::delivery::entities::log_entry;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};

    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let c = app.client();
        let mut s = app.supervision_pair().await;
        let (purge, keep) = (250u64, 3u64);
        let mut last = 0;
        for i in 0..purge + keep {
            let sent: MessageAccepted =
                s.p.send_text(
                    s.conv.id,
                    &s.conv.group_id,
                    &format!("m{i}"),
                    Uuid::new_v4(),
                )
                .await
                .expect(201)
                .parse();
            last = sent.seq;
        }
        let first_kept = last - keep + 1;
        // The older entries' retention ends (as if the HP's phone was away for weeks).
        let past = app.state.now() - chrono::Duration::seconds(1);
        log_entry::Entity::update_many()
            .col_expr(log_entry::Column::ExpiresAt, Expr::value(past))
            .filter(log_entry::Column::ConversationId.eq(s.conv.id))
            .filter(log_entry::Column::Seq.lt(first_kept as i64))
            .exec(&app.state.db)
            .await
            .expect("expire");
        let deleted = peerbridge_server::delivery::service::purge_expired(&app.state)
            .await
            .expect("purge");
        assert_eq!(deleted, purge);

        // Page through with the HP's device from where its welcome put it.
        let (mut cursor, mut pages, mut purged, mut items) = (s.h_start, 0, 0u64, Vec::new());
        loop {
            pages += 1;
            assert!(pages <= 10, "the cursor stalled at {cursor}");
            let page: LogPage = c
                .get(
                    &format!(
                        "/v1/conversations/{}/messages?after={cursor}&limit=100",
                        s.conv.id
                    ),
                    Some(s.hp.token()),
                )
                .await
                .expect(200)
                .parse();
            assert!(
                page.cursor > cursor || !page.has_more,
                "no progress: {page:?}"
            );
            if let Some(p) = page.purged {
                assert!(p.from_seq > cursor && p.to_seq <= page.cursor, "{p:?}");
                assert_eq!(p.commits, 0);
                purged += p.count;
            }
            items.extend(page.items);
            cursor = page.cursor;
            if !page.has_more {
                break;
            }
        }
        assert_eq!(purged, purge, "the reader is told of every purged entry");
        assert_eq!(cursor, last);
        let seqs: Vec<u64> = items.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (first_kept..=last).collect::<Vec<_>>());
        // The stored ones still decrypt (the ratchet skips over the purged generations).
        let (texts, _) = s.h.read(s.conv.id, first_kept - 1).await;
        assert_eq!(texts, vec!["m250", "m251", "m252"]);
    }
}
