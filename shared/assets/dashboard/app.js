// The dashboard: reads the metrics report, queues, subscriptions and dead-letter queues' newest
// messages through the service's own API with a bearer token, every few seconds. Read-only.
"use strict";

const REFRESH_MS = 5000;
const RANGE_MS = 15 * 60 * 1000;
const INTERVAL = "30s";
const COLORS = ["#2f6fde", "#e0702f", "#2a9d5c", "#b3261e", "#8a4fd1", "#c9a227", "#1a9aa8", "#666"];

const $ = (id) => document.getElementById(id);
const charts = {};

function token() {
  const given = location.hash.match(/token=([^&]+)/);
  if (given) {
    localStorage.setItem("mq-token", decodeURIComponent(given[1]));
    history.replaceState(null, "", location.pathname);
  }
  return localStorage.getItem("mq-token");
}

async function api(path) {
  const res = await fetch(path, { headers: { Authorization: "Bearer " + token() } });
  const body = await res.json().catch(() => null);
  if (res.status === 401) $("login").hidden = false;
  if (!res.ok) throw new Error((body && body.message) || `${res.status} ${res.statusText}`);
  return body;
}

const ms = (text) => parseFloat(text) || 0;
const esc = (v) => String(v ?? "").replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
const num = (v) => (Math.round(v * 100) / 100).toLocaleString();
const age = (s) => (s >= 3600 ? `${num(s / 3600)} h` : s >= 60 ? `${num(s / 60)} min` : `${num(s)} s`);

