//! Inspection: groups, members, epochs and safety codes.

use super::*;

impl Client {
    /// The groups this device has state for.
    pub fn groups(&self) -> Result<Vec<GroupId>> {
        self.read(|c| c.group_ids())
    }

    pub fn epoch(&self, group_id: &GroupId) -> Result<Epoch> {
        self.read(|c| c.current_epoch(group_id))
    }

    /// The current members, by leaf index.
    pub fn members(&self, group_id: &GroupId) -> Result<Vec<MemberInfo>> {
        self.read(|c| {
            let group = c.load(group_id)?.ok_or(Error::UnknownGroup)?;
            Ok(group.members().map(member_info).collect())
        })
    }

    /// This device's leaf index in the group.
    pub fn own_leaf_index(&self, group_id: &GroupId) -> Result<u32> {
        self.read(|c| {
            let group = c.load_member_group(group_id)?;
            Ok(group.own_leaf_index().u32())
        })
    }

    /// Signs `message` with this device's current leaf key in the group (e.g. a consent
    /// statement). Anyone holding the group state can check it against the member's leaf;
    /// nobody else can produce it.
    pub fn sign_as_member(&self, group_id: &GroupId, message: &[u8]) -> Result<MemberSignature> {
        use openmls_traits::signatures::Signer as _;
        let group = self.load_member_group(group_id)?;
        let signer = self.signer_for(&group)?;
        let signature = signer
            .sign(message)
            .map_err(|e| Error::Mls(format!("signing failed: {e:?}")))?;
        Ok(MemberSignature {
            signature_key: signer.to_public_vec(),
            signature,
        })
    }

    /// The current member whose leaf key is `signature_key`, if `signature` by it over
    /// `message` verifies; `None` for a non-member key or a bad signature.
    pub fn verify_member_signature(
        &self,
        group_id: &GroupId,
        message: &[u8],
        signature_key: &[u8],
        signature: &[u8],
    ) -> Result<Option<MemberInfo>> {
        let group = self.load_member_group(group_id)?;
        let Some(member) = group
            .members()
            .find(|m| m.signature_key == signature_key)
            .map(member_info)
        else {
            return Ok(None);
        };
        Ok(verify_signature(signature_key, message, signature).then_some(member))
    }

    /// A short code two members compare out of band: 20 digits in groups of five, derived
    /// with the MLS exporter from the current epoch. Members at the same epoch of the same
    /// group see the same code; it changes with every epoch and differs between groups.
    pub fn safety_code(&self, group_id: &GroupId) -> Result<String> {
        self.read(|c| {
            let group = c.load_member_group(group_id)?;
            let secret = group
                .export_secret(&c.crypto, SAFETY_CODE_LABEL, group_id.as_bytes(), 20)
                .map_err(|e| c.mls_err(e))?;
            let groups: Vec<String> = secret
                .chunks(5)
                .map(|chunk| {
                    let n = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
                    format!("{:05}", n % 100_000)
                })
                .collect();
            Ok(groups.join(" "))
        })
    }
}
