// DragKit Point Picker: the editor's state, geometry and undo. No DOM, no ComfyUI.
//
// State is one plain object in IMAGE PIXELS (x right, y down, origin at the top-left corner of the
// image; the centre of pixel (i, j) is (i + 0.5, j + 0.5)); the Python node reads the same document
// (core/editor_state.py, core/masks.py):
//
//   {version: 1, image_size: [w, h] | null,
//    pairs: [{handle: [x, y], target: [x, y]}, ...],
//    mask: {strokes: [{mode: "paint" | "erase", radius: r, points: [[x, y], ...]}, ...]}}
//
// Strokes are applied in order: every pixel whose centre lies within `radius` of the polyline is
// set to 1 (paint) or 0 (erase). Coordinates are rounded to 2 decimals. A handle still waiting for
// its target lives only in the editor (`PickerModel.pending`), never in the document.

export const STATE_VERSION = 1;
export const STROKE_MODES = ["paint", "erase"];
const UNDO_DEPTH = 100;

export function emptyState(imageSize = null) {
  return { version: STATE_VERSION, image_size: imageSize ? [...imageSize] : null, pairs: [], mask: { strokes: [] } };
}

export const round2 = (v) => Math.round(v * 100) / 100;
const roundPoint = (p) => [round2(p[0]), round2(p[1])];
const isPoint = (p) => Array.isArray(p) && p.length === 2 && p.every((v) => typeof v === "number" && Number.isFinite(v));
const show = (value) => {
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 60 ? `${text.slice(0, 57)}...` : text;
};

// ------------------------------------------------------------------------------ (de)serialisation

/**
 * Read the widget string. Returns `{state}` or `{error}`; an error never resets anything, so the
 * caller can show it and keep the user's text. An empty string is an empty state.
 */
export function parseState(text) {
  if (text == null || String(text).trim() === "") return { state: emptyState() };
  let data;
  try {
    data = JSON.parse(text);
  } catch (e) {
    return { error: `the saved state is not valid JSON (${e.message})` };
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    return { error: `the saved state must be a JSON object, got ${show(data)}` };
  }
  const version = data.version ?? STATE_VERSION;
  if (version !== STATE_VERSION) {
    return { error: `the saved state has version ${show(version)}; this DragKit reads version ${STATE_VERSION}` };
  }
  const size = data.image_size ?? null;
  const sizeOk = size === null || (Array.isArray(size) && size.length === 2 && size.every((v) => Number.isInteger(v) && v > 0));
  if (!sizeOk) return { error: `image_size must be [width, height] in whole pixels or null, got ${show(size)}` };

  const pairs = data.pairs ?? [];
  if (!Array.isArray(pairs)) return { error: `pairs must be a list, got ${show(pairs)}` };
  for (const [i, pair] of pairs.entries()) {
    for (const role of ["handle", "target"]) {
      if (!isPoint(pair?.[role])) return { error: `pair ${i + 1}: ${role} must be [x, y] numbers, got ${show(pair?.[role])}` };
    }
  }
  const mask = data.mask ?? { strokes: [] };
  const strokes = mask?.strokes ?? [];
  if (typeof mask !== "object" || !Array.isArray(strokes)) return { error: `mask must be {"strokes": [...]}, got ${show(mask)}` };
  for (const [i, stroke] of strokes.entries()) {
    const where = `mask stroke ${i + 1}`;
    if (!STROKE_MODES.includes(stroke?.mode)) return { error: `${where}: mode must be "paint" or "erase", got ${show(stroke?.mode)}` };
    if (!(typeof stroke.radius === "number" && stroke.radius > 0 && Number.isFinite(stroke.radius))) {
      return { error: `${where}: radius must be a number > 0 (image pixels), got ${show(stroke.radius)}` };
    }
    if (!Array.isArray(stroke.points) || stroke.points.length === 0 || !stroke.points.every(isPoint)) {
      return { error: `${where}: points must be a non-empty list of [x, y], got ${show(stroke.points)}` };
    }
  }
  return {
    state: {
      version: STATE_VERSION,
      image_size: size ? [...size] : null,
      pairs: pairs.map((p) => ({ handle: roundPoint(p.handle), target: roundPoint(p.target) })),
      mask: { strokes: strokes.map((s) => ({ mode: s.mode, radius: round2(s.radius), points: s.points.map(roundPoint) })) },
    },
  };
}

/** The widget string: keys in a fixed order, so equal states give equal strings. */
export function serialiseState(state) {
  return JSON.stringify({
    version: STATE_VERSION,
    image_size: state.image_size,
    pairs: state.pairs.map((p) => ({ handle: p.handle, target: p.target })),
    mask: { strokes: state.mask.strokes.map((s) => ({ mode: s.mode, radius: s.radius, points: s.points })) },
  });
}

// ---------------------------------------------------------------------------------------- geometry

