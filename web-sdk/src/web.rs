//! The exported class: opening an account's store (with a raw key, or with the key kept
//! wrapped by `js/keystore.js`), the event loop that hands events to a JS callback, and the
//! detector. The SDK operations themselves are in `ops.rs`, one line each. Every operation
//! resolves after its store writes are in IndexedDB. Errors are JS `Error`s whose `code` is
//! the SDK's flat code (the Kotlin/Swift `SdkError` variants), plus `account_in_use`
//! (another tab holds the account), `passcode_required`, and `storage` when IndexedDB
//! refuses a write (the client must then be reopened: memory would be ahead of the disk).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_util::future::{AbortHandle, abortable};
use peerbridge_mls::{Journal, MemoryBackend};
use peerbridge_mobile::{
    BeforeSend, ConnectionState, Event, PeerbridgeClient, SdkError, SdkOptions,
};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, future_to_promise, spawn_local};

use crate::idb::Persistence;

fn error(code: &str, detail: &str) -> JsValue {
    let e = js_sys::Error::new(detail);
    let _ = js_sys::Reflect::set(&e, &"code".into(), &code.into());
    e.into()
}

fn sdk_error(e: SdkError) -> JsValue {
    error(e.code(), &e.to_string())
}

fn to_js<T: Serialize>(v: &T) -> Result<JsValue, JsValue> {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| error("internal", &e.to_string()))
}

/// The store's way to disk: the journal of committed batches and IndexedDB. Shared by the
/// client's write-ahead hook (flushed before every request) and the end of each operation.
struct Disk {
    journal: Journal,
    idb: Persistence,
    /// One flush at a time: an operation whose batches an earlier flush took resolves only
    /// after that flush's IndexedDB transaction completed.
    flushing: tokio::sync::Mutex<()>,
    /// Set when a flush failed: memory is ahead of IndexedDB, so nothing more may run.
    broken: Cell<bool>,
}

impl Disk {
    async fn flush(&self) -> Result<(), String> {
        let _one_at_a_time = self.flushing.lock().await;
        if self.broken.get() {
            return Err("a write to IndexedDB failed; open the account again".into());
        }
        if let Err(e) = self.idb.flush(self.journal.drain()).await {
            self.broken.set(true);
            return Err(e);
        }
        Ok(())
    }
}

pub(crate) struct Inner {
    client: PeerbridgeClient,
    disk: Rc<Disk>,
    /// The running event loop (`start`), with its callbacks for `resume`.
    events: RefCell<EventLoop>,
    /// Releases the account's Web Lock when dropped (the page closing releases it too).
    _lock: Option<LockGuard>,
}

#[derive(Default)]
struct EventLoop {
    on_events: Option<js_sys::Function>,
    on_stopped: Option<js_sys::Function>,
    running: Option<AbortHandle>,
}

/// The release handle of a held Web Lock: dropping it lets the next tab in, also when
/// `open` fails after taking the lock (a wrong key must not lock the account).
struct LockGuard(js_sys::Function);

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = self.0.call0(&JsValue::NULL);
    }
}

impl Inner {
    pub(crate) fn client(&self) -> &PeerbridgeClient {
        &self.client
    }

    async fn flush(&self) -> Result<(), JsValue> {
        self.disk.flush().await.map_err(|e| error("storage", &e))
    }

    /// Persists an SDK call's writes, then returns its value as JS.
    pub(crate) async fn run<T: Serialize>(
        &self,
        result: peerbridge_mobile::Result<T>,
    ) -> Result<JsValue, JsValue> {
        // Writes of a failed call were discarded by the store; a partial step never lands.
        self.flush().await?;
        to_js(&result.map_err(sdk_error)?)
    }
}

/// How long `open` waits for another tab (or the page being reloaded) to let go.
const LOCK_WAIT_MS: u32 = 3000;

