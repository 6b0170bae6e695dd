import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { OutpostError } from '@outpost/protocol';
import { MNIST_EVAL_X, MNIST_EVAL_Y, MNIST_TRAIN_X, MNIST_TRAIN_Y } from '../testing/fixtures.ts';
import { loadMnistU8 } from './mnist.ts';
import { loadDatasetSpec, parseDatasetSpec } from './spec.ts';

/** A version-1 .npy file, as NumPy writes it (header padded to a multiple of 64 bytes). */
function npy(descr: string, shape: number[], payload: Uint8Array): Uint8Array {
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${dims}), }`;
  header += ' '.repeat(64 - ((10 + header.length + 1) % 64)) + '\n';
  const head = new Uint8Array(10);
  head.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(head.buffer).setUint16(8, header.length, true);
  return Buffer.concat([head, Buffer.from(header, 'latin1'), payload]);
}

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

  test('missing files are NOT_FOUND, mismatched files VALIDATION_FAILED', async () => {
    await assert.rejects(loadDatasetSpec('mnist-u8:/nope/x.u8:/nope/y.u8'), { code: 'NOT_FOUND' });
    await assert.rejects(loadDatasetSpec(`mnist-u8:${MNIST_EVAL_X}:${MNIST_TRAIN_Y}`), {
      code: 'VALIDATION_FAILED',
    });
    await assert.rejects(loadDatasetSpec('npy:/nope/x.npy'), { code: 'NOT_FOUND' });
  });

  test('npy: uint8 images scaled like the MNIST loaders, float32 as is, labels checked', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outpost-spec-'));
    try {
      const ref = await loadMnistU8(MNIST_EVAL_X, MNIST_EVAL_Y, 10);
      const raw = readFileSync(MNIST_EVAL_X).subarray(0, 10 * 784);
      writeFileSync(join(dir, 'x.npy'), npy('|u1', [10, 28, 28], raw));
      writeFileSync(join(dir, 'y.npy'), npy('|u1', [10], readFileSync(MNIST_EVAL_Y).subarray(0, 10)));
      writeFileSync(join(dir, 'xf.npy'), npy('<f4', [10, 784], new Uint8Array(ref.x.buffer)));
      writeFileSync(join(dir, 'y9.npy'), npy('|u1', [9], new Uint8Array(9)));
      writeFileSync(join(dir, 'flat.npy'), npy('<f4', [784], new Uint8Array(784 * 4)));
      const d = await loadDatasetSpec(`npy:${join(dir, 'x.npy')}:${join(dir, 'y.npy')}`);
      assert.equal(d.n, 10);
      assert.equal(d.labelled, true);
      assert.deepEqual(d.x, ref.x);
      assert.deepEqual(d.y, ref.y);
      const f = await loadDatasetSpec(`npy:${join(dir, 'xf.npy')}`);
      assert.deepEqual(f.x, ref.x);
      assert.equal(f.labelled, false);
      await assert.rejects(loadDatasetSpec(`npy:${join(dir, 'x.npy')}:${join(dir, 'y9.npy')}`), {
        code: 'VALIDATION_FAILED',
        message: /one label per sample/,
      });
      await assert.rejects(loadDatasetSpec(`npy:${join(dir, 'flat.npy')}`), {
        code: 'VALIDATION_FAILED',
        message: /samples/,
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
