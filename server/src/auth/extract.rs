//! Authentication in handler signatures: `Auth<Hp>` in a handler's arguments means "a live
//! device of an active HP presented a valid access token". The role set is a type, so who may
//! call an endpoint is read off its signature.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use peerbridge_openapi::{ErrorCode, Role};
use sea_orm::EntityTrait;
use uuid::Uuid;

use super::cache::Cached;
use crate::accounts::entities::{device, user};
use crate::error::ApiError;
use crate::state::AppState;

/// The authenticated caller, as the database says now (not as the token claimed).
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: Uuid,
    pub device_id: Uuid,
    pub clinic_id: Option<Uuid>,
    pub role: Role,
}

impl Principal {
    /// 403 unless the caller belongs to `clinic` (operators belong to none, and are allowed
    /// only where the role set says so).
    pub fn require_clinic(&self, clinic: Uuid) -> Result<(), ApiError> {
        if self.role == Role::Operator || self.clinic_id == Some(clinic) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "this resource belongs to another clinic",
            ))
        }
    }
}

/// A set of roles allowed to call an endpoint.
pub trait RoleSet: 'static {
    const ROLES: &'static [Role];
}

macro_rules! role_set {
    ($(#[$doc:meta])* $name:ident = [$($role:ident),+]) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name;
        impl RoleSet for $name {
            const ROLES: &'static [Role] = &[$(Role::$role),+];
        }
    };
}

role_set!(
    /// Any authenticated user.
    AnyRole = [Operator, ClinicAdmin, Hp, Peer, ServiceUser]
);
role_set!(
    /// The deployment operator.
    Operator = [Operator]
);
role_set!(
    /// Operator or a clinic admin (managing staff).
    StaffManager = [Operator, ClinicAdmin]
);
role_set!(
    /// A clinic admin.
    ClinicAdmin = [ClinicAdmin]
);
role_set!(
    /// A healthcare professional.
    Hp = [Hp]
);
role_set!(
    /// An HP or a clinic admin: clinic staff.
    ClinicStaff = [Hp, ClinicAdmin]
);
role_set!(
    /// A peer supporter.
    PeerSupporter = [Peer]
);
role_set!(
    /// A party of an introduction: a service user or a peer supporter.
    Party = [Peer, ServiceUser]
);

/// Extractor: a verified caller whose role is in `R`.
#[derive(Debug)]
pub struct Auth<R: RoleSet> {
    pub principal: Principal,
    _roles: PhantomData<R>,
}

impl<R: RoleSet> std::ops::Deref for Auth<R> {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.principal
    }
}

impl<R: RoleSet> FromRequest for Auth<R> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer_token(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal(anyhow::anyhow!("no state")))?;
            let token = token.ok_or_else(ApiError::unauthenticated)?;
            let principal = authenticate(&state, &token).await?;
            if !R::ROLES.contains(&principal.role) {
                return Err(ApiError::forbidden("your role may not do this"));
            }
            Ok(Auth {
                principal,
                _roles: PhantomData,
            })
        })
    }
}

/// The token of an `Authorization: Bearer …` header, if there is one.
pub fn bearer_token(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_owned())
}

/// Verifies a bearer token and finds the live device and active user behind it: from this
/// replica's [`AuthCache`](super::cache::AuthCache) when it read them moments ago, else from
/// the database.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let now = state.now();
    let claims = state.tokens.verify_access(token, now).map_err(|e| {
        state.metrics.auth_failures.inc();
        ApiError::unauthenticated().detail(e.to_string())
    })?;
    let cache = state.bus.auth_cache();
    let facts = cache
        .read_through(&cache.devices, claims.did, read_facts(state, claims.did))
        .await?;
    if facts.user_id != claims.sub {
        return Err(ApiError::unauthenticated().detail("unknown device"));
    }
    if let Some(nb) = facts.tokens_not_before_ms
        && claims.issued_ms() < nb
    {
        return Err(ApiError::unauthenticated().detail("this session has ended"));
    }
    Ok(Principal {
        user_id: facts.user_id,
        device_id: claims.did,
        clinic_id: facts.clinic_id,
        role: facts.role,
    })
}

/// What the database says about `device` now, if it may be used at all: not revoked, and its
/// account active.
async fn read_facts(state: &AppState, device_id: Uuid) -> Result<Cached, ApiError> {
    let dev = device::Entity::find_by_id(device_id)
        .one(&state.read)
        .await?
        .ok_or_else(|| ApiError::unauthenticated().detail("unknown device"))?;
    if dev.revoked_at.is_some() {
        return Err(ApiError::unauthenticated().detail("this device has been revoked"));
    }
    let u = user::Entity::find_by_id(dev.user_id)
        .one(&state.read)
        .await?
        .ok_or_else(|| ApiError::unauthenticated().detail("unknown account"))?;
    if u.status != "active" {
        return Err(ApiError::new(ErrorCode::AccountInactive));
    }
    let role = Role::parse(&u.role)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("stored role is invalid")))?;
    Ok(Cached {
        user_id: u.id,
        clinic_id: u.clinic_id,
        role,
        tokens_not_before_ms: dev.tokens_not_before.map(|t| t.timestamp_millis()),
    })
}

/// The client's network address, for per-address limits. `X-Forwarded-For` is believed only
/// when the deployment says a trusted proxy sets it.
#[derive(Debug, Clone)]
pub struct ClientAddr(pub String);

impl FromRequest for ClientAddr {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let trust = req
            .app_data::<web::Data<AppState>>()
            .map(|s| s.config.trust_forwarded_for)
            .unwrap_or(false);
        let addr = if trust {
            req.connection_info()
                .realip_remote_addr()
                .map(|s| s.to_owned())
        } else {
            req.peer_addr().map(|a| a.ip().to_string())
        };
        std::future::ready(Ok(ClientAddr(addr.unwrap_or_else(|| "unknown".into()))))
    }
}
