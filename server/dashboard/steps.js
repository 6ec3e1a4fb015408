// steps.js: the selected task's steps: a flat list, or under a heading per stage (its name,
// model, how it runs, steps succeeded; a parallel stage's branches side by side), each step's
// node, and a step's prediction at Replicate (link, logs).
// Classic script of the stepwise dashboard (index.html loads api.js, list.js, task.js,
// steps.js, timeline.js, live.js, main.js in that order). The files share top-level names:
// each uses what an earlier one declares; only main.js runs the page at load.
"use strict";

// ---------- stages ----------
const stageOf = (task, step) => (Array.isArray(task && task.stages) ? task.stages.find((s) => s.name === step.stage) : null) || null;
/** The model the step's attempt ran on when it is not its stage's own: its stage's fallback. */
function fallbackOf(step) {
  const stage = stageOf(state.task, step);
  return stage && stage.model && step.model && step.model !== stage.model ? step.model : null;
}
function runsText(stage) {
  if (stage.runs === "once") return "runs once";
  if (stage.runs === "each") return "each item, chained";
  if (stage.runs === "parallel") return `each item in parallel${stage.max_parallel ? ` · at most ${stage.max_parallel} at once` : ""}`;
  return stage.runs || "";
}
/** One status for a stage's steps: failed, running, canceled, succeeded (all of them), else pending. */
function stageStatus(steps) {
  const has = (...statuses) => steps.some((s) => statuses.includes(s.status));
  if (has("failed")) return "failed";
  if (has("starting", "processing")) return "running";
  if (has("canceled")) return "canceled";
  if (steps.length && steps.every((s) => s.status === "succeeded")) return "succeeded";
  return "pending";
}

// ---------- the steps, flat or by stage ----------
function renderSteps(task) {
  const list = $("steps");
  const steps = task.steps || [];
  // A step's prediction box keeps what it loaded across re-renders (it refreshes while running).
  const boxes = new Map([...list.querySelectorAll("details.prediction")].map((d) => [d.closest("li.step").dataset.step, d]));
  $("steps-count").textContent = `· ${steps.length}`;
  const stages = namedStages(task);
  list.classList.toggle("staged", !!stages);
  if (!stages) {
    if (list.querySelector(":scope > li.stage")) list.replaceChildren();
    fillSteps(list, steps, boxes, null);
    return;
  }
  if (list.querySelector(":scope > li.step")) list.replaceChildren();
  const groups = stages.map((stage, i) => ({ stage, position: i + 1, steps: steps.filter((s) => s.stage === stage.name) }));
  // A step of no known stage (not expected) is still shown, never dropped.
  const stray = steps.filter((s) => !stages.some((stage) => stage.name === s.stage));
  if (stray.length) groups.push({ stage: { name: "other", model: null, runs: "" }, position: null, steps: stray });
  groups.forEach((group, i) => {
    let node = list.children[i];
    if (!node || node.dataset.stage !== group.stage.name) {
      const fresh = stageNode(group.stage);
      if (node) node.replaceWith(fresh); else list.append(fresh);
      node = fresh;
    }
    updateStageHead(node, group, stages.length);
    fillSteps(node.querySelector("ol.stage-steps"), group.steps, boxes, group.stage);
  });
  while (list.children.length > groups.length) list.lastElementChild.remove();
}
function stageNode(stage) {
  return el("li", { class: "stage", "data-stage": stage.name, "data-runs": stage.runs || "" },
    el("div", { class: "stage-head" },
      el("span", { class: "stage-num" }),
      el("h4", { class: "stage-name", text: stage.name }),
      el("span", { class: "badge stage-status" }),
      el("span", { class: "stage-model", text: stage.model || "" }),
      el("span", { class: "stage-runs", text: runsText(stage) }),
      el("span", { class: "stage-progress num" })),
    el("ol", { class: "stage-steps", "data-runs": stage.runs || "" }));
}
function updateStageHead(node, group, count) {
  const status = stageStatus(group.steps);
  node.dataset.status = status;
  const badgeNode = node.querySelector(".stage-status");
  badgeNode.className = `badge stage-status s-${status}`;
  badgeNode.textContent = status;
  node.querySelector(".stage-num").textContent = group.position ? `stage ${group.position}/${count}` : "";
  const done = group.steps.filter((s) => s.status === "succeeded").length;
  node.querySelector(".stage-progress").textContent = `${done}/${group.steps.length} succeeded`;
}
/** Puts `steps` in `list`, one node each, rebuilding only the steps that changed. */
function fillSteps(list, steps, boxes, stage) {
  steps.forEach((step, i) => {
    const signature = JSON.stringify(step);
    const existing = list.children[i];
    if (existing && existing._signature === signature) return;
    const node = stepNode(step, stage);
    node._signature = signature;
    const box = boxes.get(String(step.index));
    const fresh = node.querySelector("details.prediction");
    if (box && fresh) {
      fresh.replaceWith(box);
      box._step = step;
      if (box.open) loadPrediction(box);
    }
    if (existing) {
      // Keep open <details> open across updates.
      const olds = existing.querySelectorAll("details:not(.prediction)");
      node.querySelectorAll("details:not(.prediction)").forEach((d, k) => { if (olds[k]) d.open = olds[k].open; });
      existing.replaceWith(node);
    } else list.append(node);
  });
  while (list.children.length > steps.length) list.lastElementChild.remove();
}
/** One step: status, attempt, prediction, times, error, its prediction box, input and output; in a stage, its item and the fallback model it ran on. */
function stepNode(step, stage) {
  const running = step.status === "starting" || step.status === "processing";
  const time = [];
  if (step.started_at) time.push(`started ${clock(step.started_at, true)}`);
  if (step.completed_at) time.push(`ended ${clock(step.completed_at, true)}`);
  const timeLine = el("div", { class: "step-time" }, time.join(" · "),
    step.started_at ? [time.length ? " · " : "", step.completed_at ? "took " : "running for ", elapsed(step.started_at, step.completed_at)] : null);
  const io = [];
  if (step.input != null) {
    io.push(el("div", { class: "io-col step-input" },
      el("div", { class: "io-label", text: "Input" }), thumbs(step.input, "small", `step ${step.index} input`), jsonBlock(step.input)));
  }
  if (step.output != null) {
    io.push(el("div", { class: "io-col step-output" },
      el("div", { class: "io-label", text: "Output" }), thumbs(step.output, "", `step ${step.index} output`), jsonBlock(step.output)));
  } else if (step.input != null) {
    io.push(el("div", { class: "io-col step-output" }, el("div", { class: "io-label", text: "Output" }),
      el("div", { class: "waiting", text: running ? "waiting for the prediction…" : "none" })));
  }
  return el("li", { class: "step", "data-step": step.index, "data-status": step.status },
    el("div", { class: "step-head" },
      el("span", { class: "step-num", text: `${step.index}` }),
      el("span", { class: `badge status s-${step.status}`, text: step.status }),
      stage && step.item_index != null ? el("span", { class: "step-meta step-item", title: `items[${step.item_index}] of the start request`, text: `item ${step.item_index}` }) : null,
      el("span", { class: "step-meta attempt", text: `attempt ${step.attempt}` }),
      fallbackOf(step) ? el("span", { class: "step-meta step-model", title: "its stage's retries were spent: this attempt ran on the fallback", text: `on fallback ${step.model}` }) : null,
      step.prediction_id ? el("span", { class: "step-meta" }, "prediction ", el("span", { class: "prediction-id", text: step.prediction_id })) : null),
    step.started_at ? timeLine : el("div", { class: "waiting", text: step.status === "pending" ? "not started" : "" }),
    step.error ? el("div", { class: "step-error", text: step.error }) : null,
    predictionBox(step),
    io.length ? el("div", { class: "io" }, io) : null,
    step.item ? el("details", { class: "item small muted" }, el("summary", { text: "item" }), jsonBlock(step.item)) : null,
  );
}

