// The README's ComfyUI screenshots, taken from a running ComfyUI with DragKit installed:
//   COMFYUI_URL=http://127.0.0.1:8188 node scripts/comfyui_screenshots.mjs [out folder, default docs/comfyui]
// Needs playwright-core (npm ci) and Debian's chromium. It opens the template browser, runs
// workflows/toy_gooddrag.json in the canvas renderer and again in the Vue renderer ("Nodes 2.0"),
// and restores the renderer setting it found.
import { mkdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const URL_ = process.env.COMFYUI_URL?.replace(/\/$/, "") ?? "http://127.0.0.1:8188";
const ROOT = fileURLToPath(new URL("../", import.meta.url));
const OUT = process.argv[2] ?? `${ROOT}docs/comfyui`;
const VUE_SETTING = "Comfy.VueNodes.Enabled";

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--headless", "--no-sandbox",
  "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"] });
const page = await browser.newPage({ viewport: { width: 1500, height: 860 } });
const ready = () => page.waitForFunction(() => window.comfyAPI?.app?.app?.graph && window.LiteGraph, null, { timeout: 90_000 });
const setting = (id, value) => page.evaluate(([i, v]) => window.comfyAPI.app.app.extensionManager.setting.set(i, v), [id, value]);
mkdirSync(OUT, { recursive: true });

await page.goto(URL_);
await ready();
const vueBefore = await page.evaluate((id) => window.comfyAPI.app.app.extensionManager.setting.get(id), VUE_SETTING);
try {
  for (const renderer of ["classic", "vue"]) {
    await setting(VUE_SETTING, renderer === "vue");
    await page.reload();
    await ready();
    await page.waitForTimeout(2500);
    await page.keyboard.press("Escape");
    if (renderer === "classic") {
      // Where a newcomer finds the workflows: Templates, under the pack's name.
      await page.getByRole("button", { name: "Templates" }).first().click();
      await page.waitForTimeout(1500);
      const dragkit = page.getByText("dragkit", { exact: true }).first();
      if (await dragkit.isVisible()) await dragkit.click();
      await page.waitForTimeout(1500);
      await page.screenshot({ path: `${OUT}/templates.png` });
      await page.keyboard.press("Escape");
      await page.waitForTimeout(500);
    }
    const workflow = JSON.parse(readFileSync(`${ROOT}workflows/toy_gooddrag.json`, "utf8"));
    await page.evaluate((w) => window.comfyAPI.app.app.loadGraphData(w), workflow);
    await page.waitForTimeout(1500);
    const answer = page.waitForResponse((r) => r.url().endsWith("/prompt") && r.request().method() === "POST");
    await page.getByTestId("queue-button").click();
    const { prompt_id: id } = await (await answer).json();
    for (let i = 0; i < 600; i++) {
      const entry = (await (await fetch(`${URL_}/history/${id}`)).json())[id];
      if (entry?.status?.completed || entry?.status?.status_str === "error") break;
      await page.waitForTimeout(500);
    }
    await page.waitForTimeout(2000);
    await page.screenshot({ path: `${OUT}/toy_gooddrag_${renderer}.png` });
  }
} finally {
  await setting(VUE_SETTING, vueBefore);
  await browser.close();
}
console.log(`wrote ${OUT}/templates.png, toy_gooddrag_classic.png, toy_gooddrag_vue.png`);
