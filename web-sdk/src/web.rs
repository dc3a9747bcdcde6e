//! The exported class. One method per SDK operation; each resolves after the operation's
//! store writes are in IndexedDB. Errors are JS `Error`s whose `code` is the SDK's flat code
//! (the Kotlin/Swift `SdkError` variants), plus `account_in_use` (another tab holds the
//! account) and `storage` when IndexedDB refuses a write (the client must then be reopened:
//! memory would be ahead of the disk).

use std::cell::Cell;
use std::rc::Rc;

use peerbridge_mls::{Journal, MemoryBackend};
use peerbridge_mobile::{PeerbridgeClient, SdkError, SdkOptions};
use serde::Serialize;
use uuid::Uuid;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

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

fn uuid(s: &str) -> Result<Uuid, JsValue> {
    Uuid::parse_str(s).map_err(|_| error("invalid_input", "not a UUID"))
}

struct Inner {
    client: PeerbridgeClient,
    journal: Journal,
    disk: Persistence,
    /// Set when a flush failed: memory is ahead of IndexedDB, so nothing more may run.
    broken: Cell<bool>,
    /// Releases the account's Web Lock when dropped (the page closing releases it too).
    _lock: Option<LockGuard>,
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
    async fn flush(&self) -> Result<(), JsValue> {
        if self.broken.get() {
            return Err(error(
                "storage",
                "a write to IndexedDB failed; open the account again",
            ));
        }
        if let Err(e) = self.disk.flush(self.journal.drain()).await {
            self.broken.set(true);
            return Err(error("storage", &e));
        }
        Ok(())
    }

    /// Runs one SDK call, persists its writes, returns its value as JS.
    async fn run<T: Serialize>(
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
    match select(granted_rx, wasm_bindgen_futures::JsFuture::from(pending)).await {
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

#[wasm_bindgen]
impl PeerbridgeWeb {
    /// Opens (or creates) the account's store from IndexedDB. `storageKey` is 32 bytes; a
    /// different key than the store was created with fails with `wrong_storage_key` and
    /// changes nothing. Resolves to the client.
    pub fn open(server_url: String, account: String, storage_key: Vec<u8>) -> js_sys::Promise {
        future_to_promise(async move {
            let lock = hold_lock(&account).await?;
            let disk = Persistence::open(&account)
                .await
                .map_err(|e| error("storage", &e))?;
            let image = disk.load().await.map_err(|e| error("storage", &e))?;
            let (backend, journal) = MemoryBackend::load(image.meta, image.rows);
            let client = PeerbridgeClient::open_with_backend(
                &server_url,
                Box::new(backend),
                &storage_key,
                SdkOptions::default(),
            )
            .map_err(sdk_error)?;
            let inner = Rc::new(Inner {
                client,
                journal,
                disk,
                broken: Cell::new(false),
                _lock: lock,
            });
            inner.flush().await?;
            Ok(PeerbridgeWeb { inner }.into())
        })
    }

    /// This device's Ed25519 public key (unpadded base64url).
    #[wasm_bindgen(js_name = devicePublicKey)]
    pub fn device_public_key(&self) -> String {
        self.inner.client.device_public_key()
    }

    /// The current session, or `null` before enrolment.
    pub fn session(&self) -> Result<JsValue, JsValue> {
        to_js(&self.inner.client.session().map_err(sdk_error)?)
    }

    /// Redeems an invite code with this device.
    pub fn enroll(&self, invite_code: String, device_label: String) -> js_sys::Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let r = inner.client.enroll(&invite_code, &device_label).await;
            inner.run(r).await
        })
    }

    /// Logs this device in again (challenge–response).
    pub fn login(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let r = inner.client.login().await;
            inner.run(r).await
        })
    }

    #[wasm_bindgen(js_name = ensureKeyPackages)]
    pub fn ensure_key_packages(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let r = inner.client.ensure_key_packages().await;
            inner.run(r).await
        })
    }

    pub fn conversations(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let r = inner.client.conversations().await;
            inner.run(r).await
        })
    }

    #[wasm_bindgen(js_name = acceptWelcomes)]
    pub fn accept_welcomes(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let r = inner.client.accept_welcomes().await;
            inner.run(r).await
        })
    }

    /// Sends a text message; resolves to its id once it is durable in the outbox and sent
    /// (or queued to retry).
    #[wasm_bindgen(js_name = sendText)]
    pub fn send_text(&self, conversation: String, text: String) -> js_sys::Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let id = uuid(&conversation)?;
            let r = inner.client.send_text(id, &text).await;
            inner.run(r).await
        })
    }

    #[wasm_bindgen(js_name = syncAll)]
    pub fn sync_all(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let r = inner.client.sync_all().await;
            inner.run(r).await
        })
    }

    /// Waits for the next events (stream or polling); never resolves to an empty list.
    #[wasm_bindgen(js_name = nextEvents)]
    pub fn next_events(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let r = inner.client.next_events().await;
            inner.run(r).await
        })
    }

    /// A page of stored history, newest last.
    pub fn history(
        &self,
        conversation: String,
        before: Option<u64>,
        limit: u32,
    ) -> Result<JsValue, JsValue> {
        let id = uuid(&conversation)?;
        to_js(
            &self
                .inner
                .client
                .history(id, before, limit)
                .map_err(sdk_error)?,
        )
    }
}
