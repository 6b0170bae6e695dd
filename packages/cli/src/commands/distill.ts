import { OutpostError } from '@outpost/protocol';
import { encodeModel, evaluate, loadMnistU8, readModelBytes, writeModelFile } from '@outpost/toolkit';
import type { Dataset } from '@outpost/toolkit';
// Distillation is new in the toolkit; imported by path until the toolkit's index re-exports it
// (then: `from '@outpost/toolkit'`).
import { STUDENT_ACTIVATIONS, distill, trainStudentAlone } from '@outpost/toolkit';
import type { DistillResult, StudentActivation, StudentSpec } from '@outpost/toolkit';
import { fmtBytes, progress, table } from '../output/index.ts';

export interface DistillCommandOptions {
  /** Output .onnx for the student, written atomically once everything succeeded. */
  output: string;
  /** MNIST-format training images: 784 bytes per image. */
  train: string;
  /** One label byte per training image. */
  trainLabels: string;
  /** Hidden layer sizes, e.g. `32` or `64,32` (default `32`). */
  hidden?: string;
  /** Hidden activation (default relu). */
  activation?: string;
  /** Pixels cropped from each image border before the first Dense layer (default 0). */
  crop?: number | string;
  /** Average-pooling factor applied to the (cropped) image (default 1 = none). */
  pool?: number | string;
  /** Dropout rate after each hidden layer while training (default 0). */
  dropout?: number | string;
  /** BatchNormalization before each hidden activation (folded into the Dense in the export). */
  batchNorm?: boolean;
  /** Softmax temperature of the soft targets (default 4). */
  temperature?: number | string;
  /** Weight of the soft loss, 0–1 (default 0.7). */
  alpha?: number | string;
  /** Epochs (default 20). */
  epochs?: number | string;
  /** Batch size (default 64). */
  batchSize?: number | string;
  /** Initial learning rate (default 0.002). */
  learningRate?: number | string;
  /** Augmented copies per training digit added to the transfer set (default 0). */
  augment?: number | string;
  /** Seed for weights, augmentation, batch order and dropout (default 1). */
  seed?: number | string;
  /** Also train the same student on the labels alone, as the baseline. */
  compareAlone?: boolean;
  /** Held-out images for accuracy figures (never trained on). */
  evalImages?: string;
  evalLabels?: string;
  json?: boolean;
}

function num(name: string, v: number | string | undefined): number | undefined {
  if (v === undefined || v === '') return undefined;
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isFinite(n))
    throw new OutpostError('VALIDATION_FAILED', `--${name} must be a number, got ${v}`);
  return n;
}

/** `"64,32"` → [64, 32]; anything but positive integers is VALIDATION_FAILED. */
export function parseHidden(spec: string): number[] {
  const parts = spec.split(',').map((s) => s.trim());
  if (!parts.every((p) => /^[1-9]\d*$/.test(p))) {
    throw new OutpostError(
      'VALIDATION_FAILED',
      `--hidden must be layer sizes like "32" or "64,32", got ${JSON.stringify(spec)}`,
    );
  }
  return parts.map(Number);
}

interface Row {
  model: string;
  parameters: number;
  bytes: number;
  trainSeconds: number | null;
  evalAccuracy: number | null;
}

/**
 * `outpost distill <teacher.onnx> -o student.onnx --train x.u8 --train-labels y.u8 [--hidden 32]
 * [--temperature 4] [--alpha 0.7] [--epochs 20] [--augment 2] [--compare-alone] [--eval x.u8 --eval-labels y.u8]`:
 * distils the teacher into a Dense MLP student, writes it atomically and prints teacher / student /
 * alone figures (or JSON). Bad options are VALIDATION_FAILED before any work; nothing is written
 * unless every step succeeded.
 *
 * @example
 * await distillCommand('mnist_cnn.onnx', { output: 'student.onnx', train: 'x.u8', trainLabels: 'y.u8', hidden: '24' });
 */
