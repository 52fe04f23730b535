// Drawing for the Point Picker: pure functions on a 2D canvas context, and the offscreen mask layer.
// Coordinates are canvas CSS pixels unless a function takes a view (model.js makeView).
import { toCanvas } from "./model.js";

// One colour per pair, cycling: the palette of core/overlay.py, so the node's preview IMAGE matches.
export const PAIR_COLOURS = ["#e63946", "#1da1f2", "#2ecc71", "#f1c40f", "#9b59b6", "#e67e22"];
export const HANDLE_COLOUR = "#ff2828";
export const TARGET_COLOUR = "#2878ff";
export const MASK_ALPHA = 0.42;
const MASK_COLOUR = "#36c5f0";
const DOT_RADIUS = 6; // CSS pixels
const MAX_LAYER_SIDE = 2048; // the mask layer is drawn at image resolution up to this size

/** The colour of pair number `index` (0-based). */
export const pairColour = (index) => PAIR_COLOURS[index % PAIR_COLOURS.length];

/** A line of text centred in a `width` x `height` area. */
export function drawMessage(ctx, width, height, text, colour = "#9a9a9a") {
  ctx.fillStyle = colour;
  ctx.font = "13px system-ui, sans-serif";
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillText(text, width / 2, height / 2, width - 16);
  ctx.textAlign = "start";
  ctx.textBaseline = "alphabetic";
}

/** A point: a filled disc with a white rim. */
export function drawDot(ctx, [x, y], colour) {
  ctx.beginPath();
  ctx.arc(x, y, DOT_RADIUS, 0, Math.PI * 2);
  ctx.fillStyle = colour;
  ctx.fill();
  ctx.lineWidth = 2;
  ctx.strokeStyle = "#fff";
  ctx.stroke();
}

/** An arrow from handle to target that stops at the target's dot, outlined so it shows on any image. */
export function drawArrow(ctx, [hx, hy], [tx, ty], colour, dashed = false) {
  const length = Math.hypot(tx - hx, ty - hy);
  if (length < 1) return;
  const [ux, uy] = [(tx - hx) / length, (ty - hy) / length];
  const tip = [tx - ux * DOT_RADIUS, ty - uy * DOT_RADIUS];
  const head = Math.min(14, length * 0.6);
  const base = [tip[0] - ux * head, tip[1] - uy * head];
  ctx.save();
  ctx.lineCap = "round";
  ctx.setLineDash(dashed ? [6, 5] : []);
  for (const [style, width] of [["rgba(0, 0, 0, 0.55)", 6], [colour, 3]]) {
    ctx.strokeStyle = style;
    ctx.lineWidth = width;
    ctx.beginPath();
    ctx.moveTo(hx, hy);
    ctx.lineTo(base[0], base[1]);
    ctx.stroke();
  }
  ctx.setLineDash([]);
  ctx.beginPath();
  ctx.moveTo(tip[0], tip[1]);
  for (const side of [-1, 1]) ctx.lineTo(base[0] - side * uy * head * 0.45, base[1] + side * ux * head * 0.45);
  ctx.closePath();
  ctx.lineJoin = "round";
  ctx.lineWidth = 1.5;
  ctx.strokeStyle = "rgba(0, 0, 0, 0.55)";
  ctx.fillStyle = colour;
  ctx.fill();
  ctx.stroke();
  ctx.restore();
}

/** The pair's number in a small disc beside the handle, on the side away from the arrow. */
export function drawBadge(ctx, [hx, hy], [tx, ty], label, colour) {
  const length = Math.hypot(tx - hx, ty - hy) || 1;
  const [bx, by] = [hx - ((tx - hx) / length) * 15, hy - ((ty - hy) / length) * 15];
  ctx.beginPath();
  ctx.arc(bx, by, 8, 0, Math.PI * 2);
  ctx.fillStyle = colour;
  ctx.fill();
  ctx.lineWidth = 1.5;
  ctx.strokeStyle = "rgba(0, 0, 0, 0.6)";
  ctx.stroke();
  ctx.fillStyle = "#fff";
  ctx.font = "bold 11px system-ui, sans-serif";
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillText(label, bx, by + 0.5);
  ctx.textAlign = "start";
  ctx.textBaseline = "alphabetic";
}