/// Holds `peerbridge-<account>` in the Web Locks API while the client lives, so a second tab
/// of the same account defers instead of writing the same store. Waits up to
/// [`LOCK_WAIT_MS`] (a reloading page releases its lock a moment after the new one starts).
/// `None` where the API is missing (the store is then unguarded, as in a one-tab browser).
async fn hold_lock(account: &str) -> Result<Option<LockGuard>, JsValue> {
    use futures_util::future::{Either, select};
    let global = js_sys::global();
    let navigator = js_sys::Reflect::get(&global, &"navigator".into())?;
    let locks = js_sys::Reflect::get(&navigator, &"locks".into())?;
    if locks.is_undefined() {
        return Ok(None);
    }
    let request: js_sys::Function = js_sys::Reflect::get(&locks, &"request".into())?.into();
    // The lock is held until the promise the callback returns settles; its resolver is the
    // release handle.
    let (granted_tx, granted_rx) = futures_channel::oneshot::channel::<js_sys::Function>();
    let granted_tx = Rc::new(std::cell::RefCell::new(Some(granted_tx)));
    let callback = Closure::once_into_js(move |_lock: JsValue| -> js_sys::Promise {
        let mut release = None;
        let held = js_sys::Promise::new(&mut |resolve, _reject| release = Some(resolve));
        if let (Some(tx), Some(release)) = (granted_tx.borrow_mut().take(), release) {
            let _ = tx.send(release);
        }
        held
    });
    let options = js_sys::Object::new();
    let abort_signal = js_sys::Reflect::get(&global, &"AbortSignal".into())?;
    let timeout: js_sys::Function = js_sys::Reflect::get(&abort_signal, &"timeout".into())?.into();
    let signal = timeout.call1(&abort_signal, &LOCK_WAIT_MS.into())?;
    js_sys::Reflect::set(&options, &"signal".into(), &signal)?;
    let name: JsValue = format!("peerbridge-{account}").into();
    let pending: js_sys::Promise = request.call3(&locks, &name, &options, &callback)?.into();
    // `pending` settles only after release, or rejects when the wait times out.
    match select(granted_rx, JsFuture::from(pending)).await {
        Either::Left((Ok(release), _)) => Ok(Some(LockGuard(release))),
        _ => Err(error(
            "account_in_use",
            "this account is open in another tab; close it there first",
        )),
    }
}

/// One device's Peerbridge client in the browser.
#[wasm_bindgen]
pub struct PeerbridgeWeb {
    inner: Rc<Inner>,
}

impl PeerbridgeWeb {
    pub(crate) fn inner(&self) -> Rc<Inner> {
        self.inner.clone()
    }
}

#[wasm_bindgen(module = "/js/keystore.js")]
extern "C" {
    #[wasm_bindgen(js_name = storageKey, catch)]
    async fn keystore_storage_key(
        account: &str,
        passcode: Option<String>,
    ) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = changePasscode, catch)]
    async fn keystore_change_passcode(
        account: &str,
        current: Option<String>,
        next: Option<String>,
    ) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = protection, catch)]
    async fn keystore_protection(account: &str) -> Result<JsValue, JsValue>;
}

/// Opens the store with the account's lock already held.
async fn open_store(
    server_url: &str,
    account: &str,
    storage_key: &[u8],
    lock: Option<LockGuard>,
) -> Result<PeerbridgeWeb, JsValue> {
    let idb = Persistence::open(account)
        .await
        .map_err(|e| error("storage", &e))?;
    let image = idb.load().await.map_err(|e| error("storage", &e))?;
    let (backend, journal) = MemoryBackend::load(image.meta, image.rows);
    let disk = Rc::new(Disk {
        journal,
        idb,
        flushing: tokio::sync::Mutex::new(()),
        broken: Cell::new(false),
    });
    let ahead = disk.clone();
    let options = SdkOptions {
        before_send: Some(BeforeSend(Rc::new(move || {
            let disk = ahead.clone();
            Box::pin(async move { disk.flush().await })
        }))),
        ..SdkOptions::default()
    };
    let client =
        PeerbridgeClient::open_with_backend(server_url, Box::new(backend), storage_key, options)
            .map_err(sdk_error)?;
    let inner = Rc::new(Inner {
        client,
        disk,
        events: RefCell::new(EventLoop::default()),
        _lock: lock,
    });
    inner.flush().await?;
    Ok(PeerbridgeWeb { inner })
}

fn call(f: &js_sys::Function, v: &JsValue) {
    // A callback that throws must not end the loop (the events were handed over).
    if f.call1(&JsValue::NULL, v).is_err() {
        web_sys::console::warn_1(&"peerbridge: an event callback threw".into());
    }
}

#[wasm_bindgen]
impl PeerbridgeWeb {
    /// Opens (or creates) the account's store from IndexedDB with a 32-byte key the caller
    /// keeps (never store it in the clear beside the data; `openOnThisBrowser` keeps it
    /// wrapped). A different key than the store was created with fails with
    /// `wrong_storage_key` and changes nothing. Resolves to the client.
    #[wasm_bindgen(unchecked_return_type = "Promise<PeerbridgeWeb>")]
    pub fn open(server_url: String, account: String, storage_key: Vec<u8>) -> js_sys::Promise {
        future_to_promise(async move {
            let lock = hold_lock(&account).await?;
            Ok(open_store(&server_url, &account, &storage_key, lock)
                .await?
                .into())
        })
    }

    /// Opens (or creates) the account's store with a storage key this browser keeps wrapped
    /// (`js/keystore.js`): by a non-extractable browser key when `passcode` is null, or by a
    /// key derived from the passcode. Once created, the account's protection decides: a
    /// passcode account without a passcode is `passcode_required`, a wrong passcode
    /// `wrong_storage_key`.
    #[wasm_bindgen(js_name = openOnThisBrowser, unchecked_return_type = "Promise<PeerbridgeWeb>")]
    pub fn open_on_this_browser(
        server_url: String,
        account: String,
        passcode: Option<String>,
    ) -> js_sys::Promise {
        future_to_promise(async move {
            let lock = hold_lock(&account).await?;
            let key = keystore_storage_key(&account, passcode).await?;
            let key = js_sys::Uint8Array::new(&key).to_vec();
            Ok(open_store(&server_url, &account, &key, lock).await?.into())
        })
    }

