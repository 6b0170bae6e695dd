import { OutpostError } from '@outpost/protocol';

/**
 * Activation statistics for calibration, following ONNX Runtime's `calibrate.py`:
 *
 * - {@link RangeStats} keeps the running min and max (MinMax calibration).
 * - {@link Histogram} is ORT's `HistogramCollector.collect_value`: a histogram over the symmetric range
 *   [-t, t] (t = largest |x| seen so far), `bins` wide at first. When a later batch exceeds t the range
 *   grows by whole bins of the same width on both sides, so old counts stay exactly where they were and
 *   nothing is re-binned approximately. Percentile and entropy thresholds are read from it.
 */

/**
 * Running min/max of everything observed.
 *
 * @example
 * const r = new RangeStats(); r.observe(batch); console.log(r.min, r.max);
 */
export class RangeStats {
  min = Infinity;
  max = -Infinity;
  /** Number of values observed (NaNs are ignored and not counted). */
  count = 0;

  /** Adds a batch of values. */
  observe(values: ArrayLike<number>): void {
    let lo = this.min;
    let hi = this.max;
    let n = 0;
    for (let i = 0; i < values.length; i++) {
      const v = values[i] as number;
      if (v !== v) continue; // NaN
      if (v < lo) lo = v;
      if (v > hi) hi = v;
      n++;
    }
    this.min = lo;
    this.max = hi;
    this.count += n;
  }
}

/** Growth beyond this many times the initial bin count re-bins instead of appending bins. */
const MAX_GROWTH = 16;

/**
 * A histogram over [-threshold, threshold] with an even number of equal bins (see the module comment).
 *
 * @example
 * const h = new Histogram(2048);
 * for (const batch of activations) h.observe(batch);
 * const [lo, hi] = entropyRange(h, 128);
 */
export class Histogram {
  counts: Float64Array;
  threshold = 0;
  readonly range = new RangeStats();

  constructor(readonly initialBins = 2048) {
    if (!Number.isInteger(initialBins) || initialBins < 2 || initialBins % 2 !== 0) {
      throw new OutpostError(
        'VALIDATION_FAILED',
        `histogram bins must be an even integer ≥ 2, got ${initialBins}`,
      );
    }
    this.counts = new Float64Array(initialBins);
  }

  /** Bin edges: `bins + 1` values from -threshold to threshold. */
  edge(i: number): number {
    return -this.threshold + (2 * this.threshold * i) / this.counts.length;
  }

  /** Adds a batch of values, widening the range when they exceed it (ORT's `merge_histogram`). */
  observe(values: ArrayLike<number>): void {
    const before = this.range.count;
    this.range.observe(values);
    if (this.range.count === before) return;
    const t = Math.max(Math.abs(this.range.min), Math.abs(this.range.max));
    if (t > this.threshold) this.widen(t);
    this.add(values);
  }

  private widen(t: number): void {
    if (this.threshold === 0) {
      // Nothing but zeros so far (or nothing at all): start over on the new range, keeping the counts
      // of the zeros, which sit in the two middle bins either way.
      const old = this.counts;
      this.threshold = t;
      this.counts = new Float64Array(old.length);
      const mid = old.length / 2;
      this.counts[mid] = (old[mid - 1] ?? 0) + (old[mid] ?? 0);
      return;
    }
    const n = this.counts.length;
    const stride = (2 * this.threshold) / n;
    const grow = Math.floor((t - this.threshold) / stride) + 1;
    if (n + 2 * grow <= MAX_GROWTH * this.initialBins) {
      const next = new Float64Array(n + 2 * grow);
      next.set(this.counts, grow);
      this.counts = next;
      this.threshold = this.threshold + grow * stride;
      return;
    }
    // The range jumped by orders of magnitude (ORT would allocate millions of bins here): start a
    // fresh histogram of `initialBins` over the new range and move each old bin's count to the bin
    // holding its centre. The old bins are far narrower than the new ones, so little is blurred.
    const next = new Float64Array(this.initialBins);
    const k = this.initialBins / (2 * t);
    for (let i = 0; i < n; i++) {
      const c = this.counts[i] as number;
      if (c === 0) continue;
      const centre = -this.threshold + (i + 0.5) * stride;
      const b = Math.min(this.initialBins - 1, Math.max(0, Math.floor((centre + t) * k)));
      next[b] = (next[b] as number) + c;
    }
    this.counts = next;
    this.threshold = t;
  }

