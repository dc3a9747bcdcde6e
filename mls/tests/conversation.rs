//! Scenarios of the client core with two or three devices in memory; the test plays the
//! delivery service by passing bytes between clients (and by deciding which commit wins).

mod common;

use common::{Device, allow, pair, texts};
use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::{MlsMessageBodyIn, MlsMessageIn, ProtocolVersion};
use openmls_rust_crypto::RustCrypto;
use peerbridge_mls::{
    AddKind, ClientOptions, CommitKind, Epoch, Error, Event, GroupId, IgnoredReason,
    verify_leaf_credential,
};

#[test]
fn two_devices_create_a_group_and_talk_both_ways() {
    let (mut a, mut b, gid) = pair();
    let everyone = allow(&[a.id(), b.id()]);
    assert_eq!(a.client.epoch(&gid).expect("epoch"), Epoch(1));
    assert_eq!(b.client.epoch(&gid).expect("epoch"), Epoch(1));
    assert_eq!(a.client.members(&gid).expect("members").len(), 2);
    assert_eq!(b.client.groups().expect("groups"), vec![gid.clone()]);

    let m1 = a.send(&gid, "hei, jeg er Anna");
    let events = b.recv(&m1, &everyone);
    assert_eq!(texts(&events), vec!["hei, jeg er Anna"]);
    let Event::Message { sender, .. } = &events[0] else {
        panic!("expected a message, got {events:?}");
    };
    assert_eq!(sender.identity, a.id());

    let m2 = b.send(&gid, "hei Anna");
    assert_eq!(texts(&a.recv(&m2, &everyone)), vec!["hei Anna"]);

    // The server fans a sender's own message back; it is recognised and skipped.
    assert!(matches!(
        a.recv(&m1, &everyone).as_slice(),
        [Event::Ignored {
            reason: IgnoredReason::OwnMessage,
            ..
        }]
    ));
}

#[test]
fn three_devices_add_remove_and_self_update() {
    let (mut a, mut b, gid) = pair();
    let mut c = Device::new();
    let everyone = allow(&[a.id(), b.id(), c.id()]);

    // A adds C.
    let kp = c.key_package();
    let add = a.client.add_members(&gid, &[kp]).expect("add");
    assert_eq!(add.epoch, Epoch(1));
    assert_eq!(add.kind, CommitKind::Member);
    a.client.commit_accepted(&gid, &everyone).expect("accepted");
    let events = b.recv(&add.commit, &everyone);
    assert!(events.iter().any(|e| matches!(e,
        Event::MemberAdded { member, kind: AddKind::AddedByCommit, added_by: Some(by), .. }
            if member.identity == c.id() && by.identity == a.id())));
    assert!(events.contains(&Event::EpochChanged {
        group_id: gid.clone(),
        epoch: Epoch(2)
    }));
    let joined = c
        .client
        .join_from_welcome(add.welcome.as_deref().expect("welcome"), &everyone)
        .expect("join");
    assert_eq!(joined.epoch, Epoch(2));
    assert_eq!(joined.members.len(), 3);
    assert_eq!(
        joined.added_by.map(|m| m.identity),
        Some(a.id()),
        "the welcome names its sender"
    );

    let m = c.send(&gid, "hello from C");
    assert_eq!(texts(&a.recv(&m, &everyone)), vec!["hello from C"]);
    assert_eq!(texts(&b.recv(&m, &everyone)), vec!["hello from C"]);

    // B refreshes its keys.
    let update = b.client.self_update(&gid).expect("update");
    assert!(update.welcome.is_none());
    b.client.commit_accepted(&gid, &everyone).expect("accepted");
    a.recv(&update.commit, &everyone);
    c.recv(&update.commit, &everyone);
    for d in [&a, &b, &c] {
        assert_eq!(d.client.epoch(&gid).expect("epoch"), Epoch(3));
    }
    let m = b.send(&gid, "after the update");
    assert_eq!(texts(&a.recv(&m, &everyone)), vec!["after the update"]);
    assert_eq!(texts(&c.recv(&m, &everyone)), vec!["after the update"]);

    // A removes C.
    let c_leaf = c.client.own_leaf_index(&gid).expect("leaf");
    let remove = a.client.remove_members(&gid, &[c_leaf]).expect("remove");
    a.client.commit_accepted(&gid, &everyone).expect("accepted");
    let events = b.recv(&remove.commit, &everyone);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::MemberRemoved { member, .. } if member.identity == c.id()))
    );
    let events = c.recv(&remove.commit, &everyone);
    assert!(events.contains(&Event::RemovedFromGroup {
        group_id: gid.clone()
    }));
    assert!(matches!(
        c.client.encrypt(&gid, &common::text("still here?")),
        Err(Error::NotAMember)
    ));
    let m = a.send(&gid, "just us two again");
    assert_eq!(texts(&b.recv(&m, &everyone)), vec!["just us two again"]);
    assert_eq!(a.client.members(&gid).expect("members").len(), 2);
    assert!(matches!(
        a.client.remove_members(&gid, &[c_leaf]),
        Err(Error::UnknownMember(_))
    ));
}

