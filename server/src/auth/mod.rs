//! Authentication: tokens, login flows, brute-force limits and the `Auth<R>` extractor.

pub mod cache;
pub mod entities;
pub mod extract;
pub mod limits;
pub mod routes;
pub mod secrets;
pub mod service;
pub mod session;
pub mod tokens;
