// The Point Picker's pure logic under node's own test runner: node --test tests/web/
import assert from "node:assert/strict";
import test from "node:test";

import { PointDocument, emptyState, fit, hitTest, parseState, rescale, serialise, toCanvas, toImage } from "../../web/dragkit/model.js";

test("letterboxed fit centres the image", () => {
  assert.deepEqual(fit([200, 100], [400, 400]), { scale: 2, offsetX: 0, offsetY: 100 });
  assert.deepEqual(fit([100, 200], [400, 400]), { scale: 2, offsetX: 100, offsetY: 0 });
});

test("screen -> image -> canvas round trip, with CSS zoom", () => {
  const css = [400, 300];
  const image = [640, 480];
  const rect = { left: 10, top: 20, width: 800, height: 600 }; // displayed at 2x
  for (const p of [[0, 0], [320, 240], [639.5, 10.25]]) {
    const [cx, cy] = toCanvas(p, css, image);
    const back = toImage(rect.left + cx * 2, rect.top + cy * 2, rect, css, image);
    assert.ok(Math.abs(back[0] - p[0]) < 1e-9 && Math.abs(back[1] - p[1]) < 1e-9, `${back} != ${p}`);
  }
});

test("clicks make pairs, hit-testing finds the nearest point", () => {
  const doc = new PointDocument(emptyState([100, 100]));
  assert.equal(doc.click([10, 10]), "handle");
  assert.equal(doc.state.pairs.length, 0);
  assert.equal(doc.click([30, 10]), "pair");
  assert.deepEqual(doc.state.pairs, [{ handle: [10, 10], target: [30, 10] }]);
  assert.deepEqual(hitTest(doc.state, [29, 11], 3), { pair: 0, role: "target" });
  assert.equal(hitTest(doc.state, [50, 50], 3), null);
});

test("move, remove and undo", () => {
  const doc = new PointDocument(emptyState([100, 100]));
  doc.click([10, 10]);
  doc.click([30, 10]);
  doc.beginMove();
  doc.movePoint({ pair: 0, role: "target" }, [40.123, 12]);
  assert.deepEqual(doc.state.pairs[0].target, [40.12, 12]);
  doc.removePair(0);
  assert.equal(doc.state.pairs.length, 0);
  doc.undo();
  assert.deepEqual(doc.state.pairs[0].target, [40.12, 12]);
  doc.undo();
  assert.deepEqual(doc.state.pairs[0].target, [30, 10]);
  doc.undo();
  assert.equal(doc.state.pairs.length, 0);
  assert.equal(doc.undo(), false);
});

test("strokes record mode, radius and path", () => {
  const doc = new PointDocument(emptyState([100, 100]));
  doc.beginStroke("paint", 5, [1, 2]);
  doc.extendStroke([3, 4]);
  doc.beginStroke("erase", 2, [2, 3]);
  assert.deepEqual(doc.state.mask.strokes, [
    { mode: "paint", radius: 5, points: [[1, 2], [3, 4]] },
    { mode: "erase", radius: 2, points: [[2, 3]] },
  ]);
  doc.clearMask();
  assert.equal(doc.state.mask.strokes.length, 0);
  doc.undo();
  assert.equal(doc.state.mask.strokes.length, 2);
});

test("serialise / parse round trip and errors that keep the text", () => {
  const doc = new PointDocument(emptyState([64, 48]));
  doc.click([1, 2]);
  doc.click([3, 4]);
  doc.beginStroke("paint", 3, [5, 5]);
  const text = serialise(doc.state);
  assert.deepEqual(parseState(text).state, doc.state);
  assert.match(parseState("{oops").error, /not valid JSON/);
  assert.match(parseState('{"pairs": [{"handle": [1]}]}').error, /pair 1/);
  assert.match(parseState('{"version": 9}').error, /version/);
  assert.deepEqual(parseState("").state, emptyState());
});

test("a new image size rescales points and strokes", () => {
  const doc = new PointDocument(emptyState([100, 50]));
  doc.click([10, 10]);
  doc.click([50, 20]);
  doc.beginStroke("paint", 4, [20, 20]);
  assert.equal(doc.setImageSize([200, 100]), true);
  assert.deepEqual(doc.state.pairs[0], { handle: [20, 20], target: [100, 40] });
  assert.deepEqual(doc.state.mask.strokes[0], { mode: "paint", radius: 8, points: [[40, 40]] });
  assert.equal(doc.setImageSize([200, 100]), false);
  assert.deepEqual(rescale(emptyState(null), [5, 5]).image_size, [5, 5]);
});
