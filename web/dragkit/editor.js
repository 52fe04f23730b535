// DragKit Point Picker: a <canvas> editor over a PickerModel. It knows nothing of ComfyUI: the host
// passes a callback (onChange with the state string) and images (setImage).
import {
  PickerModel,
  clampToImage,
  hitTest,
  makeView,
  parseState,
  toCanvas,
  toImage,
} from "./model.js";
import {
  HANDLE_COLOUR,
  MASK_ALPHA,
  MaskLayer,
  drawArrow,
  drawBrush,
  drawDot,
  drawMessage,
  drawPair,
  pairColour,
} from "./drawing.js";
import { boundingBox, fitBackwardMap, warpRegion } from "./warp.js";

const HIT_RADIUS = 12; // screen pixels to grab a point
const REMOVE_RADIUS = 40; // screen pixels for right-click removal
const DRAG_THRESHOLD = 5; // screen pixels: a press that moves further draws a pair in one drag
const BRUSH_RANGE = [1, 256];
const MODES = { points: "Points", paint: "Brush", erase: "Eraser" };
const PREVIEW_MAX_SIDE = 1024; // the warp preview is computed at the image's size up to this
const UNCOVERED_STRIPES = [[255, 255, 255, 150], [40, 40, 40, 150]]; // what the fill will replace

const STYLESHEET_ID = "dragkit-picker-stylesheet";
const STYLESHEET = `
.dragkit-picker { display: flex; flex-direction: column; gap: 4px; width: 100%; height: 100%; box-sizing: border-box;
  font: 12px/1.3 system-ui, sans-serif; color: var(--input-text, #ddd); user-select: none; }
.dragkit-toolbar { display: flex; flex-wrap: wrap; gap: 3px; align-items: center; }
.dragkit-button { padding: 2px 7px; border-radius: 4px; border: 1px solid var(--border-color, #555);
  background: var(--comfy-input-bg, #2b2b2b); color: inherit; font: inherit; cursor: pointer; }
.dragkit-button:hover:not(:disabled) { filter: brightness(1.25); }
.dragkit-button:disabled { opacity: 0.45; cursor: default; }
.dragkit-button.dragkit-active { background: #1d6fa5; border-color: #3a9ad9; color: #fff; }
.dragkit-separator { width: 1px; align-self: stretch; background: var(--border-color, #555); margin: 0 2px; }
.dragkit-size { display: inline-flex; gap: 4px; align-items: center; }
.dragkit-size input { width: 80px; }
.dragkit-size output { min-width: 3.2em; opacity: 0.8; }
.dragkit-stage { position: relative; flex: 1 1 auto; min-height: 120px; border-radius: 4px; overflow: hidden;
  background: #161616; }
.dragkit-canvas { position: absolute; inset: 0; width: 100%; height: 100%; display: block; touch-action: none;
  outline: none; cursor: crosshair; }
.dragkit-status { min-height: 1.3em; opacity: 0.85; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.dragkit-status.dragkit-error { color: #ff7b7b; opacity: 1; white-space: normal; }
.dragkit-hidden { display: none !important; }`;

function injectStylesheet(doc) {
  if (doc.getElementById(STYLESHEET_ID)) return;
  const style = doc.createElement("style");
  style.id = STYLESHEET_ID;
  style.textContent = STYLESHEET;
  doc.head.appendChild(style);
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(`could not load ${url.startsWith("data:") ? "the image data" : url}`));
    image.src = url;
  });
}

const sizeOf = (source) => [source.naturalWidth || source.width, source.naturalHeight || source.height];

