// holdfast dev's dashboard: the state from /_holdfast/events (server-sent events), rendered.
"use strict";

const state = { invocations: new Map(), tasks: new Map(), queues: [], reloads: [], app: "" };
const $ = (id) => document.getElementById(id);
let pending = false;

function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function ms(value) {
  if (value === null || value === undefined) return "";
  return value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${value.toFixed(value < 10 ? 1 : 0)} ms`;
}

function clock(epochSeconds) {
  if (!epochSeconds) return "";
  const d = new Date(epochSeconds * 1000);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function isoClock(iso) {
  return iso ? clock(Date.parse(iso) / 1000) : "";
}

function between(from, to) {
  if (!from || !to) return "";
  return ms(Date.parse(to) - Date.parse(from));
}

function schedule() {
  if (!pending) {
    pending = true;
    requestAnimationFrame(() => { pending = false; render(); });
  }
}

function request(inv) {
  if (inv.kind === "http") {
    return `<span class="method">${esc(inv.method)}</span>${esc(inv.path)}`;
  }
  if (inv.kind === "init") return `<span class="kind">init · app started</span>`;
  return `<span class="kind">invoke</span>`;
}

function status(inv) {
  if (inv.kind === "http") {
    if (inv.status === null) return inv.outcome === "running" ? "" : `<span class="status s0">—</span>`;
    return `<span class="status s${Math.floor(inv.status / 100)}">${inv.status}</span>`;
  }
  if (inv.outcome === "running") return "";
  return inv.failed ? `<span class="status s5">err</span>` : `<span class="status s2">ok</span>`;
}

function bar(inv, scale) {
  const width = (value) => `${Math.max(0.4, (100 * (value || 0)) / scale)}%`;
  let html = "";
  if (inv.response_ms !== null) {
    html += `<div class="seg seg-response" title="response: ${ms(inv.response_ms)}" style="width:${width(inv.response_ms)}"></div>`;
  }
  let after = inv.post_response_ms;
  if (inv.drain_cut && inv.duration_ms !== null && inv.response_ms !== null) {
    after = inv.duration_ms - inv.response_ms;
  }
  if (after !== null && after !== undefined) {
    const cut = inv.drain_cut ? " cut" : "";
    const label = inv.drain_cut ? "cut by the deadline" : "after the response";
    html += `<div class="seg seg-after${cut}" title="${label}: ${ms(after)}" style="width:${width(after)}"></div>`;
  }
  if (inv.outcome === "frozen") {
    html += `<span class="freeze" title="frozen at ${clock(inv.frozen_at)}">❄</span>`;
  }
  return html;
}

function badges(inv) {
  const out = [];
  if (inv.response_ms !== null) out.push(`<span title="time to the response">${ms(inv.response_ms)}</span>`);
  if (inv.post_response_ms !== null) out.push(`<span class="after" title="after the response, until the freeze">+${ms(inv.post_response_ms)}</span>`);
  if (inv.cold) out.push(`<span class="badge badge-cold" title="cold start: init ${ms(inv.init_ms)}">cold ${ms(inv.init_ms)}</span>`);
  if (inv.drain_cut) out.push(`<span class="badge badge-err" title="${esc((inv.cut || []).join(", "))}">cut by the deadline${inv.spilled ? ` · ${inv.spilled} spilled` : ""}</span>`);
  else if (inv.outcome === "timeout") out.push(`<span class="badge badge-err">timed out</span>`);
  else if (inv.outcome === "exit") out.push(`<span class="badge badge-err">runtime exited</span>`);
  else if (inv.outcome === "init_error") out.push(`<span class="badge badge-err">init failed</span>`);
  if (inv.error_type) out.push(`<span class="badge badge-err" title="function error">${esc(inv.error_type)}</span>`);
  if (inv.left_running.length) out.push(`<span class="badge badge-warn">${inv.left_running.length} left running</span>`);
  return out.join("");
}

function invocationRow(inv, scale) {
  const classes = ["inv", inv.failed ? "failed" : "", inv.outcome === "running" ? "running" : ""].join(" ");
  let html = `<div class="${classes}" data-testid="invocation" data-kind="${esc(inv.kind)}" data-outcome="${esc(inv.outcome)}" data-id="${esc(inv.id)}">
    <span class="time" title="request id ${esc(inv.id)}${inv.frozen_at ? "\nfrozen at " + clock(inv.frozen_at) : ""}${inv.duration_ms !== null ? "\nduration " + ms(inv.duration_ms) : ""}">${clock(inv.started_at)}</span>
    <span class="req">${request(inv)}</span>
    <span>${status(inv)}</span>
    <div class="bar">${bar(inv, scale)}</div>
    <div class="nums">${badges(inv)}</div>`;
  for (const item of inv.left_running) {
    html += `<div class="leftover" data-testid="left-running">⚠ ${esc(item.kind)} <code>${esc(item.name)}</code> still running at the freeze, started at <code>${esc(item.where)}</code>
      <span class="hint">— frozen until the next request: hand it to <code>holdfast.after_response()</code> or a TaskQueue</span></div>`;
  }
  return html + "</div>";
}

function renderTimeline() {
  const rows = [...state.invocations.values()].sort((a, b) => b.seq - a.seq).slice(0, 200);
  $("timeline-empty").hidden = rows.length > 0;
  const scale = Math.max(50, ...rows.map((inv) => {
    const after = inv.drain_cut ? (inv.duration_ms || 0) - (inv.response_ms || 0) : inv.post_response_ms || 0;
    return (inv.response_ms || 0) + after;
  })) * 1.08;
  const reloads = [...state.reloads].sort((a, b) => b.generation - a.generation);
  let html = "";
  for (const inv of rows) {
    while (reloads.length && reloads[0].generation > inv.generation) {
      const reload = reloads.shift();
      html += `<div class="reload">↻ reloaded${reload.changes.length ? ": " + esc(reload.changes.join(", ")) : ""}</div>`;
    }
    html += invocationRow(inv, scale);
  }
  const box = $("timeline");
  box.querySelectorAll(".inv, .reload").forEach((node) => node.remove());
  box.insertAdjacentHTML("beforeend", html);
}

function renderTasks() {
  const rows = [...state.tasks.values()].sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at));
  $("tasks-empty").hidden = rows.length > 0;
  $("tasks").innerHTML = rows.map((t) => `<tr data-testid="task" data-state="${esc(t.state)}" data-id="${esc(t.id)}">
      <td class="mono">${esc(t.task)}<div class="muted">${esc(t.queue)}</div></td>
      <td class="mono" title="${esc(t.id)}">${esc(t.id.slice(0, 12))}</td>
      <td><span class="state state-${esc(t.state)}">${esc(t.state)}</span></td>
      <td>${esc(t.attempts)}</td>
      <td class="mono">${isoClock(t.created_at)}</td>
      <td class="mono">${between(t.created_at, t.started_at)}</td>
      <td class="mono">${between(t.started_at, t.finished_at)}</td>
      <td class="error">${esc(t.error || "")}</td>
      <td><a href="${esc(t.status_url)}" target="_blank" rel="noopener">${esc(t.status_url)}</a></td>
    </tr>`).join("");
  $("queues").innerHTML = state.queues.map((q) =>
    `<span>queue <b>${esc(q.name)}</b> · ${esc(q.url)}</span>`).join("") ||
    `<span>no TaskQueue found in the app</span>`;
}

function renderStats() {
  const all = [...state.invocations.values()];
  const count = (test) => all.filter(test).length;
  const stats = [
    ["invocations", count((i) => i.kind !== "init"), false],
    ["cold starts", count((i) => i.cold), false],
    ["errors", count((i) => i.failed), true],
    ["left running", all.reduce((n, i) => n + i.left_running.length, 0), true],
    ["tasks", state.tasks.size, false],
  ];
  $("stats").innerHTML = stats.map(([name, value, bad]) =>
    `<span class="stat${bad && value ? " bad" : ""}"><b>${value}</b>${name}</span>`).join("");
  $("app-name").textContent = state.app;
}

function render() {
  renderTimeline();
  renderTasks();
  renderStats();
}

function live(kind, text) {
  $("live").dataset.state = kind;
  $("live-text").textContent = text;
}

function connect() {
  const source = new EventSource("/_holdfast/events");
  source.addEventListener("open", () => live("live", "live"));
  source.addEventListener("error", () => live("down", "reconnecting…"));
  source.addEventListener("snapshot", (event) => {
    const snap = JSON.parse(event.data);
    state.invocations = new Map(snap.invocations.map((inv) => [inv.id, inv]));
    state.tasks = new Map(snap.tasks.map((task) => [task.id, task]));
    state.queues = snap.queues;
    state.reloads = snap.reloads || [];
    state.app = snap.app || "";
    live("live", "live");
    schedule();
  });
  source.addEventListener("invocation", (event) => {
    const inv = JSON.parse(event.data);
    state.invocations.set(inv.id, inv);
    schedule();
  });
  source.addEventListener("task", (event) => {
    const task = JSON.parse(event.data);
    state.tasks.set(task.id, task);
    schedule();
  });
  source.addEventListener("queues", (event) => {
    state.queues = JSON.parse(event.data).queues;
    schedule();
  });
  source.addEventListener("reload", (event) => {
    state.reloads.push(JSON.parse(event.data));
    schedule();
  });
}

connect();
