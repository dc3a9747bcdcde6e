//! Pseudonymous leaves for introductions: nothing a member receives names the other's
//! device or links their introductions; the device's binding goes to the server only;
//! members sign consent statements with their leaf key and verify each other's.

mod common;

use common::{Device, texts};
use peerbridge_mls::{
    AddCandidate, CredentialKind, GroupId, leaf_binding_message, pseudonym_of, verify_signature,
};

fn allow_pseudonyms(c: &AddCandidate<'_>) -> bool {
    c.member.pseudonymous
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `a` opens a pseudonymous group with `b`; returns the group and every byte string `b`
/// received or could fetch.
fn introduce(a: &mut Device, b: &mut Device) -> (GroupId, Vec<Vec<u8>>) {
    let kp = b
        .client
        .generate_pseudonymous_key_packages(1)
        .expect("kp")
        .remove(0);
    let binding = kp.leaf_binding.clone().expect("a binding for the server");
    assert!(verify_signature(
        b.client.identity().public_key().as_slice(),
        &leaf_binding_message(&kp.signature_key),
        &binding
    ));
    let gid = GroupId::random();
    let pc = a
        .client
        .create_group_with(
            &gid,
            std::slice::from_ref(&kp.key_package),
            CredentialKind::Pseudonymous,
        )
        .expect("create");
    let own_binding = pc.leaf_binding.clone().expect("the creator's binding");
    a.client
        .commit_accepted(&gid, &allow_pseudonyms)
        .expect("merge");
    let members = a.client.members(&gid).expect("members");
    let mine = members
        .iter()
        .find(|m| m.leaf_index == 0)
        .expect("own leaf");
    assert!(verify_signature(
        a.client.identity().public_key().as_slice(),
        &leaf_binding_message(&mine.signature_key),
        &own_binding
    ));
    let joined = b
        .client
        .join_from_welcome(pc.welcome.as_ref().expect("welcome"), &allow_pseudonyms)
        .expect("join");
    assert!(joined.members.iter().all(|m| m.pseudonymous && m.verified));
    let hello = a.send(&gid, "hei");
    assert_eq!(texts(&b.recv_with(&hello, &allow_pseudonyms)), vec!["hei"]);
    (
        gid,
        vec![
            kp.key_package,
            pc.commit,
            pc.welcome.expect("welcome"),
            pc.group_info,
            hello,
        ],
    )
}

impl Device {
    fn recv_with(
        &mut self,
        m: &[u8],
        policy: &dyn peerbridge_mls::AddPolicy,
    ) -> Vec<peerbridge_mls::Event> {
        self.client.process(m, policy).expect("process")
    }
}

#[test]
fn pseudonymous_groups_reveal_no_device_and_link_nothing() {
    let mut su = Device::new();
    let mut peer = Device::new();
    let mut other_su = Device::new();
    let (g1, bytes1) = introduce(&mut su, &mut peer);
    let (g2, bytes2) = introduce(&mut other_su, &mut peer);
    let keys = [
        su.client.identity().public_key().to_vec(),
        peer.client.identity().public_key().to_vec(),
    ];
    for b in bytes1.iter().chain(&bytes2) {
        for k in &keys {
            assert!(!contains(b, k), "a device key travelled in the group");
        }
    }
    // The peer's leaves in the two introductions share no pseudonym and no key.
    let leaf = |d: &Device, g: &GroupId| {
        let own = d.client.own_leaf_index(g).expect("own");
        d.client
            .members(g)
            .expect("members")
            .into_iter()
            .find(|m| m.leaf_index == own)
            .expect("leaf")
    };
    let (p1, p2) = (leaf(&peer, &g1), leaf(&peer, &g2));
    assert!(p1.pseudonymous && p2.pseudonymous);
    assert_ne!(p1.identity, p2.identity);
    assert_ne!(p1.signature_key, p2.signature_key);
    assert!(pseudonym_of(&[b"PBP1".as_slice(), &p1.identity].concat()).is_some());
    assert!(!contains(&bytes2.concat(), &p1.signature_key));
}

#[test]
fn members_sign_and_verify_statements_with_their_leaf_keys() {
    let mut su = Device::new();
    let mut peer = Device::new();
    let (g, _) = introduce(&mut su, &mut peer);
    let statement = b"peerbridge/consent/v1 reveal grant";
    let sig = su.client.sign_as_member(&g, statement).expect("sign");
    let who = peer
        .client
        .verify_member_signature(&g, statement, &sig.signature_key, &sig.signature)
        .expect("verify")
        .expect("a member signed it");
    assert!(who.pseudonymous);
    assert_ne!(who.leaf_index, peer.client.own_leaf_index(&g).expect("own"));
    // Tampered statement, a key from outside the group, garbage.
    assert!(
        peer.client
            .verify_member_signature(
                &g,
                b"peerbridge/consent/v1 reveal withdraw",
                &sig.signature_key,
                &sig.signature
            )
            .expect("ok")
            .is_none()
    );
    let outsider = Device::new();
    let fake = outsider.client.identity().sign(statement);
    assert!(
        peer.client
            .verify_member_signature(
                &g,
                statement,
                outsider.client.identity().public_key().as_slice(),
                &fake
            )
            .expect("ok")
            .is_none()
    );
    assert!(
        peer.client
            .verify_member_signature(&g, statement, &[1, 2, 3], &[4; 10])
            .expect("ok")
            .is_none()
    );
}

#[test]
fn an_identified_clinician_joins_a_pseudonymous_group_as_a_device() {
    let mut su = Device::new();
    let mut peer = Device::new();
    let mut hp = Device::new();
    let (g, _) = introduce(&mut su, &mut peer);
    let hp_kp = hp.key_package();
    let pc = su.client.add_members(&g, &[hp_kp]).expect("add");
    assert!(
        pc.leaf_binding.is_some(),
        "a pseudonymous leaf keeps telling the server it is bound"
    );
    su.client
        .commit_accepted(&g, &|_: &AddCandidate<'_>| true)
        .expect("merge");
    let joined = hp
        .client
        .join_from_welcome(pc.welcome.as_ref().expect("welcome"), &allow_pseudonyms)
        .expect("join");
    assert_eq!(joined.members.iter().filter(|m| m.pseudonymous).count(), 2);
    // The peer sees a verified device member: the clinician's device key.
    let events = peer
        .client
        .process(&pc.commit, &|_: &AddCandidate<'_>| true)
        .expect("process");
    let added = events
        .iter()
        .find_map(|e| match e {
            peerbridge_mls::Event::MemberAdded { member, .. } => Some(member.clone()),
            _ => None,
        })
        .expect("added");
    assert!(!added.pseudonymous && added.verified);
    assert_eq!(added.identity, hp.id());
    let m = hp.send(&g, "Hei, dette er Hanne fra poliklinikken.");
    assert_eq!(
        texts(&peer.recv_with(&m, &allow_pseudonyms)),
        vec!["Hei, dette er Hanne fra poliklinikken."]
    );
}

#[test]
fn a_rejoin_keeps_the_leaf_pseudonymous_and_bound() {
    let mut su = Device::new();
    let mut peer = Device::new();
    let (g, _) = introduce(&mut su, &mut peer);
    let info = {
        // The latest GroupInfo, as the server keeps it: from a self-update by the SU.
        let pc = su.client.self_update(&g).expect("update");
        su.client
            .commit_accepted(&g, &allow_pseudonyms)
            .expect("merge");
        peer.client
            .process(&pc.commit, &allow_pseudonyms)
            .expect("process");
        pc.group_info
    };
    peer.client.forget_group(&g).expect("forget");
    let pc = peer
        .client
        .rejoin_as(&info, &allow_pseudonyms, CredentialKind::Pseudonymous)
        .expect("rejoin");
    let binding = pc.leaf_binding.clone().expect("bound");
    peer.client
        .commit_accepted(&g, &allow_pseudonyms)
        .expect("merge");
    let own = peer.client.own_leaf_index(&g).expect("own");
    let leaf = peer
        .client
        .members(&g)
        .expect("members")
        .into_iter()
        .find(|m| m.leaf_index == own)
        .expect("leaf");
    assert!(leaf.pseudonymous);
    assert!(verify_signature(
        peer.client.identity().public_key().as_slice(),
        &leaf_binding_message(&leaf.signature_key),
        &binding
    ));
}

#[test]
fn every_message_is_franked_and_its_opening_matches_the_commitment() {
    let mut su = Device::new();
    let mut peer = Device::new();
    let (g, _) = introduce(&mut su, &mut peer);
    let ct = su.send(&g, "jeg vil ikke leve mer");
    let events = peer.recv_with(&ct, &allow_pseudonyms);
    let Some(peerbridge_mls::Event::Message {
        franking: Some(f),
        envelope,
        ..
    }) = events.first()
    else {
        panic!("{events:?}");
    };
    assert_eq!(
        peerbridge_mls::excerpt::commitment(&f.key, &f.plaintext),
        f.commitment
    );
    assert_eq!(
        &peerbridge_mls::Envelope::decode(&f.plaintext).expect("decodes"),
        envelope
    );
    // The commitment is readable by the delivery service (authenticated data); the key and
    // the text are not in the clear.
    assert!(contains(&ct, &f.commitment));
    assert!(!contains(&ct, &f.key));
    assert!(!contains(&ct, "ikke leve".as_bytes()));
}
