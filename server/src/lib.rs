//! Peerbridge server library: the `peerbridge` binary and the end-to-end tests build the
//! application from here. One folder per domain (accounts, auth, clinics, audit), each with
//! its routes, service logic and entities; infrastructure (config, storage, bus, crypto,
//! error, telemetry, startup) beside them.

pub mod accounts;
pub mod audit;
pub mod auth;
pub mod bus;
pub mod cli;
pub mod clinics;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod delivery;
pub mod docs;
pub mod error;
pub mod escalation;
pub mod health;
pub mod ids;
pub mod introductions;
pub mod json;
pub mod notify;
pub mod startup;
pub mod state;
pub mod storage;
pub mod supervision;
pub mod telemetry;
pub mod webapp;
