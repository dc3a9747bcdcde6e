//! Application messages: encrypt, franking, and processing what arrives.

use super::*;

impl Client {
    /// Encrypts an envelope as an MLS `PrivateMessage` (TLS `MLSMessage` bytes).
    pub fn encrypt(&mut self, group_id: &GroupId, envelope: &Envelope) -> Result<Vec<u8>> {
        let encoded = envelope.encode()?;
        // Franking: a fresh key per message; the commitment goes to the server in the clear
        // (authenticated data), the key only inside the ciphertext.
        let franking = crate::excerpt::frank(&encoded);
        let plaintext = [FRANKED_PREFIX, franking.key.as_slice(), &encoded].concat();
        self.transact(|c| {
            if c.get_pending(group_id)?
                .is_some_and(|r| r.commit.kind == CommitKind::ExternalRejoin)
            {
                return Err(Error::CommitPending);
            }
            let mut group = c.load_member_group(group_id)?;
            let signer = c.signer_for(&group)?;
            group.set_aad(crate::excerpt::franking_aad(&franking.commitment));
            let out = group
                .create_message(&c.provider(), &signer, &plaintext)
                .map_err(|e| c.mls_err(e))?
                .to_bytes()
                .map_err(|e| c.mls_err(e));
            group.set_aad(Vec::new());
            out
        })
    }

    /// Processes one message from the delivery service (TLS `MLSMessage`: a commit or an
    /// application message). Messages of a future epoch are buffered and replayed when the
    /// epoch arrives. `policy` vets every member a commit would add.
    pub fn process(&mut self, message: &[u8], policy: &dyn AddPolicy) -> Result<Vec<Event>> {
        let protocol = parse_protocol(message)?;
        let group_id = GroupId::new(protocol.group_id().as_slice().to_vec())
            .map_err(|_| Error::UnknownGroup)?;
        self.transact(|c| {
            let mut events = Vec::new();
            let changed = c.process_one(&group_id, protocol, message, policy, &mut events)?;
            if changed {
                c.drain_buffer(&group_id, policy, &mut events)?;
            }
            Ok(events)
        })
    }

