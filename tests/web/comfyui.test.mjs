// DragKit inside a running ComfyUI with the current frontend (optional): skipped unless COMFYUI_URL
// points at a ComfyUI that has this repository installed as a custom node. tests/test_comfyui_live.py
// starts such a server (with a stand-in SD1.5 checkpoint file, so the SD1.5 workflows validate) and
// runs this file once per renderer; by hand:
//   COMFYUI_URL=http://127.0.0.1:8188 node --test tests/web/comfyui.test.mjs
// DRAGKIT_RENDERERS picks the node renderers ("classic,vue" by default: the canvas one and the Vue
// one, "Nodes 2.0"); DRAGKIT_PYTHON is a python that can import dragkit (for the expected values,
// from scripts/make_workflows.py --expectations); DRAGKIT_SCREENSHOTS a folder for screenshots.
//
// Per renderer: the page loads without errors from the pack; the Point Picker takes clicks, keys,
// right-clicks, undo, zoom and a reload; every shipped workflow loads with each widget holding the
// value the generator meant and converts to an API prompt the server accepts; every embedded-model
// workflow runs from the Run button and moves the example's shape toward its target (with live
// previews on the way); a graph built from the node menu re-runs only the picker, the drag and the
// sampling after a target is dragged with the mouse, and equals a fresh run.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import test from "node:test";
import { fileURLToPath } from "node:url";

const URL_ = process.env.COMFYUI_URL?.replace(/\/$/, "");
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const RENDERERS = (process.env.DRAGKIT_RENDERERS ?? "classic,vue").split(",").map((r) => r.trim()).filter(Boolean);
const SHOTS = process.env.DRAGKIT_SCREENSHOTS;
const VUE_SETTING = "Comfy.VueNodes.Enabled";
const SD15_CHECKPOINT = "v1-5-pruned-emaonly.safetensors"; // what the SD1.5 workflows name
const MIN_FRACTION = 0.25; // of the drag, as tests/test_workflows.py asks of the same workflows in Python
const RUN_TIMEOUT = 600_000;

let chromium = null;
try {
  ({ chromium } = await import("playwright-core"));
} catch {
  chromium = null;
}
const skip = !URL_ ? "COMFYUI_URL is not set (a running ComfyUI with DragKit installed)"
  : !chromium || !existsSync(CHROMIUM) ? "needs playwright-core and Debian's chromium" : false;

const expected = skip ? null : JSON.parse(execFileSync(process.env.DRAGKIT_PYTHON ?? "python3",
  ["scripts/make_workflows.py", "--expectations"], { cwd: ROOT, encoding: "utf8" }));

// ------------------------------------------------------------------------------------- helpers
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const near = (a, b, what, tolerance = 1) => assert.ok(Math.hypot(a[0] - b[0], a[1] - b[1]) <= tolerance, `${what}: ${a} vs ${b}`);

async function getJson(path) {
  const response = await fetch(`${URL_}${path}`);
  assert.equal(response.status, 200, `GET ${path}: ${response.status}`);
  return response.json();
}

/** Poll /history until the prompt has ended; returns its history entry. */
async function finished(promptId, timeout = RUN_TIMEOUT) {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    const entry = (await getJson(`/history/${promptId}`))[promptId];
    const status = entry?.status;
    if (status?.completed || ["success", "error"].includes(status?.status_str)) return entry;
    await sleep(500);
  }
  throw new Error(`prompt ${promptId} did not finish in ${timeout / 1000} s`);
}

// A prompt that runs in an instant, to make the prompt worker take the /free flag. Its nodes appear in
// no tested graph: the flag may also be taken before it runs, and its outputs must not be cache hits later.
const TRIVIAL_PROMPT = {
  1: { class_type: "EmptyImage", inputs: { width: 8, height: 8, batch_size: 1, color: 0 } },
  2: { class_type: "PreviewImage", inputs: { images: ["1", 0] } },
};

/** Empty ComfyUI's execution cache (and unload models): the next run starts from nothing. The prompt
 * worker reads /free's flag only after a prompt ends (or an idle timeout of up to 1000 s), so a trivial
 * prompt follows it; once that one has finished, the cache is empty before any later prompt starts. */
