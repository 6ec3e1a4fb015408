#!/usr/bin/env node
// Drives examples/frontend/index.html in a real headless Chromium (run by tests/e2e/frontend.rs).
//
//   node drive.js --scenario live|cancel|polling|served --page http://127.0.0.1:PORT/index.html \
//                 --api http://127.0.0.1:ENGINE [--screenshot out.png] [--timeout-ms 30000]
//
// Prints one JSON line `RESULT {...}` and exits 0 when the scenario passed; on a failure it
// prints what went wrong, the page's state and its console, and exits 1.
"use strict";

const { Failure, check, runScenario, start } = require("./harness");

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 1) {
    const key = argv[i];
    if (!key.startsWith("--")) throw new Error(`unexpected argument ${key}`);
    args[key.slice(2)] = argv[i + 1];
    i += 1;
  }
  for (const needed of ["scenario", "page", "api"]) {
    if (!args[needed]) throw new Error(`--${needed} is required`);
  }
  args.timeoutMs = Number(args["timeout-ms"] || 30000);
  args.chromium = args.chromium || process.env.CHROMIUM || "/usr/bin/chromium";
  return args;
}


/** The page's state, read from the stable hooks. */
function readState(page) {
  return page.evaluate(() => {
    const text = (id) => (document.getElementById(id) || {}).textContent?.trim() ?? null;
    return {
      taskId: text("task-id"),
      taskStatus: text("task-status"),
      progress: text("progress"),
      mode: text("mode"),
      modeDetail: text("mode-detail"),
      etag: document.getElementById("mode")?.dataset.etag || "",
      polls: Number(document.getElementById("mode")?.dataset.polls || 0),
      unchanged: Number(document.getElementById("mode")?.dataset.unchanged || 0),
      error: text("error"),
      taskError: text("task-error"),
      outputImages: [...document.querySelectorAll("#output img")].map((img) => img.getAttribute("src")),
      cancelDisabled: document.getElementById("cancel")?.disabled ?? null,
      steps: [...document.querySelectorAll("[data-step]")].map((row) => ({
        step: Number(row.dataset.step),
        status: row.querySelector(".status")?.textContent.trim() ?? null,
        prediction: row.querySelector(".prediction-id")?.textContent.trim() ?? null,
        outputImage: row.querySelector(".step-output img")?.getAttribute("src") ?? null,
      })),
    };
  });
}

/**
 * Polls the DOM every 20 ms until `done(state, history)` is true or the deadline passes.
 * `history` records, per step, the statuses seen in order and the order in which steps
 * first showed "succeeded".
 */
