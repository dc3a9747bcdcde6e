//! Joining: Welcomes and external-commit rejoin, each checked against the caller's policy.

use super::*;

impl Client {
    /// Joins a group from a Welcome (TLS `MLSMessage`). Every existing member is checked with
    /// `policy`; a refusal leaves the store untouched (the key package stays usable).
    pub fn join_from_welcome(&mut self, welcome: &[u8], policy: &dyn AddPolicy) -> Result<Joined> {
        let welcome = match parse_message(welcome)?.extract() {
            MlsMessageBodyIn::Welcome(w) => w,
            _ => {
                return Err(Error::UnexpectedMessage {
                    expected: "Welcome",
                });
            }
        };
        self.transact(|c| {
            let provider = c.provider();
            let staged = StagedWelcome::build_from_welcome(&provider, &c.join_config(), welcome)
                .map_err(|e| c.welcome_err(e))?
                .replace_old_group()
                .build()
                .map_err(|e| c.welcome_err(e))?;
            let group_id = GroupId::new(staged.group_context().group_id().as_slice().to_vec())?;
            let own = staged.own_leaf_index();
            let members: Vec<MemberInfo> = staged.members().map(member_info).collect();
            let added_by = staged
                .members()
                .find(|m| m.index == staged.welcome_sender_index())
                .map(member_info);
            let refused: Vec<MemberInfo> = members
                .iter()
                .filter(|m| m.leaf_index != own.u32())
                .filter(|m| !allowed(policy, &group_id, m, AddKind::ExistingMember, None))
                .cloned()
                .collect();
            if !refused.is_empty() {
                return Err(Error::PolicyRefused { refused });
            }
            let group = staged.into_group(&provider).map_err(|e| c.welcome_err(e))?;
            // A re-add replaces whatever this device still had for the group.
            c.delete_pending(&group_id)?;
            c.clear_buffer(&group_id)?;
            c.index_group(&group_id, true)?;
            Ok(Joined {
                group_id,
                epoch: Epoch(group.epoch().as_u64()),
                members,
                added_by,
            })
        })
    }

    /// Rejoins a group this device fell out of sync with (or lost), by an external commit
    /// from the GroupInfo the server keeps (TLS `MLSMessage`). The new state is parked until
    /// [`Client::commit_accepted`]; until then the old state stays as it was and messages for
    /// the group are buffered. If this device's old leaf is still in the tree it is removed
    /// by the same commit.
    pub fn rejoin(&mut self, group_info: &[u8], policy: &dyn AddPolicy) -> Result<PendingCommit> {
        self.rejoin_as(group_info, policy, CredentialKind::Device)
    }

    /// [`Client::rejoin`]; if this device holds no state of the group at all, its new leaf
    /// is of `kind` (pseudonymous in an introduction).
    pub fn rejoin_as(
        &mut self,
        group_info: &[u8],
        policy: &dyn AddPolicy,
        kind: CredentialKind,
    ) -> Result<PendingCommit> {
        let group_info = match parse_message(group_info)?.extract() {
            MlsMessageBodyIn::GroupInfo(gi) => gi,
            _ => {
                return Err(Error::UnexpectedMessage {
                    expected: "GroupInfo",
                });
            }
        };
        let group_id = GroupId::new(group_info.group_id().as_slice().to_vec())?;
        let epoch = Epoch(group_info.epoch().as_u64());
        self.transact(|c| {
            if c.get_pending(&group_id)?.is_some() {
                return Err(Error::CommitPending);
            }
            // Reusing the old leaf's signature key lets openmls remove the stale leaf inline.
            let old = c.load(&group_id)?;
            let old_key = old
                .as_ref()
                .and_then(|g| g.own_leaf_node())
                .and_then(|leaf| {
                    SignatureKeyPair::read(
                        &c.store,
                        leaf.signature_key().as_slice(),
                        SIGNATURE_SCHEME,
                    )
                });
            let signer = match old_key {
                Some(k) => k,
                None => c.new_signer()?,
            };
            // The new leaf keeps the old leaf's kind and pseudonym (so openmls can replace
            // the stale leaf); a device that lost the group entirely rejoins as `kind`.
            let old_credential = old
                .as_ref()
                .and_then(|g| g.own_leaf_node())
                .map(|l| l.credential().serialized_content().to_vec());
            let (leaf_kind, pseudonym) = match old_credential.as_deref().and_then(pseudonym_of) {
                Some(p) => (CredentialKind::Pseudonymous, Some(p)),
                None if old_credential.is_some() => (CredentialKind::Device, None),
                None => (kind, None),
            };
            if let Some(mut old) = old {
                old.delete(&c.store).map_err(|e| c.mls_err(e))?;
            }
            let provider = c.provider();
            let (group, bundle) = MlsGroup::external_commit_builder()
                .with_config(c.join_config())
                .build_group(
                    &provider,
                    group_info,
                    c.credential_for(&signer, leaf_kind, pseudonym),
                )
                .map_err(|e| c.mls_err(e))?
                .leaf_node_parameters(
                    LeafNodeParameters::builder()
                        .with_capabilities(capabilities())
                        .build(),
                )
                .load_psks(provider.storage())
                .map_err(|e| c.mls_err(e))?
                .build(provider.rand(), provider.crypto(), &signer, |_| true)
                .map_err(|e| c.mls_err(e))?
                .finalize(&provider)
                .map_err(|e| c.mls_err(e))?;
            let own = group.own_leaf_index();
            let refused: Vec<MemberInfo> = group
                .members()
                .filter(|m| m.index != own)
                .map(member_info)
                .filter(|m| !allowed(policy, &group_id, m, AddKind::ExistingMember, None))
                .collect();
            if !refused.is_empty() {
                return Err(Error::PolicyRefused { refused });
            }
            let (commit, _welcome, new_info) = bundle.into_messages();
            let new_info = match new_info {
                Some(gi) => gi,
                None => group
                    .export_group_info(provider.crypto(), &signer, true)
                    .map_err(|e| c.mls_err(e))?,
            };
            let pending = PendingCommit {
                group_id: group_id.clone(),
                epoch,
                commit: commit.to_bytes().map_err(|e| c.mls_err(e))?,
                welcome: None,
                group_info: new_info.to_bytes().map_err(|e| c.mls_err(e))?,
                kind: CommitKind::ExternalRejoin,
                leaf_binding: c.own_leaf_binding(&group),
            };
            // Park the new group's state (and the old one's deletion) with the record.
            let parked = c.store.take_staged()?;
            c.put_pending(&PendingRecord {
                commit: pending.clone(),
                parked,
            })?;
            Ok(pending)
        })
    }

    /// Deletes everything this device holds for a group (after leaving or being removed).
    pub fn forget_group(&mut self, group_id: &GroupId) -> Result<()> {
        self.transact(|c| {
            if let Some(mut group) = c.load(group_id)? {
                group.delete(&c.store).map_err(|e| c.mls_err(e))?;
            }
            c.delete_pending(group_id)?;
            c.clear_buffer(group_id)?;
            c.index_group(group_id, false)
        })
    }
}
