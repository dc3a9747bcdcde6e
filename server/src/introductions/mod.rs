//! Matching and introductions: peer profiles, needs, suggestions (`profiles`, `suggest`),
//! pseudonymous introductions with consents, blocks and boundary reports (`service`).
//! Parties see aliases only; the delivery service asks `service` who may be in an
//! introduction's group and whether messages may flow.

pub mod entities;
pub mod profiles;
pub mod routes;
pub mod service;
pub mod suggest;
