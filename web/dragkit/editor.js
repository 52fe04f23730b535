// DragKit Point Picker: one <canvas> editor over a PointDocument. No ComfyUI here.
import { PointDocument, clampToImage, hitTest, parseState, serialise, toCanvas, toImage } from "./model.js";

// One colour per pair, cycling; the same palette as core/overlay.py.
export const PAIR_COLOURS = ["#e63946", "#1da1f2", "#2ecc71", "#f1c40f", "#9b59b6", "#e67e22"];
const HIT_RADIUS_CSS = 10;
let stylesheetInjected = false;

function injectStylesheet() {
  if (stylesheetInjected || typeof document === "undefined") return;
  stylesheetInjected = true;
  const style = document.createElement("style");
  style.textContent = `
.dragkit-editor { display: flex; flex-direction: column; gap: 4px; width: 100%; height: 100%; font: 12px sans-serif; }
.dragkit-toolbar { display: flex; flex-wrap: wrap; gap: 4px; align-items: center; }
.dragkit-toolbar button { padding: 2px 6px; border-radius: 4px; border: 1px solid #555; background: #333; color: #ddd; cursor: pointer; }
.dragkit-toolbar button.dragkit-active { background: #1d6fa5; color: #fff; }
.dragkit-canvas { flex: 1; width: 100%; min-height: 160px; background: #222; border-radius: 4px; touch-action: none; }
.dragkit-status { color: #aaa; min-height: 1.2em; }
.dragkit-status.dragkit-error { color: #ff6b6b; }`;
  document.head.appendChild(style);
}

export class PointEditor {
  /**
   * @param {HTMLElement} container  where the editor is mounted
   * @param {{onChange?: (text: string) => void, onAutoRegion?: (state) => Promise<void>}} options
   */
  constructor(container, options = {}) {
    injectStylesheet();
    this.options = options;
    this.document = new PointDocument();
    this.mode = "points";
    this.brushRadius = 12; // image pixels
    this.image = null;
    this.imageGeneration = 0;
    this.drag = null;
    this.redrawQueued = false;
    this.listeners = [];

    this.root = document.createElement("div");
    this.root.className = "dragkit-editor";
    this.toolbar = document.createElement("div");
    this.toolbar.className = "dragkit-toolbar";
    this.canvas = document.createElement("canvas");
    this.canvas.className = "dragkit-canvas";
    this.status = document.createElement("div");
    this.status.className = "dragkit-status";
    this.root.append(this.toolbar, this.canvas, this.status);
    container.appendChild(this.root);
    this.buildToolbar();

    this.listen(this.canvas, "pointerdown", (e) => this.onPointerDown(e));
    this.listen(this.canvas, "pointermove", (e) => this.onPointerMove(e));
    this.listen(this.canvas, "pointerup", (e) => this.onPointerUp(e));
    this.listen(this.canvas, "contextmenu", (e) => this.onContextMenu(e));
    this.listen(this.canvas, "keydown", (e) => this.onKeyDown(e));
    this.canvas.tabIndex = 0;
    if (typeof ResizeObserver !== "undefined") {
      this.resizeObserver = new ResizeObserver(() => this.requestRedraw());
      this.resizeObserver.observe(this.canvas);
    }
    this.requestRedraw();
  }

  listen(target, type, handler) {
    target.addEventListener(type, handler);
    this.listeners.push([target, type, handler]);
  }

  button(label, title, onClick) {
    const b = document.createElement("button");
    b.textContent = label;
    b.title = title;
    this.listen(b, "click", (e) => {
      e.stopPropagation();
      onClick();
    });
    this.toolbar.appendChild(b);
    return b;
  }

  buildToolbar() {
    this.modeButtons = {
      points: this.button("Points", "Click: handle, then target. Drag a point to move it.", () => this.setMode("points")),
      paint: this.button("Brush", "Paint the region that may change", () => this.setMode("paint")),
      erase: this.button("Eraser", "Erase the painted region", () => this.setMode("erase")),
    };
    const size = document.createElement("input");
    size.type = "range";
    size.min = "2";
    size.max = "128";
    size.value = String(this.brushRadius);
    size.title = "Brush size (image pixels)";
    this.listen(size, "input", () => (this.brushRadius = Number(size.value)));
    this.toolbar.appendChild(size);
    this.button("Undo", "Undo the last change (Ctrl+Z)", () => this.undo());
    this.button("Clear points", "Remove every pair", () => this.change(() => this.document.clearPoints()));
    this.button("Clear mask", "Remove the painted region", () => this.change(() => this.document.clearMask()));
    this.autoButton = this.button("Auto region", "Fill the mask with the region each handle belongs to", () => this.autoRegion());
    this.autoButton.style.display = this.options.onAutoRegion ? "" : "none";
    this.setMode("points");
  }

