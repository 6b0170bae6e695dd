import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { distillationLoss, useWasmBackend } from './index.ts';

before(async () => {
  await useWasmBackend();
});

function lossOf(
  s: number[][],
  t: number[][] | null,
  y: number[],
  temperature: number,
  alpha: number,
): number {
  return tf.tidy(
    () =>
      distillationLoss(tf.tensor2d(s), t ? tf.tensor2d(t) : null, tf.tensor1d(y, 'int32'), {
        temperature,
        alpha,
      }).dataSync()[0] as number,
  );
}

const close = (a: number, b: number, tol = 1e-5) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

describe('distillation loss', () => {
  test('two classes, worked by hand', () => {
    // Student logits [0, 0] → softmax [1/2, 1/2]. Teacher logits [ln 3, 0] → softmax [3/4, 1/4] at T = 1.
    // KL = 3/4·ln(3/4 ÷ 1/2) + 1/4·ln(1/4 ÷ 1/2) = 3/4·ln 1.5 − 1/4·ln 2 = 0.1308121
    // CE(label 0) = −ln 1/2 = 0.6931472;  α = 0.5 → 0.5·0.1308121 + 0.5·0.6931472 = 0.4119796
    close(lossOf([[0, 0]], [[Math.log(3), 0]], [0], 1, 0.5), 0.4119796);
    // T = 2: teacher [ln 3 / 2, 0] → softmax [√3/(√3+1), 1/(√3+1)] = [0.6339746, 0.3660254];
    // the student stays uniform. KL = 0.6339746·ln 1.2679492 + 0.3660254·ln 0.7320508 = 0.0363408,
    // times T² = 4 → 0.1453631; α = 0.7 → 0.7·0.1453631 + 0.3·0.6931472 = 0.3096983
    close(lossOf([[0, 0]], [[Math.log(3), 0]], [0], 2, 0.7), 0.3096983);
  });

  test('a student equal to its teacher pays only the hard term; α = 0 or no teacher is cross-entropy', () => {
    const s = [[1.5, -0.5, 0.25]];
    const ce = -Math.log(Math.exp(-0.5) / (Math.exp(1.5) + Math.exp(-0.5) + Math.exp(0.25)));
    close(lossOf(s, s, [1], 4, 0.7), 0.3 * ce);
    close(lossOf(s, [[9, 9, -3]], [1], 4, 0), ce);
    close(lossOf(s, null, [1], 4, 0.7), ce);
    // Uniform logits over C classes: CE = ln C whatever the label.
    close(lossOf([[0, 0, 0, 0]], null, [3], 1, 0), Math.log(4));
  });

  test('the loss is the mean over the batch', () => {
    const a = lossOf([[1, 2, 3]], [[0, 1, 0]], [2], 3, 0.6);
    const b = lossOf([[-1, 0, 4]], [[2, 2, -1]], [0], 3, 0.6);
    close(
      lossOf(
        [
          [1, 2, 3],
          [-1, 0, 4],
        ],
        [
          [0, 1, 0],
          [2, 2, -1],
        ],
        [2, 0],
        3,
        0.6,
      ),
      (a + b) / 2,
    );
  });

  test('soft-term gradient is T·(softmax(s/T) − softmax(t/T)): the T² factor keeps it on the hard scale', () => {
    const s = [0.3, -1.2, 2.0];
    const t = [1.0, 0.5, -0.5];
    const T = 4;
    const softmax = (v: number[]) => {
      const e = v.map((x) => Math.exp(x / T));
      const z = e.reduce((p, q) => p + q, 0);
      return e.map((x) => x / z);
    };
    const g = tf.tidy(() =>
      tf
        .grad((x: tf.Tensor) =>
          distillationLoss(x as tf.Tensor2D, tf.tensor2d([t]), tf.tensor1d([0], 'int32'), {
            temperature: T,
            alpha: 1,
          }),
        )(tf.tensor2d([s]))
        .dataSync(),
    );
    const ps = softmax(s);
    const pt = softmax(t);
    for (let k = 0; k < 3; k++) close(g[k] as number, T * ((ps[k] as number) - (pt[k] as number)));
  });
});