#[test]
fn a_rejected_commit_leaves_the_group_at_the_old_epoch_and_usable() {
    let (mut a, mut b, gid) = pair();
    let everyone = allow(&[a.id(), b.id()]);
    let pending = a.client.self_update(&gid).expect("update");
    assert_eq!(
        a.client.pending_commit(&gid).expect("pending"),
        Some(pending.clone())
    );
    assert!(matches!(
        a.client.self_update(&gid),
        Err(Error::CommitPending)
    ));
    a.client.commit_rejected(&gid).expect("rejected");
    assert_eq!(a.client.pending_commit(&gid).expect("pending"), None);
    assert_eq!(a.client.epoch(&gid).expect("epoch"), Epoch(1));
    assert!(matches!(
        a.client.commit_rejected(&gid),
        Err(Error::NoPendingCommit)
    ));

    let m = a.send(&gid, "still epoch one");
    assert_eq!(texts(&b.recv(&m, &everyone)), vec!["still epoch one"]);
    let m = b.send(&gid, "and back");
    assert_eq!(texts(&a.recv(&m, &everyone)), vec!["and back"]);

    // The retry goes through.
    let retry = a.client.self_update(&gid).expect("retry");
    a.client.commit_accepted(&gid, &everyone).expect("accepted");
    b.recv(&retry.commit, &everyone);
    assert_eq!(b.client.epoch(&gid).expect("epoch"), Epoch(2));
    let m = b.send(&gid, "epoch two");
    assert_eq!(texts(&a.recv(&m, &everyone)), vec!["epoch two"]);
}

#[test]
fn two_members_commit_for_the_same_epoch_and_the_loser_recovers_without_losing_messages() {
    let (mut a, mut b, gid) = pair();
    let everyone = allow(&[a.id(), b.id()]);

    let a_commit = a.client.self_update(&gid).expect("a update");
    let b_commit = b.client.self_update(&gid).expect("b update");
    assert_eq!(a_commit.epoch, b_commit.epoch);

    // While its commit is pending, B still talks at epoch 1.
    let b_early = b.send(&gid, "sent while my commit was pending");

    // The server accepts A's commit (first for epoch 1) and answers B with 409.
    a.client
        .commit_accepted(&gid, &everyone)
        .expect("a accepted");
    let a_after = a.send(&gid, "sent at epoch 2");
    b.client.commit_rejected(&gid).expect("b rejected");

    // B gets A's epoch-2 message before the commit (it is buffered), then the commit.
    let events = b.recv(&a_after, &everyone);
    assert!(matches!(
        events.as_slice(),
        [Event::Buffered {
            epoch: Epoch(2),
            ..
        }]
    ));
    let events = b.recv(&a_commit.commit, &everyone);
    assert!(events.contains(&Event::EpochChanged {
        group_id: gid.clone(),
        epoch: Epoch(2)
    }));
    assert_eq!(
        texts(&events),
        vec!["sent at epoch 2"],
        "the buffered message is replayed"
    );

    // A reads B's late epoch-1 message with the past epoch's secrets.
    assert_eq!(
        texts(&a.recv(&b_early, &everyone)),
        vec!["sent while my commit was pending"]
    );

    // B's losing commit, if the server ever fanned it out, is ignored as stale.
    assert!(matches!(
        a.recv(&b_commit.commit, &everyone).as_slice(),
        [Event::Ignored {
            reason: IgnoredReason::PastEpochHandshake,
            ..
        }]
    ));

    // B retries for the current epoch and wins this time.
    let retry = b.client.self_update(&gid).expect("retry");
    assert_eq!(retry.epoch, Epoch(2));
    b.client.commit_accepted(&gid, &everyone).expect("accepted");
    a.recv(&retry.commit, &everyone);
    assert_eq!(a.client.epoch(&gid).expect("epoch"), Epoch(3));
    assert_eq!(
        a.client.safety_code(&gid).expect("code"),
        b.client.safety_code(&gid).expect("code")
    );
}

