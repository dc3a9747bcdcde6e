//! Account logic: staff creation, invites and their redemption, devices, deactivation and
//! role changes. Every state change writes its audit entry in the same transaction.

use chrono::Duration;
use peerbridge_openapi::auth::{DeviceRegistration, InviteRedeem, Session};
use peerbridge_openapi::clinics::{
    Invite, InviteCreate, InviteCreated, InviteStatus, StaffCreate, StaffCreated,
};
use peerbridge_openapi::users::{Device, RoleChange, UserDetail, UserStatus, UserSummary};
use peerbridge_openapi::{EnrolleeRole, ErrorCode, Role};
use sea_orm::prelude::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, Set,
};
use serde_json::json;
use uuid::Uuid;

use super::entities::{device, invite, setup_code, user};
use super::validate;
use crate::audit::{self, AuditEvent};
use crate::auth::extract::{ClientAddr, Principal};
use crate::auth::limits;
use crate::auth::session::issue_session;
use crate::clinics::entity as clinic;
use crate::crypto::{b64, codes, secret_hash};
use crate::error::{ApiError, ApiResult};
use crate::ids::{ClinicId, DeviceId, UserId};
use crate::state::AppState;

pub const ACTIVE: &str = "active";
pub const DEACTIVATED: &str = "deactivated";

fn status_of(u: &user::Model) -> UserStatus {
    if u.status == ACTIVE {
        UserStatus::Active
    } else {
        UserStatus::Deactivated
    }
}

fn role_of(u: &user::Model) -> ApiResult<Role> {
    Role::parse(&u.role).ok_or_else(|| ApiError::internal(anyhow::anyhow!("invalid stored role")))
}

pub fn device_dto(d: &device::Model) -> Device {
    Device {
        id: d.id,
        label: d.label.clone(),
        public_key: b64(&d.public_key),
        created_at: d.created_at,
        last_seen_at: d.last_seen_at,
        revoked_at: d.revoked_at,
    }
}

/// Finds a clinic or 404.
pub async fn require_clinic_exists(db: &impl ConnectionTrait, id: Uuid) -> ApiResult<()> {
    clinic::Entity::find_by_id(id)
        .one(db)
        .await?
        .map(|_| ())
        .ok_or_else(ApiError::not_found)
}

/// Loads a user of `clinic` or 404 (a user of another clinic is "not found" too).
async fn user_in_clinic(
    db: &impl ConnectionTrait,
    clinic_id: ClinicId,
    user_id: UserId,
) -> ApiResult<user::Model> {
    user::Entity::find_by_id(user_id)
        .one(db)
        .await?
        .filter(|u| u.clinic_id == Some(clinic_id.0))
        .ok_or_else(ApiError::not_found)
}

/// Registers a device key for a user, or returns the user's existing live device with that
/// key. A key held by another account, or revoked, is refused.
pub async fn register_device(
    txn: &DatabaseTransaction,
    state: &AppState,
    user_id: Uuid,
    reg: &DeviceRegistration,
) -> ApiResult<device::Model> {
    let vk = validate::public_key("device.public_key", &reg.public_key)?;
    let label = validate::text("device.label", &reg.label, 64)?;
    let existing = device::Entity::find()
        .filter(device::Column::PublicKey.eq(vk.as_bytes().to_vec()))
        .one(txn)
        .await?;
    if let Some(d) = existing {
        if d.user_id != user_id || d.revoked_at.is_some() {
            return Err(ApiError::new(ErrorCode::Conflict)
                .detail("this device key is already registered; generate a new key"));
        }
        return Ok(d);
    }
    let now = state.now();
    let d = device::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(user_id),
        public_key: Set(vk.as_bytes().to_vec()),
        label: Set(label),
        created_at: Set(now),
        last_seen_at: Set(Some(now)),
        revoked_at: Set(None),
        tokens_not_before: Set(None),
        push_url: Set(None),
        push_p256dh: Set(None),
        push_auth: Set(None),
        stream_seen_at: Set(None),
    }
    .insert(txn)
    .await?;
    let owner = user::Entity::find_by_id(user_id).one(txn).await?;
    audit::append(
        txn,
        now,
        AuditEvent::new("device.registered")
            .clinic(owner.and_then(|u| u.clinic_id))
            .actor(Some(user_id), Some(d.id))
            .subject(d.id),
    )
    .await?;
    Ok(d)
}

