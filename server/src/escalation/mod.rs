//! Escalation and supervision follow-up: HP escalation keys, flags with sealed excerpts,
//! routing and the ladder (`service`, `ladder`), the HP queue, crisis resources, debriefs
//! and the consultation log (`followup`).

pub mod entities;
pub mod followup;
pub mod ladder;
pub mod routes;
pub mod service;
