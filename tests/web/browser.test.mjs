// The Point Picker in a real browser: Debian's chromium driven by playwright-core (from npm; no
// browser download). A tiny static server on 127.0.0.1 serves web/ and tests/web/fixtures/; the
// fixture page mounts the editor (no ComfyUI) on a generated picture. We click two pairs, drag a
// point, draw and delete a third, paint and erase the mask, use the keyboard, reload the state into
// a fresh editor, and check the JSON (image pixels) and the canvas pixels. Screen positions are
// computed here from the canvas' layout, independently of web/dragkit/model.js.
// Skips when /usr/bin/chromium or playwright-core is missing (tests/web/run.sh installs both).
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { dirname, extname, join, normalize, sep } from "node:path";
import test from "node:test";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = normalize(join(HERE, "..", ".."));
const SCREENSHOT = join(ROOT, "docs", "point_picker.png");
const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

let chromium = null;
try {
  ({ chromium } = await import("playwright-core"));
} catch {
  chromium = null;
}
const skip = !chromium ? "playwright-core is not installed (tests/web/run.sh runs npm ci)"
  : !existsSync(CHROMIUM) ? `${CHROMIUM} is missing (tests/web/run.sh installs Debian's chromium)` : false;

// URL prefix -> folder. Nothing else is served.
const MOUNTS = { "/web/": join(ROOT, "web"), "/fixtures/": join(HERE, "fixtures") };
const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css" };

