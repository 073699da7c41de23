// The web page in headless Chromium (run by scripts/test-serve-clients.sh):
// a fake microphone plays the JFK clip into the page's live mode, which must
// show the JFK sentence; a screenshot is saved. Then a file upload through
// the page's file input shows timed segments.
import { createRequire } from "node:module";
const require = createRequire(process.env.NODE_PATH + "/");
const { chromium } = require("playwright-core");

const url = process.env.EMILY_URL;
const wav = process.env.JFK_WAV;
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    `--use-file-for-fake-audio-capture=${wav}`, "--autoplay-policy=no-user-gesture-required",
  ],
});
let failed = false;
try {
  const page = await browser.newPage();
  page.on("console", (m) => console.log("page:", m.text()));
  await page.goto(url + "/");
  await page.fill("#key", process.env.EMILY_API_KEY);
  await page.dispatchEvent("#key", "change");

  // Live mode from the (fake) microphone.
  await page.click("#live");
  await page.waitForFunction(
    () => (document.getElementById("transcript").textContent + " " +
           document.getElementById("partial").textContent).includes("ask not what your country"),
    null, { timeout: 90_000 });
  await page.click("#stop");
  await page.waitForFunction(() => document.getElementById("status").textContent.includes("finished"),
    null, { timeout: 60_000 });
  const live = await page.textContent("#transcript");
  console.log("live transcript:", live.trim());
  if (!live.includes("ask not what your country")) throw new Error("live text: " + live);
  await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });

  // A file through the page.
  await page.setInputFiles("#file", wav);
  await page.waitForFunction(() => document.querySelectorAll("#transcript .seg").length === 2,
    null, { timeout: 60_000 });
  const file = await page.textContent("#transcript");
  if (!file.includes("ask what you can do for your country")) throw new Error("file text: " + file);
  console.log("page: live microphone and file upload ok; screenshot", process.env.SCREENSHOT);
} catch (e) {
  console.error("page test failed:", e.message);
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
