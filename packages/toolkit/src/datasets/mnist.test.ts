import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MNIST_EVAL_X, MNIST_EVAL_Y } from '../testing/fixtures.ts';
import { MNIST_PIXELS, loadMnistPackage, loadMnistU8, sliceDataset } from './index.ts';

describe('loadMnistU8', () => {
  test('loads the eval split scaled to [0,1] with its labels', async () => {
    const ds = await loadMnistU8(MNIST_EVAL_X, MNIST_EVAL_Y);
    assert.equal(ds.n, 2000);
    assert.equal(ds.x.length, 2000 * MNIST_PIXELS);
    const raw = readFileSync(MNIST_EVAL_X);
    for (const i of [0, 400, 783, 123_456, raw.length - 1]) assert.equal(ds.x[i], Math.fround(raw[i]! / 255));
    assert.deepEqual(ds.y, new Uint8Array(readFileSync(MNIST_EVAL_Y)));
    const counts = new Array<number>(10).fill(0);
    for (const v of ds.y) counts[v]!++;
    assert.ok(
      counts.every((c) => c > 100),
      `unbalanced labels ${counts}`,
    );
  });

  test('limit keeps a prefix', async () => {
    const ds = await loadMnistU8(MNIST_EVAL_X, MNIST_EVAL_Y, 10);
    assert.equal(ds.n, 10);
    assert.equal(ds.x.length, 7840);
    assert.deepEqual(ds.y, new Uint8Array(readFileSync(MNIST_EVAL_Y).subarray(0, 10)));
    await assert.rejects(loadMnistU8(MNIST_EVAL_X, MNIST_EVAL_Y, -1), { code: 'VALIDATION_FAILED' });
  });

  test('inconsistent files are rejected with typed errors', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'outpost-mnist-'));
    try {
      await writeFile(join(dir, 'x'), new Uint8Array(MNIST_PIXELS * 2));
      await writeFile(join(dir, 'y1'), new Uint8Array([1]));
      await writeFile(join(dir, 'y2'), new Uint8Array([1, 12]));
      await writeFile(join(dir, 'xodd'), new Uint8Array(100));
      await assert.rejects(loadMnistU8(join(dir, 'x'), join(dir, 'y1')), { code: 'VALIDATION_FAILED' });
      await assert.rejects(loadMnistU8(join(dir, 'x'), join(dir, 'y2')), /label 12/);
      await assert.rejects(loadMnistU8(join(dir, 'xodd'), join(dir, 'y1')), { code: 'VALIDATION_FAILED' });
      await assert.rejects(loadMnistU8(join(dir, 'nope'), join(dir, 'y1')), { code: 'NOT_FOUND' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('loadMnistPackage', () => {
  test('deterministic, class-interleaved, on the k/255 grid', async () => {
    const a = await loadMnistPackage(50);
    const b = await loadMnistPackage(50);
    assert.equal(a.n, 50);
    assert.deepEqual(a.x, b.x);
    assert.deepEqual(Array.from(a.y.subarray(0, 12)), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
    let max = 0;
    for (const v of a.x) {
      assert.ok(Math.abs(v * 255 - Math.round(v * 255)) < 1e-3);
      max = Math.max(max, v);
    }
    assert.ok(max > 0.9 && max <= 1);
  });

  test('every digit of the package is loaded, and they are the pool of the .u8 splits', async () => {
    const all = await loadMnistPackage();
    assert.equal(all.n, 10_000);
    // The shared eval split is drawn from this pool: its first image must appear in it exactly.
    const evalSet = await loadMnistU8(MNIST_EVAL_X, MNIST_EVAL_Y, 1);
    const target = evalSet.x;
    let found = -1;
    for (let i = 0; i < all.n && found < 0; i++) {
      if (all.y[i] !== evalSet.y[0]) continue;
      let same = true;
      for (let p = 0; p < MNIST_PIXELS && same; p++) same = all.x[i * MNIST_PIXELS + p] === target[p];
      if (same) found = i;
    }
    assert.ok(found >= 0, 'first eval digit not found in the package pool');
  });

  test('sliceDataset', async () => {
    const ds = await loadMnistPackage(20);
    const s = sliceDataset(ds, 5);
    assert.equal(s.n, 5);
    assert.equal(s.x.length, 5 * MNIST_PIXELS);
    assert.deepEqual(s.y, ds.y.subarray(0, 5));
  });
});
