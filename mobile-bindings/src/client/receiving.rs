//! Receiving: the log sync, one atomic device-store step per entry, and the receive hooks.

use super::*;
use crate::hooks::{RECEIVE_HOOKS, Received};

impl PeerbridgeClient {
    /// Reads the conversation's log from the stored cursor, processes it, acknowledges it and
    /// returns the new events (deduplicated by client id and message id).
    pub async fn sync(&self, conversation: Uuid) -> Result<Vec<Event>> {
        self.sync_with(conversation, None).await
    }

    /// [`PeerbridgeClient::sync`], given the entry a `message` notice carried: if it is the
    /// next one after the stored cursor, it is processed as a one-entry page of the log
    /// (no read over HTTP); otherwise, or if anything else needs the log, the log is read.
    pub(crate) async fn sync_with(
        &self,
        conversation: Uuid,
        entry: Option<LogEntry>,
    ) -> Result<Vec<Event>> {
        self.flush_queued_flags(Some(conversation)).await?;
        let lock = self.conv_lock(conversation);
        let _g = lock.lock().await;
        self.sync_locked_with(conversation, entry).await?;
        self.drain_locked(conversation)
    }

    /// Accepts waiting welcomes, then syncs every conversation this device has joined.
    pub async fn sync_all(&self) -> Result<Vec<Event>> {
        self.flush_queued_flags(None).await?;
        let mut out = self.accept_welcomes().await?;
        for id in self.known_conversations()? {
            let lock = self.conv_lock(id);
            let _g = lock.lock().await;
            if self.conv_state(id)?.is_some_and(|s| s.group_id.is_some()) {
                match self.sync_locked(id).await {
                    Ok(()) => {}
                    // Removed from the conversation (or it is gone): skip it, go on.
                    Err(SdkError::Forbidden(_) | SdkError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            out.extend(self.drain_locked(id)?);
        }
        Ok(out)
    }

    /// Queued flags go first (a risk waiting on a phone is the most urgent thing it holds);
    /// a transport failure leaves them queued and lets the sync go on.
    async fn flush_queued_flags(&self, only: Option<Uuid>) -> Result<()> {
        match self.flush_flags(only).await {
            Err(e) if !e.is_transient() => Err(e),
            _ => Ok(()),
        }
    }

    /// The sync itself; the caller holds the conversation lock. Events go to the inbox.
    pub(crate) async fn sync_locked(&self, conv: Uuid) -> Result<()> {
        self.sync_locked_with(conv, None).await
    }

    async fn sync_locked_with(&self, conv: Uuid, mut entry: Option<LogEntry>) -> Result<()> {
        match self.flush_outbox(conv).await {
            Ok(()) => {}
            Err(e) if e.is_transient() => {}
            Err(e) => return Err(e),
        }
        let mut st = self.joined_state(conv)?;
        let gid = self.group_of(&st)?;
        let mut consents_checked = false;
        loop {
            let page_start = st.cursor;
            let page: LogPage = match entry
                .take()
                .filter(|e| e.seq == st.cursor + 1 && e.kind == EntryKind::Application)
            {
                // Exactly what the log would answer from the cursor with nothing after it
                // (a later entry, if any, comes with its own notice).
                Some(e) => LogPage {
                    cursor: e.seq,
                    items: vec![e],
                    has_more: false,
                    purged: None,
                },
                None => {
                    self.get(&format!(
                        "/v1/conversations/{conv}/messages?after={}&limit={PAGE}",
                        st.cursor
                    ))
                    .await?
                }
            };
            // Only a commit can add a member: before processing one, a party re-verifies
            // the consents so an admitted HP's join is accepted (not on every message).
            let commit_ahead = page
                .items
                .iter()
                .any(|e| e.kind == EntryKind::Commit && e.seq > st.cursor);
            if !consents_checked
                && commit_ahead
                && st.pseudonymous
                && let Some(intro) = st.introduction
            {
                consents_checked = true;
                if let Err(e) = self.verify_consents(intro, conv).await {
                    tracing::debug!(
                        code = e.code(),
                        "consents could not be checked before a commit"
                    );
                }
            }
            for entry in &page.items {
                if entry.seq <= st.cursor {
                    continue;
                }
                let mut mls = self.mls()?;
                st = mls.atomically(|m| self.receive_entry(m, conv, &gid, entry, st.clone()))?;
            }
            if page.cursor > st.cursor || page.purged.is_some() {
                st.cursor = st.cursor.max(page.cursor);
                let mut events = Vec::new();
                if let Some(p) = page.purged.filter(|p| p.to_seq > page_start) {
                    events.push(Event::MessagesPurged {
                        conversation: conv,
                        from_seq: p.from_seq.max(page_start + 1),
                        to_seq: p.to_seq,
                        count: p.count,
                        commits: p.commits,
                    });
                    if p.commits > 0 {
                        // The group state missed an epoch change: only a rejoin recovers.
                        st.needs_rejoin = true;
                    }
                }
                self.save_conv(conv, &mut st, events)?;
            }
            // Stop at the end of the log, or if the server's cursor did not move (never
            // loop on a page that makes no progress).
            if !page.has_more || st.cursor <= page_start {
                break;
            }
        }
        if st.needs_rejoin {
            match self.rejoin_locked(conv).await {
                Ok(()) => st = self.joined_state(conv)?,
                Err(e) => tracing::warn!(code = e.code(), "rejoin failed"),
            }
        }
        if self.mls()?.pending_commit(&gid)?.is_some() {
            // Not in the log: still undecided. Leave it to `resolve_pending` of the next
            // commit so a read never sends a commit by itself.
            tracing::debug!("a commit is still pending after the sync");
        }
        if st.cursor > st.acked {
            match self
                .authed(
                    Method::POST,
                    &format!("/v1/conversations/{conv}/ack"),
                    Some(&Ack { seq: st.cursor }),
                )
                .await
            {
                Ok(_) => {
                    st.acked = st.cursor;
                    self.save_conv(conv, &mut st, Vec::new())?;
                }
                // The next sync acknowledges again.
                Err(e) if e.is_transient() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// One received log entry as one atomic step of the device store (run inside
    /// [`MlsClient::atomically`]): the MLS ratchet step, the rows of the [`RECEIVE_HOOKS`], the
    /// dedup ids, inbox and history events and the moved cursor are written together or
    /// not at all, so a crash can never consume a message key without keeping the message.
    pub(super) fn receive_entry(
        &self,
        mls: &mut MlsClient,
        conv: Uuid,
        gid: &GroupId,
        entry: &peerbridge_openapi::delivery::LogEntry,
        mut st: ConvState,
    ) -> Result<ConvState> {
        let mut events = Vec::new();
        let mut extra = Vec::new();
        let own = match entry.client_id {
            Some(id) => {
                let key = own_key(conv, id);
                let own = state::get::<serde_json::Value>(mls, &key)?.is_some();
                if own {
                    extra.push((key, None));
                }
                own
            }
            None => false,
        };
        let replay = entry.client_id.is_some_and(|id| st.recent.contains(&id));
        if !own && !replay {
            self.process_entry(mls, conv, gid, entry, &mut st, &mut events)?;
            if self.options.crash_after_mls_step {
                // Test hook: die between the ratchet step and the SDK's rows, as a killed
                // process would. Nothing of this step may reach the store.
                panic!("crash_after_mls_step (test hook)");
            }
        }
        st.cursor = entry.seq;
        if let Some(id) = entry.client_id {
            st.remember(id);
        }
        save_conv_in(mls, conv, &mut st, events, extra)?;
        Ok(st)
    }

    /// Processes one log entry with the client core; unreadable entries become events, a
    /// storage failure stops the sync before the cursor moves.
    pub(super) fn process_entry(
        &self,
        mls: &mut MlsClient,
        conv: Uuid,
        gid: &GroupId,
        entry: &peerbridge_openapi::delivery::LogEntry,
        st: &mut ConvState,
        events: &mut Vec<Event>,
    ) -> Result<()> {
        let bytes = match unb64("payload", &entry.payload) {
            Ok(b) => b,
            Err(e) => {
                events.push(Event::Undecryptable {
                    conversation: conv,
                    seq: entry.seq,
                    reason: e.to_string(),
                });
                return Ok(());
            }
        };
        let pol = self.policy_in(mls, conv, gid)?;
        let processed = mls.process(&bytes, &pol);
        let mls_events = match processed {
            Ok(evs) => evs,
            Err(
                e @ (peerbridge_mls::Error::StoreIo(_)
                | peerbridge_mls::Error::StoreCorrupt(_)
                | peerbridge_mls::Error::WrongStoreKey),
            ) => return Err(e.into()),
            Err(e) => {
                if entry.kind == EntryKind::Commit || matches!(e, peerbridge_mls::Error::BufferFull)
                {
                    // This device can no longer follow the group.
                    st.needs_rejoin = true;
                }
                events.push(Event::Undecryptable {
                    conversation: conv,
                    seq: entry.seq,
                    reason: e.code().to_owned(),
                });
                return Ok(());
            }
        };
        for e in mls_events {
            match e {
                peerbridge_mls::Event::OwnCommitEchoed { .. } => {
                    // Our in-doubt commit is in the log, so the server accepted it.
                    let before = self.members_in(mls, gid)?;
                    events.extend(self.accepted_in(mls, conv, gid, &before)?);
                }
                peerbridge_mls::Event::Message {
                    envelope: Envelope::Text { id, .. },
                    ..
                } if st.recent.contains(&Uuid::from_bytes(*id.as_bytes())) => {}
                other => {
                    if let peerbridge_mls::Event::Message {
                        envelope: Envelope::Text { id, .. },
                        ..
                    } = &other
                    {
                        st.remember(Uuid::from_bytes(*id.as_bytes()));
                    }
                    let cx = Received {
                        conversation: conv,
                        entry,
                        introduction: st.introduction,
                    };
                    for hook in RECEIVE_HOOKS {
                        hook.on_decrypted(mls, &cx, &other)?;
                    }
                    if let Some(ev) = map_mls_event(other, conv, entry.seq, &self.device_key) {
                        let mut follow = Vec::new();
                        for hook in RECEIVE_HOOKS {
                            hook.on_event(mls, &cx, &ev, &mut follow)?;
                        }
                        events.push(ev);
                        events.extend(follow);
                    }
                }
            }
        }
        Ok(())
    }
}
