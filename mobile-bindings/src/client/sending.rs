//! Sending: encrypt, keep in the outbox in the same step, and flush with retries.

use super::*;

impl PeerbridgeClient {
    /// Encrypts and sends a text message; returns its id once the server has stored it.
    /// Transport failures are retried with the same client id (stored once however often it
    /// arrives). If every attempt fails the error is `network` and the message stays queued:
    /// a later sync sends it and reports [`Event::Sent`].
    pub async fn send_text(&self, conversation: Uuid, text: &str) -> Result<Uuid> {
        let client_id = Uuid::new_v4();
        let envelope = Envelope::Text {
            id: MessageId::from_bytes(client_id.into_bytes()),
            body: text.to_owned(),
            sent_at: u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0),
        };
        self.send_with_id(conversation, client_id, &envelope).await
    }

    /// Sends any envelope (identity cards, notices) like a text message.
    pub(crate) async fn send_envelope(
        &self,
        conversation: Uuid,
        envelope: &Envelope,
    ) -> Result<Uuid> {
        self.send_with_id(conversation, Uuid::new_v4(), envelope)
            .await
    }

    pub(super) async fn send_with_id(
        &self,
        conversation: Uuid,
        client_id: Uuid,
        envelope: &Envelope,
    ) -> Result<Uuid> {
        let lock = self.conv_lock(conversation);
        let _g = lock.lock().await;
        let mut st = self.joined_state(conversation)?;
        let gid = self.group_of(&st)?;
        // The sender ratchet step and the queued message are one write: a crash leaves
        // either neither or a message that will be sent.
        let out = self.mls()?.atomically(|m| -> Result<Outgoing> {
            let ct = m.encrypt(&gid, envelope)?;
            let record = match envelope {
                Envelope::Text { body, sent_at, .. } => self
                    .members_in(m, &gid)?
                    .into_iter()
                    .find(|m| m.is_me)
                    .map(|sender| Event::Text {
                        conversation,
                        seq: 0,
                        id: client_id,
                        sender,
                        body: body.clone(),
                        sent_at: *sent_at,
                    }),
                _ => None,
            };
            let out = Outgoing {
                client_id,
                ciphertext: b64(&ct),
                record,
            };
            // Queued and marked as ours first: a crash after this still sends it, and the
            // echo of our own message in the log is skipped (this device cannot decrypt it).
            st.outbox.push(out.clone());
            save_conv_in(
                m,
                conversation,
                &mut st,
                Vec::new(),
                vec![(own_key(conversation, client_id), Some(b"1".to_vec()))],
            )?;
            Ok(out)
        })?;
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            match self.post_message(conversation, &out).await {
                Err(e) if e.is_transient() && attempt < self.options.max_send_attempts => {
                    self.backoff(attempt).await;
                }
                other => break other,
            }
        };
        match result {
            Ok(accepted) => {
                let mut st = self.joined_state(conversation)?;
                st.outbox.retain(|o| o.client_id != client_id);
                let rows = st.record_own(conversation, out.record, accepted.seq)?;
                self.save_conv_with(conversation, &mut st, Vec::new(), rows)?;
                Ok(client_id)
            }
            Err(e) if e.is_transient() => Err(e),
            Err(e) => {
                let mut st = self.joined_state(conversation)?;
                st.outbox.retain(|o| o.client_id != client_id);
                self.save_conv_with(
                    conversation,
                    &mut st,
                    Vec::new(),
                    vec![(own_key(conversation, client_id), None)],
                )?;
                Err(e)
            }
        }
    }

    pub(super) async fn post_message(&self, conv: Uuid, out: &Outgoing) -> Result<MessageAccepted> {
        self.authed(
            Method::POST,
            &format!("/v1/conversations/{conv}/messages"),
            Some(&MessageSend {
                client_id: out.client_id,
                ciphertext: out.ciphertext.clone(),
            }),
        )
        .await?
        .json()
    }

    /// Sends what the outbox still holds (one attempt each; stops at a transport failure).
    pub(super) async fn flush_outbox(&self, conv: Uuid) -> Result<()> {
        let Some(st) = self.conv_state(conv)? else {
            return Ok(());
        };
        for out in st.outbox.clone() {
            let result = self.post_message(conv, &out).await;
            let event = match result {
                Ok(a) => Event::Sent {
                    conversation: conv,
                    id: out.client_id,
                    seq: a.seq,
                },
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => Event::SendFailed {
                    conversation: conv,
                    id: out.client_id,
                    reason: e.code().to_owned(),
                },
            };
            let mut st = self.joined_state(conv)?;
            st.outbox.retain(|o| o.client_id != out.client_id);
            let rows = match &event {
                Event::Sent { seq, .. } => st.record_own(conv, out.record, *seq)?,
                _ => Vec::new(),
            };
            self.save_conv_with(conv, &mut st, vec![event], rows)?;
        }
        Ok(())
    }
}
