//! Account-level operations beside sign-in: staff setup on a new phone, the device list and
//! revocation, push wake-up registration, invites (HPs enroll people), and supervision
//! assignments. Thin calls over the HTTP API; the session handling is in `client`.

use peerbridge_openapi::EnrolleeRole;
use peerbridge_openapi::auth::{
    DeviceRegistration, Session, StaffSetupBegin, StaffSetupComplete, TotpProvisioning,
};
use peerbridge_openapi::clinics::{InviteCreate, InviteCreated};
use peerbridge_openapi::delivery::{PushEndpoint, VapidKey, WebPushKeys};
use peerbridge_openapi::supervision::{SupervisorAssign, SupervisorAssignment};
use peerbridge_openapi::users::{Device, Me};
use reqwest::Method;
use uuid::Uuid;

use crate::client::{PeerbridgeClient, SessionInfo};
use crate::error::{Result, SdkError};

impl PeerbridgeClient {
    /// First step of a staff member's setup with the one-time setup code from their clinic:
    /// chooses the password and returns the authenticator secret (show `otpauth_uri` as a QR
    /// code). Needs no session.
    pub async fn begin_staff_setup(
        &self,
        setup_code: &str,
        password: &str,
    ) -> Result<TotpProvisioning> {
        let body = StaffSetupBegin {
            setup_code: setup_code.to_owned(),
            password: password.to_owned(),
        };
        self.api
            .call(Method::POST, "/v1/staff/setup", None, Some(&body))
            .await?
            .json()
    }

    /// Second step: proves the authenticator works and registers this device as the staff
    /// member's first; the session starts.
    pub async fn complete_staff_setup(
        &self,
        setup_code: &str,
        totp_code: &str,
        device_label: &str,
    ) -> Result<SessionInfo> {
        if self.session()?.is_some() {
            return Err(SdkError::InvalidInput(
                "this device is already enrolled".into(),
            ));
        }
        let body = StaffSetupComplete {
            setup_code: setup_code.to_owned(),
            totp_code: totp_code.to_owned(),
            device: DeviceRegistration {
                public_key: self.device_public_key(),
                label: device_label.to_owned(),
            },
        };
        let s: Session = self
            .api
            .call(Method::POST, "/v1/staff/setup/complete", None, Some(&body))
            .await?
            .json()?;
        self.start_session(s)
    }

    /// Who the server says this session is.
    pub async fn me(&self) -> Result<Me> {
        self.get("/v1/me").await
    }

    /// The account's devices, revoked ones included (with `revoked_at`).
    pub async fn devices(&self) -> Result<Vec<Device>> {
        self.get("/v1/me/devices").await
    }

    /// Registers another phone of this account by its public key (shown by that phone's
    /// [`PeerbridgeClient::device_public_key`]); that phone then calls `link_device` with the
    /// returned id.
    pub async fn add_device(&self, public_key: &str, label: &str) -> Result<Device> {
        self.authed(
            Method::POST,
            "/v1/me/devices",
            Some(&DeviceRegistration {
                public_key: public_key.to_owned(),
                label: label.to_owned(),
            }),
        )
        .await?
        .json()
    }

    /// Revokes one of the account's devices (a lost phone): its sessions end, its stream
    /// closes and it can no longer join or read new messages. Revoking this device signs it
    /// out for good.
    pub async fn revoke_device(&self, device_id: Uuid) -> Result<()> {
        self.authed::<()>(Method::DELETE, &format!("/v1/me/devices/{device_id}"), None)
            .await?;
        Ok(())
    }

    /// Registers where the server sends content-free wake-ups for this device (an HTTPS URL
    /// of one of the deployment's allowed push gateways, carrying the FCM/APNs token).
    pub async fn register_push_endpoint(&self, url: &str) -> Result<()> {
        self.authed(
            Method::PUT,
            "/v1/me/push-endpoint",
            Some(&PushEndpoint {
                url: url.to_owned(),
                keys: None,
            }),
        )
        .await?;
        Ok(())
    }

    /// The server's VAPID public key (base64url of the uncompressed P-256 point): the
    /// `applicationServerKey` a browser subscribes with.
    pub async fn vapid_public_key(&self) -> Result<String> {
        let k: VapidKey = self.get("/v1/push/vapid-key").await?;
        Ok(k.public_key)
    }

    /// Registers a browser's Web Push subscription (`PushSubscription.toJSON()`: its
    /// `endpoint` and the base64url `keys.p256dh` and `keys.auth`) as this device's
    /// wake-up target; wake-ups are then encrypted to it and say only their kind.
    pub async fn register_web_push(&self, endpoint: &str, p256dh: &str, auth: &str) -> Result<()> {
        self.authed(
            Method::PUT,
            "/v1/me/push-endpoint",
            Some(&PushEndpoint {
                url: endpoint.to_owned(),
                keys: Some(WebPushKeys {
                    p256dh: p256dh.to_owned(),
                    auth: auth.to_owned(),
                }),
            }),
        )
        .await?;
        Ok(())
    }

    /// Stops wake-ups for this device.
    pub async fn clear_push_endpoint(&self) -> Result<()> {
        self.authed::<()>(Method::DELETE, "/v1/me/push-endpoint", None)
            .await?;
        Ok(())
    }

    /// An HP invites a service user or a peer of their clinic; the one-time code (and its QR
    /// payload, with the clinic's escalation key this device pinned) is shown once, to hand
    /// over in person.
    pub async fn create_invite(
        &self,
        clinic: Uuid,
        role: EnrolleeRole,
        display_name: Option<String>,
        phone: Option<String>,
    ) -> Result<InviteCreated> {
        let mut created: InviteCreated = self
            .authed(
                Method::POST,
                &format!("/v1/clinics/{clinic}/invites"),
                Some(&InviteCreate {
                    role,
                    display_name,
                    phone,
                    expires_in_hours: None,
                }),
            )
            .await?
            .json()?;
        // The link carries the clinic's escalation key as this device trusts it. The code
        // exists now and is shown only once: if the key cannot be looked up, the link goes
        // without it (the new device then pins on first use) rather than the code being lost.
        match self.with_authority(clinic, &created.qr_payload).await {
            Ok(link) => created.qr_payload = link,
            Err(e) => tracing::warn!(code = e.code(), "invite link without the clinic key"),
        }
        Ok(created)
    }

    /// Makes an HP of the clinic one of a peer's supervisors (they then receive the peer's
    /// flags and debrief requests, and may join the peer's supervision conversation).
    pub async fn assign_supervisor(
        &self,
        clinic: Uuid,
        peer: Uuid,
        hp: Uuid,
    ) -> Result<SupervisorAssignment> {
        self.authed(
            Method::POST,
            &format!("/v1/clinics/{clinic}/peers/{peer}/supervisors"),
            Some(&SupervisorAssign { hp_id: hp }),
        )
        .await?
        .json()
    }

    /// A peer's supervisors.
    pub async fn supervisors(&self, clinic: Uuid, peer: Uuid) -> Result<Vec<SupervisorAssignment>> {
        self.get(&format!("/v1/clinics/{clinic}/peers/{peer}/supervisors"))
            .await
    }

    /// The caller's own supervision assignments: a peer sees their supervisors, an HP the
    /// peers they supervise.
    pub async fn my_supervision(&self) -> Result<Vec<SupervisorAssignment>> {
        self.get("/v1/me/supervision").await
    }
}
