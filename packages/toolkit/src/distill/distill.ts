import type * as tf from '@tensorflow/tfjs';
import { OutpostError } from '@outpost/protocol';
import type { Dataset } from '../datasets/index.ts';
import { encodeModel } from '../onnx/index.ts';
import type { ModelProto } from '../onnx/index.ts';
import { exportLayersModel } from '../tfjs-export/index.ts';
import { augmentImages } from './augment.ts';
import type { AugmentOptions } from './augment.ts';
import { buildStudent, useWasmBackend, validateStudentSpec } from './student.ts';
import type { StudentSpec } from './student.ts';
import { computeTeacherLogits, floatParameters } from './teacher.ts';
import { trainStudent } from './train.ts';
import type { EpochStats } from './train.ts';

/** What a student run shares, distilled or alone. */
export interface StudentTrainingOptions {
  /** Labelled training set (inputs scaled as the teacher expects them, e.g. pixel / 255). */
  train: Dataset;
  student: StudentSpec;
  /** Passes over the transfer set (default 20). */
  epochs?: number;
  /** Samples per optimisation step (default 64). */
  batchSize?: number;
  /** Adam's initial learning rate (default 0.002). */
  learningRate?: number;
  /** Learning-rate schedule (default `cosine`). */
  schedule?: 'cosine' | 'constant';
  /** Seeds the initial weights, the augmentation, the batch order and dropout (default 1). */
  seed?: number;
  /** Augmented copies of the training inputs added to the transfer set (default: none). */
  augment?: AugmentOptions;
  /** Name of the student's ONNX input (default: the teacher's, or `input`). */
  inputName?: string;
  /** Name of the student's ONNX output (default: the teacher's, or `logits`). */
  outputName?: string;
  /** Progress per phase: `teacher` (samples labelled) then `train` (optimisation steps). */
  onProgress?: (done: number, total: number, label?: string) => void;
}

export interface DistillOptions extends StudentTrainingOptions {
  /** Any ONNX classifier with one float input and a [N, classes] output. */
  teacher: ModelProto | Uint8Array;
  /** Softmax temperature T of the soft targets (default 4). */
  temperature?: number;
  /** Weight α of the soft (teacher) loss; 1 − α goes to the hard labels (default 0.7). */
  alpha?: number;
  /** Samples per teacher inference call (default 256). */
  teacherBatchSize?: number;
  /** onnxruntime-node threads for the teacher (default 1). */
  teacherThreads?: number;
}

export interface StudentAloneOptions extends StudentTrainingOptions {
  /** Per-sample input dims of the student (default: [features]; pass the teacher's to compare like for like). */
  inputShape?: number[];
  /** Number of classes (default: largest label + 1). */
  classes?: number;
}

export interface DistillReport {
  mode: 'distilled' | 'alone';
  teacher?: {
    parameters: number;
    bytes: number;
    classes: number;
    outputKind: 'logits' | 'probabilities';
    /** Top-1 agreement of the teacher with the labels of the (un-augmented) training set. */
    trainAccuracy: number;
    ms: number;
  };
  student: { parameters: number; bytes: number; spec: StudentSpec; inputShape: number[] };
  /** Teacher parameters / student parameters (distillation only). */
  parameterRatio?: number;
  /** Teacher file size / student file size (distillation only). */
  sizeRatio?: number;
  transferSet: { labelled: number; augmented: number; total: number };
  temperature?: number;
  alpha?: number;
  epochs: number;
  batchSize: number;
  learningRate: number;
  schedule: 'cosine' | 'constant';
  seed: number;
  augment?: AugmentOptions;
  trainMs: number;
}

export interface DistillResult {
  /** The trained student exported to ONNX (opset 17, symbolic batch). */
  student: ModelProto;
  /** The trained tfjs model, e.g. to keep training or to save in tfjs format. */
  tfModel: tf.Sequential;
  history: EpochStats[];
  report: DistillReport;
}

function invalid(message: string): OutpostError {
  return new OutpostError('VALIDATION_FAILED', message);
}

interface Schedule {
  epochs: number;
  batchSize: number;
  learningRate: number;
  schedule: 'cosine' | 'constant';
  seed: number;
}

function checkCommon(opts: StudentTrainingOptions): { features: number } & Schedule {
  const { train } = opts;
  if (!train || !Number.isInteger(train.n) || train.n <= 0) {
    throw invalid(`the training set is empty (n = ${train?.n})`);
  }
  if (train.x.length % train.n !== 0 || train.x.length === 0) {
    throw invalid(`training set: ${train.x.length} values do not split into ${train.n} samples`);
  }
  if (train.y.length < train.n)
    throw invalid(`training set: ${train.y.length} labels for ${train.n} samples`);
  validateStudentSpec(opts.student);
  const s: Schedule = {
    epochs: opts.epochs ?? 20,
    batchSize: opts.batchSize ?? 64,
    learningRate: opts.learningRate ?? 0.002,
    schedule: opts.schedule ?? 'cosine',
    seed: opts.seed ?? 1,
  };
  if (!Number.isInteger(s.epochs) || s.epochs < 1)
    throw invalid(`epochs must be a positive integer, got ${s.epochs}`);
  if (!Number.isInteger(s.batchSize) || s.batchSize < 1) {
    throw invalid(`batchSize must be a positive integer, got ${s.batchSize}`);
  }
  if (!Number.isFinite(s.learningRate) || s.learningRate <= 0) {
    throw invalid(`learningRate must be > 0, got ${s.learningRate}`);
  }
  if (s.schedule !== 'cosine' && s.schedule !== 'constant')
    throw invalid(`unknown schedule ${String(s.schedule)}`);
  if (!Number.isInteger(s.seed) || s.seed < 0)
    throw invalid(`seed must be a non-negative integer, got ${s.seed}`);
  return { features: train.x.length / train.n, ...s };
}

