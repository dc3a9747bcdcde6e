//! The clinic's escalation authority: an Ed25519 key whose secret is generated and kept on
//! a clinic admin's device, never here. The server stores its public half and the
//! certificates an admin's device makes for HP devices' escalation keys, and hands both to
//! raising clients; it cannot make a certificate, so a recipient it adds is refused by every
//! client that pinned the authority (from the invite link, or on first use).

use peerbridge_openapi::ErrorCode;
use peerbridge_openapi::escalation::{
    EscalationAuthority, EscalationAuthorityCreate, EscalationCertificateUpload, EscalationKeyInfo,
};
use peerbridge_openapi::signed::escalation_certificate_message;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, Set,
};
use uuid::Uuid;

use super::entities::{authority, escalation_key};
use crate::accounts::entities::{device, user};
use crate::audit::{self, AuditEvent};
use crate::auth::extract::Principal;
use crate::crypto::{b64, b64_decode, ed25519_verifies};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The clinic's authority key, if it has one.
pub async fn key_of(db: &impl ConnectionTrait, clinic: Uuid) -> ApiResult<Option<Vec<u8>>> {
    Ok(authority::Entity::find_by_id(clinic)
        .one(db)
        .await?
        .map(|a| a.public_key))
}

pub async fn get(state: &AppState, clinic: Uuid) -> ApiResult<EscalationAuthority> {
    let a = authority::Entity::find_by_id(clinic).one(&state.db).await?;
    Ok(EscalationAuthority {
        clinic_id: clinic,
        public_key: a.as_ref().map(|a| b64(&a.public_key)),
        created_at: a.map(|a| a.created_at),
    })
}

/// Sets the clinic's authority once. A second one would silently split the clinic's
/// clients (those that pinned the first refuse the second's certificates), so replacing it
/// is refused here.
pub async fn create(
    state: &AppState,
    p: &Principal,
    clinic: Uuid,
    req: &EscalationAuthorityCreate,
) -> ApiResult<EscalationAuthority> {
    let key = b64_decode(&req.public_key)
        .filter(|k| k.len() == 32 && ed25519_dalek::VerifyingKey::try_from(k.as_slice()).is_ok())
        .ok_or_else(|| {
            ApiError::invalid("public_key", "an Ed25519 public key: 32 bytes, base64url")
        })?;
    let now = state.now();
    let txn = crate::storage::begin(&state.db).await?;
    if let Some(existing) = authority::Entity::find_by_id(clinic).one(&txn).await? {
        if existing.public_key == key {
            txn.commit().await?;
            return get(state, clinic).await;
        }
        return Err(ApiError::new(ErrorCode::Conflict)
            .detail("the clinic already has an escalation authority; clients have pinned it"));
    }
    authority::ActiveModel {
        clinic_id: Set(clinic),
        public_key: Set(key),
        created_by: Set(p.device_id),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    audit::append(
        &txn,
        now,
        AuditEvent::new("escalation_authority.created")
            .clinic(Some(clinic))
            .actor(Some(p.user_id), Some(p.device_id))
            .subject(clinic),
    )
    .await?;
    txn.commit().await?;
    get(state, clinic).await
}

/// Live staff devices of the clinic with a published escalation key, for an admin to
/// review and certify.
pub async fn keys(state: &AppState, clinic: Uuid) -> ApiResult<Vec<EscalationKeyInfo>> {
    let staff = user::Entity::find()
        .filter(user::Column::ClinicId.eq(clinic))
        .filter(user::Column::DeactivatedAt.is_null())
        .all(&state.db)
        .await?;
    let devices = device::Entity::find()
        .filter(device::Column::UserId.is_in(staff.iter().map(|u| u.id).collect::<Vec<_>>()))
        .filter(device::Column::RevokedAt.is_null())
        .all(&state.db)
        .await?;
    let keys = escalation_key::Entity::find()
        .filter(
            escalation_key::Column::DeviceId
                .is_in(devices.iter().map(|d| d.id).collect::<Vec<_>>()),
        )
        .all(&state.db)
        .await?;
    let f = &state.keys.fields;
    let mut out = Vec::new();
    for k in keys {
        let Some(d) = devices.iter().find(|d| d.id == k.device_id) else {
            continue;
        };
        let Some(u) = staff.iter().find(|u| u.id == d.user_id) else {
            continue;
        };
        let display_name = u
            .display_name_enc
            .as_deref()
            .map(|c| f.open("users.display_name", &u.id.to_string(), c))
            .transpose()
            .map_err(ApiError::internal)?
            .unwrap_or_default();
        out.push(EscalationKeyInfo {
            device_id: d.id,
            user_id: u.id,
            display_name,
            device_label: d.label.clone(),
            public_key: b64(&k.public_key),
            signature: b64(&k.signature),
            device_key: b64(&d.public_key),
            published_at: k.created_at,
            certified: k.certificate.is_some(),
        });
    }
    out.sort_by(|a, b| {
        (a.display_name.as_str(), a.published_at).cmp(&(b.display_name.as_str(), b.published_at))
    });
    Ok(out)
}

/// Stores an admin device's certificate for one device's current key; it must verify under
/// the clinic's authority (the server checks what every client will check).
pub async fn certify(
    state: &AppState,
    p: &Principal,
    clinic: Uuid,
    device_id: Uuid,
    req: &EscalationCertificateUpload,
) -> ApiResult<()> {
    let pk = b64_decode(&req.public_key)
        .filter(|k| k.len() == 32)
        .ok_or_else(|| {
            ApiError::invalid("public_key", "an X25519 public key: 32 bytes, base64url")
        })?;
    let sig = b64_decode(&req.signature)
        .filter(|s| s.len() == 64)
        .ok_or_else(|| ApiError::invalid("signature", "64 bytes, base64url"))?;
    let now = state.now();
    let txn = crate::storage::begin(&state.db).await?;
    // The device must be a live device of this clinic's staff (another clinic's is not found).
    let dev = device::Entity::find_by_id(device_id)
        .one(&txn)
        .await?
        .filter(|d| d.revoked_at.is_none())
        .ok_or_else(ApiError::not_found)?;
    user::Entity::find_by_id(dev.user_id)
        .one(&txn)
        .await?
        .filter(|u| u.clinic_id == Some(clinic))
        .ok_or_else(ApiError::not_found)?;
    let key = escalation_key::Entity::find_by_id(device_id)
        .one(&txn)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let authority = key_of(&txn, clinic).await?.ok_or_else(|| {
        ApiError::new(ErrorCode::Conflict).detail("the clinic has no escalation authority yet")
    })?;
    if key.public_key != pk {
        return Err(ApiError::new(ErrorCode::Conflict)
            .detail("the device has published another key since; review it again"));
    }
    let message = escalation_certificate_message(clinic, device_id, &pk);
    if !ed25519_verifies(&authority, &message, &sig) {
        return Err(ApiError::invalid(
            "signature",
            "is not the clinic authority's certificate for this device's key",
        ));
    }
    let mut am = key.into_active_model();
    am.certificate = Set(Some(sig));
    am.update(&txn).await?;
    audit::append(
        &txn,
        now,
        AuditEvent::new("escalation_key.certified")
            .clinic(Some(clinic))
            .actor(Some(p.user_id), Some(p.device_id))
            .subject(device_id),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}
