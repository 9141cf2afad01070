// Tether's status page (docs/status-page.md): its script, served at
// /status.js so that the page's Content-Security-Policy can forbid inline
// scripts. Every data call (/v1/status, /v1/pools, /metrics, PATCH of an
// endpoint) carries the token the operator typed, kept in this tab's
// sessionStorage only. Changes are made only by clicking the page's buttons.
"use strict";
const REFRESH_MS = 2000;
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
let token = sessionStorage.getItem("tether-token") || "";
let previous = null; // the last /metrics sample: {t, series}

// ---- the API, always with the token
async function api(method, path, body) {
  const headers = {};
  if (token) headers["Authorization"] = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store"});
  if (r.status === 401) throw new Error("401: the admin API needs a token (type it above)");
  const text = await r.text();
  if (!r.ok) throw new Error(r.status + " " + method + " " + path + ": " + text);
  return text;
}
const json = async (path) => JSON.parse(await api("GET", path)).result;

// ---- Prometheus text: [{name, labels, value}]
function parseMetrics(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)$/);
    if (!m) continue;
    const labels = {};
    const re = /(\w+)="((?:[^"\\]|\\.)*)"/g;
    let l;
    while ((l = re.exec(m[3] || "")) !== null) labels[l[1]] = l[2].replace(/\\(.)/g, "$1");
    out.push({name: m[1], labels, value: Number(m[4])});
  }
  return out;
}

// Sums of series by key, for one metric name.
function sumBy(series, name, key, filter) {
  const sums = new Map();
  for (const s of series) {
    if (s.name !== name || (filter && !filter(s.labels))) continue;
    const k = key(s.labels);
    sums.set(k, (sums.get(k) || 0) + s.value);
  }
  return sums;
}

const ep = (l) => l.pool + "/" + l.endpoint;

// Per-endpoint rates between this sample and the last one.
function rates(now) {
  const cur = {
    t: now.t,
    req: sumBy(now.series, "tether_requests_total", ep),
    err: sumBy(now.series, "tether_requests_total", ep, (l) => l.status >= "500" && l.status < "600"),
    lsum: sumBy(now.series, "tether_request_duration_seconds_sum", ep),
    lcount: sumBy(now.series, "tether_request_duration_seconds_count", ep),
    dec: sumBy(now.series, "tether_affinity_decisions_total", (l) => l.decision),
  };
  const out = {cur, rate: new Map(), errors: new Map(), latency: new Map(), decRate: new Map()};
  if (previous) {
    const dt = (cur.t - previous.t) / 1000;
    const d = (a, b, k) => (a.get(k) || 0) - (b.get(k) || 0);
    for (const k of cur.req.keys()) {
      const n = d(cur.req, previous.req, k);
      out.rate.set(k, dt > 0 ? n / dt : 0);
      out.errors.set(k, n > 0 ? d(cur.err, previous.err, k) / n : 0);
      const c = d(cur.lcount, previous.lcount, k);
      if (c > 0) out.latency.set(k, d(cur.lsum, previous.lsum, k) / c);
    }
    for (const k of cur.dec.keys()) out.decRate.set(k, dt > 0 ? d(cur.dec, previous.dec, k) / dt : 0);
  }
  previous = cur;
  return out;
}

// ---- rendering
function renderLbs(status) {
  const rows = status.load_balancers.map((lb) => {
    const pools = lb.pools.map((p) => {
      const cls = p.healthy ? "ok" : "bad";
      const serving = lb.serving.includes(p.name) ? " serving" : "";
      return `<span class="pill${serving}"><span class="${cls}">${p.healthy ? "●" : "○"}</span> ${esc(p.name)}${p.role === "fallback" ? " <span class=muted>(fallback)</span>" : ""}</span>`;
    }).join(" → ");
    return `<tr data-lb="${esc(lb.name)}"><td>${esc(lb.name)}</td>
      <td class="${lb.enabled ? "ok" : "bad"}">${lb.enabled ? "enabled" : "disabled"}</td>
      <td>${esc(lb.session_affinity)}</td><td>${esc(lb.steering_policy)}</td>
      <td>${pools}</td><td data-field="serving">${lb.serving.length ? lb.serving.map(esc).join(", ") : '<span class="bad">none</span>'}</td></tr>`;
  }).join("");
  $("lbs").innerHTML = `<table><tr><th>load balancer</th><th>state</th><th>affinity</th><th>steering</th><th>pools, failover order</th><th>serving now</th></tr>${rows}</table>`;
}

function fmtCheck(c) {
  if (!c) return '<span class="muted">none</span>';
  const ago = Math.max(0, Math.round((Date.now() - Date.parse(c.time)) / 1000));
  return c.ok ? `<span class="ok">passed</span> ${ago}s ago` : `<span class="bad">failed</span> ${ago}s ago: ${esc(c.failure || "")}`;
}

