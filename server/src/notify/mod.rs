//! Waking devices. A content-free [`Notice`] goes to each live device through the bus (to
//! whichever replica holds its stream), and devices without a live stream get a push
//! wake-up (`push`). The database already holds the truth when anything here runs: a lost
//! notice only delays a read, and the services that call this never wait for it.

pub mod push;
pub mod wakeups;
pub mod webpush;

use peerbridge_openapi::delivery::Notice;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::accounts::entities::device;
use crate::error::ApiResult;
use crate::state::AppState;

/// The devices of `users` that are not revoked, oldest first.
pub async fn live_devices(
    db: &impl ConnectionTrait,
    users: &[Uuid],
) -> ApiResult<Vec<device::Model>> {
    Ok(device::Entity::find()
        .filter(device::Column::UserId.is_in(users.to_vec()))
        .filter(device::Column::RevokedAt.is_null())
        .order_by_asc(device::Column::CreatedAt)
        .all(db)
        .await?)
}

/// Sends `notice` to these devices (bus) and wakes those that are offline (push).
pub fn devices(state: &AppState, devices: &[Uuid], notice: &Notice) {
    let payload = notice.to_json();
    for d in devices {
        state.bus.publish(
            &format!("{}{d}", crate::bus::topics::DEVICE_PREFIX),
            payload.as_bytes(),
        );
    }
    // A device with a live stream on this replica has just been told; only a flag also
    // wakes it through its push gateway (no database read for a conversation whose devices
    // are all connected here).
    let kind = wake_kind(notice);
    let mailboxes = state.bus.mailboxes();
    let wake: Vec<Uuid> = devices
        .iter()
        .filter(|d| kind == push::WakeKind::Flag || !mailboxes.is_connected(d))
        .copied()
        .collect();
    state.push.wake(wake, kind);
}

/// A flag's notice wakes as a flag (urgent, never debounced away by a message); every
/// other notice as a message.
fn wake_kind(notice: &Notice) -> push::WakeKind {
    match notice {
        Notice::Flag { .. } => push::WakeKind::Flag,
        _ => push::WakeKind::Message,
    }
}

/// Sends `notice` to every live device of `users`.
pub async fn users(state: &AppState, users: &[Uuid], notice: &Notice) {
    let Ok(live) = live_devices(&state.urgent.read, users).await else {
        return; // the database holds the truth; clients catch up on their next poll
    };
    let ids: Vec<Uuid> = live.iter().map(|d| d.id).collect();
    devices(state, &ids, notice);
}
