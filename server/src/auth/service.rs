//! Authentication flows: staff setup (password + TOTP), password login, device
//! challenge–response, refresh-token rotation with reuse detection, logout.

use chrono::Duration;
use ed25519_dalek::{Signature, VerifyingKey};
use peerbridge_openapi::auth::{
    Challenge, DeviceLogin, PasswordLogin, RefreshRequest, Session, StaffSetupBegin,
    StaffSetupComplete, TotpProvisioning,
};
use peerbridge_openapi::signed::login_challenge_message;
use peerbridge_openapi::{ErrorCode, Role};
use sea_orm::prelude::Expr;
use sea_orm::sea_query::ExprTrait;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, Set};
use serde_json::json;
use uuid::Uuid;

use super::entities::{login_challenge, refresh_token};
use super::extract::ClientAddr;
use super::limits;
use super::secrets;
use crate::accounts::entities::{device, setup_code, user};
use crate::accounts::service::{ACTIVE, register_device};
use crate::accounts::validate;
use crate::audit::{self, AuditEvent};
use crate::crypto::{b64, b64_decode, codes, random_bytes, secret_hash};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

const CHALLENGE_TTL_SECS: i64 = 120;

use super::session::{end_session, issue_session};

async fn find_setup_code(
    state: &AppState,
    txn: &DatabaseTransaction,
    code: &str,
) -> ApiResult<setup_code::Model> {
    let invalid = || ApiError::new(ErrorCode::SetupCodeInvalid);
    let code = codes::normalize(code).ok_or_else(invalid)?;
    let now = state.now();
    setup_code::Entity::find()
        .filter(setup_code::Column::CodeHash.eq(secret_hash(&code)))
        .one(txn)
        .await?
        .filter(|s| s.used_at.is_none() && s.expires_at > now)
        .ok_or_else(invalid)
}

/// Staff setup, step 1: set the password and receive a TOTP secret to enrol.
pub async fn setup_begin(
    state: &AppState,
    addr: &ClientAddr,
    req: &StaffSetupBegin,
) -> ApiResult<TotpProvisioning> {
    let addr_key = limits::per_address(state, "setup", &addr.0);
    limits::ensure_allowed(state, std::slice::from_ref(&addr_key)).await?;
    secrets::check_password_policy(&req.password).map_err(|m| ApiError::invalid("password", m))?;
    let txn = crate::storage::begin(&state.db).await?;
    let sc = match find_setup_code(state, &txn, &req.setup_code).await {
        Ok(sc) => sc,
        Err(e) => {
            drop(txn);
            limits::record_failure(state, &[addr_key]).await?;
            return Err(e);
        }
    };
    let u = user::Entity::find_by_id(sc.user_id)
        .one(&txn)
        .await?
        .filter(|u| u.status == ACTIVE)
        .ok_or_else(|| ApiError::new(ErrorCode::SetupCodeInvalid))?;
    let password = req.password.clone();
    let hash = tokio::task::spawn_blocking(move || secrets::hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::internal(anyhow::anyhow!("password hashing failed: {e}")))?;
    let secret = secrets::new_totp_secret();
    let row = sc.id.to_string();
    let login = u
        .login_enc
        .as_deref()
        .map(|c| state.keys.fields.open("users.login", &u.id.to_string(), c))
        .transpose()
        .map_err(ApiError::internal)?
        .unwrap_or_else(|| "staff".into());
    let (secret_b32, uri) = secrets::totp_provisioning(&secret, &login)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("totp provisioning failed")))?;
    let mut am: user::ActiveModel = u.into();
    am.password_hash = Set(Some(hash));
    am.update(&txn).await?;
    let mut scm: setup_code::ActiveModel = sc.into();
    scm.pending_totp_enc = Set(Some(state.keys.fields.seal(
        "setup_codes.pending_totp",
        &row,
        &b64(&secret),
    )));
    scm.update(&txn).await?;
    txn.commit().await?;
    Ok(TotpProvisioning {
        totp_secret: secret_b32,
        otpauth_uri: uri,
    })
}

