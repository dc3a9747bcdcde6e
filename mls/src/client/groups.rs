//! Groups and commits: creation, proposals, own commits that wait for the server's verdict.

use super::*;

impl Client {
    /// Creates a group at epoch 0 with this device alone, and stages the first commit adding
    /// the devices of `key_packages` (TLS `MLSMessage` or bare `KeyPackage` bytes). With no key
    /// packages the commit is an empty one that publishes the group's first GroupInfo. If the
    /// server rejects it (e.g. the id is taken), the epoch-0 group remains until
    /// [`Client::forget_group`].
    pub fn create_group(
        &mut self,
        group_id: &GroupId,
        key_packages: &[Vec<u8>],
    ) -> Result<PendingCommit> {
        self.create_group_with(group_id, key_packages, CredentialKind::Device)
    }

    /// [`Client::create_group`] with this device's leaf of the given kind (pseudonymous for
    /// introductions).
    pub fn create_group_with(
        &mut self,
        group_id: &GroupId,
        key_packages: &[Vec<u8>],
        kind: CredentialKind,
    ) -> Result<PendingCommit> {
        let kps = key_packages
            .iter()
            .map(|kp| self.parse_key_package(kp))
            .collect::<Result<Vec<_>>>()?;
        self.transact(|c| {
            if c.load(group_id)?.is_some() || c.get_pending(group_id)?.is_some() {
                return Err(Error::GroupExists);
            }
            let signer = c.new_signer()?;
            let mut group = MlsGroup::builder()
                .with_group_id(group_id.to_mls())
                .ciphersuite(CIPHERSUITE)
                .with_wire_format_policy(PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
                .padding_size(PADDING_BYTES)
                .max_past_epochs(c.options.max_past_epochs)
                .sender_ratchet_configuration(SenderRatchetConfiguration::new(
                    OUT_OF_ORDER_TOLERANCE,
                    MAXIMUM_FORWARD_DISTANCE,
                ))
                .use_ratchet_tree_extension(true)
                .with_capabilities(capabilities())
                .build(
                    &c.provider(),
                    &signer,
                    c.credential_for(&signer, kind, None),
                )
                .map_err(|e| c.mls_err(e))?;
            c.index_group(group_id, true)?;
            let empty = kps.is_empty();
            c.stage_commit(group_id, &mut group, kps, vec![], empty)
        })
    }

    /// Stages a commit adding the devices of `key_packages`; its Welcome goes to them.
    pub fn add_members(
        &mut self,
        group_id: &GroupId,
        key_packages: &[Vec<u8>],
    ) -> Result<PendingCommit> {
        let kps = key_packages
            .iter()
            .map(|kp| self.parse_key_package(kp))
            .collect::<Result<Vec<_>>>()?;
        self.transact(|c| {
            let mut group = c.load_member_group(group_id)?;
            c.stage_commit(group_id, &mut group, kps, vec![], false)
        })
    }

    /// Stages a commit removing the members at `leaf_indices` (see [`Client::members`]).
    pub fn remove_members(
        &mut self,
        group_id: &GroupId,
        leaf_indices: &[u32],
    ) -> Result<PendingCommit> {
        self.transact(|c| {
            let mut group = c.load_member_group(group_id)?;
            let mut removes = Vec::with_capacity(leaf_indices.len());
            for &i in leaf_indices {
                let idx = LeafNodeIndex::new(i);
                if group.member_at(idx).is_none() {
                    return Err(Error::UnknownMember(i));
                }
                removes.push(idx);
            }
            c.stage_commit(group_id, &mut group, vec![], removes, false)
        })
    }

    /// Stages a commit that refreshes this device's leaf keys (post-compromise security).
    pub fn self_update(&mut self, group_id: &GroupId) -> Result<PendingCommit> {
        self.transact(|c| {
            let mut group = c.load_member_group(group_id)?;
            c.stage_commit(group_id, &mut group, vec![], vec![], true)
        })
    }

    /// The commit waiting for the server's answer, if any (to resend after a restart).
    pub fn pending_commit(&self, group_id: &GroupId) -> Result<Option<PendingCommit>> {
        self.read(|c| Ok(c.get_pending(group_id)?.map(|r| r.commit)))
    }

    /// The server accepted the pending commit: merge it, then replay buffered messages that
    /// have become current. `policy` vets members added by those replayed commits.
    pub fn commit_accepted(
        &mut self,
        group_id: &GroupId,
        policy: &dyn AddPolicy,
    ) -> Result<Vec<Event>> {
        self.transact(|c| {
            let record = c.get_pending(group_id)?.ok_or(Error::NoPendingCommit)?;
            match record.commit.kind {
                CommitKind::Member => {
                    let mut group = c.load(group_id)?.ok_or(Error::UnknownGroup)?;
                    group
                        .merge_pending_commit(&c.provider())
                        .map_err(|e| c.mls_err(e))?;
                }
                CommitKind::ExternalRejoin => {
                    c.store.restage(record.parked)?;
                    c.index_group(group_id, true)?;
                }
            }
            c.delete_pending(group_id)?;
            let epoch = c.current_epoch(group_id)?;
            let mut events = vec![Event::EpochChanged {
                group_id: group_id.clone(),
                epoch,
            }];
            c.drain_buffer(group_id, policy, &mut events)?;
            Ok(events)
        })
    }

    /// The server rejected the pending commit (e.g. 409, another commit won the epoch):
    /// discard it. The group stays at its epoch and usable; process the winning commit, then
    /// retry the operation.
    pub fn commit_rejected(&mut self, group_id: &GroupId) -> Result<()> {
        self.transact(|c| {
            let record = c.get_pending(group_id)?.ok_or(Error::NoPendingCommit)?;
            if record.commit.kind == CommitKind::Member
                && let Some(mut group) = c.load(group_id)?
            {
                group
                    .clear_pending_commit(&c.store)
                    .map_err(|e| c.mls_err(e))?;
            }
            c.delete_pending(group_id)
        })
    }

    pub(super) fn stage_commit(
        &self,
        group_id: &GroupId,
        group: &mut MlsGroup,
        adds: Vec<KeyPackage>,
        removes: Vec<LeafNodeIndex>,
        force_self_update: bool,
    ) -> Result<PendingCommit> {
        if self.get_pending(group_id)?.is_some() || group.pending_commit().is_some() {
            return Err(Error::CommitPending);
        }
        let signer = self.signer_for(group)?;
        let epoch = Epoch(group.epoch().as_u64());
        let provider = self.provider();
        let bundle = group
            .commit_builder()
            .propose_adds(adds)
            .propose_removals(removes)
            .force_self_update(force_self_update)
            .load_psks(provider.storage())
            .map_err(|e| self.mls_err(e))?
            .build(provider.rand(), provider.crypto(), &signer, |_| true)
            .map_err(|e| self.mls_err(e))?
            .stage_commit(&provider)
            .map_err(|e| self.mls_err(e))?;
        let (commit, welcome, group_info) = bundle.into_messages();
        let group_info =
            group_info.ok_or_else(|| Error::Mls("the commit produced no GroupInfo".into()))?;
        let pending = PendingCommit {
            group_id: group_id.clone(),
            epoch,
            commit: commit.to_bytes().map_err(|e| self.mls_err(e))?,
            welcome: welcome
                .map(|w| w.to_bytes())
                .transpose()
                .map_err(|e| self.mls_err(e))?,
            group_info: group_info.to_bytes().map_err(|e| self.mls_err(e))?,
            kind: CommitKind::Member,
            leaf_binding: self.own_leaf_binding(group),
        };
        self.put_pending(&PendingRecord {
            commit: pending.clone(),
            parked: Staged::new(),
        })?;
        Ok(pending)
    }
}