    /// Returns whether the epoch changed.
    pub(super) fn process_one(
        &self,
        group_id: &GroupId,
        protocol: ProtocolMessage,
        raw: &[u8],
        policy: &dyn AddPolicy,
        events: &mut Vec<Event>,
    ) -> Result<bool> {
        let msg_epoch = Epoch(protocol.epoch().as_u64());
        let rejoining = self
            .get_pending(group_id)?
            .is_some_and(|r| r.commit.kind == CommitKind::ExternalRejoin);
        let Some(mut group) = self.load(group_id)? else {
            if rejoining {
                self.buffer(group_id, msg_epoch, raw, events)?;
                return Ok(false);
            }
            return Err(Error::UnknownGroup);
        };
        let current = Epoch(group.epoch().as_u64());
        // While a rejoin is pending, the old state still reads application messages of its
        // own epochs; everything else waits for the server's answer.
        if rejoining
            && (protocol.is_handshake_message() || msg_epoch > current || !group.is_active())
        {
            self.buffer(group_id, msg_epoch, raw, events)?;
            return Ok(false);
        }
        if !group.is_active() {
            return Err(Error::NotAMember);
        }
        if msg_epoch > current {
            self.buffer(group_id, msg_epoch, raw, events)?;
            return Ok(false);
        }
        if msg_epoch < current && protocol.is_handshake_message() {
            events.push(Event::Ignored {
                group_id: group_id.clone(),
                epoch: msg_epoch,
                reason: IgnoredReason::PastEpochHandshake,
            });
            return Ok(false);
        }
        let savepoint = self.store.savepoint()?;
        let provider = self.provider();
        let processed = group
            .process_message(&provider, protocol)
            .map_err(|e| self.mls_err(e))?;
        let sender = match processed.sender() {
            openmls::prelude::Sender::Member(i) => group.member_at(*i).map(member_info),
            _ => None,
        };
        let is_external = matches!(
            processed.sender(),
            openmls::prelude::Sender::NewMemberCommit
        );
        let aad = processed.aad().to_vec();
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(app) => {
                let sender = sender.ok_or_else(|| Error::Mls("no sender".into()))?;
                let (bytes, franking) = unfrank(app.into_bytes(), &aad);
                let (decoded, franking) = match franking {
                    Err(e) => (Err(e), None),
                    Ok(f) => (Envelope::decode(&bytes), f),
                };
                events.push(match decoded {
                    Ok(envelope) => Event::Message {
                        group_id: group_id.clone(),
                        epoch: msg_epoch,
                        sender,
                        envelope,
                        franking,
                    },
                    Err(error) => Event::UnreadableMessage {
                        group_id: group_id.clone(),
                        epoch: msg_epoch,
                        sender,
                        error,
                    },
                });
                Ok(false)
            }
            ProcessedMessageContent::OwnPrivateMessage => {
                events.push(Event::Ignored {
                    group_id: group_id.clone(),
                    epoch: msg_epoch,
                    reason: IgnoredReason::OwnMessage,
                });
                Ok(false)
            }
            ProcessedMessageContent::ProposalMessage(_)
            | ProcessedMessageContent::ExternalJoinProposalMessage(_) => {
                events.push(Event::Ignored {
                    group_id: group_id.clone(),
                    epoch: msg_epoch,
                    reason: IgnoredReason::StandaloneProposal,
                });
                Ok(false)
            }
            ProcessedMessageContent::OwnPendingCommit => {
                // Nothing of the processing needs keeping; merging waits for the server's 2xx.
                self.store.rollback_to(savepoint)?;
                events.push(Event::OwnCommitEchoed {
                    group_id: group_id.clone(),
                    epoch: msg_epoch,
                });
                Ok(false)
            }
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                let before: Vec<MemberInfo> = group.members().map(member_info).collect();
                let had_pending = group.pending_commit().is_some();
                let self_removed = staged.self_removed();
                // An external joiner is the committer; its leaf is the update-path leaf.
                let joiner_key = if is_external {
                    staged
                        .update_path_leaf_node()
                        .map(|leaf| leaf.signature_key().as_slice().to_vec())
                } else {
                    None
                };
                group
                    .merge_staged_commit(&provider, *staged)
                    .map_err(|e| self.mls_err(e))?;
                let after: Vec<MemberInfo> = group.members().map(member_info).collect();
                // A leaf counts as new when its index, device or signature key changed, so a
                // leaf swapped in under a known device name is vetted like an add.
                let key =
                    |m: &MemberInfo| (m.leaf_index, m.identity.clone(), m.signature_key.clone());
                let before_keys: BTreeSet<_> = before.iter().map(key).collect();
                let after_keys: BTreeSet<_> = after.iter().map(key).collect();
                let kind = if is_external {
                    AddKind::ExternalJoin
                } else {
                    AddKind::AddedByCommit
                };
                // A rejoining device may keep its leaf index and keys; it is still reported
                // (and vetted) as an external join.
                let added: Vec<MemberInfo> = after
                    .iter()
                    .filter(|m| {
                        !before_keys.contains(&key(m))
                            || joiner_key.as_deref() == Some(m.signature_key.as_slice())
                    })
                    .cloned()
                    .collect();
                let refused: Vec<MemberInfo> = added
                    .iter()
                    .filter(|m| !allowed(policy, group_id, m, kind, sender.as_ref()))
                    .cloned()
                    .collect();
                if !refused.is_empty() {
                    self.store.rollback_to(savepoint)?;
                    events.push(Event::CommitRefused {
                        group_id: group_id.clone(),
                        epoch: msg_epoch,
                        committer: sender,
                        refused,
                    });
                    return Ok(false);
                }
                if had_pending {
                    // Another commit won this epoch; ours can never be accepted.
                    self.delete_pending(group_id)?;
                    events.push(Event::OwnCommitDiscarded {
                        group_id: group_id.clone(),
                        epoch: msg_epoch,
                    });
                }
                for member in added {
                    events.push(Event::MemberAdded {
                        group_id: group_id.clone(),
                        member,
                        kind,
                        added_by: sender.clone(),
                    });
                }
                for member in before.iter().filter(|m| !after_keys.contains(&key(m))) {
                    events.push(Event::MemberRemoved {
                        group_id: group_id.clone(),
                        member: member.clone(),
                    });
                }
                events.push(Event::EpochChanged {
                    group_id: group_id.clone(),
                    epoch: Epoch(group.epoch().as_u64()),
                });
                if self_removed {
                    self.clear_buffer(group_id)?;
                    events.push(Event::RemovedFromGroup {
                        group_id: group_id.clone(),
                    });
                    return Ok(false);
                }
                Ok(true)
            }
        }
    }
}

/// Splits a franked plaintext and checks its commitment against the authenticated data. A
/// plaintext without the franking prefix is an unfranked envelope; a franked one whose
/// commitment does not match is refused (the sender committed to something else).
pub(super) fn unfrank(
    plaintext: Vec<u8>,
    aad: &[u8],
) -> (Vec<u8>, std::result::Result<Option<Franked>, EnvelopeError>) {
    let Some(rest) = plaintext.strip_prefix(FRANKED_PREFIX) else {
        return (plaintext, Ok(None));
    };
    let (Some(key), Some(claimed)) = (
        rest.get(..32).and_then(|k| <[u8; 32]>::try_from(k).ok()),
        aad.strip_prefix(crate::excerpt::FRANKING_AAD_PREFIX)
            .and_then(|c| <[u8; 32]>::try_from(c).ok()),
    ) else {
        return (
            Vec::new(),
            Err(EnvelopeError::Malformed(
                crate::codec::CodecError::Truncated,
            )),
        );
    };
    let envelope = rest[32..].to_vec();
    if crate::excerpt::commitment(&key, &envelope) != claimed {
        return (
            Vec::new(),
            Err(EnvelopeError::Malformed(crate::codec::CodecError::BadTag(
                0xF1,
            ))),
        );
    }
    (
        envelope.clone(),
        Ok(Some(Franked {
            plaintext: envelope,
            key,
            commitment: claimed,
        })),
    )
}
