// The market pages' scripts: the price history chart (uPlot: daily average price and volume) on the
// station trading page, and the advisor chat (a question POSTed to /api/market/advisor/ask/stream, the
// answer read as Server-Sent Events: delta, tool, reset on failover, done).

const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";

async function showHistory(hub, typeId) {
  const note = document.getElementById("history-note");
  const target = document.getElementById("history-chart");
  const response = await fetch(`/api/market/hubs/${encodeURIComponent(hub)}/history/${typeId}?days=90`, {
    credentials: "same-origin",
  });
  if (!response.ok) {
    note.textContent = "The history could not be read.";
    return;
  }
  const data = await response.json();
  document.getElementById("history-title").textContent = `Price history: ${data.type_name}`;
  target.textContent = "";
  if (!data.days.length) {
    note.textContent = "No history is stored for this item yet.";
    return;
  }
  note.textContent = `${data.days.length} days in ${hub}'s region.`;
  const xs = data.days.map((d) => Date.parse(`${d.date}T00:00:00Z`) / 1000);
  const average = data.days.map((d) => Number(d.average));
  const volume = data.days.map((d) => d.volume);
  const options = {
    width: Math.min(900, target.clientWidth || 900), height: 300,
    scales: { x: { time: true }, isk: {}, units: {} },
    series: [
      {},
      { label: "Average (ISK)", scale: "isk", stroke: "#1f6feb", width: 2 },
      { label: "Volume", scale: "units", stroke: "#8b949e", fill: "rgba(139,148,158,0.3)",
        paths: window.uPlot.paths.bars({ size: [0.6, 12] }) },
    ],
    axes: [{}, { scale: "isk", label: "ISK" }, { scale: "units", side: 1, label: "units", grid: { show: false } }],
  };
  target.chart = new window.uPlot(options, [xs, average, volume], target);
  target.dataset.series = String(options.series.length - 1);
}

for (const link of document.querySelectorAll(".history-link")) {
  link.addEventListener("click", (event) => {
    event.preventDefault();
    showHistory(link.dataset.hub, link.dataset.type);
  });
}

function entry(role, text) {
  const item = document.createElement("li");
  item.className = `advisor-${role}`;
  const body = document.createElement("p");
  body.textContent = text;
  item.append(body);
  document.getElementById("advisor-log").append(item);
  return item;
}

async function ask(question) {
  const root = document.getElementById("advisor");
  const status = document.getElementById("advisor-status");
  entry("user", question);
  const answer = entry("assistant", "");
  const text = answer.querySelector("p");
  status.textContent = "Thinking…";
  const response = await fetch("/api/market/advisor/ask/stream", {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify({ question, conversation_id: root.dataset.conversation || null }),
  });
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}));
    status.textContent = problem.detail || `The advisor refused (${response.status}).`;
    answer.remove();
    return;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const kind = /^event: (.*)$/m.exec(block)?.[1];
      const data = JSON.parse(/^data: (.*)$/m.exec(block)?.[1] || "{}");
      if (kind === "delta") text.textContent += data.text;
      else if (kind === "tool") status.textContent = `Reading your data (${data.name})…`;
      else if (kind === "reset") {
        text.textContent = "";
        const notice = document.createElement("p");
        notice.className = "advisor-reset muted";
        notice.textContent = `${data.provider} failed (${data.reason}); ${data.next} answers instead.`;
        answer.prepend(notice);
      } else if (kind === "done") {
        text.textContent = data.text;
        root.dataset.conversation = data.conversation_id;
        answer.dataset.provider = data.provider;
        const badge = document.createElement("p");
        badge.className = "advisor-badge muted";
        badge.textContent = `${data.provider}${data.cached ? " · from the cache" : ""}` +
          (data.grounded ? " · figures checked against your data" : " · some figures could not be checked");
        answer.append(badge);
        status.textContent = "";
      } else if (kind === "error") status.textContent = data.detail;
    }
  }
}

const form = document.getElementById("advisor-form");
if (form) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const field = document.getElementById("advisor-question");
    const question = field.value.trim();
    if (!question) return;
    field.value = "";
    ask(question);
  });
}
