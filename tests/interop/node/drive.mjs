// Drives River UI in Debian's headless Chromium (playwright-core, no browser download) for
// tests/interop/test_river_ui.py. One run: a list of steps as JSON in argv[2]; prints one JSON
// document: for each step the page's visible text (and where a screenshot went).
//
//   {"goto": "http://127.0.0.1:PORT/queues", "wait_text": "default", "shot": "/path/queues.png"}
//   {"click": "Retry", "wait_text": "Available", "shot": "/path/after.png"}
//   {"click": "Pause", "exact": false}        (a button whose accessible name contains "Pause")
//
// A confirmation dialog is accepted (River UI asks before some actions).
import { chromium } from "playwright-core";

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

const steps = JSON.parse(process.argv[2]);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: FLAGS,
});
const results = [];
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on("dialog", (dialog) => dialog.accept());
  for (const step of steps) {
    if (step.goto) await page.goto(step.goto, { waitUntil: "networkidle" });
    if (step.click) {
      const exact = step.exact !== false;
      await page.getByRole("button", { name: step.click, exact }).first().click();
    }
    if (step.wait_text) {
      await page.getByText(step.wait_text, { exact: false }).first().waitFor({ timeout: 60000 });
    }
    await page.waitForLoadState("networkidle");
    if (step.shot) await page.screenshot({ path: step.shot, fullPage: true });
    results.push({ url: page.url(), text: await page.innerText("body") });
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(results));
