//! Escalation and supervision follow-up: HP escalation keys and the clinic authority that
//! certifies them (`authority`), flags with sealed excerpts,
//! routing and the ladder (`service`, `ladder`), the clinic's clock for shifts and working
//! days (`calendar`), the HP queue, crisis resources, debriefs and the consultation log
//! (`followup`), and the figures an operator alerts on (`metrics`).

pub mod authority;
pub mod calendar;
pub mod entities;
pub mod followup;
pub mod ladder;
pub mod metrics;
pub mod routes;
pub mod service;