async function freeCache() {
  const response = await fetch(`${URL_}/free`, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ free_memory: true }) });
  assert.equal(response.status, 200);
  const queued = await fetch(`${URL_}/prompt`, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ prompt: TRIVIAL_PROMPT }) });
  const answer = await queued.text();
  assert.equal(queued.status, 200, `the trivial prompt after /free: ${answer}`);
  await finished(JSON.parse(answer).prompt_id);
}

async function idle() {
  for (let i = 0; i < 1200; i++) {
    const queue = await getJson("/queue");
    if (!queue.queue_running.length && !queue.queue_pending.length) return;
    await sleep(500);
  }
  throw new Error("the queue never emptied");
}

/**
 * A page on ComfyUI in one renderer, recording what a user's console would show (errors, warnings,
 * failed requests) and the server's execution messages.
 */
async function openComfy(browser, renderer) {
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  const log = [];
  const socket = { messages: [], previews: 0 };
  page.on("console", (m) => log.push({ level: m.type(), text: m.text(), url: m.location()?.url ?? "" }));
  page.on("pageerror", (e) => log.push({ level: "pageerror", text: e.stack ?? e.message, url: "" }));
  page.on("response", (r) => r.status() >= 400 && log.push({ level: "http", text: `${r.status()} ${r.request().method()} ${r.url()}`, url: r.url() }));
  page.on("websocket", (ws) => ws.on("framereceived", ({ payload }) => {
    if (typeof payload !== "string") socket.previews++; // binary frames: preview images
    else socket.messages.push(JSON.parse(payload));
  }));
  await page.goto(URL_);
  await page.waitForFunction(() => window.comfyAPI?.app?.app?.graph && window.LiteGraph, null, { timeout: 90_000 });
  const setting = (id, value) => page.evaluate(([i, v]) => window.comfyAPI.app.app.extensionManager.setting.set(i, v), [id, value]);
  const vueBefore = await page.evaluate((id) => window.comfyAPI.app.app.extensionManager.setting.get(id), VUE_SETTING);
  await setting(VUE_SETTING, renderer === "vue");
  log.length = 0; // what counts is a page load in the chosen renderer
  await page.reload();
  await page.waitForFunction(() => window.comfyAPI?.app?.app?.graph && window.LiteGraph, null, { timeout: 90_000 });
  assert.equal(await page.evaluate((id) => window.comfyAPI.app.app.extensionManager.setting.get(id), VUE_SETTING), renderer === "vue");
  await page.waitForTimeout(2500); // the startup workflow finishes loading
  await page.keyboard.press("Escape"); // a first-run templates dialog, if any
  return { page, log, socket, vueBefore };
}

/** Console errors, warnings and failed requests that come from DragKit (or that its code could cause). */
function packProblems(log) {
  const ours = (e) => /dragkit/i.test(e.text) || /dragkit/i.test(e.url) || /checkState\(\) is deprecated/.test(e.text);
  return log.filter((e) => ["error", "warning", "pageerror", "http"].includes(e.level) && ours(e))
    .map((e) => `${e.level}: ${e.text}`);
}

async function clearGraph(page) {
  await page.evaluate(() => {
    const { app } = window.comfyAPI.app;
    app.graph.clear();
    app.canvas.ds.scale = 1;
    app.canvas.ds.offset = [0, 0];
    app.canvas.setDirty(true, true);
  });
  await page.waitForTimeout(500);
}

async function loadWorkflow(page, workflow) {
  await page.evaluate((w) => window.comfyAPI.app.app.loadGraphData(w), workflow);
  await page.waitForTimeout(1000);
}

/** Click the Run button; returns the server's answer to the prompt it sent. */
async function clickRun(page) {
  const answer = page.waitForResponse((r) => r.url().endsWith("/prompt") && r.request().method() === "POST", { timeout: 60_000 });
  await page.getByTestId("queue-button").click();
  const response = await answer;
  const body = await response.json();
  assert.equal(response.status(), 200, `the server rejected the prompt: ${JSON.stringify(body).slice(0, 2000)}`);
  assert.deepEqual(body.node_errors ?? {}, {});
  return body.prompt_id;
}

