//! Signed consents (reveal, invite the HP): verified, recorded, and shown to each party.

use super::{
    CONSENT_SKEW_SECONDS, action_str, as_party, conflict, consents_of, effective, granted, locked,
    notify, party_str, scope_str,
};
use crate::audit::{self, AuditEvent};
use crate::auth::extract::Principal;
use crate::crypto::{b64, b64_decode};
use crate::delivery::entities::{conversation, leaf_binding};
use crate::error::{ApiError, ApiResult};
use crate::introductions::entities::consent;
use crate::state::AppState;
use peerbridge_openapi::ErrorCode;
use peerbridge_openapi::introductions::{
    ConsentAction, ConsentRecord, ConsentScope, ConsentUpload, Party,
};
use peerbridge_openapi::signed::consent_statement;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde_json::json;
use uuid::Uuid;

fn consent_dto(c: consent::Model, me: Party) -> ConsentRecord {
    ConsentRecord {
        id: c.id,
        mine: c.party == party_str(me),
        scope: if c.scope == "invite_hp" {
            ConsentScope::InviteHp
        } else {
            ConsentScope::Reveal
        },
        action: if c.action == "withdraw" {
            ConsentAction::Withdraw
        } else {
            ConsentAction::Grant
        },
        issued_at: c.issued_at,
        signature_key: b64(&c.signature_key),
        signature: b64(&c.signature),
        recorded_at: c.recorded_at,
    }
}

pub async fn consents(state: &AppState, p: &Principal, id: Uuid) -> ApiResult<Vec<ConsentRecord>> {
    let (i, me) = as_party(&state.db, p, id).await?;
    Ok(consents_of(&state.db, i.id)
        .await?
        .into_iter()
        .map(|c| consent_dto(c, me))
        .collect())
}

/// Records a consent statement signed by the caller's leaf in the introduction's group.
/// The server checks what it can (the key is the caller device's current leaf, the
/// signature verifies over the rebuilt statement, the time is near); the counterpart's
/// client checks the signature again against its own view of the group.
pub async fn record_consent(
    state: &AppState,
    p: &Principal,
    id: Uuid,
    req: &ConsentUpload,
) -> ApiResult<ConsentRecord> {
    let (i, me) = as_party(&state.db, p, id).await?;
    let now = state.now();
    let i = effective(i, now);
    if !matches!(i.state.as_str(), "active" | "paused") {
        return Err(conflict("consents are given in an open introduction"));
    }
    let conv_id = i
        .conversation_id
        .ok_or_else(|| conflict("the conversation has not been opened yet"))?;
    let conv = conversation::Entity::find_by_id(conv_id)
        .one(&state.db)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if (req.issued_at - now.timestamp()).abs() > CONSENT_SKEW_SECONDS {
        return Err(ApiError::invalid(
            "issued_at",
            "must be within 10 minutes of the server's clock",
        ));
    }
    let key = b64_decode(&req.signature_key)
        .filter(|k| k.len() == 32)
        .ok_or_else(|| ApiError::invalid("signature_key", "a 32-byte key, base64url"))?;
    let sig = b64_decode(&req.signature)
        .filter(|s| s.len() == 64)
        .ok_or_else(|| ApiError::invalid("signature", "a 64-byte signature, base64url"))?;
    let bound = leaf_binding::Entity::find_by_id(key.clone())
        .one(&state.db)
        .await?
        .is_some_and(|b| b.device_id == p.device_id);
    let in_tree = match conv.public_state.as_deref() {
        Some(s) => crate::delivery::mls::leaves_of_state(s, &conv.group_id)
            .map_err(|e| ApiError::internal(anyhow::anyhow!(e.to_string())))?
            .iter()
            .any(|l| l.signature_key == key),
        None => false,
    };
    if !bound || !in_tree {
        return Err(ApiError::new(ErrorCode::PolicyViolation)
            .detail("sign with your own device's current leaf key in this conversation"));
    }
    let statement = consent_statement(i.id, &conv.group_id, req.scope, req.action, req.issued_at);
    let verifies = crate::crypto::ed25519_verifies(&key, &statement, &sig);
    if !verifies {
        return Err(ApiError::invalid(
            "signature",
            "does not verify over the consent statement",
        ));
    }
    let txn = crate::storage::begin(&state.db).await?;
    locked(&txn, i.id).await?;
    let existing = consents_of(&txn, i.id).await?;
    if req.action == ConsentAction::Withdraw
        && granted(&existing, Party::ServiceUser, req.scope)
        && granted(&existing, Party::Peer, req.scope)
    {
        return Err(conflict(
            "both parties have consented and the reveal has happened; it cannot be withdrawn",
        ));
    }
    let row = consent::ActiveModel {
        id: Set(Uuid::new_v4()),
        introduction_id: Set(i.id),
        party: Set(party_str(me).into()),
        device_id: Set(p.device_id),
        scope: Set(scope_str(req.scope).into()),
        action: Set(action_str(req.action).into()),
        issued_at: Set(req.issued_at),
        signature_key: Set(key),
        signature: Set(sig),
        recorded_at: Set(now),
    }
    .insert(&txn)
    .await?;
    audit::append(
        &txn,
        now,
        AuditEvent::new(match req.action {
            ConsentAction::Grant => "consent.granted",
            ConsentAction::Withdraw => "consent.withdrawn",
        })
        .clinic(Some(i.clinic_id))
        .actor(Some(p.user_id), Some(p.device_id))
        .subject(i.id)
        .detail(json!({ "party": party_str(me), "scope": scope_str(req.scope) })),
    )
    .await?;
    txn.commit().await?;
    // `invite_hp` decides whether the introducing HP may be in the group.
    state.bus.auth_changed(i.id);
    let mut tell = vec![i.service_user_id, i.peer_id];
    if req.scope == ConsentScope::InviteHp {
        tell.push(i.introduced_by);
    }
    notify(state, &tell, i.id).await;
    Ok(consent_dto(row, me))
}