  private add(values: ArrayLike<number>): void {
    const n = this.counts.length;
    const t = this.threshold;
    if (t === 0) {
      // Every value is 0: numpy puts them in the upper middle bin of a degenerate [-0.5, 0.5]-style range.
      let zeros = 0;
      for (let i = 0; i < values.length; i++) if ((values[i] as number) === 0) zeros++;
      this.counts[n / 2] = (this.counts[n / 2] ?? 0) + zeros;
      return;
    }
    const k = n / (2 * t);
    for (let i = 0; i < values.length; i++) {
      const v = values[i] as number;
      if (v !== v) continue;
      let b = Math.floor((v + t) * k);
      if (b >= n)
        b = n - 1; // the right edge belongs to the last bin, as in numpy
      else if (b < 0) b = 0;
      this.counts[b] = (this.counts[b] ?? 0) + 1;
    }
  }

  /**
   * The values' distribution folded onto |x|: `counts[k]` holds |x| in [k·w, (k+1)·w), w = threshold / (bins/2).
   * Symmetric percentile calibration reads this (ORT's `collect_absolute_value`).
   */
  absolute(): { counts: Float64Array; width: number } {
    const n = this.counts.length;
    const half = n / 2;
    const out = new Float64Array(half);
    for (let k = 0; k < half; k++) out[k] = (this.counts[half + k] ?? 0) + (this.counts[half - 1 - k] ?? 0);
    return { counts: out, width: this.threshold / half };
  }
}

/** numpy `searchsorted(cdf, q)` (side='left'): the first index whose cumulative share is ≥ q. */
function searchCdf(counts: Float64Array, q: number): number {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i] ?? 0;
  let acc = 0;
  for (let i = 0; i < counts.length; i++) {
    acc += counts[i] ?? 0;
    if (acc / total >= q) return i;
  }
  return counts.length - 1;
}

function firstNonEmpty(counts: Float64Array): number {
  return counts.findIndex((c) => c > 0);
}

function lastNonEmpty(counts: Float64Array): number {
  for (let i = counts.length - 1; i >= 0; i--) if ((counts[i] as number) > 0) return i;
  return -1;
}

/**
 * Percentile range, as ORT's `HistogramCalibrater.compute_percentile`: symmetric ranges cut |x| at the
 * percentile; asymmetric ones cut (100 − p)/2 % off each tail of the signed distribution. Thresholds are
 * bin edges, clipped to the observed min/max. Where ORT takes the lower edge of the bin that crosses the
 * upper cut, this takes its upper edge, so that percentile 100 gives back exactly the observed max (the
 * two differ by one bin, range/2048).
 *
 * @example
 * const [lo, hi] = percentileRange(hist, 99.999, false);
 */
export function percentileRange(h: Histogram, percentile: number, symmetric: boolean): [number, number] {
  if (!(percentile > 0 && percentile <= 100)) {
    throw new OutpostError('VALIDATION_FAILED', `percentile must be in (0, 100], got ${percentile}`);
  }
  const { min, max } = h.range;
  if (h.range.count === 0) return [0, 0];
  let lo: number;
  let hi: number;
  // A cut inside the outermost non-empty bin keeps the exact extreme: the bin edge past it would only
  // add rounding (a value on an edge may sit in either neighbouring bin).
  if (symmetric) {
    const abs = h.absolute();
    const k = searchCdf(abs.counts, percentile / 100);
    const upper = k >= lastNonEmpty(abs.counts) ? Math.max(-min, max) : (k + 1) * abs.width;
    lo = -upper;
    hi = upper;
  } else {
    const cut = (100 - percentile) / 200;
    const left = searchCdf(h.counts, cut);
    const right = searchCdf(h.counts, 1 - cut);
    lo = left <= firstNonEmpty(h.counts) ? min : h.edge(left);
    hi = right >= lastNonEmpty(h.counts) ? max : h.edge(right + 1);
  }
  return [Math.max(lo, min), Math.min(hi, max)];
}

/**
 * MXNet/ORT `smooth_distribution`: moves `eps` of mass onto every empty bin (taken evenly from the
 * non-empty ones) so that KL(p‖q) stays finite. Undefined when every bin is empty.
 */