/** Which nodes ran and which came from the cache, from the server's messages for one prompt. */
async function execution(socket, promptId) {
  const done = () => socket.messages.some((m) => ["execution_success", "execution_error"].includes(m.type) && m.data?.prompt_id === promptId);
  for (let i = 0; i < 100 && !done(); i++) await sleep(100); // the socket may trail /history a little
  assert.ok(done(), `no end-of-execution message for ${promptId}`);
  const mine = socket.messages.filter((m) => m.data?.prompt_id === promptId);
  const ran = new Set(mine.filter((m) => m.type === "executing" && m.data.node != null).map((m) => String(m.data.node)));
  const cached = new Set(mine.filter((m) => m.type === "execution_cached").flatMap((m) => m.data.nodes.map(String)));
  return { ran, cached };
}

/** RGBA pixels of an image URL, decoded by the page. */
async function pixels(page, url) {
  return page.evaluate(async (src) => {
    const image = new Image();
    image.src = src;
    await image.decode();
    const canvas = document.createElement("canvas");
    [canvas.width, canvas.height] = [image.naturalWidth, image.naturalHeight];
    const ctx = canvas.getContext("2d");
    ctx.drawImage(image, 0, 0);
    return { width: canvas.width, height: canvas.height, data: Array.from(ctx.getImageData(0, 0, canvas.width, canvas.height).data) };
  }, url);
}

const viewUrl = (image) => `${URL_}/view?${new URLSearchParams({ filename: image.filename, subfolder: image.subfolder, type: image.type })}`;

/** Centroid (x, y) of the pixels within `tolerance` of `colour` (channels in [0, 1]), or null. */
function colourCentroid({ width, data }, colour, tolerance) {
  let [sx, sy, n] = [0, 0, 0];
  for (let i = 0; i < data.length / 4; i++) {
    const far = Math.max(...colour.map((c, k) => Math.abs(data[4 * i + k] / 255 - c)));
    if (far <= tolerance) {
      sx += i % width;
      sy += Math.floor(i / width);
      n++;
    }
  }
  return n ? { x: sx / n, y: sy / n, count: n } : null;
}

async function screenshot(page, name) {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: `${SHOTS}/${name}.png` });
}

// Screen position of image pixel `p` on the picker's canvas (letterboxed, CSS-zoomed by the graph), once
// the editor's layout has settled (its size changes while the node, the picture and the status line load).
async function pickerGeometry(page, size) {
  const read = () => page.evaluate(() => {
    const node = window.comfyAPI.app.app.graph.nodes.find((n) => n.type === "DragKitPointPicker");
    const c = node.widgets.find((w) => w.name === "dragkit_editor").element.querySelector("canvas");
    const b = c.getBoundingClientRect();
    return { left: b.left, top: b.top, width: b.width, clientWidth: c.clientWidth, clientHeight: c.clientHeight };
  });
  let r = await read();
  for (let i = 0; i < 20; i++) {
    await sleep(250);
    const again = await read();
    if (JSON.stringify(again) === JSON.stringify(r)) break;
    r = again;
  }
  const scale = Math.min(r.clientWidth / size[0], r.clientHeight / size[1]);
  const ox = (r.clientWidth - size[0] * scale) / 2;
  const oy = (r.clientHeight - size[1] * scale) / 2;
  const zoom = r.width / r.clientWidth;
  return ([x, y]) => [r.left + (ox + x * scale) * zoom, r.top + (oy + y * scale) * zoom];
}

/** The picker's state as meant: the same pairs and strokes. The editor rewrites the text in its own
 * layout and fills in the size of the picture it shows when the workflow left it open (null). */
function sameEditorState(got, meant) {
  const [a, b] = [JSON.parse(got), JSON.parse(meant)];
  return JSON.stringify([a.pairs, a.mask]) === JSON.stringify([b.pairs, b.mask])
    && (b.image_size === null || JSON.stringify(a.image_size) === JSON.stringify(b.image_size));
}

