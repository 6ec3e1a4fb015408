// api.js: constants, the shared `state`, small helpers (elements, clocks,
// durations, ids, progress), the API call (`api`, ApiError, errors shown), and the session:
// token in sessionStorage, login form, sign-out, admin mode.
// Classic script of the stepwise dashboard (index.html loads api.js, list.js, task.js,
// steps.js, timeline.js, live.js, main.js in that order). The files share top-level names:
// each uses what an earlier one declares; only main.js runs the page at load.
"use strict";

const TOKEN_KEY = "stepwise.dashboard.token";
const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
const STATUSES = ["pending", "running", "succeeded", "failed", "canceled"];
const ID_RE = /^tsk_[0-9a-f]{32}$/;
const query = new URLSearchParams(location.search);
const PAGE = clampInt(query.get("limit"), 50, 1, 200);
const REFRESH_MS = clampInt(query.get("refresh"), 5, 1, 3600) * 1000;

const $ = (id) => document.getElementById(id);
const state = {
  token: readToken(),
  mode: "unknown",            // admin (token accepted) | open (engine has no token) | locked (401)
  tasks: [], cursor: null, listLoaded: false, listBusy: false, listGen: 0,
  workflows: new Set(),
  metrics: null, metricsError: null,
  selected: null, selGen: 0, task: null, etag: null, source: null, live: "idle",
  journalTimer: null, journalGen: 0, taskBusy: false, events: [],
  acting: false,
  checked: new Set(), bulkBusy: false,   // ids ticked in the list, for bulk cancel/retry
};

// ---------- small helpers ----------
function clampInt(text, fallback, min, max) {
  const n = Number.parseInt(text ?? "", 10);
  return Number.isFinite(n) ? Math.min(max, Math.max(min, n)) : fallback;
}
function readToken() { try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (_) { return ""; } }
function saveToken(token) {
  try { if (token) sessionStorage.setItem(TOKEN_KEY, token); else sessionStorage.removeItem(TOKEN_KEY); } catch (_) { /* storage off */ }
}
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}
function badge(status, extraClass) {
  return el("span", { class: `badge s-${status} ${extraClass || ""}`.trim(), text: status });
}
function setBadge(node, status) {
  node.className = `badge s-${status}`;
  node.textContent = status;
}
const ms = (iso) => (iso ? Date.parse(iso) : NaN);
function pad(n, w = 2) { return String(n).padStart(w, "0"); }
function clock(iso, withMs) {
  const t = ms(iso);
  if (!Number.isFinite(t)) return "—";
  const d = new Date(t);
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}${withMs ? "." + pad(d.getMilliseconds(), 3) : ""}`;
  const today = new Date();
  if (d.toDateString() === today.toDateString()) return time;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}
function duration(millis) {
  if (!Number.isFinite(millis) || millis < 0) return "—";
  if (millis < 1000) return `${Math.round(millis)} ms`;
  const s = millis / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(2) : s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${pad(Math.floor(s % 60))} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${pad(m % 60)} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}
function ago(iso) {
  const t = ms(iso);
  if (!Number.isFinite(t)) return "—";
  const s = Math.max(0, (Date.now() - t) / 1000);
  if (s < 5) return "just now";
  if (s < 60) return `${Math.floor(s)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 172800) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}
/** A <time> that the 1 s ticker keeps current ("12 s ago"). */
function relTime(iso) {
  return el("time", { datetime: iso, title: iso, "data-rel": iso, text: ago(iso) });
}
/** Elapsed time from `from` to `to`, or to now (kept current) while `to` is null. */
function elapsed(from, to) {
  if (!from) return el("span", { text: "—" });
  if (to) return el("span", { class: "num", text: duration(ms(to) - ms(from)) });
  return el("span", { class: "num", "data-elapsed-from": from, text: duration(Date.now() - ms(from)) });
}

