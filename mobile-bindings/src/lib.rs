//! Peerbridge app SDK. It will own networking (HTTP + WebSocket) and export the client core
//! to Android and iOS with UniFFI (see the mobile-bindings issue). For now it re-exports the
//! pieces an app needs to enroll: the device identity and the API contract.

pub use peerbridge_mls::DeviceIdentity;
pub use peerbridge_openapi as api;