#[test]
fn a_loser_that_processes_the_winning_commit_first_drops_its_own_pending_commit() {
    let (mut a, mut b, gid) = pair();
    let everyone = allow(&[a.id(), b.id()]);
    let a_commit = a.client.self_update(&gid).expect("a update");
    let _b_commit = b.client.self_update(&gid).expect("b update");
    a.client.commit_accepted(&gid, &everyone).expect("accepted");
    let events = b.recv(&a_commit.commit, &everyone);
    assert!(events.contains(&Event::OwnCommitDiscarded {
        group_id: gid.clone(),
        epoch: Epoch(1)
    }));
    assert_eq!(b.client.pending_commit(&gid).expect("pending"), None);
    // The 409 arriving afterwards finds nothing left to discard.
    assert!(matches!(
        b.client.commit_rejected(&gid),
        Err(Error::NoPendingCommit)
    ));
    let m = b.send(&gid, "in sync");
    assert_eq!(texts(&a.recv(&m, &everyone)), vec!["in sync"]);
}

#[test]
fn an_own_commit_echoed_by_the_server_is_merged_only_on_acceptance() {
    let (mut a, mut b, gid) = pair();
    let everyone = allow(&[a.id(), b.id()]);
    let pending = a.client.self_update(&gid).expect("update");
    assert!(matches!(
        a.recv(&pending.commit, &everyone).as_slice(),
        [Event::OwnCommitEchoed {
            epoch: Epoch(1),
            ..
        }]
    ));
    assert_eq!(a.client.epoch(&gid).expect("epoch"), Epoch(1));
    a.client.commit_accepted(&gid, &everyone).expect("accepted");
    b.recv(&pending.commit, &everyone);
    assert_eq!(a.client.epoch(&gid).expect("epoch"), Epoch(2));
    assert_eq!(b.client.epoch(&gid).expect("epoch"), Epoch(2));
}

#[test]
fn future_epoch_messages_are_buffered_with_a_bound_and_expire() {
    let clock = common::ManualClock::at(1_000_000);
    let mut a = Device::new();
    let mut b = Device::with_options(ClientOptions {
        max_buffered_per_group: 3,
        buffer_ttl: std::time::Duration::from_secs(60),
        clock: clock.clone(),
        ..ClientOptions::default()
    });
    let everyone = allow(&[a.id(), b.id()]);
    let gid = GroupId::random();
    let kp = b.key_package();
    let created = a.client.create_group(&gid, &[kp]).expect("create");
    a.client.commit_accepted(&gid, &everyone).expect("accepted");
    b.client
        .join_from_welcome(created.welcome.as_deref().expect("welcome"), &everyone)
        .expect("join");

    let update = a.client.self_update(&gid).expect("update");
    a.client.commit_accepted(&gid, &everyone).expect("accepted");
    let early: Vec<Vec<u8>> = (0..3).map(|i| a.send(&gid, &format!("m{i}"))).collect();
    for m in &early {
        assert!(matches!(
            b.recv(m, &everyone).as_slice(),
            [Event::Buffered {
                epoch: Epoch(2),
                ..
            }]
        ));
    }
    let seen = b.client.buffered(&gid).expect("buffered");
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|m| m.epoch == Epoch(2)));

    // The bound: a fourth is refused rather than silently dropping one.
    let fourth = a.send(&gid, "m3");
    assert!(matches!(
        b.client.process(&fourth, &everyone),
        Err(Error::BufferFull)
    ));

    // Nothing expires before the TTL; the commit then releases all three, in order.
    assert_eq!(b.client.expire_buffered().expect("expire"), 0);
    let events = b.recv(&update.commit, &everyone);
    assert_eq!(texts(&events), vec!["m0", "m1", "m2"]);
    assert!(b.client.buffered(&gid).expect("buffered").is_empty());
    assert_eq!(texts(&b.recv(&fourth, &everyone)), vec!["m3"]);

    // A buffered message that outlives the TTL is dropped by expiry.
    let update = a.client.self_update(&gid).expect("update");
    a.client.commit_accepted(&gid, &everyone).expect("accepted");
    let late = a.send(&gid, "too late");
    b.recv(&late, &everyone);
    clock.advance(std::time::Duration::from_secs(61));
    assert_eq!(b.client.expire_buffered().expect("expire"), 1);
    assert!(b.client.buffered(&gid).expect("buffered").is_empty());
    let events = b.recv(&update.commit, &everyone);
    assert!(texts(&events).is_empty());
    assert_eq!(b.client.epoch(&gid).expect("epoch"), Epoch(3));
}