/// Staff setup, step 2: confirm a TOTP code, register the first device, start a session.
pub async fn setup_complete(
    state: &AppState,
    addr: &ClientAddr,
    req: &StaffSetupComplete,
) -> ApiResult<Session> {
    let addr_key = limits::per_address(state, "setup", &addr.0);
    limits::ensure_allowed(state, std::slice::from_ref(&addr_key)).await?;
    validate::public_key("device.public_key", &req.device.public_key)?;
    let now = state.now();
    let txn = crate::storage::begin(&state.db).await?;
    let sc = match find_setup_code(state, &txn, &req.setup_code).await {
        Ok(sc) => sc,
        Err(e) => {
            drop(txn);
            limits::record_failure(state, &[addr_key]).await?;
            return Err(e);
        }
    };
    let Some(pending) = sc.pending_totp_enc.as_deref() else {
        return Err(ApiError::new(ErrorCode::Conflict)
            .detail("choose a password first (POST /v1/staff/setup)"));
    };
    let secret_b64 = state
        .keys
        .fields
        .open("setup_codes.pending_totp", &sc.id.to_string(), pending)
        .map_err(ApiError::internal)?;
    let secret = b64_decode(&secret_b64)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("stored totp secret malformed")))?;
    let Some(step) = secrets::check_totp(&secret, &req.totp_code, now.timestamp(), None) else {
        drop(txn);
        limits::record_failure(state, &[addr_key]).await?;
        return Err(ApiError::new(ErrorCode::InvalidCredentials)
            .detail("the authenticator code is not right; check the phone's clock"));
    };
    let u = user::Entity::find_by_id(sc.user_id)
        .one(&txn)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::SetupCodeInvalid))?;
    let user_id = u.id;
    let clinic_id = u.clinic_id;
    let mut am: user::ActiveModel = u.into();
    am.totp_secret_enc = Set(Some(state.keys.fields.seal(
        "users.totp_secret",
        &user_id.to_string(),
        &secret_b64,
    )));
    am.totp_last_step = Set(Some(step));
    am.update(&txn).await?;
    let spent = setup_code::Entity::update_many()
        .col_expr(setup_code::Column::UsedAt, Expr::value(now))
        .col_expr(
            setup_code::Column::PendingTotpEnc,
            Expr::value(Option::<Vec<u8>>::None),
        )
        .filter(setup_code::Column::Id.eq(sc.id))
        .filter(setup_code::Column::UsedAt.is_null())
        .exec(&txn)
        .await?;
    if spent.rows_affected != 1 {
        return Err(ApiError::new(ErrorCode::SetupCodeInvalid));
    }
    audit::append(
        &txn,
        now,
        AuditEvent::new("account.setup_completed")
            .clinic(clinic_id)
            .actor(Some(user_id), None)
            .subject(user_id),
    )
    .await?;
    let dev = register_device(&txn, state, user_id, &req.device).await?;
    let session = issue_session(&txn, state, user_id, &dev, None).await?;
    audit::append(
        &txn,
        now,
        AuditEvent::new("login.succeeded")
            .clinic(clinic_id)
            .actor(Some(user_id), Some(dev.id))
            .detail(json!({ "method": "setup" })),
    )
    .await?;
    txn.commit().await?;
    Ok(session)
}

