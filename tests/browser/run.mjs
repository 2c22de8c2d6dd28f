// Drives Debian's headless Chromium through the example integration page
// (examples/browser) for each scenario and prints one JSON report on stdout.
// Run by tests/browser.rs:
//   node run.mjs '{"chromium": PATH, "forbidden": [...], "scenarios": [{"name", "login", "page"}]}'
// `login` (optional) is visited first so the app sets its session cookie.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const config = JSON.parse(process.argv[2]);
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

// Opens a fresh Chromium profile for `scenario`, records the page's console
// errors and failed requests in `report`, shows each response to
// `onResponse`, then runs `steps(page, bodies)`: `bodies()` resolves to every
// response body the page received (null for one that never arrived).
async function inBrowser(scenario, report, onResponse, steps) {
  console.error(`browser: ${scenario.name}`);
  const profile = await mkdtemp(join(tmpdir(), "atv-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: config.chromium,
    headless: true,
    args: ARGS,
    timeout: 30000,
  });
  report.consoleErrors = [];
  report.failedRequests = [];
  const bodies = [];
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    page.on("console", (m) => {
      if (m.type() === "error") report.consoleErrors.push(m.text());
    });
    page.on("requestfailed", (r) => {
      report.failedRequests.push({ url: r.url(), error: r.failure()?.errorText ?? "" });
    });
    page.on("response", (r) => {
      onResponse(r);
      // Some bodies never arrive (a response the browser blocked): give up after 3 s.
      const gaveUp = new Promise((resolve) => setTimeout(() => resolve(null), 3000));
      bodies.push(Promise.race([r.text().catch(() => null), gaveUp]));
    });
    await steps(page, () => Promise.all(bodies));
  } finally {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  }
  return report;
}

// What the page's scripts can see besides response bodies: its DOM and its
// script-readable storage.
async function pageState(page) {
  return [
    await page.content(),
    await page.evaluate(() => document.cookie + JSON.stringify({ ...localStorage })),
  ];
}

async function runScenario(scenario) {
  if (scenario.astra) return runAstraScenario(scenario);
  const report = {
    state: null,
    text: null,
    tokenRequests: [],
    bodiesChecked: 0,
    sawAccessToken: false,
    leaks: [],
  };
  const onResponse = (r) => {
    if (r.url().includes("/astrada-sdk-token") && r.request().method() === "GET") {
      report.tokenRequests.push({ url: r.url(), status: r.status() });
    }
  };
  return inBrowser(scenario, report, onResponse, async (page, bodies) => {
    if (scenario.login) await page.goto(scenario.login);
    await page.goto(scenario.page);
    const root = page.locator("#card-enrollment[data-state=ready], #card-enrollment[data-state=error]");
    await root.waitFor({ timeout: 10000 });
    report.state = await page.locator("#card-enrollment").getAttribute("data-state");
    report.text = await page.locator("#card-enrollment").textContent();

    // Everything the page could see: its DOM, its script-readable storage,
    // and every response body it received.
    const seen = await pageState(page);
    for (const body of await bodies()) {
      if (body === null) continue;
      report.bodiesChecked += 1;
      if (body.includes('"access_token"')) report.sawAccessToken = true;
      seen.push(body);
    }
    for (const secret of config.forbidden) {
      if (seen.some((s) => s.includes(secret))) report.leaks.push(`forbidden[${config.forbidden.indexOf(secret)}]`);
    }
  });
}

// The Astra authorization in the browser: `authorize_url` (started by the
// test on the internal listener) -> the OAuth module's Authorize button ->
// the service's /astra/callback -> `completion` (examples/browser/astra.html).
//   {"name", "astra": true, "authorize_url", "completion"}
// Reports every committed main-frame URL, the callback's status and origin, the page's result and
// everything the browser saw (`seen`), so the test can check that no token
// or code reached the page.
async function runAstraScenario(scenario) {
  const report = {
    state: null,
    problem: null,
    text: null,
    finalUrl: null,
    navigations: [],
    callbackStatuses: [],
    callbackOrigins: [],
    seen: [],
  };
  const onResponse = (r) => {
    const at = new URL(r.url());
    if (at.pathname === "/astra/callback") {
      report.callbackStatuses.push(r.status());
      report.callbackOrigins.push(at.origin);
    }
  };
  return inBrowser(scenario, report, onResponse, async (page, bodies) => {
    page.on("framenavigated", (frame) => {
      if (frame === page.mainFrame()) report.navigations.push(frame.url());
    });
    await page.goto(scenario.authorize_url);
    await page.getByRole("button", { name: "Authorize" }).click();
    await page.waitForURL((url) => url.href.startsWith(scenario.completion), { timeout: 15000 });
    const result = page.locator("#astra-result[data-state=confirm], #astra-result[data-state=failed]");
    await result.waitFor({ timeout: 10000 });
    report.state = await page.locator("#astra-result").getAttribute("data-state");
    report.problem = await page.locator("#astra-result").getAttribute("data-problem");
    report.text = await page.locator("#astra-result").textContent();
    report.finalUrl = page.url();
    report.seen.push(...(await pageState(page)));
    for (const body of await bodies()) {
      if (body !== null) report.seen.push(body);
    }
  });
}

const results = {};
for (const scenario of config.scenarios) {
  results[scenario.name] = await runScenario(scenario);
}
process.stdout.write(JSON.stringify(results) + "\n");
