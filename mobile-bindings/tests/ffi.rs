//! The exported `Peerbridge` object driven from Rust exactly as an app drives it (the same
//! calls the Kotlin story makes from the JVM): the listener receives a supervision chat,
//! a listener that throws does not stop the loop, suspend/resume loses nothing, the object
//! re-created from its directory continues, a wrong key fails with `WrongStorageKey`, and
//! server refusals arrive as the documented error cases.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use peerbridge_mobile::{
    ConnectionState, Event, Peerbridge, PeerbridgeError, PeerbridgeListener, error_code,
};
use peerbridge_tests::{TestApp, backends};
use tokio::sync::mpsc;

/// Forwards events to the test; panics (as a throwing app listener would) on the first
/// batch when asked to.
struct Listener {
    tx: mpsc::UnboundedSender<Event>,
    throw_once: Mutex<bool>,
    stopped: Mutex<Option<PeerbridgeError>>,
}

impl PeerbridgeListener for Listener {
    fn on_events(&self, events: Vec<Event>) {
        for e in events {
            let _ = self.tx.send(e);
        }
        let mut t = self.throw_once.lock().expect("lock");
        if *t {
            *t = false;
            panic!("the app's listener threw");
        }
    }

    fn on_stopped(&self, error: PeerbridgeError) {
        *self.stopped.lock().expect("lock") = Some(error);
    }
}

fn listener(throw_once: bool) -> (Arc<Listener>, mpsc::UnboundedReceiver<Event>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        Arc::new(Listener {
            tx,
            throw_once: Mutex::new(throw_once),
            stopped: Mutex::new(None),
        }),
        rx,
    )
}

