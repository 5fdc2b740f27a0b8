// Tandem console: renders the live feed (/api/v1/live, server-sent events) of the
// server that served this page. Every server answers for the whole array, so the page
// keeps working when its server becomes a mirror; a server that does not answer is red.
"use strict";

const HISTORY = 120; // samples kept for the charts (one a second: two minutes)
const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#ff7f0e"];

const history = { times: [], ops: {}, memory: {} };
let selected = null;
let lastView = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c === null || c === undefined ? "" : String(c)));
  return node;
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return n.toFixed(n < 10 && i > 0 ? 1 : 0) + " " + units[i];
}

function num(v) { return v === null || v === undefined ? "–" : String(v); }

function toast(text) {
  const t = document.getElementById("toast");
  t.textContent = text;
  t.className = "show";
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.className = ""; }, 6000);
}

// --- the array ---

function serverCard(s) {
  const memory = s.used_memory_bytes && s.data_storage_bytes ? Math.min(100, (100 * s.used_memory_bytes) / s.data_storage_bytes) : 0;
  const card = el("div", {
    class: "server" + (selected === s.name ? " selected" : ""),
    id: "server-" + s.name, "data-state": s.state, "data-light": s.light, "data-role": s.role,
    onclick: () => { selected = s.name; render(lastView); loadClients(); },
  },
    el("div", { class: "title" }, el("span", { class: "light", "data-light": s.light, title: s.light }), s.name,
      el("span", { class: "state" }, s.state)),
    el("dl", {},
      el("dt", {}, "role"), el("dd", {}, s.role),
      el("dt", {}, "term"), el("dd", {}, num(s.term)),
      el("dt", {}, "commit / applied"), el("dd", {}, num(s.commit_index) + " / " + num(s.applied_index)),
      el("dt", {}, "lag"), el("dd", {}, num(s.lag)),
      el("dt", {}, "keys"), el("dd", {}, num(s.keys)),
      el("dt", {}, "clients"), el("dd", {}, num(s.clients)),
      el("dt", {}, "ops/s"), el("dd", {}, s.ops_per_sec === null || s.ops_per_sec === undefined ? "–" : Math.round(s.ops_per_sec)),
      el("dt", {}, "memory"), el("dd", {}, bytes(s.used_memory_bytes) + " of " + bytes(s.data_storage_bytes)),
    ),
    el("div", { class: "bar", title: memory.toFixed(1) + "% of data-storage" }, el("div", { style: "width:" + memory + "%" })),
  );
  if (s.last_error) card.append(el("div", { class: "error" }, s.last_error));
  if (s.reachable) {
    card.append(el("button", { class: "danger", onclick: (e) => { e.stopPropagation(); askStop(s); } }, "Stop…"));
  }
  return card;
}

function render(view) {
  if (!view) return;
  lastView = view;
  document.getElementById("cluster-name").textContent = view.name;
  document.getElementById("answered-by").textContent = view.answered_by;
  document.getElementById("version").textContent = view.version;
  const stripes = document.getElementById("stripes");
  stripes.replaceChildren(...view.stripes.map((st) => el("div", { class: "stripe", id: "stripe-" + st.name },
    el("div", { class: "stripe-head" },
      el("b", {}, "Stripe " + st.name),
      el("div", {}, "slots " + st.slots.map((r) => r[0] + "–" + r[1]).join(", ")),
      el("div", {}, "active " + (st.active || "none")),
      el("div", {}, "term " + num(st.term) + ", commit " + num(st.commit_index)),
      el("button", { onclick: () => askFailover(st) }, "Failover…")),
    el("div", { class: "servers" }, ...st.servers.map(serverCard)))));
  if (!selected) {
    const first = view.stripes.flatMap((s) => s.servers).find((s) => s.kind === "server");
    if (first) { selected = first.name; loadClients(); }
  }
}

// --- charts: one line per server, drawn on a canvas ---

function sample(view) {
  history.times.push(view.time_ms);
  for (const s of view.stripes.flatMap((st) => st.servers)) {
    if (s.kind !== "server") continue;
    (history.ops[s.name] = history.ops[s.name] || []).push(s.reachable ? s.ops_per_sec || 0 : null);
    (history.memory[s.name] = history.memory[s.name] || []).push(s.reachable ? s.used_memory_bytes || 0 : null);
  }
  const n = history.times.length;
  for (const series of [history.ops, history.memory]) {
    for (const name of Object.keys(series)) {
      while (series[name].length < n) series[name].unshift(null);
      if (series[name].length > HISTORY) series[name].splice(0, series[name].length - HISTORY);
    }
  }
  if (n > HISTORY) history.times.splice(0, n - HISTORY);
}