export class PickerEditor {
  /**
   * @param {HTMLElement} container  the editor mounts a root element in it
   * @param {object} options
   * @param {(text: string) => void} [options.onChange]  the new state string after every change
   * @param {boolean} [options.undoShortcut=true]  Ctrl+Z undoes in the editor. A host with its own
   *   undo (ComfyUI's covers the editor's changes, since they live in a widget) passes false and
   *   the key is left to it.
   */
  constructor(container, options = {}) {
    this.options = options;
    this.model = new PickerModel();
    this.mode = "points";
    this.brushRadius = 16; // image pixels
    this.warpPreview = false;
    this.warpCache = { source: null, region: null, canvas: null, key: null };
    this.image = null; // an HTMLImageElement / canvas, once loaded
    this.imageGeneration = 0;
    this.blocked = null; // {raw, error} while the saved state cannot be parsed
    this.gesture = null;
    this.hover = null; // last pointer position over the canvas (client coordinates)
    this.notice = null; // a one-off message shown until the next change
    this.redrawQueued = false;
    this.listeners = [];
    this.lastEmitted = this.model.serialise(); // what the host last got from onChange (or load)
    this.destroyed = false;

    const doc = container.ownerDocument;
    injectStylesheet(doc);
    this.maskLayer = new MaskLayer(doc); // the painted strokes, offscreen
    this.root = doc.createElement("div");
    this.root.className = "dragkit-picker";
    this.toolbar = doc.createElement("div");
    this.toolbar.className = "dragkit-toolbar";
    const stage = doc.createElement("div");
    stage.className = "dragkit-stage";
    this.canvas = doc.createElement("canvas");
    this.canvas.className = "dragkit-canvas";
    this.canvas.tabIndex = 0;
    stage.appendChild(this.canvas);
    this.status = doc.createElement("div");
    this.status.className = "dragkit-status";
    this.root.append(this.toolbar, stage, this.status);
    container.appendChild(this.root);
    this.buildToolbar(doc);

    this.listen(this.canvas, "pointerdown", (e) => this.onPointerDown(e));
    this.listen(this.canvas, "pointermove", (e) => this.onPointerMove(e));
    this.listen(this.canvas, "pointerup", (e) => this.onPointerUp(e));
    this.listen(this.canvas, "pointercancel", (e) => this.onPointerUp(e));
    this.listen(this.canvas, "lostpointercapture", (e) => this.onPointerUp(e));
    this.listen(this.canvas, "pointerleave", () => this.onPointerLeave());
    this.listen(this.canvas, "contextmenu", (e) => {
      e.preventDefault(); // removal happens on pointerdown; no browser or graph menu here
      e.stopPropagation();
    });
    this.listen(this.canvas, "keydown", (e) => this.onKeyDown(e));
    const view = doc.defaultView;
    if (view?.ResizeObserver) {
      this.resizeObserver = new view.ResizeObserver(() => this.requestRedraw());
      this.resizeObserver.observe(stage);
    }
    this.refreshUi();
  }

  listen(target, type, handler, options) {
    target.addEventListener(type, handler, options);
    this.listeners.push([target, type, handler, options]);
  }

  // ------------------------------------------------------------------------------------ toolbar
  button(doc, label, title, onClick) {
    const b = doc.createElement("button");
    b.type = "button";
    b.className = "dragkit-button";
    b.textContent = label;
    b.title = title;
    this.listen(b, "click", (e) => {
      e.stopPropagation();
      onClick();
    });
    this.toolbar.appendChild(b);
    return b;
  }

  separator(doc) {
    const s = doc.createElement("span");
    s.className = "dragkit-separator";
    this.toolbar.appendChild(s);
  }

  buildToolbar(doc) {
    this.modeButtons = {
      points: this.button(doc, MODES.points, "Click a handle, then its target (or drag from handle to target). Drag a dot to move it. (P)", () => this.setMode("points")),
      paint: this.button(doc, MODES.paint, "Paint the region that may change (B)", () => this.setMode("paint")),
      erase: this.button(doc, MODES.erase, "Erase from the region (E)", () => this.setMode("erase")),
    };
    const size = doc.createElement("label");
    size.className = "dragkit-size";
    size.title = "Brush radius in image pixels ([ and ] change it)";
    this.sizeInput = doc.createElement("input");
    this.sizeInput.type = "range";
    this.sizeInput.min = String(BRUSH_RANGE[0]);
    this.sizeInput.max = String(BRUSH_RANGE[1]);
    this.sizeOutput = doc.createElement("output");
    size.append(this.sizeInput, this.sizeOutput);
    this.listen(this.sizeInput, "input", () => this.setBrushRadius(Number(this.sizeInput.value)));
    this.toolbar.appendChild(size);
    this.separator(doc);
    this.undoButton = this.button(doc, "Undo", "Undo the last change (Ctrl+Z)", () => this.undo());
    this.button(doc, "Clear points", "Remove every pair", () => this.clearPoints());
    this.button(doc, "Clear mask", "Remove the painted region", () => this.clearMask());
    this.separator(doc);
    this.warpButton = this.button(doc, "Preview warp", "Show the painted region moved by the pairs, as DragKit Region "
      + "Warp moves it; stripes mark what the fill will replace (W)", () => this.setWarpPreview(!this.warpPreview));
    this.resetButton = this.button(doc, "Discard saved state", "Throw away the unreadable saved state and start empty", () => this.discardBlocked());
    this.setBrushRadius(this.brushRadius);
  }