/// Staff login with password and TOTP from a device (registered now if its key is new).
pub async fn password_login(
    state: &AppState,
    addr: &ClientAddr,
    req: &PasswordLogin,
) -> ApiResult<Session> {
    let login = validate::login("login", &req.login)?;
    validate::text("device.label", &req.device.label, 64)?;
    let vk = validate::public_key("device.public_key", &req.device.public_key)?;
    let limit_keys = [
        limits::per_account(state, "password", &login),
        limits::per_address(state, "password", &addr.0),
    ];
    let now = state.now();
    let found = user::Entity::find()
        .filter(user::Column::LoginIndex.eq(state.keys.blind_index("login", &login)))
        .one(&state.db)
        .await?;
    // Guesses are limited per login and per address, but not on the account's own live
    // device: someone who knows a staff login cannot lock its owner out of their
    // workstation (the password and TOTP are still required there).
    let known_device = match &found {
        Some(u) => device::Entity::find()
            .filter(device::Column::PublicKey.eq(vk.as_bytes().to_vec()))
            .filter(device::Column::UserId.eq(u.id))
            .filter(device::Column::RevokedAt.is_null())
            .one(&state.db)
            .await?
            .is_some(),
        None => false,
    };
    if !known_device {
        limits::ensure_allowed(state, &limit_keys).await?;
    }
    let stored = found.as_ref().and_then(|u| u.password_hash.clone());
    let password = req.password.clone();
    let password_ok =
        tokio::task::spawn_blocking(move || secrets::verify_password(&password, stored.as_deref()))
            .await
            .map_err(ApiError::internal)?;
    let totp_step = match (&found, password_ok) {
        (Some(u), true) => u
            .totp_secret_enc
            .as_deref()
            .and_then(|c| {
                state
                    .keys
                    .fields
                    .open("users.totp_secret", &u.id.to_string(), c)
                    .ok()
            })
            .and_then(|s| b64_decode(&s))
            .and_then(|secret| {
                secrets::check_totp(&secret, &req.totp_code, now.timestamp(), u.totp_last_step)
            }),
        _ => None,
    };
    let (Some(u), Some(step)) = (found, totp_step) else {
        limits::record_failure(state, &limit_keys).await?;
        state.metrics.auth_failures.inc();
        let txn = crate::storage::begin(&state.db).await?;
        audit::append(
            &txn,
            now,
            AuditEvent::new("login.failed").detail(json!({ "method": "password" })),
        )
        .await?;
        txn.commit().await?;
        return Err(ApiError::new(ErrorCode::InvalidCredentials));
    };
    if u.status != ACTIVE {
        return Err(ApiError::new(ErrorCode::AccountInactive));
    }
    let role = Role::parse(&u.role)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("corrupt row: users.role")))?;
    if !role.is_staff() {
        return Err(ApiError::new(ErrorCode::InvalidCredentials));
    }
    let txn = crate::storage::begin(&state.db).await?;
    // Compare-and-set on the TOTP step: a code is accepted once even under concurrency.
    let cas = user::Entity::update_many()
        .col_expr(user::Column::TotpLastStep, Expr::value(step))
        .filter(user::Column::Id.eq(u.id))
        .filter(
            user::Column::TotpLastStep
                .is_null()
                .or(user::Column::TotpLastStep.lt(step)),
        )
        .exec(&txn)
        .await?;
    if cas.rows_affected != 1 {
        return Err(ApiError::new(ErrorCode::InvalidCredentials));
    }
    let dev = register_device(&txn, state, u.id, &req.device).await?;
    let session = issue_session(&txn, state, u.id, &dev, None).await?;
    audit::append(
        &txn,
        now,
        AuditEvent::new("login.succeeded")
            .clinic(u.clinic_id)
            .actor(Some(u.id), Some(dev.id))
            .detail(json!({ "method": "password" })),
    )
    .await?;
    txn.commit().await?;
    Ok(session)
}