  setMode(mode) {
    this.mode = mode;
    for (const [name, b] of Object.entries(this.modeButtons)) b.classList.toggle("dragkit-active", name === mode);
  }

  // --------------------------------------------------------------------------- state in/out
  get imageSize() {
    return this.document.state.image_size || (this.image ? [this.image.naturalWidth, this.image.naturalHeight] : [512, 512]);
  }

  /** Load the widget string; a parse error is shown and the raw string is kept untouched. */
  load(text) {
    const { state, error } = parseState(text);
    if (error) {
      this.parseError = error;
      this.showStatus(`Cannot read the saved points: ${error}. Fix or clear them.`, true);
      return false;
    }
    this.parseError = null;
    this.document = new PointDocument(state);
    this.showStatus(this.summary());
    this.requestRedraw();
    return true;
  }

  value() {
    return serialise(this.document.state);
  }

  change(operation) {
    operation();
    this.parseError = null;
    this.options.onChange?.(this.value());
    this.showStatus(this.summary());
    this.requestRedraw();
  }

  summary() {
    const n = this.document.state.pairs.length;
    const strokes = this.document.state.mask.strokes.length;
    const pending = this.document.pending ? " - click the target" : "";
    return `${n} pair${n === 1 ? "" : "s"}, ${strokes} mask stroke${strokes === 1 ? "" : "s"}${pending}`;
  }

  showStatus(text, isError = false) {
    this.status.textContent = text;
    this.status.classList.toggle("dragkit-error", isError);
  }

  undo() {
    this.change(() => this.document.undo());
  }

  /** Show an image (URL); results of older requests are dropped. */
  setImage(url) {
    const generation = ++this.imageGeneration;
    if (!url) return;
    const image = new Image();
    image.crossOrigin = "anonymous";
    image.onload = () => {
      if (generation !== this.imageGeneration) return;
      this.image = image;
      const rescaled = this.document.setImageSize([image.naturalWidth, image.naturalHeight]);
      if (rescaled) this.showStatus("The image size changed: points and mask were scaled to it.");
      this.options.onChange?.(this.value());
      this.requestRedraw();
    };
    image.src = url;
  }

  async autoRegion() {
    try {
      this.showStatus("Finding the region...");
      await this.options.onAutoRegion(this.document.state);
    } catch (error) {
      this.showStatus(`Auto region failed: ${error.message}`, true);
    }
  }

  // ------------------------------------------------------------------------------- pointers
  cssSize() {
    return [this.canvas.clientWidth || 1, this.canvas.clientHeight || 1];
  }

  eventPoint(e) {
    const rect = this.canvas.getBoundingClientRect();
    return clampToImage(toImage(e.clientX, e.clientY, rect, this.cssSize(), this.imageSize), this.imageSize);
  }

  hitRadius() {
    const [w, h] = this.cssSize();
    const scale = Math.min(w / this.imageSize[0], h / this.imageSize[1]);
    return HIT_RADIUS_CSS / scale;
  }

  onPointerDown(e) {
    e.stopPropagation(); // the graph must not pan or select under the editor
    e.preventDefault();
    this.canvas.focus();
    if (e.button === 2) return;
    if (!this.document.state.image_size) this.document.setImageSize(this.imageSize);
    const p = this.eventPoint(e);
    this.canvas.setPointerCapture?.(e.pointerId);
    if (this.mode === "points") {
      const hit = hitTest(this.document.state, p, this.hitRadius());
      if (hit) {
        this.document.beginMove();
        this.drag = { kind: "move", hit };
        return;
      }
      this.change(() => this.document.click(p));
      return;
    }
    this.document.beginStroke(this.mode, this.brushRadius, p);
    this.drag = { kind: "stroke" };
    this.requestRedraw();
  }

  onPointerMove(e) {
    if (!this.drag) return;
    e.stopPropagation();
    const p = this.eventPoint(e);
    if (this.drag.kind === "move") this.document.movePoint(this.drag.hit, p);
    else this.document.extendStroke(p);
    this.requestRedraw();
  }

  onPointerUp(e) {
    if (!this.drag) return;
    e.stopPropagation();
    this.canvas.releasePointerCapture?.(e.pointerId);
    this.drag = null;
    this.change(() => {});
  }

  onContextMenu(e) {
    e.preventDefault();
    e.stopPropagation();
    const hit = hitTest(this.document.state, this.eventPoint(e), this.hitRadius() * 2);
    if (hit) this.change(() => this.document.removePair(hit.pair));
  }

  onKeyDown(e) {
    if ((e.key === "z" || e.key === "Z") && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      e.stopPropagation();
      this.undo();
    } else if (e.key === "Delete" || e.key === "Backspace") {
      e.preventDefault();
      e.stopPropagation();
      const last = this.document.state.pairs.length - 1;
      if (last >= 0) this.change(() => this.document.removePair(last));
    }
  }

