// DragKit Point Picker: the editor's state and geometry, with no DOM and no ComfyUI.
// State is one plain object in IMAGE PIXELS (x right, y down, origin top-left), the same document
// the Python node parses (core/editor_state.py):
//   {version: 1, image_size: [w, h], pairs: [{handle: [x, y], target: [x, y]}],
//    mask: {strokes: [{mode: "paint" | "erase", radius: r, points: [[x, y], ...]}]}}

export const STATE_VERSION = 1;
const UNDO_DEPTH = 50;

export function emptyState(imageSize = null) {
  return { version: STATE_VERSION, image_size: imageSize, pairs: [], mask: { strokes: [] } };
}

const round2 = (v) => Math.round(v * 100) / 100;
const point = (p) => [round2(p[0]), round2(p[1])];

/** Parse the widget string. Returns {state} or {error} (never silently resets the user's work). */
export function parseState(text) {
  if (text == null || String(text).trim() === "") return { state: emptyState() };
  let data;
  try {
    data = JSON.parse(text);
  } catch (e) {
    return { error: `points are not valid JSON (${e.message})` };
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) return { error: "points must be a JSON object" };
  if ((data.version ?? STATE_VERSION) !== STATE_VERSION) return { error: `unknown state version ${data.version}` };
  const pairs = data.pairs ?? [];
  if (!Array.isArray(pairs)) return { error: "pairs must be a list" };
  for (const [i, pair] of pairs.entries()) {
    const ok = (p) => Array.isArray(p) && p.length === 2 && p.every(Number.isFinite);
    if (!pair || !ok(pair.handle) || !ok(pair.target)) return { error: `pair ${i + 1} must be {handle: [x, y], target: [x, y]}` };
  }
  const strokes = data.mask?.strokes ?? [];
  if (!Array.isArray(strokes)) return { error: "mask strokes must be a list" };
  return {
    state: {
      version: STATE_VERSION,
      image_size: Array.isArray(data.image_size) ? data.image_size : null,
      pairs: pairs.map((p) => ({ handle: point(p.handle), target: point(p.target) })),
      mask: { strokes: strokes.map((s) => ({ mode: s.mode, radius: s.radius, points: s.points.map(point) })) },
    },
  };
}

export function serialise(state) {
  return JSON.stringify(state);
}

/** The letterboxed fit of an image of `imageSize` in a view of `viewSize` (both [w, h]). */
export function fit(imageSize, viewSize) {
  const [iw, ih] = imageSize;
  const [vw, vh] = viewSize;
  const scale = Math.min(vw / iw, vh / ih);
  return { scale, offsetX: (vw - iw * scale) / 2, offsetY: (vh - ih * scale) / 2 };
}

/**
 * Screen (client) coordinates -> image pixels. `rect` is the canvas' bounding client rect, `cssSize`
 * its layout size [w, h]: the rect ratio absorbs any CSS zoom the host applies.
 */
export function toImage(clientX, clientY, rect, cssSize, imageSize) {
  const x = ((clientX - rect.left) * cssSize[0]) / rect.width;
  const y = ((clientY - rect.top) * cssSize[1]) / rect.height;
  const f = fit(imageSize, cssSize);
  return [(x - f.offsetX) / f.scale, (y - f.offsetY) / f.scale];
}

/** Image pixels -> canvas CSS pixels (the inverse of toImage without the client rect). */
export function toCanvas(p, cssSize, imageSize) {
  const f = fit(imageSize, cssSize);
  return [p[0] * f.scale + f.offsetX, p[1] * f.scale + f.offsetY];
}

export function clampToImage(p, imageSize) {
  return [Math.min(Math.max(p[0], 0), imageSize[0]), Math.min(Math.max(p[1], 0), imageSize[1])];
}

/** The nearest handle/target within `radius` image pixels: {pair, role} or null. */
export function hitTest(state, p, radius) {
  let best = null;
  let bestDistance = radius;
  state.pairs.forEach((pair, index) => {
    for (const role of ["handle", "target"]) {
      const d = Math.hypot(pair[role][0] - p[0], pair[role][1] - p[1]);
      if (d <= bestDistance) {
        bestDistance = d;
        best = { pair: index, role };
      }
    }
  });
  return best;
}

/** Scale every point and stroke to a new image size (the user is told; nothing is dropped). */
export function rescale(state, newSize) {
  if (!state.image_size) return { ...state, image_size: newSize };
  const [sx, sy] = [newSize[0] / state.image_size[0], newSize[1] / state.image_size[1]];
  const s = (p) => point([p[0] * sx, p[1] * sy]);
  return {
    ...state,
    image_size: newSize,
    pairs: state.pairs.map((p) => ({ handle: s(p.handle), target: s(p.target) })),
    mask: { strokes: state.mask.strokes.map((k) => ({ ...k, radius: round2((k.radius * (sx + sy)) / 2), points: k.points.map(s) })) },
  };
}

/** Editing operations with undo. Every change goes through `apply`, which snapshots first. */
export class PointDocument {
  constructor(state = emptyState()) {
    this.state = state;
    this.pending = null; // a handle waiting for its target (not serialised)
    this.undoStack = [];
  }

  snapshot() {
    this.undoStack.push(JSON.stringify(this.state));
    if (this.undoStack.length > UNDO_DEPTH) this.undoStack.shift();
  }

  apply(change) {
    this.snapshot();
    change(this.state);
  }

  undo() {
    if (this.pending) {
      this.pending = null;
      return true;
    }
    const previous = this.undoStack.pop();
    if (previous === undefined) return false;
    this.state = JSON.parse(previous);
    return true;
  }

  /** A click in points mode: first a handle, then its target. Returns "handle" or "pair". */
  click(p) {
    if (!this.pending) {
      this.pending = point(p);
      return "handle";
    }
    const handle = this.pending;
    this.pending = null;
    this.apply((s) => s.pairs.push({ handle, target: point(p) }));
    return "pair";
  }

  movePoint(hit, p) {
    this.state.pairs[hit.pair][hit.role] = point(p); // called while dragging; beginMove snapshots once
  }

  beginMove() {
    this.snapshot();
  }

  removePair(index) {
    this.apply((s) => s.pairs.splice(index, 1));
  }

  clearPoints() {
    this.pending = null;
    this.apply((s) => (s.pairs = []));
  }

  clearMask() {
    this.apply((s) => (s.mask.strokes = []));
  }

  beginStroke(mode, radius, p) {
    this.apply((s) => s.mask.strokes.push({ mode, radius: round2(radius), points: [point(p)] }));
  }

  extendStroke(p) {
    const strokes = this.state.mask.strokes;
    if (strokes.length) strokes[strokes.length - 1].points.push(point(p));
  }

  setImageSize(size) {
    const before = this.state.image_size;
    if (before && before[0] === size[0] && before[1] === size[1]) return false;
    const rescaled = before && (this.state.pairs.length || this.state.mask.strokes.length);
    this.state = rescale(this.state, size);
    return Boolean(rescaled);
  }
}