/// Issues a one-time nonce for a registered, live device.
pub async fn challenge(
    state: &AppState,
    addr: &ClientAddr,
    device_id: Uuid,
) -> ApiResult<Challenge> {
    let now = state.now();
    let dev = device::Entity::find_by_id(device_id)
        .one(&state.db)
        .await?
        .filter(|d| d.revoked_at.is_none());
    let Some(dev) = dev else {
        // Only probes for unknown devices count against the address.
        let addr_key = limits::per_address(state, "challenge", &addr.0);
        limits::ensure_allowed(state, std::slice::from_ref(&addr_key)).await?;
        limits::record_failure(state, &[addr_key]).await?;
        return Err(ApiError::new(ErrorCode::InvalidChallenge).detail("unknown or revoked device"));
    };
    let nonce = b64(&random_bytes::<32>());
    let expires = now + Duration::seconds(CHALLENGE_TTL_SECS);
    let c = login_challenge::ActiveModel {
        id: Set(Uuid::new_v4()),
        device_id: Set(dev.id),
        nonce: Set(nonce.clone()),
        created_at: Set(now),
        expires_at: Set(expires),
        used_at: Set(None),
    }
    .insert(&state.db)
    .await?;
    Ok(Challenge {
        challenge_id: c.id,
        nonce,
        expires_at: expires,
    })
}

/// Verifies the device's signature over the challenge and starts a session.
pub async fn device_login(
    state: &AppState,
    addr: &ClientAddr,
    req: &DeviceLogin,
) -> ApiResult<Session> {
    let limit_keys = [
        limits::per_account(state, "device", &req.device_id.to_string()),
        limits::per_address(state, "device", &addr.0),
    ];
    let sig_bytes = b64_decode(&req.signature)
        .ok_or_else(|| ApiError::invalid("signature", "expected unpadded base64url"))?;
    let sig = Signature::from_slice(&sig_bytes)
        .map_err(|_| ApiError::invalid("signature", "an Ed25519 signature is 64 bytes"))?;
    let now = state.now();
    let txn = crate::storage::begin(&state.db).await?;
    let ch = login_challenge::Entity::find_by_id(req.challenge_id)
        .one(&txn)
        .await?
        .filter(|c| c.device_id == req.device_id && c.used_at.is_none() && c.expires_at > now);
    let dev = device::Entity::find_by_id(req.device_id)
        .one(&txn)
        .await?
        .filter(|d| d.revoked_at.is_none());
    let verified = match (&ch, &dev) {
        (Some(c), Some(d)) => <[u8; 32]>::try_from(d.public_key.as_slice())
            .ok()
            .and_then(|k| VerifyingKey::from_bytes(&k).ok())
            .is_some_and(|vk| {
                vk.verify_strict(&login_challenge_message(c.id, &c.nonce), &sig)
                    .is_ok()
            }),
        _ => false,
    };
    // A valid signature is judged before any counter: only the key's holder can make one,
    // so failures by others (a shared address, someone who knows the device id) never
    // lock the device out. Failures are counted and, past the limit, refused with 429.
    let (true, Some(c), Some(d)) = (verified, ch, dev) else {
        drop(txn);
        limits::ensure_allowed(state, &limit_keys).await?;
        limits::record_failure(state, &limit_keys).await?;
        state.metrics.auth_failures.inc();
        return Err(ApiError::new(ErrorCode::InvalidChallenge));
    };
    let spent = login_challenge::Entity::update_many()
        .col_expr(login_challenge::Column::UsedAt, Expr::value(now))
        .filter(login_challenge::Column::Id.eq(c.id))
        .filter(login_challenge::Column::UsedAt.is_null())
        .exec(&txn)
        .await?;
    if spent.rows_affected != 1 {
        return Err(ApiError::new(ErrorCode::InvalidChallenge));
    }
    let u = user::Entity::find_by_id(d.user_id)
        .one(&txn)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidChallenge))?;
    if u.status != ACTIVE {
        return Err(ApiError::new(ErrorCode::AccountInactive));
    }
    let session = issue_session(&txn, state, u.id, &d, None).await?;
    audit::append(
        &txn,
        now,
        AuditEvent::new("login.succeeded")
            .clinic(u.clinic_id)
            .actor(Some(u.id), Some(d.id))
            .detail(json!({ "method": "device" })),
    )
    .await?;
    txn.commit().await?;
    Ok(session)
}