/**
 * How an image is shown in a canvas: letterboxed (scaled to fit, centred) in the canvas' layout box
 * of `width` x `height` CSS pixels, the space the editor draws in. `rect` is the canvas'
 * getBoundingClientRect(); its ratio to the layout box absorbs any CSS transform the host applies
 * (ComfyUI scales DOM widgets with the graph zoom). Without a rect the canvas is unscaled at (0, 0).
 */
export function makeView(imageSize, width, height, rect = null) {
  const [iw, ih] = imageSize;
  const scale = Math.min(width / iw, height / ih);
  return {
    imageSize: [iw, ih],
    width,
    height,
    rect: rect ?? { left: 0, top: 0, width, height },
    scale,
    offsetX: (width - iw * scale) / 2,
    offsetY: (height - ih * scale) / 2,
  };
}

/** Screen (event clientX/clientY) -> image pixels. */
export function toImage(view, [clientX, clientY]) {
  const { rect } = view;
  const x = ((clientX - rect.left) * view.width) / rect.width;
  const y = ((clientY - rect.top) * view.height) / rect.height;
  return [(x - view.offsetX) / view.scale, (y - view.offsetY) / view.scale];
}

/** Image pixels -> canvas drawing coordinates (CSS pixels of the canvas' layout box). */
export function toCanvas(view, [x, y]) {
  return [x * view.scale + view.offsetX, y * view.scale + view.offsetY];
}

/** Image pixels -> screen (client) coordinates: the inverse of toImage. */
export function toScreen(view, p) {
  const [cx, cy] = toCanvas(view, p);
  const { rect } = view;
  return [rect.left + (cx * rect.width) / view.width, rect.top + (cy * rect.height) / view.height];
}

/** How many screen pixels one image pixel spans (for hit radii and brush outlines). */
export function screenPixelsPerImagePixel(view) {
  return view.scale * Math.min(view.rect.width / view.width, view.rect.height / view.height);
}

export function clampToImage([x, y], [w, h]) {
  return [Math.min(Math.max(x, 0), w), Math.min(Math.max(y, 0), h)];
}

/** Every point of the pairs (and the pending handle) as {pair, role, point}; pair is -1 for pending. */
function allPoints(state, pending) {
  const points = [];
  state.pairs.forEach((pair, index) => {
    points.push({ pair: index, role: "handle", point: pair.handle });
    points.push({ pair: index, role: "target", point: pair.target });
  });
  if (pending) points.push({ pair: -1, role: "pending", point: pending });
  return points;
}

/**
 * The point nearest to the screen position `client` within `radius` SCREEN pixels, or null.
 * Returns {pair, role} with role "handle" | "target" | "pending" (pair -1).
 */
export function hitTest(state, view, client, radius, pending = null) {
  let best = null;
  let bestDistance = radius;
  for (const { pair, role, point } of allPoints(state, pending)) {
    const [sx, sy] = toScreen(view, point);
    const d = Math.hypot(sx - client[0], sy - client[1]);
    if (d <= bestDistance) {
      bestDistance = d;
      best = { pair, role };
    }
  }
  return best;
}

/** The point nearest to image position `p` (any distance up to `maxDistance` image pixels), or null. */
export function nearestPoint(state, p, maxDistance = Infinity, pending = null) {
  let best = null;
  let bestDistance = maxDistance;
  for (const { pair, role, point } of allPoints(state, pending)) {
    const d = Math.hypot(point[0] - p[0], point[1] - p[1]);
    if (d <= bestDistance) {
      bestDistance = d;
      best = { pair, role };
    }
  }
  return best;
}

/** The state scaled to `newSize` ([w, h]); strokes' radii scale by the mean factor (as in Python). */
export function rescaleState(state, newSize) {
  if (!state.image_size) return { ...state, image_size: [...newSize] };
  const sx = newSize[0] / state.image_size[0];
  const sy = newSize[1] / state.image_size[1];
  const s = (p) => roundPoint([p[0] * sx, p[1] * sy]);
  return {
    version: STATE_VERSION,
    image_size: [...newSize],
    pairs: state.pairs.map((p) => ({ handle: s(p.handle), target: s(p.target) })),
    mask: {
      strokes: state.mask.strokes.map((k) => ({ mode: k.mode, radius: round2((k.radius * (sx + sy)) / 2), points: k.points.map(s) })),
    },
  };
}

// ------------------------------------------------------------------------------------------ model

/**
 * The document plus the editing operations, with undo. A change made of many events (dragging a
 * point, a brush stroke) is one gesture: beginGesture() ... endGesture() records one undo step, and
 * none if nothing changed. `maskRevision` increases whenever strokes are replaced rather than
 * appended to, so a renderer knows when to repaint its mask layer from scratch.
 */