  // -------------------------------------------------------------------------------- drawing
  requestRedraw() {
    if (this.redrawQueued) return;
    this.redrawQueued = true;
    const frame = typeof requestAnimationFrame === "function" ? requestAnimationFrame : (f) => setTimeout(f, 16);
    frame(() => {
      this.redrawQueued = false;
      this.draw();
    });
  }

  draw() {
    const [w, h] = this.cssSize();
    const dpr = window.devicePixelRatio || 1;
    if (this.canvas.width !== Math.round(w * dpr) || this.canvas.height !== Math.round(h * dpr)) {
      this.canvas.width = Math.round(w * dpr);
      this.canvas.height = Math.round(h * dpr);
    }
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const size = this.imageSize;
    const [x0, y0] = toCanvas([0, 0], [w, h], size);
    const [x1, y1] = toCanvas(size, [w, h], size);
    if (this.image) ctx.drawImage(this.image, x0, y0, x1 - x0, y1 - y0);
    else {
      ctx.fillStyle = "#333";
      ctx.fillRect(x0, y0, x1 - x0, y1 - y0);
      ctx.fillStyle = "#999";
      ctx.fillText("Connect Load Image (or run once) to see the picture", x0 + 8, y0 + 16);
    }
    this.drawMask(ctx, size, x0, y0, x1, y1);
    this.document.state.pairs.forEach((pair, i) => this.drawPair(ctx, pair, i, [w, h], size));
    if (this.document.pending) this.drawDot(ctx, toCanvas(this.document.pending, [w, h], size), "#ff2828");
  }

  drawMask(ctx, size, x0, y0, x1, y1) {
    const strokes = this.document.state.mask.strokes;
    if (!strokes.length) return;
    // Paint strokes into an offscreen layer (erase = destination-out), then tint it over the image.
    const layer = document.createElement("canvas");
    layer.width = Math.max(1, Math.round(x1 - x0));
    layer.height = Math.max(1, Math.round(y1 - y0));
    const l = layer.getContext("2d");
    const scale = layer.width / size[0];
    for (const stroke of strokes) {
      l.globalCompositeOperation = stroke.mode === "erase" ? "destination-out" : "source-over";
      l.strokeStyle = l.fillStyle = "rgba(255, 255, 255, 1)";
      l.lineWidth = stroke.radius * 2 * scale;
      l.lineCap = l.lineJoin = "round";
      l.beginPath();
      stroke.points.forEach(([x, y], k) => (k ? l.lineTo(x * scale, y * scale) : l.moveTo(x * scale, y * scale)));
      if (stroke.points.length === 1) {
        const [x, y] = stroke.points[0];
        l.arc(x * scale, y * scale, stroke.radius * scale, 0, Math.PI * 2);
        l.fill();
      } else l.stroke();
    }
    l.globalCompositeOperation = "source-in";
    l.fillStyle = "rgba(80, 200, 255, 0.45)";
    l.fillRect(0, 0, layer.width, layer.height);
    ctx.drawImage(layer, x0, y0, x1 - x0, y1 - y0);
  }

  drawDot(ctx, [x, y], colour) {
    ctx.beginPath();
    ctx.arc(x, y, 5, 0, Math.PI * 2);
    ctx.fillStyle = colour;
    ctx.fill();
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = "#fff";
    ctx.stroke();
  }

  drawPair(ctx, pair, index, view, size) {
    const colour = PAIR_COLOURS[index % PAIR_COLOURS.length];
    const [hx, hy] = toCanvas(pair.handle, view, size);
    const [tx, ty] = toCanvas(pair.target, view, size);
    const angle = Math.atan2(ty - hy, tx - hx);
    ctx.strokeStyle = ctx.fillStyle = colour;
    ctx.lineWidth = 3;
    ctx.beginPath();
    ctx.moveTo(hx, hy);
    ctx.lineTo(tx - 8 * Math.cos(angle), ty - 8 * Math.sin(angle));
    ctx.stroke();
    ctx.beginPath();
    ctx.moveTo(tx, ty);
    for (const side of [-1, 1]) ctx.lineTo(tx - 12 * Math.cos(angle + side * 0.45), ty - 12 * Math.sin(angle + side * 0.45));
    ctx.closePath();
    ctx.fill();
    this.drawDot(ctx, [hx, hy], "#ff2828");
    this.drawDot(ctx, [tx, ty], "#2878ff");
    ctx.fillStyle = "#fff";
    ctx.font = "bold 12px sans-serif";
    ctx.fillText(String(index + 1), hx + 7, hy - 7);
  }

  destroy() {
    for (const [target, type, handler] of this.listeners) target.removeEventListener(type, handler);
    this.listeners = [];
    this.resizeObserver?.disconnect();
    this.imageGeneration++;
    this.root.remove();
  }
}
