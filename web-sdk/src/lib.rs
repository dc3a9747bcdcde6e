//! Peerbridge for the browser (issue 14): the SDK the phones use (`peerbridge-mobile`) and
//! the client core under it, exported to JavaScript with wasm-bindgen. This layer is as thin
//! as `ffi.rs` is for Kotlin and Swift: each method is one SDK call, then the store's
//! committed batches are written to IndexedDB before the promise resolves (`idb`), so a tab
//! closed at any moment leaves the store at the end of some operation.
//!
//! On native targets the crate is empty.

#[cfg(target_arch = "wasm32")]
mod idb;
#[cfg(target_arch = "wasm32")]
mod ops;
#[cfg(target_arch = "wasm32")]
mod web;

#[cfg(target_arch = "wasm32")]
pub use web::PeerbridgeWeb;
