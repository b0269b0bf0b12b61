// The plugins page: each plugin's status (running, crashed with the reason, failed, stopped) follows the
// admins' hub topic `panel.plugins` live; everything else on the page is plain forms.
import { RealtimeClient } from "/static/js/realtime.js";

const root = document.getElementById("panel-plugins");
const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";

function show({ plugin_id: id, status, reason, restarts }) {
  const row = root.querySelector(`[data-plugin="${CSS.escape(id)}"]`);
  if (!row) return;
  const label = row.querySelector('[data-testid="plugin-status"]');
  label.textContent = status;
  label.className = `panel-state panel-state--${status}`;
  const why = row.querySelector('[data-testid="plugin-reason"]');
  why.textContent = reason || "";
  row.querySelector('[data-testid="plugin-restarts"]').textContent = restarts ? ` · ${restarts} restart(s)` : "";
}

const client = new RealtimeClient({
  getToken: async () => {
    const response = await fetch("/api/auth/session-token", { method: "POST", headers: { "X-CSRF-Token": csrf } });
    return response.ok ? (await response.json()).access_token : null;
  },
  onStateChange: (state) => { root.dataset.link = state; },
});
client.subscribe("panel.plugins", ({ data }) => { if (data.type === "plugin") show(data); });

// Once subscribed, read every plugin's status once: a change between the page's rendering and the
// subscription is not lost.
async function resync() {
  const response = await fetch("/api/panel/plugins", { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!response.ok) return;
  for (const plugin of await response.json()) {
    show({ plugin_id: plugin.plugin_id, status: plugin.status, reason: plugin.status_reason, restarts: plugin.restarts });
  }
}
client.connect().then(resync).catch(() => {});
