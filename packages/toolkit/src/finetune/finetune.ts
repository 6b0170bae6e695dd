import type * as TF from '@tensorflow/tfjs';
import { OutpostError } from '@outpost/protocol';
import {
  DataType,
  encodeModel,
  int64ToNumber,
  makeTensor,
  tensorDims,
  tensorToFloat32,
} from '../onnx/index.ts';
import type { DecodedModel, ModelProto, NodeProto, TensorProto } from '../onnx/index.ts';
import type { Dataset } from '../datasets/index.ts';
import { mulberry32 } from '../bench/index.ts';
import { ort } from '../runtime/index.ts';
import { runProgram, unsupportedOps } from './tfgraph.ts';
import type { Program, Tf } from './tfgraph.ts';

/**
 * Fine-tuning of an ONNX classifier in TensorFlow.js — the training path Outpost has without Python —
 * used to recover the accuracy lost to structured pruning. The graph is translated op by op (tfgraph.ts),
 * Conv/Gemm/MatMul weights and biases become variables initialised from the ONNX initializers, Adam
 * minimises softmax cross-entropy on the training set, and the trained values are written back into the
 * same initializers: the graph itself is unchanged, so ONNX Runtime runs the result like the input.
 *
 * Two modes:
 * - `full` (default): every Conv/Gemm/MatMul weight trains. Convolutions run as im2col + matMul on the
 *   WASM backend, which has no Conv2D weight gradient of its own (see tfgraph.ts).
 * - `head`: only the classifier after the conv trunk (from the first Gemm/MatMul on) trains; the trunk's
 *   features are computed once with onnxruntime-node. Roughly 10× faster per epoch, but it cannot repair
 *   the trunk, so it recovers less after filter pruning.
 * The default was chosen on a validation split carved from the training set (train on the first 6,756 of
 * the 7,756 train digits, score the last 1,000; the eval split was not used), 50 %-filter-pruned MNIST CNN
 * at 77.2 % before tuning, 2 shared cores: `full` 3 epochs, lr 5e-4 → 98.9 % in 55 s; `full` 2 epochs,
 * lr 1e-3 → 98.6 % in 34 s; `head` 8 epochs, lr 1e-3 → 98.6 % in 12 s; `head` 15 epochs → 98.3 % in 22 s
 * (more head epochs overfit the frozen trunk's features). So `full`, 3 epochs, lr 5e-4 is the default;
 * `head` is the quick option. The gaps are a few digits in 1,000 — `bench/prune.ts` reports both modes
 * on the eval split.
 *
 * BatchNormalization runs with its running statistics, frozen; Dropout is the identity (the exported
 * graph's inference semantics). Deterministic: the only randomness is the seeded batch order.
 */

export interface FinetuneOptions {
  /** Passes over the training set (default 3). */
  epochs?: number;
  /** Samples per Adam step (default 64). */
  batchSize?: number;
  /** Adam learning rate (default 5e-4: small, the weights start trained). */
  learningRate?: number;
  /** Seed of the batch order (default 1). */
  seed?: number;
  /** Train every layer (default) or only the classifier head. */
  mode?: 'full' | 'head';
  /** Which graph input to feed, when there are several. */
  inputName?: string;
  /** Called after every step: `done` of `total` steps. */
  onProgress?: (done: number, total: number, label?: string) => void;
}

export interface FinetuneEpoch {
  epoch: number;
  /** Mean cross-entropy over the epoch's batches. */
  loss: number;
  /** Training accuracy over the epoch (weights changing as it goes). */
  accuracy: number;
  seconds: number;
}

export interface FinetuneResult {
  model: ModelProto;
  history: FinetuneEpoch[];
  mode: 'full' | 'head';
  /** tfjs backend that ran the training. */
  backend: string;
  /** Initializers that were trained and written back. */
  trained: string[];
}

const TRAINABLE_OPS = new Set(['Conv', 'Gemm', 'MatMul']);

function positiveInt(v: unknown, what: string, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) {
    throw new OutpostError(
      'VALIDATION_FAILED',
      `${what} must be an integer in [1, ${max}], got ${String(v)}`,
    );
  }
  return v;
}

/** Nodes that `target` depends on, in graph order, not looking past `stop`. */
function ancestors(nodes: NodeProto[], target: string, stop: string): NodeProto[] {
  const producer = new Map<string, NodeProto>();
  for (const n of nodes) for (const o of n.output ?? []) if (o) producer.set(o, n);
  const needed = new Set<NodeProto>();
  const stack = [target];
  const seen = new Set<string>();
  while (stack.length) {
    const v = stack.pop() as string;
    if (seen.has(v) || v === stop) continue;
    seen.add(v);
    const n = producer.get(v);
    if (!n || needed.has(n)) continue;
    needed.add(n);
    for (const i of n.input ?? []) if (i) stack.push(i);
  }
  return nodes.filter((n) => needed.has(n));
}

