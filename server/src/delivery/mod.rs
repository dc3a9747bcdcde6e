//! The MLS delivery service: key packages, conversations, commits, the message log,
//! welcomes and the per-device WebSocket stream.

pub mod entities;
pub mod mls;
pub mod routes;
pub mod service;
pub mod stream;
