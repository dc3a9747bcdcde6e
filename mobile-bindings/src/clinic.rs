//! The HP console's clinic administration: clinics, the clinic's users (listing, the audited
//! identity read, deactivation, role changes), invites (listing, revocation), staff accounts,
//! and the clinic's escalation settings, crisis resources and consultation report. Thin calls
//! over the HTTP API; the server checks every role and clinic scope.

use chrono::NaiveDate;
use peerbridge_openapi::StaffRole;
use peerbridge_openapi::clinics::{Clinic, Invite, StaffCreate, StaffCreated};
use peerbridge_openapi::escalation::{ConsultationReport, CrisisResourceList, EscalationSettings};
use peerbridge_openapi::users::{RoleChange, UserDetail, UserSummary};
use reqwest::Method;
use uuid::Uuid;

use crate::client::PeerbridgeClient;
use crate::error::Result;

impl PeerbridgeClient {
    /// Every clinic (operators).
    pub async fn clinics(&self) -> Result<Vec<Clinic>> {
        self.get("/v1/clinics").await
    }

    /// One clinic (its own staff and users, and operators).
    pub async fn clinic(&self, clinic: Uuid) -> Result<Clinic> {
        self.get(&format!("/v1/clinics/{clinic}")).await
    }

    /// The clinic's users without identifying fields (the clinic's staff).
    pub async fn clinic_users(&self, clinic: Uuid) -> Result<Vec<UserSummary>> {
        self.get(&format!("/v1/clinics/{clinic}/users")).await
    }

    /// One user with name, phone and devices. The server audits every such read.
    pub async fn clinic_user(&self, clinic: Uuid, user: Uuid) -> Result<UserDetail> {
        self.get(&format!("/v1/clinics/{clinic}/users/{user}"))
            .await
    }

    /// Deactivates an account (HPs: service users and peers; clinic admins: staff): its
    /// devices are revoked, its sessions end and its identifying fields are erased.
    pub async fn deactivate_user(&self, clinic: Uuid, user: Uuid) -> Result<UserSummary> {
        self.authed::<()>(
            Method::POST,
            &format!("/v1/clinics/{clinic}/users/{user}/deactivate"),
            None,
        )
        .await?
        .json()
    }

    /// Changes a staff member's role (clinic admins).
    pub async fn change_role(
        &self,
        clinic: Uuid,
        user: Uuid,
        role: StaffRole,
    ) -> Result<UserSummary> {
        self.authed(
            Method::PUT,
            &format!("/v1/clinics/{clinic}/users/{user}/role"),
            Some(&RoleChange { role }),
        )
        .await?
        .json()
    }

    /// The clinic's invites (never their codes).
    pub async fn invites(&self, clinic: Uuid) -> Result<Vec<Invite>> {
        self.get(&format!("/v1/clinics/{clinic}/invites")).await
    }

    /// Revokes a pending invite; its code no longer enrolls anyone.
    pub async fn revoke_invite(&self, clinic: Uuid, invite: Uuid) -> Result<Invite> {
        self.authed::<()>(
            Method::DELETE,
            &format!("/v1/clinics/{clinic}/invites/{invite}"),
            None,
        )
        .await?
        .json()
    }

    /// Creates a staff account (clinic admins and operators); the person finishes setup
    /// with the returned one-time setup code, shown once.
    pub async fn create_staff(&self, clinic: Uuid, staff: &StaffCreate) -> Result<StaffCreated> {
        self.authed(
            Method::POST,
            &format!("/v1/clinics/{clinic}/staff"),
            Some(staff),
        )
        .await?
        .json()
    }

    /// The clinic's escalation roster and deadlines.
    pub async fn escalation_settings(&self, clinic: Uuid) -> Result<EscalationSettings> {
        self.get(&format!("/v1/clinics/{clinic}/escalation-settings"))
            .await
    }

    /// Replaces the clinic's escalation roster and deadlines.
    pub async fn set_escalation_settings(
        &self,
        clinic: Uuid,
        settings: &EscalationSettings,
    ) -> Result<EscalationSettings> {
        self.authed(
            Method::PUT,
            &format!("/v1/clinics/{clinic}/escalation-settings"),
            Some(settings),
        )
        .await?
        .json()
    }

    /// Replaces the clinic's crisis resources (read by everyone with `crisis_resources`).
    pub async fn set_crisis_resources(
        &self,
        clinic: Uuid,
        resources: &CrisisResourceList,
    ) -> Result<CrisisResourceList> {
        self.authed(
            Method::PUT,
            &format!("/v1/clinics/{clinic}/crisis-resources"),
            Some(resources),
        )
        .await?
        .json()
    }

    /// Consultations per peer supporter from `from` to `to` (inclusive), for compensation
    /// (clinic admins; audited).
    pub async fn consultation_report(
        &self,
        clinic: Uuid,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<ConsultationReport> {
        self.get(&format!(
            "/v1/clinics/{clinic}/consultation-report?from={from}&to={to}"
        ))
        .await
    }

    /// The same report as CSV text, to save as a file.
    pub async fn consultation_report_csv(
        &self,
        clinic: Uuid,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<String> {
        self.authed::<()>(
            Method::GET,
            &format!("/v1/clinics/{clinic}/consultation-report?from={from}&to={to}&format=csv"),
            None,
        )
        .await?
        .text()
    }
}
