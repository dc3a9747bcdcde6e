//! Races that replicas and impatient phones create: concurrent writes keep the audit chain
//! gap-free, an invite redeemed by many devices at once makes one account, and a refresh
//! token presented twice at once is spent once.

use futures_util::future::join_all;
use peerbridge_mls::DeviceIdentity;
use peerbridge_server::audit::{Verification, verify};
use peerbridge_tests::api::device_json;
use peerbridge_tests::{TestApp, backends};
use serde_json::json;

#[tokio::test]
async fn concurrent_writes_keep_the_audit_chain_intact_and_one_invite_makes_one_account() {
    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let c = app.client();
        let op = app.bootstrap_operator().await;
        let (clinic, hp) = app.clinic_with_hp(&op, "Molde").await;
        let Verification::Intact { entries: before } = verify(&app.state.db).await.expect("v")
        else {
            panic!("chain broken before the test");
        };

        let url = format!("/v1/clinics/{clinic}/invites");
        let creates = (0..24).map(|_| c.post(&url, Some(hp.token()), json!({ "role": "peer" })));
        let invites: Vec<_> = join_all(creates).await;
        assert!(invites.iter().all(|r| r.status == 201));
        let Verification::Intact { entries: after } = verify(&app.state.db).await.expect("v")
        else {
            panic!("chain broken by concurrent appends on {backend:?}");
        };
        assert_eq!(after, before + 24);

        let code = invites[0].json()["code"].as_str().expect("code").to_owned();
        let redeems = (0..8).map(|_| {
            let d = DeviceIdentity::generate();
            c.post(
                "/v1/invites/redeem",
                None,
                json!({ "code": code, "device": device_json(&d, "Phone") }),
            )
        });
        let results = join_all(redeems).await;
        let ok = results.iter().filter(|r| r.status == 201).count();
        assert_eq!(
            ok,
            1,
            "{backend:?}: {:?}",
            results.iter().map(|r| r.status).collect::<Vec<_>>()
        );
        for r in results.iter().filter(|r| r.status != 201) {
            assert_eq!(r.code(), "invite_invalid");
        }
        let users = c
            .get(&format!("/v1/clinics/{clinic}/users"), Some(hp.token()))
            .await
            .expect(200)
            .json();
        assert_eq!(users.as_array().map(|a| a.len()), Some(2), "HP + one peer");
    }
}

