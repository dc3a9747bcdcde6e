// The storage key's keeper in the browser (issue 14). The SDK seals every row of the store
// with a 32-byte storage key; this module makes that key and keeps it only *wrapped*
// (AES-256-GCM, the account name as associated data) in its own IndexedDB database,
// `peerbridge-keys`, never in the clear beside the data:
//
// - "device": wrapped by a non-extractable WebCrypto AES key generated here and stored as a
//   CryptoKey object. Script in the page can ask the browser to unwrap with it but can never
//   read the wrapping key itself, so a copied database or an injected script cannot carry the
//   storage key away; someone holding the unlocked browser profile on disk can.
// - "passcode": wrapped by a key derived from a passcode the person chooses (PBKDF2-SHA-256,
//   600,000 iterations, 16-byte random salt). Nothing on the device opens the store without
//   the passcode; a wrong passcode fails the AES-GCM tag and is reported as
//   `wrong_storage_key`, the code the native SDK gives for a wrong key.
//
// Errors are `Error`s with a `code` (the SDK's flat codes plus `passcode_required`).

const DB = "peerbridge-keys";
const STORE = "keys";
const ITERATIONS = 600000;

function fail(code, message) {
  const e = new Error(message);
  e.code = code;
  return e;
}

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(fail("storage", `IndexedDB: ${req.error && req.error.name}`));
  });
}

async function database() {
  const req = indexedDB.open(DB, 1);
  req.onupgradeneeded = () => req.result.createObjectStore(STORE);
  return request(req);
}

async function read(account) {
  const db = await database();
  try {
    return await request(db.transaction(STORE, "readonly").objectStore(STORE).get(account));
  } finally {
    db.close();
  }
}

async function write(account, record) {
  const db = await database();
  try {
    const tx = db.transaction(STORE, "readwrite");
    tx.objectStore(STORE).put(record, account);
    await new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = tx.onabort = () => reject(fail("storage", "IndexedDB: the key was not saved"));
    });
  } finally {
    db.close();
  }
}

function aad(account) {
  return new TextEncoder().encode(`peerbridge-storage-key/v1\n${account}`);
}

async function passcodeKey(passcode, salt, iterations) {
  const base = await crypto.subtle.importKey(
    "raw", new TextEncoder().encode(passcode), "PBKDF2", false, ["deriveKey"]);
  return crypto.subtle.deriveKey(
    { name: "PBKDF2", hash: "SHA-256", salt, iterations },
    base, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
}

async function wrap(account, raw, passcode) {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  let record;
  let key;
  if (passcode == null) {
    key = await crypto.subtle.generateKey(
      { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
    record = { kind: "device", wrappingKey: key, iv };
  } else {
    if (typeof passcode !== "string" || passcode.length < 4) {
      throw fail("invalid_input", "a passcode has at least 4 characters");
    }
    const salt = crypto.getRandomValues(new Uint8Array(16));
    key = await passcodeKey(passcode, salt, ITERATIONS);
    record = { kind: "passcode", salt, iterations: ITERATIONS, iv };
  }
  record.wrapped = new Uint8Array(
    await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: aad(account) }, key, raw));
  return record;
}

async function unwrap(account, record, passcode) {
  let key;
  if (record.kind === "device") {
    if (passcode != null) throw fail("invalid_input", "this account has no passcode");
    key = record.wrappingKey;
  } else {
    if (passcode == null) throw fail("passcode_required", "this account is locked with a passcode");
    key = await passcodeKey(passcode, record.salt, record.iterations);
  }
  try {
    return new Uint8Array(await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: record.iv, additionalData: aad(account) }, key, record.wrapped));
  } catch {
    throw fail("wrong_storage_key", "the passcode does not open this account");
  }
}

/** The account's storage key: unwrapped if it exists, else made and saved wrapped (by a
 * non-extractable browser key, or by `passcode` when one is given). */
export async function storageKey(account, passcode) {
  const record = await read(account);
  if (record) return unwrap(account, record, passcode);
  const raw = crypto.getRandomValues(new Uint8Array(32));
  await write(account, await wrap(account, raw, passcode));
  return raw;
}

/** Re-wraps the same storage key: sets, changes or removes (`next` null) the passcode. */
export async function changePasscode(account, current, next) {
  const record = await read(account);
  if (!record) throw fail("not_found", "no storage key for this account on this browser");
  const raw = await unwrap(account, record, current);
  await write(account, await wrap(account, raw, next));
}

/** Whether the account's key is protected by a passcode (`null` when there is no key). */
export async function protection(account) {
  const record = await read(account);
  return record ? record.kind : null;
}
