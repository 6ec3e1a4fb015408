// main.js: URL state (filters, #tsk_… hash), open by id, the 1 s clock and periodic
// refresh, then starts the page. Loaded last.
// Classic script of the stepwise dashboard (index.html loads api.js, list.js, task.js,
// steps.js, timeline.js, live.js, main.js in that order). The files share top-level names:
// each uses what an earlier one declares; only main.js runs the page at load.
"use strict";

// ---------- URL state, open by id ----------
function writeUrl() {
  const q = new URLSearchParams(location.search);
  const f = filters();
  for (const [key, value] of [["q", f.q], ["status", f.status], ["workflow", f.workflow], ["since", f.since ? String(f.since) : ""]]) {
    if (value) q.set(key, value); else q.delete(key);
  }
  const search = q.toString();
  history.replaceState(null, "", `${location.pathname}${search ? `?${search}` : ""}${state.selected ? `#${state.selected}` : ""}`);
}
function readUrl() {
  const status = query.get("status") || "";
  if (STATUSES.includes(status)) $("filter-status").value = status;
  $("filter-workflow").value = query.get("workflow") || "";
  $("filter-q").value = query.get("q") || "";
  const since = query.get("since") || "";
  if ([...$("filter-time").options].some((o) => o.value === since)) $("filter-time").value = since;
}
$("goto-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const id = $("goto").value.trim();
  if (id) { showError(""); select(id); }
});
window.addEventListener("hashchange", () => {
  const id = location.hash.slice(1);
  if (id && id !== state.selected) select(id, { fromHash: true });
});

// ---------- clocks ----------
setInterval(() => {
  for (const node of document.querySelectorAll("[data-rel]")) node.textContent = ago(node.dataset.rel);
  for (const node of document.querySelectorAll("[data-elapsed-from]")) node.textContent = duration(Date.now() - ms(node.dataset.elapsedFrom));
  // Running steps grow live; an open prediction box of a running step reloads its logs.
  if (state.task && !TERMINAL.has(state.task.status)) {
    renderTimeline();
    for (const box of document.querySelectorAll("#steps details.prediction[open]")) {
      const running = ["starting", "processing"].includes(box._step && box._step.status);
      if (running && Date.now() - (box._loadedAt || 0) >= 3000) loadPrediction(box);
    }
  }
}, 1000);
setInterval(() => {
  if (document.hidden || !$("auto").checked) return;
  if (state.mode !== "locked") loadList(state.listLoaded ? "refresh" : "reset");
  loadMetrics();
  refreshSelected();
}, REFRESH_MS);
document.addEventListener("visibilitychange", () => {
  if (!document.hidden && $("auto").checked && state.mode !== "locked") { loadList("refresh"); loadMetrics(); }
});

// ---------- start ----------
$("refresh-every").textContent = String(REFRESH_MS / 1000);
readUrl();
setMode("unknown");
renderList();
loadList("reset");
loadMetrics();
const initial = location.hash.slice(1);
if (ID_RE.test(initial)) select(initial, { fromHash: true });