  setMode(mode) {
    if (!(mode in MODES)) throw new Error(`mode must be one of ${Object.keys(MODES).join(", ")}, got ${mode}`);
    this.mode = mode;
    this.canvas.style.cursor = ""; // the class's crosshair
    this.refreshUi();
    this.requestRedraw();
  }

  /** Show the region warped by the pairs (Region Warp's result before the fill) instead of the image. */
  setWarpPreview(on) {
    this.warpPreview = Boolean(on);
    this.notice = null;
    this.refreshUi();
    this.requestRedraw();
  }

  setBrushRadius(radius) {
    this.brushRadius = Math.min(Math.max(Math.round(radius), BRUSH_RANGE[0]), BRUSH_RANGE[1]);
    this.sizeInput.value = String(this.brushRadius);
    this.sizeOutput.textContent = `${this.brushRadius} px`;
    this.requestRedraw();
  }

  refreshUi() {
    for (const [name, b] of Object.entries(this.modeButtons)) b.classList.toggle("dragkit-active", name === this.mode);
    this.warpButton.classList.toggle("dragkit-active", this.warpPreview);
    this.undoButton.disabled = Boolean(this.blocked) || !this.model.canUndo();
    this.resetButton.classList.toggle("dragkit-hidden", !this.blocked);
    if (this.blocked) {
      this.setStatus(`Cannot read the saved points: ${this.blocked.error}. The text is kept unchanged in editor_state; fix it there, or discard it.`, true);
    } else if (this.notice) {
      this.setStatus(this.notice.text, this.notice.error);
    } else {
      this.setStatus(this.summary());
    }
  }

  summary() {
    if (!this.frameSize()) return "No image yet: connect a Load Image node, or run the graph once.";
    const { pairs, mask } = this.model.state;
    const n = pairs.length;
    const text = `${n} pair${n === 1 ? "" : "s"}, ${mask.strokes.length ? "mask painted" : "no mask"}`;
    if (this.model.pending) return `${text}. Now click the target of pair ${n + 1} (Esc cancels).`;
    if (this.warpPreview && !mask.strokes.length) return `${text}. Paint the region that moves to preview the warp.`;
    if (this.mode !== "points") return `${text}. Drag to ${this.mode === "paint" ? "paint" : "erase"}; radius ${this.brushRadius} px.`;
    return n ? `${text}. Drag a dot to move it; right-click or Delete removes a pair.` : `${text}. Click a handle, then its target.`;
  }

  setStatus(text, isError = false) {
    this.status.textContent = text;
    this.status.title = text;
    this.status.classList.toggle("dragkit-error", isError);
  }

  notify(text, isError = false) {
    this.notice = { text, error: isError };
    this.refreshUi();
  }

  // ---------------------------------------------------------------------------- state in / out
  /**
   * Load a state string. An unreadable one blocks editing and is kept verbatim (value() returns
   * it) until the user discards it; it is never silently replaced.
   */
  load(text) {
    const { state, error } = parseState(text);
    this.gesture = null;
    if (error) {
      this.blocked = { raw: String(text), error };
      this.refreshUi();
      this.requestRedraw();
      return false;
    }
    this.blocked = null;
    this.notice = null;
    this.model = new PickerModel(state);
    this.lastEmitted = this.model.serialise();
    this.adoptImageSize();
    this.refreshUi();
    this.requestRedraw();
    return true;
  }

  /** The state string to store (the raw text while it is unreadable). */
  value() {
    return this.blocked ? this.blocked.raw : this.model.serialise();
  }

