// The Point Picker's pure logic (web/dragkit/model.js) under node's own test runner:
//   node --test tests/web/
import assert from "node:assert/strict";
import test from "node:test";

import {
  PickerModel,
  clampToImage,
  emptyState,
  hitTest,
  makeView,
  nearestPoint,
  parseState,
  rescaleState,
  serialiseState,
  toCanvas,
  toImage,
  toScreen,
} from "../../web/dragkit/model.js";

const close = (a, b, tol = 1e-9) => assert.ok(Math.abs(a[0] - b[0]) <= tol && Math.abs(a[1] - b[1]) <= tol, `${a} != ${b}`);

function modelWithPairs(size, pairs) {
  const model = new PickerModel(emptyState(size));
  for (const [h, t] of pairs) {
    model.click(h);
    model.click(t);
  }
  return model;
}

test("the letterboxed fit centres the image", () => {
  const wide = makeView([200, 100], 400, 400);
  assert.deepEqual([wide.scale, wide.offsetX, wide.offsetY], [2, 0, 100]);
  const tall = makeView([100, 200], 400, 400);
  assert.deepEqual([tall.scale, tall.offsetX, tall.offsetY], [2, 100, 0]);
  close(toCanvas(wide, [0, 0]), [0, 100]);
  close(toCanvas(wide, [200, 100]), [400, 300]);
});

test("screen <-> image round trips with letterboxing and CSS scale", () => {
  // A 400x300 canvas shown at 1.5x (graph zoom), offset on the page; two image shapes (bars left/right, top/bottom).
  for (const imageSize of [[640, 480], [300, 600], [1000, 100]]) {
    const view = makeView(imageSize, 400, 300, { left: 37.5, top: 12, width: 600, height: 450 });
    for (const p of [[0, 0], [imageSize[0], imageSize[1]], [imageSize[0] / 2, imageSize[1] / 3], [10.25, 7.75]]) {
      close(toImage(view, toScreen(view, p)), p);
    }
    for (const s of [[37.5, 12], [337.5, 237], [600, 400]]) close(toScreen(view, toImage(view, s)), s);
  }
  // Without CSS scale, screen and canvas coordinates differ only by the rect's offset.
  const view = makeView([640, 480], 400, 300);
  close(toImage(view, toCanvas(view, [123.45, 67.89])), [123.45, 67.89]);
});

test("a click at a pixel's centre lands on (i + 0.5, j + 0.5)", () => {
  const view = makeView([4, 2], 400, 200); // 100 CSS px per image pixel, no letterbox
  close(toImage(view, [250, 150]), [2.5, 1.5]);
  close(toImage(view, [200, 100]), [2, 1]);
  assert.deepEqual(clampToImage([-3, 9], [4, 2]), [0, 2]);
});

test("hit-testing finds the nearest point within a radius in screen pixels", () => {
  const model = modelWithPairs([100, 100], [[[10, 10], [30, 10]], [[50, 50], [52, 50]]]);
  const view = makeView([100, 100], 200, 200, { left: 0, top: 0, width: 400, height: 400 }); // 4 screen px per image px
  assert.deepEqual(hitTest(model.state, view, toScreen(view, [31, 11]), 12), { pair: 0, role: "target" });
  assert.equal(hitTest(model.state, view, toScreen(view, [34, 10]), 12), null); // 16 screen px away
  assert.deepEqual(hitTest(model.state, view, toScreen(view, [34, 10]), 20), { pair: 0, role: "target" });
  // Nearest wins when two are in range.
  assert.deepEqual(hitTest(model.state, view, toScreen(view, [51.6, 50]), 40), { pair: 1, role: "target" });
  assert.deepEqual(hitTest(model.state, view, toScreen(view, [50.4, 50]), 40), { pair: 1, role: "handle" });
  model.click([80, 80]);
  assert.deepEqual(hitTest(model.state, view, toScreen(view, [80, 81]), 12, model.pending), { pair: -1, role: "pending" });
  assert.deepEqual(nearestPoint(model.state, [0, 0]), { pair: 0, role: "handle" });
});

