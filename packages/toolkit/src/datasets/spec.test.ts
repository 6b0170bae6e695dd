import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { OutpostError } from '@outpost/protocol';
import { MNIST_EVAL_X, MNIST_EVAL_Y, MNIST_TRAIN_X, MNIST_TRAIN_Y } from '../testing/fixtures.ts';
import { loadMnistU8 } from './mnist.ts';
import { loadDatasetSpec, parseDatasetSpec } from './spec.ts';

describe('dataset specs', () => {
  test('parses the three kinds', () => {
    assert.deepEqual(parseDatasetSpec('mnist-u8:a/x.u8:a/y.u8'), {
      kind: 'mnist-u8',
      x: 'a/x.u8',
      y: 'a/y.u8',
    });
    assert.deepEqual(parseDatasetSpec('mnist-u8:x:y:200'), { kind: 'mnist-u8', x: 'x', y: 'y', limit: 200 });
    assert.deepEqual(parseDatasetSpec('mnist-package'), { kind: 'mnist-package' });
    assert.deepEqual(parseDatasetSpec('mnist-package:50'), { kind: 'mnist-package', limit: 50 });
    assert.deepEqual(parseDatasetSpec('npy:x.npy'), { kind: 'npy', x: 'x.npy' });
    assert.deepEqual(parseDatasetSpec('npy:x.npy:y.npy'), { kind: 'npy', x: 'x.npy', y: 'y.npy' });
  });

  test('malformed specs are VALIDATION_FAILED naming the problem', () => {
    const cases: [string, RegExp][] = [
      ['', /empty/],
      ['mnist', /unknown kind/],
      ['mnist-u8:x.u8', /2 or 3 fields/],
      ['mnist-u8:x:y:10:extra', /2 or 3 fields/],
      ['mnist-u8::y', /missing images/],
      ['mnist-u8:x:y:0', /at least 1/],
      ['mnist-u8:x:y:-5', /not a positive integer/],
      ['mnist-u8:x:y:1e3', /not a positive integer/],
      ['mnist-package:ten', /not a positive integer/],
      ['mnist-package:1:2', /at most a limit/],
      ['npy', /1 or 2 paths/],
    ];
    for (const [spec, why] of cases) {
      assert.throws(() => parseDatasetSpec(spec), { code: 'VALIDATION_FAILED', message: why }, spec);
    }
  });

  test('any string either parses or is VALIDATION_FAILED (never another error)', () => {
    const piece = fc.constantFrom('mnist-u8', 'mnist-package', 'npy', 'x.u8', '', '12', '0', '-1', 'a b');
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.array(piece, { maxLength: 5 }).map((a) => a.join(':')),
        ),
        (s) => {
          try {
            const r = parseDatasetSpec(s);
            assert.ok(['mnist-u8', 'mnist-package', 'npy'].includes(r.kind));
            if ('limit' in r && r.limit !== undefined) assert.ok(Number.isInteger(r.limit) && r.limit >= 1);
          } catch (err) {
            assert.ok(err instanceof OutpostError);
            assert.equal(err.code, 'VALIDATION_FAILED');
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  test('loads MNIST split files with a limit, the same as loadMnistU8', async () => {
    const d = await loadDatasetSpec(`mnist-u8:${MNIST_TRAIN_X}:${MNIST_TRAIN_Y}:200`);
    assert.equal(d.n, 200);
    assert.equal(d.labelled, true);
    const ref = await loadMnistU8(MNIST_TRAIN_X, MNIST_TRAIN_Y, 200);
    assert.deepEqual(d.x, ref.x);
    assert.deepEqual(d.y, ref.y);
    const all = await loadDatasetSpec(`mnist-u8:${MNIST_EVAL_X}:${MNIST_EVAL_Y}`);
    assert.equal(all.n, 2000);
  });

  test('loads the mnist package digits', async () => {
    const d = await loadDatasetSpec('mnist-package:30');
    assert.equal(d.n, 30);
    assert.equal(d.x.length, 30 * 784);
  });

  test('missing files are NOT_FOUND, mismatched files VALIDATION_FAILED, npy unsupported for now', async () => {
    await assert.rejects(loadDatasetSpec('mnist-u8:/nope/x.u8:/nope/y.u8'), { code: 'NOT_FOUND' });
    await assert.rejects(loadDatasetSpec(`mnist-u8:${MNIST_EVAL_X}:${MNIST_TRAIN_Y}`), {
      code: 'VALIDATION_FAILED',
    });
    await assert.rejects(loadDatasetSpec('npy:x.npy'), { code: 'VALIDATION_FAILED', message: /npy/ });
  });
});