/** A task id is `tsk_` + 12 hex of creation time + 20 random: the tail tells tasks apart. */
const shortId = (id) => `tsk_…${id.slice(-10)}`;
/** The stage of a one-model workflow, shown as a flat list of steps as before stages existed. */
const ONE_MODEL_STAGE = "main";
/** The task's stages when worth naming: more than one, or one not named "main". Null for a one-model task, or an older server's (no `stages`). */
function namedStages(task) {
  const stages = Array.isArray(task && task.stages) ? task.stages : [];
  if (!stages.length || (stages.length === 1 && stages[0].name === ONE_MODEL_STAGE)) return null;
  return stages;
}
/** One meaning everywhere: succeeded steps over total, then the step in progress (in a pipeline, its stage; in a parallel stage, how many of its steps run). */
function progressText(task) {
  const done = task.completed_steps || 0;
  const total = task.total_steps || 0;
  let text = `${done}/${total}`;
  if (task.status === "running" && task.current_step) {
    const steps = task.steps || [];
    const step = steps.find((s) => s.index === task.current_step);
    const running = step && steps.filter((s) => s.stage === step.stage && ["starting", "processing"].includes(s.status)).length;
    if (step && namedStages(task)) text += ` · ${step.stage}`;
    text += running > 1 && namedStages(task) ? ` · ${running} steps running` : ` · step ${task.current_step}${step ? ` ${step.status}` : ""}`;
  } else if (task.status === "pending") text += task.queue_position ? ` · queued #${task.queue_position}` : " · pending";
  return text;
}
async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch (_) {
    // No clipboard API (plain http on another host): select the text for Ctrl+C.
    const range = document.createRange();
    range.selectNodeContents($("task-id"));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
  }
  const before = button.textContent;
  button.textContent = "copied";
  setTimeout(() => { button.textContent = before; }, 1200);
}

// ---------- API ----------
class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
  toString() { return `${this.code} (HTTP ${this.status}): ${this.message}`; }
}
async function api(method, path, { etag } = {}) {
  const headers = { Accept: "application/json" };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (etag) headers["If-None-Match"] = etag;
  let response;
  try {
    response = await fetch(path, { method, headers, cache: "no-store" });
  } catch (error) {
    throw new ApiError(0, "network", `cannot reach the engine (${error.message || error})`);
  }
  if (response.status === 304) return { status: 304, etag: response.headers.get("ETag") };
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) {
    const error = body && body.error;
    throw new ApiError(response.status, (error && error.code) || `http_${response.status}`,
      (error && error.message) || response.statusText || "request failed");
  }
  return { status: response.status, data: body, etag: response.headers.get("ETag") };
}
function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.classList.toggle("shown", !!message);
}

// ---------- session: token, login, admin ----------
const isAdmin = () => state.mode === "admin" || state.mode === "open";
function setMode(mode) {
  state.mode = mode;
  const label = {
    admin: "Signed in · cancel/retry enabled",
    open: "No API token on this engine · cancel/retry open to anyone",
    locked: "Signed out · read-only",
    unknown: "connecting…",
    offline: "Engine not answering · retrying",
    error: "The engine refused the task list · see above",
  }[mode];
  const node = $("mode");
  node.dataset.mode = mode;
  node.textContent = label;
  node.title = mode === "open"
    ? "The engine has no [server] api_token: its API accepts cancel and retry without a token, so the dashboard does too."
    : "";
  $("logout").hidden = mode !== "admin";
  $("login-panel").hidden = mode !== "locked";
  $("list-body").hidden = mode === "locked";
  updateActions();
}
function needLogin(rejected) {
  state.tasks = [];
  state.cursor = null;
  state.listLoaded = false;
  setMode("locked");
  $("login-error").textContent = rejected ? "That token was rejected (401 unauthorized)." : "";
  renderList();
  const input = $("token");
  if (document.activeElement !== input) input.focus();
}
$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = $("token").value.trim();
  if (!token) { $("login-error").textContent = "Enter the API token."; return; }
  state.token = token;
  $("login").disabled = true;
  $("login-error").textContent = "checking…";
  try {
    const ok = await loadList("reset");
    if (ok) { saveToken(token); $("token").value = ""; $("login-error").textContent = ""; loadMetrics(); }
    else if (state.mode === "locked") { state.token = ""; saveToken(""); }
  } finally {
    $("login").disabled = false;
  }
});
$("logout").addEventListener("click", () => {
  state.token = "";
  saveToken("");
  state.tasks = [];
  setMode("unknown");
  renderList();
  loadList("reset");
});