function serve() {
  const server = createServer(async (request, response) => {
    let path = decodeURIComponent(new URL(request.url, "http://127.0.0.1").pathname);
    if (path === "/") path = "/fixtures/index.html";
    if (path === "/favicon.ico") {
      response.writeHead(204).end();
      return;
    }
    const prefix = Object.keys(MOUNTS).find((p) => path.startsWith(p));
    const file = prefix && normalize(join(MOUNTS[prefix], path.slice(prefix.length)));
    if (!file || !file.startsWith(MOUNTS[prefix] + sep)) {
      response.writeHead(404).end();
      return;
    }
    try {
      const body = await readFile(file);
      response.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" }).end(body);
    } catch {
      response.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

// ------------------------------------------------------------------- the scene, in image pixels
const SIZE = [640, 427];
const H1 = [190, 150]; // the sun
const T1_FIRST = [300, 80];
const T1 = [262, 104]; // after dragging the target
const H2 = [440, 192]; // below the peak
const T2 = [440, 140];
const H3 = [80, 330]; // drawn by dragging, then removed
const T3 = [140, 300];
const STROKE_A = { radius: 36, points: [[170, 160], [205, 140], [245, 118], [268, 100]] };
const STROKE_B = { radius: 28, points: [[412, 222], [440, 188], [468, 222]] };
const ERASE = { radius: 14, at: [160, 170] };
const PAINTED = [200, 120]; // inside stroke A, away from the arrows
const PAIR_1_COLOUR = [230, 57, 70]; // PAIR_COLOURS[0]
const MASK_TINT = [54, 197, 240]; // MASK_COLOUR at MASK_ALPHA
const MASK_ALPHA = 0.42;

/** Letterboxed fit of the image in the canvas' layout box, then the CSS zoom of the bounding rect. */
function geometry(layout) {
  const scale = Math.min(layout.clientWidth / SIZE[0], layout.clientHeight / SIZE[1]);
  const ox = (layout.clientWidth - SIZE[0] * scale) / 2;
  const oy = (layout.clientHeight - SIZE[1] * scale) / 2;
  const zoom = layout.width / layout.clientWidth;
  const canvas = ([x, y]) => [ox + x * scale, oy + y * scale];
  const screen = (p) => canvas(p).map((v, i) => (i ? layout.top : layout.left) + v * zoom);
  return { scale, canvas, screen };
}

const near = (a, b, tol, what) =>
  assert.ok(Math.hypot(a[0] - b[0], a[1] - b[1]) <= tol, `${what}: ${JSON.stringify(a)} is not within ${tol} of ${JSON.stringify(b)}`);
const colourNear = (a, b, tol, what) =>
  assert.ok(a.every((v, i) => Math.abs(v - b[i]) <= tol), `${what}: ${JSON.stringify(a)} is not within ${tol} of ${JSON.stringify(b)}`);
const tinted = (rgb) => rgb.map((v, i) => v * (1 - MASK_ALPHA) + MASK_TINT[i] * MASK_ALPHA);

/** The fixture page in a fresh Chromium (closed after test `t`), and the errors it logs. */
async function openPage(t, deviceScaleFactor) {
  const server = await serve();
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  t.after(async () => {
    await browser.close();
    server.close();
  });
  const page = await browser.newPage({ viewport: { width: 760, height: 1040 }, deviceScaleFactor });
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  page.on("console", (message) => message.type() === "error" && errors.push(message.text()));
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  await page.waitForFunction(() => window.ready === true, null, { timeout: 30_000 });
  return { page, errors };
}

test("point picker in Chromium", { skip, timeout: 180_000 }, async (t) => {
  const { page, errors } = await openPage(t, 2);

  const layout = await page.evaluate(() => window.layout(window.editor));
  assert.equal(layout.backingWidth, 2 * layout.clientWidth, "the backing store follows devicePixelRatio");
  const g = geometry(layout);
  const mouse = page.mouse;
  const click = (p, options) => mouse.click(...g.screen(p), options);
  const drag = async (points, steps = 6) => {
    await mouse.move(...g.screen(points[0]));
    await mouse.down();
    for (const p of points.slice(1)) await mouse.move(...g.screen(p), { steps });
    await mouse.up();
  };
  const state = async () => JSON.parse(await page.evaluate(() => window.editor.value()));
  const setRadius = (r) => page.locator("#host input[type=range]").evaluate((el, value) => {
    el.value = String(value);
    el.dispatchEvent(new Event("input", { bubbles: true }));
  }, r);
  const pixel = async (p) => page.evaluate(([q]) => window.canvasPixelAt(window.editor, q), [g.canvas(p)]);
  const imagePixel = (p) => page.evaluate((q) => window.imagePixelAt(q), p);

  // Points: two pairs by clicking, then move the first target by dragging it.
  await click(H1);
  await click(T1_FIRST);
  await click(H2);
  await click(T2);
  await drag([T1_FIRST, T1]);
  // A third pair drawn in one drag, then removed with a right-click on its target.
  await drag([H3, T3]);
  assert.equal((await state()).pairs.length, 3);
  await click(T3, { button: "right" });
  assert.equal((await state()).pairs.length, 2);

  // Mask: two brush strokes, one eraser dab.
  await page.getByRole("button", { name: "Brush", exact: true }).click();
  await setRadius(STROKE_A.radius);
  await drag(STROKE_A.points);
  await setRadius(STROKE_B.radius);
  await drag(STROKE_B.points);
  await page.getByRole("button", { name: "Eraser", exact: true }).click();
  await setRadius(ERASE.radius);
  await click(ERASE.at);
  await page.getByRole("button", { name: "Points", exact: true }).click();
  await mouse.move(740, 1020); // off the canvas: no brush outline
  await page.evaluate(() => window.nextFrame());

  // The serialised state, in image pixels.
  const s = await state();
  assert.equal(s.version, 1);
  assert.deepEqual(s.image_size, SIZE);
  assert.equal(s.pairs.length, 2);
  near(s.pairs[0].handle, H1, 1, "pair 1 handle");
  near(s.pairs[0].target, T1, 1, "pair 1 target (dragged)");
  near(s.pairs[1].handle, H2, 1, "pair 2 handle");
  near(s.pairs[1].target, T2, 1, "pair 2 target");
  assert.deepEqual(s.mask.strokes.map((k) => [k.mode, k.radius]), [["paint", 36], ["paint", 28], ["erase", 14]]);
  near(s.mask.strokes[0].points[0], STROKE_A.points[0], 1, "stroke A start");
  near(s.mask.strokes[0].points.at(-1), STROKE_A.points.at(-1), 1, "stroke A end");
  near(s.mask.strokes[2].points[0], ERASE.at, 1, "eraser dab");
  const changes = await page.evaluate(() => window.changes);
  assert.equal(changes.at(-1), JSON.stringify(s), "onChange got the latest state");

  // Pixels: pair 1's colour inside its arrowhead, the tint where painted, none where erased.
  const head = (handle, target, back) => {
    const [hx, hy] = g.canvas(handle);
    const [tx, ty] = g.canvas(target);
    const l = Math.hypot(tx - hx, ty - hy);
    return [tx - ((tx - hx) / l) * back, ty - ((ty - hy) / l) * back];
  };
  const arrow = await page.evaluate(([q]) => window.canvasPixelAt(window.editor, q), [head(H1, T1, 12)]);
  colourNear(arrow, PAIR_1_COLOUR, 40, "arrow 1 near its target");
  colourNear(await pixel(PAINTED), tinted(await imagePixel(PAINTED)), 24, "mask tint where painted");
  const erased = await pixel(ERASE.at);
  colourNear(erased, await imagePixel(ERASE.at), 24, "no tint where erased");
  assert.ok(Math.abs(erased[0] - tinted(await imagePixel(ERASE.at))[0]) > 40, "the erased spot differs from a tinted one");

  // Keyboard on the focused canvas: Ctrl+Z undoes the eraser; Delete removes the pair nearest the pointer.
  await page.locator("#host canvas").focus();
  await page.keyboard.press("Control+z");
  await page.evaluate(() => window.nextFrame());
  assert.equal((await state()).mask.strokes.length, 2);
  colourNear(await pixel(ERASE.at), tinted(await imagePixel(ERASE.at)), 24, "tint back after undo");
  await mouse.move(...g.screen([T2[0] + 4, T2[1] + 3]));
  await page.keyboard.press("Delete");
  assert.equal((await state()).pairs.length, 1);
  near((await state()).pairs[0].handle, H1, 1, "Delete kept pair 1");
  await page.keyboard.press("Control+z");
  const text = await page.evaluate(() => window.editor.value());
  assert.equal(JSON.parse(text).pairs.length, 2);

  // The screenshot for the docs: two arrows and the painted regions.
  await mouse.move(740, 1020);
  await page.evaluate(() => window.nextFrame());
  await page.locator("#frame").screenshot({ path: SCREENSHOT, scale: "css" });

  // Reload the string into a fresh editor: same state, same drawing.
  const spare = await page.evaluate(async (saved) => {
    const fresh = (window.fresh = window.mount(document.getElementById("spare")));
    await fresh.setImage(window.pictureUrl);
    fresh.load(saved);
    await window.nextFrame();
    return { value: fresh.value(), layout: window.layout(fresh) };
  }, text);
  assert.equal(spare.value, text);
  const fg = geometry(spare.layout);
  const freshArrow = await page.evaluate(([q]) => window.canvasPixelAt(window.fresh, q), [(() => {
    const [hx, hy] = fg.canvas(H1);
    const [tx, ty] = fg.canvas(T1);
    const l = Math.hypot(tx - hx, ty - hy);
    return [tx - ((tx - hx) / l) * 12, ty - ((ty - hy) / l) * 12];
  })()]);
  colourNear(freshArrow, PAIR_1_COLOUR, 40, "arrow 1 in the reloaded editor");

  // destroy() removes every listener it added and the DOM it made.
  const listeners = await page.evaluate(() => {
    const f = window.fresh;
    const targets = [f.canvas, ...f.root.querySelectorAll("button, input")];
    const before = window.listenersOn(targets);
    f.destroy();
    return { before, after: window.listenersOn(targets), attached: document.body.contains(f.root) };
  });
  assert.ok(listeners.before >= 10, `listeners before destroy: ${listeners.before}`);
  assert.deepEqual([listeners.after, listeners.attached], [0, false]);

  // An unreadable state is shown, kept verbatim and not editable until discarded.
  const broken = await page.evaluate(async () => {
    const b = (window.broken = window.mount(document.getElementById("spare")));
    await b.setImage(window.pictureUrl);
    const changesBefore = window.changes.length;
    b.load('{"pairs": [oops');
    await window.nextFrame();
    const r = b.canvas.getBoundingClientRect();
    for (const type of ["pointerdown", "pointerup"]) {
      b.canvas.dispatchEvent(new PointerEvent(type, { clientX: r.left + 50, clientY: r.top + 50, button: 0, bubbles: true, pointerId: 7 }));
    }
    const during = { value: b.value(), status: b.status.textContent, changes: window.changes.length - changesBefore };
    [...b.root.querySelectorAll("button")].find((x) => x.textContent.startsWith("Discard")).click();
    return { during, after: b.value() };
  });
  assert.equal(broken.during.value, '{"pairs": [oops');
  assert.match(broken.during.status, /Cannot read the saved points: the saved state is not valid JSON/);
  assert.equal(broken.during.changes, 0);
  assert.deepEqual(JSON.parse(broken.after), { version: 1, image_size: SIZE, pairs: [], mask: { strokes: [] } });
  await page.evaluate(() => window.broken.destroy());

  // Under a CSS zoom (ComfyUI scales DOM widgets with the graph), clicks still land in image pixels.
  await page.evaluate(() => (document.getElementById("frame").style.transform = "scale(0.75)"));
  const zoomed = geometry(await page.evaluate(() => window.layout(window.editor)));
  await mouse.click(...zoomed.screen([500, 300]));
  await mouse.click(...zoomed.screen([560, 260]));
  const third = (await state()).pairs[2];
  near(third.handle, [500, 300], 1, "zoomed handle");
  near(third.target, [560, 260], 1, "zoomed target");
  await page.getByRole("button", { name: "Undo" }).click();
  assert.equal(await page.evaluate(() => window.editor.value()), text);

  assert.deepEqual(errors, []);
});

// The warp preview: a 512x512 picture with a red square painted as the region; while the target is
// dragged, the square is drawn at the new place in the very next animation frame, and the place it
// left is striped (what the fill will replace). The seconds per update are reported, not asserted.
test("the warp preview follows a dragged target within one animation frame", { skip, timeout: 120_000 }, async (t) => {
  const { page, errors } = await openPage(t, 1);

  const SIDE = 512;
  const SQUARE = [200, 260]; // x and y from 200 to 260
  const HANDLE = [230, 230];
  const layout = await page.evaluate(async ({ SIDE, SQUARE, HANDLE }) => {
    const picture = document.createElement("canvas");
    picture.width = picture.height = SIDE;
    const c = picture.getContext("2d");
    c.fillStyle = "rgb(40, 90, 160)";
    c.fillRect(0, 0, SIDE, SIDE);
    c.fillStyle = "rgb(230, 30, 30)";
    c.fillRect(SQUARE[0], SQUARE[0], SQUARE[1] - SQUARE[0], SQUARE[1] - SQUARE[0]);
    const editor = (window.warpEditor = window.mount(document.getElementById("spare")));
    await editor.setImage(picture.toDataURL("image/png"));
    editor.load(JSON.stringify({ version: 1, image_size: [SIDE, SIDE], pairs: [{ handle: HANDLE, target: [300, 250] }],
      mask: { strokes: [{ mode: "paint", radius: 44, points: [[230, 230]] }] } }));
    [...editor.root.querySelectorAll("button")].find((b) => b.textContent === "Preview warp").click();
    await window.nextFrame();
    return window.layout(editor);
  }, { SIDE, SQUARE, HANDLE });
  const scale = Math.min(layout.clientWidth / SIDE, layout.clientHeight / SIDE);
  const ox = (layout.clientWidth - SIDE * scale) / 2;
  const oy = (layout.clientHeight - SIDE * scale) / 2;
  const canvasAt = ([x, y]) => [ox + x * scale, oy + y * scale];
  const screenAt = (p) => canvasAt(p).map((v, i) => (i ? layout.top : layout.left) + v);
  const pixel = (p) => page.evaluate((q) => window.canvasPixelAt(window.warpEditor, q), canvasAt(p));
  const red = (rgb) => rgb[0] > 180 && rgb[1] < 80 && rgb[2] < 80;

  assert.ok(red(await pixel([315, 265])), "the square is drawn around the first target");
  // Drag the target from (300, 250) to (380, 330): the square's centre (handle) follows at once.
  await page.mouse.move(...screenAt([300, 250]));
  await page.mouse.down();
  for (const [x, y] of [[320, 270], [350, 300], [380, 330]]) {
    await page.mouse.move(...screenAt([x, y]));
    await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(resolve))); // one frame
    assert.ok(red(await pixel([x + 25, y + 25])), `the square is not at (${x}, ${y}) one frame after the pointer`);
    // The square's upper right corner (the handle's badge sits up-left of it).
    assert.ok(!red(await pixel([SQUARE[1] - 5, SQUARE[0] + 5])), "the square's old place is not marked for the fill");
  }
  await page.mouse.up();
  const target = JSON.parse(await page.evaluate(() => window.warpEditor.value())).pairs[0].target;
  assert.ok(Math.hypot(target[0] - 380, target[1] - 330) < 1, `the saved target is ${target}`);

  // How long one preview update takes on this machine (reported only).
  const ms = await page.evaluate(() => {
    const editor = window.warpEditor;
    const size = [512, 512];
    const layer = editor.maskLayer.sync(editor.model, size);
    const runs = 30;
    const start = performance.now();
    for (let k = 0; k < runs; k++) {
      editor.model.state.pairs[0].target = [300 + k, 300];
      editor.renderWarp(size, layer);
    }
    return (performance.now() - start) / runs;
  });
  t.diagnostic(`warp preview at 512x512, one pair: ${ms.toFixed(2)} ms per update`);
  assert.deepEqual(errors, []);
});
