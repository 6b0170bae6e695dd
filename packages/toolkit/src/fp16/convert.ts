import { OutpostError } from '@outpost/protocol';
import {
  AttributeType,
  DataType,
  attrInt,
  encodeModel,
  int64ToNumber,
  intAttr,
  subgraphsOf,
  tensorToFloat32,
  toLong,
} from '../onnx/index.ts';
import type { GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto } from '../onnx/index.ts';
import { collectNames, collectReferences, uniqueName } from '../quantize/graph.ts';
import { probeTensorTypes } from '../quantize-static/index.ts';
import { toFloat16Array } from './half.ts';

/**
 * float32 → float16 conversion in the manner of onnxconverter-common's `convert_float_to_float16`:
 * float initializers and Constant values are stored as float16 (with out-of-range values clamped and
 * counted), nodes that can run in float16 are switched to it, and Cast nodes are inserted wherever a
 * float16 tensor meets a node kept in float32 (and back), and at the graph's inputs/outputs when their
 * types are kept. Element types come from ONNX Runtime itself (`probeTensorTypes`), not from stale
 * value_info.
 *
 * What runs in float16 on ONNX Runtime's CPU provider is decided by measurement, not by a list of ops
 * that merely *accept* float16: ORT 1.30's CPU provider (x86) has float16 kernels only for the ops in
 * {@link ORT_CPU_FLOAT16_OPS} (data movement plus Max/Min/Clip/LayerNormalization/...); for every
 * other op (Conv, Gemm, MatMul, Relu, Add, pooling, ...) it silently inserts Casts to float32 around the
 * node. So by default (`cpuKernelsOnly`) compute stays in float32 and the conversion is a storage
 * format: half-size weights that ORT widens once at load (Casts of initializers are constant-folded).
 * A native op runs in float16 only where its float inputs already are float16, since anything else
 * would only add Casts. `cpuKernelsOnly: false` converts every op outside the block lists, for
 * providers with real float16 kernels (CUDA, DirectML, WebGPU, ARM builds with fp16 MLAS).
 */

/**
 * Ops with float16 kernels in ONNX Runtime 1.30's CPU provider (probed; see convert.test.ts).
 *
 * @example
 * ORT_CPU_FLOAT16_OPS.has('Conv') // false: ORT would run it in float32 between Casts
 */
export const ORT_CPU_FLOAT16_OPS: ReadonlySet<string> = new Set([
  'Identity',
  'Flatten',
  'Transpose',
  'Reshape',
  'Squeeze',
  'Unsqueeze',
  'Concat',
  'Split',
  'Slice',
  'Gather',
  'GatherElements',
  'ScatterElements',
  'Expand',
  'Shape',
  'Cast',
  'ConstantOfShape',
  'Max',
  'Min',
  'Clip',
  'Round',
  'Sign',
  'IsNaN',
  'LayerNormalization',
]);

/**
 * onnxconverter-common's DEFAULT_OP_BLOCK_LIST: ops it never converts (no float16 form in ONNX Runtime,
 * or numerically unsafe); applies with `cpuKernelsOnly: false`.
 *
 * @example
 * await convertFp16(model, { cpuKernelsOnly: false, blockList: [...DEFAULT_FP16_BLOCK_LIST, 'Softmax'] });
 */
export const DEFAULT_FP16_BLOCK_LIST: readonly string[] = [
  'ArrayFeatureExtractor',
  'Binarizer',
  'CastMap',
  'CategoryMapper',
  'DictVectorizer',
  'FeatureVectorizer',
  'Imputer',
  'LabelEncoder',
  'LinearClassifier',
  'LinearRegressor',
  'Normalizer',
  'OneHotEncoder',
  'RandomUniformLike',
  'SVMClassifier',
  'SVMRegressor',
  'Scaler',
  'TreeEnsembleClassifier',
  'TreeEnsembleRegressor',
  'ZipMap',
  'NonMaxSuppression',
  'TopK',
  'RoiAlign',
  'Resize',
  'Range',
  'CumSum',
  'Min',
  'Max',
  'Upsample',
];

