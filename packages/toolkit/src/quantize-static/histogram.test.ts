import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { mulberry32 } from '../bench/index.ts';
import { Histogram, RangeStats, entropyRange, percentileRange } from './index.ts';

const finite = fc.float({ min: -1000, max: 1000, noNaN: true, noDefaultInfinity: true });
const batches = fc.array(fc.array(finite, { minLength: 1, maxLength: 60 }), { minLength: 1, maxLength: 6 });

function total(h: Histogram): number {
  return h.counts.reduce((a, b) => a + b, 0);
}

/** Exact nearest-rank quantile of the values, for comparing against the histogram's answer. */
function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}

describe('calibration statistics', () => {
  test('property: batches widen the histogram without losing or moving counts', () => {
    fc.assert(
      fc.property(batches, (bs) => {
        const h = new Histogram(16);
        const r = new RangeStats();
        for (const b of bs) {
          h.observe(Float32Array.from(b));
          r.observe(b);
        }
        const all = bs.flat().map((v) => Math.fround(v));
        assert.equal(total(h), all.length);
        assert.equal(h.counts.length % 2, 0);
        assert.ok(h.threshold >= Math.max(...all.map(Math.abs)));
        // Every value lies in the bin the final edges say it does (the widening kept bins aligned): the
        // cumulative count below each edge is that of the values below it, give or take values sitting on it.
        const eps = h.threshold * 1e-9;
        let cum = 0;
        for (let i = 0; i <= h.counts.length; i++) {
          const e = h.edge(i);
          const below = all.filter((v) => v < e - eps).length;
          const atOrBelow = all.filter((v) => v <= e + eps).length;
          assert.ok(cum >= below && cum <= atOrBelow, `edge ${i}: ${cum} not in [${below}, ${atOrBelow}]`);
          cum += h.counts[i] ?? 0;
        }
        assert.equal(h.range.min, Math.min(...all));
        assert.equal(r.max, Math.max(...bs.flat()));
      }),
      { numRuns: 150, seed: 3 },
    );
  });

  test('property: percentile ranges stay inside [min, max], grow with p and hit the exact quantile ± one bin', () => {
    fc.assert(
      fc.property(
        fc.array(finite, { minLength: 20, maxLength: 400 }),
        fc.double({ min: 90, max: 99.99, noNaN: true }),
        (values, p) => {
          const h = new Histogram(256);
          h.observe(Float32Array.from(values));
          const { min, max } = h.range;
          const [lo, hi] = percentileRange(h, p, false);
          const [lo2, hi2] = percentileRange(h, Math.min(100, p + 0.005), false);
          assert.ok(min <= lo && lo <= hi && hi <= max);
          assert.ok(lo2 <= lo && hi2 >= hi);
          const sorted = Float32Array.from(values).sort();
          const bin = (2 * h.threshold) / h.counts.length;
          const cut = (100 - p) / 200;
          // ± one sample of rank (the cut may fall exactly on a sample) and ± one bin of value.
          const q = (x: number) => quantile([...sorted], x);
          const step = 1 / values.length;
          assert.ok(hi >= q(1 - cut - step) - bin && hi <= q(1 - cut + step) + bin, `hi ${hi}`);
          const [slo, shi] = percentileRange(h, p, true);
          assert.ok(min <= slo && slo <= shi && shi <= max);
          assert.ok(slo === -shi || slo === min || shi === max, `symmetric ${slo}, ${shi}`);
          assert.deepEqual(percentileRange(h, 100, false), [min, max]);
        },
      ),
      { numRuns: 120, seed: 11 },
    );
  });

  test('percentile cuts the outliers a min/max range would keep', () => {
    const rand = mulberry32(5);
    const v = Float32Array.from({ length: 100_000 }, () => rand() * 2 - 1);
    v[17] = 50; // one outlier
    const h = new Histogram();
    h.observe(v);
    const [lo, hi] = percentileRange(h, 99.99, false);
    assert.equal(h.range.max, 50);
    assert.ok(hi < 1.1 && lo > -1.1, `${lo} ${hi}`);
  });

  test('entropy keeps the bulk of a heavy-tailed distribution and clips rare outliers', () => {
    const rand = mulberry32(9);
    // Laplace-like activations in ±2 with a few values out at ±40.
    const v = Float32Array.from({ length: 200_000 }, () => {
      const u = rand() - 0.5;
      return -Math.sign(u) * Math.log(1 - 2 * Math.abs(u)) * 0.3;
    });
    for (let i = 0; i < 20; i++) v[i * 997] = (i % 2 ? 1 : -1) * 40;
    const h = new Histogram(2048);
    for (let i = 0; i < v.length; i += 50_000) h.observe(v.subarray(i, i + 50_000));
    const [lo, hi] = entropyRange(h, 128);
    assert.ok(hi < 20 && lo > -20, `range ${lo}, ${hi}`);
    assert.ok(hi > 1 && lo < -1, `range ${lo}, ${hi}`);
    // A uniform distribution has nothing to clip: the threshold stays near the full range.
    const u = new Histogram(2048);
    u.observe(Float32Array.from({ length: 50_000 }, () => rand() * 8 - 4));
    const [ulo, uhi] = entropyRange(u, 128);
    assert.ok(uhi > 3.5 && ulo < -3.5, `uniform ${ulo}, ${uhi}`);
  });

  test('degenerate inputs: all zeros, NaNs, nothing observed, bad arguments', () => {
    const h = new Histogram(8);
    assert.deepEqual(percentileRange(h, 99, false), [0, 0]);
    assert.deepEqual(entropyRange(h), [0, 0]);
    h.observe(new Float32Array(10));
    h.observe(Float32Array.from([NaN, 0]));
    assert.equal(total(h), 11);
    assert.deepEqual(entropyRange(h), [0, 0]);
    h.observe(Float32Array.from([3, -1]));
    assert.equal(total(h), 13);
    assert.equal(h.threshold, 3);
    assert.throws(() => new Histogram(7), { code: 'VALIDATION_FAILED' });
    assert.throws(() => percentileRange(h, 0, false), { code: 'VALIDATION_FAILED' });
  });
});
