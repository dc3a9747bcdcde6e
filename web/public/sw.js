// The service worker: content-free notifications for Web Push wake-ups. The push body is
// only {"type":"wake","kind":"message"|"flag"} (decrypted by the browser); the wording comes
// from the app's catalogues (posted by the page, kept in the Cache API). A flag's
// notification has its own tag, so a later message never replaces it, and stays until the
// person acts on it. The worker never opens the encrypted store; the app syncs when opened.
const TEXTS = "/__pb_notification_texts";
const FALLBACK = { title: "Kontakt", message: "Ny aktivitet", flag: "Ny aktivitet – haster" };

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("message", (event) => {
  if (event.data?.type !== "texts") return;
  event.waitUntil(
    caches
      .open("pb-texts")
      .then((c) => c.put(TEXTS, new Response(JSON.stringify(event.data.texts)))),
  );
});

async function texts() {
  try {
    const hit = await (await caches.open("pb-texts")).match(TEXTS);
    return hit ? { ...FALLBACK, ...(await hit.json()) } : FALLBACK;
  } catch {
    return FALLBACK;
  }
}

self.addEventListener("push", (event) => {
  let kind = "message";
  try {
    if (event.data?.json()?.kind === "flag") kind = "flag";
  } catch {
    // Not JSON (a plain wake-up): treat it as a message.
  }
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      for (const w of windows) w.postMessage({ type: "wake", kind });
      const t = await texts();
      await self.registration.showNotification(t.title, {
        body: kind === "flag" ? t.flag : t.message,
        tag: `pb-${kind}`,
        renotify: true,
        requireInteraction: kind === "flag",
        icon: "/icon.svg",
      });
    })(),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      if (windows.length > 0) return windows[0].focus();
      return self.clients.openWindow("/");
    })(),
  );
});
