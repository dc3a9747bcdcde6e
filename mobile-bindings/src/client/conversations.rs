//! Conversations: listing, creating, adding and removing members, rejoining, history.

use super::*;

impl PeerbridgeClient {
    /// The conversations this user takes part in.
    pub async fn conversations(&self) -> Result<Vec<ConversationInfo>> {
        let convs: Vec<Conversation> = self.get("/v1/conversations").await?;
        let mut out = Vec::with_capacity(convs.len());
        for c in convs {
            let st = self.conv_state(c.id)?;
            let joined = st.as_ref().is_some_and(|s| s.group_id.is_some());
            let cursor = st.map(|s| s.cursor).unwrap_or(c.acked_seq);
            out.push(ConversationInfo {
                id: c.id,
                kind: c.kind,
                clinic_id: c.clinic_id,
                allowed_users: c.allowed_users,
                epoch: c.epoch,
                last_seq: c.last_seq,
                joined,
                unread: joined && c.last_seq > cursor,
            });
        }
        Ok(out)
    }

    /// Creates the peer's supervision conversation and opens its MLS group with every
    /// device of the other allowed users (and this user's other devices) that has a key
    /// package. Users without one can be added later with [`Self::add_user`].
    pub async fn create_supervision_conversation(&self, peer_id: Uuid) -> Result<ConversationInfo> {
        let conv: Conversation = self
            .authed(
                Method::POST,
                "/v1/conversations",
                Some(&ConversationCreate {
                    kind: ConversationKind::Supervision,
                    peer_id: Some(peer_id),
                    introduction_id: None,
                }),
            )
            .await?
            .json()?;
        let lock = self.conv_lock(conv.id);
        let _g = lock.lock().await;
        let gid = GroupId::new(unb64("group_id", &conv.group_id)?)?;
        let mut kps = Vec::new();
        for user in &conv.allowed_users {
            match self.claim(conv.id, *user).await {
                Ok(claimed) => kps.extend(claimed),
                // No device of that user has a key package (or only this device exists).
                Err(SdkError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let kps = decode_claimed(&kps)?;
        let mut st = ConvState {
            group_id: Some(conv.group_id.clone()),
            ..ConvState::default()
        };
        let pc = self.mls()?.create_group(&gid, &kps)?;
        match self.submit(conv.id, &pc).await {
            Ok(accepted) => {
                let before = Vec::new();
                let events = self.accepted(conv.id, &gid, &before)?;
                st.cursor = accepted.seq;
                self.save_conv(conv.id, &mut st, events)?;
                self.add_known(conv.id)?;
            }
            Err(e) => {
                let mut mls = self.mls()?;
                let _ = mls.commit_rejected(&gid);
                mls.forget_group(&gid)?;
                return Err(e);
            }
        }
        Ok(ConversationInfo {
            id: conv.id,
            kind: conv.kind,
            clinic_id: conv.clinic_id,
            allowed_users: conv.allowed_users,
            epoch: self.mls()?.epoch(&gid)?.0,
            last_seq: st.cursor,
            joined: true,
            unread: false,
        })
    }

    pub(crate) async fn claim(&self, conv: Uuid, user: Uuid) -> Result<Vec<ClaimedKeyPackage>> {
        self.authed(
            Method::POST,
            &format!("/v1/conversations/{conv}/key-packages/claim"),
            Some(&KeyPackageClaim {
                user_id: Some(user),
                member: None,
            }),
        )
        .await?
        .json()
    }

    pub(crate) async fn submit(&self, conv: Uuid, pc: &PendingCommit) -> Result<CommitAccepted> {
        let body = CommitUpload {
            epoch: pc.epoch.0,
            commit: b64(&pc.commit),
            welcome: pc.welcome.as_deref().map(b64),
            group_info: b64(&pc.group_info),
            leaf_binding: pc.leaf_binding.as_deref().map(b64),
        };
        self.authed(
            Method::POST,
            &format!("/v1/conversations/{conv}/commits"),
            Some(&body),
        )
        .await?
        .json()
    }

    /// Merges an accepted own commit and reports the membership change it made.
    pub(crate) fn accepted(
        &self,
        conv: Uuid,
        gid: &GroupId,
        before: &[Member],
    ) -> Result<Vec<Event>> {
        self.accepted_in(&mut *self.mls()?, conv, gid, before)
    }

    /// [`Self::accepted`] inside a device-store step.
    pub(super) fn accepted_in(
        &self,
        mls: &mut MlsClient,
        conv: Uuid,
        gid: &GroupId,
        before: &[Member],
    ) -> Result<Vec<Event>> {
        let pol = self.policy_in(mls, conv, gid)?;
        let mls_events = mls.commit_accepted(gid, &pol)?;
        let after: Vec<Member> = mls
            .members(gid)?
            .iter()
            .map(|m| Member::from_mls(m, &self.device_key))
            .collect();
        let mut events = Vec::new();
        for m in after.iter().filter(|m| !before.contains(m)) {
            if !m.is_me {
                events.push(Event::MemberAdded {
                    conversation: conv,
                    member: m.clone(),
                    added_by: None,
                });
            }
        }
        for m in before.iter().filter(|m| !after.contains(m)) {
            events.push(Event::MemberRemoved {
                conversation: conv,
                member: m.clone(),
            });
        }
        events.extend(
            mls_events
                .into_iter()
                .filter_map(|e| map_mls_event(e, conv, 0, &self.device_key)),
        );
        Ok(events)
    }

    pub(crate) fn members_of(&self, gid: &GroupId) -> Result<Vec<Member>> {
        self.members_in(&*self.mls()?, gid)
    }

    pub(super) fn members_in(&self, mls: &MlsClient, gid: &GroupId) -> Result<Vec<Member>> {
        // A pseudonymous leaf names no device: this device's own is found by its index.
        let own = mls.own_leaf_index(gid).ok();
        Ok(mls
            .members(gid)?
            .iter()
            .map(|m| {
                let mut member = Member::from_mls(m, &self.device_key);
                member.is_me |= Some(m.leaf_index) == own;
                member
            })
            .collect())
    }

    /// Adds every device of `user_id` (which the conversation's policy must allow): claims
    /// their key packages and commits. If another member's commit wins the epoch (409
    /// `stale_epoch`), the commit is discarded, the log is read to catch up and the add is
    /// retried, up to [`SdkOptions::max_commit_attempts`] times.
    pub async fn add_user(&self, conversation: Uuid, user_id: Uuid) -> Result<Vec<Event>> {
        let lock = self.conv_lock(conversation);
        let _g = lock.lock().await;
        let st = self.joined_state(conversation)?;
        let gid = self.group_of(&st)?;
        self.resolve_pending(conversation, &gid).await?;
        // Claimed once: the claimed packages stay reserved for this conversation.
        let kps = decode_claimed(&self.claim(conversation, user_id).await?)?;
        self.commit_with_retry(conversation, &gid, |mls, gid| mls.add_members(gid, &kps))
            .await?;
        self.drain_locked(conversation)
    }

    /// Refreshes this device's keys in the group (post-compromise security).
    pub async fn self_update(&self, conversation: Uuid) -> Result<Vec<Event>> {
        let lock = self.conv_lock(conversation);
        let _g = lock.lock().await;
        let st = self.joined_state(conversation)?;
        let gid = self.group_of(&st)?;
        self.resolve_pending(conversation, &gid).await?;
        self.commit_with_retry(conversation, &gid, |mls, gid| mls.self_update(gid))
            .await?;
        self.drain_locked(conversation)
    }

    /// Stages a commit with `make`, submits it; on `stale_epoch` discards it, catches up on
    /// the log and tries again. A transport failure leaves the commit pending: whether the
    /// server took it is learnt from the log on the next sync.
    pub(super) async fn commit_with_retry(
        &self,
        conv: Uuid,
        gid: &GroupId,
        make: impl Fn(&mut MlsClient, &GroupId) -> peerbridge_mls::Result<PendingCommit>,
    ) -> Result<()> {
        let attempts = self.options.max_commit_attempts.max(1);
        for attempt in 1..=attempts {
            let before = self.members_of(gid)?;
            let pc = {
                let mut mls = self.mls()?;
                make(&mut mls, gid)?
            };
            match self.submit(conv, &pc).await {
                Ok(_) => {
                    let events = self.accepted(conv, gid, &before)?;
                    let mut st = self.joined_state(conv)?;
                    self.save_conv(conv, &mut st, events)?;
                    return Ok(());
                }
                Err(SdkError::StaleEpoch(detail)) => {
                    tracing::debug!(attempt, "commit lost its epoch; catching up");
                    discard_pending(&mut *self.mls()?, gid)?;
                    if attempt == attempts {
                        return Err(SdkError::StaleEpoch(detail));
                    }
                    self.sync_locked(conv).await?;
                }
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => {
                    discard_pending(&mut *self.mls()?, gid)?;
                    return Err(e);
                }
            }
        }
        Err(SdkError::StaleEpoch("no attempt left".into()))
    }

    /// A commit left pending by an earlier failure: learn the answer from the log, else send
    /// it again.
    pub(super) async fn resolve_pending(&self, conv: Uuid, gid: &GroupId) -> Result<()> {
        if self.mls()?.pending_commit(gid)?.is_none() {
            return Ok(());
        }
        self.sync_locked(conv).await?;
        let Some(pc) = self.mls()?.pending_commit(gid)? else {
            return Ok(());
        };
        let before = self.members_of(gid)?;
        match self.submit(conv, &pc).await {
            Ok(_) => {
                let events = self.accepted(conv, gid, &before)?;
                let mut st = self.joined_state(conv)?;
                self.save_conv(conv, &mut st, events)
            }
            Err(e) if e.is_transient() => Err(e),
            // The log did not show it and the server refuses it now: it was not accepted.
            Err(_) => discard_pending(&mut *self.mls()?, gid),
        }
    }

    /// Joins every conversation this device has a welcome for, and dismisses welcomes it
    /// cannot use. Returns the conversations' new events.
    pub async fn accept_welcomes(&self) -> Result<Vec<Event>> {
        let welcomes: Vec<Welcome> = self.get("/v1/welcomes").await?;
        let mut out = Vec::new();
        for w in &welcomes {
            let lock = self.conv_lock(w.conversation_id);
            let _g = lock.lock().await;
            self.join_one(w).await?;
            out.extend(self.drain_locked(w.conversation_id)?);
        }
        if !welcomes.is_empty()
            && let Err(e) = self.ensure_key_packages().await
        {
            tracing::warn!(code = e.code(), "replenishing key packages failed");
        }
        Ok(out)
    }

    pub(super) async fn join_one(&self, w: &Welcome) -> Result<()> {
        let conv = w.conversation_id;
        let existing = self.conv_state(conv)?;
        // Already joined from this welcome and read on from it (a second delivery, or a
        // concurrent accept): joining again would reset the group and replay the log.
        let duplicate = match existing.as_ref().filter(|s| s.cursor >= w.start_seq) {
            Some(st) if st.group_id.is_some() => {
                let gid = self.group_of(st)?;
                self.mls()?.own_leaf_index(&gid).is_ok()
            }
            _ => false,
        };
        let mut events = Vec::new();
        let joined = if duplicate {
            Err(peerbridge_mls::Error::NoMatchingKeyPackage)
        } else {
            match unb64("welcome", &w.welcome) {
                Ok(bytes) => {
                    let pol = self.welcome_policy(conv).await;
                    // The group state and the SDK's record of it are one write.
                    self.mls()?.atomically(|m| -> Result<_> {
                        let j = match m.join_from_welcome(&bytes, &pol) {
                            Ok(j) => j,
                            Err(e) => return Ok(Err(e)),
                        };
                        // The welcome policy may have recorded the introduction just now.
                        let mut st =
                            state::get::<ConvState>(m, &conv_key(conv))?.unwrap_or_default();
                        st.group_id = Some(b64(j.group_id.as_bytes()));
                        st.cursor = w.start_seq;
                        st.acked = w.start_seq;
                        st.needs_rejoin = false;
                        let joined = Event::Joined {
                            conversation: conv,
                            epoch: j.epoch.0,
                            members: j
                                .members
                                .iter()
                                .map(|m| Member::from_mls(m, &self.device_key))
                                .collect(),
                        };
                        save_conv_in(m, conv, &mut st, vec![joined], Vec::new())?;
                        add_known_in(m, conv)?;
                        Ok(Ok(()))
                    })?
                }
                Err(e) => Err(peerbridge_mls::Error::MalformedMessage(e.to_string())),
            }
        };
        match joined {
            Ok(()) => {}
            Err(
                e @ (peerbridge_mls::Error::StoreIo(_)
                | peerbridge_mls::Error::StoreCorrupt(_)
                | peerbridge_mls::Error::WrongStoreKey),
            ) => {
                return Err(e.into());
            }
            // Processed before (a crash before the ack, or a second delivery): just ack.
            Err(peerbridge_mls::Error::NoMatchingKeyPackage)
                if existing.as_ref().is_some_and(|s| s.group_id.is_some()) => {}
            Err(e) => {
                tracing::warn!(code = e.code(), "a welcome could not be used");
                let mut st = existing.unwrap_or_default();
                events.push(Event::JoinFailed {
                    conversation: conv,
                    reason: e.code().to_owned(),
                });
                self.save_conv(conv, &mut st, events)?;
                self.add_known(conv)?;
            }
        }
        match self
            .authed::<()>(Method::POST, &format!("/v1/welcomes/{}/ack", w.id), None)
            .await
        {
            Ok(_) | Err(SdkError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Rejoins a conversation this device fell out of sync with, by an external commit from
    /// the server's GroupInfo. Entries before the rejoin that could not be read stay unread.
    pub async fn rejoin(&self, conversation: Uuid) -> Result<Vec<Event>> {
        let lock = self.conv_lock(conversation);
        let _g = lock.lock().await;
        self.rejoin_locked(conversation).await?;
        self.drain_locked(conversation)
    }

    pub(crate) async fn rejoin_locked(&self, conv: Uuid) -> Result<()> {
        let attempts = self.options.max_commit_attempts.max(1);
        for attempt in 1..=attempts {
            let gi: GroupInfoOut = self
                .get(&format!("/v1/conversations/{conv}/group-info"))
                .await?;
            let bytes = unb64("group_info", &gi.group_info)?;
            let st0 = self.conv_state(conv)?.unwrap_or_default();
            let kind = if st0.pseudonymous {
                peerbridge_mls::CredentialKind::Pseudonymous
            } else {
                peerbridge_mls::CredentialKind::Device
            };
            let pol = ConvPolicy {
                intro: st0.introduction.map(|_| IntroPolicy {
                    admitted: self.admitted_hp_keys(conv),
                    pseudonymous_members: 0,
                }),
            };
            let pc = {
                let mut mls = self.mls()?;
                mls.rejoin_as(&bytes, &pol, kind)?
            };
            let gid = pc.group_id.clone();
            match self.submit(conv, &pc).await {
                Ok(accepted) => {
                    let mls_events = self.mls()?.commit_accepted(&gid, &pol)?;
                    let mut st = self.conv_state(conv)?.unwrap_or_default();
                    st.group_id = Some(b64(gid.as_bytes()));
                    st.cursor = st.cursor.max(accepted.seq);
                    st.needs_rejoin = false;
                    let epoch = self.mls()?.epoch(&gid)?.0;
                    let mut events = vec![Event::Joined {
                        conversation: conv,
                        epoch,
                        members: self.members_of(&gid)?,
                    }];
                    events.extend(
                        mls_events
                            .into_iter()
                            .filter_map(|e| map_mls_event(e, conv, accepted.seq, &self.device_key)),
                    );
                    self.save_conv(conv, &mut st, events)?;
                    self.add_known(conv)?;
                    return Ok(());
                }
                Err(SdkError::StaleEpoch(d)) => {
                    discard_pending(&mut *self.mls()?, &gid)?;
                    if attempt == attempts {
                        return Err(SdkError::StaleEpoch(d));
                    }
                    self.backoff(attempt).await;
                }
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => {
                    discard_pending(&mut *self.mls()?, &gid)?;
                    return Err(e);
                }
            }
        }
        Err(SdkError::StaleEpoch("no attempt left".into()))
    }

    /// The current members of a conversation's group.
    pub fn members(&self, conversation: Uuid) -> Result<Vec<Member>> {
        let st = self.joined_state(conversation)?;
        self.members_of(&self.group_of(&st)?)
    }

    /// A 20-digit code two members compare out of band; equal codes mean they share the same
    /// group state (it changes with every epoch).
    pub fn safety_code(&self, conversation: Uuid) -> Result<String> {
        let st = self.joined_state(conversation)?;
        let gid = self.group_of(&st)?;
        Ok(self.mls()?.safety_code(&gid)?)
    }

    /// The conversation as this device saw it, newest page first: received and sent texts,
    /// notices and identity cards, oldest first within the page. Kept sealed on the device
    /// (the server deletes what every device acknowledged).
    pub fn history(
        &self,
        conversation: Uuid,
        before: Option<u64>,
        limit: u32,
    ) -> Result<HistoryPage> {
        let Some(st) = self.conv_state(conversation)? else {
            return Err(SdkError::NotFound(
                "no such conversation on this device".into(),
            ));
        };
        let end = before.unwrap_or(st.history_len).min(st.history_len);
        let start = end.saturating_sub(u64::from(limit.clamp(1, 500)));
        let mut events = Vec::new();
        for n in start..end {
            match state::get::<Event>(&*self.mls()?, &hist_key(conversation, n)) {
                Ok(Some(e)) => events.push(e),
                Ok(None) | Err(StateError::Corrupt(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(HistoryPage {
            events,
            before: (start > 0).then_some(start),
        })
    }

    /// Tells the other members this device has read these messages (their ids as in
    /// [`Event::Text`]).
    pub async fn send_read_receipt(&self, conversation: Uuid, ids: Vec<Uuid>) -> Result<()> {
        if ids.is_empty() || ids.len() > 500 {
            return Err(SdkError::InvalidInput(
                "a receipt names 1 to 500 messages".into(),
            ));
        }
        let envelope = Envelope::Receipt {
            ids: ids
                .into_iter()
                .map(|id| MessageId::from_bytes(id.into_bytes()))
                .collect(),
        };
        self.send_envelope(conversation, &envelope).await?;
        Ok(())
    }
}
