//! The client core's own records in the store: group index, pending commits, buffer index.

use super::*;

impl Client {
    pub(super) fn group_ids(&self) -> Result<Vec<GroupId>> {
        let Some(raw) = self.store.get(GROUPS_KEY)? else {
            return Ok(Vec::new());
        };
        let mut r = Reader::new(&raw);
        let n = r.u32().map_err(corrupt)?;
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(GroupId::new(r.bytes(255).map_err(corrupt)?.to_vec())?);
        }
        r.finish().map_err(corrupt)?;
        Ok(out)
    }

    pub(super) fn index_group(&self, group_id: &GroupId, present: bool) -> Result<()> {
        let mut ids = self.group_ids()?;
        let had = ids.contains(group_id);
        if had == present {
            return Ok(());
        }
        if present {
            ids.push(group_id.clone());
        } else {
            ids.retain(|g| g != group_id);
        }
        let mut w = Writer::new();
        w.u32(u32::try_from(ids.len()).unwrap_or(u32::MAX));
        for id in &ids {
            w.bytes(id.as_bytes());
        }
        Ok(self.store.put(GROUPS_KEY, w.finish())?)
    }

    pub(super) fn get_pending(&self, group_id: &GroupId) -> Result<Option<PendingRecord>> {
        let Some(raw) = self.store.get(&record_key(group_id, b"pending"))? else {
            return Ok(None);
        };
        decode_pending(group_id, &raw).map(Some).map_err(corrupt)
    }

    pub(super) fn put_pending(&self, record: &PendingRecord) -> Result<()> {
        Ok(self.store.put(
            &record_key(&record.commit.group_id, b"pending"),
            encode_pending(record),
        )?)
    }

    pub(super) fn delete_pending(&self, group_id: &GroupId) -> Result<()> {
        Ok(self.store.delete(&record_key(group_id, b"pending"))?)
    }

    pub(super) fn buffer_index(&self, group_id: &GroupId) -> Result<BufferIndex> {
        match self.store.get(&record_key(group_id, b"buffer"))? {
            None => Ok(BufferIndex::default()),
            Some(raw) => decode_buffer_index(&raw).map_err(corrupt),
        }
    }

    pub(super) fn put_buffer_index(&self, group_id: &GroupId, index: &BufferIndex) -> Result<()> {
        Ok(self
            .store
            .put(&record_key(group_id, b"buffer"), encode_buffer_index(index))?)
    }

    pub(super) fn clear_buffer(&self, group_id: &GroupId) -> Result<()> {
        let index = self.buffer_index(group_id)?;
        for e in &index.entries {
            self.store.delete(&buffer_item_key(group_id, e.seq))?;
        }
        Ok(self.store.delete(&record_key(group_id, b"buffer"))?)
    }
}

/// Version 2 adds the leaf binding; version 1 records (no binding) still load.
pub(super) const RECORD_VERSION: u8 = 2;

pub(super) fn encode_pending(record: &PendingRecord) -> Vec<u8> {
    let p = &record.commit;
    let mut w = Writer::new();
    w.u8(RECORD_VERSION)
        .u8(match p.kind {
            CommitKind::Member => 1,
            CommitKind::ExternalRejoin => 2,
        })
        .u64(p.epoch.0)
        .bytes(&p.commit)
        .opt_bytes(p.welcome.as_deref())
        .bytes(&p.group_info)
        .opt_bytes(p.leaf_binding.as_deref())
        .u32(u32::try_from(record.parked.len()).unwrap_or(u32::MAX));
    for (row, value) in &record.parked {
        w.raw(row).opt_bytes(value.as_ref().map(|v| v.as_slice()));
    }
    w.finish()
}

pub(super) fn decode_pending(
    group_id: &GroupId,
    raw: &[u8],
) -> std::result::Result<PendingRecord, crate::codec::CodecError> {
    use crate::codec::CodecError;
    let mut r = Reader::new(raw);
    let version = r.u8()?;
    if version != 1 && version != RECORD_VERSION {
        return Err(CodecError::BadTag(version));
    }
    let kind = match r.u8()? {
        1 => CommitKind::Member,
        2 => CommitKind::ExternalRejoin,
        other => return Err(CodecError::BadTag(other)),
    };
    let epoch = Epoch(r.u64()?);
    let commit = r.bytes(MAX_RECORD_FIELD)?.to_vec();
    let welcome = r.opt_bytes(MAX_RECORD_FIELD)?.map(<[u8]>::to_vec);
    let group_info = r.bytes(MAX_RECORD_FIELD)?.to_vec();
    let leaf_binding = if version >= 2 {
        r.opt_bytes(MAX_RECORD_FIELD)?.map(<[u8]>::to_vec)
    } else {
        None
    };
    let n = r.u32()?;
    let mut parked = Staged::new();
    for _ in 0..n {
        let row: [u8; 32] = r.fixed()?;
        let value = r
            .opt_bytes(MAX_RECORD_FIELD)?
            .map(|v| zeroize::Zeroizing::new(v.to_vec()));
        parked.insert(row, value);
    }
    r.finish()?;
    Ok(PendingRecord {
        commit: PendingCommit {
            group_id: group_id.clone(),
            epoch,
            commit,
            welcome,
            group_info,
            kind,
            leaf_binding,
        },
        parked,
    })
}

#[derive(Debug, Default)]
pub(super) struct BufferIndex {
    pub(super) next_seq: u64,
    pub(super) entries: Vec<BufferEntry>,
}

#[derive(Debug)]
pub(super) struct BufferEntry {
    pub(super) seq: u64,
    pub(super) epoch: u64,
    pub(super) received_at_ms: u64,
}

pub(super) fn encode_buffer_index(index: &BufferIndex) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(RECORD_VERSION)
        .u64(index.next_seq)
        .u32(u32::try_from(index.entries.len()).unwrap_or(u32::MAX));
    for e in &index.entries {
        w.u64(e.seq).u64(e.epoch).u64(e.received_at_ms);
    }
    w.finish()
}

pub(super) fn decode_buffer_index(
    raw: &[u8],
) -> std::result::Result<BufferIndex, crate::codec::CodecError> {
    let mut r = Reader::new(raw);
    let version = r.u8()?;
    if version != RECORD_VERSION {
        return Err(crate::codec::CodecError::BadTag(version));
    }
    let next_seq = r.u64()?;
    let n = r.u32()?;
    let mut entries = Vec::new();
    for _ in 0..n {
        entries.push(BufferEntry {
            seq: r.u64()?,
            epoch: r.u64()?,
            received_at_ms: r.u64()?,
        });
    }
    r.finish()?;
    Ok(BufferIndex { next_seq, entries })
}