#[tokio::test]
async fn a_refresh_token_presented_six_times_at_once_gives_six_sessions_in_one_family() {
    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let c = app.client();
        let op = app.bootstrap_operator().await;
        let token = op.session.refresh_token.clone();
        let tries =
            (0..6).map(|_| c.post("/v1/auth/refresh", None, json!({ "refresh_token": token })));
        let results = join_all(tries).await;
        let statuses: Vec<u16> = results.iter().map(|r| r.status).collect();
        // One rotation wins; the racing presentations of the same token (an app's resume and
        // its background sync) fall inside the reuse grace and get sessions in the same
        // family instead of revoking it (issue 13). Every new refresh token is distinct.
        assert!(
            results.iter().all(|r| r.status == 200),
            "{backend:?}: {statuses:?}"
        );
        let fresh: std::collections::HashSet<String> = results
            .iter()
            .map(|r| {
                r.json()["refresh_token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        assert_eq!(fresh.len(), results.len(), "{backend:?}: distinct tokens");
    }
}

/// `n` messages of the device's group, encrypted in order, each with a fresh client id.
fn encrypted(
    mls: &mut peerbridge_mls::Client,
    gid: &peerbridge_mls::GroupId,
    prefix: &str,
    n: usize,
) -> Vec<(uuid::Uuid, String)> {
    use peerbridge_mls::{Envelope, MessageId};
    (0..n)
        .map(|i| {
            let ct = mls
                .encrypt(
                    gid,
                    &Envelope::Text {
                        id: MessageId::random(),
                        body: format!("{prefix}{i}"),
                        sent_at: 0,
                    },
                )
                .expect("encrypt");
            (uuid::Uuid::new_v4(), peerbridge_tests::mls_device::b64(&ct))
        })
        .collect()
}

#[tokio::test]
async fn concurrent_sends_are_committed_together_gap_free_and_a_twin_is_stored_once() {
    use peerbridge_mls::GroupId;
    use peerbridge_openapi::delivery::LogPage;
    use peerbridge_tests::mls_device::unb64;
    use std::collections::{BTreeMap, BTreeSet};
    use uuid::Uuid;
    // Fewer at once than the receiver's out-of-order tolerance (32 generations): the server
    // orders concurrent sends as they commit, not as they were encrypted.
    const SENDS: usize = 30;
    const TWINS: usize = 8;
    const MORE: usize = 12;
    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let mut s = app.supervision_pair().await;
        let gid = GroupId::new(unb64(&s.conv.group_id)).expect("gid");
        let sends = encrypted(&mut s.p.mls, &gid, "m", SENDS);
        let commits_before = app
            .client()
            .metric("peerbridge_message_commits_total")
            .await as u64;
        let stored_before = app
            .client()
            .metric("peerbridge_messages_committed_total")
            .await as u64;
        // Every send at once, and the first TWINS again with the same client id (an app
        // retrying while the first attempt is still in flight).
        let path = format!("/v1/conversations/{}/messages", s.conv.id);
        let requests = sends.iter().chain(&sends[..TWINS]).map(|(client_id, ct)| {
            let http = s.p.http.clone();
            let (path, token) = (path.clone(), s.p.token.clone());
            let body = json!({ "client_id": client_id, "ciphertext": ct });
            async move { http.post(&path, Some(&token), body).await }
        });
        let answers = join_all(requests).await;
        let mut seq_of: BTreeMap<Uuid, u64> = BTreeMap::new();
        let mut created = 0;
        for ((client_id, _), r) in sends.iter().chain(&sends[..TWINS]).zip(&answers) {
            assert!(
                r.status == 201 || r.status == 200,
                "{}: {}",
                r.status,
                r.text
            );
            created += usize::from(r.status == 201);
            let seq = r.json()["seq"].as_u64().expect("seq");
            // A twin is answered with the seq its first attempt got.
            assert_eq!(*seq_of.entry(*client_id).or_insert(seq), seq, "{client_id}");
        }
        assert_eq!(created, SENDS, "each message created once");
        // Gap-free and each payload once, at the seq its sender was told.
        let seqs: BTreeSet<u64> = seq_of.values().copied().collect();
        let first = s.h_start + 1;
        assert_eq!(seqs, (first..first + SENDS as u64).collect::<BTreeSet<_>>());
        let page: LogPage =
            s.h.http
                .get(
                    &format!("{path}?after={}&limit=200", s.h_start),
                    Some(&s.h.token),
                )
                .await
                .expect(200)
                .parse();
        assert_eq!(page.items.len(), SENDS);
        for e in &page.items {
            let (client_id, ct) = sends
                .iter()
                .find(|(c, _)| Some(*c) == e.client_id)
                .expect("a sent client id");
            assert_eq!(&e.payload, ct);
            assert_eq!(seq_of[client_id], e.seq);
        }
        // The counters add up: every message once, in at most as many commits.
        let commits = app
            .client()
            .metric("peerbridge_message_commits_total")
            .await as u64
            - commits_before;
        let stored = app
            .client()
            .metric("peerbridge_messages_committed_total")
            .await as u64
            - stored_before;
        assert_eq!(stored, SENDS as u64);
        assert!((1..=SENDS as u64).contains(&commits), "{commits} commits");
        println!("{backend:?}: {SENDS} sends (+{TWINS} twins) in {commits} commits");

        // Retries of stored sends arriving together with new ones: a batch holding a retry
        // cannot be numbered in advance, and is appended a row at a time instead. The new
        // sends still get the next numbers without a gap; each retry its first answer.
        let fresh = encrypted(&mut s.p.mls, &gid, "n", MORE);
        let mixed: Vec<&(Uuid, String)> = sends[SENDS - TWINS..]
            .iter()
            .zip(&fresh)
            .flat_map(|(a, b)| [a, b])
            .chain(&fresh[TWINS..])
            .collect();
        let requests = mixed.iter().map(|(client_id, ct)| {
            let http = s.p.http.clone();
            let (path, token) = (path.clone(), s.p.token.clone());
            let body = json!({ "client_id": client_id, "ciphertext": ct });
            async move { http.post(&path, Some(&token), body).await }
        });
        let answers = join_all(requests).await;
        let mut new_seqs = BTreeSet::new();
        for ((client_id, _), r) in mixed.iter().zip(&answers) {
            let seq = r.json()["seq"].as_u64().expect("seq");
            match seq_of.get(client_id) {
                Some(old) => {
                    assert_eq!(r.status, 200, "a retry: {}", r.text);
                    assert_eq!(*old, seq, "a retry keeps its number");
                }
                None => {
                    assert_eq!(r.status, 201, "a new send: {}", r.text);
                    assert!(new_seqs.insert(seq), "{seq} given twice");
                }
            }
        }
        let next = first + SENDS as u64;
        assert_eq!(
            new_seqs,
            (next..next + MORE as u64).collect::<BTreeSet<_>>(),
            "{backend:?}: new sends numbered on without a gap"
        );

        // The HP reads them all in log order.
        let (texts, _) = s.h.read(s.conv.id, s.h_start).await;
        assert_eq!(texts.len(), SENDS + MORE);
    }
}

#[tokio::test]
async fn concurrent_acks_in_any_order_keep_each_cursor_at_its_largest_and_delete_only_what_all_acknowledged()
 {
    use peerbridge_server::delivery::entities::{log_entry, member_device};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    use uuid::Uuid;
    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let mut s = app.supervision_pair().await;
        let (conv, gid) = (s.conv.id, s.conv.group_id.clone());
        for i in 0..6 {
            s.p.send_text(conv, &gid, &format!("m{i}"), Uuid::new_v4())
                .await
                .expect(201);
        }
        let first = s.h_start + 1;
        let last = s.h_start + 6;
        let acked = |device: Uuid| {
            let db = app.state.db.clone();
            async move {
                member_device::Entity::find_by_id((conv, device))
                    .one(&db)
                    .await
                    .expect("read")
                    .expect("member")
                    .acked_seq as u64
            }
        };
        let stored = || {
            let db = app.state.db.clone();
            async move {
                let mut seqs: Vec<u64> = log_entry::Entity::find()
                    .filter(log_entry::Column::ConversationId.eq(conv))
                    .filter(log_entry::Column::Payload.is_not_null())
                    .all(&db)
                    .await
                    .expect("read")
                    .into_iter()
                    .map(|e| e.seq as u64)
                    .collect();
                seqs.sort_unstable();
                seqs
            }
        };
        // The HP's app acknowledges every message at once and out of order (a reconnect and
        // a background sync racing), one twice; the peer's app only up to the third.
        let h_order = [
            last,
            first,
            first + 3,
            first + 1,
            last,
            first + 2,
            first + 4,
        ];
        let p_order = [first + 2, first, first + 1];
        let acks = h_order
            .iter()
            .map(|&seq| (&s.h, seq))
            .chain(p_order.iter().map(|&seq| (&s.p, seq)))
            .map(|(d, seq)| d.ack(conv, seq));
        for r in join_all(acks).await {
            r.expect(200);
        }
        assert_eq!(acked(s.h.device_id).await, last, "{backend:?}: HP cursor");
        assert_eq!(
            acked(s.p.device_id).await,
            first + 2,
            "{backend:?}: peer cursor"
        );
        // Only what both acknowledged is gone.
        assert_eq!(
            stored().await,
            (first + 3..=last).collect::<Vec<_>>(),
            "{backend:?}"
        );
        // An older ack never moves a cursor back; the peer catching up deletes the rest.
        s.h.ack(conv, first).await.expect(200);
        assert_eq!(acked(s.h.device_id).await, last);
        s.p.ack(conv, last).await.expect(200);
        assert_eq!(stored().await, Vec::<u64>::new(), "{backend:?}");
    }
}

