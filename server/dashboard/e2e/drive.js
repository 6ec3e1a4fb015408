#!/usr/bin/env node
// Drives the built-in dashboard (server/dashboard/index.html, served by the engine at GET /)
// in a real headless Chromium. Run by tests/e2e/dashboard.rs; reuses the playwright-core install
// of examples/frontend/e2e (NODE_PATH=examples/frontend/e2e/node_modules).
//
//   node drive.js --scenario protected|open --url http://127.0.0.1:ENGINE/ [--token T]
//                 [--screenshots DIR] [--chromium /usr/bin/chromium] [--timeout-ms 20000]
//
// The test harness does what a browser cannot (start tasks with the API token, switch the
// simulator's model): drive.js writes `ASK {"op":…}` on stdout and reads one JSON line back on
// stdin. At the end it prints `RESULT {...}` and exits 0, or prints what went wrong, the
// page's state and the browser log, and exits 1.
"use strict";

const path = require("path");
const readline = require("readline");
// The shared driver harness lives beside the playwright-core install it uses.
const { Failure, check, runScenario, start } = require(path.join(__dirname, "../../../examples/frontend/e2e/harness"));

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith("--")) throw new Error(`unexpected argument ${argv[i]}`);
    args[argv[i].slice(2)] = argv[i + 1];
  }
  for (const needed of ["scenario", "url"]) if (!args[needed]) throw new Error(`--${needed} is required`);
  args.timeoutMs = Number(args["timeout-ms"] || 20000);
  args.chromium = args.chromium || process.env.CHROMIUM || "/usr/bin/chromium";
  return args;
}


// ---------- the harness protocol: ASK on stdout, one JSON answer per line on stdin ----------
const answers = [];
const waiting = [];
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const next = waiting.shift();
  if (next) next(line); else answers.push(line);
});
async function ask(request) {
  process.stdout.write(`ASK ${JSON.stringify(request)}\n`);
  const line = answers.length ? answers.shift() : await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Failure(`no answer from the harness to ${JSON.stringify(request)}`)), 15000);
    waiting.push((l) => { clearTimeout(timer); resolve(l); });
  });
  const answer = JSON.parse(line);
  check(!answer.error, `the harness could not ${JSON.stringify(request)}: ${answer.error}`);
  return answer;
}

// ---------- reading the page through its stable hooks ----------
function readState(page) {
  return page.evaluate(() => {
    const text = (id) => { const n = document.getElementById(id); return n && !n.closest("[hidden]") ? n.textContent.trim() : null; };
    const visible = (id) => { const n = document.getElementById(id); return !!n && !n.closest("[hidden]"); };
    const counts = {};
    for (const n of document.querySelectorAll("#counts [data-count]")) counts[n.dataset.count] = n.querySelector(".n").textContent.trim();
    return {
      mode: document.getElementById("mode").dataset.mode,
      loginVisible: visible("login-panel"),
      loginError: text("login-error"),
      error: text("error"),
      rows: [...document.querySelectorAll("#task-rows tr[data-task-id]")].map((r) => ({ id: r.dataset.taskId, status: r.dataset.status, selected: r.getAttribute("aria-selected") === "true" })),
      moreVisible: visible("more"),
      counts,
      taskId: text("task-id"),
      taskStatus: text("task-status"),
      taskError: text("task-error"),
      live: visible("detail-body") ? document.getElementById("live").dataset.live : null,
      cancelDisabled: document.getElementById("cancel").disabled,
      retryDisabled: document.getElementById("retry").disabled,
      actionError: text("action-error"),
      actionHint: text("action-hint"),
      steps: [...document.querySelectorAll("#steps [data-step]")].map((s) => ({
        step: Number(s.dataset.step),
        status: s.querySelector(".status")?.textContent.trim() ?? null,
        attempt: s.querySelector(".attempt")?.textContent.trim() ?? null,
        prediction: s.querySelector(".prediction-id")?.textContent.trim() ?? null,
        error: s.querySelector(".step-error")?.textContent.trim() ?? null,
        outputImages: [...s.querySelectorAll(".step-output .thumb img")].map((img) => ({ src: img.getAttribute("src"), loaded: img.complete && img.naturalWidth > 0 })),
      })),
      journal: [...document.querySelectorAll("#journal-rows tr[data-kind]")].map((r) => r.dataset.kind),
    };
  });
}

