// Opens the server's page in headless Chromium, uploads a photo through the page's file input
// (the path a dropped file takes too), waits for the boxes, and saves a screenshot.
//
//   node drop.mjs URL PHOTO SCREENSHOT.png EXPECTED_FACES
//
// Prints one JSON object: the faces drawn (label and box as laid out on the page) and the caption.
import { launch } from "./chromium.mjs";

const [url, photo, screenshot, expected] = process.argv.slice(2);
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url);
  await page.setInputFiles("#file", photo);
  await page.waitForFunction(
    (n) => document.querySelectorAll(".face").length >= n
      || document.querySelector(".caption.error") !== null,
    Number(expected), { timeout: 60_000 });
  await page.waitForTimeout(200);
  await page.screenshot({ path: screenshot, fullPage: true });
  const result = await page.evaluate(() => ({
    faces: [...document.querySelectorAll(".face")].map((f) => {
      const r = f.getBoundingClientRect();
      return { label: f.classList.contains("female") ? "female" : "male",
        text: f.textContent, width: r.width, height: r.height };
    }),
    caption: document.querySelector(".caption").textContent,
  }));
  result.errors = errors;
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
