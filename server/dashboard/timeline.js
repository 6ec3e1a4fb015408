// timeline.js: the task's history (GET /v1/tasks/{id}/journal) and the timeline
// (waterfall) of its steps built from it.
// Classic script of the stepwise dashboard (index.html loads api.js, list.js, task.js,
// steps.js, timeline.js, live.js, main.js in that order). The files share top-level names:
// each uses what an earlier one declares; only main.js runs the page at load.
"use strict";

// ---------- journal ----------
function scheduleJournal() {
  if (state.journalTimer) return;
  state.journalTimer = setTimeout(() => { state.journalTimer = null; loadJournal(); }, 200);
}
async function loadJournal() {
  const id = state.selected;
  if (!id) return;
  const gen = ++state.journalGen;
  try {
    const { data } = await api("GET", `v1/tasks/${encodeURIComponent(id)}/journal`);
    if (gen !== state.journalGen || id !== state.selected) return;
    renderJournal(data.events || []);
  } catch (error) {
    if (gen !== state.journalGen) return;
    $("journal-count").textContent = `· could not load: ${error}`;
  }
}
function kindClass(kind) {
  if (/succeeded/.test(kind)) return "k-succeeded";
  if (/failed/.test(kind)) return "k-failed";
  if (/cancel/.test(kind)) return "k-canceled";
  if (/retried/.test(kind)) return "k-retried";
  return "";
}
function renderJournal(events) {
  state.events = events;
  renderTimeline();
  const first = events.length ? ms(events[0].at) : 0;
  const body = $("journal-rows");
  const wrap = body.closest(".journal-wrap");
  // Follow new events only when the reader scrolled down to the end. (An empty journal counts
  // as "at the end" too, which scrolled the first load past its first rows, under the header.)
  const atBottom = wrap.scrollHeight > wrap.clientHeight + 4 && wrap.scrollTop + wrap.clientHeight >= wrap.scrollHeight - 4;
  body.replaceChildren(...events.map((e) => {
    const details = el("td", { class: "j-detail" });
    const bits = [];
    if (e.kind === "task_created") bits.push(`workflow ${e.workflow}, ${e.items} item${e.items === 1 ? "" : "s"}`);
    if (Array.isArray(e.stages) && e.stages.some((name) => name !== ONE_MODEL_STAGE)) bits.push(`stages ${e.stages.join(" → ")}`);
    if (e.kind === "fallback_requested" && e.model) bits.push(`on fallback ${e.model}`);
    if (e.idempotency_key) bits.push(`idempotency key ${e.idempotency_key}`);
    if (e.prediction_id) bits.push(el("span", {}, "prediction ", el("span", { class: "prediction-id", text: e.prediction_id })));
    if (e.canceled) bits.push("canceled at Replicate");
    if (e.reason) bits.push(`reason: ${e.reason}`);
    bits.forEach((bit, i) => details.append(i ? " · " : "", bit));
    if (e.error) details.append(el("div", { class: "err", text: e.error }));
    for (const key of ["input", "output"]) {
      if (e[key] != null) details.append(el("details", {}, el("summary", { text: key }), jsonBlock(e[key])));
    }
    return el("tr", { "data-seq": e.seq, "data-kind": e.kind },
      el("td", { class: "num muted", text: String(e.seq) }),
      el("td", { class: "num", title: e.at }, clock(e.at, true),
        el("div", { class: "muted small", text: `+${duration(ms(e.at) - first)}` })),
      el("td", {}, el("span", { class: `kind ${kindClass(e.kind)}`, text: e.kind })),
      el("td", { class: "num" }, e.step != null ? `${e.step}${e.attempt != null ? ` · try ${e.attempt}` : ""}` : ""),
      details);
  }));
  $("journal-count").textContent = `· ${events.length} event${events.length === 1 ? "" : "s"}, from /journal`;
  if (atBottom) wrap.scrollTop = wrap.scrollHeight;
}

