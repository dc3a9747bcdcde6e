// Web Push: the browser's push service wakes this app when it is closed. The server sends
// only an encrypted, content-free wake-up ("a message" or "a flag"); the service worker
// (public/sw.js) shows a neutral notification in the person's language. It does not open
// the encrypted store: with an app lock the key is not available in the background, and
// one writer per account is the rule — the app syncs when it is opened.
import i18n from "./i18n";
import { client } from "./sdk";

/** The notification wording, handed to the service worker (which has no catalogues). */
function texts() {
  return {
    message: i18n.t("push.message"),
    flag: i18n.t("push.flag"),
    title: i18n.t("app.name"),
  };
}

async function tell(reg: ServiceWorkerRegistration) {
  const worker = reg.active ?? reg.waiting ?? reg.installing;
  worker?.postMessage({ type: "texts", texts: texts() });
}

export async function registerWorker(): Promise<void> {
  if (!("serviceWorker" in navigator)) return;
  const reg = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
  await navigator.serviceWorker.ready;
  await tell(reg);
  i18n.on("languageChanged", () => void tell(reg));
  // A wake-up while the app is open: sync now instead of waiting for the stream.
  navigator.serviceWorker.addEventListener("message", (e: MessageEvent<{ type?: string }>) => {
    if (e.data?.type === "wake") void client().then((c) => c.syncAll());
  });
}

export type PushState = "on" | "off" | "denied" | "unsupported";

export async function pushState(): Promise<PushState> {
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) return "unsupported";
  if (Notification.permission === "denied") return "denied";
  const reg = await navigator.serviceWorker.ready;
  return (await reg.pushManager.getSubscription()) ? "on" : "off";
}

/** Asks for permission, subscribes with the server's VAPID key and registers the endpoint. */
export async function enablePush(): Promise<PushState> {
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) return "unsupported";
  if ((await Notification.requestPermission()) !== "granted") return "denied";
  const reg = await navigator.serviceWorker.ready;
  const c = await client();
  const key = await c.vapidPublicKey();
  const sub =
    (await reg.pushManager.getSubscription()) ??
    (await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key }));
  const json = sub.toJSON();
  await c.registerWebPush(sub.endpoint, json.keys?.p256dh ?? "", json.keys?.auth ?? "");
  return "on";
}

export async function disablePush(): Promise<PushState> {
  const reg = await navigator.serviceWorker.ready;
  await (await reg.pushManager.getSubscription())?.unsubscribe();
  await (await client()).clearPushEndpoint();
  return "off";
}