  /** Apply an edit, then report the new string (if it differs from the last one) and redraw. */
  change(operation, notice = null) {
    if (this.blocked) return;
    operation();
    this.notice = notice ? { text: notice, error: false } : null;
    this.emit();
    this.refreshUi();
    this.requestRedraw();
  }

  emit() {
    const text = this.value();
    if (text === this.lastEmitted) return;
    this.lastEmitted = text;
    this.options.onChange?.(text);
  }

  undo() {
    this.change(() => this.model.undo());
  }

  clearPoints() {
    this.change(() => this.model.clearPoints());
  }

  clearMask() {
    this.change(() => this.model.clearMask());
  }

  discardBlocked() {
    this.blocked = null;
    this.model = new PickerModel();
    this.adoptImageSize();
    this.emit();
    this.notify("The unreadable state was discarded.");
    this.requestRedraw();
  }

  /** Match the model to the loaded image: adopt its size, or scale everything to a new one. */
  adoptImageSize() {
    if (!this.image || this.blocked) return;
    const size = sizeOf(this.image);
    const { changed, rescaled, from } = this.model.setImageSize(size);
    if (rescaled) this.notice = { text: `The image is now ${size[0]}×${size[1]} (was ${from[0]}×${from[1]}): points and mask were scaled to it.`, error: false };
    if (changed) this.emit();
  }

  /**
   * Show an image: a URL or an already loaded image/canvas; null keeps the current one. Results of
   * older calls that finish late are dropped. Resolves to true when this image is shown.
   */
  async setImage(source) {
    const generation = ++this.imageGeneration;
    if (!source) return false;
    let image;
    try {
      image = typeof source === "string" ? await loadImage(source) : source;
    } catch (error) {
      if (generation === this.imageGeneration && !this.destroyed) this.notify(`The image did not load: ${error.message}.`, true);
      return false;
    }
    if (generation !== this.imageGeneration || this.destroyed) return false;
    this.image = image;
    this.notice = null;
    this.adoptImageSize();
    this.refreshUi();
    this.requestRedraw();
    return true;
  }

  // ------------------------------------------------------------------------------- geometry
  /** The size of the image frame: the model's image size, else the loaded image's, else null. */
  frameSize() {
    return this.model.state.image_size ?? (this.image ? sizeOf(this.image) : null);
  }

  view() {
    const size = this.frameSize();
    const width = this.canvas.clientWidth;
    const height = this.canvas.clientHeight;
    if (!size || !width || !height) return null;
    return makeView(size, width, height, this.canvas.getBoundingClientRect());
  }

  eventPoint(view, e) {
    return clampToImage(toImage(view, [e.clientX, e.clientY]), view.imageSize);
  }

  // ------------------------------------------------------------------------------- pointers
  onPointerDown(e) {
    // The graph must not pan, select or open menus under the editor. No preventDefault: the
    // compatibility mouseup must still reach the host (ComfyUI records undo steps on it).
    e.stopPropagation();
    if (this.destroyed || this.gesture) return;
    this.canvas.focus({ preventScroll: true });
    this.hover = [e.clientX, e.clientY];
    const view = this.view();
    if (this.blocked || !view) {
      this.refreshUi();
      return;
    }
    if (e.button === 2 || (e.button === 0 && e.ctrlKey)) {
      this.removeNear(view, this.hover, REMOVE_RADIUS);
      return;
    }
    if (e.button !== 0) return;
    const p = this.eventPoint(view, e);
    this.canvas.setPointerCapture?.(e.pointerId);
    if (this.mode !== "points") {
      this.model.beginGesture();
      this.model.addStroke(this.mode, this.brushRadius, p);
      this.gesture = { kind: "stroke", pointerId: e.pointerId, last: this.hover };
    } else if (this.model.pending) {
      this.gesture = { kind: "target", pointerId: e.pointerId };
    } else {
      const hit = hitTest(this.model.state, view, this.hover, HIT_RADIUS, this.model.pending);
      if (hit) {
        const at = this.model.pointAt(hit);
        this.model.beginGesture();
        this.gesture = { kind: "move", pointerId: e.pointerId, hit, offset: [at[0] - p[0], at[1] - p[1]] };
      } else {
        this.model.addHandle(p);
        this.gesture = { kind: "new", pointerId: e.pointerId, start: this.hover, dragging: false };
      }
    }
    this.refreshUi();
    this.requestRedraw();
  }