const PICKER = "window.comfyAPI.app.app.graph.nodes.find((n) => n.type === 'DragKitPointPicker')";
const pickerState = async (page) => JSON.parse(await page.evaluate(`${PICKER}.widgets.find((w) => w.name === 'editor_state').value`));

// ------------------------------------------------------------------------------------- the tests
for (const renderer of RENDERERS) {
  test(`DragKit in ComfyUI, ${renderer} renderer`, { skip, timeout: 3_600_000 }, async (t) => {
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    let restore = async () => {};
    t.after(async () => {
      await restore().catch(() => {}); // the user's renderer setting, as it was
      await browser.close();
    });
    const { page, log, socket, vueBefore } = await openComfy(browser, renderer);
    restore = () => page.evaluate(([id, v]) => window.comfyAPI.app.app.extensionManager.setting.set(id, v), [VUE_SETTING, vueBefore]);
    await idle();

    await t.test("the page loads with no errors from the pack", async () => {
      const files = await getJson("/extensions");
      assert.ok(files.some((f) => f.endsWith("/dragkit_picker.js")), `the widget is not served: ${files.filter((f) => /dragkit/i.test(f))}`);
      assert.deepEqual(packProblems(log), []);
    });

    await t.test("every node's help page is where the node library looks for it", async () => {
      const nodes = Object.values(await getJson("/object_info")).filter((n) => n.name.startsWith("DragKit"));
      assert.ok(nodes.length >= 16, `${nodes.length} DragKit nodes listed`);
      for (const node of nodes) {
        // The frontend's rule: /extensions/<custom node folder>/docs/<node name>.md (after a locale subfolder).
        const folder = node.python_module.split(".")[1];
        const response = await fetch(`${URL_}/extensions/${folder}/docs/${node.name}.md`);
        assert.equal(response.status, 200, `${node.name}: help page ${response.status}`);
        const text = await response.text();
        assert.ok(text.includes(node.description), `${node.name}: the help page lacks the description`);
      }
    });

    await t.test("the Point Picker takes clicks, keys, undo, zoom and a reload", async () => {
      const SIZE = [512, 384];
      const NAME = "dragkit_picker_live_test.png";
      await clearGraph(page);
      await page.evaluate(async ([name, [w, h]]) => {
        const { app } = window.comfyAPI.app;
        const { api } = window.comfyAPI.api;
        const c = document.createElement("canvas");
        [c.width, c.height] = [w, h];
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
        app.canvas.setDirty(true, true);
        window.dispatchEvent(new MouseEvent("mouseup")); // lets the change tracker record the graph
      }, [NAME, SIZE]);
      await page.waitForFunction(`JSON.parse(${PICKER}.widgets.find((w) => w.name === 'editor_state').value).image_size?.[0] === ${SIZE[0]}`, null, { timeout: 20_000 });
      assert.deepEqual((await pickerState(page)).image_size, SIZE, "the Load Image picture is shown before any run");
      assert.equal(await page.evaluate(`${PICKER}.widgets.find((w) => w.name === 'editor_state').hidden`), true);

      // Two pairs by clicking; a stroke with the brush.
      await page.waitForFunction(() => document.querySelector(".dragkit-canvas")?.clientWidth > 0, null, { timeout: 10_000 });
      let at = await pickerGeometry(page, SIZE);
      for (const p of [[150, 150], [250, 100], [360, 260], [400, 200]]) await page.mouse.click(...at(p));
      let s = await pickerState(page);
      assert.equal(s.pairs.length, 2);
      near(s.pairs[0].handle, [150, 150], "handle 1");
      near(s.pairs[1].target, [400, 200], "target 2");
      await page.getByRole("button", { name: "Brush", exact: true }).click();
      await page.mouse.move(...at([120, 150]));
      await page.mouse.down();
      await page.mouse.move(...at([180, 150]), { steps: 5 });
      await page.mouse.up();
      await page.getByRole("button", { name: "Points", exact: true }).click();
      assert.equal((await pickerState(page)).mask.strokes.length, 1);

      // Keys and right-clicks stay in the editor: the node survives Delete, no graph menu opens.
      const count = await page.evaluate(() => window.comfyAPI.app.app.graph.nodes.length);
      await page.locator(".dragkit-canvas").focus();
      await page.mouse.move(...at([402, 202]));
      await page.keyboard.press("Delete");
      assert.equal((await pickerState(page)).pairs.length, 1);
      assert.equal(await page.evaluate(() => window.comfyAPI.app.app.graph.nodes.length), count);
      await page.mouse.click(...at([250, 100]), { button: "right" });
      assert.equal((await pickerState(page)).pairs.length, 0);
      assert.equal(await page.locator(".litecontextmenu").count(), 0);
      // ComfyUI's own Ctrl+Z undoes the editor's last change (the right-click).
      await page.keyboard.press("Control+z");
      await page.waitForFunction(`JSON.parse(${PICKER}.widgets.find((w) => w.name === 'editor_state').value).pairs.length === 1`, null, { timeout: 10_000 });
      // ... and the editor is still there (the Vue renderer rebuilds the node on undo).
      await page.waitForFunction(`${PICKER}.widgets.find((w) => w.name === 'dragkit_editor').element.querySelector('canvas')?.clientWidth > 0`, null, { timeout: 10_000 });
      assert.equal(await page.locator(".dragkit-canvas").count(), 1);

      // Under graph zoom, clicks still land in image pixels.
      await page.evaluate(() => {
        const { canvas } = window.comfyAPI.app.app;
        canvas.ds.scale = 1.5;
        canvas.ds.offset = [-200, -50];
        canvas.setDirty(true, true);
      });
      await page.waitForTimeout(800);
      at = await pickerGeometry(page, SIZE);
      await page.mouse.click(...at([60, 300]));
      await page.mouse.click(...at([100, 330]));
      s = await pickerState(page);
      assert.equal(s.pairs.length, 2);
      near(s.pairs[1].handle, [60, 300], "zoomed handle");
      near(s.pairs[1].target, [100, 330], "zoomed target");

      // A run returns the background through /view (type temp).
      const promptId = await clickRun(page);
      assert.equal((await finished(promptId)).status.status_str, "success");
      await page.waitForFunction(() => performance.getEntriesByType("resource").some((e) => e.name.includes("dragkit_picker") && e.name.includes("type=temp")), null, { timeout: 30_000 });

      // The workflow keeps the state in editor_state only, and a reload restores it.
      const text = JSON.stringify(await pickerState(page));
      const workflow = await page.evaluate(() => window.comfyAPI.app.app.graph.serialize());
      assert.deepEqual(workflow.nodes.find((n) => n.type === "DragKitPointPicker").widgets_values, [text]);
      await loadWorkflow(page, workflow);
      assert.equal(JSON.stringify(await pickerState(page)), text);
      assert.match(await page.locator(".dragkit-status").first().textContent(), /2 pairs, mask painted/);
      await screenshot(page, `${renderer}_picker`);
      assert.deepEqual(packProblems(log), []);
    });

    await t.test("every shipped workflow loads with the values the generator meant and is accepted", async (st) => {
      const checkpoints = (await getJson("/object_info/CheckpointLoaderSimple")).CheckpointLoaderSimple.input.required.ckpt_name[0];
      const images = (await getJson("/object_info/LoadImage")).LoadImage.input.required.image[0];
      if (!images.includes("example.png")) { // what the SD1.5 workflows load; a picture of our own, never over a user's file
        await page.evaluate(async () => {
          const c = document.createElement("canvas");
          [c.width, c.height] = [512, 512];
          c.getContext("2d").fillRect(0, 0, 512, 512);
          const body = new FormData();
          body.append("image", await new Promise((resolve) => c.toBlob(resolve, "image/png")), "example.png");
          await window.comfyAPI.api.api.fetchApi("/upload/image", { method: "POST", body });
        });
      }
      for (const [file, nodes] of Object.entries(expected.workflows)) {
        const workflow = JSON.parse(readFileSync(`${ROOT}workflows/${file}`, "utf8"));
        await loadWorkflow(page, workflow);
        const live = await page.evaluate(() => Object.fromEntries(window.comfyAPI.app.app.graph.nodes.map((n) => [String(n.id),
          { type: n.type, widgets: Object.fromEntries((n.widgets ?? []).map((w) => [w.name, w.value])) }])));
        for (const [id, node] of Object.entries(nodes)) {
          assert.equal(live[id]?.type, node.type, `${file}: node ${id}`);
          for (const [name, value] of Object.entries(node.widgets)) {
            const got = live[id].widgets[name];
            const same = typeof value === "number" ? Math.abs(got - value) <= 1e-9 * Math.max(1, Math.abs(value))
              : name === "editor_state" ? sameEditorState(got, value) : got === value;
            assert.ok(same, `${file}: ${node.type}.${name} holds ${JSON.stringify(got)}, meant ${JSON.stringify(value)}`);
          }
        }
        if (expected.toy_workflows.includes(file)) continue; // queued from the Run button below
        if (!checkpoints.includes(SD15_CHECKPOINT)) {
          st.diagnostic(`${file}: not submitted, the server has no ${SD15_CHECKPOINT} (tests/test_comfyui_live.py gives it one)`);
          continue;
        }
        // The frontend's own conversion, sent as the Run button sends it. It then runs and fails at once on
        // the stand-in checkpoint; what counts here is that validation let it through.
        const answer = await page.evaluate(async () => {
          const { app } = window.comfyAPI.app;
          const { api } = window.comfyAPI.api;
          const { output } = await app.graphToPrompt();
          const response = await api.fetchApi("/prompt", { method: "POST", headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ prompt: output, client_id: api.clientId }) });
          return { status: response.status, body: await response.json() };
        });
        assert.equal(answer.status, 200, `${file}: ${JSON.stringify(answer.body).slice(0, 2000)}`);
        assert.deepEqual(answer.body.node_errors, {}, file);
        await finished(answer.body.prompt_id);
      }
      assert.deepEqual(packProblems(log), []);
    });

    const example = await pixels(page, `${URL_}/extensions/dragkit/examples/${expected.example.name}`);
    const before = colourCentroid(example, expected.example.colour, expected.example.tolerance);

    for (const file of expected.toy_workflows) {
      await t.test(`${file} runs from the Run button and moves the shape toward the target`, async () => {
        const workflow = JSON.parse(readFileSync(`${ROOT}workflows/${file}`, "utf8"));
        await clearGraph(page);
        await loadWorkflow(page, workflow);
        const previews = socket.previews;
        const started = Date.now();
        const promptId = await clickRun(page);
        const entry = await finished(promptId);
        assert.equal(entry.status.status_str, "success", JSON.stringify(entry.status).slice(0, 3000));
        note(`${renderer} ${file}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
        const save = workflow.nodes.find((n) => n.type === "SaveImage");
        const [image] = entry.outputs[String(save.id)].images;
        const after = colourCentroid(await pixels(page, viewUrl(image)), expected.example.colour, expected.example.tolerance);
        assert.ok(after, `${file}: the shape is gone`);
        const [dx, dy] = expected.example.offset;
        const fraction = ((after.x - before.x) * dx + (after.y - before.y) * dy) / (dx * dx + dy * dy);
        assert.ok(fraction > MIN_FRACTION, `${file}: the shape moved ${fraction.toFixed(2)} of the drag`);
        assert.ok(after.count > 0.5 * before.count && after.count < 1.6 * before.count, `${file}: area ${after.count} vs ${before.count}`);
        assert.ok(socket.previews > previews, `${file}: no live preview arrived`);
        await page.waitForTimeout(1000);
        await screenshot(page, `${renderer}_${file.replace(".json", "")}`);
      });
    }

    await t.test("a graph from the node menu re-runs only the picker, the drag and the sampling", async () => {
      await clearGraph(page);
      const canvas = await page.locator("canvas#graph-canvas, canvas.graph-canvas, #graph-canvas").first().boundingBox();
      const spot = [canvas.x + 1100, canvas.y + 800]; // empty: every node is moved away once added
      const layout = {
        "DragKit Point Picker": [120, 60], "DragKit Model Loader": [1700, 0], "DragKit Example Image": [1700, 150],
        "DragKit VAE Encode": [2100, 150], "DragKit LoRA Trainer": [2100, 300], "DragKit DDIM Inverter": [2500, 0],
        "DragKit Drag Optimizer": [2900, 0], "DragKit Sampler": [3300, 0], "DragKit VAE Decode": [3700, 0], "Save Image": [3700, 150],
      };
      const ids = {};
      for (const [title, pos] of Object.entries(layout)) {
        const count = await page.evaluate(() => window.comfyAPI.app.app.graph.nodes.length);
        // A double-click on the empty canvas opens the node search (right after an add, the first one
        // sometimes only ends the previous selection: try again).
        const search = page.getByPlaceholder("Add a node...");
        for (let attempt = 0; attempt < 5 && !(await search.isVisible()); attempt++) {
          await page.mouse.dblclick(...spot);
          await page.waitForTimeout(500);
        }
        await search.pressSequentially(title, { delay: 15 });
        await page.waitForTimeout(1000);
        await page.keyboard.press("Enter");
        await page.waitForFunction((n) => window.comfyAPI.app.app.graph.nodes.length === n + 1, count, { timeout: 10_000 });
        const added = await page.evaluate((p) => {
          const nodes = window.comfyAPI.app.app.graph.nodes;
          const node = nodes[nodes.length - 1];
          node.pos = p;
          window.comfyAPI.app.app.canvas.setDirty(true, true);
          return { id: node.id, title: node.title, type: node.type };
        }, pos);
        assert.equal(added.title, title, `the search added ${added.type}`);
        ids[title] = added.id;
        await page.waitForTimeout(300);
      }
      // The search takes the double-click's second release: end the canvas' press with a plain click, or the
      // next mouse moves would pan the graph.
      await page.waitForTimeout(600);
      await page.mouse.click(...spot);
      await page.evaluate(() => {
        const { canvas } = window.comfyAPI.app.app;
        canvas.ds.scale = 1;
        canvas.ds.offset = [0, 0];
        canvas.setDirty(true, true);
      });
      // A new LoRA Trainer's seed control starts at "fixed", so Run never retrains it.
      assert.equal(await page.evaluate((id) => window.comfyAPI.app.app.graph.getNodeById(id).widgets.find((w) => w.name === "control_after_generate").value, ids["DragKit LoRA Trainer"]), "fixed");
      await page.evaluate(([ids, links]) => {
        const { app } = window.comfyAPI.app;
        const node = (title) => app.graph.getNodeById(ids[title]);
        for (const [from, output, to, input] of links) {
          const source = node(from);
          const target = node(to);
          source.connect(source.findOutputSlot(output), target, target.findInputSlot(input));
        }
        node("DragKit Model Loader").widgets.find((w) => w.name === "model_name").value = "dragkit-toy (embedded)";
        node("DragKit LoRA Trainer").widgets.find((w) => w.name === "steps").value = 20; // quicker than the preset's 80
        app.canvas.setDirty(true, true);
        window.dispatchEvent(new MouseEvent("mouseup"));
      }, [ids, [
        ["DragKit Model Loader", "drag_model", "DragKit VAE Encode", "drag_model"], ["DragKit Example Image", "image", "DragKit VAE Encode", "image"],
        ["DragKit Example Image", "image", "DragKit Point Picker", "image"],
        ["DragKit Model Loader", "drag_model", "DragKit LoRA Trainer", "drag_model"], ["DragKit VAE Encode", "latent", "DragKit LoRA Trainer", "latent"],
        ["DragKit LoRA Trainer", "drag_model", "DragKit DDIM Inverter", "drag_model"], ["DragKit VAE Encode", "latent", "DragKit DDIM Inverter", "latent"],
        ["DragKit LoRA Trainer", "drag_model", "DragKit Drag Optimizer", "drag_model"], ["DragKit DDIM Inverter", "inversion", "DragKit Drag Optimizer", "inversion"],
        ["DragKit Point Picker", "points", "DragKit Drag Optimizer", "points"], ["DragKit Point Picker", "mask", "DragKit Drag Optimizer", "mask"],
        ["DragKit LoRA Trainer", "drag_model", "DragKit Sampler", "drag_model"], ["DragKit Drag Optimizer", "inversion", "DragKit Sampler", "inversion"],
        ["DragKit Model Loader", "drag_model", "DragKit VAE Decode", "drag_model"], ["DragKit Sampler", "latent", "DragKit VAE Decode", "latent"],
        ["DragKit VAE Decode", "image", "Save Image", "images"],
      ]]);

      // The example shows in the picker before any run; click the drag on it.
      const SIZE = [64, 64];
      await page.waitForFunction(`JSON.parse(${PICKER}.widgets.find((w) => w.name === 'editor_state').value).image_size?.[0] === 64`, null, { timeout: 20_000 });
      const at = await pickerGeometry(page, SIZE);
      await screenshot(page, `${renderer}_built_graph_before`);
      const handle = expected.example.handle;
      const target = [handle[0] + expected.example.offset[0], handle[1] + expected.example.offset[1]];
      await page.mouse.click(...at(handle));
      await page.mouse.click(...at(target));
      near((await pickerState(page)).pairs[0].target, target, "clicked target", 0.6);

      const run = async (what) => {
        const started = Date.now();
        const promptId = await clickRun(page);
        const entry = await finished(promptId);
        assert.equal(entry.status.status_str, "success", JSON.stringify(entry.status).slice(0, 3000));
        note(`${renderer} built graph, ${what}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
        const [image] = entry.outputs[String(ids["Save Image"])].images;
        return { ...(await execution(socket, promptId)), image: await pixels(page, viewUrl(image)) };
      };
      const all = Object.values(ids).map(String).sort();
      await freeCache(); // earlier tests ran the loaders with these very inputs
      const first = await run("first run");
      assert.deepEqual([...first.ran].sort(), all, "the first run runs everything");

      // Move the target with a real mouse drag (the editor's layout may have changed with the run's status line).
      const moved = [target[0] + 3, target[1] - 2];
      const now = await pickerGeometry(page, SIZE);
      await screenshot(page, `${renderer}_built_graph_run1`);
      await page.mouse.move(...now(target));
      await page.mouse.down();
      await page.mouse.move(...now(moved), { steps: 8 });
      await page.mouse.up();
      const state = await pickerState(page);
      assert.equal(state.pairs.length, 1, JSON.stringify(state));
      near(state.pairs[0].target, moved, "dragged target", 0.6);

      const second = await run("after moving the target");
      const rerun = ["DragKit Point Picker", "DragKit Drag Optimizer", "DragKit Sampler", "DragKit VAE Decode", "Save Image"].map((k) => String(ids[k])).sort();
      assert.deepEqual([...second.ran].sort(), rerun, "only the picker, the drag, the sampling and what shows them ran again");
      for (const title of ["DragKit Model Loader", "DragKit Example Image", "DragKit VAE Encode", "DragKit LoRA Trainer", "DragKit DDIM Inverter"]) {
        assert.ok(second.cached.has(String(ids[title])), `${title} came from the cache`);
      }

      // A fresh run with the moved point (ComfyUI's caches emptied first) gives the same picture.
      await freeCache();
      const fresh = await run("fresh run");
      assert.deepEqual([...fresh.ran].sort(), all, "the fresh run runs everything");
      assert.equal(fresh.image.data.length, second.image.data.length);
      const differing = fresh.image.data.filter((v, i) => v !== second.image.data[i]).length;
      assert.equal(differing, 0, `${differing} channel values differ from the fresh run`);
      await screenshot(page, `${renderer}_built_graph`);
      assert.deepEqual(packProblems(log), []);
    });
  });
}

function note(text) {
  console.log(`# ${text}`);
}