function checkLabels(y: Uint8Array, n: number, classes: number): void {
  for (let i = 0; i < n; i++) {
    const label = y[i] as number;
    if (label >= classes) {
      throw invalid(`label ${label} at index ${i} is out of range for ${classes} classes`);
    }
  }
}

/** The transfer set: the labelled inputs followed by their augmented copies (which keep the labels). */
function transferSet(
  train: Dataset,
  augment: AugmentOptions | undefined,
  seed: number,
  sampleShape: number[],
): { x: Float32Array; labels: Uint8Array; n: number; augmented: number } {
  const { n } = train;
  const features = train.x.length / n;
  const copies = augment?.copies ?? 0;
  const base = train.x.subarray(0, n * features);
  if (!augment || copies === 0) return { x: base, labels: train.y.subarray(0, n), n, augmented: 0 };
  const extra = augmentImages(base, n, augment, seed ^ 0x5eed, sampleShape);
  const x = new Float32Array((n + n * copies) * features);
  x.set(base);
  x.set(extra, n * features);
  const labels = new Uint8Array(n + n * copies);
  labels.set(train.y.subarray(0, n));
  for (let i = 0; i < n; i++) labels.fill(train.y[i] as number, n + i * copies, n + (i + 1) * copies);
  return { x, labels, n: n + n * copies, augmented: n * copies };
}

function topOneAgreement(logits: Float32Array, labels: Uint8Array, n: number, classes: number): number {
  let correct = 0;
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let k = 1; k < classes; k++) {
      if ((logits[i * classes + k] ?? -Infinity) > (logits[i * classes + best] ?? -Infinity)) best = k;
    }
    if (best === labels[i]) correct++;
  }
  return correct / n;
}

/**
 * Knowledge distillation: trains a small Dense MLP student (tfjs, WASM backend) to match an ONNX
 * teacher's softened outputs on a transfer set (the training inputs, plus seeded augmented copies when
 * `augment` is given), mixed with the hard labels, and exports it to ONNX with the teacher's input
 * layout and names so it is a drop-in replacement. The teacher runs once over the transfer set
 * (onnxruntime-node, batched). Runs are deterministic for a given seed.
 *
 * Errors: empty or inconsistent data, bad hyper-parameters, labels ≥ classes → VALIDATION_FAILED;
 * a teacher whose output is not [N, classes] or that ORT cannot load → ONNX_UNSUPPORTED; an input
 * shape that cannot hold the samples → TENSOR_SHAPE_MISMATCH.
 *
 * @example
 * const train = await loadMnistU8('mnist-train-x.u8', 'mnist-train-y.u8');
 * const { student, report } = await distill({
 *   teacher: await readFile('mnist_cnn.onnx'), train, student: { hidden: [24] },
 *   temperature: 4, alpha: 0.7, epochs: 20, augment: { copies: 2 },
 * });
 * await writeModelFile('student.onnx', student);
 */
export async function distill(opts: DistillOptions): Promise<DistillResult> {
  const common = checkCommon(opts);
  const temperature = opts.temperature ?? 4;
  const alpha = opts.alpha ?? 0.7;
  if (!Number.isFinite(temperature) || temperature <= 0)
    throw invalid(`temperature must be > 0, got ${temperature}`);
  if (!Number.isFinite(alpha) || alpha < 0 || alpha > 1)
    throw invalid(`alpha must be in [0, 1], got ${alpha}`);
  const teacherBytes = opts.teacher instanceof Uint8Array ? opts.teacher : encodeModel(opts.teacher);
  const { train } = opts;

  // The teacher's input layout is needed before augmenting (image dims), so resolve it on the
  // labelled set first; the augmented copies are then labelled in a second call.
  const base = await computeTeacherLogits(
    teacherBytes,
    train.x.subarray(0, train.n * common.features),
    train.n,
    {
      batchSize: opts.teacherBatchSize,
      threads: opts.teacherThreads,
      onProgress: (d, t) => opts.onProgress?.(d, t, 'teacher'),
    },
  );
  checkLabels(train.y, train.n, base.classes);
  const set = transferSet(train, opts.augment, common.seed, base.sampleShape);
  let logits = base.logits;
  let teacherMs = base.ms;
  if (set.augmented > 0) {
    const extra = await computeTeacherLogits(
      teacherBytes,
      set.x.subarray(train.n * common.features),
      set.augmented,
      {
        batchSize: opts.teacherBatchSize,
        threads: opts.teacherThreads,
        onProgress: (d, t) => opts.onProgress?.(train.n + d, train.n + t, 'teacher'),
      },
    );
    logits = new Float32Array(set.n * base.classes);
    logits.set(base.logits);
    logits.set(extra.logits, train.n * base.classes);
    teacherMs += extra.ms;
  }

  const result = await trainAndExport(opts, common, {
    x: set.x,
    n: set.n,
    labels: set.labels,
    teacherLogits: logits,
    classes: base.classes,
    sampleShape: base.sampleShape,
    temperature,
    alpha,
    inputName: opts.inputName ?? base.inputName,
    outputName: opts.outputName ?? base.outputName,
  });
  const report = result.report;
  report.mode = 'distilled';
  report.teacher = {
    parameters: base.parameters,
    bytes: teacherBytes.length,
    classes: base.classes,
    outputKind: base.outputKind,
    trainAccuracy: topOneAgreement(base.logits, train.y, train.n, base.classes),
    ms: teacherMs,
  };
  report.parameterRatio = base.parameters / report.student.parameters;
  report.sizeRatio = teacherBytes.length / report.student.bytes;
  report.transferSet = { labelled: train.n, augmented: set.augmented, total: set.n };
  report.temperature = temperature;
  report.alpha = alpha;
  return result;
}

