// The web page in headless Chromium (Debian's chromium, driven by
// puppeteer-core over the DevTools protocol), run by the `browser_page` test
// and by scripts/test-serve-clients.sh. A fake microphone plays the JFK clip
// into the page's live mode, which must show the JFK sentence (the real
// getUserMedia → AudioWorklet → WebSocket path); a screenshot is saved. Then a
// file upload through the page's file input shows timed segments, and, when
// QUESTION is set (a language model is loaded), the chat box streams the
// model's greedy reply to it (EXPECT_CHAT, when set); with no QUESTION the
// chat box must stay hidden.
//
// Environment: EMILY_URL, EMILY_API_KEY, JFK_WAV, SCREENSHOT, NODE_PATH (the
// node_modules holding puppeteer-core), CHROMIUM (default /usr/bin/chromium),
// QUESTION and EXPECT_CHAT (optional).
import { createRequire } from "node:module";
const require = createRequire(process.env.NODE_PATH + "/");
const puppeteer = require("puppeteer-core");

const url = process.env.EMILY_URL;
const wav = process.env.JFK_WAV;
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    `--use-file-for-fake-audio-capture=${wav}`, "--autoplay-policy=no-user-gesture-required",
  ],
});
const text = (page, sel) => page.$eval(sel, (e) => e.textContent);
let failed = false;
let page = null;
try {
  page = await browser.newPage();
  page.on("console", (m) => console.log("page:", m.text()));
  page.on("pageerror", (e) => console.log("page error:", e.message));
  await page.goto(url + "/");
  await page.type("#key", process.env.EMILY_API_KEY);
  await page.$eval("#key", (e) => e.dispatchEvent(new Event("change")));

  // Live mode from the (fake) microphone.
  await page.click("#live");
  await page.waitForFunction(
    () => (document.getElementById("transcript").textContent + " " +
           document.getElementById("partial").textContent).includes("ask not what your country"),
    { timeout: 120_000 });
  await page.click("#stop");
  // Finishing transcribes every chunk still queued: on a loaded machine the
  // fake microphone (which loops the file) can be minutes ahead of the model.
  await page.waitForFunction(() => document.getElementById("status").textContent.includes("finished"),
    { timeout: 300_000 });
  const live = await text(page, "#transcript");
  console.log("live transcript:", live.trim());
  if (!live.includes("ask not what your country")) throw new Error("live text: " + live);

  // A file through the page.
  const input = await page.$("#file");
  await input.uploadFile(wav);
  await page.waitForFunction(() => document.querySelectorAll("#transcript .seg").length >= 1 &&
      document.getElementById("transcript").textContent.includes("for your country"),
    { timeout: 300_000 });
  const file = await text(page, "#transcript");
  if (!file.includes("ask what you can do for your country")) throw new Error("file text: " + file);
  console.log("file transcript:", file.trim());

  // The chat box, when a language model is loaded (QUESTION set; the reply
  // must be EXPECT_CHAT when that is set, else not empty).
  const expected = process.env.EXPECT_CHAT;
  const asked = process.env.QUESTION !== undefined;
  if (asked) {
    await page.waitForFunction(() => !document.getElementById("chat").hidden, { timeout: 30_000 });
    await page.$eval("#temperature", (e) => { e.value = "0"; });
    await page.type("#chat-input", process.env.QUESTION);
    await page.click("#chat-send");
    await page.waitForFunction(() => document.getElementById("chat-status").textContent !== "…" &&
        document.getElementById("chat-status").textContent !== "", { timeout: 120_000 });
    const status = await text(page, "#chat-status");
    const reply = await page.$$eval(".msg.assistant", (m) => m[m.length - 1].textContent);
    console.log("chat reply:", JSON.stringify(reply), "status:", status);
    if (status !== "done") throw new Error("chat failed: " + status);
    if (expected === undefined ? reply === "" : reply !== expected) throw new Error(`chat reply ${JSON.stringify(reply)} != ${JSON.stringify(expected)}`);
  } else if (!(await page.$eval("#chat", (e) => e.hidden))) {
    throw new Error("the chat box shows with no language model loaded");
  }
  await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  console.log("page ok: live microphone, file upload" + (asked ? ", streamed chat" : "") +
              "; screenshot " + process.env.SCREENSHOT);
} catch (e) {
  console.error("page test failed:", e.message);
  if (page) {
    const shown = await page.evaluate(() => ["status", "partial", "transcript", "chat-status"]
      .map((id) => id + ": " + JSON.stringify(document.getElementById(id).textContent)).join("\n"))
      .catch((err) => "(page unreadable: " + err.message + ")");
    console.error(shown);
  }
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