// ---------- a step's prediction at Replicate: link and logs ----------
function predictionBox(step) {
  if (!step.prediction_id && !step.attempt) return null;
  const box = el("details", { class: "prediction" },
    el("summary", { text: "Prediction at Replicate · logs" }),
    el("div", { class: "prediction-body" }, el("span", { class: "prediction-note", text: "loading…" })));
  box._step = step;
  box.addEventListener("toggle", () => { if (box.open) loadPrediction(box); });
  return box;
}
/** Loads (or reloads) the prediction behind `box._step` from GET /v1/tasks/{id}/steps/{index}/prediction. */
async function loadPrediction(box) {
  if (box._busy) { box._again = true; return; }
  const id = state.selected;
  const step = box._step;
  box._busy = true;
  let parts;
  try {
    const { data } = await api("GET", `v1/tasks/${encodeURIComponent(id)}/steps/${step.index}/prediction`);
    parts = predictionParts(data);
  } catch (error) {
    const why = {
      401: "Sign in with the API token to read predictions (the engine asks Replicate for them):",
      404: "No prediction:",
      429: "Too many calls to Replicate just now, try again shortly:",
      502: "Replicate did not answer properly:",
      503: "The prediction cannot be read right now:",
    }[error.status] || "Could not load the prediction:";
    parts = [el("span", { class: "prediction-note error", "data-error": error.status, text: `${why} ${error.message}` })];
  } finally {
    box._busy = false;
  }
  if (id !== state.selected || !box.isConnected) return;
  const body = box.querySelector(".prediction-body");
  const oldLogs = body.querySelector(".prediction-logs");
  const follow = !oldLogs || oldLogs.scrollTop + oldLogs.clientHeight >= oldLogs.scrollHeight - 4;
  body.replaceChildren(...parts);
  const logs = body.querySelector(".prediction-logs");
  if (logs && oldLogs && !follow) logs.scrollTop = oldLogs.scrollTop;
  else if (logs) logs.scrollTop = logs.scrollHeight;
  box._loadedAt = Date.now();
  if (box._again) { box._again = false; loadPrediction(box); }
}
function predictionParts(p) {
  const web = p.urls && p.urls.web;
  const line = [el("span", { class: `badge s-${p.status}`, text: p.status || "unknown" })];
  if (web) line.push(" ", el("a", { class: "prediction-link", href: web, target: "_blank", rel: "noopener noreferrer", text: "open at Replicate ↗" }));
  const time = p.metrics && Number.isFinite(p.metrics.predict_time) ? ` · predict time ${duration(p.metrics.predict_time * 1000)}` : "";
  line.push(el("span", { class: "muted small", text: ` ${p.id || ""}${time}` }));
  const parts = [el("div", {}, line)];
  if (p.error) parts.push(el("div", { class: "step-error", text: `error: ${typeof p.error === "string" ? p.error : JSON.stringify(p.error)}` }));
  if (p.data_removed) parts.push(el("span", { class: "prediction-note", text: "Replicate removed this prediction's input and output (one hour after it ended)." }));
  parts.push(p.logs ? el("pre", { class: "prediction-logs", tabindex: "0", "aria-label": "prediction logs", text: p.logs })
    : el("span", { class: "prediction-note", text: "No logs." }));
  return parts;
}