/// Creates a staff account (HP or clinic admin in a clinic, or an operator) with a one-time
/// setup code. `actor` is `None` when run from the admin CLI.
pub async fn create_staff(
    state: &AppState,
    actor: Option<&Principal>,
    clinic_id: Option<Uuid>,
    role: Role,
    req: &StaffCreate,
) -> ApiResult<StaffCreated> {
    let login = validate::login("login", &req.login)?;
    let name = validate::text("display_name", &req.display_name, 200)?;
    let phone = req
        .phone
        .as_deref()
        .map(|p| validate::phone("phone", p))
        .transpose()?;
    let now = state.now();
    let login_index = state.keys.blind_index("login", &login);
    let txn = crate::storage::begin(&state.db).await?;
    if let Some(c) = clinic_id {
        require_clinic_exists(&txn, c).await?;
    }
    if user::Entity::find()
        .filter(user::Column::LoginIndex.eq(login_index.clone()))
        .one(&txn)
        .await?
        .is_some()
    {
        return Err(ApiError::new(ErrorCode::Conflict).detail("this login name is taken"));
    }
    let id = Uuid::new_v4();
    let row = id.to_string();
    let f = &state.keys.fields;
    user::ActiveModel {
        id: Set(id),
        clinic_id: Set(clinic_id),
        role: Set(role.as_str().into()),
        status: Set(ACTIVE.into()),
        login_index: Set(Some(login_index)),
        login_enc: Set(Some(f.seal("users.login", &row, &login))),
        display_name_enc: Set(Some(f.seal("users.display_name", &row, &name))),
        phone_enc: Set(phone.map(|p| f.seal("users.phone", &row, &p))),
        password_hash: Set(None),
        totp_secret_enc: Set(None),
        totp_last_step: Set(None),
        created_by: Set(actor.map(|a| a.user_id)),
        created_at: Set(now),
        deactivated_at: Set(None),
    }
    .insert(&txn)
    .await?;
    let code = codes::generate();
    let expires = now + Duration::hours(state.config.setup_code_ttl_hours as i64);
    setup_code::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(id),
        code_hash: Set(secret_hash(&codes::normalize(&code).unwrap_or_default())),
        pending_totp_enc: Set(None),
        created_at: Set(now),
        expires_at: Set(expires),
        used_at: Set(None),
    }
    .insert(&txn)
    .await?;
    audit::append(
        &txn,
        now,
        AuditEvent::new("account.created")
            .clinic(clinic_id)
            .actor(actor.map(|a| a.user_id), actor.map(|a| a.device_id))
            .subject(id)
            .detail(json!({ "role": role.as_str(), "via": if actor.is_some() { "api" } else { "cli" } })),
    )
    .await?;
    txn.commit().await?;
    Ok(StaffCreated {
        user_id: id,
        setup_code: code,
        setup_code_expires_at: expires,
    })
}