function smooth(p: Float64Array, eps = 0.0001): Float64Array | undefined {
  let zeros = 0;
  for (let i = 0; i < p.length; i++) if (p[i] === 0) zeros++;
  const nonZeros = p.length - zeros;
  if (nonZeros === 0) return undefined;
  const eps1 = (eps * zeros) / nonZeros;
  const out = new Float64Array(p.length);
  for (let i = 0; i < p.length; i++) out[i] = p[i] === 0 ? eps : (p[i] as number) - eps1;
  return out;
}

/** scipy `entropy(p, q)`: KL divergence of the two distributions after normalising each to sum 1. */
function klDivergence(p: Float64Array, q: Float64Array): number {
  let sp = 0;
  let sq = 0;
  for (let i = 0; i < p.length; i++) {
    sp += p[i] as number;
    sq += q[i] as number;
  }
  let kl = 0;
  for (let i = 0; i < p.length; i++) {
    const pi = (p[i] as number) / sp;
    if (pi > 0) kl += pi * Math.log(pi / ((q[i] as number) / sq));
  }
  return kl;
}

/**
 * Entropy (KL-divergence) calibration, the TensorRT algorithm as ORT's `get_entropy_threshold` runs it:
 * for every symmetric window of `2i+1` bins around zero (i from `quantizedBins/2` to the full histogram)
 * the reference distribution p is the window with the outliers folded into its end bins, q is p
 * re-quantized to `quantizedBins` levels and expanded back over p's non-empty bins; the window whose
 * KL(p‖q) is smallest sets the range, clipped to the observed min/max. One deviation: q is kept in floating
 * point where ORT truncates it to integers (TensorRT and MXNet use floats too).
 *
 * @example
 * const [lo, hi] = entropyRange(hist, 128);
 */
export function entropyRange(h: Histogram, quantizedBins = 128): [number, number] {
  const hist = h.counts;
  const n = hist.length;
  const { min, max } = h.range;
  if (h.range.count === 0) return [0, 0];
  if (h.threshold === 0) return [min, max];
  const zero = Math.floor(n / 2);
  const halfQ = Math.floor(quantizedBins / 2);
  // Prefix sums make the outlier counts O(1) per window.
  const prefix = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) prefix[i + 1] = (prefix[i] as number) + (hist[i] as number);
  let best = Infinity;
  let bestRange: [number, number] = [h.edge(0), h.edge(n)];
  for (let i = halfQ; i <= zero; i++) {
    const start = zero - i;
    const end = Math.min(zero + i + 1, n);
    const size = end - start;
    const p = Float64Array.from(hist.subarray(start, end));
    p[0] = (p[0] as number) + (prefix[start] as number);
    p[size - 1] = (p[size - 1] as number) + ((prefix[n] as number) - (prefix[end] as number));
    const merged = Math.floor(size / quantizedBins);
    if (merged === 0) continue;
    const q = new Float64Array(size);
    for (let b = 0; b < quantizedBins; b++) {
      const s = b * merged;
      const e = b === quantizedBins - 1 ? size : s + merged;
      let sum = 0;
      let nonEmpty = 0;
      for (let j = s; j < e; j++) {
        sum += hist[start + j] as number;
        if ((p[j] as number) !== 0) nonEmpty++;
      }
      if (b !== quantizedBins - 1) {
        // ORT spreads each level over its own merged bins only; the tail bins join the last level's sum.
        for (let j = s; j < e; j++) if ((p[j] as number) !== 0) q[j] = sum / nonEmpty;
      } else {
        const ownEnd = s + merged;
        let ownNonEmpty = 0;
        for (let j = s; j < ownEnd; j++) if ((p[j] as number) !== 0) ownNonEmpty++;
        for (let j = s; j < ownEnd; j++) if ((p[j] as number) !== 0) q[j] = sum / ownNonEmpty;
      }
    }
    const ps = smooth(p);
    const qs = smooth(q);
    const kl = ps && qs ? klDivergence(ps, qs) : Infinity;
    if (kl < best) {
      best = kl;
      bestRange = [h.edge(start), h.edge(end)];
    }
  }
  return [Math.max(bestRange[0], min), Math.min(bestRange[1], max)];
}