/** Inputs that stay float32 even in a float16 node (the ONNX spec types them `tensor(float)`). */
const ALWAYS_FLOAT_INPUTS: Readonly<Record<string, readonly number[]>> = { Resize: [2], Upsample: [1] };

export interface ConvertFp16Options {
  /** Keep float32 graph inputs/outputs, with Casts behind/before them (default true). */
  keepIoTypes?: boolean;
  /** Op types to keep in float32, in addition to the defaults. */
  blockList?: string[];
  /** Node names to keep in float32. */
  nodeBlockList?: string[];
  /**
   * Only run ops in float16 that ORT's CPU provider has float16 kernels for (default true). When false,
   * every op outside {@link DEFAULT_FP16_BLOCK_LIST} and `blockList` is converted.
   */
  cpuKernelsOnly?: boolean;
  /** Called once per node. */
  onProgress?: (done: number, total: number, label?: string) => void;
}

export interface Fp16NodeRef {
  /** Node name, or its first output when unnamed. */
  node: string;
  op: string;
}

export interface Fp16Report {
  /** Nodes that run in float16 (Constant nodes: their value is stored in float16). */
  converted: Fp16NodeRef[];
  /** Nodes that handle float data but stay in float32, with the reason. */
  skipped: (Fp16NodeRef & { reason: string })[];
  /** Float initializers now stored as float16. */
  initializersConverted: number;
  /** Cast nodes inserted between float16 and float32 parts (and at the graph's inputs/outputs). */
  castsAdded: number;
  /** Values float16 cannot hold: beyond ±65504 (stored as ±65504) and non-zero below 2^-25 (as ±2^-24). */
  clamped: { overflow: number; underflow: number; tensors: string[] };
  sizeBefore: number;
  sizeAfter: number;
  settings: Record<string, string | number | boolean>;
}

export interface Fp16Result {
  model: ModelProto;
  report: Fp16Report;
}

type Precision = 'half' | 'single';

function label(n: NodeProto): string {
  return n.name || n.output?.[0] || n.op_type || '(node)';
}

function isAlwaysFloat(op: string, i: number): boolean {
  return ALWAYS_FLOAT_INPUTS[op]?.includes(i) ?? false;
}

function withElemType(vi: ValueInfoProto, elem: number): ValueInfoProto {
  const tt = vi.type?.tensor_type;
  if (!tt) return vi;
  return { ...vi, type: { ...vi.type, tensor_type: { ...tt, elem_type: elem } } };
}

/**
 * Converts a model's float32 weights (and, where the runtime can use it, compute) to float16; see the
 * module comment. The input model is not modified.
 *
 * Errors: no graph → ONNX_PARSE_FAILED; a model ONNX Runtime cannot load (needed to type its tensors)
 * → ONNX_UNSUPPORTED.
 *
 * @example
 * const { model, report } = await convertFp16(await readModelFile('mnist_cnn.onnx'));
 * await writeModelFile('mnist_cnn.fp16.onnx', model);
 * console.log(report.sizeAfter / report.sizeBefore, report.skipped);
 */