  onPointerMove(e) {
    this.hover = [e.clientX, e.clientY];
    const g = this.gesture;
    if (!g || e.pointerId !== g.pointerId) {
      if (this.mode !== "points" || this.model.pending) this.requestRedraw(); // brush outline, preview line
      return;
    }
    e.stopPropagation();
    const view = this.view();
    if (!view) return;
    if (g.kind === "move") {
      const p = this.eventPoint(view, e);
      this.model.movePoint(g.hit, clampToImage([p[0] + g.offset[0], p[1] + g.offset[1]], view.imageSize));
    } else if (g.kind === "new") {
      g.dragging ||= Math.hypot(this.hover[0] - g.start[0], this.hover[1] - g.start[1]) > DRAG_THRESHOLD;
    } else if (g.kind === "stroke") {
      for (const event of e.getCoalescedEvents?.() ?? [e]) {
        if (Math.hypot(event.clientX - g.last[0], event.clientY - g.last[1]) < 2) continue; // screen pixels
        g.last = [event.clientX, event.clientY];
        this.model.extendStroke(this.eventPoint(view, event));
      }
    }
    this.requestRedraw();
  }

  onPointerUp(e) {
    const g = this.gesture;
    if (!g || e.pointerId !== g.pointerId) return;
    e.stopPropagation();
    this.gesture = null;
    if (this.canvas.hasPointerCapture?.(e.pointerId)) this.canvas.releasePointerCapture(e.pointerId);
    const view = this.view();
    const cancelled = e.type !== "pointerup";
    if (g.kind === "target" && !cancelled && view) {
      this.change(() => this.model.setTarget(this.eventPoint(view, e)));
    } else if (g.kind === "new" && g.dragging && !cancelled && view) {
      this.change(() => this.model.setTarget(this.eventPoint(view, e)));
    } else if (g.kind === "move" || g.kind === "stroke") {
      if (g.kind === "stroke" && view && !cancelled) {
        const p = this.eventPoint(view, e);
        const points = this.model.state.mask.strokes.at(-1).points;
        const last = points.at(-1);
        if (Math.hypot(p[0] - last[0], p[1] - last[1]) > 0.5) this.model.extendStroke(p);
      }
      this.change(() => this.model.endGesture());
    } else {
      this.refreshUi();
      this.requestRedraw();
    }
  }

  onPointerLeave() {
    if (this.gesture) return;
    this.hover = null;
    this.requestRedraw();
  }

  /** Remove the pair of the point nearest to the screen position (or the pending handle). */
  removeNear(view, client, radius) {
    const hit = hitTest(this.model.state, view, client, radius, this.model.pending);
    if (!hit) return false;
    this.change(() => (hit.role === "pending" ? this.model.cancelPending() : this.model.removePair(hit.pair)));
    return true;
  }

  onKeyDown(e) {
    if (this.destroyed) return;
    const key = e.key;
    const view = this.view();
    let handled = true;
    if ((key === "z" || key === "Z") && (e.ctrlKey || e.metaKey) && !e.shiftKey && this.options.undoShortcut !== false) this.undo();
    else if (e.ctrlKey || e.metaKey || e.altKey) handled = false;
    else if (key === "Delete" || key === "Backspace") {
      // The pair nearest to the pointer; without a pointer over the canvas, the last pair.
      if (this.model.pending) this.change(() => this.model.cancelPending());
      else if (view && this.hover) this.removeNear(view, this.hover, Infinity);
      else this.change(() => this.model.removePair(this.model.state.pairs.length - 1));
    } else if (key === "Escape") this.change(() => this.model.cancelPending());
    else if (key === "p" || key === "P") this.setMode("points");
    else if (key === "b" || key === "B") this.setMode("paint");
    else if (key === "e" || key === "E") this.setMode("erase");
    else if (key === "w" || key === "W") this.setWarpPreview(!this.warpPreview);
    else if (key === "[") this.setBrushRadius(this.brushRadius / 1.25);
    else if (key === "]") this.setBrushRadius(this.brushRadius * 1.25 + 1);
    else handled = false;
    if (handled) {
      e.preventDefault();
      e.stopPropagation(); // Delete, Ctrl+Z etc. must not reach the graph
    }
  }

