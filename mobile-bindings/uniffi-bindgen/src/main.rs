//! `uniffi-bindgen` pinned to the workspace's UniFFI version, so generated bindings always
//! match the scaffolding compiled into `libpeerbridge_mobile`.

fn main() {
    uniffi::uniffi_bindgen_main();
}
