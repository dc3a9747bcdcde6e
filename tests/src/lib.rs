//! Harness for the end-to-end suites: fresh databases on SQLite and PostgreSQL, the real
//! application started on port 0 with a clock the test controls, the real `peerbridge`
//! binary for process-level tests, and HTTP helpers that read as the steps of a scenario.
//!
//! PostgreSQL comes from `PB_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! and Redis from `PB_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`). Outside CI an
//! unreachable service skips that backend with a notice; with `CI` set it fails the test.

pub mod api;
pub mod backends;
pub mod binary;
pub mod deployment;
pub mod gateway;
pub mod lossy;
pub mod mls_device;
pub mod relay;

pub use api::{Client, Response, Staff};
pub use backends::{Backend, TestApp, TestDb, backends, redis_url};
