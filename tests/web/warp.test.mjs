// The preview warp (web/dragkit/warp.js) against the core warp, on the cases tests/test_region_warp_js.py
// writes from core/region_warp.py: the mapped points, the moved region and its pixels agree.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import test from "node:test";

import { fitBackwardMap, mapPoint, warpRegion } from "../../web/dragkit/warp.js";

const fixture = JSON.parse(readFileSync(new URL("./fixtures/region_warp.json", import.meta.url), "utf8"));
const [W, H] = fixture.size;
const pixels = new Uint8ClampedArray(W * H * 4);
fixture.rgb.forEach((v, k) => { pixels[Math.floor(k / 3) * 4 + (k % 3)] = v; });
for (let k = 0; k < W * H; k++) pixels[k * 4 + 3] = 255;
const region = Uint8Array.from(fixture.region.join(""), (c) => Number(c));

for (const c of fixture.cases) {
  test(`the preview warps like the core: ${c.name}`, () => {
    const map = fitBackwardMap(c.pairs, [W, H]);
    c.probes.forEach((p, k) => {
      const [x, y] = mapPoint(map, p);
      assert.ok(Math.abs(x - c.mapped[k][0]) < 1e-4 && Math.abs(y - c.mapped[k][1]) < 1e-4, `${p} -> ${[x, y]}, core ${c.mapped[k]}`);
    });
    for (const { handle, target } of c.pairs) {
      const [x, y] = mapPoint(map, target);
      assert.ok(Math.hypot(x - handle[0], y - handle[1]) < 1e-6, `${target} -> ${[x, y]}, not ${handle}`);
    }
    const { overlay, moved } = warpRegion(pixels, region, W, H, map);
    const expected = Uint8Array.from(c.moved.join(""), (ch) => Number(ch));
    let differ = 0;
    for (let k = 0; k < W * H; k++) differ += moved[k] !== expected[k];
    assert.ok(differ <= Math.ceil(0.005 * expected.reduce((s, v) => s + v, 0)), `${differ} pixels of the moved region differ`);
    // Pixels inside both moved regions: within one 8-bit level of the core's values.
    let index = 0;
    let worst = 0;
    for (let k = 0; k < W * H; k++) {
      if (!expected[k]) continue;
      if (moved[k]) for (let ch = 0; ch < 3; ch++) worst = Math.max(worst, Math.abs(overlay[k * 4 + ch] - c.moved_rgb[index * 3 + ch]));
      index++;
    }
    assert.ok(worst <= 1, `a moved pixel differs by ${worst} levels`);
  });
}

test("two handles to one target are refused, one pair twice is one pair", () => {
  assert.throws(() => fitBackwardMap([{ handle: [1, 1], target: [5, 5] }, { handle: [9, 9], target: [5, 5] }], [W, H]),
    /pairs 1 and 2 drag two different handles to one target/);
  const twice = fitBackwardMap([{ handle: [1, 1], target: [5, 5] }, { handle: [1, 1], target: [5, 5] }], [W, H]);
  assert.deepEqual(mapPoint(twice, [5, 5]).map((v) => Math.round(v * 1e9) / 1e9), [1, 1]);
});