#[test]
fn a_device_that_fell_out_of_sync_rejoins_by_external_commit() {
    let (mut a, mut b, gid) = pair();
    let everyone = allow(&[a.id(), b.id()]);
    let b_old_leaf = b.client.own_leaf_index(&gid).expect("leaf");

    let old_epoch_message = a.send(&gid, "sent before the commits");
    // B misses A's commit for epoch 1 → 2 entirely (e.g. it was trimmed by retention).
    let _missed = a.client.self_update(&gid).expect("update");
    a.client.commit_accepted(&gid, &everyone).expect("accepted");
    let second = a.client.self_update(&gid).expect("update");
    a.client.commit_accepted(&gid, &everyone).expect("accepted");
    assert!(matches!(
        b.recv(&second.commit, &everyone).as_slice(),
        [Event::Buffered {
            epoch: Epoch(2),
            ..
        }]
    ));

    // B rejoins from the GroupInfo the server keeps (the one of the latest commit).
    let rejoin = b
        .client
        .rejoin(&second.group_info, &everyone)
        .expect("rejoin");
    assert_eq!(rejoin.kind, CommitKind::ExternalRejoin);
    assert_eq!(rejoin.epoch, Epoch(3));
    // Until the server answers, B's old state stays: it still reads what was sent in its
    // epoch, and it does not send.
    assert_eq!(b.client.epoch(&gid).expect("epoch"), Epoch(1));
    assert_eq!(
        texts(&b.recv(&old_epoch_message, &everyone)),
        vec!["sent before the commits"]
    );
    assert!(matches!(
        b.client.encrypt(&gid, &common::text("not yet")),
        Err(Error::CommitPending)
    ));
    b.client.commit_accepted(&gid, &everyone).expect("accepted");
    assert_eq!(b.client.epoch(&gid).expect("epoch"), Epoch(4));

    let events = a.recv(&rejoin.commit, &everyone);
    assert!(events.iter().any(|e| matches!(e,
        Event::MemberAdded { member, kind: AddKind::ExternalJoin, .. } if member.identity == b.id())));
    // The stale leaf went in the same commit: B is in the tree once.
    let members = a.client.members(&gid).expect("members");
    assert_eq!(members.len(), 2);
    assert_eq!(members.iter().filter(|m| m.identity == b.id()).count(), 1);
    assert_eq!(
        b.client.own_leaf_index(&gid).expect("leaf"),
        b_old_leaf,
        "the freed leaf is reused"
    );

    let m = a.send(&gid, "welcome back");
    assert_eq!(texts(&b.recv(&m, &everyone)), vec!["welcome back"]);
    let m = b.send(&gid, "thanks");
    assert_eq!(texts(&a.recv(&m, &everyone)), vec!["thanks"]);
    assert_eq!(
        a.client.safety_code(&gid).expect("code"),
        b.client.safety_code(&gid).expect("code")
    );
}

