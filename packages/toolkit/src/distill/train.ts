import * as tf from '@tensorflow/tfjs';
import { mulberry32 } from '../bench/index.ts';
import { distillationLoss } from './loss.ts';
import { forwardTraining } from './student.ts';

/** The data one training run sees: inputs, hard labels and (for distillation) the teacher's logits. */
export interface TrainingData {
  /** `n * features` inputs. */
  x: Float32Array;
  n: number;
  /** Per-sample input dims of the student (e.g. [1, 28, 28]). */
  sampleShape: number[];
  labels: Uint8Array;
  /** `n * classes` teacher logits, or null for the hard-label baseline. */
  teacherLogits: Float32Array | null;
  classes: number;
}

export interface TrainConfig {
  epochs: number;
  batchSize: number;
  learningRate: number;
  /** Learning-rate schedule over all steps: `cosine` decays to 1 % of the start (default), `constant`. */
  schedule: 'cosine' | 'constant';
  seed: number;
  temperature: number;
  alpha: number;
  /** Called after every optimisation step. */
  onStep?: (done: number, total: number) => void;
}

/** One epoch of training. */
export interface EpochStats {
  epoch: number;
  /** Mean training loss over the epoch's batches. */
  loss: number;
  /** Learning rate at the end of the epoch. */
  learningRate: number;
  ms: number;
}

/** Fisher–Yates with a seeded PRNG: the batch order is a function of the seed and epoch only. */
function permutation(n: number, seed: number): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  const rand = mulberry32(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = p[i] as number;
    p[i] = p[j] as number;
    p[j] = t;
  }
  return p;
}

/**
 * Trains `model` in place with Adam, minimising {@link distillationLoss} (plain cross-entropy when
 * `data.teacherLogits` is null). A custom loop rather than `model.fit`: it needs the teacher logits
 * next to the labels, seeded dropout masks and a per-step learning-rate schedule.
 *
 * @example
 * const history = await trainStudent(model, data, { epochs: 10, batchSize: 64, learningRate: 2e-3,
 *   schedule: 'cosine', seed: 1, temperature: 4, alpha: 0.7 });
 */
export async function trainStudent(
  model: tf.Sequential,
  data: TrainingData,
  cfg: TrainConfig,
): Promise<EpochStats[]> {
  const { n, classes } = data;
  const features = data.x.length / n;
  const batch = Math.min(cfg.batchSize, n);
  const stepsPerEpoch = Math.ceil(n / batch);
  const totalSteps = stepsPerEpoch * cfg.epochs;
  const optimizer = tf.train.adam(cfg.learningRate);
  // tfjs optimizers read `learningRate` on every step but do not expose a setter in their types.
  const lrHandle = optimizer as unknown as { learningRate: number };
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const xb = new Float32Array(batch * features);
  const yb = new Int32Array(batch);
  const tb = new Float32Array(batch * classes);
  const history: EpochStats[] = [];
  let step = 0;
  try {
    for (let epoch = 0; epoch < cfg.epochs; epoch++) {
      const t0 = performance.now();
      const order = permutation(n, cfg.seed * 1000 + epoch);
      let lossSum = 0;
      for (let s = 0; s < stepsPerEpoch; s++) {
        const rows = Math.min(batch, n - s * batch);
        for (let r = 0; r < rows; r++) {
          const i = order[s * batch + r] as number;
          xb.set(data.x.subarray(i * features, (i + 1) * features), r * features);
          yb[r] = data.labels[i] as number;
          if (data.teacherLogits)
            tb.set(data.teacherLogits.subarray(i * classes, (i + 1) * classes), r * classes);
        }
        lrHandle.learningRate =
          cfg.schedule === 'cosine'
            ? cfg.learningRate * (0.01 + 0.99 * 0.5 * (1 + Math.cos((Math.PI * step) / totalSteps)))
            : cfg.learningRate;
        const x = tf.tensor(xb.subarray(0, rows * features), [rows, ...data.sampleShape]);
        const y = tf.tensor1d(yb.subarray(0, rows), 'int32');
        const t = data.teacherLogits ? tf.tensor2d(tb.subarray(0, rows * classes), [rows, classes]) : null;
        const stepSeed = cfg.seed * 1_000_003 + step;
        // minimize() runs the closure under its own tape and tidy; only the inputs need disposing here.
        const cost = optimizer.minimize(
          () => distillationLoss(forwardTraining(model, x, stepSeed), t, y, cfg),
          true,
          vars,
        );
        tf.dispose([x, y, ...(t ? [t] : [])]);
        lossSum += cost ? (cost.dataSync()[0] ?? NaN) * rows : NaN;
        cost?.dispose();
        step++;
        cfg.onStep?.(step, totalSteps);
      }
      history.push({
        epoch: epoch + 1,
        loss: lossSum / n,
        learningRate: lrHandle.learningRate,
        ms: performance.now() - t0,
      });
      // Let timers and signals run between epochs: training is synchronous work on the main thread.
      await new Promise((resolve) => setImmediate(resolve));
    }
  } finally {
    optimizer.dispose();
  }
  return history;
}