/** Pair number `index` (0-based) of the state, in image pixels, drawn through `view`. */
export function drawPair(ctx, view, pair, index) {
  const colour = pairColour(index);
  const handle = toCanvas(view, pair.handle);
  const target = toCanvas(view, pair.target);
  drawArrow(ctx, handle, target, colour);
  drawDot(ctx, handle, HANDLE_COLOUR);
  drawDot(ctx, target, TARGET_COLOUR);
  drawBadge(ctx, handle, target, String(index + 1), colour);
}

/** The brush outline at canvas point `[x, y]`: solid to paint, dashed to erase. */
export function drawBrush(ctx, [x, y], radius, mode) {
  ctx.beginPath();
  ctx.arc(x, y, Math.max(radius, 1), 0, Math.PI * 2);
  ctx.lineWidth = 1.5;
  ctx.strokeStyle = mode === "paint" ? "rgba(255, 255, 255, 0.9)" : "rgba(255, 120, 120, 0.9)";
  ctx.setLineDash(mode === "erase" ? [4, 3] : []);
  ctx.stroke();
  ctx.setLineDash([]);
}

/**
 * A PickerModel's strokes painted on an offscreen canvas at image resolution (capped), opaque; the
 * caller draws it translucently. Appended strokes and points are drawn incrementally; anything
 * else (undo, clear, a new model, a new size) repaints the layer.
 */
export class MaskLayer {
  constructor(doc) {
    this.doc = doc;
    this.layer = null;
  }

  /** The layer for `model` on an image of `imageSize` [w, h], up to date; null when nothing is painted. */
  sync(model, imageSize) {
    const strokes = model.state.mask.strokes;
    const f = Math.min(1, MAX_LAYER_SIDE / Math.max(...imageSize));
    const lw = Math.max(1, Math.round(imageSize[0] * f));
    const lh = Math.max(1, Math.round(imageSize[1] * f));
    let layer = this.layer;
    if (!layer || layer.canvas.width !== lw || layer.canvas.height !== lh || layer.model !== model ||
        layer.revision !== model.maskRevision || layer.count > strokes.length) {
      const canvas = layer?.canvas ?? this.doc.createElement("canvas");
      canvas.width = lw;
      canvas.height = lh;
      layer = this.layer = { canvas, ctx: canvas.getContext("2d"), model, revision: model.maskRevision, count: 0, points: 0 };
    }
    if (!strokes.length) return null;
    const { ctx } = layer;
    const sx = lw / imageSize[0];
    const sy = lh / imageSize[1];
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.strokeStyle = ctx.fillStyle = MASK_COLOUR;
    const from = Math.max(layer.count - 1, 0);
    for (let i = from; i < strokes.length; i++) {
      const { mode, radius, points } = strokes[i];
      const start = i === layer.count - 1 ? Math.max(layer.points - 1, 0) : 0;
      if (i === layer.count - 1 && points.length === layer.points) continue;
      ctx.globalCompositeOperation = mode === "erase" ? "destination-out" : "source-over";
      ctx.lineWidth = radius * (sx + sy);
      ctx.beginPath();
      if (points.length === 1) {
        ctx.arc(points[0][0] * sx, points[0][1] * sy, radius * (sx + sy) / 2, 0, Math.PI * 2);
        ctx.fill();
      } else {
        points.slice(start).forEach(([x, y], k) => (k ? ctx.lineTo(x * sx, y * sy) : ctx.moveTo(x * sx, y * sy)));
        ctx.stroke();
      }
    }
    ctx.globalCompositeOperation = "source-over";
    layer.count = strokes.length;
    layer.points = strokes.at(-1).points.length;
    return layer.canvas;
  }
}