export class PickerModel {
  constructor(state = emptyState()) {
    this.state = state;
    this.pending = null;
    this.undoStack = [];
    this.gesture = null;
    this.maskRevision = 0;
  }

  get imageSize() {
    return this.state.image_size;
  }

  serialise() {
    return serialiseState(this.state);
  }

  // -- undo
  pushUndo(snapshot) {
    this.undoStack.push(snapshot);
    if (this.undoStack.length > UNDO_DEPTH) this.undoStack.shift();
  }

  /** Run `change(state)` as one undo step. */
  apply(change) {
    const before = this.serialise();
    change(this.state);
    if (this.serialise() !== before) this.pushUndo(before);
  }

  beginGesture() {
    this.gesture = this.serialise();
  }

  /** Ends the gesture; returns true if it changed the document. */
  endGesture() {
    if (this.gesture === null) return false;
    const before = this.gesture;
    this.gesture = null;
    if (this.serialise() === before) return false;
    this.pushUndo(before);
    return true;
  }

  canUndo() {
    return Boolean(this.pending) || this.undoStack.length > 0;
  }

  /** Drops the pending handle if there is one, else restores the last snapshot. */
  undo() {
    if (this.pending) {
      this.pending = null;
      return true;
    }
    const previous = this.undoStack.pop();
    if (previous === undefined) return false;
    this.state = parseState(previous).state;
    this.maskRevision++;
    return true;
  }

  // -- points
  /** A click in points mode: the first makes a pending handle, the next its target. */
  click(p) {
    if (!this.pending) {
      this.addHandle(p);
      return "handle";
    }
    this.setTarget(p);
    return "pair";
  }

  addHandle(p) {
    this.pending = roundPoint(p);
  }

  setTarget(p) {
    if (!this.pending) return false;
    const handle = this.pending;
    this.pending = null;
    this.apply((s) => s.pairs.push({ handle, target: roundPoint(p) }));
    return true;
  }

  cancelPending() {
    const had = Boolean(this.pending);
    this.pending = null;
    return had;
  }

  pointAt(hit) {
    return hit.role === "pending" ? this.pending : this.state.pairs[hit.pair][hit.role];
  }

  /** Move the point `hit` ({pair, role}); wrap a drag in beginGesture/endGesture. */
  movePoint(hit, p) {
    if (hit.role === "pending") this.pending = roundPoint(p);
    else this.state.pairs[hit.pair][hit.role] = roundPoint(p);
  }

  removePair(index) {
    if (index < 0 || index >= this.state.pairs.length) return false;
    this.apply((s) => s.pairs.splice(index, 1));
    return true;
  }

  /**
   * Remove the point nearest to image position `p` (within `maxDistance` image pixels): a handle or
   * a target takes its pair with it; the pending handle goes alone. Returns the hit or null.
   */
  removeNearest(p, maxDistance = Infinity) {
    const hit = nearestPoint(this.state, p, maxDistance, this.pending);
    if (!hit) return null;
    if (hit.role === "pending") this.pending = null;
    else this.removePair(hit.pair);
    return hit;
  }

  clearPoints() {
    this.pending = null;
    this.apply((s) => (s.pairs = []));
  }

  // -- mask
  /** Start a stroke (append; call inside a gesture) at image position `p`. */
  addStroke(mode, radius, p) {
    if (!STROKE_MODES.includes(mode)) throw new Error(`stroke mode must be "paint" or "erase", got ${show(mode)}`);
    this.state.mask.strokes.push({ mode, radius: round2(radius), points: [roundPoint(p)] });
  }

  extendStroke(p) {
    const strokes = this.state.mask.strokes;
    if (strokes.length) strokes[strokes.length - 1].points.push(roundPoint(p));
  }

  clearMask() {
    this.apply((s) => (s.mask.strokes = []));
    this.maskRevision++;
  }

  // -- image size
  /**
   * Tell the model the size of the image it is drawn on. The first size is adopted; a different
   * one scales every point, stroke, the pending handle and the undo history proportionally.
   * Returns {changed, rescaled, from} so the editor can say what happened.
   */
  setImageSize(size) {
    const from = this.state.image_size;
    if (from && from[0] === size[0] && from[1] === size[1]) return { changed: false, rescaled: false, from };
    const hasContent = this.state.pairs.length > 0 || this.state.mask.strokes.length > 0 || this.pending;
    if (from && this.pending) this.pending = roundPoint([(this.pending[0] * size[0]) / from[0], (this.pending[1] * size[1]) / from[1]]);
    this.state = rescaleState(this.state, size);
    const rescaleText = (text) => serialiseState(rescaleState(parseState(text).state, size));
    this.undoStack = this.undoStack.map(rescaleText);
    if (this.gesture !== null) this.gesture = rescaleText(this.gesture);
    this.maskRevision++;
    return { changed: true, rescaled: Boolean(from && hasContent), from };
  }
}