/** Runs `model` in onnxruntime-node with `outputs` as its graph outputs, over `count` samples of `x`. */
async function ortOutputs(
  model: DecodedModel,
  input: string,
  outputs: string[],
  x: Float32Array,
  sampleShape: number[],
  count: number,
): Promise<{ data: Float32Array; dims: number[] }[]> {
  const bytes = encodeModel({
    ...model,
    graph: { ...model.graph, output: outputs.map((name) => ({ name })) },
  });
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, logSeverityLevel: 3 });
  const per = sampleShape.reduce((a, b) => a * b, 1);
  const parts: Float32Array[][] = outputs.map(() => []);
  const dims: number[][] = outputs.map(() => []);
  try {
    for (let s = 0; s < count; s += 256) {
      const b = Math.min(256, count - s);
      const feed = new ort.Tensor('float32', x.slice(s * per, (s + b) * per), [b, ...sampleShape]);
      const out = await session.run({ [input]: feed });
      outputs.forEach((name, k) => {
        const t = out[name] as ort.Tensor;
        parts[k]?.push(t.data as Float32Array);
        dims[k] = [...t.dims.slice(1)];
      });
    }
  } finally {
    await session.release();
  }
  return parts.map((p, k) => {
    const data = new Float32Array(p.reduce((a, c) => a + c.length, 0));
    let o = 0;
    for (const c of p) {
      data.set(c, o);
      o += c.length;
    }
    return { data, dims: dims[k] ?? [] };
  });
}

async function loadTf(): Promise<Tf> {
  const tf = await import('@tensorflow/tfjs');
  await import('@tensorflow/tfjs-backend-wasm');
  return tf;
}

/**
 * Fine-tunes a classifier's weights on a labelled dataset and returns the model with the trained
 * weights written back (the input model is not modified).
 *
 * @example
 * const train = await loadMnistU8('mnist-train-x.u8', 'mnist-train-y.u8');
 * const { model: tuned, history } = await finetune(pruned.model, train, { epochs: 3 });
 */
