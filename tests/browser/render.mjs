// Opens a page (a URL or a file) in headless Chromium, waits for it to load, saves a full-page
// screenshot and prints what it shows: title, headings, inline SVG charts, images that did not load.
//
//   node render.mjs URL_OR_FILE SCREENSHOT.png
import { launch } from "./chromium.mjs";
import { pathToFileURL } from "node:url";

const [target, screenshot] = process.argv.slice(2);
const url = /^[a-z]+:\/\//.test(target) ? target : pathToFileURL(target).href;
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const errors = [];
  const requests = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  // A self-contained page asks for nothing beyond itself.
  page.on("request", (r) => { if (r.url() !== url) requests.push(r.url()); });
  await page.goto(url, { waitUntil: "load" });
  await page.screenshot({ path: screenshot, fullPage: true });
  const shown = await page.evaluate(() => ({
    title: document.title,
    headings: [...document.querySelectorAll("h1, h2, h3")].map((h) => h.textContent.trim()),
    svgs: document.querySelectorAll("svg").length,
    images: document.images.length,
    brokenImages: [...document.images].filter((i) => !i.complete || i.naturalWidth === 0).length,
    tables: document.querySelectorAll("table").length,
    height: document.documentElement.scrollHeight,
  }));
  shown.errors = errors;
  shown.requests = requests.filter((u) => !u.startsWith("data:"));
  console.log(JSON.stringify(shown));
} finally {
  await browser.close();
}