export async function convertFp16(model: ModelProto, opts: ConvertFp16Options = {}): Promise<Fp16Result> {
  const graph = model.graph;
  if (!graph) throw new OutpostError('ONNX_PARSE_FAILED', 'model has no graph');
  const keepIo = opts.keepIoTypes ?? true;
  const cpuOnly = opts.cpuKernelsOnly ?? true;
  // With cpuKernelsOnly the measured CPU list decides (it has e.g. Max and Min, which the generic list blocks).
  const blocked = new Set(DEFAULT_FP16_BLOCK_LIST);
  const nodeBlocked = new Set(opts.nodeBlockList ?? []);
  const sizeBefore = encodeModel(model).length;
  const types = await probeTensorTypes(model);

  const inits = new Map((graph.initializer ?? []).map((t) => [t.name ?? '', t]));
  const inputNames = new Set((graph.input ?? []).map((vi) => vi.name ?? ''));
  const outputNames = new Set((graph.output ?? []).map((vi) => vi.name ?? ''));
  const irVersion = int64ToNumber(model.ir_version);
  const isFloat = (t: string | undefined): t is string =>
    !!t && (inits.has(t) ? inits.get(t)?.data_type === DataType.FLOAT : types.get(t) === 'float32');
  // Values read inside If/Loop/Scan bodies: those subgraphs stay float32, so these must too.
  const subgraphReads = new Set<string>();
  for (const n of graph.node ?? []) for (const g of subgraphsOf(n)) collectReferences(g, subgraphReads);

  // 'half' tensors exist in float16 only; float initializers and Constant values are stored in float16
  // but can feed float32 nodes through a Cast that ORT folds at load, so they never force a node to fp32.
  const prec = new Map<string, Precision>();
  const storedHalf = new Set<string>();
  const alwaysFloatUse = new Set<string>();
  for (const n of graph.node ?? []) {
    (n.input ?? []).forEach((t, i) => {
      if (t && isAlwaysFloat(n.op_type ?? '', i)) alwaysFloatUse.add(t);
    });
  }
  for (const [name, t] of inits) {
    if (t.data_type !== DataType.FLOAT) continue;
    const overridable = irVersion >= 4 && inputNames.has(name);
    const keep = overridable || subgraphReads.has(name) || outputNames.has(name) || alwaysFloatUse.has(name);
    if (keep) prec.set(name, 'single');
    else storedHalf.add(name);
  }
  for (const vi of graph.input ?? []) {
    const name = vi.name ?? '';
    if (inits.has(name) || !isFloat(name)) continue;
    prec.set(name, keepIo || subgraphReads.has(name) ? 'single' : 'half');
  }
  const have = (t: string): Precision => (storedHalf.has(t) ? 'half' : (prec.get(t) ?? 'single'));

  const report: Fp16Report = {
    converted: [],
    skipped: [],
    initializersConverted: 0,
    castsAdded: 0,
    clamped: { overflow: 0, underflow: 0, tensors: [] },
    sizeBefore,
    sizeAfter: sizeBefore,
    settings: { keepIoTypes: keepIo, cpuKernelsOnly: cpuOnly, blockList: (opts.blockList ?? []).join(',') },
  };
  const nodePrec = new Map<NodeProto, Precision>();
  const total = graph.node?.length ?? 0;
  let done = 0;
  for (const n of graph.node ?? []) {
    opts.onProgress?.(++done, total, 'converting');
    const op = n.op_type ?? '';
    const ins = n.input ?? [];
    const floatIns = ins.filter((t, i) => isFloat(t) && !isAlwaysFloat(op, i));
    const floatOuts = (n.output ?? []).filter((o) => isFloat(o));
    if (
      op === 'Constant' &&
      !n.domain &&
      floatOuts.length > 0 &&
      !floatOuts.some((o) => subgraphReads.has(o))
    ) {
      for (const o of floatOuts) storedHalf.add(o);
      nodePrec.set(n, 'half');
      report.converted.push({ node: label(n), op });
      continue;
    }
    if (floatIns.length === 0 && floatOuts.length === 0) continue;
    let reason: string | undefined;
    if (subgraphsOf(n).length > 0) reason = 'control flow: its subgraphs stay float32';
    else if (n.domain && n.domain !== 'ai.onnx') reason = `custom-domain op ${n.domain}.${op}`;
    else if (n.name && nodeBlocked.has(n.name)) reason = 'in nodeBlockList';
    else if ((opts.blockList ?? []).includes(op)) reason = 'in blockList';
    else if (cpuOnly && !ORT_CPU_FLOAT16_OPS.has(op)) {
      reason = `ONNX Runtime's CPU provider has no float16 ${op} kernel (it would wrap it in Casts to float32)`;
    } else if (!cpuOnly && blocked.has(op)) {
      reason = `${op} is in onnxconverter-common's float16 block list`;
    } else if (floatIns.length === 0) {
      reason = 'makes float32 values from non-float inputs; its readers get a Cast';
    } else if (cpuOnly && floatIns.some((t) => have(t) === 'single')) {
      reason = 'its float inputs are float32 here; running it in float16 would only add Casts';
    } else if (floatOuts.some((o) => subgraphReads.has(o))) {
      reason = 'its output is read inside a subgraph, which stays float32';
    }
    const p: Precision = reason === undefined ? 'half' : 'single';
    nodePrec.set(n, p);
    for (const o of floatOuts) prec.set(o, p);
    if (reason === undefined) report.converted.push({ node: label(n), op });
    else report.skipped.push({ node: label(n), op, reason });
  }

  const names = collectNames(graph, new Set());
  // Float16 graph outputs that must stay float32: produced under a new name, Cast back at the end.
  const renamed = new Map<string, string>();
  if (keepIo) {
    for (const o of outputNames)
      if (isFloat(o) && have(o) === 'half') renamed.set(o, uniqueName(names, `${o}_fp16`));
  }
  const rn = (t: string) => renamed.get(t) ?? t;
  const nodes: NodeProto[] = [];
  const casts = new Map<string, string>();
  const cast = (t: string, to: Precision): string => {
    const key = `${t}\u0000${to}`;
    const hit = casts.get(key);
    if (hit) return hit;
    const out = uniqueName(names, `${t}_${to === 'half' ? 'fp16' : 'fp32'}`);
    nodes.push({
      input: [rn(t)],
      output: [out],
      op_type: 'Cast',
      attribute: [intAttr('to', to === 'half' ? DataType.FLOAT16 : DataType.FLOAT)],
    });
    report.castsAdded++;
    casts.set(key, out);
    return out;
  };
  const toHalfTensor = (t: TensorProto, name: string): TensorProto => {
    const conv = toFloat16Array(tensorToFloat32(t));
    if (conv.overflow || conv.underflow) {
      report.clamped.overflow += conv.overflow;
      report.clamped.underflow += conv.underflow;
      report.clamped.tensors.push(name);
    }
    const out: TensorProto = {
      dims: t.dims ?? [],
      data_type: DataType.FLOAT16,
      raw_data: new Uint8Array(conv.bits.buffer),
    };
    if (t.name) out.name = t.name;
    return out;
  };

  for (const original of graph.node ?? []) {
    const p = nodePrec.get(original) ?? 'single';
    const op = original.op_type ?? '';
    const node: NodeProto = {
      ...original,
      input: (original.input ?? []).map((t, i) => {
        if (!t || !isFloat(t)) return t;
        const need: Precision = isAlwaysFloat(op, i) ? 'single' : p;
        return have(t) === need ? rn(t) : cast(t, need);
      }),
      output: (original.output ?? []).map(rn),
    };
    if (op === 'Constant' && p === 'half') {
      node.attribute = (original.attribute ?? []).map((a) =>
        a.name === 'value' && a.t && a.t.data_type === DataType.FLOAT
          ? { ...a, t: toHalfTensor(a.t, original.output?.[0] ?? 'Constant') }
          : a,
      );
    }
    if (op === 'Cast' && p === 'half' && attrInt(original, 'to', 0) === DataType.FLOAT) {
      node.attribute = (original.attribute ?? []).map((a) =>
        a.name === 'to' ? { ...a, type: AttributeType.INT, i: toLong(DataType.FLOAT16) } : a,
      );
    }
    nodes.push(node);
  }
  for (const [o, internal] of renamed) {
    nodes.push({
      input: [internal],
      output: [o],
      op_type: 'Cast',
      attribute: [intAttr('to', DataType.FLOAT)],
    });
    report.castsAdded++;
  }

  const initializer = (graph.initializer ?? []).map((t) => {
    if (!storedHalf.has(t.name ?? '')) return t;
    report.initializersConverted++;
    return toHalfTensor(t, t.name ?? '');
  });
  const retype = (vi: ValueInfoProto) =>
    vi.type?.tensor_type?.elem_type === DataType.FLOAT && have(vi.name ?? '') === 'half'
      ? withElemType(vi, DataType.FLOAT16)
      : vi;
  const out: GraphProto = {
    ...graph,
    node: nodes,
    initializer,
    input: (graph.input ?? []).map(retype),
    output: (graph.output ?? []).map((vi) => (renamed.has(vi.name ?? '') ? vi : retype(vi))),
  };
  if (graph.value_info) out.value_info = graph.value_info.map(retype);
  const result: ModelProto = { ...model, graph: out };
  report.sizeAfter = encodeModel(result).length;
  return { model: result, report };
}
