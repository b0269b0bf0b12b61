// Test-only page script: follows the topic named in the query with the token passed there (and the
// backoffMax given there), and renders each event as <li data-seq="…">text</li>. The test drives publish
// and presence through window.realtime.
import { RealtimeClient } from "/static/js/realtime.js";

const query = new URLSearchParams(window.location.search);
const token = query.get("token");
const topic = query.get("topic");
const output = (id) => document.getElementById(id);
const increment = (id) => {
  output(id).textContent = String(Number(output(id).textContent) + 1);
};

const client = new RealtimeClient({
  backoffMax: Number(query.get("backoffMax") ?? 30_000),
  getToken: async () => {
    increment("tokens");
    return token;
  },
  onStateChange: (state) => {
    output("state").textContent = state;
    if (state === "connected") increment("connections");
  },
});

client.subscribe(
  topic,
  ({ seq, data }) => {
    const item = document.createElement("li");
    item.dataset.seq = String(seq);
    item.textContent = data.text;
    output("events").append(item);
  },
  {
    onRecoveryFailed: () => increment("recovery-failures"),
    onError: (_, error) => {
      const item = document.createElement("li");
      item.textContent = error.code;
      output("errors").append(item);
    },
  },
);
client.connect();
window.realtime = client;