/** Polls the DOM every 25 ms until `done(state)`, recording the statuses seen on the way. */
async function waitFor(page, what, timeoutMs, done, history = { task: [], steps: {} }) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = await readState(page);
    if (state.taskStatus && history.task[history.task.length - 1] !== state.taskStatus) history.task.push(state.taskStatus);
    for (const { step, status } of state.steps) {
      const seen = (history.steps[step] ||= []);
      if (status && seen[seen.length - 1] !== status) seen.push(status);
    }
    if (done(state)) return { state, history };
    if (Date.now() > deadline) {
      throw new Failure(`timed out after ${timeoutMs} ms waiting for ${what}; last state: ${JSON.stringify(state)}; history: ${JSON.stringify(history)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Waits for the row of `id` (the list refreshes itself), clicks it, waits for its detail. */
async function openFromList(page, id, args) {
  await waitFor(page, `task ${id} to appear in the list`, args.timeoutMs, (s) => s.rows.some((r) => r.id === id));
  await page.click(`#task-rows tr[data-task-id="${id}"]`);
  const { state } = await waitFor(page, `task ${id} to be shown`, args.timeoutMs, (s) => s.taskId === id && s.steps.length > 0);
  check(state.rows.find((r) => r.id === id).selected, "the clicked row is marked selected");
  return state;
}

async function shot(page, args, name, fullPage) {
  if (!args.screenshots) return null;
  const file = path.join(args.screenshots, name);
  await page.screenshot({ path: file, fullPage: !!fullPage });
  return file;
}

const scenarios = {
  /** An engine with an api_token: login, live try-on, cancel, retry, filters, paging, sign-out. */
  async protected(page, args) {
    const result = {};
    await page.goto(`${args.url}?refresh=1&limit=3`);

    // 1. Login prompt; a wrong token is refused; the right one loads the list and is kept.
    await waitFor(page, "the login prompt", args.timeoutMs, (s) => s.loginVisible && s.mode === "locked");
    await page.fill("#token", "not-the-token");
    await page.click("#login");
    await waitFor(page, "the wrong token to be refused", args.timeoutMs, (s) => s.loginVisible && /rejected/.test(s.loginError || ""));
    check(await page.evaluate(() => sessionStorage.length === 0), "a refused token is not stored");
    await page.fill("#token", args.token);
    await page.click("#login");
    let { state } = await waitFor(page, "the list to load after login", args.timeoutMs, (s) => !s.loginVisible && s.mode === "admin");
    check(!state.error, `the page shows an error: ${state.error}`);
    const stored = await page.evaluate(() => Object.values(sessionStorage));
    check(stored.includes(args.token), "the token is kept in sessionStorage");

    // 2. A try-on started by the harness appears, is followed live until it succeeded.
    const tryon = (await ask({ op: "start", kind: "tryon" })).id;
    await openFromList(page, tryon, args);
    const live = await waitFor(page, "the try-on to succeed live", args.timeoutMs, (s) =>
      s.taskId === tryon && (["failed", "canceled"].includes(s.taskStatus) ||
        (s.taskStatus === "succeeded" && s.steps.length === 3 && s.steps.every((x) => x.status === "succeeded" && x.outputImages.length > 0 && x.outputImages.every((i) => i.loaded)))));
    state = live.state;
    check(state.taskStatus === "succeeded", `the try-on ended ${state.taskStatus}`);
    const seen = live.history.task;
    check(seen.indexOf("running") >= 0 && seen.indexOf("running") < seen.indexOf("succeeded"), `running was seen before succeeded: ${seen.join(" -> ")}`);
    // Live, not only the end state: some step was seen unfinished, then succeeded.
    const stepSeen = Object.values(live.history.steps);
    check(stepSeen.some((h) => h.length > 1 && h[h.length - 1] === "succeeded"), `no step was seen before it succeeded: ${JSON.stringify(live.history.steps)}`);
    for (const step of state.steps) {
      check(/^[a-z0-9]+$/.test(step.prediction || ""), `step ${step.step} shows its prediction id: ${step.prediction}`);
      check(step.outputImages.every((i) => /\/files\/[^/]+\/out-0\.png$/.test(i.src)), `step ${step.step} thumbnails the simulator's output: ${JSON.stringify(step.outputImages)}`);
    }
    await waitFor(page, "the stream to close and the journal to show every step", args.timeoutMs, (s) =>
      s.live === "ended" && s.journal.filter((k) => k === "step_succeeded").length === 3);
    check(state.rows.find((r) => r.id === tryon)?.status === "succeeded", "the list row follows the task live");
    state = (await waitFor(page, "the counts to show the success", args.timeoutMs, (s) =>
      Number(s.counts["since-succeeded"]) >= 1 && Number(s.counts["loaded-succeeded"]) >= 1)).state;
    result.tryon = { id: tryon, seen, steps: live.history.steps, counts: state.counts };
    await page.evaluate(() => window.scrollTo(0, 0));
    result.taskScreenshot = await shot(page, args, "dashboard-task.png", true);

    // 3. Cancel a running task on a slow model.
    const slow = (await ask({ op: "start", kind: "slow" })).id;
    await openFromList(page, slow, args);
    state = (await waitFor(page, "the slow task to run", args.timeoutMs, (s) =>
      s.taskStatus === "running" && s.steps[0] && s.steps[0].prediction && ["starting", "processing"].includes(s.steps[0].status))).state;
    check(!state.cancelDisabled, "#cancel is enabled while the task runs");
    check(state.retryDisabled, "#retry is disabled while the task runs");
    await page.click("#cancel");
    state = (await waitFor(page, "the task to be canceled", args.timeoutMs, (s) =>
      s.actionError || (s.taskStatus === "canceled" && s.steps.every((x) => x.status === "canceled")))).state;
    check(!state.actionError, `cancel showed an error: ${state.actionError}`);
    check(state.cancelDisabled && state.retryDisabled, "both buttons are disabled once canceled");
    check(/cancel/i.test(state.taskError || ""), `the task error says canceled: ${state.taskError}`);
    result.cancel = { id: slow, steps: state.steps.map((s) => s.status) };

    // 4. Retry a failed task once the model works again.
    const failing = (await ask({ op: "start", kind: "failing" })).id;
    await openFromList(page, failing, args);
    state = (await waitFor(page, "the task to fail", args.timeoutMs, (s) => s.taskId === failing && s.taskStatus === "failed")).state;
    check(/CUDA out of memory/.test(state.steps[0].error || ""), `the step shows Replicate's error: ${state.steps[0].error}`);
    check(!state.retryDisabled && state.cancelDisabled, "on a failed task only #retry is enabled");
    await ask({ op: "heal", model: "test/failing" });
    await page.click("#retry");
    const retried = await waitFor(page, "the retried task to succeed", args.timeoutMs, (s) =>
      s.actionError || (s.taskStatus === "succeeded" && s.steps[0].attempt === "attempt 2"));
    state = retried.state;
    check(!state.actionError, `retry showed an error: ${state.actionError}`);
    const retrySeen = retried.history.task;
    check(retrySeen.includes("running") || retrySeen.includes("pending"), `the retried task was seen running again: ${retrySeen.join(" -> ")}`);
    check(state.steps[0].outputImages.length === 1, "the retried step shows its output image");
    await waitFor(page, "the journal to record the retry", args.timeoutMs, (s) => s.journal.includes("task_retried") && s.live === "ended");
    result.retry = { id: failing, seen: ["failed", ...retrySeen] };

    // 5. Server-side status filter, paging with "Load more" (limit=3 in the URL).
    await page.selectOption("#filter-status", "canceled");
    state = (await waitFor(page, "the canceled filter", args.timeoutMs, (s) => s.rows.length === 1)).state;
    check(state.rows[0].id === slow && state.rows[0].status === "canceled", `only the canceled task is listed: ${JSON.stringify(state.rows)}`);
    await page.evaluate(() => {
      const select = document.getElementById("filter-status");
      select.value = "";
      select.dispatchEvent(new Event("change"));
    });
    state = (await waitFor(page, "the unfiltered first page", args.timeoutMs, (s) => s.rows.length === 3)).state;
    check(JSON.stringify(state.rows.map((r) => r.id)) === JSON.stringify([failing, slow, tryon]), `newest first: ${JSON.stringify(state.rows)}`);
    // A running task on top (for the list screenshot too), then the next page.
    const running = (await ask({ op: "start", kind: "tryon" })).id;
    await waitFor(page, "the new task on top, the oldest on the next page", args.timeoutMs, (s) =>
      s.rows.length === 3 && s.rows[0].id === running && s.moreVisible);
    for (let i = 0; i < 3 && (await readState(page)).moreVisible; i += 1) {
      const before = (await readState(page)).rows.length;
      await page.click("#more");
      await waitFor(page, "the next page", args.timeoutMs, (s) => s.rows.length > before || !s.moreVisible);
    }
    state = (await waitFor(page, "every task after Load more", args.timeoutMs, (s) => s.rows.length === 4 && !s.moreVisible)).state;
    check(JSON.stringify(state.rows.map((r) => r.id)) === JSON.stringify([running, failing, slow, tryon]), `rows after paging: ${JSON.stringify(state.rows)}`);
    await page.click(`#task-rows tr[data-task-id="${running}"]`);
    await waitFor(page, "the new task running with step 1 done", args.timeoutMs, (s) =>
      s.taskId === running && s.steps[0] && s.steps[0].status === "succeeded" && s.steps[0].outputImages.every((i) => i.loaded) && s.live === "live");
    await page.evaluate(() => window.scrollTo(0, 0));
    result.listScreenshot = await shot(page, args, "dashboard-list.png");

    // 6. Sign out: the token is forgotten and the prompt is back; actions are disabled.
    await page.click("#logout");
    state = (await waitFor(page, "the login prompt after sign-out", args.timeoutMs, (s) => s.loginVisible && s.mode === "locked")).state;
    check(await page.evaluate(() => sessionStorage.length === 0), "sign-out clears sessionStorage");
    check(state.cancelDisabled, "#cancel is disabled without the token");
    result.rows = state.rows.length;
    return result;
  },

  /** An engine without api_token: no login, actions enabled, cancel works. */
  async open(page, args) {
    await page.goto(`${args.url}?refresh=1`);
    let { state } = await waitFor(page, "the list without a login", args.timeoutMs, (s) => s.mode === "open");
    check(!state.loginVisible, "no login prompt when the engine has no token");
    const slow = (await ask({ op: "start", kind: "slow" })).id;
    await openFromList(page, slow, args);
    state = (await waitFor(page, "the slow task to run", args.timeoutMs, (s) => s.taskStatus === "running" && !s.cancelDisabled)).state;
    await page.click("#cancel");
    state = (await waitFor(page, "the task to be canceled", args.timeoutMs, (s) => s.actionError || s.taskStatus === "canceled")).state;
    check(!state.actionError, `cancel showed an error: ${state.actionError}`);
    // Deep link: loading the page with #id opens that task.
    await page.goto(`${args.url}?refresh=1&since=3600#${slow}`);
    state = (await waitFor(page, "the deep-linked task", args.timeoutMs, (s) => s.taskId === slow && s.taskStatus === "canceled")).state;
    return { id: slow, mode: state.mode, live: state.live };
  },
};

async function main() {
  const args = parseArgs(process.argv.slice(2));
  await runScenario({
    scenarios,
    args,
    viewport: { width: 1440, height: 1000 },
    profilePrefix: "stepwise-dashboard-chromium-",
    logResponse: (response) => response.url().startsWith(args.url) && response.status() >= 400
      ? `response: ${response.request().method()} ${response.url()} -> ${response.status()}`
      : null,
    readState,
    logTail: 60,
  });
}

start(main);