/**
 * The baseline for {@link distill}: the same student, data (including the same augmented copies,
 * with their original hard labels), schedule and seed, trained on the labels alone.
 *
 * @example
 * const alone = await trainStudentAlone({ train, student: { hidden: [24] }, inputShape: [1, 28, 28], epochs: 20 });
 * const acc = (await evaluate(encodeModel(alone.student), evalSet)).accuracy;
 */
export async function trainStudentAlone(opts: StudentAloneOptions): Promise<DistillResult> {
  const common = checkCommon(opts);
  const { train } = opts;
  const inputShape = opts.inputShape ?? [common.features];
  if (
    !inputShape.every((d) => Number.isInteger(d) && d > 0) ||
    inputShape.reduce((a, b) => a * b, 1) !== common.features
  ) {
    throw new OutpostError(
      'TENSOR_SHAPE_MISMATCH',
      `inputShape [${inputShape.join(', ')}] does not hold ${common.features} values per sample`,
    );
  }
  let maxLabel = 0;
  for (let i = 0; i < train.n; i++) maxLabel = Math.max(maxLabel, train.y[i] as number);
  const classes = opts.classes ?? Math.max(2, maxLabel + 1);
  if (!Number.isInteger(classes) || classes < 2)
    throw invalid(`classes must be an integer ≥ 2, got ${classes}`);
  checkLabels(train.y, train.n, classes);
  const set = transferSet(train, opts.augment, common.seed, inputShape);
  const result = await trainAndExport(opts, common, {
    x: set.x,
    n: set.n,
    labels: set.labels,
    teacherLogits: null,
    classes,
    sampleShape: inputShape,
    temperature: 1,
    alpha: 0,
    inputName: opts.inputName ?? 'input',
    outputName: opts.outputName ?? 'logits',
  });
  result.report.transferSet = { labelled: train.n, augmented: set.augmented, total: set.n };
  return result;
}

async function trainAndExport(
  opts: StudentTrainingOptions,
  s: Schedule,
  d: {
    x: Float32Array;
    n: number;
    labels: Uint8Array;
    teacherLogits: Float32Array | null;
    classes: number;
    sampleShape: number[];
    temperature: number;
    alpha: number;
    inputName: string;
    outputName: string;
  },
): Promise<DistillResult> {
  await useWasmBackend();
  const tfModel = buildStudent(opts.student, d.sampleShape, d.classes, s.seed);
  try {
    const t0 = performance.now();
    const history = await trainStudent(tfModel, d, {
      ...s,
      temperature: d.temperature,
      alpha: d.alpha,
      onStep: (done, total) => opts.onProgress?.(done, total, 'train'),
    });
    const trainMs = performance.now() - t0;
    const last = history[history.length - 1];
    if (!last || !Number.isFinite(last.loss)) {
      throw invalid(`training diverged (loss ${last?.loss}); lower the learning rate`);
    }
    const student = exportLayersModel(tfModel, {
      inputName: d.inputName,
      outputName: d.outputName,
      docString: `Outpost student ${JSON.stringify(opts.student)}, seed ${s.seed}`,
    });
    const bytes = encodeModel(student);
    const report: DistillReport = {
      mode: 'alone',
      student: {
        parameters: floatParameters(student),
        bytes: bytes.length,
        spec: opts.student,
        inputShape: d.sampleShape,
      },
      transferSet: { labelled: d.n, augmented: 0, total: d.n },
      epochs: s.epochs,
      batchSize: s.batchSize,
      learningRate: s.learningRate,
      schedule: s.schedule,
      seed: s.seed,
      trainMs,
    };
    if (opts.augment) report.augment = opts.augment;
    return { student, tfModel, history, report };
  } catch (err) {
    tfModel.dispose();
    throw err;
  }
}