#[test]
fn a_rejected_rejoin_keeps_the_old_state() {
    let (mut a, mut b, gid) = pair();
    let everyone = allow(&[a.id(), b.id()]);
    let update = a.client.self_update(&gid).expect("update");
    a.client.commit_accepted(&gid, &everyone).expect("accepted");
    let rejoin = b
        .client
        .rejoin(&update.group_info, &everyone)
        .expect("rejoin");
    b.client.commit_rejected(&gid).expect("rejected");
    assert_eq!(b.client.pending_commit(&gid).expect("pending"), None);
    assert_eq!(b.client.epoch(&gid).expect("epoch"), Epoch(1));
    // The old state still follows the group normally.
    b.recv(&update.commit, &everyone);
    let m = a.send(&gid, "still here");
    assert_eq!(texts(&b.recv(&m, &everyone)), vec!["still here"]);
    drop(rejoin);
}

#[test]
fn the_policy_refuses_an_unexpected_add_and_nothing_is_merged() {
    let (mut a, mut b, gid) = pair();
    let mut mallory = Device::new();
    let a_allows_all = allow(&[a.id(), b.id(), mallory.id()]);
    let b_allows_a = allow(&[a.id()]);

    // A (or a server forcing a commit in) adds a device B's policy does not allow.
    let kp = mallory.key_package();
    let add = a.client.add_members(&gid, &[kp]).expect("add");
    a.client
        .commit_accepted(&gid, &a_allows_all)
        .expect("accepted");
    let events = b.recv(&add.commit, &b_allows_a);
    let [
        Event::CommitRefused {
            refused, committer, ..
        },
    ] = events.as_slice()
    else {
        panic!("expected a refusal, got {events:?}");
    };
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].identity, mallory.id());
    assert_eq!(committer.as_ref().map(|c| c.identity.clone()), Some(a.id()));
    assert_eq!(b.client.epoch(&gid).expect("epoch"), Epoch(1));
    assert_eq!(b.client.members(&gid).expect("members").len(), 2);
    // Traffic of the refused epoch is held back, not read.
    let m = a.send(&gid, "Mallory can read this");
    assert!(matches!(
        b.recv(&m, &b_allows_a).as_slice(),
        [Event::Buffered { .. }]
    ));

    // On the joining side: a Welcome into a group with a member the policy refuses fails,
    // and the refusal changes nothing (the key package stays usable).
    let mut carol = Device::new();
    let kp = carol.key_package();
    let add = a.client.add_members(&gid, &[kp]).expect("add");
    a.client
        .commit_accepted(&gid, &a_allows_all)
        .expect("accepted");
    let welcome = add.welcome.expect("welcome");
    let carol_refuses_mallory = allow(&[a.id(), b.id()]);
    match carol
        .client
        .join_from_welcome(&welcome, &carol_refuses_mallory)
    {
        Err(Error::PolicyRefused { refused }) => {
            assert_eq!(refused.len(), 1);
            assert_eq!(refused[0].identity, mallory.id());
        }
        other => panic!("expected a policy refusal, got {other:?}"),
    }
    assert!(carol.client.groups().expect("groups").is_empty());
    let joined = carol
        .client
        .join_from_welcome(&welcome, &a_allows_all)
        .expect("the key package survived the refused attempt");
    assert_eq!(joined.members.len(), 4);
}

#[test]
fn a_closure_can_serve_as_the_policy() {
    let mut a = Device::new();
    let mut b = Device::new();
    let gid = GroupId::random();
    let kp = b.key_package();
    let created = a.client.create_group(&gid, &[kp]).expect("create");
    let a_id = a.id();
    let only_a = move |c: &peerbridge_mls::AddCandidate<'_>| {
        c.member.identity == a_id && c.kind == AddKind::ExistingMember
    };
    a.client
        .commit_accepted(&gid, &|_: &peerbridge_mls::AddCandidate<'_>| true)
        .expect("accepted");
    let joined = b
        .client
        .join_from_welcome(created.welcome.as_deref().expect("welcome"), &only_a)
        .expect("join");
    assert_eq!(joined.group_id, gid);
}

