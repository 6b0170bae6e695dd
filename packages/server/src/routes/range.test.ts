import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseRange } from './range.ts';

test('parseRange: a satisfiable single range always lies inside the file', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 1e9 }),
      fc.option(fc.nat({ max: 2e9 }), { nil: undefined }),
      fc.option(fc.nat({ max: 2e9 }), { nil: undefined }),
      (size, a, b) => {
        if (a === undefined && b === undefined) return;
        const header = `bytes=${a ?? ''}-${b ?? ''}`;
        const r = parseRange(header, size);
        if (r === null) {
          // Only an inverted range is ignored.
          assert.ok(a !== undefined && b !== undefined && b < a, header);
        } else if (r === 'unsatisfiable') {
          assert.ok((a !== undefined && a >= size) || (a === undefined && b === 0), header);
        } else {
          assert.ok(r.start >= 0 && r.start <= r.end && r.end < size, `${header} -> ${JSON.stringify(r)}`);
          if (a !== undefined) assert.equal(r.start, a);
          else assert.equal(r.end - r.start + 1, Math.min(b ?? 0, size));
          if (a !== undefined && b !== undefined) assert.equal(r.end, Math.min(b, size - 1));
        }
      },
    ),
  );
});

test('parseRange: examples, multi-range and other units fall back to the whole file', () => {
  assert.deepEqual(parseRange('bytes=0-0', 10), { start: 0, end: 0 });
  assert.deepEqual(parseRange('bytes=-3', 10), { start: 7, end: 9 });
  assert.deepEqual(parseRange('bytes=-30', 10), { start: 0, end: 9 });
  assert.deepEqual(parseRange('bytes=5-', 10), { start: 5, end: 9 });
  assert.equal(parseRange('bytes=10-', 10), 'unsatisfiable');
  assert.equal(parseRange('bytes=-0', 10), 'unsatisfiable');
  assert.equal(parseRange(undefined, 10), null);
  assert.equal(parseRange('bytes=0-1,3-4', 10), null);
  assert.equal(parseRange('items=0-1', 10), null);
  assert.equal(parseRange('bytes=-', 10), null);
  assert.equal(parseRange('bytes=abc', 10), null);
});