test("clicks make pairs; a pending handle is not serialised", () => {
  const model = new PickerModel(emptyState([100, 100]));
  assert.equal(model.click([10.123, 10.987]), "handle");
  assert.deepEqual(model.pending, [10.12, 10.99]);
  assert.equal(JSON.parse(model.serialise()).pairs.length, 0);
  assert.equal(model.click([30, 10]), "pair");
  assert.equal(model.pending, null);
  assert.deepEqual(model.state.pairs, [{ handle: [10.12, 10.99], target: [30, 10] }]);
});

test("move, remove nearest, clear and undo", () => {
  const model = modelWithPairs([100, 100], [[[10, 10], [30, 10]], [[60, 60], [90, 90]]]);
  // A drag is one undo step; a drag that ends where it started is none.
  model.beginGesture();
  model.movePoint({ pair: 0, role: "target" }, [35, 11]);
  model.movePoint({ pair: 0, role: "target" }, [40.129, 12]);
  assert.equal(model.endGesture(), true);
  assert.deepEqual(model.state.pairs[0].target, [40.13, 12]);
  const depth = model.undoStack.length;
  model.beginGesture();
  model.movePoint({ pair: 1, role: "handle" }, [60, 60]);
  assert.equal(model.endGesture(), false);
  assert.equal(model.undoStack.length, depth);
  // Removing a target (or a handle) removes its pair.
  assert.deepEqual(model.removeNearest([88, 91]), { pair: 1, role: "target" });
  assert.equal(model.state.pairs.length, 1);
  assert.equal(model.removeNearest([0, 99], 5), null);
  model.click([70, 70]);
  assert.deepEqual(model.removeNearest([71, 70]), { pair: -1, role: "pending" });
  assert.equal(model.pending, null);
  model.clearPoints();
  assert.equal(model.state.pairs.length, 0);
  // Undo walks back: clear, removal, move, pair 2, pair 1.
  model.undo();
  assert.deepEqual(model.state.pairs[0].target, [40.13, 12]);
  model.undo();
  assert.equal(model.state.pairs.length, 2);
  model.undo();
  assert.deepEqual(model.state.pairs[0].target, [30, 10]);
  model.undo();
  model.undo();
  assert.equal(model.state.pairs.length, 0);
  assert.equal(model.undo(), false);
  // Undo with a pending handle drops the handle first.
  model.click([5, 5]);
  model.click([6, 6]);
  model.click([7, 7]);
  assert.equal(model.undo(), true);
  assert.equal(model.pending, null);
  assert.equal(model.state.pairs.length, 1);
});

test("the undo history has a limited depth", () => {
  const model = new PickerModel(emptyState([100, 100]));
  for (let i = 0; i < 150; i++) model.click([i % 100, 1]), model.click([i % 100, 2]);
  assert.equal(model.undoStack.length, 100);
  while (model.undo());
  assert.equal(model.state.pairs.length, 50);
});

test("strokes record mode, radius and path; a stroke is one undo step", () => {
  const model = new PickerModel(emptyState([100, 100]));
  model.beginGesture();
  model.addStroke("paint", 5, [1, 2]);
  model.extendStroke([3, 4]);
  model.endGesture();
  model.beginGesture();
  model.addStroke("erase", 2.345, [2, 3]);
  model.endGesture();
  assert.deepEqual(model.state.mask.strokes, [
    { mode: "paint", radius: 5, points: [[1, 2], [3, 4]] },
    { mode: "erase", radius: 2.35, points: [[2, 3]] },
  ]);
  assert.throws(() => model.addStroke("smudge", 1, [0, 0]), /paint.*erase/);
  const revision = model.maskRevision;
  model.clearMask();
  assert.equal(model.state.mask.strokes.length, 0);
  assert.ok(model.maskRevision > revision);
  model.undo();
  model.undo();
  assert.deepEqual(model.state.mask.strokes.map((s) => s.mode), ["paint"]);
});