/// An HP invites a service user or peer into their own clinic. `actor` is `None` for the
/// operator's bootstrap invite from the CLI.
pub async fn create_invite(
    state: &AppState,
    actor: Option<&Principal>,
    clinic_id: Uuid,
    req: &InviteCreate,
) -> ApiResult<InviteCreated> {
    let name = req
        .display_name
        .as_deref()
        .map(|n| validate::text("display_name", n, 200))
        .transpose()?;
    let phone = req
        .phone
        .as_deref()
        .map(|p| validate::phone("phone", p))
        .transpose()?;
    let hours = req
        .expires_in_hours
        .unwrap_or(state.config.invite_ttl_hours);
    if !(1..=720).contains(&hours) {
        return Err(ApiError::invalid("expires_in_hours", "between 1 and 720"));
    }
    let now = state.now();
    let expires = now + Duration::hours(hours as i64);
    let id = Uuid::new_v4();
    let row = id.to_string();
    let code = codes::generate();
    let f = &state.keys.fields;
    let txn = crate::storage::begin(&state.db).await?;
    require_clinic_exists(&txn, clinic_id).await?;
    invite::ActiveModel {
        id: Set(id),
        clinic_id: Set(clinic_id),
        role: Set(Role::from(req.role).as_str().into()),
        code_hash: Set(secret_hash(&codes::normalize(&code).unwrap_or_default())),
        display_name_enc: Set(name.map(|n| f.seal("invites.display_name", &row, &n))),
        phone_enc: Set(phone.map(|p| f.seal("invites.phone", &row, &p))),
        created_by: Set(actor.map(|a| a.user_id).unwrap_or(Uuid::nil())),
        created_at: Set(now),
        expires_at: Set(expires),
        redeemed_at: Set(None),
        redeemed_by: Set(None),
        revoked_at: Set(None),
    }
    .insert(&txn)
    .await?;
    audit::append(
        &txn,
        now,
        AuditEvent::new("invite.created")
            .clinic(Some(clinic_id))
            .actor(actor.map(|a| a.user_id), actor.map(|a| a.device_id))
            .subject(id)
            .detail(json!({ "role": Role::from(req.role).as_str(), "expires_in_hours": hours })),
    )
    .await?;
    txn.commit().await?;
    // A link that opens the web app's join screen (and that native apps can claim as an
    // app link); the code travels in the fragment, which browsers never send to a server.
    let qr_payload = format!("{}/join#code={}", state.config.public_url, code);
    Ok(InviteCreated {
        id,
        clinic_id,
        role: req.role,
        code,
        qr_payload,
        expires_at: expires,
    })
}

fn invite_dto(i: &invite::Model, now: chrono::DateTime<chrono::Utc>) -> ApiResult<Invite> {
    let role = match Role::parse(&i.role) {
        Some(Role::Peer) => EnrolleeRole::Peer,
        Some(Role::ServiceUser) => EnrolleeRole::ServiceUser,
        _ => return Err(ApiError::internal(anyhow::anyhow!("invalid invite role"))),
    };
    let status = if i.redeemed_at.is_some() {
        InviteStatus::Redeemed
    } else if i.revoked_at.is_some() {
        InviteStatus::Revoked
    } else if i.expires_at <= now {
        InviteStatus::Expired
    } else {
        InviteStatus::Pending
    };
    Ok(Invite {
        id: i.id,
        clinic_id: i.clinic_id,
        role,
        status,
        created_by: i.created_by,
        created_at: i.created_at,
        expires_at: i.expires_at,
        redeemed_by: i.redeemed_by,
    })
}

pub async fn list_invites(state: &AppState, clinic_id: Uuid) -> ApiResult<Vec<Invite>> {
    let now = state.now();
    invite::Entity::find()
        .filter(invite::Column::ClinicId.eq(clinic_id))
        .order_by_desc(invite::Column::CreatedAt)
        .all(&state.db)
        .await?
        .iter()
        .map(|i| invite_dto(i, now))
        .collect()
}

pub async fn revoke_invite(
    state: &AppState,
    actor: &Principal,
    clinic_id: ClinicId,
    invite_id: Uuid,
) -> ApiResult<Invite> {
    let now = state.now();
    let txn = crate::storage::begin(&state.db).await?;
    let inv = invite::Entity::find_by_id(invite_id)
        .one(&txn)
        .await?
        .filter(|i| i.clinic_id == clinic_id)
        .ok_or_else(ApiError::not_found)?;
    if inv.redeemed_at.is_some() {
        return Err(ApiError::new(ErrorCode::Conflict).detail("the invite was already redeemed"));
    }
    let mut am: invite::ActiveModel = inv.into();
    am.revoked_at = Set(Some(now));
    let inv = am.update(&txn).await?;
    audit::append(
        &txn,
        now,
        AuditEvent::new("invite.revoked")
            .clinic(Some(clinic_id.0))
            .actor(Some(actor.user_id), Some(actor.device_id))
            .subject(invite_id),
    )
    .await?;
    txn.commit().await?;
    invite_dto(&inv, now)
}