/// Rotates a refresh token. Presenting a spent token revokes its whole family (and the
/// device's access tokens issued so far): whoever holds the newer token (thief or owner)
/// must log in again. Within `refresh_reuse_grace` of the rotation the same token gets a
/// session too: a phone's resume and its background sync racing are not a theft.
/// Only unknown, revoked or expired tokens count against the address: a valid token is
/// judged before the address counter, so junk from a shared NAT locks out no one.
pub async fn refresh(
    state: &AppState,
    addr: &ClientAddr,
    req: &RefreshRequest,
) -> ApiResult<Session> {
    let now = state.now();
    let invalid = || ApiError::new(ErrorCode::RefreshTokenInvalid);
    let txn = crate::storage::begin(&state.db).await?;
    let Some(tok) = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(secret_hash(req.refresh_token.trim())))
        .one(&txn)
        .await?
        .filter(|t| t.revoked_at.is_none() && t.expires_at > now)
    else {
        drop(txn);
        let addr_key = limits::per_address(state, "refresh", &addr.0);
        limits::ensure_allowed(state, std::slice::from_ref(&addr_key)).await?;
        limits::record_failure(state, &[addr_key]).await?;
        return Err(invalid());
    };
    let rotated = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RotatedAt, Expr::value(now))
        .filter(refresh_token::Column::Id.eq(tok.id))
        .filter(refresh_token::Column::RotatedAt.is_null())
        .exec(&txn)
        .await?;
    if rotated.rows_affected != 1 {
        // Spent already: by a concurrent refresh of the same app a moment ago, or a replay.
        let current = refresh_token::Entity::find_by_id(tok.id).one(&txn).await?;
        let racing = current.as_ref().is_some_and(|t| {
            t.revoked_at.is_none()
                && t.rotated_at
                    .is_some_and(|r| now - r <= state.config.refresh_reuse_grace)
        });
        if !racing {
            // Reuse: revoke the family and its access tokens, audit, commit, then fail.
            end_session(&txn, &tok, now).await?;
            let u = user::Entity::find_by_id(tok.user_id).one(&txn).await?;
            audit::append(
                &txn,
                now,
                AuditEvent::new("session.refresh_reuse_detected")
                    .clinic(u.and_then(|u| u.clinic_id))
                    .actor(Some(tok.user_id), Some(tok.device_id))
                    .subject(tok.family_id),
            )
            .await?;
            txn.commit().await?;
            state.bus.auth_changed(tok.device_id);
            return Err(ApiError::new(ErrorCode::RefreshTokenReused));
        }
    }
    let dev = device::Entity::find_by_id(tok.device_id)
        .one(&txn)
        .await?
        .filter(|d| d.revoked_at.is_none())
        .ok_or_else(invalid)?;
    let u = user::Entity::find_by_id(tok.user_id)
        .one(&txn)
        .await?
        .ok_or_else(invalid)?;
    if u.status != ACTIVE {
        return Err(ApiError::new(ErrorCode::AccountInactive));
    }
    let session = issue_session(&txn, state, u.id, &dev, Some(tok.family_id)).await?;
    txn.commit().await?;
    Ok(session)
}

/// Ends the session (refresh-token family) a refresh token belongs to.
pub async fn logout(state: &AppState, refresh_token_value: &str) -> ApiResult<()> {
    let now = state.now();
    let Some(tok) = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(secret_hash(refresh_token_value.trim())))
        .one(&state.db)
        .await?
    else {
        return Err(ApiError::new(ErrorCode::RefreshTokenInvalid));
    };
    let txn = crate::storage::begin(&state.db).await?;
    end_session(&txn, &tok, now).await?;
    txn.commit().await?;
    state.bus.auth_changed(tok.device_id);
    Ok(())
}