#[test]
fn a_reopened_store_continues_the_conversation_and_keeps_a_pending_commit() {
    let (mut a, mut b, gid) = pair();
    let everyone = allow(&[a.id(), b.id()]);
    let a_id = a.id();
    a.restart();
    b.restart();
    assert_eq!(a.id(), a_id, "the device identity is kept in the store");
    let m = a.send(&gid, "after restart");
    assert_eq!(texts(&b.recv(&m, &everyone)), vec!["after restart"]);

    let pending = b.client.self_update(&gid).expect("update");
    b.restart();
    assert_eq!(
        b.client.pending_commit(&gid).expect("pending"),
        Some(pending.clone()),
        "the pending commit survives a restart, so it can be resent"
    );
    b.client.commit_accepted(&gid, &everyone).expect("accepted");
    a.recv(&pending.commit, &everyone);
    let m = b.send(&gid, "epoch two after restart");
    assert_eq!(
        texts(&a.recv(&m, &everyone)),
        vec!["epoch two after restart"]
    );
}

#[test]
fn a_wrong_store_key_is_refused_without_damaging_the_store() {
    let (mut a, mut b, gid) = pair();
    let everyone = allow(&[a.id(), b.id()]);
    let wrong = peerbridge_mls::StoreKey::generate();
    let err = peerbridge_mls::Client::open(&a.path, &wrong, ClientOptions::default())
        .expect_err("a wrong key must not open the store");
    assert!(matches!(err, Error::WrongStoreKey));
    assert_eq!(err.code(), "wrong_store_key");
    a.restart();
    let m = a.send(&gid, "still readable");
    assert_eq!(texts(&b.recv(&m, &everyone)), vec!["still readable"]);
}

#[test]
fn a_store_write_that_fails_leaves_the_previous_state_intact() {
    let (mut a, mut b, gid) = pair();
    let everyone = allow(&[a.id(), b.id()]);
    let pending = a.client.self_update(&gid).expect("update");

    // Make the next transaction fail inside SQLite, as a full disk would.
    let saboteur = rusqlite::Connection::open(&a.path).expect("open");
    saboteur
        .execute_batch(
            "CREATE TRIGGER fail_writes BEFORE INSERT ON kv BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
        )
        .expect("trigger");
    let err = a
        .client
        .commit_accepted(&gid, &everyone)
        .expect_err("the write fails");
    assert!(matches!(err, Error::StoreIo(_)), "{err:?}");
    // Neither half of the operation happened: still epoch 1, commit still pending.
    assert_eq!(a.client.epoch(&gid).expect("epoch"), Epoch(1));
    assert_eq!(
        a.client.pending_commit(&gid).expect("pending"),
        Some(pending.clone())
    );
    saboteur
        .execute_batch("DROP TRIGGER fail_writes;")
        .expect("drop trigger");
    a.client.commit_accepted(&gid, &everyone).expect("accepted");
    b.recv(&pending.commit, &everyone);
    let m = a.send(&gid, "recovered");
    assert_eq!(texts(&b.recv(&m, &everyone)), vec!["recovered"]);
}

#[test]
fn safety_codes_match_across_members_and_differ_across_groups() {
    let (mut a, mut b, gid) = pair();
    let code_a = a.client.safety_code(&gid).expect("code");
    let code_b = b.client.safety_code(&gid).expect("code");
    assert_eq!(code_a, code_b);
    assert_eq!(code_a.len(), 23, "four groups of five digits: {code_a}");
    assert!(code_a.chars().all(|c| c.is_ascii_digit() || c == ' '));

    let other = GroupId::random();
    let kp = b.key_package();
    let created = a.client.create_group(&other, &[kp]).expect("create");
    let everyone = allow(&[a.id(), b.id()]);
    a.client
        .commit_accepted(&other, &everyone)
        .expect("accepted");
    b.client
        .join_from_welcome(created.welcome.as_deref().expect("welcome"), &everyone)
        .expect("join");
    assert_eq!(
        a.client.safety_code(&other).expect("code"),
        b.client.safety_code(&other).expect("code")
    );
    assert_ne!(a.client.safety_code(&other).expect("code"), code_a);
}

