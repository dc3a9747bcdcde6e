//! The store's persistence in IndexedDB: database `peerbridge-<account>`, object stores
//! `meta` (format marker, key check) and `rows` (sealed rows, keyed by the row key in hex).
//! Loading reads everything once; each flush writes the journal's batches in one
//! readwrite transaction and resolves when the transaction completes (or fails as a whole).
//! Rows arrive sealed: nothing here sees plaintext or a logical key.

use peerbridge_mls::{Batch, RowKey, StoreMeta};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbDatabase, IdbObjectStore, IdbRequest, IdbTransaction, IdbTransactionMode};

const VERSION: u32 = 1;
const META: &str = "meta";
const ROWS: &str = "rows";

fn err(context: &str, e: JsValue) -> String {
    let detail = e
        .dyn_ref::<web_sys::DomException>()
        .map(|d| d.name())
        .or_else(|| e.as_string())
        .unwrap_or_else(|| "unknown".into());
    format!("IndexedDB {context}: {detail}")
}

/// Resolves with a request's result (or its error).
async fn request(req: &IdbRequest) -> Result<JsValue, JsValue> {
    let promise = js_sys::Promise::new(&mut |resolve, reject| {
        let ok = req.clone();
        let on_success = Closure::once_into_js(move || {
            let _ = resolve.call1(&JsValue::NULL, &ok.result().unwrap_or(JsValue::UNDEFINED));
        });
        let on_error = Closure::once_into_js(move |e: JsValue| {
            let _ = reject.call1(&JsValue::NULL, &e);
        });
        req.set_onsuccess(Some(on_success.unchecked_ref()));
        req.set_onerror(Some(on_error.unchecked_ref()));
    });
    JsFuture::from(promise).await
}

/// Resolves when a transaction completes; rejects when it aborts or fails.
async fn complete(tx: &IdbTransaction) -> Result<(), JsValue> {
    let promise = js_sys::Promise::new(&mut |resolve, reject| {
        let on_complete = Closure::once_into_js(move || {
            let _ = resolve.call0(&JsValue::NULL);
        });
        let reject2 = reject.clone();
        let on_error = Closure::once_into_js(move |e: JsValue| {
            let _ = reject.call1(&JsValue::NULL, &e);
        });
        let on_abort = Closure::once_into_js(move |e: JsValue| {
            let _ = reject2.call1(&JsValue::NULL, &e);
        });
        tx.set_oncomplete(Some(on_complete.unchecked_ref()));
        tx.set_onerror(Some(on_error.unchecked_ref()));
        tx.set_onabort(Some(on_abort.unchecked_ref()));
    });
    JsFuture::from(promise).await.map(|_| ())
}

/// One account's store in IndexedDB.
pub(crate) struct Persistence {
    db: IdbDatabase,
}

/// What the store held when it was opened.
pub(crate) struct Image {
    pub(crate) meta: Option<StoreMeta>,
    pub(crate) rows: Vec<(RowKey, Vec<u8>)>,
}

impl Persistence {
    pub(crate) async fn open(account: &str) -> Result<Persistence, String> {
        let window = web_sys::window().ok_or("no window")?;
        let factory = window
            .indexed_db()
            .map_err(|e| err("unavailable", e))?
            .ok_or("IndexedDB is not available (private mode?)")?;
        let req = factory
            .open_with_u32(&format!("peerbridge-{account}"), VERSION)
            .map_err(|e| err("open", e))?;
        let upgrade = Closure::<dyn FnMut(web_sys::IdbVersionChangeEvent)>::new(
            move |e: web_sys::IdbVersionChangeEvent| {
                let Some(db) = e
                    .target()
                    .and_then(|t| t.dyn_into::<IdbRequest>().ok())
                    .and_then(|r| r.result().ok())
                    .and_then(|r| r.dyn_into::<IdbDatabase>().ok())
                else {
                    return;
                };
                let names = db.object_store_names();
                for name in [META, ROWS] {
                    if !names.contains(name) {
                        let _ = db.create_object_store(name);
                    }
                }
            },
        );
        req.set_onupgradeneeded(Some(upgrade.as_ref().unchecked_ref()));
        let db = request(&req)
            .await
            .map_err(|e| err("open", e))?
            .dyn_into::<IdbDatabase>()
            .map_err(|_| "IndexedDB open returned no database".to_owned())?;
        drop(upgrade);
        Ok(Persistence { db })
    }

