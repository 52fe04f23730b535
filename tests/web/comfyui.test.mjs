// The Point Picker inside a running ComfyUI (optional): skipped unless COMFYUI_URL points at a
// ComfyUI that has this repository installed as a custom node, e.g.
//   COMFYUI_URL=http://127.0.0.1:8188 node --test tests/web/comfyui.test.mjs
// It uploads a generated picture, builds Load Image -> DragKit Point Picker -> Preview Image, and
// checks in the canvas (litegraph) renderer: the Load Image picture shows before any run, clicks
// land in image pixels (also under graph zoom), keys and right-clicks stay in the editor, the state
// reaches the hidden editor_state widget and survives a reload, a run sends the background back.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import test from "node:test";

const URL_ = process.env.COMFYUI_URL;
const CHROMIUM = "/usr/bin/chromium";
let chromium = null;
try {
  ({ chromium } = await import("playwright-core"));
} catch {
  chromium = null;
}
const skip = !URL_ ? "COMFYUI_URL is not set (a running ComfyUI with DragKit installed)"
  : !chromium || !existsSync(CHROMIUM) ? "needs playwright-core and Debian's chromium" : false;

const SIZE = [512, 384];
const NAME = "dragkit_picker_live_test.png";

function geometry(r) {
  const scale = Math.min(r.clientWidth / SIZE[0], r.clientHeight / SIZE[1]);
  const ox = (r.clientWidth - SIZE[0] * scale) / 2;
  const oy = (r.clientHeight - SIZE[1] * scale) / 2;
  const zoom = r.width / r.clientWidth;
  return ([x, y]) => [r.left + (ox + x * scale) * zoom, r.top + (oy + y * scale) * zoom];
}
const near = (a, b, what) => assert.ok(Math.hypot(a[0] - b[0], a[1] - b[1]) <= 1, `${what}: ${a} vs ${b}`);