export async function distillCommand(teacherPath: string, opts: DistillCommandOptions): Promise<void> {
  if (!opts.output) throw new OutpostError('VALIDATION_FAILED', '--output is required');
  if (!opts.train || !opts.trainLabels) {
    throw new OutpostError(
      'VALIDATION_FAILED',
      '--train <images.u8> and --train-labels <labels.u8> are required',
    );
  }
  if (!!opts.evalImages !== !!opts.evalLabels) {
    throw new OutpostError('VALIDATION_FAILED', '--eval and --eval-labels go together');
  }
  const activation = opts.activation ?? 'relu';
  if (!(STUDENT_ACTIVATIONS as readonly string[]).includes(activation)) {
    throw new OutpostError(
      'VALIDATION_FAILED',
      `--activation must be one of ${STUDENT_ACTIVATIONS.join(', ')}, got ${activation}`,
    );
  }
  const student: StudentSpec = {
    hidden: parseHidden(opts.hidden ?? '32'),
    activation: activation as StudentActivation,
  };
  const crop = num('crop', opts.crop);
  if (crop !== undefined) student.crop = crop;
  const pool = num('pool', opts.pool);
  if (pool !== undefined) student.pool = pool;
  const dropout = num('dropout', opts.dropout);
  if (dropout !== undefined) student.dropout = dropout;
  if (opts.batchNorm) student.batchNorm = true;
  const copies = num('augment', opts.augment) ?? 0;
  const common = {
    student,
    epochs: num('epochs', opts.epochs),
    batchSize: num('batch-size', opts.batchSize),
    learningRate: num('learning-rate', opts.learningRate),
    seed: num('seed', opts.seed),
    augment: copies > 0 ? { copies } : undefined,
  };
  const temperature = num('temperature', opts.temperature);
  const alpha = num('alpha', opts.alpha);

  const teacher = await readModelBytes(teacherPath);
  const train = await loadMnistU8(opts.train, opts.trainLabels);
  const evalSet: Dataset | undefined =
    opts.evalImages && opts.evalLabels ? await loadMnistU8(opts.evalImages, opts.evalLabels) : undefined;

  // One bar per run; its total follows the phase (teacher samples, then training steps).
  const withBar = async <T>(label: string, f: (cb: (d: number, t: number) => void) => Promise<T>) => {
    const bar = progress(label, 1);
    try {
      return await f((d, t) => bar.update(d, t));
    } finally {
      bar.stop();
    }
  };
  const distilled: DistillResult = await withBar('distilling', (onProgress) =>
    distill({ ...common, teacher, train, temperature, alpha, onProgress }),
  );
  distilled.tfModel.dispose();
  let alone: DistillResult | undefined;
  if (opts.compareAlone) {
    alone = await withBar('student alone', (onProgress) =>
      trainStudentAlone({
        ...common,
        train,
        inputShape: distilled.report.student.inputShape,
        classes: distilled.report.teacher?.classes,
        inputName: distilled.student.graph?.input?.[0]?.name ?? undefined,
        outputName: distilled.student.graph?.output?.[0]?.name ?? undefined,
        onProgress,
      }),
    );
    alone.tfModel.dispose();
  }
  const accuracy = async (bytes: Uint8Array) => (evalSet ? (await evaluate(bytes, evalSet)).accuracy : null);
  const studentBytes = encodeModel(distilled.student);
  const rows: Row[] = [
    {
      model: 'teacher',
      parameters: distilled.report.teacher?.parameters ?? 0,
      bytes: teacher.length,
      trainSeconds: null,
      evalAccuracy: await accuracy(teacher),
    },
    {
      model: 'student (distilled)',
      parameters: distilled.report.student.parameters,
      bytes: studentBytes.length,
      trainSeconds: distilled.report.trainMs / 1000,
      evalAccuracy: await accuracy(studentBytes),
    },
  ];
  if (alone) {
    const aloneBytes = encodeModel(alone.student);
    rows.push({
      model: 'student alone',
      parameters: alone.report.student.parameters,
      bytes: aloneBytes.length,
      trainSeconds: alone.report.trainMs / 1000,
      evalAccuracy: await accuracy(aloneBytes),
    });
  }
  const [t, d, a] = rows;
  const gapRecovered =
    t?.evalAccuracy != null &&
    d?.evalAccuracy != null &&
    a?.evalAccuracy != null &&
    t.evalAccuracy !== a.evalAccuracy
      ? (d.evalAccuracy - a.evalAccuracy) / (t.evalAccuracy - a.evalAccuracy)
      : null;

  await writeModelFile(opts.output, distilled.student);

  if (opts.json) {
    const { history, report } = distilled;
    process.stdout.write(
      `${JSON.stringify({ output: opts.output, models: rows, gapRecovered, report, history, aloneHistory: alone?.history ?? null }, null, 2)}\n`,
    );
    return;
  }
  const pct = (v: number | null) => (v === null ? '—' : `${(v * 100).toFixed(2)} %`);
  const text = table(
    rows.map((r) => [
      r.model,
      r.parameters.toLocaleString('en-US'),
      fmtBytes(r.bytes),
      pct(r.evalAccuracy),
      r.trainSeconds === null ? '—' : `${r.trainSeconds.toFixed(1)} s`,
    ]),
    ['model', 'params', 'size', evalSet ? `eval acc (${evalSet.n})` : 'eval acc', 'train time'],
  );
  const r = distilled.report;
  process.stdout.write(
    `${text}\n\nsize ratio teacher/student ${(r.sizeRatio ?? 0).toFixed(2)}×, parameters ${(r.parameterRatio ?? 0).toFixed(2)}×` +
      `; teacher agrees with ${pct(r.teacher?.trainAccuracy ?? null)} of the training labels` +
      `\nT = ${r.temperature}, α = ${r.alpha}, ${r.epochs} epochs on ${r.transferSet.total} samples ` +
      `(${r.transferSet.augmented} augmented), seed ${r.seed}` +
      (gapRecovered === null
        ? ''
        : `\naccuracy gap recovered by distillation: ${(gapRecovered * 100).toFixed(1)} %`) +
      `\nwrote ${opts.output}\n`,
  );
}