export async function finetune(
  model: ModelProto,
  trainData: Dataset,
  opts: FinetuneOptions = {},
): Promise<FinetuneResult> {
  if (!model || typeof model !== 'object' || !model.graph) {
    throw new OutpostError('ONNX_PARSE_FAILED', 'not an ONNX model: it has no graph');
  }
  const m = model as DecodedModel;
  const epochs = positiveInt(opts.epochs ?? 3, 'epochs', 1000);
  const batchSize = positiveInt(opts.batchSize ?? 64, 'batchSize', 65536);
  const lr = opts.learningRate ?? 5e-4;
  if (typeof lr !== 'number' || !Number.isFinite(lr) || lr <= 0) {
    throw new OutpostError('VALIDATION_FAILED', `learningRate must be a positive number, got ${String(lr)}`);
  }
  const seed = opts.seed ?? 1;
  if (!Number.isInteger(seed))
    throw new OutpostError('VALIDATION_FAILED', `seed must be an integer, got ${seed}`);
  const mode = opts.mode ?? 'full';
  if (mode !== 'full' && mode !== 'head') {
    throw new OutpostError('VALIDATION_FAILED', `mode must be 'full' or 'head', got ${String(mode)}`);
  }
  const { x, y, n } = trainData ?? {};
  if (
    !Number.isInteger(n) ||
    n < 1 ||
    !(x instanceof Float32Array) ||
    x.length % n !== 0 ||
    !(y instanceof Uint8Array) ||
    y.length < n
  ) {
    throw new OutpostError('VALIDATION_FAILED', 'the training set is empty or its x/y sizes disagree');
  }

  // --- the graph: input, logits, nodes to run, weights to train
  const g = m.graph;
  const inits = new Map<string, TensorProto>();
  for (const t of g.initializer ?? []) if (t.name) inits.set(t.name, t);
  const realInputs = (g.input ?? []).filter((vi) => !inits.has(vi.name ?? ''));
  const inputVi = opts.inputName ? realInputs.find((vi) => vi.name === opts.inputName) : realInputs[0];
  if (!inputVi?.name || (!opts.inputName && realInputs.length !== 1)) {
    throw new OutpostError(
      'TENSOR_SHAPE_MISMATCH',
      'say which input to feed (inputName); the model has several or none',
    );
  }
  const tt = inputVi.type?.tensor_type;
  if ((tt?.elem_type ?? 0) !== DataType.FLOAT)
    throw new OutpostError('ONNX_UNSUPPORTED', 'fine-tuning feeds float32 inputs');
  const features = x.length / n;
  const sampleShape = (tt?.shape?.dim ?? []).slice(1).map((d) => int64ToNumber(d.dim_value));
  if (sampleShape.some((d) => d <= 0) || sampleShape.reduce((a, b) => a * b, 1) !== features) {
    throw new OutpostError(
      'TENSOR_SHAPE_MISMATCH',
      `input ${inputVi.name} [${sampleShape}] does not hold ${features} values per sample`,
    );
  }
  const nodes = g.node ?? [];
  const outName = g.output?.[0]?.name ?? '';
  const last = nodes.find((nd) => nd.output?.[0] === outName);
  const logits =
    last && (last.op_type === 'Softmax' || last.op_type === 'LogSoftmax') ? (last.input?.[0] ?? '') : outName;
  const full = ancestors(nodes, logits, inputVi.name);
  const trainableIn = (list: NodeProto[]) => {
    const names: string[] = [];
    for (const nd of list) {
      if (!TRAINABLE_OPS.has(nd.op_type ?? '') || nd.domain) continue;
      for (const i of nd.op_type === 'MatMul' ? (nd.input ?? []) : (nd.input ?? []).slice(1)) {
        const t = inits.get(i);
        const overridable = (g.input ?? []).some((vi) => vi.name === i) && int64ToNumber(m.ir_version) >= 4;
        if (t && t.data_type === DataType.FLOAT && !overridable && !names.includes(i)) names.push(i);
      }
    }
    return names;
  };
  let program: Program = { nodes: full, input: inputVi.name, logits, initializers: inits };
  if (mode === 'head') {
    const first = full.find(
      (nd) => (nd.op_type === 'Gemm' || nd.op_type === 'MatMul') && trainableIn([nd]).length > 0,
    );
    const feature = first?.input?.[0];
    if (!feature) throw new OutpostError('ONNX_UNSUPPORTED', 'head mode needs a Gemm/MatMul classifier');
    const head = ancestors(nodes, logits, feature);
    const produced = new Set([feature, ...inits.keys(), ...head.flatMap((nd) => nd.output ?? [])]);
    if (head.some((nd) => (nd.input ?? []).some((i) => i && !produced.has(i)))) {
      throw new OutpostError(
        'ONNX_UNSUPPORTED',
        `the classifier after ${feature} also reads the trunk; use mode 'full'`,
      );
    }
    program = { nodes: head, input: feature, logits, initializers: inits };
  }
  const bad = unsupportedOps(program.nodes);
  if (bad.length) throw new OutpostError('ONNX_UNSUPPORTED', `fine-tuning cannot run ops: ${bad.join(', ')}`);
  const trained = trainableIn(program.nodes);
  if (trained.length === 0)
    throw new OutpostError('ONNX_UNSUPPORTED', 'the model has no float Conv/Gemm/MatMul weights to train');

  // --- ONNX Runtime: the head's input features, and reference logits for the translation check
  const checkCount = Math.min(16, n);
  let data = x;
  let dataShape = sampleShape;
  let reference: Float32Array;
  let classes: number;
  if (mode === 'head') {
    const [feat, ref] = await ortOutputs(m, inputVi.name, [program.input, logits], x, sampleShape, n);
    data = (feat as { data: Float32Array }).data;
    dataShape = (feat as { dims: number[] }).dims;
    reference = (ref as { data: Float32Array }).data.subarray(0, checkCount * (ref?.dims[0] ?? 0));
    classes = ref?.dims[0] ?? 0;
  } else {
    const [ref] = await ortOutputs(m, inputVi.name, [logits], x, sampleShape, checkCount);
    reference = (ref as { data: Float32Array }).data;
    classes = ref?.dims[0] ?? 0;
  }
  if (classes < 2)
    throw new OutpostError('ONNX_UNSUPPORTED', `the output ${logits} is not a [N, classes] score vector`);
  const badLabel = y.subarray(0, n).findIndex((v) => v >= classes);
  if (badLabel >= 0) {
    throw new OutpostError('VALIDATION_FAILED', `label ${y[badLabel]} at ${badLabel} ≥ ${classes} classes`);
  }
  const per = dataShape.reduce((a, b) => a * b, 1);

  const tf = await loadTf();
  const previous = tf.getBackend();
  const backend = (await tf.setBackend('wasm')) ? 'wasm' : (await tf.setBackend('cpu'), 'cpu');
  const consts = new Map<string, TF.Tensor>();
  const constant = (name: string) => {
    let c = consts.get(name);
    if (!c) {
      const t = inits.get(name) as TensorProto;
      c = tf.keep(tf.tensor(tensorToFloat32(t), tensorDims(t)));
      consts.set(name, c);
    }
    return c;
  };
  const params = new Map<string, TF.Variable>();
  for (const name of trained) {
    const t = inits.get(name) as TensorProto;
    const init = tf.tensor(tensorToFloat32(t), tensorDims(t));
    params.set(name, tf.variable(init, true));
    init.dispose();
  }
  const optimizer = tf.train.adam(lr);
  try {
    // The translation must agree with ONNX Runtime before any weight moves.
    const got = tf.tidy(() =>
      runProgram(
        tf,
        program,
        tf.tensor(data.slice(0, checkCount * per), [checkCount, ...dataShape]),
        params,
        constant,
      ).dataSync(),
    );
    let worst = got.length === reference.length ? 0 : Infinity;
    let scale = 1;
    reference.forEach((r, i) => {
      const d = Math.abs(r - (got[i] ?? NaN));
      worst = Number.isNaN(d) ? Infinity : Math.max(worst, d);
      scale = Math.max(scale, Math.abs(r));
    });
    if (!(worst <= 1e-3 * scale)) {
      throw new OutpostError(
        'ONNX_UNSUPPORTED',
        `the tfjs translation disagrees with ONNX Runtime (max |Δ| ${worst})`,
      );
    }

    const steps = Math.ceil(n / batchSize);
    const history: FinetuneEpoch[] = [];
    const xb = new Float32Array(batchSize * per);
    const yb = new Int32Array(batchSize);
    for (let e = 0; e < epochs; e++) {
      const t0 = performance.now();
      const order = permutation(n, seed * 1000003 + e);
      let lossSum = 0;
      let correct = 0;
      for (let s = 0; s < steps; s++) {
        const count = Math.min(batchSize, n - s * batchSize);
        for (let i = 0; i < count; i++) {
          const k = order[s * batchSize + i] as number;
          xb.set(data.subarray(k * per, (k + 1) * per), i * per);
          yb[i] = y[k] as number;
        }
        let predicted: TF.Tensor | undefined;
        const loss = tf.tidy(() => {
          const xs = tf.tensor(xb.subarray(0, count * per), [count, ...dataShape]);
          const labels = tf.tensor1d(yb.subarray(0, count), 'int32');
          const onehot = tf.oneHot(labels, classes);
          return optimizer.minimize(() => {
            const out = runProgram(tf, program, xs, params, constant);
            predicted = tf.keep(tf.argMax(out, -1));
            return tf.losses.softmaxCrossEntropy(onehot, out) as TF.Scalar;
          }, true) as TF.Scalar;
        });
        lossSum += (await loss.data())[0] ?? 0;
        loss.dispose();
        const p = (await predicted?.data()) ?? new Int32Array();
        predicted?.dispose();
        for (let i = 0; i < count; i++) if (p[i] === yb[i]) correct++;
        opts.onProgress?.(e * steps + s + 1, epochs * steps, `epoch ${e + 1}/${epochs}`);
      }
      history.push({
        epoch: e + 1,
        loss: lossSum / steps,
        accuracy: correct / n,
        seconds: (performance.now() - t0) / 1000,
      });
    }

    const replaced = new Map<string, TensorProto>();
    for (const [name, v] of params) {
      const values = new Float32Array(await v.data());
      const t = inits.get(name) as TensorProto;
      replaced.set(name, {
        ...makeTensor(name, values, tensorDims(t)),
        ...(t.doc_string ? { doc_string: t.doc_string } : {}),
      });
    }
    const out: DecodedModel = {
      ...m,
      graph: { ...g, initializer: (g.initializer ?? []).map((t) => replaced.get(t.name ?? '') ?? t) },
    };
    return { model: out, history, mode, backend, trained };
  } finally {
    optimizer.dispose();
    for (const v of params.values()) v.dispose();
    for (const c of consts.values()) c.dispose();
    if (previous && previous !== tf.getBackend()) await tf.setBackend(previous);
  }
}

/** Fisher–Yates with a seeded PRNG: the batch order depends on the seed and the epoch only. */
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