  // -------------------------------------------------------------------------------- drawing
  requestRedraw() {
    if (this.redrawQueued || this.destroyed) return;
    this.redrawQueued = true;
    const win = this.root.ownerDocument.defaultView;
    const frame = win?.requestAnimationFrame ? (f) => win.requestAnimationFrame(f) : (f) => setTimeout(f, 16);
    frame(() => {
      this.redrawQueued = false;
      if (!this.destroyed) this.draw();
    });
  }

  draw() {
    const width = this.canvas.clientWidth;
    const height = this.canvas.clientHeight;
    if (!width || !height) return;
    const rect = this.canvas.getBoundingClientRect();
    // Backing store in device pixels, including any CSS zoom of the host, so it stays sharp.
    const zoom = rect.width / width || 1;
    const ratio = Math.min(Math.max((this.root.ownerDocument.defaultView?.devicePixelRatio || 1) * zoom, 0.5), 4);
    const bw = Math.round(width * ratio);
    const bh = Math.round(height * ratio);
    if (this.canvas.width !== bw || this.canvas.height !== bh) {
      this.canvas.width = bw;
      this.canvas.height = bh;
    }
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(bw / width, 0, 0, bh / height, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const view = this.view();
    if (!view) {
      drawMessage(ctx, width, height, "No image yet: connect a Load Image node, or run the graph once.");
      return;
    }
    const [x0, y0] = toCanvas(view, [0, 0]);
    const [x1, y1] = toCanvas(view, view.imageSize);
    if (this.image) {
      ctx.imageSmoothingQuality = "high";
      ctx.drawImage(this.image, x0, y0, x1 - x0, y1 - y0);
    } else {
      ctx.fillStyle = "#2a2a2a";
      ctx.fillRect(x0, y0, x1 - x0, y1 - y0);
    }
    const layer = this.maskLayer.sync(this.model, view.imageSize);
    const warped = this.warpPreview && layer ? this.renderWarp(view.imageSize, layer) : null;
    if (warped) {
      ctx.drawImage(warped, x0, y0, x1 - x0, y1 - y0);
    } else if (layer) {
      ctx.globalAlpha = MASK_ALPHA;
      ctx.drawImage(layer, x0, y0, x1 - x0, y1 - y0);
      ctx.globalAlpha = 1;
    }
    this.model.state.pairs.forEach((pair, i) => drawPair(ctx, view, pair, i));
    this.drawPending(ctx, view);
    this.drawBrushCursor(ctx, view);
    if (this.blocked) {
      ctx.fillStyle = "rgba(0, 0, 0, 0.55)";
      ctx.fillRect(0, 0, width, height);
      drawMessage(ctx, width, height, "Saved points unreadable: see below.", "#ff7b7b");
    }
  }

  /** The pairs the preview moves by: the complete ones, and the one being drawn up to the pointer. */
  previewPairs(view) {
    const pairs = this.model.state.pairs.map(({ handle, target }) => ({ handle, target }));
    const pending = this.model.pending;
    const g = this.gesture;
    if (pending && this.hover && (!g || g.kind === "target" || (g.kind === "new" && g.dragging))) {
      pairs.push({ handle: pending, target: clampToImage(toImage(view, this.hover), view.imageSize) });
    }
    return pairs;
  }

  /**
   * The picture with the painted region warped by the pairs (web/dragkit/warp.js, the mathematics of
   * core/region_warp.py), on a canvas at the image's size up to PREVIEW_MAX_SIDE; null when there is
   * nothing to warp or the picture's pixels cannot be read.
   */
  renderWarp(imageSize, layer) {
    const view = this.view();
    if (!this.image || !view) return null;
    const pairs = this.previewPairs(view);
    if (!pairs.length) return null;
    const f = Math.min(1, PREVIEW_MAX_SIDE / Math.max(...imageSize));
    const [w, h] = [Math.max(1, Math.round(imageSize[0] * f)), Math.max(1, Math.round(imageSize[1] * f))];
    const cache = this.warpCache;
    const doc = this.root.ownerDocument;
    const readPixels = (drawable) => {
      const canvas = (cache.scratch ??= doc.createElement("canvas"));
      [canvas.width, canvas.height] = [w, h];
      const c = canvas.getContext("2d", { willReadFrequently: true });
      c.drawImage(drawable, 0, 0, w, h);
      return c.getImageData(0, 0, w, h).data;
    };
    try {
      if (cache.source?.image !== this.image || cache.source.w !== w || cache.source.h !== h) {
        cache.source = { image: this.image, w, h, pixels: readPixels(this.image) };
        cache.key = null;
      }
      const strokes = this.model.state.mask.strokes;
      const regionKey = `${w}x${h}:${this.model.maskRevision}:${strokes.length}:${strokes.at(-1)?.points.length}`;
      if (cache.region?.key !== regionKey || cache.region.model !== this.model) {
        const alpha = readPixels(layer);
        const region = new Uint8Array(w * h);
        for (let k = 0; k < w * h; k++) region[k] = alpha[k * 4 + 3] > 127 ? 1 : 0;
        cache.region = { key: regionKey, model: this.model, region, box: boundingBox(region, w, h) };
      }
    } catch (error) {
      this.notice = { text: `The warp preview cannot read the picture's pixels: ${error.message}.`, error: true };
      this.warpPreview = false;
      this.refreshUi();
      return null;
    }
    if (!cache.region.box) return null;
    const key = `${cache.region.key}|${JSON.stringify(pairs)}`;
    if (cache.key === key && cache.canvas) return cache.canvas;
    const scaled = pairs.map(({ handle, target }) => ({ handle: [handle[0] * w / imageSize[0], handle[1] * h / imageSize[1]],
      target: [target[0] * w / imageSize[0], target[1] * h / imageSize[1]] }));
    let map;
    try {
      map = fitBackwardMap(scaled, [w, h], f);
    } catch (error) {
      this.warpProblem = `No preview: ${error.message}.`;
      this.setStatus(this.warpProblem, true);
      return null;
    }
    if (this.warpProblem) {
      this.warpProblem = null;
      this.refreshUi();
    }
    const { overlay } = warpRegion(cache.source.pixels, cache.region.region, w, h, map,
      { uncovered: UNCOVERED_STRIPES, regionBox: cache.region.box });
    const canvas = cache.canvas ?? doc.createElement("canvas");
    [canvas.width, canvas.height] = [w, h];
    const c = canvas.getContext("2d");
    c.drawImage(this.image, 0, 0, w, h);
    const layerCanvas = cache.overlayCanvas ?? doc.createElement("canvas");
    [layerCanvas.width, layerCanvas.height] = [w, h];
    layerCanvas.getContext("2d").putImageData(new ImageData(overlay, w, h), 0, 0);
    c.drawImage(layerCanvas, 0, 0);
    Object.assign(cache, { canvas, overlayCanvas: layerCanvas, key });
    return canvas;
  }

  drawPending(ctx, view) {
    const pending = this.model.pending;
    if (!pending) return;
    const handle = toCanvas(view, pending);
    const g = this.gesture;
    const previewing = this.hover && (!g || g.kind === "target" || (g.kind === "new" && g.dragging));
    if (previewing) {
      const target = toCanvas(view, clampToImage(toImage(view, this.hover), view.imageSize));
      drawArrow(ctx, handle, target, pairColour(this.model.state.pairs.length), true);
    }
    drawDot(ctx, handle, HANDLE_COLOUR);
  }

  drawBrushCursor(ctx, view) {
    if (this.mode === "points" || !this.hover) return;
    drawBrush(ctx, toCanvas(view, toImage(view, this.hover)), this.brushRadius * view.scale, this.mode);
  }

  // ------------------------------------------------------------------------------- teardown
  destroy() {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const [target, type, handler, options] of this.listeners) target.removeEventListener(type, handler, options);
    this.listeners = [];
    this.resizeObserver?.disconnect();
    this.imageGeneration++;
    this.root.remove();
  }
}