async function waitFor(page, what, timeoutMs, done, history = newHistory()) {
  const deadline = Date.now() + timeoutMs;
  let state;
  for (;;) {
    state = await readState(page);
    record(history, state);
    if (done(state, history)) return { state, history };
    if (Date.now() > deadline) {
      throw new Failure(`timed out after ${timeoutMs} ms waiting for ${what}; last state: ${JSON.stringify(state)}; history: ${JSON.stringify(history)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function newHistory() {
  return { succeededOrder: [], seen: {}, modes: [] };
}

function record(history, state) {
  if (state.mode && history.modes[history.modes.length - 1] !== state.mode) history.modes.push(state.mode);
  for (const { step, status } of state.steps) {
    const seen = (history.seen[step] ||= []);
    if (status && seen[seen.length - 1] !== status) seen.push(status);
    if (status === "succeeded" && !history.succeededOrder.includes(step)) history.succeededOrder.push(step);
  }
}

async function startTask(page, { garments = 3 } = {}) {
  await page.fill("#person", "https://img/e2e/person.png");
  const rows = await page.locator("#garments .garment").count();
  check(rows === 3, `the form starts with 3 garment rows, found ${rows}`);
  for (let i = 1; i <= rows; i += 1) {
    await page.fill(`#garment-${i}-image`, `https://img/e2e/g${i}.png`);
  }
  for (let i = rows; i > garments; i -= 1) {
    await page.click(`[data-garment="${i}"] .remove`);
  }
  await page.click("#start");
  const { state } = await waitFor(page, "the task to be created", 10000, (s) => /^tsk_/.test(s.taskId || "") || s.error);
  check(!state.error, `starting the task showed an error: ${state.error}`);
  return state.taskId;
}

const scenarios = {
  /** Live updates over SSE: every step succeeds in order, then the final image shows. */
  async live(page, args) {
    await page.goto(`${args.page}?api=${encodeURIComponent(args.api)}`);
    const taskId = await startTask(page);
    const { state, history } = await waitFor(page, "the task to succeed live", args.timeoutMs, (s) =>
      s.error || ["failed", "canceled"].includes(s.taskStatus) || s.mode === "polling" ||
      (s.taskStatus === "succeeded" && s.steps.length === 3 && s.steps.every((x) => x.status === "succeeded") && s.outputImages.length > 0));
    check(!state.error, `the page showed an error: ${state.error}`);
    check(!history.modes.includes("polling"), `the page fell back to polling (${state.modeDetail}); modes seen: ${history.modes.join(" -> ")}`);
    check(state.mode === "live", `#mode is ${JSON.stringify(state.mode)}, expected "live"`);
    check(state.taskStatus === "succeeded", `#task-status is ${state.taskStatus}`);
    check(state.progress === "3/3", `#progress is ${state.progress}`);
    check(JSON.stringify(history.succeededOrder) === "[1,2,3]", `steps succeeded in order ${JSON.stringify(history.succeededOrder)}`);
    // Live: the page showed step 1 before it finished, not only the final state.
    check(history.seen[1].length > 1, `step 1 was only ever seen as ${JSON.stringify(history.seen[1])}`);
    check(state.steps.every((s) => s.prediction && s.outputImage), `every step shows a prediction id and an output image: ${JSON.stringify(state.steps)}`);
    check(state.outputImages[0] === state.steps[2].outputImage, "the final output is step 3's output");
    // The final image actually loaded (the simulator serves it).
    const loaded = await page
      .waitForFunction(() => {
        const img = document.querySelector("#output img");
        return img && img.complete && img.naturalWidth > 0;
      }, null, { timeout: 10000 })
      .then(() => true, () => false);
    check(loaded, "the final output image loaded");
    // The page closed the stream itself: it must not reconnect.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const after = await readState(page);
    check(after.mode === "live" && /closed/.test(after.modeDetail), `after the end the stream is closed: ${after.modeDetail}`);
    if (args.screenshot) await page.screenshot({ path: args.screenshot, fullPage: true });
    return { taskId, succeededOrder: history.succeededOrder, seen: history.seen, mode: state.mode, modeDetail: after.modeDetail };
  },

  /** Cancel a running task (a slow model) from the page. */
  async cancel(page, args) {
    const workflow = args.workflow || "slowtryon";
    await page.goto(`${args.page}?api=${encodeURIComponent(args.api)}&workflow=${encodeURIComponent(workflow)}`);
    const taskId = await startTask(page, { garments: 2 });
    await waitFor(page, "step 1 to run", args.timeoutMs, (s) =>
      s.error || (s.taskStatus === "running" && s.steps[0] && ["starting", "processing"].includes(s.steps[0].status) && s.steps[0].prediction));
    const cancelDisabled = await page.locator("#cancel").isDisabled();
    check(!cancelDisabled, "#cancel is enabled while the task runs");
    await page.click("#cancel");
    const { state, history } = await waitFor(page, "the task to be canceled", args.timeoutMs, (s) =>
      s.error || (s.taskStatus === "canceled" && s.steps.every((x) => x.status === "canceled")));
    check(!state.error, `the page showed an error: ${state.error}`);
    check(state.cancelDisabled === true, "#cancel is disabled once the task is canceled");
    check(state.outputImages.length === 0, "a canceled task shows no output image");
    check(/cancel/i.test(state.taskError || ""), `the task error says canceled: ${state.taskError}`);
    check(!history.modes.includes("polling"), `the page fell back to polling: ${state.modeDetail}`);
    return { taskId, mode: state.mode, modeDetail: state.modeDetail, steps: state.steps.map((s) => s.status) };
  },

  /** EventSource disabled: the page polls with If-None-Match until the task is done. */
  async polling(page, args) {
    await page.goto(`${args.page}?api=${encodeURIComponent(args.api)}&sse=off`);
    const taskId = await startTask(page);
    const { state, history } = await waitFor(page, "the task to succeed by polling", args.timeoutMs, (s) =>
      s.error || ["failed", "canceled"].includes(s.taskStatus) ||
      (s.taskStatus === "succeeded" && s.steps.length === 3 && s.steps.every((x) => x.status === "succeeded") && s.outputImages.length > 0));
    check(!state.error, `the page showed an error: ${state.error}`);
    check(state.mode === "polling", `#mode is ${JSON.stringify(state.mode)}, expected "polling"`);
    check(!history.modes.includes("live"), `the page used the stream although sse=off: ${history.modes.join(" -> ")}`);
    check(state.taskStatus === "succeeded", `#task-status is ${state.taskStatus}`);
    check(JSON.stringify(history.succeededOrder.slice().sort()) === "[1,2,3]", `all steps succeeded: ${JSON.stringify(history.succeededOrder)}`);
    check(/stopped: task succeeded/.test(state.modeDetail), `polling stopped at the end: ${state.modeDetail}`);
    check(/^(W\/)?"\d+"$/.test(state.etag), `the page read the ETag header (exposed by CORS), got ${JSON.stringify(state.etag)}`);

    // A second task, on a slow model, from the same page: while nothing changes the polls send
    // If-None-Match and get 304s; then Cancel, and polling sees the task canceled.
    const slow = args.workflow || "slowtryon";
    await page.fill("#workflow", slow);
    await page.click("#start");
    const second = await waitFor(page, "a 304 while the slow task runs", args.timeoutMs, (s) =>
      s.error || (s.taskId !== taskId && s.taskStatus === "running" && s.unchanged >= 1));
    check(!second.state.error, `the page showed an error: ${second.state.error}`);
    check(second.state.mode === "polling", `#mode is ${second.state.mode} for the second task`);
    check(second.state.steps.length === 3 && second.state.steps.every((x) => x.status !== "succeeded"),
      `the second task's rows replaced the first's: ${JSON.stringify(second.state.steps)}`);
    await page.click("#cancel");
    const canceled = await waitFor(page, "the slow task to be canceled", args.timeoutMs, (s) =>
      s.error || (s.taskStatus === "canceled" && /stopped: task canceled/.test(s.modeDetail)));
    check(!canceled.state.error, `the page showed an error: ${canceled.state.error}`);
    return {
      taskId, mode: state.mode, modeDetail: state.modeDetail, etag: state.etag,
      slowTask: { taskId: canceled.state.taskId, modeDetail: canceled.state.modeDetail, unchanged: canceled.state.unchanged },
    };
  },

  /**
   * The page as `stepwise serve --simulate` serves it at /example/: loaded without `?api=`, it
   * talks to its own origin; each step's output is its own simulated picture.
   */
  async served(page, args) {
    await page.goto(args.page);
    const api = await page.inputValue("#api");
    check(api === args.api, `#api defaults to the page's origin ${args.api}, got ${JSON.stringify(api)}`);
    const taskId = await startTask(page);
    const { state } = await waitFor(page, "the task to succeed", args.timeoutMs, (s) =>
      s.error || ["failed", "canceled"].includes(s.taskStatus) ||
      (s.taskStatus === "succeeded" && s.steps.length === 3 && s.steps.every((x) => x.outputImage) && s.outputImages.length > 0));
    check(!state.error, `the page showed an error: ${state.error}`);
    check(state.taskStatus === "succeeded", `#task-status is ${state.taskStatus}`);
    const images = state.steps.map((s) => s.outputImage);
    check(new Set(images).size === 3, `each step has its own picture: ${JSON.stringify(images)}`);
    const sizes = await page.evaluate(() => Promise.all(
      [...document.querySelectorAll(".step-output img")].map((img) =>
        img.decode().then(() => [img.naturalWidth, img.naturalHeight], () => null))));
    check(sizes.length === 3 && sizes.every((s) => s && s[0] === 320 && s[1] === 400),
      `every step's picture loaded as a 320x400 image: ${JSON.stringify(sizes)}`);
    if (args.screenshot) await page.screenshot({ path: args.screenshot, fullPage: true });
    return { taskId, api, images, sizes };
  },
};

async function main() {
  const args = parseArgs(process.argv.slice(2));
  await runScenario({
    scenarios,
    args,
    viewport: { width: 1180, height: 900 },
    profilePrefix: "stepwise-e2e-chromium-",
    logResponse: (response) => response.url().startsWith(args.api)
      ? `response: ${response.request().method()} ${response.url()} -> ${response.status()}`
      : null,
    readState,
  });
}

start(main);
