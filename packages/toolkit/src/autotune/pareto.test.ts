import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { dominates, paretoFront } from './pareto.ts';

const point = fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 3, maxLength: 3 });

describe('Pareto front', () => {
  test('examples', () => {
    assert.deepEqual(paretoFront([]), []);
    assert.deepEqual(paretoFront([[1, 1, 1]]), [0]);
    assert.deepEqual(
      paretoFront([
        [1, 5, 0],
        [2, 2, 0],
        [3, 3, 0],
      ]),
      [0, 1],
    );
    // Equal points do not dominate each other: both stay.
    assert.deepEqual(
      paretoFront([
        [1, 1, 1],
        [1, 1, 1],
        [2, 2, 2],
      ]),
      [0, 1],
    );
    // Better in accuracy alone keeps a slower, larger point on the front.
    assert.deepEqual(
      paretoFront([
        [1, 1, 0.5],
        [2, 2, 0],
      ]),
      [0, 1],
    );
    assert.equal(dominates([1, 2, 3], [1, 2, 3]), false);
    assert.equal(dominates([1, 2, 3], [1, 2, 4]), true);
    assert.equal(dominates([0, 9, 0], [1, 2, 3]), false);
  });

  test('no front member is dominated; every non-member is dominated by a front member', () => {
    fc.assert(
      fc.property(fc.array(point, { maxLength: 25 }), (pts) => {
        const front = paretoFront(pts);
        const inFront = new Set(front);
        for (const i of front) {
          for (const q of pts) assert.equal(dominates(q, pts[i] as number[]), false);
        }
        pts.forEach((p, i) => {
          if (inFront.has(i)) return;
          assert.ok(
            front.some((j) => dominates(pts[j] as number[], p)),
            `point ${i} is off the front but no front member dominates it`,
          );
        });
        if (pts.length > 0) assert.ok(front.length > 0);
      }),
      { numRuns: 500 },
    );
  });

  test('dominance is irreflexive and antisymmetric', () => {
    fc.assert(
      fc.property(point, point, (a, b) => {
        assert.equal(dominates(a, a), false);
        assert.equal(dominates(a, b) && dominates(b, a), false);
      }),
    );
  });
});