/// Redeems an invite: creates the account and its first device, spends the invite, and
/// returns a session. Unknown, spent, revoked and expired codes look the same.
pub async fn redeem_invite(
    state: &AppState,
    addr: &ClientAddr,
    req: &InviteRedeem,
) -> ApiResult<Session> {
    let addr_key = limits::per_address(state, "redeem", &addr.0);
    limits::ensure_allowed(state, std::slice::from_ref(&addr_key)).await?;
    // Validate the device before touching the invite, so a bad key does not spend it.
    validate::public_key("device.public_key", &req.device.public_key)?;
    validate::text("device.label", &req.device.label, 64)?;
    let invalid = || ApiError::new(ErrorCode::InviteInvalid);
    let Some(code) = codes::normalize(&req.code) else {
        limits::record_failure(state, &[addr_key]).await?;
        return Err(invalid().detail("not a valid invite code"));
    };
    let now = state.now();
    let hash = secret_hash(&code);
    let txn = crate::storage::begin(&state.db).await?;
    let found = invite::Entity::find()
        .filter(invite::Column::CodeHash.eq(hash))
        .one(&txn)
        .await?;
    let Some(inv) =
        found.filter(|i| i.redeemed_at.is_none() && i.revoked_at.is_none() && i.expires_at > now)
    else {
        drop(txn);
        limits::record_failure(state, &[addr_key]).await?;
        return Err(invalid());
    };
    // Spend the invite with a conditional update: of two concurrent redemptions exactly one
    // changes the row.
    let user_id = Uuid::new_v4();
    let spent = invite::Entity::update_many()
        .col_expr(invite::Column::RedeemedAt, Expr::value(now))
        .col_expr(invite::Column::RedeemedBy, Expr::value(user_id))
        .filter(invite::Column::Id.eq(inv.id))
        .filter(invite::Column::RedeemedAt.is_null())
        .exec(&txn)
        .await?;
    if spent.rows_affected != 1 {
        return Err(invalid());
    }
    let row = user_id.to_string();
    let f = &state.keys.fields;
    // Identifying fields move from the invite to the account, re-sealed for their new row.
    let name = inv
        .display_name_enc
        .as_deref()
        .map(|c| f.open("invites.display_name", &inv.id.to_string(), c))
        .transpose()
        .map_err(ApiError::internal)?;
    let phone = inv
        .phone_enc
        .as_deref()
        .map(|c| f.open("invites.phone", &inv.id.to_string(), c))
        .transpose()
        .map_err(ApiError::internal)?;
    user::ActiveModel {
        id: Set(user_id),
        clinic_id: Set(Some(inv.clinic_id)),
        role: Set(inv.role.clone()),
        status: Set(ACTIVE.into()),
        login_index: Set(None),
        login_enc: Set(None),
        display_name_enc: Set(name.map(|n| f.seal("users.display_name", &row, &n))),
        phone_enc: Set(phone.map(|p| f.seal("users.phone", &row, &p))),
        password_hash: Set(None),
        totp_secret_enc: Set(None),
        totp_last_step: Set(None),
        created_by: Set(Some(inv.created_by)),
        created_at: Set(now),
        deactivated_at: Set(None),
    }
    .insert(&txn)
    .await?;
    invite::Entity::update_many()
        .col_expr(
            invite::Column::DisplayNameEnc,
            Expr::value(Option::<Vec<u8>>::None),
        )
        .col_expr(
            invite::Column::PhoneEnc,
            Expr::value(Option::<Vec<u8>>::None),
        )
        .filter(invite::Column::Id.eq(inv.id))
        .exec(&txn)
        .await?;
    audit::append(
        &txn,
        now,
        AuditEvent::new("invite.redeemed")
            .clinic(Some(inv.clinic_id))
            .actor(Some(user_id), None)
            .subject(inv.id)
            .detail(json!({ "role": inv.role })),
    )
    .await?;
    let dev = register_device(&txn, state, user_id, &req.device).await?;
    let session = issue_session(&txn, state, user_id, &dev, None).await?;
    txn.commit().await?;
    Ok(session)
}

pub async fn list_users(state: &AppState, clinic_id: Uuid) -> ApiResult<Vec<UserSummary>> {
    user::Entity::find()
        .filter(user::Column::ClinicId.eq(clinic_id))
        .order_by_asc(user::Column::CreatedAt)
        .all(&state.db)
        .await?
        .iter()
        .map(|u| {
            Ok(UserSummary {
                id: u.id,
                clinic_id: u.clinic_id,
                role: role_of(u)?,
                status: status_of(u),
                created_at: u.created_at,
            })
        })
        .collect()
}