    fn stores(
        &self,
        mode: IdbTransactionMode,
    ) -> Result<(IdbTransaction, IdbObjectStore, IdbObjectStore), String> {
        let names = js_sys::Array::of2(&META.into(), &ROWS.into());
        let tx = self
            .db
            .transaction_with_str_sequence_and_mode(&names, mode)
            .map_err(|e| err("transaction", e))?;
        let meta = tx.object_store(META).map_err(|e| err("meta", e))?;
        let rows = tx.object_store(ROWS).map_err(|e| err("rows", e))?;
        Ok((tx, meta, rows))
    }

    /// Reads the whole store.
    pub(crate) async fn load(&self) -> Result<Image, String> {
        let (_tx, meta, rows) = self.stores(IdbTransactionMode::Readonly)?;
        let bytes = |v: JsValue| -> Option<Vec<u8>> {
            (!v.is_undefined() && !v.is_null()).then(|| js_sys::Uint8Array::new(&v).to_vec())
        };
        let format = request(&meta.get(&"format".into()).map_err(|e| err("read", e))?)
            .await
            .map_err(|e| err("read", e))?;
        let check = request(&meta.get(&"check".into()).map_err(|e| err("read", e))?)
            .await
            .map_err(|e| err("read", e))?;
        let meta = match (bytes(format), bytes(check)) {
            (Some(format), Some(check)) => Some(StoreMeta { format, check }),
            (None, None) => None,
            _ => return Err("the store's key check is incomplete".into()),
        };
        let keys = request(&rows.get_all_keys().map_err(|e| err("read", e))?)
            .await
            .map_err(|e| err("read", e))?;
        let values = request(&rows.get_all().map_err(|e| err("read", e))?)
            .await
            .map_err(|e| err("read", e))?;
        let keys = js_sys::Array::from(&keys);
        let values = js_sys::Array::from(&values);
        let mut out = Vec::with_capacity(keys.length() as usize);
        for (k, v) in keys.iter().zip(values.iter()) {
            let key: RowKey = k
                .as_string()
                .and_then(|h| hex::decode(h).ok())
                .and_then(|b| b.try_into().ok())
                .ok_or("a row key in IndexedDB is not a store row key")?;
            out.push((key, js_sys::Uint8Array::new(&v).to_vec()));
        }
        Ok(Image { meta, rows: out })
    }

    /// Writes the batches in order in one transaction; all or nothing.
    pub(crate) async fn flush(&self, batches: Vec<Batch>) -> Result<(), String> {
        if batches.is_empty() {
            return Ok(());
        }
        let (tx, meta, rows) = self.stores(IdbTransactionMode::Readwrite)?;
        let put = |store: &IdbObjectStore, key: &str, value: &[u8]| {
            store
                .put_with_key(&js_sys::Uint8Array::from(value), &key.into())
                .map(|_| ())
                .map_err(|e| err("write", e))
        };
        for batch in &batches {
            if let Some(m) = &batch.meta {
                put(&meta, "format", &m.format)?;
                put(&meta, "check", &m.check)?;
            }
            for (key, value) in &batch.rows {
                let key = hex::encode(key);
                match value {
                    Some(v) => put(&rows, &key, v)?,
                    None => {
                        rows.delete(&key.into()).map_err(|e| err("delete", e))?;
                    }
                }
            }
        }
        complete(&tx).await.map_err(|e| err("commit", e))
    }
}