test("point picker in ComfyUI", { skip, timeout: 240_000 }, async (t) => {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--headless", "--no-sandbox", "--disable-gpu",
    "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"] });
  t.after(() => browser.close()); // runs last: after() hooks run in reverse order
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.stack ?? e.message));
  const views = [];
  page.on("request", (r) => r.url().includes("/view?") && views.push(r.url()));
  await page.goto(URL_);
  await page.waitForFunction(() => window.comfyAPI?.app?.app?.graph && window.LiteGraph, null, { timeout: 90_000 });
  await page.waitForTimeout(1500);
  await page.keyboard.press("Escape"); // a first-run templates dialog, if any
  // The canvas renderer (the Vue one of older frontends draws no DOM widgets); restored afterwards.
  const VUE = "Comfy.VueNodes.Enabled";
  const setting = (id, value) => page.evaluate(([i, v]) => window.comfyAPI.app.app.extensionManager.setting.set(i, v), [id, value]);
  const vue = await page.evaluate((id) => window.comfyAPI.app.app.extensionManager.setting.get(id), VUE);
  if (vue) {
    await setting(VUE, false);
    t.after(() => setting(VUE, vue));
  }

  // Upload a picture and build the graph (a mouseup lets ComfyUI's change tracker record it).
  await page.evaluate(async ([name, [w, h]]) => {
    const { app } = window.comfyAPI.app;
    const { api } = window.comfyAPI.api;
    const c = document.createElement("canvas");
    c.width = w;
    c.height = h;
    const g = c.getContext("2d");
    // A new background shade each run: ComfyUI re-runs the graph instead of answering from its cache.
    g.fillStyle = `rgb(70, 110, ${100 + Math.floor(Math.random() * 100)})`;
    g.fillRect(0, 0, w, h);
    g.fillStyle = "#f0c83c";
    g.beginPath();
    g.arc(150, 150, 50, 0, 7);
    g.fill();
    const body = new FormData();
    body.append("image", await new Promise((resolve) => c.toBlob(resolve, "image/png")), name);
    body.append("overwrite", "true");
    const answer = await api.fetchApi("/upload/image", { method: "POST", body });
    if (answer.status !== 200) throw new Error(`upload: ${answer.status}`);
    app.graph.clear();
    const add = (type, pos) => {
      const node = window.LiteGraph.createNode(type);
      node.pos = pos;
      app.graph.add(node);
      return node;
    };
    const load = add("LoadImage", [50, 100]);
    const picker = add("DragKitPointPicker", [450, 100]);
    const preview = add("PreviewImage", [950, 100]);
    load.widgets.find((x) => x.name === "image").value = name;
    load.connect(0, picker, 0);
    picker.connect(2, preview, 0);
    app.canvas.ds.scale = 1;
    app.canvas.ds.offset = [0, 0];
    app.canvas.setDirty(true, true);
    window.dispatchEvent(new MouseEvent("mouseup"));
  }, [NAME, SIZE]);

  const picker = () => "window.comfyAPI.app.app.graph.nodes.find((n) => n.type === 'DragKitPointPicker')";
  const state = async () => JSON.parse(await page.evaluate(`${picker()}.widgets.find((w) => w.name === 'editor_state').value`));
  const layout = () => page.evaluate(`(() => { const c = ${picker()}.widgets.find((w) => w.name === 'dragkit_editor').element.querySelector('canvas');
    const r = c.getBoundingClientRect(); return { left: r.left, top: r.top, width: r.width, height: r.height, clientWidth: c.clientWidth, clientHeight: c.clientHeight }; })()`);
  await page.waitForFunction(`JSON.parse(${picker()}.widgets.find((w) => w.name === 'editor_state').value).image_size?.[0] === ${SIZE[0]}`, null, { timeout: 20_000 });
  assert.deepEqual((await state()).image_size, SIZE, "the Load Image picture is shown before any run");
  assert.equal(await page.evaluate(`${picker()}.widgets.find((w) => w.name === 'editor_state').hidden`), true);

  // Two pairs by clicking; a stroke with the brush.
  await page.waitForFunction(() => document.querySelector(".dragkit-canvas")?.clientWidth > 0, null, { timeout: 10_000 });
  let at = geometry(await layout());
  for (const p of [[150, 150], [250, 100], [360, 260], [400, 200]]) await page.mouse.click(...at(p));
  let s = await state();
  assert.equal(s.pairs.length, 2);
  near(s.pairs[0].handle, [150, 150], "handle 1");
  near(s.pairs[1].target, [400, 200], "target 2");
  await page.getByRole("button", { name: "Brush", exact: true }).click();
  await page.mouse.move(...at([120, 150]));
  await page.mouse.down();
  await page.mouse.move(...at([180, 150]), { steps: 5 });
  await page.mouse.up();
  await page.getByRole("button", { name: "Points", exact: true }).click();
  assert.equal((await state()).mask.strokes.length, 1);

  // Keys and right-clicks stay in the editor: the node survives Delete, no graph menu opens.
  const nodes = await page.evaluate(() => window.comfyAPI.app.app.graph.nodes.length);
  await page.locator(".dragkit-canvas").focus();
  await page.mouse.move(...at([402, 202]));
  await page.keyboard.press("Delete");
  assert.equal((await state()).pairs.length, 1);
  assert.equal(await page.evaluate(() => window.comfyAPI.app.app.graph.nodes.length), nodes);
  await page.mouse.click(...at([250, 100]), { button: "right" });
  assert.equal((await state()).pairs.length, 0);
  assert.equal(await page.locator(".litecontextmenu").count(), 0);
  // ComfyUI's own Ctrl+Z undoes the editor's last change (the right-click).
  await page.keyboard.press("Control+z");
  await page.waitForFunction(`JSON.parse(${picker()}.widgets.find((w) => w.name === 'editor_state').value).pairs.length === 1`, null, { timeout: 10_000 });

  // Under graph zoom, clicks still land in image pixels.
  await page.evaluate(() => {
    const { canvas } = window.comfyAPI.app.app;
    canvas.ds.scale = 1.5;
    canvas.ds.offset = [-200, -50];
    canvas.setDirty(true, true);
  });
  await page.waitForTimeout(800);
  at = geometry(await layout());
  await page.mouse.click(...at([60, 300]));
  await page.mouse.click(...at([100, 330]));
  s = await state();
  assert.equal(s.pairs.length, 2);
  near(s.pairs[1].handle, [60, 300], "zoomed handle");
  near(s.pairs[1].target, [100, 330], "zoomed target");

  // A run returns the background through /view (type temp).
  await page.evaluate(() => window.comfyAPI.app.app.queuePrompt(0, 1));
  await page.waitForFunction(() => performance.getEntriesByType("resource").some((e) => e.name.includes("dragkit_picker") && e.name.includes("type=temp")), null, { timeout: 60_000 })
    .catch(() => {});
  assert.ok(views.some((u) => u.includes("type=temp") && u.includes("dragkit_picker")), `no background loaded: ${views.join(" ")}`);

  // The workflow keeps the state in editor_state only, and a reload restores it.
  const text = JSON.stringify(await state());
  const workflow = await page.evaluate(() => window.comfyAPI.app.app.graph.serialize());
  assert.deepEqual(workflow.nodes.find((n) => n.type === "DragKitPointPicker").widgets_values, [text]);
  await page.evaluate((w) => window.comfyAPI.app.app.loadGraphData(w), workflow);
  await page.waitForTimeout(1000);
  assert.equal(JSON.stringify(await state()), text);
  assert.match(await page.locator(".dragkit-status").first().textContent(), /2 pairs, mask painted/);

  // The Auto region button shows exactly when the server has the route.
  const probe = await page.evaluate(async () => (await window.comfyAPI.api.api.fetchApi("/dragkit/region", { method: "POST", body: "{}" })).status);
  const routed = ![404, 405].includes(probe);
  assert.equal(await page.getByRole("button", { name: "Auto region" }).isVisible(), routed);

  assert.deepEqual(errors.filter((e) => /dragkit/i.test(e)), []);
});

