// The region warp of core/region_warp.py in plain JavaScript, for the Point Picker's live preview.
// Same mathematics, step for step: the backward map g (output pixel -> source pixel) with
// g(target_k) = handle_k (a shift for one pair; for several a thin-plate spline centred on the targets,
// fitted on coordinates divided by the longer image side, with a ring of virtual pairs moved by the
// pairs' best similarity), bilinear sampling with a pixel's centre at (j + 0.5, i + 0.5), the moved
// region where the sampled region mask exceeds 0.5 and g stays inside the picture. tests/web/warp.test.mjs holds it to the Python
// warp on fixtures the Python side writes (tests/test_region_warp_js.py).

export const MIN_TARGET_SEPARATION = 0.5; // pixels of the full-size image
export const ANCHORS = 8; // virtual pairs on a ring around the targets
export const ANCHOR_REACH = 2.0; // the ring's radius over the targets' spread from their centre
export const MIN_ANCHOR_SPREAD = 0.25; // share of the longer side
export const COARSE_STEP = 8; // pixels between the points the moved region's extent is estimated on

const kernel = (d2) => (d2 > 0 ? 0.5 * d2 * Math.log(d2) : 0);

/** Solve A x = B (A n x n, B n x m, row arrays) by Gaussian elimination with partial pivoting. */
function solve(A, B) {
  const n = A.length;
  const a = A.map((row, i) => [...row, ...B[i]]);
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(a[r][col]) > Math.abs(a[pivot][col])) pivot = r;
    if (Math.abs(a[pivot][col]) < 1e-14) throw new Error("the pairs do not define a warp");
    [a[col], a[pivot]] = [a[pivot], a[col]];
    for (let r = 0; r < n; r++) {
      if (r === col) continue;
      const f = a[r][col] / a[col][col];
      if (f) for (let c = col; c < a[r].length; c++) a[r][c] -= f * a[col][c];
    }
  }
  return a.map((row, i) => row.slice(n).map((v) => v / a[i][i]));
}

/** The least-squares similarity z -> c z + d (complex numbers as [re, im]) taking `source` to `target`. */
export function similarity(source, target) {
  const n = source.length;
  const mean = (ps) => [ps.reduce((s, p) => s + p[0], 0) / n, ps.reduce((s, p) => s + p[1], 0) / n];
  const [sm, tm] = [mean(source), mean(target)];
  let [re, im, spread] = [0, 0, 0];
  for (let k = 0; k < n; k++) {
    const [sx, sy] = [source[k][0] - sm[0], source[k][1] - sm[1]];
    const [tx, ty] = [target[k][0] - tm[0], target[k][1] - tm[1]];
    re += sx * tx + sy * ty; // conj(s) * t
    im += sx * ty - sy * tx;
    spread += sx * sx + sy * sy;
  }
  const c = spread > 0 ? [re / spread, im / spread] : [1, 0];
  const d = [tm[0] - (c[0] * sm[0] - c[1] * sm[1]), tm[1] - (c[0] * sm[1] + c[1] * sm[0])];
  return { c, d };
}

/**
 * The pairs the warp is fitted on (indices): each target at least MIN_TARGET_SEPARATION full-size
 * pixels (`pixelScale` pixels of these coordinates per full-size pixel) from every earlier kept one.
 * Throws when two pairs take different handles to one target.
 */
export function distinctPairs(pairs, pixelScale = 1) {
  const limit = MIN_TARGET_SEPARATION * pixelScale;
  const kept = [];
  pairs.forEach(({ handle, target }, i) => {
    const same = kept.find((j) => Math.hypot(target[0] - pairs[j].target[0], target[1] - pairs[j].target[1]) < limit);
    if (same === undefined) kept.push(i);
    else if (Math.hypot(handle[0] - pairs[same].handle[0], handle[1] - pairs[same].handle[1]) >= limit) {
      throw new Error(`pairs ${same + 1} and ${i + 1} drag two different handles to one target`);
    }
  });
  return kept;
}

/**
 * The backward map of `pairs` ([{handle: [x, y], target: [x, y]}], image pixels) on an image of
 * `imageSize` [w, h]: {scale, affine: [[a0x, a0y], [ax_x, ax_y], [ay_x, ay_y]], centres, weights}.
 * `pixelScale`: pixels of `imageSize` per pixel of the full-size image (a preview at lower resolution).
 */
