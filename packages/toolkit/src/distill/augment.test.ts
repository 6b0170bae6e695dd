import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { OutpostError } from '@outpost/protocol';
import { loadMnistU8, sliceDataset } from '../datasets/index.ts';
import { MNIST_TRAIN_X, MNIST_TRAIN_Y } from '../testing/fixtures.ts';
import { augmentImages, resolveImageShape } from './index.ts';

describe('transfer-set augmentation', () => {
  test('a zero-strength transform is the identity, exactly (any image size, any channel count)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 0, max: 1000 }),
        (h, w, channels, copies, seed) => {
          const x = Float32Array.from({ length: 2 * channels * h * w }, (_, i) => (i * 37) % 11);
          const out = augmentImages(
            x,
            2,
            { copies, maxShift: 0, maxRotation: 0, maxScale: 0, elastic: 0, imageShape: [h, w] },
            seed,
          );
          assert.equal(out.length, x.length * copies);
          for (let i = 0; i < 2; i++) {
            for (let c = 0; c < copies; c++) {
              const got = out.subarray(
                (i * copies + c) * channels * h * w,
                (i * copies + c + 1) * channels * h * w,
              );
              assert.deepEqual(got, x.subarray(i * channels * h * w, (i + 1) * channels * h * w));
            }
          }
        },
      ),
      { numRuns: 50 },
    );
  });

  test('MNIST digits: deterministic per seed, varied across copies, still in [0, 1] and digit-sized', async () => {
    const ds = sliceDataset(await loadMnistU8(MNIST_TRAIN_X, MNIST_TRAIN_Y, 20), 20);
    const opts = { copies: 3 };
    const a = augmentImages(ds.x, ds.n, opts, 7, [1, 28, 28]);
    assert.deepEqual(a, augmentImages(ds.x, ds.n, opts, 7, [1, 28, 28]));
    assert.notDeepEqual(a, augmentImages(ds.x, ds.n, opts, 8, [1, 28, 28]));
    assert.equal(a.length, 20 * 3 * 784);
    for (let i = 0; i < 20; i++) {
      const orig = ds.x.subarray(i * 784, (i + 1) * 784).reduce((p, q) => p + q, 0);
      const copies = [0, 1, 2].map((c) => a.subarray((i * 3 + c) * 784, (i * 3 + c + 1) * 784));
      assert.notDeepEqual(copies[0], copies[1]);
      for (const img of copies) {
        assert.ok(img.every((v) => v >= 0 && v <= 1 + 1e-6));
        const ink = img.reduce((p, q) => p + q, 0);
        // Mild transforms keep the amount of ink within a loose band (zoom changes it by ≤ ~25 %).
        assert.ok(ink > 0.6 * orig && ink < 1.5 * orig, `ink ${ink} vs ${orig}`);
      }
    }
  });

  test('bad options and non-image samples are VALIDATION_FAILED', () => {
    const x = new Float32Array(2 * 784);
    const bad = (f: () => unknown) =>
      assert.throws(f, (e) => e instanceof OutpostError && e.code === 'VALIDATION_FAILED');
    bad(() => augmentImages(x, 2, { copies: -1 }, 1));
    bad(() => augmentImages(x, 2, { copies: 1.5 }, 1));
    bad(() => augmentImages(x, 2, { copies: 1, maxShift: Number.NaN }, 1));
    bad(() => augmentImages(x, 2, { copies: 1, maxScale: 1 }, 1));
    bad(() => augmentImages(x, 3, { copies: 1 }, 1));
    bad(() => augmentImages(new Float32Array(2 * 10), 2, { copies: 1 }, 1)); // 10 is no square
    assert.deepEqual(resolveImageShape(784, [1, 28, 28]), { h: 28, w: 28, channels: 1 });
    assert.deepEqual(resolveImageShape(3 * 32 * 32, [3, 32, 32]), { h: 32, w: 32, channels: 3 });
    assert.deepEqual(resolveImageShape(784, [784]), { h: 28, w: 28, channels: 1 });
  });
});