test("every shipped workflow opens in ComfyUI with all its nodes known", { skip, timeout: 180_000 }, async (t) => {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--headless", "--no-sandbox", "--disable-gpu",
    "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"] });
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.stack ?? e.message));
  await page.goto(URL_);
  await page.waitForFunction(() => window.comfyAPI?.app?.app?.graph && window.LiteGraph, null, { timeout: 90_000 });
  const folder = new URL("../../workflows/", import.meta.url);
  const files = readdirSync(folder).filter((f) => f.endsWith(".json"));
  assert.ok(files.length >= 5, `workflows found: ${files}`);
  for (const file of files) {
    const workflow = JSON.parse(readFileSync(new URL(file, folder), "utf8"));
    const loaded = await page.evaluate(async (w) => {
      const { app } = window.comfyAPI.app;
      const defs = await (await window.comfyAPI.api.api.fetchApi("/object_info")).json();
      await app.loadGraphData(w);
      return app.graph.nodes.map((n) => ({ type: n.type, known: n.type in defs && !n.has_errors,
        links: (n.inputs ?? []).filter((i) => i.link != null).length }));
    }, workflow);
    assert.equal(loaded.length, workflow.nodes.length, `${file}: node count`);
    assert.deepEqual(loaded.filter((n) => !n.known).map((n) => n.type), [], `${file}: unknown node types`);
    const links = loaded.reduce((sum, n) => sum + n.links, 0);
    assert.equal(links, workflow.links.length, `${file}: every link survives loading`);
  }
  assert.deepEqual(errors.filter((e) => /dragkit/i.test(e)), []);
});
