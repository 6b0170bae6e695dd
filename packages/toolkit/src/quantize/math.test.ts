import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { computeQuantParams, dequantizeWeight, quantRange, quantizeWeight, roundHalfEven } from './math.ts';

describe('quantization math', () => {
  test('round half to even like numpy', () => {
    assert.deepEqual(
      [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4, -2.6].map(roundHalfEven),
      [0, 2, 2, -0, -2, -2, 2, -3],
    );
  });

  test('uint8 asymmetric and int8 symmetric parameters', () => {
    assert.deepEqual(computeQuantParams(-1, 3, quantRange('uint8', false), false), {
      scale: Math.fround(4 / 255),
      zeroPoint: 64,
    });
    const s = computeQuantParams(-0.5, 2, quantRange('int8', true), true);
    assert.equal(s.zeroPoint, 0);
    assert.equal(s.scale, Math.fround(4 / 254));
    // All-positive ranges are widened to include 0, so 0.0 stays exact.
    assert.equal(computeQuantParams(1, 2, quantRange('uint8', false), false).zeroPoint, 0);
    assert.deepEqual(computeQuantParams(0, 0, quantRange('uint8', false), false), { scale: 1, zeroPoint: 0 });
  });

  for (const type of ['uint8', 'int8'] as const) {
    for (const perChannel of [false, true]) {
      test(`property: ${type}${perChannel ? ' per-channel' : ''} round trip error ≤ scale/2, zero exact`, () => {
        fc.assert(
          fc.property(
            fc.integer({ min: 1, max: 6 }),
            fc.integer({ min: 1, max: 6 }),
            fc.array(fc.float({ min: -100, max: 100, noNaN: true, noDefaultInfinity: true }), {
              minLength: 36,
              maxLength: 36,
            }),
            (rows, cols, pool) => {
              const values = Float32Array.from({ length: rows * cols }, (_, i) =>
                i === 0 ? 0 : (pool[i % 36] ?? 0),
              );
              const axis = perChannel ? 1 : undefined;
              const q = quantizeWeight(values, [rows, cols], { type, symmetric: type === 'int8', axis });
              assert.equal(q.scales.length, perChannel ? cols : 1);
              const back = dequantizeWeight(q, [rows, cols], axis);
              assert.equal(back[0], 0);
              for (let i = 0; i < values.length; i++) {
                const scale = q.scales[perChannel ? i % cols : 0] ?? 0;
                assert.ok(
                  Math.abs((back[i] ?? 0) - (values[i] ?? 0)) <=
                    scale / 2 + 1e-6 * Math.abs(values[i] ?? 0) + 1e-9,
                );
              }
            },
          ),
          { numRuns: 150, seed: 7 },
        );
      });
    }
  }

  test('reduceRange uses 7 bits', () => {
    const v = Float32Array.from({ length: 100 }, (_, i) => i / 10 - 5);
    const q = quantizeWeight(v, [100], { type: 'uint8', symmetric: false, reduceRange: true });
    assert.ok(Math.max(...q.data) <= 127);
    const s = quantizeWeight(v, [100], { type: 'int8', symmetric: true, reduceRange: true });
    assert.ok(Math.max(...s.data) <= 64 && Math.min(...s.data) >= -64);
  });
});
