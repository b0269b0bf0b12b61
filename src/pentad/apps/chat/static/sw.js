// The chat's service worker: shows Web Push notifications of new messages and mentions, and opens (or
// focuses) the conversation when one is clicked. The payload is the server's PushNotification JSON:
// {title, body, url, channel_id, message_id}; url is null for tenants other than Pentad's own pages.

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  let payload = {};
  try {
    payload = event.data ? event.data.json() : {};
  } catch {
    payload = { body: event.data ? event.data.text() : "" };
  }
  const title = payload.title || "New message";
  event.waitUntil(
    self.registration.showNotification(title, {
      body: payload.body || "",
      // One notification per conversation: a newer message replaces the older one.
      tag: payload.channel_id ? `chat-${payload.channel_id}` : undefined,
      renotify: Boolean(payload.channel_id),
      data: { url: payload.url || null, channel_id: payload.channel_id, message_id: payload.message_id },
    }),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const { url } = event.notification.data || {};
  if (!url) return;
  const target = new URL(url, self.location.origin);
  // Only pages of this server: a payload must not send the person anywhere else.
  if (target.origin !== self.location.origin) return;
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      for (const client of windows) {
        if (new URL(client.url).pathname === target.pathname && "focus" in client) {
          // The page is outside this worker's scope, so it cannot be navigated from here: it is asked to.
          client.postMessage({ type: "chat.open", url: target.href });
          await client.focus();
          return;
        }
      }
      await self.clients.openWindow(target.href);
    })(),
  );
});