/// A user's identifying details for their clinic's staff; the view is audited.
pub async fn user_detail(
    state: &AppState,
    actor: &Principal,
    clinic_id: ClinicId,
    user_id: UserId,
) -> ApiResult<UserDetail> {
    let now = state.now();
    let txn = crate::storage::begin(&state.db).await?;
    let u = user_in_clinic(&txn, clinic_id, user_id).await?;
    let devices = device::Entity::find()
        .filter(device::Column::UserId.eq(user_id))
        .order_by_asc(device::Column::CreatedAt)
        .all(&txn)
        .await?;
    audit::append(
        &txn,
        now,
        AuditEvent::new("identity.viewed")
            .clinic(Some(clinic_id.0))
            .actor(Some(actor.user_id), Some(actor.device_id))
            .subject(user_id),
    )
    .await?;
    txn.commit().await?;
    let row = u.id.to_string();
    let f = &state.keys.fields;
    let open = |place: &str, v: &Option<Vec<u8>>| -> ApiResult<Option<String>> {
        v.as_deref()
            .map(|c| f.open(place, &row, c))
            .transpose()
            .map_err(ApiError::internal)
    };
    Ok(UserDetail {
        id: u.id,
        clinic_id: u.clinic_id,
        role: role_of(&u)?,
        status: status_of(&u),
        display_name: open("users.display_name", &u.display_name_enc)?,
        phone: open("users.phone", &u.phone_enc)?,
        created_at: u.created_at,
        deactivated_at: u.deactivated_at,
        devices: devices.iter().map(device_dto).collect(),
    })
}

/// Who may deactivate whom: HPs the people they enroll, clinic admins the clinic's staff.
fn may_manage(actor: Role, target: Role) -> bool {
    match actor {
        Role::Hp => matches!(target, Role::Peer | Role::ServiceUser),
        Role::ClinicAdmin => matches!(target, Role::Hp | Role::ClinicAdmin),
        Role::Operator => matches!(target, Role::Hp | Role::ClinicAdmin),
        _ => false,
    }
}

