// The alerts page: alerts fired while it is open arrive over the hub (market.user.{id}) and are listed first.
import { RealtimeClient } from "/static/js/realtime.js";

const state = document.getElementById("alerts-live");
const list = document.getElementById("alerts-fired");
const csrf = document.querySelector('meta[name="csrf-token"]').content;

async function getToken() {
  const response = await fetch("/api/auth/session-token", { method: "POST", headers: { "X-CSRF-Token": csrf } });
  return response.ok ? (await response.json()).access_token : null;
}

if (state && list) {
  const client = new RealtimeClient({
    getToken,
    onStateChange: (value) => state.setAttribute("data-live-state", value),
  });
  client.subscribe(state.dataset.topic, ({ data }) => {
    if (data.type !== "alert.fired") return;
    const item = document.createElement("li");
    item.dataset.event = data.id;
    item.dataset.live = "true";
    item.textContent = `${new Date(data.fired_at).toISOString().slice(0, 16).replace("T", " ")} UTC · ${data.title}`;
    list.prepend(item);
  });
  client.connect();
}