function table(id, head, rows) {
  const th = head.map((h) => `<th>${esc(h)}</th>`).join("");
  const body = rows.length
    ? rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join("")}</tr>`).join("")
    : `<tr><td colspan="${head.length}" class="muted">none</td></tr>`;
  $(id).innerHTML = `<thead><tr>${th}</tr></thead><tbody>${body}</tbody>`;
}

/** Draws (or redraws) a line chart; `series` are [label, values] pairs over the shared `xs`. */
function chart(id, title, unit, xs, series) {
  const el = $(id);
  const data = [xs, ...series.map(([, values]) => values)];
  const key = series.map(([label]) => label).join("|");
  if (charts[id] && charts[id].key === key) {
    charts[id].plot.setData(data);
    return;
  }
  if (charts[id]) charts[id].plot.destroy();
  const opts = {
    title,
    width: Math.max(el.clientWidth, 480),
    height: 220,
    series: [{}, ...series.map(([label], i) => ({ label, stroke: COLORS[i % COLORS.length], width: 2 }))],
    axes: [{}, { label: unit, size: 60 }],
  };
  charts[id] = { key, plot: new uPlot(opts, data, el) };
}

function renderTiles(report) {
  const o = report.overview;
  const p = report.performance;
  const tiles = [
    ["queues", o.total_queues],
    ["messages waiting", o.messages_in_queues],
    ["consumers", o.total_consumers],
    ["published / s", num(o.average_throughput)],
    ["p95 publish", p.p95_publish_time],
    ["p95 end to end", p.p95_end_to_end_time],
    ["error rate", `${num(p.error_rate * 100)} %`],
  ];
  $("tiles").innerHTML = tiles.map(([k, v]) => `<div class="tile">${esc(k)}<b>${esc(v)}</b></div>`).join("");
  $("window").textContent = `(last ${RANGE_MS / 60000} min, every ${INTERVAL})`;
}

function renderCharts(report) {
  const step = report.series.interval_seconds;
  const points = report.series.points;
  const xs = points.map((p) => Date.parse(p.from) / 1000);
  const rate = (name) => points.map((p) => p[name] / step);
  chart("chart-rates", "Messages per second, every queue", "msg/s", xs, [
    ["published", rate("published")],
    ["consumed", rate("consumed")],
    ["acknowledged", rate("acknowledged")],
  ]);
  chart("chart-latency", "p95 latency", "ms", xs, [
    ["publish", points.map((p) => ms(p.p95_publish_time))],
    ["end to end", points.map((p) => ms(p.p95_end_to_end_time))],
  ]);
  const busiest = [...report.queue_metrics]
    .sort((a, b) => b.messages_published - a.messages_published)
    .slice(0, COLORS.length);
  chart("chart-queues", "Published per second, by queue", "msg/s", xs,
    busiest.map((q) => [q.queue, q.series.points.map((p) => p.published / step)]));
  chart("chart-failures", "Failures per second, every queue", "msg/s", xs, [
    ["rejected", rate("rejected")],
    ["dead-lettered", rate("dead_lettered")],
    ["expired", rate("expired")],
    ["push failures", rate("push_failures")],
  ]);
}

function renderQueues(report, deadLetterNames) {
  const rows = report.queue_metrics.map((q) => {
    const worst = q.groups.reduce((w, g) => (g.lag_seconds > w ? g.lag_seconds : w), 0);
    const name = deadLetterNames.has(q.queue) ? `${esc(q.queue)} <span class="muted">(dead letters)</span>` : esc(q.queue);
    return [
      name,
      q.message_count,
      q.consumer_count,
      q.messages_published,
      q.messages_acknowledged,
      q.messages_rejected,
      q.messages_dead_lettered,
      q.performance.p95_publish_time,
      `<span class="${worst > 60 ? "bad" : ""}">${age(q.oldest_unacknowledged_age_seconds)}</span>`,
    ];
  });
  table("queues", ["queue", "backlog", "consumers", "published", "acknowledged", "rejected", "dead-lettered", "p95 publish", "oldest waiting"], rows);
  const groups = report.queue_metrics.flatMap((q) =>
    q.groups.map((g) => [esc(q.queue), esc(g.group), esc(g.kind), g.lag, g.leased, age(g.lag_seconds)]));
  table("groups", ["queue", "group", "kind", "lag (messages)", "leased", "lag (age)"], groups);
}

async function renderDeadLetters(names) {
  const parts = [];
  for (const name of [...names].sort()) {
    try {
      const peek = await api(`/message-queue/queues/${encodeURIComponent(name)}/messages?limit=5`);
      const h = (m, name) => esc(m.headers[name]);
      const rows = peek.messages.map((m) => `<tr><td>${esc(m.published_at)}</td>
        <td><code>${h(m, "x-original-message-id")}</code></td><td>${h(m, "x-original-queue")}</td>
        <td>${h(m, "x-dead-letter-group")}</td><td>${h(m, "x-dead-letter-reason")}</td><td>${h(m, "x-dead-letter-detail")}</td>
        <td><code>${esc(JSON.stringify(m.message).slice(0, 120))}</code></td></tr>`).join("");
      const head = ["dead-lettered", "message", "from queue", "group", "reason", "detail", "content"];
      parts.push(`<h3>${esc(name)}</h3><table><thead><tr>${head.map((c) => `<th>${c}</th>`).join("")}</tr></thead>
        <tbody>${rows || `<tr><td colspan="${head.length}" class="muted">empty</td></tr>`}</tbody></table>`);
    } catch (e) {
      parts.push(`<h3>${esc(name)}</h3><p class="muted">${esc(e.message)}</p>`);
    }
  }
  $("dead-letters").innerHTML = parts.join("") || `<p class="muted">no queue names a dead-letter queue</p>`;
}

function renderSubscriptions(subs, report) {
  const byQueue = Object.fromEntries(report.queue_metrics.map((q) => [q.queue, q]));
  const rows = subs.map((s) => {
    const q = byQueue[s.queue] || { push_attempts: 0, push_failures: 0 };
    const health = s.status !== "active" ? "bad" : q.push_failures > 0 ? "bad" : "";
    return [
      `<code>${esc(s.subscription_id)}</code>`,
      esc(s.queue),
      esc(s.callback_url),
      `<span class="${health}">${esc(s.status)}</span>`,
      esc(s.paused_reason ?? ""),
      `${q.push_attempts} / ${q.push_failures}`,
      q.performance ? q.performance.p95_push_time : "",
    ];
  });
  table("subscriptions", ["subscription", "queue", "callback", "status", "paused because", "attempts / failures (queue)", "p95 push"], rows);
}

async function refresh() {
  if (!token()) {
    $("login").hidden = false;
    return;
  }
  try {
    const to = new Date();
    const from = new Date(to.getTime() - RANGE_MS);
    const range = `date_from=${from.toISOString()}&date_to=${to.toISOString()}&interval=${INTERVAL}`;
    const [report, queues, subs] = await Promise.all([
      api(`/message-queue/metrics?${range}`),
      api("/message-queue/queues"),
      api("/message-queue/subscriptions"),
    ]);
    const subscriptions = subs.subscriptions || [];
    const deadLetterNames = new Set([
      ...queues.queues.map((q) => q.arguments["x-dead-letter-queue"]).filter(Boolean),
      ...subscriptions.map((s) => s.dead_letter_queue).filter(Boolean),
    ]);
    renderTiles(report);
    renderCharts(report);
    renderQueues(report, deadLetterNames);
    renderSubscriptions(subscriptions, report);
    await renderDeadLetters(deadLetterNames);
    $("updated").textContent = `updated ${new Date(report.generated_at).toLocaleTimeString()}`;
    $("error").textContent = "";
    document.body.dataset.state = "ready";
    document.body.dataset.charts = document.querySelectorAll(".uplot canvas").length;
  } catch (e) {
    $("error").textContent = e.message;
    document.body.dataset.state = "error";
  }
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  localStorage.setItem("mq-token", $("token-input").value.trim());
  $("login").hidden = true;
  refresh();
});

refresh();
setInterval(refresh, REFRESH_MS);
