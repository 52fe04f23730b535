// The Point Picker in a real headless Chromium (Debian's, driven by playwright-core): click pairs,
// drag a point, paint and erase the mask, reload the state, check the JSON and the pixels.
// Skips when chromium or playwright-core is not installed (tests/web/run.sh installs them).
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, extname, join, normalize } from "node:path";
import test from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = normalize(join(dirname(fileURLToPath(import.meta.url)), "..", ".."));
const CHROMIUM = "/usr/bin/chromium";
let chromium = null;
try {
  ({ chromium } = await import("playwright-core"));
} catch {
  chromium = null;
}
const skip = !chromium || !existsSync(CHROMIUM) ? "needs Debian chromium and playwright-core (tests/web/run.sh)" : false;

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript" };

function serve() {
  const server = createServer((request, response) => {
    const path = normalize(join(ROOT, decodeURIComponent(new URL(request.url, "http://x").pathname)));
    if (!path.startsWith(ROOT) || !existsSync(path)) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { "content-type": TYPES[extname(path)] ?? "application/octet-stream" });
    response.end(readFileSync(path));
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

test("point picker in Chromium", { skip, timeout: 120_000 }, async () => {
  const server = await serve();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 600, height: 500 } });
    await page.goto(`http://127.0.0.1:${server.address().port}/tests/web/fixtures/index.html`);
    await page.waitForFunction(() => window.ready && window.editor.image);
    const at = (p) => page.evaluate((q) => window.screenOf(q), p);
    const click = async (p) => {
      const [x, y] = await at(p);
      await page.mouse.click(x, y);
    };
    const drag = async (from, to, steps = 8) => {
      const [x0, y0] = await at(from);
      const [x1, y1] = await at(to);
      await page.mouse.move(x0, y0);
      await page.mouse.down();
      await page.mouse.move(x1, y1, { steps });
      await page.mouse.up();
    };

    // Two pairs, then move the first target.
    await click([150, 190]);
    await click([260, 190]);
    await click([385, 125]);
    await click([385, 290]);
    await drag([260, 190], [280, 200]);
    // Paint a band and erase a dot in it.
    await page.getByRole("button", { name: "Brush" }).click();
    await drag([60, 330], [300, 330]);
    await page.getByRole("button", { name: "Eraser" }).click();
    await click([180, 330]);
    await page.getByRole("button", { name: "Points", exact: true }).click();
    await page.waitForTimeout(100);

    const state = JSON.parse(await page.evaluate(() => window.editor.value()));
    const close = (a, b) => assert.ok(Math.hypot(a[0] - b[0], a[1] - b[1]) <= 1.5, `${a} != ${b}`);
    assert.deepEqual(state.image_size, [512, 384]);
    assert.equal(state.pairs.length, 2);
    close(state.pairs[0].handle, [150, 190]);
    close(state.pairs[0].target, [280, 200]);
    close(state.pairs[1].handle, [385, 125]);
    close(state.pairs[1].target, [385, 290]);
    assert.deepEqual(state.mask.strokes.map((s) => s.mode), ["paint", "erase"]);

    // Pixels: the arrow's colour near the first target, the mask tint where painted, none where erased.
    const target = await page.evaluate(() => window.pixelAt([215, 195])); // on the shaft of arrow 1
    assert.ok(target[0] > 180 && target[1] < 110, `arrow pixel ${target}`);
    const painted = await page.evaluate(() => window.pixelAt([100, 330]));
    const erased = await page.evaluate(() => window.pixelAt([180, 330]));
    const plain = await page.evaluate(() => window.pixelAt([100, 20]));
    assert.ok(painted[2] > plain[2] + 20, `tint ${painted} vs ${plain}`);
    assert.ok(Math.abs(erased[2] - plain[2]) < 40 && erased[2] < painted[2], `erased ${erased}`);

    // Reload the serialised state into a fresh editor: identical.
    const text = await page.evaluate(() => window.editor.value());
    assert.equal(await page.evaluate((t) => window.mountFresh(t), text), text);
    // Undo removes the erase stroke.
    await page.evaluate(() => window.editor.undo());
    assert.equal(JSON.parse(await page.evaluate(() => window.editor.value())).mask.strokes.length, 1);
    await page.evaluate(() => window.editor.load(window.changes.at(-1)));

    mkdirSync(join(ROOT, "docs"), { recursive: true });
    await page.locator("#host").screenshot({ path: join(ROOT, "docs", "point_picker.png") });
  } finally {
    await browser.close();
    server.close();
  }
});
