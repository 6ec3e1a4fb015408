// live.js: following the selected task live: the EventSource stream, merging its
// messages, falling back to polling, and the live indicator.
// Classic script of the stepwise dashboard (index.html loads api.js, list.js, task.js,
// steps.js, timeline.js, live.js, main.js in that order). The files share top-level names:
// each uses what an earlier one declares; only main.js runs the page at load.
"use strict";

// ---------- live stream ----------
// States: connecting (stream requested, nothing back yet), live (stream open), reconnecting
// (EventSource retrying after an error), polling (stream given up, GET every REFRESH_MS),
// offline (the engine does not answer at all), ended (task finished, stream closed).
const CONNECT_MS = 8000;   // no answer from the stream within this: say so and poll instead
function setLive(live, detail) {
  state.live = live;
  $("live").dataset.live = live;
  $("live-text").textContent = {
    idle: "",
    connecting: "connecting…",
    live: `live${detail ? ` · ${detail}` : ""}`,
    reconnecting: "reconnecting…",
    polling: `${detail || "stream unavailable"} · polling every ${REFRESH_MS / 1000} s`,
    offline: "offline · the engine does not answer, retrying",
    ended: "task ended · stream closed",
  }[live];
}
function closeStream() {
  if (state.source) { state.source.close(); state.source = null; }
  clearTimeout(state.connectTimer);
}
/** Merges a stream message into the task: a snapshot (or a message with every step) replaces it, a change carries only the steps that changed. */
function mergeMessage(message) {
  const task = message.task;
  if (message.kind === "snapshot" || Array.isArray(task.steps) || !state.task) return task;
  const steps = (state.task.steps || []).slice();
  for (const changed of message.steps || []) {
    const i = steps.findIndex((s) => s.index === changed.index);
    if (i >= 0) steps[i] = changed; else steps.push(changed);
  }
  steps.sort((a, b) => a.index - b.index);
  return { ...task, steps, stages: task.stages || state.task.stages };
}
function openStream(gen) {
  closeStream();
  if (typeof window.EventSource !== "function") { setLive("polling", "no EventSource in this browser"); return; }
  const id = state.selected;
  const source = new EventSource(`v1/tasks/${encodeURIComponent(id)}/events`);
  state.source = source;
  const current = () => gen === state.selGen && state.source === source;
  let errors = 0;
  setLive("connecting");
  // A stream that never opens (a proxy that buffers it, a browser out of connections to
  // this host) would leave "connecting…" forever: after CONNECT_MS poll, and say why.
  state.connectTimer = setTimeout(() => {
    if (!current() || state.live !== "connecting") return;
    closeStream();
    setLive("polling", "stream did not open");
  }, CONNECT_MS);
  source.onopen = () => {
    if (!current()) return;
    clearTimeout(state.connectTimer);
    setLive("live");
  };
  source.onmessage = (event) => {
    if (!current()) { source.close(); return; }
    clearTimeout(state.connectTimer);
    errors = 0;
    let message;
    try { message = JSON.parse(event.data); } catch (_) { return; }
    if (!message || !message.task) return;
    if (message.seq != null) state.etag = `"${message.seq}"`;
    // Before rendering, so a page error in rendering cannot leave a wrong indicator.
    const ended = TERMINAL.has(message.task.status);
    if (ended) { closeStream(); setLive("ended"); } else setLive("live", message.kind);
    applyTask(mergeMessage(message));
    scheduleJournal();
  };
  source.onerror = () => {
    if (!current()) { source.close(); return; }
    errors += 1;
    if (source.readyState === EventSource.CLOSED || errors >= 3) {
      closeStream();
      if (state.task && TERMINAL.has(state.task.status)) setLive("ended");
      else setLive(navigator.onLine === false ? "offline" : "polling");
    } else setLive(navigator.onLine === false ? "offline" : "reconnecting");
  };
}
