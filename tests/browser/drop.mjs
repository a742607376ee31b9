// Opens the server's page in headless Chromium, uploads a photo through the page's file input
// (the path a dropped file takes too), waits for the boxes, and saves a screenshot.
//
//   node drop.mjs URL PHOTO SCREENSHOT.png EXPECTED_FACES [COPIES]
//
// With COPIES, that many copies of the photo are uploaded at once (as a drop of many photos is)
// and EXPECTED_FACES is the total over all of them. Prints one JSON object: the faces drawn
// (label and box as laid out on the page), the first caption, and every caption.
import { readFileSync } from "node:fs";
import { launch } from "./chromium.mjs";

const [url, photo, screenshot, expected, copies = "1"] = process.argv.slice(2);
const bytes = readFileSync(photo);
const files = Array.from({ length: Number(copies) }, (_, i) =>
  ({ name: `copy-${i + 1}.jpg`, mimeType: "image/jpeg", buffer: bytes }));
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url);
  await page.setInputFiles("#file", copies === "1" ? photo : files);
  await page.waitForFunction(
    (n) => document.querySelectorAll(".face").length >= n
      || document.querySelector(".caption.error") !== null,
    Number(expected), { timeout: 120_000 });
  await page.waitForTimeout(200);
  await page.screenshot({ path: screenshot, fullPage: true });
  const result = await page.evaluate(() => ({
    faces: [...document.querySelectorAll(".face")].map((f) => {
      const r = f.getBoundingClientRect();
      return { label: f.classList.contains("female") ? "female" : "male",
        text: f.textContent, width: r.width, height: r.height };
    }),
    caption: document.querySelector(".caption").textContent,
    captions: [...document.querySelectorAll(".caption")].map((c) => c.textContent),
  }));
  result.errors = errors;
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