/// Ends every session of a device: refresh tokens revoked, access tokens refused from now.
async fn end_device_sessions(
    txn: &DatabaseTransaction,
    device_id: Uuid,
    now: chrono::DateTime<chrono::Utc>,
) -> ApiResult<()> {
    use crate::auth::entities::refresh_token;
    refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(now))
        .filter(refresh_token::Column::DeviceId.eq(device_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(txn)
        .await?;
    // Tokens carry whole-second `iat`; the next second is the first one still accepted
    // for a session started after this instant.
    let nb = now + Duration::seconds(1);
    device::Entity::update_many()
        .col_expr(device::Column::TokensNotBefore, Expr::value(nb))
        .filter(device::Column::Id.eq(device_id))
        .exec(txn)
        .await?;
    Ok(())
}

/// Revokes one device: it can no longer log in, refresh, or use its access tokens.
pub async fn revoke_device(
    state: &AppState,
    actor: &Principal,
    owner: UserId,
    device_id: DeviceId,
) -> ApiResult<Device> {
    let now = state.now();
    let txn = crate::storage::begin(&state.db).await?;
    let d = device::Entity::find_by_id(device_id)
        .one(&txn)
        .await?
        .filter(|d| d.user_id == owner)
        .ok_or_else(ApiError::not_found)?;
    let d = if d.revoked_at.is_none() {
        let mut am: device::ActiveModel = d.into();
        am.revoked_at = Set(Some(now));
        let d = am.update(&txn).await?;
        end_device_sessions(&txn, device_id.0, now).await?;
        let owner_user = user::Entity::find_by_id(owner).one(&txn).await?;
        audit::append(
            &txn,
            now,
            AuditEvent::new("device.revoked")
                .clinic(owner_user.and_then(|u| u.clinic_id))
                .actor(Some(actor.user_id), Some(actor.device_id))
                .subject(device_id)
                .detail(json!({ "owner": owner })),
        )
        .await?;
        d
    } else {
        d
    };
    txn.commit().await?;
    state.bus.publish(
        crate::bus::topics::DEVICE_REVOKED,
        device_id.to_string().as_bytes(),
    );
    Ok(device_dto(&d))
}

/// Checks that `actor` may manage `user_id` of `clinic_id`, returning the user.
pub async fn managed_user(
    state: &AppState,
    actor: &Principal,
    clinic_id: ClinicId,
    user_id: UserId,
) -> ApiResult<user::Model> {
    let u = user_in_clinic(&state.db, clinic_id, user_id).await?;
    if !may_manage(actor.role, role_of(&u)?) {
        return Err(ApiError::forbidden("your role may not manage this account"));
    }
    Ok(u)
}

/// Deactivates an account when someone leaves the programme: devices revoked, sessions
/// ended, identifying fields erased. The audit log keeps ids and actions.
pub async fn deactivate(
    state: &AppState,
    actor: &Principal,
    clinic_id: ClinicId,
    user_id: UserId,
) -> ApiResult<UserSummary> {
    let u = managed_user(state, actor, clinic_id, user_id).await?;
    if u.id == actor.user_id {
        return Err(ApiError::forbidden(
            "you cannot deactivate your own account",
        ));
    }
    let now = state.now();
    let txn = crate::storage::begin(&state.db).await?;
    let devices = device::Entity::find()
        .filter(device::Column::UserId.eq(user_id))
        .all(&txn)
        .await?;
    for d in &devices {
        if d.revoked_at.is_none() {
            device::Entity::update_many()
                .col_expr(device::Column::RevokedAt, Expr::value(now))
                .filter(device::Column::Id.eq(d.id))
                .exec(&txn)
                .await?;
        }
        end_device_sessions(&txn, d.id, now).await?;
    }
    let mut am: user::ActiveModel = u.into();
    am.status = Set(DEACTIVATED.into());
    am.deactivated_at = Set(Some(now));
    am.login_index = Set(None);
    am.login_enc = Set(None);
    am.display_name_enc = Set(None);
    am.phone_enc = Set(None);
    am.password_hash = Set(None);
    am.totp_secret_enc = Set(None);
    let u = am.update(&txn).await?;
    setup_code::Entity::delete_many()
        .filter(setup_code::Column::UserId.eq(user_id))
        .exec(&txn)
        .await?;
    audit::append(
        &txn,
        now,
        AuditEvent::new("account.deactivated")
            .clinic(Some(clinic_id.0))
            .actor(Some(actor.user_id), Some(actor.device_id))
            .subject(user_id)
            .detail(json!({ "role": u.role, "devices_revoked": devices.len() })),
    )
    .await?;
    txn.commit().await?;
    state.bus.auth_changed(user_id.0);
    for d in &devices {
        state.bus.publish(
            crate::bus::topics::DEVICE_REVOKED,
            d.id.to_string().as_bytes(),
        );
    }
    Ok(UserSummary {
        id: u.id,
        clinic_id: u.clinic_id,
        role: role_of(&u)?,
        status: status_of(&u),
        created_at: u.created_at,
    })
}

/// Changes a staff member's role between HP and clinic admin.
pub async fn change_role(
    state: &AppState,
    actor: &Principal,
    clinic_id: ClinicId,
    user_id: UserId,
    req: &RoleChange,
) -> ApiResult<UserSummary> {
    let u = managed_user(state, actor, clinic_id, user_id).await?;
    if u.status != ACTIVE {
        return Err(ApiError::new(ErrorCode::Conflict).detail("the account is deactivated"));
    }
    let new_role = Role::from(req.role);
    let old = u.role.clone();
    let now = state.now();
    let txn = crate::storage::begin(&state.db).await?;
    let mut am: user::ActiveModel = u.into();
    am.role = Set(new_role.as_str().into());
    let u = am.update(&txn).await?;
    audit::append(
        &txn,
        now,
        AuditEvent::new("account.role_changed")
            .clinic(Some(clinic_id.0))
            .actor(Some(actor.user_id), Some(actor.device_id))
            .subject(user_id)
            .detail(json!({ "from": old, "to": new_role.as_str() })),
    )
    .await?;
    txn.commit().await?;
    state.bus.auth_changed(user_id.0);
    Ok(UserSummary {
        id: u.id,
        clinic_id: u.clinic_id,
        role: new_role,
        status: status_of(&u),
        created_at: u.created_at,
    })
}

pub async fn list_devices(state: &AppState, user_id: Uuid) -> ApiResult<Vec<Device>> {
    Ok(device::Entity::find()
        .filter(device::Column::UserId.eq(user_id))
        .order_by_asc(device::Column::CreatedAt)
        .all(&state.db)
        .await?
        .iter()
        .map(device_dto)
        .collect())
}

/// Adds another device to the caller's account from a logged-in device.
pub async fn add_device(
    state: &AppState,
    actor: &Principal,
    reg: &DeviceRegistration,
) -> ApiResult<Device> {
    let txn = crate::storage::begin(&state.db).await?;
    let vk = validate::public_key("public_key", &reg.public_key)?;
    if device::Entity::find()
        .filter(device::Column::PublicKey.eq(vk.as_bytes().to_vec()))
        .one(&txn)
        .await?
        .is_some()
    {
        return Err(
            ApiError::new(ErrorCode::Conflict).detail("this device key is already registered")
        );
    }
    let d = register_device(&txn, state, actor.user_id, reg).await?;
    txn.commit().await?;
    Ok(device_dto(&d))
}

/// After a field-key rotation: re-seals every identifying field still under an older key
/// with the active key, so the old key can be retired. Returns how many values moved.
pub async fn reencrypt_fields(state: &AppState) -> ApiResult<u64> {
    let f = &state.keys.fields;
    let stale = |v: &Option<Vec<u8>>| v.as_deref().is_some_and(|c| f.is_stale(c));
    let reseal = |place: &str, row: &str, v: Option<Vec<u8>>| -> ApiResult<Option<Vec<u8>>> {
        match v {
            Some(c) if f.is_stale(&c) => {
                let plain = f.open(place, row, &c).map_err(ApiError::internal)?;
                Ok(Some(f.seal(place, row, &plain)))
            }
            other => Ok(other),
        }
    };
    let mut moved = 0u64;
    let txn = crate::storage::begin(&state.db).await?;
    for u in user::Entity::find().all(&txn).await? {
        let fields = [
            &u.login_enc,
            &u.display_name_enc,
            &u.phone_enc,
            &u.totp_secret_enc,
        ];
        let n = fields.iter().filter(|v| stale(v)).count() as u64;
        if n == 0 {
            continue;
        }
        let row = u.id.to_string();
        let mut am: user::ActiveModel = u.clone().into();
        am.login_enc = Set(reseal("users.login", &row, u.login_enc)?);
        am.display_name_enc = Set(reseal("users.display_name", &row, u.display_name_enc)?);
        am.phone_enc = Set(reseal("users.phone", &row, u.phone_enc)?);
        am.totp_secret_enc = Set(reseal("users.totp_secret", &row, u.totp_secret_enc)?);
        am.update(&txn).await?;
        moved += n;
    }
    for i in invite::Entity::find().all(&txn).await? {
        let n = [&i.display_name_enc, &i.phone_enc]
            .iter()
            .filter(|v| stale(v))
            .count() as u64;
        if n == 0 {
            continue;
        }
        let row = i.id.to_string();
        let mut am: invite::ActiveModel = i.clone().into();
        am.display_name_enc = Set(reseal("invites.display_name", &row, i.display_name_enc)?);
        am.phone_enc = Set(reseal("invites.phone", &row, i.phone_enc)?);
        am.update(&txn).await?;
        moved += n;
    }
    for s in setup_code::Entity::find().all(&txn).await? {
        if !stale(&s.pending_totp_enc) {
            continue;
        }
        let row = s.id.to_string();
        let mut am: setup_code::ActiveModel = s.clone().into();
        am.pending_totp_enc = Set(reseal(
            "setup_codes.pending_totp",
            &row,
            s.pending_totp_enc,
        )?);
        am.update(&txn).await?;
        moved += 1;
    }
    audit::append(
        &txn,
        state.now(),
        AuditEvent::new("keys.fields_reencrypted")
            .detail(json!({ "values": moved, "active_kid": f.active_kid() })),
    )
    .await?;
    txn.commit().await?;
    Ok(moved)
}
