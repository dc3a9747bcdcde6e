//! A device that speaks MLS through the real client core (`peerbridge-mls`) and the real
//! delivery API: what an app does, minus the UI.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use peerbridge_mls::{
    AddCandidate, Client as MlsClient, ClientOptions, DeviceIdentity, Envelope, Event, GroupId,
    MessageId, PendingCommit, StoreKey,
};
use peerbridge_openapi::delivery::{ClaimedKeyPackage, LogPage, Welcome};
use serde_json::json;
use uuid::Uuid;

use crate::{Client, Response};

pub fn b64(v: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(v)
}

pub fn unb64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).expect("base64url")
}

/// Accepts every member whose credential verifies (the client core checks that itself).
pub fn allow_all(_: &AddCandidate<'_>) -> bool {
    true
}

/// One device: its access token, its MLS client and per-conversation cursors.
pub struct MlsDevice {
    pub token: String,
    pub device_id: Uuid,
    pub mls: MlsClient,
    pub http: Client,
    _dir: tempfile::TempDir,
}

impl MlsDevice {
    pub fn new(http: Client, token: &str, device_id: Uuid, identity: &DeviceIdentity) -> MlsDevice {
        let dir = tempfile::tempdir().expect("tempdir");
        let identity = DeviceIdentity::from_secret(identity.secret().as_ref()).expect("identity");
        let mls = MlsClient::open_with_identity(
            dir.path().join("store.db"),
            &StoreKey::from_bytes([7u8; 32]),
            identity,
            ClientOptions::default(),
        )
        .expect("mls client");
        MlsDevice {
            token: token.to_owned(),
            device_id,
            mls,
            http,
            _dir: dir,
        }
    }

    pub async fn upload_key_packages(&mut self, n: usize) -> Response {
        let mut kps: Vec<String> = self
            .mls
            .generate_key_packages(n)
            .expect("kps")
            .into_iter()
            .map(|k| b64(&k.key_package))
            .collect();
        kps.push(b64(&self
            .mls
            .last_resort_key_package()
            .expect("lr")
            .key_package));
        self.http
            .post(
                "/v1/key-packages",
                Some(&self.token),
                json!({ "key_packages": kps }),
            )
            .await
    }

    pub async fn claim(&self, conv: Uuid, user: Uuid) -> Response {
        self.http
            .post(
                &format!("/v1/conversations/{conv}/key-packages/claim"),
                Some(&self.token),
                json!({ "user_id": user }),
            )
            .await
    }

    pub async fn submit(&self, conv: Uuid, pc: &PendingCommit) -> Response {
        self.http
            .post(
                &format!("/v1/conversations/{conv}/commits"),
                Some(&self.token),
                json!({
                    "epoch": pc.epoch.0,
                    "commit": b64(&pc.commit),
                    "welcome": pc.welcome.as_deref().map(b64),
                    "group_info": b64(&pc.group_info),
                }),
            )
            .await
    }

    /// Creates the MLS group for a server-created conversation, adding the claimed devices.
    pub async fn open_group(
        &mut self,
        conv: Uuid,
        group_id: &str,
        claimed: &[ClaimedKeyPackage],
    ) -> Response {
        let gid = GroupId::new(unb64(group_id)).expect("gid");
        let kps: Vec<Vec<u8>> = claimed.iter().map(|c| unb64(&c.key_package)).collect();
        let pc = self.mls.create_group(&gid, &kps).expect("create group");
        let r = self.submit(conv, &pc).await;
        if r.status == 201 {
            self.mls.commit_accepted(&gid, &allow_all).expect("merge");
        } else {
            self.mls.commit_rejected(&gid).expect("discard");
        }
        r
    }

    /// Joins every conversation with a waiting welcome; returns their start cursors.
    pub async fn accept_welcomes(&mut self) -> Vec<(Uuid, u64)> {
        let ws: Vec<Welcome> = self
            .http
            .get("/v1/welcomes", Some(&self.token))
            .await
            .expect(200)
            .parse();
        let mut out = Vec::new();
        for w in ws {
            self.mls
                .join_from_welcome(&unb64(&w.welcome), &allow_all)
                .expect("join");
            self.http
                .post(
                    &format!("/v1/welcomes/{}/ack", w.id),
                    Some(&self.token),
                    json!({}),
                )
                .await
                .expect(204);
            out.push((w.conversation_id, w.start_seq));
        }
        out
    }

    pub async fn send_text(
        &mut self,
        conv: Uuid,
        group_id: &str,
        text: &str,
        client_id: Uuid,
    ) -> Response {
        let gid = GroupId::new(unb64(group_id)).expect("gid");
        let ct = self
            .mls
            .encrypt(
                &gid,
                &Envelope::Text {
                    id: MessageId::random(),
                    body: text.to_owned(),
                    sent_at: 0,
                },
            )
            .expect("encrypt");
        self.http
            .post(
                &format!("/v1/conversations/{conv}/messages"),
                Some(&self.token),
                json!({ "client_id": client_id, "ciphertext": b64(&ct) }),
            )
            .await
    }

    /// Reads everything after `cursor`, processes it, returns the texts and the new cursor.
    pub async fn read(&mut self, conv: Uuid, mut cursor: u64) -> (Vec<String>, u64) {
        let mut texts = Vec::new();
        loop {
            let page: LogPage = self
                .http
                .get(
                    &format!("/v1/conversations/{conv}/messages?after={cursor}&limit=200"),
                    Some(&self.token),
                )
                .await
                .expect(200)
                .parse();
            for e in &page.items {
                for ev in self
                    .mls
                    .process(&unb64(&e.payload), &allow_all)
                    .expect("process")
                {
                    if let Event::Message {
                        envelope: Envelope::Text { body, .. },
                        ..
                    } = ev
                    {
                        texts.push(body);
                    }
                }
            }
            cursor = page.cursor;
            if !page.has_more {
                break;
            }
        }
        (texts, cursor)
    }