test("serialise / parse round trip", () => {
  const model = modelWithPairs([64, 48], [[[1, 2], [3, 4]], [[10.5, 20.25], [0, 47.99]]]);
  model.beginGesture();
  model.addStroke("paint", 3, [5, 5]);
  model.extendStroke([9, 5]);
  model.endGesture();
  const text = model.serialise();
  const { state, error } = parseState(text);
  assert.equal(error, undefined);
  assert.deepEqual(state, model.state);
  assert.equal(serialiseState(state), text);
  assert.deepEqual(Object.keys(JSON.parse(text)), ["version", "image_size", "pairs", "mask"]);
  // Python's default (json.dumps, spaces and a null size) and an empty widget both read as empty.
  assert.deepEqual(parseState('{"version": 1, "image_size": null, "pairs": [], "mask": {"strokes": []}}').state, emptyState());
  assert.deepEqual(parseState("  ").state, emptyState());
  // Extra decimals are rounded to 2.
  assert.deepEqual(parseState('{"pairs": [{"handle": [1.23456, 2], "target": [3, 4.005]}]}').state.pairs[0].handle, [1.23, 2]);
});

test("parse errors say what is wrong and never return a state", () => {
  const cases = [
    ["{oops", /not valid JSON/],
    ["[1, 2]", /must be a JSON object/],
    ['{"version": 9}', /version 9/],
    ['{"image_size": [512]}', /image_size must be \[width, height\]/],
    ['{"image_size": [0, 5]}', /image_size/],
    ['{"pairs": {}}', /pairs must be a list/],
    ['{"pairs": [{"handle": [1, 2], "target": [3, 4]}, {"handle": [1]}]}', /pair 2: handle must be \[x, y\]/],
    ['{"pairs": [{"handle": [1, 2], "target": ["a", 4]}]}', /pair 1: target/],
    ['{"mask": {"strokes": 3}}', /mask must be/],
    ['{"mask": {"strokes": [{"mode": "blur", "radius": 1, "points": [[0, 0]]}]}}', /mask stroke 1: mode/],
    ['{"mask": {"strokes": [{"mode": "paint", "radius": 0, "points": [[0, 0]]}]}}', /mask stroke 1: radius/],
    ['{"mask": {"strokes": [{"mode": "erase", "radius": 2, "points": []}]}}', /mask stroke 1: points/],
  ];
  for (const [text, message] of cases) {
    const result = parseState(text);
    assert.equal(result.state, undefined, text);
    assert.match(result.error, message, text);
  }
});

test("a new image size scales points, strokes, the pending handle and the undo history", () => {
  const model = modelWithPairs([100, 50], [[[10, 10], [50, 20]]]);
  model.beginGesture();
  model.addStroke("paint", 4, [20, 20]);
  model.endGesture();
  model.click([30, 30]);
  const result = model.setImageSize([200, 100]);
  assert.deepEqual(result, { changed: true, rescaled: true, from: [100, 50] });
  assert.deepEqual(model.state.image_size, [200, 100]);
  assert.deepEqual(model.state.pairs[0], { handle: [20, 20], target: [100, 40] });
  assert.deepEqual(model.state.mask.strokes[0], { mode: "paint", radius: 8, points: [[40, 40]] });
  assert.deepEqual(model.pending, [60, 60]);
  assert.deepEqual(model.setImageSize([200, 100]), { changed: false, rescaled: false, from: [200, 100] });
  // Non-uniform: the radius scales by the mean factor, as core/editor_state.py does.
  assert.equal(rescaleState(model.state, [400, 100]).mask.strokes[0].radius, 12);
  model.undo(); // the pending handle
  model.undo(); // the stroke: the restored state is in the new size too
  assert.deepEqual(model.state.image_size, [200, 100]);
  assert.deepEqual(model.state.pairs[0].target, [100, 40]);
  // The first size seen is adopted, not a rescale.
  assert.deepEqual(new PickerModel().setImageSize([5, 5]), { changed: true, rescaled: false, from: null });
  assert.deepEqual(rescaleState(emptyState(null), [5, 5]).image_size, [5, 5]);
});
