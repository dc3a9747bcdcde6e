//! Accounts: users bound to a clinic and a role, their devices, invites that enroll service
//! users and peers, staff accounts and their lifecycle.

pub mod entities;
pub mod routes;
pub mod service;
pub mod validate;
