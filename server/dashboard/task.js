// task.js: the selected task: JSON with links and thumbnails, loading and polling
// the task, its facts, and Cancel / Retry (its steps are steps.js's).
// Classic script of the stepwise dashboard (index.html loads api.js, list.js, task.js,
// steps.js, timeline.js, live.js, main.js in that order). The files share top-level names:
// each uses what an earlier one declares; only main.js runs the page at load.
"use strict";

// ---------- JSON with links and image thumbnails ----------
const IMAGE_RE = /^https?:\/\/[^\s"'<>]+\.(?:png|jpe?g|webp|gif)(?:[?#][^\s"'<>]*)?$/i;
const DATA_IMAGE_RE = /^data:image\/(?:png|jpeg|webp|gif);base64,/i;
const isImage = (s) => typeof s === "string" && (IMAGE_RE.test(s) || DATA_IMAGE_RE.test(s));
const isLink = (s) => typeof s === "string" && /^https?:\/\/\S+$/i.test(s);
function images(value, found = []) {
  if (found.length >= 12) return found;
  if (isImage(value)) { if (!found.includes(value)) found.push(value); }
  else if (Array.isArray(value)) value.forEach((v) => images(v, found));
  else if (value && typeof value === "object") Object.values(value).forEach((v) => images(v, found));
  return found;
}
function jsonInto(parent, value, indent) {
  if (value === null || typeof value === "boolean") parent.append(el("span", { class: "j-lit", text: String(value) }));
  else if (typeof value === "number") parent.append(el("span", { class: "j-num", text: String(value) }));
  else if (typeof value === "string") {
    let shown = JSON.stringify(value);
    if (shown.length > 400) shown = `${shown.slice(0, 300)}…" (${value.length} characters)`;
    parent.append(isLink(value)
      ? el("a", { class: "j-str", href: value, target: "_blank", rel: "noopener noreferrer", text: shown })
      : el("span", { class: "j-str", text: shown }));
  } else if (Array.isArray(value)) {
    if (!value.length) { parent.append("[]"); return; }
    parent.append("[\n");
    value.forEach((item, i) => {
      parent.append(indent + "  ");
      jsonInto(parent, item, indent + "  ");
      parent.append(i < value.length - 1 ? ",\n" : "\n");
    });
    parent.append(indent + "]");
  } else if (typeof value === "object") {
    const keys = Object.keys(value);
    if (!keys.length) { parent.append("{}"); return; }
    parent.append("{\n");
    keys.forEach((key, i) => {
      parent.append(indent + "  ", el("span", { class: "j-key", text: JSON.stringify(key) }), ": ");
      jsonInto(parent, value[key], indent + "  ");
      parent.append(i < keys.length - 1 ? ",\n" : "\n");
    });
    parent.append(indent + "}");
  } else parent.append(String(value));
}
function jsonBlock(value) {
  const pre = el("pre", { class: "json" });
  jsonInto(pre, value, "");
  return pre;
}
function thumb(url, alt) {
  const name = url.startsWith("data:") ? "inline image" : url.split(/[?#]/)[0].split("/").slice(-2).join("/");
  const img = el("img", { src: url, alt: alt || name, loading: "lazy", decoding: "async", referrerpolicy: "no-referrer" });
  const box = url.startsWith("data:")
    ? el("span", { class: "thumb", title: "inline image" }, img)
    : el("a", { class: "thumb", href: url, target: "_blank", rel: "noopener noreferrer", title: url }, img);
  img.addEventListener("error", () => {
    box.classList.add("broken");
    box.title = `no preview (the image did not load): ${url.startsWith("data:") ? "inline image" : url}`;
    box.replaceChildren(el("span", { text: box.closest(".small") ? "✕" : `no preview · ${name}` }));
  }, { once: true });
  return box;
}
function thumbs(value, size, alt) {
  const urls = images(value);
  return urls.length ? el("div", { class: `thumbs ${size || ""}` }, urls.map((u) => thumb(u, alt))) : null;
}

// ---------- selected task ----------
function select(id, { fromHash } = {}) {
  id = (id || "").trim();
  if (!ID_RE.test(id)) { showError(`Not a task id: ${JSON.stringify(id)} (expected tsk_ and 32 hex digits).`); return; }
  if (id === state.selected && state.task) return;
  closeStream();
  state.selGen += 1;
  state.selected = id;
  state.task = null;
  state.etag = null;
  state.journalGen += 1;
  $("steps").replaceChildren();
  $("journal-rows").replaceChildren();
  $("journal-count").textContent = "";
  $("timeline-rows").replaceChildren();
  state.events = [];
  setLive("idle");
  $("action-error").textContent = "";
  $("action-result").textContent = "";
  for (const row of $("task-rows").querySelectorAll("tr[data-task-id]")) {
    row.setAttribute("aria-selected", row.dataset.taskId === id ? "true" : "false");
  }
  if (!fromHash) writeUrl();
  $("detail-empty").hidden = false;
  $("detail-body").hidden = true;
  $("detail-empty").textContent = `Loading ${id}…`;
  loadSelected(state.selGen);
  if (window.matchMedia("(max-width: 1000px)").matches) $("detail").scrollIntoView({ block: "start" });
}
async function loadSelected(gen) {
  const id = state.selected;
  try {
    const { data, etag } = await api("GET", `v1/tasks/${encodeURIComponent(id)}`);
    if (gen !== state.selGen) return;
    state.etag = etag;
    applyTask(data);
    loadJournal();
    if (!TERMINAL.has(data.status)) openStream(gen);
    else setLive("ended");
  } catch (error) {
    if (gen !== state.selGen) return;
    $("detail-empty").hidden = false;
    $("detail-body").hidden = true;
    $("detail-empty").textContent = error.status === 404 ? `No task ${id} on this engine.` : `Could not load ${id}: ${error}`;
  }
}
/** Polls the selected task when no stream follows it (a 304 when unchanged). */
async function refreshSelected() {
  const id = state.selected;
  if (!id || state.source || state.taskBusy || !state.task) return;
  const gen = state.selGen;
  state.taskBusy = true;
  try {
    const result = await api("GET", `v1/tasks/${encodeURIComponent(id)}`, { etag: state.etag });
    if (gen !== state.selGen) return;
    if (state.live === "offline") setLive(TERMINAL.has(state.task.status) ? "ended" : "reconnecting");
    if (result.status === 304) {
      if (state.live === "reconnecting") openStream(gen);
      return;
    }
    state.etag = result.etag;
    applyTask(result.data);
    scheduleJournal();
    // Running again (retried elsewhere), or back from offline: follow it live again.
    if (!TERMINAL.has(result.data.status) && state.live !== "polling") openStream(gen);
    else if (TERMINAL.has(result.data.status)) setLive("ended");
  } catch (error) {
    // The list refresh reports connectivity problems; the indicator must not claim a stream.
    if (gen === state.selGen && error.status === 0 && !state.source) setLive("offline");
  } finally {
    state.taskBusy = false;
  }
}
function applyTask(task) {
  if (!task || task.id !== state.selected) return;
  if (state.task && !newer(task, state.task)) return;   // an older copy arrived late
  // A summary (no `steps`, as lists and bulk answers may be) keeps the steps we have.
  if (!Array.isArray(task.steps) && state.task && state.task.steps) task = { ...task, steps: state.task.steps };
  if (!Array.isArray(task.stages) && state.task && state.task.stages) task = { ...task, stages: state.task.stages };
  state.task = task;
  renderTask(task);
  updateRow(task);
  addWorkflow(task.workflow);
}
function fact(dl, label, ...value) { dl.append(el("dt", { text: label }), el("dd", {}, ...value)); }
function renderTask(task) {
  $("detail-empty").hidden = true;
  $("detail-body").hidden = false;
  $("task-id").textContent = task.id;
  setBadge($("task-status"), task.status);
  $("task-workflow").textContent = task.workflow;
  $("task-progress").textContent = progressText(task);
  $("task-progress").title = "steps succeeded / total · the step in progress";
  const bar = $("task-bar");
  bar.dataset.status = task.status;
  bar.firstElementChild.style.width = `${task.total_steps ? (100 * task.completed_steps) / task.total_steps : 0}%`;

  const facts = $("task-facts");
  facts.replaceChildren();
  fact(facts, "Created", `${clock(task.created_at, true)} · `, relTime(task.created_at));
  if (task.completed_at) fact(facts, "Ended", clock(task.completed_at, true));
  else fact(facts, "Updated", `${clock(task.updated_at, true)} · `, relTime(task.updated_at));
  fact(facts, task.completed_at ? "Took" : "Running for", elapsed(task.created_at, task.completed_at));
  if (task.queue_position) fact(facts, "Queue", `#${task.queue_position} (held by max_in_flight)`);
  if (task.error) fact(facts, "Error", el("span", { id: "task-error", text: task.error }));

  const out = $("task-output");
  const pics = task.output != null ? thumbs(task.output, "large", "task output") : null;
  out.hidden = !pics;
  out.replaceChildren(...(pics ? [el("div", { class: "label", text: "Output" }), pics] : []));

  $("task-params").replaceChildren();
  jsonInto($("task-params"), task.params ?? {}, "");
  $("params-box").querySelector("summary").textContent = `Params (${Object.keys(task.params || {}).length})`;

  renderSteps(task);
  renderTimeline();
  updateActions();
}

// ---------- cancel / retry ----------
function updateActions() {
  const task = state.task;
  const admin = isAdmin();
  const canCancel = !!task && (task.status === "pending" || task.status === "running");
  const canRetry = !!task && task.status === "failed";
  $("cancel").disabled = !admin || !canCancel || state.acting;
  $("retry").disabled = !admin || !canRetry || state.acting;
  let hint = "";
  if (task && !admin && (canCancel || canRetry)) hint = "Sign in with the API token to cancel or retry this task.";
  else if (task && TERMINAL.has(task.status) && !canRetry) hint = `This task ${task.status === "canceled" ? "was canceled" : "succeeded"}: nothing to cancel or retry.`;
  $("action-hint").textContent = hint;
}
async function act(action) {
  const id = state.selected;
  if (!id) return;
  const gen = state.selGen;
  state.acting = true;
  $("action-error").textContent = "";
  $("action-result").textContent = "";
  updateActions();
  try {
    const { data } = await api("POST", `v1/tasks/${encodeURIComponent(id)}/${action}`);
    if (gen !== state.selGen) return;
    $("action-result").textContent = action === "cancel"
      ? `Canceled at ${clock(new Date().toISOString())}.`
      : `Retried at ${clock(new Date().toISOString())}: running again from step ${data.current_step}.`;
    applyTask(data);
    scheduleJournal();
    if (!TERMINAL.has(data.status) && !state.source) openStream(gen);
    else if (TERMINAL.has(data.status)) { closeStream(); setLive("ended"); }
  } catch (error) {
    if (gen !== state.selGen) return;
    $("action-error").textContent = `${action} failed: ${error}`;
    if (error.status === 401) needLogin(true);
  } finally {
    state.acting = false;
    updateActions();
  }
}
$("cancel").addEventListener("click", () => act("cancel"));
$("copy-id").addEventListener("click", (event) => copyText(state.selected || "", event.currentTarget));
$("retry").addEventListener("click", () => act("retry"));