#[test]
fn key_packages_are_attested_by_the_device_and_one_time_ones_are_consumed() {
    let mut a = Device::new();
    let mut b = Device::new();
    let everyone = allow(&[a.id(), b.id()]);
    let kps = b.client.generate_key_packages(3).expect("kps");
    let last_resort = b.client.last_resort_key_package().expect("last resort");
    assert!(last_resort.last_resort);
    assert!(kps.iter().all(|k| !k.last_resort));

    // What the server does on upload: parse, validate, recompute the hash reference and
    // verify the leaf credential against the device's registered key.
    for kp in kps.iter().chain([&last_resort]) {
        let MlsMessageBodyIn::KeyPackage(kp_in) =
            MlsMessageIn::tls_deserialize_exact(kp.key_package.as_slice())
                .expect("MLSMessage")
                .extract()
        else {
            panic!("expected a key package");
        };
        let validated = kp_in
            .validate(&RustCrypto::default(), ProtocolVersion::Mls10)
            .expect("valid");
        let hash_ref = validated.hash_ref(&RustCrypto::default()).expect("ref");
        assert_eq!(hash_ref.as_slice(), kp.hash_ref.as_slice());
        let leaf = validated.leaf_node();
        assert_eq!(
            verify_leaf_credential(
                leaf.credential().serialized_content(),
                leaf.signature_key().as_slice()
            )
            .map(|k| k.to_vec()),
            Some(b.id()),
            "the credential proves the device key"
        );
    }

    // A one-time key package serves one Welcome only.
    let g1 = GroupId::random();
    let created = a
        .client
        .create_group(&g1, &[kps[0].key_package.clone()])
        .expect("create");
    a.client.commit_accepted(&g1, &everyone).expect("accepted");
    let welcome = created.welcome.expect("welcome");
    b.client
        .join_from_welcome(&welcome, &everyone)
        .expect("join");
    b.client.forget_group(&g1).expect("forget");
    assert!(matches!(
        b.client.join_from_welcome(&welcome, &everyone),
        Err(Error::NoMatchingKeyPackage)
    ));

    // The last-resort one serves several.
    for _ in 0..2 {
        let g = GroupId::random();
        let created = a
            .client
            .create_group(&g, std::slice::from_ref(&last_resort.key_package))
            .expect("create");
        a.client.commit_accepted(&g, &everyone).expect("accepted");
        b.client
            .join_from_welcome(created.welcome.as_deref().expect("welcome"), &everyone)
            .expect("join with the last-resort package");
    }
}

#[test]
fn bad_input_is_a_typed_error() {
    let (mut a, mut b, gid) = pair();
    let everyone = allow(&[a.id(), b.id()]);
    assert!(matches!(
        b.client.process(b"not mls", &everyone),
        Err(Error::MalformedMessage(_))
    ));
    let kp = b.key_package();
    assert!(matches!(
        a.client.process(&kp, &everyone),
        Err(Error::UnexpectedMessage { .. })
    ));
    assert!(matches!(
        a.client.add_members(&gid, &[b"garbage".to_vec()]),
        Err(Error::InvalidKeyPackage(_))
    ));
    assert!(matches!(
        a.client.create_group(&gid, &[]),
        Err(Error::GroupExists)
    ));
    assert!(matches!(
        a.client.epoch(&GroupId::random()),
        Err(Error::UnknownGroup)
    ));
    assert!(matches!(GroupId::new(vec![]), Err(Error::InvalidGroupId)));
    // A tampered application message fails and leaves the receiver usable.
    let mut m = a.send(&gid, "tampered");
    let last = m.len() - 1;
    m[last] ^= 1;
    assert!(b.client.process(&m, &everyone).is_err());
    let m = a.send(&gid, "intact");
    assert_eq!(texts(&b.recv(&m, &everyone)), vec!["intact"]);
}

#[test]
fn a_group_created_alone_publishes_its_first_group_info() {
    let mut a = Device::new();
    let gid = GroupId::random();
    let pending = a.client.create_group(&gid, &[]).expect("create");
    assert!(pending.welcome.is_none());
    assert!(!pending.group_info.is_empty());
    assert_eq!(pending.epoch, Epoch(0));
    a.client
        .commit_accepted(&gid, &allow(&[]))
        .expect("accepted");
    assert_eq!(a.client.epoch(&gid).expect("epoch"), Epoch(1));
}

