// What both browser drivers share (examples/frontend/e2e/drive.js and
// server/dashboard/e2e/drive.js): Chromium's flags for this closed network, the failure type,
// and the run of one scenario: launch Chromium on a fresh profile, collect the page's log,
// print `RESULT {...}` (exit 0) or what went wrong with the page's state (exit 1), clean up.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

class Failure extends Error {}

function check(condition, message) {
  if (!condition) throw new Failure(message);
}

/**
 * Runs `scenarios[args.scenario](page, args)` in a fresh headless Chromium and exits.
 * `logResponse(response)` returns a log line for a response worth keeping, or null;
 * `readState(page)` describes the page on failure; `logTail` bounds the log printed then.
 */
async function runScenario({ scenarios, args, viewport, profilePrefix, logResponse, readState, logTail = Infinity }) {
  const scenario = scenarios[args.scenario];
  if (!scenario) throw new Error(`unknown scenario ${args.scenario}; use ${Object.keys(scenarios).join(", ")}`);
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), profilePrefix));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: args.chromium,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport,
    timeout: 30000,
  });
  const logs = [];
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(10000);
  page.on("console", (msg) => logs.push(`console.${msg.type()}: ${msg.text()}`));
  page.on("pageerror", (error) => logs.push(`pageerror: ${error.message}`));
  page.on("requestfailed", (request) => logs.push(`requestfailed: ${request.method()} ${request.url()} ${request.failure()?.errorText}`));
  page.on("response", (response) => {
    const line = logResponse(response);
    if (line) logs.push(line);
  });

  let code = 0;
  try {
    const result = await scenario(page, args);
    const pageErrors = logs.filter((line) => line.startsWith("pageerror"));
    check(pageErrors.length === 0, `the page threw: ${pageErrors.join("; ")}`);
    console.log("RESULT " + JSON.stringify({ scenario: args.scenario, ok: true, ...result }));
  } catch (error) {
    code = 1;
    console.log(`FAILED scenario ${args.scenario}: ${error instanceof Failure ? error.message : error.stack}`);
    try { console.log("state: " + JSON.stringify(await readState(page))); } catch (_) { /* page gone */ }
    console.log("browser log:\n  " + logs.slice(-logTail).join("\n  "));
  } finally {
    await context.close().catch(() => {});
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  process.exit(code);
}

/** Runs `main` and turns an unexpected error into exit code 2. */
function start(main) {
  main().catch((error) => {
    console.log(`FAILED: ${error.stack || error}`);
    process.exit(2);
  });
}

module.exports = { CHROMIUM_ARGS, Failure, check, runScenario, start };
