// The dashboard's `pipeline` scenario (run by drive.js, which passes its helpers): a task of the
// test config's three-stage `lookbook` workflow (cutout once, tryon chained per item, variants
// per item in parallel, at most 2 at once), started by the harness with two items, followed
// live. Its steps must show under a heading per stage, in order, with the stage's model, how it
// runs and its progress; a parallel stage's branches must run at once and sit side by side; the
// timeline must have a line per stage and overlapping bars for the parallel branches.
"use strict";

const path = require("path");
const { check } = require(path.join(__dirname, "../../../examples/frontend/e2e/harness"));

const running = (status) => status === "starting" || status === "processing";

/** Where the steps of stage `name` are on the page: their boxes' top and left edges. */
function stepBoxes(page, name) {
  return page.evaluate((name) => [...document.querySelectorAll(`#steps li.stage[data-stage="${name}"] li.step`)]
    .map((n) => { const r = n.getBoundingClientRect(); return { step: Number(n.dataset.step), top: r.top, left: r.left, width: r.width }; }), name);
}

/** The span on screen of every bar of step `n` in the timeline. */
function span(state, n) {
  const segs = state.timeline.find((t) => t.step === n)?.segs || [];
  return segs.length ? { from: Math.min(...segs.map((g) => g.left)), to: Math.max(...segs.map((g) => g.left + g.width)) } : null;
}

async function pipeline(page, args, { ask, waitFor, openFromList, shot }) {
  const result = {};
  await page.goto(`${args.url}?refresh=1`);
  await waitFor(page, "the list without a login", args.timeoutMs, (s) => s.mode === "open");
  const id = (await ask({ op: "start", kind: "lookbook" })).id;
  await openFromList(page, id, args);

  // A heading per stage, in order: its model and how it runs; the steps under it, with items.
  let { state } = await waitFor(page, "a heading per stage", args.timeoutMs, (s) => s.stages.length === 3 && s.steps.length === 5);
  const heads = state.stages.map((s) => ({ name: s.name, runs: s.runs, model: s.model, steps: s.steps }));
  check(JSON.stringify(heads) === JSON.stringify([
    { name: "cutout", runs: "once", model: "test/rembg", steps: [1] },
    { name: "tryon", runs: "each", model: "test/tryon", steps: [2, 3] },
    { name: "variants", runs: "parallel", model: "test/variant", steps: [4, 5] },
  ]), `the stages, their models and steps: ${JSON.stringify(heads)}`);
  check(/once/.test(state.stages[0].runsText) && /chained/.test(state.stages[1].runsText) &&
    /in parallel · at most 2 at once/.test(state.stages[2].runsText), `how each stage runs: ${JSON.stringify(state.stages.map((s) => s.runsText))}`);
  const items = state.steps.map((s) => s.item);
  check(JSON.stringify(items) === JSON.stringify([null, "item 0", "item 1", "item 0", "item 1"]), `each step's item: ${JSON.stringify(items)}`);

  // The parallel stage: both branches running at once, side by side; the progress names it.
  const parallel = await waitFor(page, "both variants running at once", args.timeoutMs, (s) =>
    ["failed", "canceled"].includes(s.taskStatus) || s.steps.filter((x) => x.step >= 4 && running(x.status)).length === 2);
  state = parallel.state;
  check(state.taskStatus === "running", `the task runs its parallel stage: ${state.taskStatus}`);
  check(state.taskProgress === "3/5 · variants · 2 steps running", `the progress names the parallel stage: ${state.taskProgress}`);
  check(state.stages[2].status === "running" && state.stages[2].progress === "0/2 succeeded", `the stage's heading follows it: ${JSON.stringify(state.stages[2])}`);
  const boxes = await stepBoxes(page, "variants");
  check(boxes.length === 2 && Math.abs(boxes[0].top - boxes[1].top) < 2 && boxes[1].left > boxes[0].left + boxes[0].width - 2,
    `the parallel branches sit side by side: ${JSON.stringify(boxes)}`);
  const chained = await stepBoxes(page, "tryon");
  check(chained.length === 2 && chained[1].top > chained[0].top, `a chained stage's steps are one under the other: ${JSON.stringify(chained)}`);
  result.parallel = { progress: state.taskProgress, boxes };

  // The end: every stage done, the timeline with a line per stage and overlapping branches.
  const done = await waitFor(page, "the pipeline to succeed and its history to load", args.timeoutMs, (s) =>
    ["failed", "canceled"].includes(s.taskStatus) || (s.taskStatus === "succeeded" && s.live === "ended" &&
      s.steps.every((x) => x.status === "succeeded" && x.outputImages.length > 0 && x.outputImages.every((i) => i.loaded)) &&
      s.journal.filter((k) => k === "step_succeeded").length === 5 && s.timeline.length === 5 && s.timeline.every((t) => t.segs.length > 0)),
    parallel.history);
  state = done.state;
  check(state.taskStatus === "succeeded", `the pipeline ended ${state.taskStatus}`);
  check(state.taskProgress === "5/5", `a finished pipeline reads 5/5: ${state.taskProgress}`);
  const progress = state.stages.map((s) => `${s.name} ${s.status} ${s.progress}`);
  check(JSON.stringify(progress) === JSON.stringify(["cutout succeeded 1/1 succeeded", "tryon succeeded 2/2 succeeded", "variants succeeded 2/2 succeeded"]),
    `every stage's heading says it is done: ${JSON.stringify(progress)}`);
  check(JSON.stringify(state.timelineStages) === JSON.stringify(["cutout", "tryon", "variants"]), `the timeline has a line per stage: ${JSON.stringify(state.timelineStages)}`);
  const [v1, v2, t1, t2] = [span(state, 4), span(state, 5), span(state, 2), span(state, 3)];
  check(v1 && v2 && v1.from < v2.to && v2.from < v1.to, `the parallel branches' bars overlap in time: ${JSON.stringify([v1, v2])}`);
  check(t1 && t2 && t2.from >= t1.to - 1, `the chained steps' bars follow each other: ${JSON.stringify([t1, t2])}`);
  result.steps = done.history.steps;
  await page.evaluate(() => window.scrollTo(0, 0));
  result.screenshot = await shot(page, args, "dashboard-pipeline.png", true);
  return result;
}

module.exports = { pipeline };