    /// Sets (`current` null), changes, or removes (`next` null) the passcode that protects
    /// the account's storage key on this browser; the store itself is not rewritten.
    #[wasm_bindgen(js_name = changePasscode, unchecked_return_type = "Promise<void>")]
    pub fn change_passcode(
        account: String,
        current: Option<String>,
        next: Option<String>,
    ) -> js_sys::Promise {
        future_to_promise(async move {
            keystore_change_passcode(&account, current, next).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// How the account's storage key is protected here: `"device"`, `"passcode"`, or null.
    #[wasm_bindgen(unchecked_return_type = "Promise<\"device\" | \"passcode\" | null>")]
    pub fn protection(account: String) -> js_sys::Promise {
        future_to_promise(async move { keystore_protection(&account).await })
    }

    /// Reads `text` with the on-device risk detector (bokmål, nynorsk, English): a
    /// suggestion or null. Nothing leaves the device; a person decides.
    #[wasm_bindgen(js_name = detectRisk, unchecked_return_type = "RiskSuggestion | null")]
    pub fn detect_risk(text: String) -> Result<JsValue, JsValue> {
        to_js(&peerbridge_mobile::suggest_risk(&text))
    }

    /// The detector's integer head scores for `text`, in the order of its weights file
    /// (what `detectRisk` decides from): the browser build is checked against the native
    /// build's scores of the held-out corpus with it.
    #[wasm_bindgen(js_name = detectorScores)]
    pub fn detector_scores(text: String) -> Vec<i32> {
        peerbridge_mls::detector::scores(&text).to_array().to_vec()
    }

    /// This device's Ed25519 public key (unpadded base64url).
    #[wasm_bindgen(js_name = devicePublicKey)]
    pub fn device_public_key(&self) -> String {
        self.inner.client.device_public_key()
    }

    /// Starts receiving: `onEvents` gets every batch of new events (already stored) until
    /// `suspend()`; `onStopped` gets the error when the loop needs the app (the session
    /// ended for good, or storage failed), after which `resume()` starts it again.
    /// Replaces earlier callbacks.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn start(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(events: Event[]) => void")]
        on_events: js_sys::Function,
        #[wasm_bindgen(unchecked_param_type = "(error: Error & { code: string }) => void")]
        on_stopped: js_sys::Function,
    ) -> js_sys::Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            stop_loop(&inner).await?;
            {
                let mut ev = inner.events.borrow_mut();
                ev.on_events = Some(on_events);
                ev.on_stopped = Some(on_stopped);
            }
            start_loop(&inner);
            Ok(JsValue::UNDEFINED)
        })
    }

    /// The page goes to the background (or locks): the loop stops, the socket closes, the
    /// state is in IndexedDB, and `onEvents` hears `suspended`. Nothing is lost: the server
    /// keeps messages until this device acknowledges them.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn suspend(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            stop_loop(&inner).await?;
            let on_events = inner.events.borrow().on_events.clone();
            if let Some(f) = on_events {
                call(
                    &f,
                    &to_js(&vec![Event::ConnectionChanged {
                        state: ConnectionState::Suspended,
                    }])?,
                );
            }
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Starts the loop again after `suspend()` or a stop (no-op while running or before
    /// `start`); the first notice triggers a full sync.
    pub fn resume(&self) {
        start_loop(&self.inner);
    }
}

/// Stops the loop (if running), closes the socket and writes what it left.
async fn stop_loop(inner: &Rc<Inner>) -> Result<(), JsValue> {
    let running = inner.events.borrow_mut().running.take();
    if let Some(handle) = running {
        handle.abort();
    }
    inner.client.close_stream().await;
    inner.flush().await
}

fn start_loop(inner: &Rc<Inner>) {
    let (on_events, on_stopped) = {
        let ev = inner.events.borrow();
        if ev.running.as_ref().is_some_and(|h| !h.is_aborted()) {
            return;
        }
        match (&ev.on_events, &ev.on_stopped) {
            (Some(a), Some(b)) => (a.clone(), b.clone()),
            _ => return,
        }
    };
    let me = inner.clone();
    let (task, handle) = abortable(async move {
        loop {
            let r = me.client.next_events().await;
            let r = me.run(r).await;
            match r {
                Ok(events) => call(&on_events, &events),
                Err(e) => {
                    // The loop ends; `resume` may start it again.
                    me.events.borrow_mut().running = None;
                    call(&on_stopped, &e);
                    return;
                }
            }
        }
    });
    inner.events.borrow_mut().running = Some(handle);
    spawn_local(async move {
        let _ = task.await;
    });
}