/// Holds what the message and ack writers need for `conv` until dropped: SQLite's write
/// lock, or PostgreSQL's locks on the conversation and its member rows.
async fn hold_writers(app: &TestApp, conv: uuid::Uuid) -> sea_orm::DatabaseTransaction {
    use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
    let db = app.db.connect().await;
    let txn = peerbridge_server::storage::begin(&db).await.expect("begin");
    if txn.get_database_backend() == DatabaseBackend::Postgres {
        for sql in [
            "SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE",
            "SELECT 1 FROM conversation_devices WHERE conversation_id = $1 FOR UPDATE",
        ] {
            txn.execute_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                sql,
                [conv.into()],
            ))
            .await
            .expect("lock");
        }
    }
    txn
}

#[tokio::test]
async fn sends_and_acks_past_the_writers_room_are_refused_at_once_with_retry_after_and_stored_when_sent_again()
 {
    use futures_util::StreamExt;
    use futures_util::stream::FuturesUnordered;
    use peerbridge_mls::GroupId;
    use peerbridge_tests::mls_device::unb64;
    use std::collections::BTreeSet;
    const ROOM: usize = 16;
    const OVER: usize = 8;
    for backend in backends().await {
        let app = TestApp::spawn_with(backend, |raw| raw.max_waiting_writes = ROOM as u32).await;
        let mut s = app.supervision_pair().await;
        let gid = GroupId::new(unb64(&s.conv.group_id)).expect("gid");
        let sends = encrypted(&mut s.p.mls, &gid, "m", ROOM + OVER);
        let path = format!("/v1/conversations/{}/messages", s.conv.id);
        let post = |client_id: uuid::Uuid, ct: &str| {
            let http = s.p.http.clone();
            let (path, token) = (path.clone(), s.p.token.clone());
            let body = json!({ "client_id": client_id, "ciphertext": ct });
            async move { (client_id, http.post(&path, Some(&token), body).await) }
        };

        // The writer cannot commit: ROOM sends wait for it, the rest are refused at once.
        let hold = hold_writers(&app, s.conv.id).await;
        let mut inflight: FuturesUnordered<_> =
            sends.iter().map(|(id, ct)| post(*id, ct)).collect();
        let mut refused = Vec::new();
        while refused.len() < OVER {
            let (client_id, r) = inflight.next().await.expect("an answer");
            assert_eq!(
                r.status, 503,
                "{backend:?}: answered while held: {}",
                r.text
            );
            assert_eq!(r.code(), "unavailable");
            assert_eq!(r.json()["retry_after_seconds"], 1);
            assert_eq!(
                r.headers.get("retry-after").and_then(|v| v.to_str().ok()),
                Some("1")
            );
            refused.push(client_id);
        }
        assert_eq!(
            app.client()
                .metric("peerbridge_writer_refused_total{writer=\"messages\"}")
                .await,
            OVER as f64
        );
        hold.rollback().await.expect("release");
        // The waiting sends are stored once the writer can commit, gap-free.
        let first = s.h_start + 1;
        let mut seqs = BTreeSet::new();
        while let Some((_, r)) = inflight.next().await {
            assert_eq!(r.status, 201, "{backend:?}: {}", r.text);
            seqs.insert(r.json()["seq"].as_u64().expect("seq"));
        }
        assert_eq!(seqs, (first..first + ROOM as u64).collect::<BTreeSet<_>>());
        // Nothing of a refused send was stored: sent again, each is new (201, not the 200
        // of a retry) and numbered on without a gap.
        for (id, ct) in sends.iter().filter(|(id, _)| refused.contains(id)) {
            let (_, r) = post(*id, ct).await;
            assert_eq!(r.status, 201, "{backend:?}: {}", r.text);
            assert!(seqs.insert(r.json()["seq"].as_u64().expect("seq")));
        }
        let all = (ROOM + OVER) as u64;
        assert_eq!(seqs, (first..first + all).collect::<BTreeSet<_>>());
        let (texts, _) = s.h.read(s.conv.id, s.h_start).await;
        assert_eq!(texts.len(), ROOM + OVER, "{backend:?}: each message once");

        // Acknowledgements the same way: refused at once past the room; the cursor moves
        // with those that waited, and an ack sent again after a refusal is taken.
        let ack_path = format!("/v1/conversations/{}/ack", s.conv.id);
        let ack = |seq: u64| {
            let http = s.h.http.clone();
            let (path, token) = (ack_path.clone(), s.h.token.clone());
            async move {
                (
                    seq,
                    http.post(&path, Some(&token), json!({ "seq": seq })).await,
                )
            }
        };
        let hold = hold_writers(&app, s.conv.id).await;
        let mut inflight: FuturesUnordered<_> = (first..first + all).map(ack).collect();
        let mut refused = Vec::new();
        while refused.len() < OVER {
            let (seq, r) = inflight.next().await.expect("an answer");
            assert_eq!(r.status, 503, "{backend:?}: acked while held: {}", r.text);
            assert_eq!(r.code(), "unavailable");
            refused.push(seq);
        }
        hold.rollback().await.expect("release");
        while let Some((_, r)) = inflight.next().await {
            assert_eq!(r.status, 200, "{backend:?}: {}", r.text);
        }
        let top = refused.iter().max().copied().unwrap_or(0);
        let (_, r) = ack(top).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.json()["seq"].as_u64() >= Some(top), "{}", r.text);
        assert_eq!(
            app.client()
                .metric("peerbridge_writer_refused_total{writer=\"acks\"}")
                .await,
            OVER as f64
        );
    }
}