export function fitBackwardMap(pairs, imageSize, pixelScale = 1) {
  const scale = Math.max(imageSize[0], imageSize[1]);
  const kept = distinctPairs(pairs, pixelScale);
  const targets = kept.map((i) => [pairs[i].target[0] / scale, pairs[i].target[1] / scale]);
  const handles = kept.map((i) => [pairs[i].handle[0] / scale, pairs[i].handle[1] / scale]);
  if (targets.length === 1) {
    return { scale, affine: [[handles[0][0] - targets[0][0], handles[0][1] - targets[0][1]], [1, 0], [0, 1]], centres: [], weights: [] };
  }
  const { c, d } = similarity(targets, handles);
  const n = targets.length;
  const centre = [targets.reduce((s, p) => s + p[0], 0) / n, targets.reduce((s, p) => s + p[1], 0) / n];
  const spread = Math.max(...targets.map((p) => Math.hypot(p[0] - centre[0], p[1] - centre[1])));
  const radius = ANCHOR_REACH * Math.max(spread, MIN_ANCHOR_SPREAD);
  const centres = [...targets];
  const values = [...handles];
  for (let k = 0; k < ANCHORS; k++) {
    const angle = (k * 2 * Math.PI) / ANCHORS;
    const a = [centre[0] + radius * Math.cos(angle), centre[1] + radius * Math.sin(angle)];
    centres.push(a);
    values.push([c[0] * a[0] - c[1] * a[1] + d[0], c[0] * a[1] + c[1] * a[0] + d[1]]);
  }
  // [K P; P^T 0] [w; a] = [values; 0] with K_ij = U(|c_i - c_j|), P_i = [1, c_i].
  const m = centres.length;
  const A = centres.map((p) => [...centres.map((q) => kernel((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2)), 1, p[0], p[1]]);
  A.push([...centres.map(() => 1), 0, 0, 0]);
  for (let r = 0; r < 2; r++) A.push([...centres.map((p) => p[r]), 0, 0, 0]);
  const B = [...values.map((v) => [...v]), [0, 0], [0, 0], [0, 0]];
  const x = solve(A, B);
  return { scale, affine: x.slice(m), centres, weights: x.slice(0, m) };
}

/** g at image pixel (px, py), written into `out` [x, y] (no allocation: the preview calls it per pixel). */
function mapInto(map, px, py, out) {
  const { scale, affine, centres, weights } = map;
  const [x, y] = [px / scale, py / scale];
  let gx = affine[0][0] + x * affine[1][0] + y * affine[2][0];
  let gy = affine[0][1] + x * affine[1][1] + y * affine[2][1];
  for (let k = 0; k < centres.length; k++) {
    const u = kernel((x - centres[k][0]) ** 2 + (y - centres[k][1]) ** 2);
    gx += weights[k][0] * u;
    gy += weights[k][1] * u;
  }
  out[0] = gx * scale;
  out[1] = gy * scale;
  return out;
}

/** g([x, y]) in image pixels. */
export const mapPoint = (map, [px, py]) => mapInto(map, px, py, [0, 0]);

/** [top, bottom, left, right) of the set pixels of `region` (Uint8Array, w * h), or null. */
export function boundingBox(region, width, height) {
  let [top, bottom, left, right] = [height, 0, width, 0];
  for (let i = 0; i < height; i++) {
    const row = i * width;
    for (let j = 0; j < width; j++) {
      if (!region[row + j]) continue;
      if (i < top) top = i;
      if (i + 1 > bottom) bottom = i + 1;
      if (j < left) left = j;
      if (j + 1 > right) right = j + 1;
    }
  }
  return bottom > top ? [top, bottom, left, right] : null;
}

/** A box holding every output pixel that `map` sends into `box` (core/region_warp.py moved_box). */
export function movedBox(map, box, width, height) {
  const [top, bottom, left, right] = box;
  if (!map.centres.length) {
    const [dx, dy] = [map.affine[0][0] * map.scale, map.affine[0][1] * map.scale];
    return [Math.max(Math.floor(top - dy) - 1, 0), Math.min(Math.ceil(bottom - dy) + 1, height),
      Math.max(Math.floor(left - dx) - 1, 0), Math.min(Math.ceil(right - dx) + 1, width)];
  }
  const ys = [];
  const xs = [];
  for (let v = 0; v < height + COARSE_STEP; v += COARSE_STEP) ys.push(Math.min(v, height));
  for (let v = 0; v < width + COARSE_STEP; v += COARSE_STEP) xs.push(Math.min(v, width));
  const grid = ys.map((y) => xs.map((x) => mapPoint(map, [x, y])));
  let step = 0;
  for (let r = 0; r < ys.length; r++) {
    for (let c = 0; c < xs.length; c++) {
      if (r) step = Math.max(step, Math.hypot(grid[r][c][0] - grid[r - 1][c][0], grid[r][c][1] - grid[r - 1][c][1]));
      if (c) step = Math.max(step, Math.hypot(grid[r][c][0] - grid[r][c - 1][0], grid[r][c][1] - grid[r][c - 1][1]));
    }
  }
  let found = null;
  for (let r = 0; r < ys.length; r++) {
    for (let c = 0; c < xs.length; c++) {
      const [gx, gy] = grid[r][c];
      if (gx < left - step || gx > right + step || gy < top - step || gy > bottom + step) continue;
      found = found ? [Math.min(found[0], ys[r]), Math.max(found[1], ys[r]), Math.min(found[2], xs[c]), Math.max(found[3], xs[c])]
        : [ys[r], ys[r], xs[c], xs[c]];
    }
  }
  if (!found) return [0, 0, 0, 0];
  return [Math.max(found[0] - COARSE_STEP, 0), Math.min(found[1] + COARSE_STEP, height),
    Math.max(found[2] - COARSE_STEP, 0), Math.min(found[3] + COARSE_STEP, width)];
}

/**
 * Warp `region` (Uint8Array, 1 = moves) of the RGBA picture `pixels` (Uint8ClampedArray, w * h * 4).
 * Returns {overlay: Uint8ClampedArray RGBA (transparent where the picture is unchanged; the moved
 * content opaque; the uncovered pixels in diagonal stripes of the two `uncovered` colours), moved:
 * Uint8Array, box: [t, b, l, r)}. `regionBox` saves finding the region's bounding box again.
 */
export function warpRegion(pixels, region, width, height, map, { uncovered = [[0, 0, 0, 0], [0, 0, 0, 0]], regionBox = null } = {}) {
  const overlay = new Uint8ClampedArray(width * height * 4);
  const moved = new Uint8Array(width * height);
  const box = regionBox ?? boundingBox(region, width, height);
  if (!box) return { overlay, moved, box: [0, 0, 0, 0] };
  const other = movedBox(map, box, width, height);
  const [top, bottom, left, right] = other[1] > other[0]
    ? [Math.min(box[0], other[0]), Math.max(box[1], other[1]), Math.min(box[2], other[2]), Math.max(box[3], other[3])] : box;
  const g = [0, 0];
  const tap = (array, channels, channel, x0, y0, fx, fy) => {
    const l = Math.min(Math.max(x0, 0), width - 1);
    const r = Math.min(Math.max(x0 + 1, 0), width - 1);
    const t = Math.min(Math.max(y0, 0), height - 1);
    const b = Math.min(Math.max(y0 + 1, 0), height - 1);
    const at = (row, col) => array[(row * width + col) * channels + channel];
    const upper = at(t, l) * (1 - fx) + at(t, r) * fx;
    const lower = at(b, l) * (1 - fx) + at(b, r) * fx;
    return upper * (1 - fy) + lower * fy;
  };
  for (let i = top; i < bottom; i++) {
    for (let j = left; j < right; j++) {
      mapInto(map, j + 0.5, i + 0.5, g);
      const sx = g[0] - 0.5;
      const sy = g[1] - 0.5;
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      const [fx, fy] = [sx - x0, sy - y0];
      const o = (i * width + j) * 4;
      const inside = sx >= -0.5 && sx <= width - 0.5 && sy >= -0.5 && sy <= height - 0.5;
      if (inside && tap(region, 1, 0, x0, y0, fx, fy) > 0.5) {
        moved[i * width + j] = 1;
        for (let c = 0; c < 3; c++) overlay[o + c] = tap(pixels, 4, c, x0, y0, fx, fy);
        overlay[o + 3] = 255;
      } else if (region[i * width + j]) {
        overlay.set(uncovered[((i + j) >> 2) & 1], o);
      }
    }
  }
  return { overlay, moved, box: [top, bottom, left, right] };
}