// ---------- timeline (waterfall) of the steps, from the journal ----------
/** Per step, its phases in order: queued (requested, on its model or its fallback, create not sent), starting (create sent or prediction created), processing (started), each ended by the next phase or the attempt's end. */
function phasesOf(events) {
  const steps = new Map();
  const row = (i) => steps.get(i) || steps.set(i, { index: i, segs: [], open: null, tries: 0 }).get(i);
  const end = (r, at, outcome) => { if (r.open) { r.open.to = at; r.open.outcome = outcome || null; r.open = null; } };
  const begin = (r, phase, at) => { end(r, at); r.open = { phase, from: at, to: null }; r.segs.push(r.open); };
  for (const e of events) {
    const at = ms(e.at);
    if (!Number.isFinite(at)) continue;
    if (e.step == null) {
      if (e.kind === "task_canceled") for (const r of steps.values()) end(r, at, "canceled");
      continue;
    }
    const r = row(e.step);
    switch (e.kind) {
      case "step_requested": case "fallback_requested": r.tries += 1; begin(r, "queued", at); break;
      case "create_sent": begin(r, "starting", at); break;
      case "prediction_created": if (!r.open || r.open.phase === "queued") begin(r, "starting", at); break;
      case "prediction_started": begin(r, "processing", at); break;
      case "step_succeeded": end(r, at, "succeeded"); break;
      case "step_failed": case "attempt_failed": end(r, at, "failed"); break;
      case "cancel_settled": end(r, at, "canceled"); break;
      default: break;
    }
  }
  return steps;
}
function renderTimeline() {
  const task = state.task;
  const rows = $("timeline-rows");
  if (!task || !state.events.length) { rows.replaceChildren(); $("timeline-count").textContent = ""; return; }
  const done = TERMINAL.has(task.status);
  const t0 = ms(state.events[0].at);
  const last = ms(state.events[state.events.length - 1].at);
  const t1 = done ? Math.max(last, ms(task.completed_at) || last) : Date.now();
  const span = Math.max(t1 - t0, 1);
  const phases = phasesOf(state.events);
  const pct = (t) => `${(100 * Math.min(Math.max(t - t0, 0), span)) / span}%`;
  const children = [];
  // A pipeline's rows go under a line per stage; a parallel stage's branches overlap in time,
  // each on its own row.
  const stages = namedStages(task);
  const byIndex = new Map((task.steps || []).map((s) => [s.index, s]));
  let stageShown = null;
  for (let i = 1; i <= (task.total_steps || phases.size); i += 1) {
    const r = phases.get(i) || { index: i, segs: [], tries: 0 };
    const step = byIndex.get(i);
    if (stages && step && step.stage !== stageShown) {
      stageShown = step.stage;
      const stage = stages.find((s) => s.name === step.stage);
      children.push(el("div", { class: "tl-stage", "data-stage": step.stage }, el("b", { text: step.stage }), stage ? ` · ${runsText(stage)}` : ""));
    }
    const item = stages && step && step.item_index != null ? ` · item ${step.item_index}` : "";
    const totals = { queued: 0, starting: 0, processing: 0 };
    const segs = r.segs.map((seg) => {
      const to = seg.to ?? (done ? t1 : Date.now());
      totals[seg.phase] += to - seg.from;
      const title = `step ${i} · ${seg.phase} ${duration(to - seg.from)}${seg.to == null ? " so far" : ""}` +
        ` (${clock(new Date(seg.from).toISOString(), true)} → ${seg.to == null ? "now" : clock(new Date(to).toISOString(), true)})` +
        (seg.outcome === "failed" ? " · attempt failed" : "");
      return el("span", {
        class: `tl-seg ph-${seg.phase}${seg.outcome === "failed" ? " ph-failed-end" : ""}${seg.to == null ? " open" : ""}`,
        "data-phase": seg.phase, title, style: `left:${pct(seg.from)};width:calc(${pct(to)} - ${pct(seg.from)})`,
      });
    });
    const summary = Object.entries(totals).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${duration(v)}`).join(" · ");
    const first = r.segs[0];
    const lastSeg = r.segs[r.segs.length - 1];
    const whole = first ? (lastSeg.to ?? (done ? t1 : Date.now())) - first.from : NaN;
    children.push(
      el("span", { class: "tl-label", text: `step ${i}${item}${r.tries > 1 ? ` · ${r.tries} tries` : ""}` }),
      el("div", { class: "tl-track", "data-step": i, title: summary || "not started" }, segs),
      el("span", { class: "tl-total", title: summary, text: first ? duration(whole) : "—" }));
  }
  rows.replaceChildren(...children);
  $("timeline-count").textContent = `· ${duration(t1 - t0)} from created to ${done ? "end" : "now"}`;
  $("tl-start").textContent = clock(new Date(t0).toISOString(), true);
  $("tl-end").textContent = done ? `+${duration(t1 - t0)}` : `now · +${duration(t1 - t0)}`;
}
