// Drives epicenter's web page in a real browser (Debian's chromium through
// playwright-core), for tests/e2e/web.rs:
//
//   node web.js BASE_URL SCREENSHOT_DIR [TOKEN]
//
// Signs in (when a token is given), loads the list, follows the link into the
// CSI incident, checks its root, an affected pod, the timeline and the
// explanation are there, saves screenshots, then goes back to the list, prints
// READY (the test posts new alerts then) and waits for a new row to arrive
// without a reload. Exits non-zero with the reason on the first failure.
"use strict";

const path = require("path");
const { chromium } = require("playwright-core");

const [base, shots, token] = process.argv.slice(2);
if (!base || !shots) {
  console.error("usage: node web.js BASE_URL SCREENSHOT_DIR [TOKEN]");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
// Whatever happens, the test is not held longer than this.
setTimeout(() => {
  console.error("web.js: gave up after 90 s");
  process.exit(3);
}, 90_000).unref();

function check(ok, what) {
  if (!ok) {
    throw new Error("check failed: " + what);
  }
  console.log("ok: " + what);
}

async function main() {
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(m.text());
    });

    await page.goto(base + "/");
    if (token) {
      check((await page.locator("h1").innerText()) === "Sign in", "the list wants the token");
      await page.fill("#token", token);
      await Promise.all([page.waitForURL(base + "/"), page.click("button[type=submit]")]);
    }
    // The sign-in page itself answers 401: what counts starts here.
    errors.length = 0;
    check((await page.locator("h1").innerText()) === "Incidents", "the list is shown");
    const rows = page.locator("tbody#rows tr[data-id]");
    const before = await rows.count();
    check(before >= 2, `the replayed history's incidents are listed (${before})`);

    // Into the incident, by its link.
    const link = page.locator("tbody#rows a", { hasText: "CSI driver" }).first();
    await Promise.all([page.waitForURL(/\/incidents\/[0-9a-f]+$/), link.click()]);
    const main = await page.locator("main").innerText();
    const text = await page.locator("main").textContent();
    check(main.includes("Root cause"), "the incident has a root cause section");
    check(main.includes("DaemonSet nfs-csi/csi-nfs-node"), "the root is named");
    check(text.includes("calibre-web-69lnzv7jfp-l7wtk"), "an affected pod is in the blast radius");
    check((await page.locator("li.lane").count()) >= 2, "the timeline has lanes");
    check((await page.locator("li.lane.root .signal").innerText()) === "csi-sidecar-port-conflict",
      "the cause's lane is marked");
    check((await page.locator("svg .root-mark").count()) === 1, "the root's first record is marked");
    check(main.includes("Why epicenter believes it") && main.includes("showed the cause"),
      "the explanation is in words");
    check(main.includes("Notifications") && main.includes("Seen before"),
      "the notifications and the incidents seen before have their sections");
    // The tree folds: a namespace closes and opens with the keyboard.
    const ns = page.locator(".tree details.affected > ul > li > details").first();
    await ns.evaluate((d) => d.querySelector("summary").focus());
    const open = await ns.evaluate((d) => d.open);
    await page.keyboard.press("Enter");
    check((await ns.evaluate((d) => d.open)) === !open, "a namespace folds from the keyboard");
    await page.keyboard.press("Enter");
    const href = await page.locator("a", { hasText: "Post-mortem draft" }).getAttribute("href");
    const pm = await page.request.get(base + href);
    check(pm.status() === 200 && (await pm.text()).startsWith("# Post-mortem"), "the post-mortem draft is linked");
    check(/^attachment; filename="postmortem-[0-9a-f]+\.md"$/.test(pm.headers()["content-disposition"] || ""),
      "the draft downloads as a file");
    await page.screenshot({ path: path.join(shots, "incident.png"), fullPage: true });
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: path.join(shots, "incident-top.png") });

    // Back to the list: new alerts arrive while it is open.
    await page.goto(base + "/");
    const n = await rows.count();
    console.log("READY");
    await page.waitForFunction(
      (n) => document.querySelectorAll("tbody#rows tr[data-id]").length > n,
      n,
      { timeout: 45_000, polling: 250 },
    );
    check((await page.locator("tbody#rows tr.new").count()) >= 1, "a new incident arrived without a reload");
    check((await page.locator("#live").innerText()).includes("new"), "the arrival is announced");
    await page.screenshot({ path: path.join(shots, "list.png"), fullPage: true });

    // The new incident was notified (the test's serve has a webhook): its
    // page lists the delivery once it has landed.
    const fresh = await page.locator("tbody#rows tr.new a").first().getAttribute("href");
    let delivered = false;
    for (let i = 0; i < 40 && !delivered; i++) {
      await page.goto(base + fresh);
      delivered = (await page.locator("table.sent").count()) === 1;
      if (!delivered) {
        await page.waitForTimeout(250);
      }
    }
    check(delivered, "the new incident's page lists its delivery");
    const sent = await page.locator("table.sent").innerText();
    check(sent.includes("#1 opened: sent"), "the opening notification is listed: " + sent);
    check((await page.locator("main").innerText()).includes("first notification delivered"),
      "the moments say when it was announced");
    await page.goto(base + "/");

    // A phone.
    const phone = await browser.newContext({
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
      storageState: await context.storageState(),
    });
    const small = await phone.newPage();
    await small.goto(base + "/");
    check((await small.locator("tbody#rows tr[data-id]").count()) > n, "the list reads on a phone");
    const width = await small.evaluate(() => document.documentElement.scrollWidth);
    check(width <= 390, `nothing scrolls sideways on a phone (${width}px)`);
    await small.screenshot({ path: path.join(shots, "list-phone.png"), fullPage: true });
    await small.locator("tbody#rows a", { hasText: "CSI driver" }).first().click();
    await small.waitForURL(/\/incidents\//);
    await small.screenshot({ path: path.join(shots, "incident-phone.png") });

    check(errors.length === 0, "no script or console errors: " + errors.join("; "));
  } finally {
    await browser.close();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(String(e && e.stack ? e.stack : e));
    process.exit(1);
  },
);
