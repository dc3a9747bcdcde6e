//! Delivery-service logic: key packages, conversations under a membership policy, commits
//! (epoch compare-and-swap, verified against the public group state), the gap-free
//! per-conversation log, cursors and acknowledgements, welcomes. Every 2xx means committed.

use super::mls::MlsError;
use crate::accounts::entities::device;
use crate::auth::extract::Principal;
use crate::crypto::b64_decode;
use crate::error::{ApiError, ApiResult};
use peerbridge_openapi::ErrorCode;
use sea_orm::{ConnectionTrait, EntityTrait};

mod ack_commit;
mod admission;
mod conversations;
mod group_commit;
mod key_packages;
mod messages;
mod welcomes;
pub use ack_commit::{Ack, AckCommit};
pub use admission::{Admission, Admitted};
pub use conversations::{
    allowed_users, commit, create_conversation, get_conversation, group_info, list_conversations,
    member_conversation, set_push_endpoint, stream_seen, streams_seen, vapid_key,
};
pub use group_commit::{GroupCommit, Stamper};
pub use key_packages::{claim_key_packages, key_package_status, upload_key_packages};
pub use messages::{ack, fetch, purge_expired, send_message};
pub use welcomes::{ack_welcome, welcomes};

/// Largest application message accepted (decoded bytes).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Unclaimed one-time key packages a device may hold: the pool is bounded, never truncated.
pub const MAX_KEY_PACKAGES_PER_DEVICE: u64 = 500;
/// Clients should upload more when fewer remain.
pub const REPLENISH_BELOW: u32 = 10;
const SUPERVISION: &str = "supervision";
/// Key-package claims one device may make per rate-limit window.
pub const CLAIMS_PER_WINDOW: u32 = 200;

fn invalid_mls(e: MlsError) -> ApiError {
    match e {
        MlsError::State(_) => ApiError::internal(anyhow::anyhow!(e.to_string())),
        other => ApiError::new(ErrorCode::InvalidMls).detail(other.to_string()),
    }
}

fn decode(field: &str, s: &str, max: usize) -> ApiResult<Vec<u8>> {
    let bytes = b64_decode(s).ok_or_else(|| ApiError::invalid(field, "expected base64url"))?;
    if bytes.is_empty() || bytes.len() > max {
        return Err(ApiError::invalid(field, format!("1 to {max} bytes")));
    }
    Ok(bytes)
}

async fn caller_device(db: &impl ConnectionTrait, p: &Principal) -> ApiResult<device::Model> {
    device::Entity::find_by_id(p.device_id)
        .one(db)
        .await?
        .ok_or_else(ApiError::unauthenticated)
}