/// The escalation path has connections of its own: with every ordinary connection taken by
/// a message batch that cannot commit, a flag is still raised and is in the HP's queue.
/// PostgreSQL only: on SQLite the one writer is shared by everything that writes (a flag
/// waits at most for the batch in progress and the one queued before it) and only the
/// flag's reads have connections of their own.
#[tokio::test]
async fn a_flag_is_raised_and_queued_for_its_hp_while_a_stuck_message_batch_holds_every_ordinary_connection()
 {
    use peerbridge_tests::Backend;
    use std::time::Duration;
    use uuid::Uuid;
    for backend in backends().await {
        if backend != Backend::Postgres {
            continue;
        }
        let app = TestApp::spawn_with(backend, |raw| raw.db_max_connections = 1).await;
        let mut s = app.supervision_pair().await;
        let (conv, gid) = (s.conv.id, s.conv.group_id.clone());
        // Both devices have just been authorised (kept for a few seconds by the cache).
        s.p.send_text(conv, &gid, "before", Uuid::new_v4())
            .await
            .expect(201);
        let c = app.client();
        c.get("/v1/flags", Some(s.hp.token())).await.expect(200);

        let hold = hold_writers(&app, conv).await;
        let stuck = {
            let sends = encrypted(
                &mut s.p.mls,
                &peerbridge_mls::GroupId::new(peerbridge_tests::mls_device::unb64(&gid))
                    .expect("gid"),
                "stuck",
                1,
            );
            let (http, token) = (s.p.http.clone(), s.p.token.clone());
            let (client_id, ct) = sends[0].clone();
            tokio::spawn(async move {
                http.post(
                    &format!("/v1/conversations/{conv}/messages"),
                    Some(&token),
                    json!({ "client_id": client_id, "ciphertext": ct }),
                )
                .await
            })
        };
        // The control: the pool's one ordinary connection is taken (by the batch waiting for
        // the conversation's lock), so nothing else gets it.
        let taken = || async {
            tokio::time::timeout(Duration::from_millis(200), app.state.db.ping())
                .await
                .is_err()
        };
        let mut exhausted = false;
        for _ in 0..50 {
            if taken().await {
                exhausted = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            exhausted,
            "the stuck batch never took the ordinary connection"
        );

        let r = c
            .post(
                &format!("/v1/conversations/{conv}/flags"),
                Some(&s.p.token),
                json!({ "client_id": Uuid::new_v4(), "kind": "flag",
                        "category": "suicide_risk", "severity": "imminent", "excerpts": [] }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let flag = r.json()["id"].as_str().expect("id").to_owned();
        let queue = c
            .get("/v1/flags", Some(s.hp.token()))
            .await
            .expect(200)
            .json();
        assert!(
            queue
                .as_array()
                .is_some_and(|q| q.iter().any(|f| f["id"] == flag.as_str())),
            "{queue}"
        );
        assert!(taken().await, "the ordinary connection was still taken");

        hold.rollback().await.expect("release");
        let sent = stuck.await.expect("task");
        assert_eq!(sent.status, 201, "{}", sent.text);
    }
}