function renderPools(pools, r) {
  $("pools").innerHTML = pools.map((pool) => {
    const rows = pool.endpoints.map((e) => {
      const k = pool.name + "/" + e.name;
      const drain = e.draining.length ? Math.max(...e.draining.map((d) => d.seconds_left)) : 0;
      const health = e.healthy ? '<span class="ok">healthy</span>' : '<span class="bad">unhealthy</span>';
      const ejected = e.ejected ? ' <span class="warn">ejected</span>' : "";
      const rate = r.rate.has(k) ? r.rate.get(k).toFixed(1) : "—";
      const err = r.errors.has(k) ? (100 * r.errors.get(k)).toFixed(1) + " %" : "—";
      const lat = r.latency.has(k) ? (1000 * r.latency.get(k)).toFixed(1) + " ms" : "—";
      const act = e.enabled
        ? `<button data-act="drain" data-ep="${esc(k)}">${drain ? "disable" : "drain"}</button>`
        : `<button data-act="enable" data-ep="${esc(k)}">enable</button>`;
      return `<tr data-endpoint="${esc(k)}"><td>${esc(e.name)}</td><td class="muted">${esc(e.address)}</td>
        <td data-field="health">${health}${ejected}</td>
        <td data-field="enabled" class="${e.enabled ? "ok" : "warn"}">${e.enabled ? "enabled" : "disabled"}</td>
        <td class="n">${e.weight} <input class="w" type="number" min="0" max="1" step="0.05" value="${e.weight}" data-weight="${esc(k)}"><button data-act="weight" data-ep="${esc(k)}">set</button></td>
        <td class="n" data-field="drain">${drain ? drain + " s" : "—"}</td>
        <td class="n">${e.in_flight}</td><td class="n">${rate}</td><td class="n">${err}</td><td class="n">${lat}</td>
        <td>${fmtCheck(e.last_check)}</td><td>${act}</td></tr>`;
    }).join("");
    return `<h3>${esc(pool.name)} <span class="${pool.healthy ? "ok" : "bad"}">${pool.healthy ? "healthy" : "unhealthy"}</span>
      <span class="muted">${pool.enabled ? "" : "disabled · "}minimum_origins ${pool.minimum_origins} · ${esc(pool.origin_steering.policy)}${pool.monitor ? " · monitor " + esc(pool.monitor) : ""}</span></h3>
      <table><tr><th>endpoint</th><th>address</th><th>health</th><th>enabled</th><th>weight</th><th>drain left</th><th>in flight</th><th>req/s</th><th>5xx</th><th>mean latency</th><th>last check</th><th></th></tr>${rows}</table>`;
  }).join("");
}

function renderSessions(status, r) {
  const kinds = [...r.cur.dec.keys()].sort();
  const cells = kinds.map((k) => `<tr><td>${esc(k)}</td><td class="n">${r.cur.dec.get(k)}</td><td class="n">${r.decRate.has(k) ? r.decRate.get(k).toFixed(1) : "—"}</td></tr>`).join("");
  $("sessions").innerHTML = `<p>Session table (header / source_ip affinity): <b id="session-count">${status.sessions}</b> of ${status.max_sessions}. Cookie sessions live in the clients' cookies.</p>
    <table><tr><th>affinity decision</th><th>total</th><th>per second</th></tr>${cells}</table>`;
}

// ---- one refresh
async function refresh() {
  try {
    const [status, pools, metrics] = await Promise.all([json("/v1/status"), json("/v1/pools"), api("GET", "/metrics")]);
    const r = rates({t: Date.now(), series: parseMetrics(metrics)});
    $("version").textContent = "v" + status.version;
    renderLbs(status);
    renderPools(pools, r);
    renderSessions(status, r);
    $("error").textContent = "";
    $("refreshed").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.loaded = "yes";
  } catch (e) {
    $("error").textContent = e.message;
  }
}

// ---- changes, through the admin API
async function change(k, body) {
  const [pool, endpoint] = k.split("/");
  await api("PATCH", "/v1/pools/" + encodeURIComponent(pool) + "/endpoints/" + encodeURIComponent(endpoint), body);
  $("action").textContent = "applied " + JSON.stringify(body) + " to " + k;
  document.body.dataset.action = "done";
  await refresh();
}

document.addEventListener("click", (ev) => {
  const b = ev.target.closest("button[data-act]");
  if (!b) return;
  const k = b.dataset.ep;
  let body;
  if (b.dataset.act === "drain") {
    if (!confirm("Disable " + k + "? Its sessions drain, new ones go elsewhere.")) return;
    body = {enabled: false};
  } else if (b.dataset.act === "enable") body = {enabled: true};
  else body = {weight: Number(document.querySelector(`input[data-weight="${CSS.escape(k)}"]`).value)};
  change(k, body).catch((e) => { $("error").textContent = e.message; });
});

$("tokenform").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = $("token").value;
  sessionStorage.setItem("tether-token", token);
  $("token").value = "";
  refresh();
});

// ---- the fragment: a token at most (a login, never an action). The page
// changes nothing from its URL: a change is a click on one of its buttons.
function tokenFromFragment() {
  const f = new URLSearchParams(location.hash.slice(1));
  if (f.has("token")) {
    token = f.get("token");
    sessionStorage.setItem("tether-token", token);
  }
  if (location.hash) history.replaceState(null, "", location.pathname);
}

tokenFromFragment();
refresh().then(() => setInterval(refresh, REFRESH_MS));
