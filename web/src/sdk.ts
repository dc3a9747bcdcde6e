// The one client of this browser: the wasm SDK (web-sdk/pkg), opened on this origin with a
// storage key the browser keeps wrapped — by a non-extractable browser key, or by the
// person's passcode once they set one (the app lock). No protocol or crypto logic lives in
// TypeScript.
import init, { PeerbridgeWeb, type PeerbridgeError } from "peerbridge-web";
import i18n, { type Language } from "./i18n";

export type { PeerbridgeWeb };
const ACCOUNT = "main";

const loaded = init();
let opened: Promise<PeerbridgeWeb> | null = null;

/** How this browser's storage key is protected: "passcode" means the app starts locked. */
export async function protection(): Promise<"device" | "passcode" | null> {
  await loaded;
  return PeerbridgeWeb.protection(ACCOUNT);
}

/** Opens the account store (with the passcode when it is locked). */
export function unlock(passcode: string | null): Promise<PeerbridgeWeb> {
  const attempt = loaded
    .then(() => PeerbridgeWeb.openOnThisBrowser(location.origin, ACCOUNT, passcode))
    .then(async (c) => {
      // The clinic answers a flag in the language the person reads the app in.
      await c.setLocale(i18n.language as Language).catch(() => undefined);
      return c;
    });
  opened = attempt.catch((e) => {
    opened = null;
    throw e;
  });
  return opened;
}

/** Tells an open client the language chosen now (nothing to do before one is open). */
export function languageChanged(lang: Language): void {
  void opened?.then((c) => c.setLocale(lang)).catch(() => undefined);
}

/** The open client (opening it without a passcode if nothing opened it yet). */
export function client(): Promise<PeerbridgeWeb> {
  return opened ?? unlock(null);
}

/** Sets the app-lock passcode (the same storage key, wrapped by the passcode from now on). */
export async function setPasscode(passcode: string): Promise<void> {
  await loaded;
  await PeerbridgeWeb.changePasscode(ACCOUNT, null, passcode);
}

/** The message-catalogue key for an error the SDK raised. */
/** The server could not be reached (the SDK keeps what it can and retries later). */
export function isOffline(e: unknown): boolean {
  return (e as PeerbridgeError | undefined)?.code === "network";
}

export function errorKey(e: unknown): string {
  const code = (e as PeerbridgeError | undefined)?.code;
  return code ? `errors.${code}` : "errors.unknown";
}
