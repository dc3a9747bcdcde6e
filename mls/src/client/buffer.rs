//! The future-epoch buffer: messages that arrive before the commit they depend on.

use super::records::BufferEntry;
use super::*;

impl Client {
    /// The messages waiting for a future epoch of `group_id`, oldest first.
    pub fn buffered(&self, group_id: &GroupId) -> Result<Vec<BufferedMessage>> {
        self.read(|c| {
            Ok(c.buffer_index(group_id)?
                .entries
                .iter()
                .map(|e| BufferedMessage {
                    epoch: Epoch(e.epoch),
                    received_at: UNIX_EPOCH + Duration::from_millis(e.received_at_ms),
                })
                .collect())
        })
    }

    /// Drops buffered messages older than the configured TTL in every group and returns how
    /// many were dropped.
    pub fn expire_buffered(&mut self) -> Result<usize> {
        self.transact(|c| {
            let mut dropped = 0;
            for group_id in c.group_ids()? {
                dropped += c.expire_group_buffer(&group_id)?;
            }
            Ok(dropped)
        })
    }

    pub(super) fn expire_group_buffer(&self, group_id: &GroupId) -> Result<usize> {
        let cutoff = self
            .now_ms()
            .saturating_sub(u64::try_from(self.options.buffer_ttl.as_millis()).unwrap_or(u64::MAX));
        let mut index = self.buffer_index(group_id)?;
        let (expired, kept): (Vec<_>, Vec<_>) = index
            .entries
            .into_iter()
            .partition(|e| e.received_at_ms < cutoff);
        index.entries = kept;
        for e in &expired {
            self.store.delete(&buffer_item_key(group_id, e.seq))?;
        }
        if !expired.is_empty() {
            self.put_buffer_index(group_id, &index)?;
        }
        Ok(expired.len())
    }

    pub(super) fn buffer(
        &self,
        group_id: &GroupId,
        epoch: Epoch,
        raw: &[u8],
        events: &mut Vec<Event>,
    ) -> Result<()> {
        self.expire_group_buffer(group_id)?;
        let mut index = self.buffer_index(group_id)?;
        if index.entries.len() >= self.options.max_buffered_per_group {
            return Err(Error::BufferFull);
        }
        let seq = index.next_seq;
        index.next_seq += 1;
        index.entries.push(BufferEntry {
            seq,
            epoch: epoch.0,
            received_at_ms: self.now_ms(),
        });
        self.store
            .put(&buffer_item_key(group_id, seq), raw.to_vec())?;
        self.put_buffer_index(group_id, &index)?;
        events.push(Event::Buffered {
            group_id: group_id.clone(),
            epoch,
        });
        Ok(())
    }

    /// Replays buffered messages whose epoch has arrived, in arrival order, until none is
    /// ready. A message that fails on replay is dropped (reported), not retried forever.
    pub(super) fn drain_buffer(
        &self,
        group_id: &GroupId,
        policy: &dyn AddPolicy,
        events: &mut Vec<Event>,
    ) -> Result<()> {
        loop {
            let Some(group) = self.load(group_id)? else {
                return Ok(());
            };
            if !group.is_active() {
                return Ok(());
            }
            let current = group.epoch().as_u64();
            let mut index = self.buffer_index(group_id)?;
            let Some(pos) = index.entries.iter().position(|e| e.epoch <= current) else {
                return Ok(());
            };
            let entry = index.entries.remove(pos);
            let item_key = buffer_item_key(group_id, entry.seq);
            let raw = self.store.get(&item_key)?;
            self.store.delete(&item_key)?;
            self.put_buffer_index(group_id, &index)?;
            let savepoint = self.store.savepoint()?;
            let outcome = raw
                .ok_or_else(|| Error::StoreCorrupt("a buffered message is missing".into()))
                .and_then(|raw| {
                    let protocol = parse_protocol(&raw)?;
                    self.process_one(group_id, protocol, &raw, policy, events)
                });
            if let Err(e) = outcome {
                self.store.rollback_to(savepoint)?;
                if matches!(e, Error::StoreIo(_)) {
                    return Err(e);
                }
                events.push(Event::BufferedDropped {
                    group_id: group_id.clone(),
                    epoch: Epoch(entry.epoch),
                    reason: e.code().to_string(),
                });
            }
        }
    }
}