function drawChart(id, series, format) {
  const canvas = document.getElementById(id);
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, left = 64, bottom = 16;
  ctx.clearRect(0, 0, w, h);
  let max = 1;
  for (const values of Object.values(series)) for (const v of values) if (v !== null && v > max) max = v;
  ctx.strokeStyle = "#eaecf0"; ctx.fillStyle = "#667085"; ctx.font = "11px system-ui";
  for (let i = 0; i <= 4; i++) {
    const y = (h - bottom) * (1 - i / 4);
    ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(w, y); ctx.stroke();
    ctx.fillText(format((max * i) / 4, max), 2, Math.max(10, y));
  }
  Object.keys(series).sort().forEach((name, i) => {
    const values = series[name];
    ctx.strokeStyle = PALETTE[i % PALETTE.length]; ctx.lineWidth = 2; ctx.beginPath();
    let pen = false;
    values.forEach((v, j) => {
      if (v === null) { pen = false; return; }
      const x = left + ((w - left) * j) / Math.max(1, HISTORY - 1);
      const y = (h - bottom) * (1 - v / max);
      if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      pen = true;
    });
    ctx.stroke();
  });
  const legend = document.getElementById("legend");
  legend.replaceChildren(...Object.keys(series).sort().map((name, i) =>
    el("span", {}, el("i", { style: "background:" + PALETTE[i % PALETTE.length] }), name)));
}

// --- clients and events ---

async function loadClients() {
  if (!selected) return;
  document.getElementById("clients-of").textContent = selected;
  const body = document.querySelector("#clients tbody");
  try {
    const answer = await fetch("api/v1/servers/" + encodeURIComponent(selected) + "/clients");
    const json = await answer.json();
    if (!answer.ok) throw new Error(json.error ? json.error.message : answer.statusText);
    body.replaceChildren(...json.clients.map((c) => el("tr", {},
      el("td", {}, c.id), el("td", {}, c.address), el("td", {}, c.name), el("td", {}, c.age_s + " s"),
      el("td", {}, c.idle_s + " s"), el("td", {}, c.last_command), el("td", {}, c.session || "–"))));
  } catch (e) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 7 }, "not available: " + e.message)));
  }
}

function renderEvents(events) {
  const list = document.getElementById("events");
  list.replaceChildren(...events.slice().reverse().map((e) => el("li", { "data-kind": e.kind },
    new Date(e.time_ms).toLocaleTimeString() + " ", el("b", {}, e.server + " "), el("span", { class: "kind" }, e.kind), e.message)));
}

// --- procedures: each asks for the name to be typed, then calls the API with the token ---

function confirmWith(text, word, withForce) {
  return new Promise((resolve) => {
    const dialog = document.getElementById("confirm");
    document.getElementById("confirm-text").textContent = text;
    document.getElementById("confirm-word").textContent = word;
    document.getElementById("confirm-force-row").style.display = withForce ? "" : "none";
    document.getElementById("confirm-force").checked = false;
    const input = document.getElementById("confirm-input");
    input.value = "";
    dialog.onclose = () => resolve(dialog.returnValue === "ok" && input.value === word
      ? { force: document.getElementById("confirm-force").checked } : null);
    dialog.showModal();
  });
}

async function call(path, body) {
  const token = document.getElementById("token").value;
  sessionStorage.setItem("tandem-token", token);
  const answer = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: "Bearer " + token },
    body: JSON.stringify(body || {}),
  });
  const json = await answer.json().catch(() => ({}));
  toast(answer.ok ? json.message : "refused (" + answer.status + "): " + (json.error ? json.error.message : answer.statusText));
}

async function askStop(s) {
  const ok = await confirmWith("Stop " + s.name + " (" + s.state + ")?", s.name, s.role === "active");
  if (ok) call("api/v1/servers/" + encodeURIComponent(s.name) + "/stop", { force: ok.force });
}

async function askFailover(st) {
  const ok = await confirmWith("Hand stripe " + st.name + "'s leadership to a PASSIVE-STANDBY mirror?", st.name, false);
  if (ok) call("api/v1/stripes/" + encodeURIComponent(st.name) + "/failover", {});
}

async function askShutdown() {
  const name = lastView ? lastView.name : "";
  const ok = await confirmWith("Stop every server of the array (mirrors and voters first, then actives)?", name, false);
  if (ok) call("api/v1/shutdown", {});
}

// --- the feed ---

function connect() {
  const status = document.getElementById("live-status");
  const feed = new EventSource("api/v1/live");
  feed.addEventListener("view", (message) => {
    const frame = JSON.parse(message.data);
    status.dataset.live = "live";
    status.textContent = "live";
    render(frame.cluster);
    sample(frame.cluster);
    drawChart("chart-ops", history.ops, (v, max) => (max < 10 ? v.toFixed(1) : Math.round(v)) + "/s");
    drawChart("chart-memory", history.memory, bytes);
    renderEvents(frame.events);
  });
  // EventSource reconnects by itself; say so meanwhile.
  feed.onerror = () => { status.dataset.live = "lost"; status.textContent = "connection lost, retrying…"; };
}

document.getElementById("token").value = sessionStorage.getItem("tandem-token") || "";
document.getElementById("shutdown").addEventListener("click", askShutdown);
setInterval(loadClients, 2000);
connect();