#[test]
fn a_key_package_whose_credential_is_not_signed_by_its_device_is_refused() {
    use openmls::prelude::{BasicCredential, CredentialWithKey, KeyPackage, MlsMessageOut};
    use openmls_basic_credential::SignatureKeyPair;
    use openmls_traits::types::SignatureScheme;

    let (mut a, b, gid) = pair();
    // A leaf minted by someone without B's device key, claiming to be B.
    let provider = openmls_rust_crypto::OpenMlsRustCrypto::default();
    let signer = SignatureKeyPair::new(SignatureScheme::ED25519).expect("key");
    let claimed = [b.id(), vec![0u8; 64]].concat();
    let forged = KeyPackage::builder()
        .build(
            peerbridge_mls::CIPHERSUITE,
            &provider,
            &signer,
            CredentialWithKey {
                credential: BasicCredential::new(claimed).into(),
                signature_key: signer.to_public_vec().into(),
            },
        )
        .expect("key package");
    let bytes = MlsMessageOut::from(forged.key_package().clone())
        .to_bytes()
        .expect("bytes");
    assert!(matches!(
        a.client.add_members(&gid, &[bytes]),
        Err(Error::InvalidKeyPackage(_))
    ));
    assert!(
        verify_leaf_credential(&[b.id(), vec![0u8; 64]].concat(), &signer.to_public_vec())
            .is_none()
    );
}

#[test]
fn a_device_that_lost_the_group_state_rejoins_with_a_new_leaf() {
    let (mut a, mut b, gid) = pair();
    let everyone = allow(&[a.id(), b.id()]);
    b.client.forget_group(&gid).expect("forget");
    assert!(b.client.groups().expect("groups").is_empty());
    let update = a.client.self_update(&gid).expect("update");
    a.client.commit_accepted(&gid, &everyone).expect("accepted");
    let rejoin = b
        .client
        .rejoin(&update.group_info, &everyone)
        .expect("rejoin");
    // Traffic that arrives before the answer waits for it.
    let early = a.send(&gid, "sent before B's rejoin landed");
    assert!(matches!(
        b.recv(&early, &everyone).as_slice(),
        [Event::Buffered { .. }]
    ));
    b.client.commit_accepted(&gid, &everyone).expect("accepted");
    assert_eq!(b.client.groups().expect("groups"), vec![gid.clone()]);
    let events = a.recv(&rejoin.commit, &everyone);
    assert!(events.iter().any(|e| matches!(e,
        Event::MemberAdded { member, kind: AddKind::ExternalJoin, .. } if member.identity == b.id())));
    // Without the old signature key the stale leaf cannot be removed inline; it stays until
    // a member removes it.
    assert_eq!(a.client.members(&gid).expect("members").len(), 3);
    let m = a.send(&gid, "hello again");
    assert_eq!(texts(&b.recv(&m, &everyone)), vec!["hello again"]);
    let m = b.send(&gid, "back");
    assert_eq!(texts(&a.recv(&m, &everyone)), vec!["back"]);
}

#[test]
fn a_store_adopts_an_enrolled_identity_and_refuses_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("device.db");
    let key = peerbridge_mls::StoreKey::generate();
    let enrolled = peerbridge_mls::DeviceIdentity::generate();
    let public = enrolled.public_key();
    let secret = enrolled.secret();
    let client =
        peerbridge_mls::Client::open_with_identity(&path, &key, enrolled, ClientOptions::default())
            .expect("open");
    assert_eq!(client.identity().public_key(), public);
    drop(client);
    let again = peerbridge_mls::DeviceIdentity::from_secret(secret.as_ref()).expect("identity");
    peerbridge_mls::Client::open_with_identity(&path, &key, again, ClientOptions::default())
        .expect("the same identity reopens");
    assert!(matches!(
        peerbridge_mls::Client::open_with_identity(
            &path,
            &key,
            peerbridge_mls::DeviceIdentity::generate(),
            ClientOptions::default()
        ),
        Err(Error::IdentityMismatch)
    ));
}
