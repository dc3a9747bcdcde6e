//! The membership policy hook. The server is trusted to route, not to decide who may read a
//! conversation, so every client checks each member that a commit, an external join or a
//! Welcome would put next to it, and refuses (does not merge) what the app's policy rejects.

/// A group member as the app sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemberInfo {
    /// The member's leaf index in the ratchet tree (stable while it stays a member).
    pub leaf_index: u32,
    /// The member device's Ed25519 public key (32 bytes) as registered with the server, taken
    /// from the leaf's credential (see [`crate::leaf_binding_message`]). If `verified` is
    /// false this is the raw, unproven credential content instead.
    pub identity: Vec<u8>,
    /// The leaf's MLS signature public key (fresh per key package, so per conversation).
    pub signature_key: Vec<u8>,
    /// For a device credential: it carries a valid signature by `identity` over
    /// `signature_key`, so the leaf really belongs to that device. For a pseudonymous one
    /// (`pseudonymous`): the credential is well-formed — it proves nothing about who holds
    /// it; the policy decides. Unverified members are always refused, whatever the policy
    /// says.
    pub verified: bool,
    /// The leaf carries a pseudonym (`identity` is the 16-byte pseudonym), not a device key.
    pub pseudonymous: bool,
}

/// How a member would come to be in the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddKind {
    /// Added by a commit from an existing member (`added_by` names it).
    AddedByCommit,
    /// Joined on its own with an external commit (rejoin from a GroupInfo).
    ExternalJoin,
    /// Already a member of a group this device is joining (Welcome or rejoin).
    ExistingMember,
}

/// What the policy is asked about.
#[derive(Debug, Clone, Copy)]
pub struct AddCandidate<'a> {
    pub group_id: &'a [u8],
    pub member: &'a MemberInfo,
    pub kind: AddKind,
    /// The member that committed the add, for [`AddKind::AddedByCommit`].
    pub added_by: Option<&'a MemberInfo>,
}

/// Decides whether a member may be in a group. Return `false` to refuse: the commit is not
/// merged (reported as [`crate::Event::CommitRefused`]) or the join fails with
/// [`crate::Error::PolicyRefused`].
pub trait AddPolicy {
    fn allows(&self, candidate: &AddCandidate<'_>) -> bool;
}

impl<F> AddPolicy for F
where
    F: Fn(&AddCandidate<'_>) -> bool,
{
    fn allows(&self, candidate: &AddCandidate<'_>) -> bool {
        self(candidate)
    }
}

/// Allows exactly the listed device identities (Ed25519 public keys), whatever the kind.
#[derive(Debug, Clone, Default)]
pub struct AllowIdentities(pub Vec<Vec<u8>>);

impl AddPolicy for AllowIdentities {
    fn allows(&self, candidate: &AddCandidate<'_>) -> bool {
        self.0.contains(&candidate.member.identity)
    }
}