    pub async fn ack(&self, conv: Uuid, seq: u64) -> Response {
        self.http
            .post(
                &format!("/v1/conversations/{conv}/ack"),
                Some(&self.token),
                json!({ "seq": seq }),
            )
            .await
    }
}

/// A peer and their assigned supervising HP, each with an MLS device, in an opened
/// supervision conversation (the HP joined by welcome).
pub struct SupervisionPair {
    pub clinic: Uuid,
    pub peer: crate::api::Enrolled,
    pub hp: crate::Staff,
    pub p: MlsDevice,
    pub h: MlsDevice,
    pub conv: peerbridge_openapi::delivery::Conversation,
    /// The HP's start cursor from its welcome.
    pub h_start: u64,
}

impl crate::TestApp {
    /// A clinic with an HP and an enrolled peer whom the HP supervises.
    pub async fn peer_with_supervisor(&self) -> (Uuid, crate::Staff, crate::api::Enrolled) {
        let op = self.bootstrap_operator().await;
        let (clinic, hp) = self.clinic_with_hp(&op, "Supervision").await;
        let peer = self.supervised_peer(&hp, clinic).await;
        (clinic, hp, peer)
    }

    /// A new peer, invited by `hp` at `clinic` and enrolled, whom `hp` supervises.
    pub async fn supervised_peer(&self, hp: &crate::Staff, clinic: Uuid) -> crate::api::Enrolled {
        let peer = self
            .redeem(&self.create_invite(hp, clinic, "peer").await.code)
            .await;
        self.client()
            .post(
                &format!(
                    "/v1/clinics/{clinic}/peers/{}/supervisors",
                    peer.session.user_id
                ),
                Some(hp.token()),
                json!({ "hp_id": hp.session.user_id }),
            )
            .await
            .expect(201);
        peer
    }

    /// Creates the peer's supervision conversation on the server (no MLS group yet).
    pub async fn supervision_conversation(
        &self,
        peer: &crate::api::Enrolled,
    ) -> peerbridge_openapi::delivery::Conversation {
        self.client()
            .post(
                "/v1/conversations",
                Some(peer.token()),
                json!({ "kind": "supervision", "peer_id": peer.session.user_id }),
            )
            .await
            .expect(201)
            .parse()
    }

    /// The peer's supervision conversation, opened by the peer's device alone (a member
    /// that can raise flags); returns its id.
    pub async fn supervision_opened_alone(&self, peer: &crate::api::Enrolled) -> Uuid {
        let c = self.client();
        let conv = self.supervision_conversation(peer).await;
        let mut dev = MlsDevice::new(c, peer.token(), peer.session.device_id, &peer.device);
        dev.open_group(conv.id, &conv.group_id, &[])
            .await
            .expect(201);
        conv.id
    }

    pub async fn supervision_pair(&self) -> SupervisionPair {
        let c = self.client();
        let (clinic, hp, peer) = self.peer_with_supervisor().await;
        let mut p = MlsDevice::new(
            c.clone(),
            peer.token(),
            peer.session.device_id,
            &peer.device,
        );
        let mut h = MlsDevice::new(c.clone(), hp.token(), hp.session.device_id, &hp.device);
        h.upload_key_packages(3).await.expect(200);
        p.upload_key_packages(3).await.expect(200);
        let conv = self.supervision_conversation(&peer).await;
        let claimed: Vec<ClaimedKeyPackage> = p
            .claim(conv.id, hp.session.user_id)
            .await
            .expect(200)
            .parse();
        p.open_group(conv.id, &conv.group_id, &claimed)
            .await
            .expect(201);
        let joined = h.accept_welcomes().await;
        SupervisionPair {
            clinic,
            peer,
            hp,
            p,
            h,
            conv,
            h_start: joined[0].1,
        }
    }
}

/// A WebSocket connection to `/v1/stream`.
pub struct Stream {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Stream {
    pub async fn connect(base: &str, token: &str) -> Stream {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!("{}/v1/stream", base.replacen("http://", "ws://", 1));
        let mut req = url.into_client_request().expect("request");
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("websocket connects");
        Stream { ws }
    }

    /// The next JSON notice, skipping pings; `Err(close code)` when the server closed.
    pub async fn next(&mut self) -> Result<serde_json::Value, Option<u16>> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            let frame = tokio::time::timeout(std::time::Duration::from_secs(10), self.ws.next())
                .await
                .expect("a frame within 10 s");
            match frame {
                Some(Ok(Message::Text(t))) => {
                    return Ok(serde_json::from_str(t.as_str()).expect("json notice"));
                }
                Some(Ok(Message::Close(f))) => return Err(f.map(|f| u16::from(f.code))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(None),
            }
        }
    }

    /// Closes the connection from the client's side and waits for the server's close.
    pub async fn close(mut self) {
        use futures_util::StreamExt;
        let _ = self.ws.close(None).await;
        while let Ok(Some(_)) =
            tokio::time::timeout(std::time::Duration::from_secs(5), self.ws.next()).await
        {}
    }

    /// Waits for a notice of `kind` (skipping others).
    pub async fn until(&mut self, kind: &str) -> serde_json::Value {
        loop {
            let n = self.next().await.expect("stream open");
            if n["type"] == kind {
                return n;
            }
        }
    }
}
