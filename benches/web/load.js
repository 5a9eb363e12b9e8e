// Chromium's view of one page of epicenter: loads URL RUNS times in a fresh
// page each, and prints, per run, the navigation timing (ms from the start
// of the navigation): responseStart (the server's first byte),
// responseEnd (the whole HTML received), domContentLoadedEventEnd and
// loadEventEnd, then the medians as one JSON line.
//
//   NODE_PATH=tests/browser/node_modules node benches/web/load.js URL [RUNS]
"use strict";

const { chromium } = require("playwright-core");

const [url, runsArg] = process.argv.slice(2);
const runs = Number(runsArg || 7);

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const keys = ["responseStart", "responseEnd", "domContentLoadedEventEnd", "loadEventEnd"];
  const all = Object.fromEntries(keys.map((k) => [k, []]));
  let bytes = 0;
  for (let i = 0; i < runs; i++) {
    const page = await context.newPage();
    const response = await page.goto(url, { waitUntil: "load" });
    if (!response.ok()) {
      throw new Error(url + " answered " + response.status());
    }
    bytes = (await response.body()).length;
    const t = await page.evaluate(() => performance.getEntriesByType("navigation")[0].toJSON());
    for (const k of keys) {
      all[k].push(t[k]);
    }
    await page.close();
  }
  await browser.close();
  const out = { url, runs, html_bytes: bytes };
  for (const k of keys) {
    out[k + "_ms"] = Math.round(median(all[k]) * 10) / 10;
  }
  console.log(JSON.stringify(out));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