async fn until<T>(
    rx: &mut mpsc::UnboundedReceiver<Event>,
    what: &str,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> T {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let e = rx.recv().await.expect("listener alive");
            if let Some(t) = pick(&e) {
                return t;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never received {what}"))
}

fn text_is(e: &Event, want: &str) -> Option<()> {
    matches!(e, Event::Text { body, .. } if body == want).then_some(())
}

fn connected(e: &Event) -> Option<()> {
    matches!(
        e,
        Event::ConnectionChanged {
            state: ConnectionState::Connected
        }
    )
    .then_some(())
}

#[tokio::test]
async fn the_exported_object_lives_through_an_apps_day() {
    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let op = app.bootstrap_operator().await;
        let (clinic, hp) = app.clinic_with_hp(&op, "Oslo OPC").await;
        let invite = app.create_invite(&hp, clinic, "peer").await;
        let dirs = tempfile::tempdir().expect("tempdir");
        let peer_dir = dirs.path().join("peer").to_string_lossy().into_owned();
        let hp_dir = dirs.path().join("hp").to_string_lossy().into_owned();

        // Arguments are checked before anything is created.
        let e = Peerbridge::new(app.base.clone(), peer_dir.clone(), vec![1; 16])
            .expect_err("short key");
        assert_eq!(error_code(&e), "invalid_input");

        let peer = Peerbridge::new(app.base.clone(), peer_dir.clone(), vec![3; 32]).expect("open");
        let me = peer
            .enroll(invite.code.clone(), "Phone".into())
            .await
            .expect("enroll");
        peer.ensure_key_packages().await.expect("key packages");
        let hp_dev = Peerbridge::new(app.base.clone(), hp_dir, vec![4; 32]).expect("open");
        hp_dev
            .staff_login(
                hp.login.clone(),
                hp.password.clone(),
                app.fresh_totp(&hp.totp_secret),
                "Workstation".into(),
            )
            .await
            .expect("staff login");
        hp_dev.ensure_key_packages().await.expect("key packages");

        // Server refusals arrive as the documented cases.
        assert!(matches!(
            peer.flags().await,
            Err(PeerbridgeError::Forbidden { .. })
        ));
        hp_dev
            .assign_supervisor(clinic, me.user_id, hp.session.user_id)
            .await
            .expect("assign");
        let e = hp_dev
            .assign_supervisor(clinic, me.user_id, hp.session.user_id)
            .await
            .expect_err("twice");
        assert!(matches!(e, PeerbridgeError::Conflict { .. }), "{e:?}");
        assert_eq!(error_code(&e), "conflict");

        let conv = peer
            .create_supervision_conversation(me.user_id)
            .await
            .expect("conversation")
            .id;
        let (hp_l, mut hp_rx) = listener(true);
        hp_dev.start(hp_l.clone()).await;
        until(&mut hp_rx, "connected", connected).await;
        // The first batch made the listener throw; the loop goes on.
        peer.send_text(conv, "Hei, kan vi ta en prat?".into())
            .await
            .expect("send");
        until(&mut hp_rx, "the first message", |e| {
            text_is(e, "Hei, kan vi ta en prat?")
        })
        .await;
        peer.send_text(conv, "Etter en tung samtale".into())
            .await
            .expect("send");
        until(&mut hp_rx, "the second message", |e| {
            text_is(e, "Etter en tung samtale")
        })
        .await;

        // Backgrounded: nothing arrives; resumed: what was sent meanwhile arrives.
        hp_dev.suspend().await;
        until(&mut hp_rx, "suspended", |e| {
            matches!(
                e,
                Event::ConnectionChanged {
                    state: ConnectionState::Suspended
                }
            )
            .then_some(())
        })
        .await;
        peer.send_text(conv, "Sendt mens appen sov".into())
            .await
            .expect("send");
        // Nothing is received while suspended: the message arrives only after the resumed
        // loop has reconnected (a loop still running would deliver it on the open socket).
        hp_dev.resume().await;
        let mut reconnected = false;
        until(&mut hp_rx, "the message sent while suspended", |e| {
            if connected(e).is_some() {
                reconnected = true;
            }
            text_is(e, "Sendt mens appen sov")
        })
        .await;
        assert!(reconnected, "delivered only after the stream reconnected");
        assert!(hp_l.stopped.lock().expect("lock").is_none());

        // Killed and re-created from the same directory and key: same device, history kept.
        drop(peer);
        let e = Peerbridge::new(app.base.clone(), peer_dir.clone(), vec![9; 32])
            .expect_err("wrong key");
        assert_eq!(e, PeerbridgeError::WrongStorageKey);
        let peer = Peerbridge::new(app.base.clone(), peer_dir, vec![3; 32]).expect("reopen");
        assert_eq!(
            peer.session().expect("session").map(|s| s.user_id),
            Some(me.user_id)
        );
        let lines: Vec<String> = peer
            .history(conv, None, 10)
            .expect("history")
            .events
            .into_iter()
            .filter_map(|e| match e {
                Event::Text { body, .. } => Some(body),
                _ => None,
            })
            .collect();
        assert_eq!(
            lines,
            [
                "Hei, kan vi ta en prat?",
                "Etter en tung samtale",
                "Sendt mens appen sov"
            ]
        );
        peer.send_text(conv, "Fortsatt her".into())
            .await
            .expect("send after reopen");
        until(&mut hp_rx, "a message from the re-created object", |e| {
            text_is(e, "Fortsatt her")
        })
        .await;

        // A revoked device: the loop stops and tells the app why.
        let (p_l, _p_rx) = listener(false);
        peer.start(p_l.clone()).await;
        app.client()
            .delete(
                &format!(
                    "/v1/clinics/{clinic}/users/{}/devices/{}",
                    me.user_id, me.device_id
                ),
                Some(hp.token()),
            )
            .await
            .expect(200);
        tokio::time::timeout(Duration::from_secs(20), async {
            while p_l.stopped.lock().expect("lock").is_none() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("the loop stops");
        let why = p_l.stopped.lock().expect("lock").clone().expect("stopped");
        assert_eq!(error_code(&why), "unauthenticated");
    }
}
