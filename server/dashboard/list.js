// list.js: the counts (GET /metrics, and the loaded rows), the task list (filters,
// search, Load more, rows, keyboard and click selection) and the bulk cancel / retry of ticked rows.
// Classic script of the stepwise dashboard (index.html loads api.js, list.js, task.js,
// steps.js, timeline.js, live.js, main.js in that order). The files share top-level names:
// each uses what an earlier one declares; only main.js runs the page at load.
"use strict";

// ---------- metrics (engine-wide counts) ----------
function parseMetrics(text) {
  const m = { inFlight: null, queued: null, started: {}, finished: {} };
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const [, name, labelText, valueText] = match;
    const value = Number(valueText);
    const labels = {};
    for (const l of (labelText || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    if (name === "stepwise_tasks_in_flight") m.inFlight = value;
    else if (name === "stepwise_tasks_queued") m.queued = value;
    else if (name === "stepwise_tasks_started_total") m.started[labels.workflow] = (m.started[labels.workflow] || 0) + value;
    else if (name === "stepwise_tasks_finished_total") {
      const per = (m.finished[labels.workflow] ||= {});
      per[labels.outcome] = (per[labels.outcome] || 0) + value;
    }
  }
  return m;
}
let metricsBusy = false;
async function loadMetrics() {
  if (metricsBusy) return;
  metricsBusy = true;
  try {
    const response = await fetch("metrics", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    state.metrics = parseMetrics(await response.text());
    state.metricsError = null;
    for (const workflow of Object.keys(state.metrics.started)) addWorkflow(workflow);
  } catch (error) {
    state.metricsError = error.message || String(error);
  } finally {
    metricsBusy = false;
  }
  renderCounts();
}
function stat(key, value, label, cls, title, onClick) {
  const node = el(onClick ? "button" : "div", {
    class: `stat ${cls || ""} ${value === 0 ? "zero" : ""}`, "data-count": key, title, type: onClick ? "button" : null,
  }, el("span", { class: "n", text: value == null ? "—" : String(value) }), el("span", { class: "l", text: label }));
  if (onClick) node.addEventListener("click", onClick);
  return node;
}
function renderCounts() {
  const m = state.metrics;
  const engine = $("counts-engine");
  const since = $("counts-since");
  if (!m) {
    engine.replaceChildren(el("span", { class: "muted small", text: state.metricsError ? `metrics unavailable (${state.metricsError})` : "loading…" }));
    since.replaceChildren();
  } else {
    engine.replaceChildren(
      stat("engine-in-flight", m.inFlight, "in flight", "s-running", "stepwise_tasks_in_flight: unfinished tasks (pending or running) in memory"),
      stat("engine-queued", m.queued, "queued", "s-pending", "stepwise_tasks_queued: held back by a max_in_flight cap"),
    );
    const workflow = filters().workflow;
    const pick = (table) => (workflow ? { [workflow]: table[workflow] || (table === m.started ? 0 : {}) } : table);
    const started = Object.values(pick(m.started)).reduce((a, b) => a + b, 0);
    const outcomes = { succeeded: 0, failed: 0, canceled: 0 };
    for (const per of Object.values(pick(m.finished))) {
      for (const [outcome, n] of Object.entries(per || {})) outcomes[outcome] = (outcomes[outcome] || 0) + n;
    }
    since.replaceChildren(
      stat("since-started", started, "started", "", "stepwise_tasks_started_total"),
      ...Object.entries(outcomes).map(([outcome, n]) =>
        stat(`since-${outcome}`, n, outcome, `s-${outcome}`, `stepwise_tasks_finished_total{outcome="${outcome}"}`)),
    );
    $("since-scope").textContent = workflow ? `· workflow ${workflow}, from /metrics` : "· all workflows, from /metrics";
  }
  // Loaded rows, after every filter: an honest count of what the list holds, not of the engine.
  const loaded = $("counts-loaded");
  if (!state.listLoaded) {
    loaded.replaceChildren(el("span", { class: "muted small", text: state.mode === "locked" ? "sign in to list tasks" : "loading…" }));
    $("loaded-scope").textContent = "· loaded rows";
    return;
  }
  const rows = visibleTasks();
  const by = Object.fromEntries(STATUSES.map((s) => [s, 0]));
  for (const task of rows) by[task.status] = (by[task.status] || 0) + 1;
  const current = filters().status;
  loaded.replaceChildren(...STATUSES.map((s) => stat(`loaded-${s}`, by[s], s, `s-${s}`,
    current === s ? "Show all statuses" : `Show only ${s} tasks`, () => setStatusFilter(current === s ? "" : s))));
  $("loaded-scope").textContent = `· ${rows.length} loaded row${rows.length === 1 ? "" : "s"}${state.cursor ? ", more on the server" : ""}`;
}

// ---------- task list ----------
function filters() {
  return { q: $("filter-q").value.trim(), status: $("filter-status").value, workflow: $("filter-workflow").value.trim(), since: Number($("filter-time").value) || 0 };
}
function visibleTasks() {
  const { since } = filters();
  if (!since) return state.tasks;
  const cutoff = Date.now() - since * 1000;
  return state.tasks.filter((t) => ms(t.created_at) >= cutoff);
}
function addWorkflow(name) {
  if (!name || state.workflows.has(name)) return;
  state.workflows.add(name);
  $("workflow-options").replaceChildren(...[...state.workflows].sort().map((w) => el("option", { value: w })));
}
/** Loads the first page ("reset"), reloads what is shown ("refresh") or appends the next page ("more"). */
async function loadList(mode) {
  if (mode === "refresh" && state.listBusy) return false;
  if (mode === "more" && !state.cursor) return false;
  const gen = mode === "more" ? state.listGen : ++state.listGen;
  const f = filters();
  const q = new URLSearchParams();
  if (f.q) q.set("q", f.q);
  if (f.status) q.set("status", f.status);
  if (f.workflow) q.set("workflow", f.workflow);
  const limit = mode === "refresh" ? Math.min(200, Math.max(PAGE, state.tasks.length)) : PAGE;
  q.set("limit", String(limit));
  if (mode === "more") q.set("cursor", state.cursor);
  state.listBusy = true;
  $("refresh").disabled = true;
  try {
    const { data } = await api("GET", `v1/tasks?${q}`);
    if (gen !== state.listGen) return false;
    if (state.mode !== "admin" && state.mode !== "open") setMode(state.token ? "admin" : "open");
    const incoming = data.tasks || [];
    if (mode === "more") {
      const have = new Set(state.tasks.map((t) => t.id));
      state.tasks = state.tasks.concat(incoming.filter((t) => !have.has(t.id)));
      state.cursor = data.next_cursor;
    } else if (mode === "reset" || state.tasks.length <= limit || incoming.length === 0) {
      state.tasks = incoming;
      state.cursor = data.next_cursor;
    } else {
      // More rows were loaded than one request can refresh: keep the older ones after the
      // refreshed window (with their cursor) so "more" continues where it was.
      const fresh = new Set(incoming.map((t) => t.id));
      const last = incoming[incoming.length - 1];
      const at = state.tasks.findIndex((t) => t.id === last.id);
      if (at >= 0) state.tasks = incoming.concat(state.tasks.slice(at + 1).filter((t) => !fresh.has(t.id)));
      else { state.tasks = incoming; state.cursor = data.next_cursor; }
    }
    // A task the detail pane follows live may be newer than the list's copy.
    if (state.task) state.tasks = state.tasks.map((t) => (t.id === state.task.id && newer(state.task, t) ? state.task : t));
    for (const task of state.tasks) addWorkflow(task.workflow);
    state.listLoaded = true;
    $("list-updated").textContent = `updated ${clock(new Date().toISOString())}`;
    showError("");
    renderList();
    return true;
  } catch (error) {
    if (gen !== state.listGen) return false;
    if (error.status === 401) needLogin(!!state.token);
    else {
      showError(`Could not load the task list: ${error}`);
      // Before the first answer the header said "connecting…"; it must not stay so.
      if (["unknown", "offline", "error"].includes(state.mode)) setMode(error.status === 0 ? "offline" : "error");
    }
    return false;
  } finally {
    state.listBusy = false;
    $("refresh").disabled = false;
  }
}
function newer(a, b) { return ms(a.updated_at) >= ms(b.updated_at); }

function taskRow(task) {
  const total = task.total_steps || 0;
  const done = task.completed_steps || 0;
  const took = task.completed_at ? elapsed(task.created_at, task.completed_at) : elapsed(task.created_at, null);
  const params = task.params && Object.keys(task.params).length ? JSON.stringify(task.params) : "";
  const checked = state.checked.has(task.id);
  return el("tr", {
    "data-task-id": task.id, "data-status": task.status, tabindex: "0", class: checked ? "checked" : null,
    "aria-selected": task.id === state.selected ? "true" : "false",
  },
    el("td", { class: "check" }, el("input", { type: "checkbox", class: "row-check", checked, "aria-label": `Select ${task.id}` })),
    el("td", {}, badge(task.status)),
    el("td", {},
      el("span", { class: "cell-line" }, el("span", { class: "tid", title: task.id, text: shortId(task.id) }),
        " ", el("span", { class: "row-workflow", title: `workflow ${task.workflow}`, text: task.workflow })),
      task.error ? el("span", { class: "cell-line row-error", title: task.error, text: task.error }) : null,
      !task.error && params ? el("span", { class: "cell-line row-params", title: params, text: params }) : null),
    el("td", { class: "num" }, el("span", { class: "cell-line", title: progressText(task) }, `${done}/${total}`,
      el("span", { class: "mini", title: `${done} of ${total} steps succeeded` }, el("i", { style: `width:${total ? (100 * done) / total : 0}%` }))),
      task.status === "running" && task.current_step ? el("span", { class: "cell-line muted small", text: `step ${task.current_step}` }) : null,
      task.queue_position ? el("span", { class: "cell-line muted small", text: `queued #${task.queue_position}` }) : null),
    el("td", { class: "num" }, el("span", { class: "cell-line" }, relTime(task.created_at)),
      el("span", { class: "cell-line muted small", title: task.completed_at ? "from created to ended" : "running for" }, took)),
  );
}
function renderList() {
  const body = $("task-rows");
  const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.taskId : null;
  const rows = visibleTasks();
  body.replaceChildren(...rows.map(taskRow));
  if (focused) {
    const again = body.querySelector(`tr[data-task-id="${focused}"]`);
    if (again) again.focus({ preventScroll: true });
  }
  const f = filters();
  const empty = $("list-empty");
  empty.hidden = !state.listLoaded || rows.length > 0;
  if (!empty.hidden) {
    empty.textContent = state.tasks.length && f.since
      ? "No loaded task was created in that time window."
      : (f.q || f.status || f.workflow ? "No task matches these filters." : "No tasks yet. Start one with POST /v1/tasks.");
  }
  // "Load more" only when the next page can hold rows that pass the time filter (newest first).
  const oldest = state.tasks[state.tasks.length - 1];
  const pastWindow = f.since && oldest && ms(oldest.created_at) < Date.now() - f.since * 1000;
  $("more").hidden = !state.listLoaded || !state.cursor || !!pastWindow;
  $("list-note").textContent = !state.listLoaded ? ""
    : `${rows.length} shown${rows.length !== state.tasks.length ? ` of ${state.tasks.length} loaded` : ""}` +
      (state.cursor ? (pastWindow ? " · every task in this window is loaded" : " · more on the server") : " · end of list");
  renderBulk();
  renderCounts();
}
function updateRow(task) {
  const i = state.tasks.findIndex((t) => t.id === task.id);
  if (i < 0) return;
  if (!newer(task, state.tasks[i])) return;
  state.tasks[i] = task;
  const old = $("task-rows").querySelector(`tr[data-task-id="${task.id}"]`);
  if (old) {
    const wasFocused = document.activeElement === old;
    const row = taskRow(task);
    old.replaceWith(row);
    if (wasFocused) row.focus({ preventScroll: true });
  }
  renderBulk();   // a checked row may have become (in)eligible for cancel or retry
  renderCounts();
}
function setStatusFilter(status) {
  $("filter-status").value = status;
  onFiltersChanged();
}
function onFiltersChanged() {
  writeUrl();
  state.tasks = [];
  state.cursor = null;
  state.listLoaded = false;
  renderList();
  loadList("reset");
  renderCounts();
}
$("filter-status").addEventListener("change", onFiltersChanged);
$("filter-time").addEventListener("change", () => { writeUrl(); renderList(); });
let workflowTimer = null;
for (const id of ["filter-workflow", "filter-q"]) {
  $(id).addEventListener("input", () => {
    clearTimeout(workflowTimer);
    workflowTimer = setTimeout(onFiltersChanged, 350);
  });
}
$("filters").addEventListener("submit", (event) => { event.preventDefault(); clearTimeout(workflowTimer); onFiltersChanged(); });
$("more").addEventListener("click", () => loadList("more"));
$("refresh").addEventListener("click", () => { loadList("refresh"); loadMetrics(); refreshSelected(); });
$("task-rows").addEventListener("click", (event) => {
  const row = event.target.closest("tr[data-task-id]");
  if (!row) return;
  if (event.target.closest("td.check")) {
    // The checkbox cell ticks the row for bulk actions; it does not open the task.
    const box = row.querySelector(".row-check");
    if (event.target !== box) box.checked = !box.checked;
    toggleChecked(row.dataset.taskId, box.checked);
    return;
  }
  select(row.dataset.taskId);
});
$("task-rows").addEventListener("keydown", (event) => {
  const row = event.target.closest("tr[data-task-id]");
  if (!row) return;
  if (event.target.classList.contains("row-check")) return;
  if (event.key === "Enter" || event.key === " ") { event.preventDefault(); select(row.dataset.taskId); }
  else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    event.preventDefault();
    const next = event.key === "ArrowDown" ? row.nextElementSibling : row.previousElementSibling;
    if (next) next.focus();
  }
});

// ---------- bulk cancel / retry of the checked rows ----------
const CAN = { cancel: (t) => t.status === "pending" || t.status === "running", retry: (t) => t.status === "failed" };
function checkedTasks() { return visibleTasks().filter((t) => state.checked.has(t.id)); }
function toggleChecked(id, on) {
  if (on) state.checked.add(id); else state.checked.delete(id);
  const row = $("task-rows").querySelector(`tr[data-task-id="${id}"]`);
  if (row) row.classList.toggle("checked", on);
  renderBulk();
}
function renderBulk() {
  // Only rows on screen stay checked: a search or filter never acts on tasks you cannot see.
  const visible = new Set(visibleTasks().map((t) => t.id));
  for (const id of [...state.checked]) if (!visible.has(id)) state.checked.delete(id);
  const tasks = checkedTasks();
  const n = { cancel: tasks.filter(CAN.cancel).length, retry: tasks.filter(CAN.retry).length };
  $("bulk").hidden = tasks.length === 0 && !state.bulkBusy;
  $("bulk-count").textContent = String(tasks.length);
  for (const action of ["cancel", "retry"]) {
    const button = $(`bulk-${action}`);
    button.textContent = `${action === "cancel" ? "Cancel" : "Retry"} ${n[action]}`;
    button.disabled = !isAdmin() || n[action] === 0 || state.bulkBusy;
    button.title = !isAdmin() ? "Sign in with the API token first"
      : `${action} the ${n[action]} checked task${n[action] === 1 ? "" : "s"} that ${action === "cancel" ? "are pending or running" : "failed"}`;
  }
  const all = $("select-all");
  all.checked = visible.size > 0 && tasks.length === visible.size;
  all.indeterminate = tasks.length > 0 && tasks.length < visible.size;
}
$("select-all").addEventListener("change", (event) => {
  for (const task of visibleTasks()) {
    if (event.target.checked) state.checked.add(task.id); else state.checked.delete(task.id);
  }
  renderList();
});
$("bulk-clear").addEventListener("click", () => { state.checked.clear(); $("bulk-result").replaceChildren(); renderList(); });
/** Sends `action` for every eligible checked task (four at a time); a failure is listed and the others go on. */
async function bulkAct(action) {
  const targets = checkedTasks().filter(CAN[action]);
  if (!targets.length || state.bulkBusy) return;
  state.bulkBusy = true;
  renderBulk();
  const lines = [];
  let ok = 0;
  let next = 0;
  const worker = async () => {
    while (next < targets.length) {
      const task = targets[next++];
      $("bulk-status").textContent = `${action}: ${next} of ${targets.length}…`;
      try {
        const { data } = await api("POST", `v1/tasks/${encodeURIComponent(task.id)}/${action}`);
        ok += 1;
        state.checked.delete(task.id);
        updateRow(data);
        if (data.id === state.selected) { applyTask(data); scheduleJournal(); }
      } catch (error) {
        lines.push(el("li", { class: "fail", "data-task-id": task.id }, el("span", { class: "tid", title: task.id, text: shortId(task.id) }), `: ${error}`));
        if (error.status === 401) needLogin(true);
      }
    }
  };
  try {
    await Promise.all([worker(), worker(), worker(), worker()]);
  } finally {
    state.bulkBusy = false;
    const verb = action === "cancel" ? "Canceled" : "Retried";
    lines.unshift(el("li", { class: ok ? "ok" : "fail", "data-bulk": action, text: `${verb} ${ok} of ${targets.length}${ok < targets.length ? `; ${targets.length - ok} failed:` : "."}` }));
    $("bulk-result").replaceChildren(...lines);
    $("bulk-status").textContent = "";
    renderList();
    loadList("refresh");
    if (state.selected && !state.source) refreshSelected();
  }
}
$("bulk-cancel").addEventListener("click", () => bulkAct("cancel"));
$("bulk-retry").addEventListener("click", () => bulkAct("retry"));
