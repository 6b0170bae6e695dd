import { OutpostError } from '@outpost/protocol';
import {
  DataType,
  attrFloat,
  attrInt,
  encodeModel,
  int64ToNumber,
  intAttr,
  intsAttr,
  makeTensor,
  subgraphsOf,
  tensorDims,
  tensorToFloat32,
  toLong,
} from '../onnx/index.ts';
import type { AttributeProto, GraphProto, ModelProto, NodeProto } from '../onnx/index.ts';
import {
  collectNames,
  collectReferences,
  countNodes,
  lookupConstant,
  makeScope,
  pruneUnused,
  uniqueName,
} from './graph.ts';
import type { ConstantRef, Scope } from './graph.ts';
import { quantizeWeight, transpose2d } from './math.ts';
import type { WeightType } from './math.ts';

/**
 * Dynamic int8 quantization, the same rewrite as ONNX Runtime's python `quantize_dynamic` (QOperator
 * form): constant weights of MatMul / Gemm / Conv are stored as 8-bit integers plus scale and zero
 * point initializers; activations are quantized at run time by DynamicQuantizeLinear (uint8, per
 * tensor); the integer op (MatMulInteger / ConvInteger) accumulates in int32, which is cast to float
 * and multiplied by (activation scale × weight scale), then the bias is added in float.
 *
 * Default weight type — uint8, chosen by measurement. On this x86 CPU (AVX2, no VNNI) ONNX Runtime
 * 1.30's integer kernels run u8 activations × s8 weights much slower than u8 × u8, for the same accuracy.
 * `bench/quantize-int8.ts` (MNIST CNN, batch 1, 1 thread, interleaved rounds) measured p50 latency vs
 * fp32: u8 1.55×, s8 3.43× (ORT's own quantize_dynamic u8 output: 1.56×), with accuracy 98.45 % / 98.40 %
 * vs 98.40 % fp32 and top-1 agreement 99.95 % / 100 %. The reference table in the shared models
 * README shows the same gap for ORT's python quantizer (s8 5.5×, u8 1.05×). So uint8 is the default;
 * int8 stays available for targets with fast s8 kernels (VNNI, ARM dot-product), where the autotuner
 * should measure again rather than assume.
 */

export type QuantizableOp = 'MatMul' | 'Gemm' | 'Conv';

export interface QuantizeDynamicOptions {
  /** Weight integer type (default 'uint8', see the module comment for why). */
  weightType?: WeightType;
  /** One scale per output channel instead of one per tensor (default false). */
  perChannel?: boolean;
  /** Use 7-bit weights (avoids 16-bit saturation in u8×s8 kernels on pre-VNNI x86; default false). */
  reduceRange?: boolean;
  /** Node names to leave in float. */
  nodesToExclude?: string[];
  /** Which op types to quantize (default all of MatMul, Gemm, Conv). */
  opTypes?: QuantizableOp[];
  /** Called as nodes are processed (`done` of all nodes, subgraphs included). */
  onProgress?: (done: number, total: number) => void;
}

export interface NodeRef {
  /** Node name, or its first output when unnamed. */
  node: string;
  op: string;
  /** Name of the enclosing subgraph, for nodes inside If/Loop/Scan bodies. */
  graph?: string;
}

export interface QuantizeReport {
  quantized: NodeRef[];
  skipped: (NodeRef & { reason: string })[];
  sizeBefore: number;
  sizeAfter: number;
  weightType: WeightType;
  perChannel: boolean;
  /** Set when the default-domain opset had to be raised for DynamicQuantizeLinear (opset 11). */
  opsetBumped?: { from: number; to: number };
}

export interface QuantizeResult {
  model: ModelProto;
  report: QuantizeReport;
}

/** DynamicQuantizeLinear exists from opset 11 (MatMulInteger/ConvInteger from 10). */
const MIN_OPSET = 11;

const QUANTIZABLE: readonly QuantizableOp[] = ['MatMul', 'Gemm', 'Conv'];

interface Ctx {
  irVersion: number;
  weightType: WeightType;
  perChannel: boolean;
  reduceRange: boolean;
  exclude: Set<string>;
  ops: Set<string>;
  names: Set<string>;
  /** Quantized weight tensors by layout key, shared by every node using the same weight. */
  weights: Map<string, QWeight>;
  /** Original weights/biases replaced somewhere: pruned at the end if nothing else reads them. */
  replaced: Set<string>;
  report: QuantizeReport;
  done: number;
  total: number;
  onProgress: ((done: number, total: number) => void) | undefined;
}

interface QWeight {
  q: string;
  scale: string;
  zeroPoint: string;
}

/** Per-graph rewrite state: the activations already quantized by a DynamicQuantizeLinear. */
interface GraphState {
  scope: Scope;
  path: string | undefined;
  dql: Map<string, [string, string, string]>;
  out: NodeProto[];
}

function nodeLabel(n: NodeProto): string {
  return n.name || n.output?.[0] || n.op_type || '(node)';
}

function mk(
  op: string,
  input: string[],
  output: string[],
  name: string,
  attribute?: AttributeProto[],
): NodeProto {
  const n: NodeProto = { input, output, name, op_type: op };
  if (attribute?.length) n.attribute = attribute;
  return n;
}

/** Adds (or reuses) `DynamicQuantizeLinear(x)` in this graph. */
function quantizeActivation(ctx: Ctx, gs: GraphState, x: string): [string, string, string] {
  const cached = gs.dql.get(x);
  if (cached) return cached;
  const q = uniqueName(ctx.names, `${x}_quantized`);
  const s = uniqueName(ctx.names, `${x}_scale`);
  const z = uniqueName(ctx.names, `${x}_zero_point`);
  gs.out.push(mk('DynamicQuantizeLinear', [x], [q, s, z], uniqueName(ctx.names, `${x}_QuantizeLinear`)));
  const r: [string, string, string] = [q, s, z];
  gs.dql.set(x, r);
  return r;
}

interface WeightLayout {
  /** Transpose a 2-D [N, K] weight to [K, N] first (Gemm transB). */
  transpose: boolean;
  /** Per-channel axis of the (possibly transposed) weight. */
  axis: number | undefined;
  /** Shape of the scale tensor: [] per tensor, [N] for matmuls, [M, 1, ...] for convs. */
  scaleDims: number[];
  /** Extra factor folded into the scales (Gemm alpha). */
  alpha: number;
}

function quantizedWeight(ctx: Ctx, ref: ConstantRef, name: string, layout: WeightLayout): QWeight {
  const key = JSON.stringify([name, layout]);
  const hit = ctx.weights.get(key);
  if (hit) return hit;
  let values = tensorToFloat32(ref.tensor);
  let dims = tensorDims(ref.tensor);
  if (layout.transpose) {
    const [rows = 0, cols = 0] = dims;
    values = transpose2d(values, rows, cols);
    dims = [cols, rows];
  }
  // int8: symmetric like ORT (zero point 0). uint8: asymmetric, except per-channel, where the integer
  // kernels take a single zero point and a symmetric range gives every channel the same one (128).
  const symmetric = ctx.weightType === 'int8' || layout.axis !== undefined;
  const qw = quantizeWeight(values, dims, {
    type: ctx.weightType,
    symmetric,
    reduceRange: ctx.reduceRange,
    axis: layout.axis,
  });
  const scales = qw.scales.map((s) => Math.fround(s * layout.alpha));
  const names: QWeight = {
    q: uniqueName(ctx.names, `${name}_quantized`),
    scale: uniqueName(ctx.names, `${name}_scale`),
    zeroPoint: uniqueName(ctx.names, `${name}_zero_point`),
  };
  const zp =
    ctx.weightType === 'int8'
      ? new Int8Array([qw.zeroPoints[0] ?? 0])
      : new Uint8Array([qw.zeroPoints[0] ?? 0]);
  ref.scope.added.push(
    makeTensor(names.q, qw.data, dims),
    makeTensor(names.scale, scales, layout.scaleDims),
    makeTensor(names.zeroPoint, zp, []),
  );
  ctx.weights.set(key, names);
  ctx.replaced.add(name);
  return names;
}

/** Explains why `name` cannot serve as an 8-bit weight, or returns the constant. */
function weightOrReason(ctx: Ctx, gs: GraphState, name: string | undefined): ConstantRef | string {
  if (!name) return 'no weight input';
  const ref = lookupConstant(gs.scope, name, ctx.irVersion);
  if (typeof ref === 'string') return `weight ${ref}`;
  if (ref.tensor.data_type !== DataType.FLOAT) return `weight ${name} is not float32`;
  if (ref.tensor.data_location === 1 || (ref.tensor.external_data?.length ?? 0) > 0) {
    return `weight ${name} uses external data`;
  }
  return ref;
}

/** Emits Cast → Mul(x_scale, w_scale) → Mul, producing `out` from an int32 accumulator. */
function rescale(
  ctx: Ctx,
  gs: GraphState,
  acc: string,
  xScale: string,
  w: QWeight,
  out: string,
  base: string,
): void {
  const f = uniqueName(ctx.names, `${acc}_float`);
  gs.out.push(mk('Cast', [acc], [f], uniqueName(ctx.names, `${base}_cast`), [intAttr('to', DataType.FLOAT)]));
  const s = uniqueName(ctx.names, `${base}_scales`);
  gs.out.push(mk('Mul', [xScale, w.scale], [s], uniqueName(ctx.names, `${base}_scales_mul`)));
  gs.out.push(mk('Mul', [f, s], [out], uniqueName(ctx.names, `${base}_output_scale_mul`)));
}

/** A bias input as a constant tensor with a new shape (or the reason it is not constant). */
function constantBias(ctx: Ctx, gs: GraphState, name: string): ConstantRef | undefined {
  const ref = lookupConstant(gs.scope, name, ctx.irVersion);
  return typeof ref === 'string' || ref.tensor.data_type !== DataType.FLOAT ? undefined : ref;
}

function quantizeMatMulLike(ctx: Ctx, gs: GraphState, node: NodeProto): string | undefined {
  const isGemm = node.op_type === 'Gemm';
  const [aIn, bIn, cIn] = node.input ?? [];
  const y = node.output?.[0];
  if (!aIn || !y) return 'missing input or output';
  const w = weightOrReason(ctx, gs, bIn);
  if (typeof w === 'string') return w;
  const wDims = tensorDims(w.tensor);
  const transA = isGemm ? attrInt(node, 'transA', 0) : 0;
  const transB = isGemm ? attrInt(node, 'transB', 0) : 0;
  const alpha = isGemm ? attrFloat(node, 'alpha', 1) : 1;
  const beta = isGemm ? attrFloat(node, 'beta', 1) : 1;
  if (wDims.length < 2) return `weight ${bIn} is ${wDims.length}-D; MatMulInteger needs a matrix`;
  if (isGemm && wDims.length !== 2) return `Gemm weight ${bIn} is not 2-D`;
  const perChannel = ctx.perChannel && wDims.length === 2;
  const n = transB ? wDims[0] : wDims[1];
  const base = nodeLabel(node);
  const qw = quantizedWeight(ctx, w, bIn as string, {
    transpose: transB === 1,
    axis: perChannel ? 1 : undefined,
    scaleDims: perChannel ? [n ?? 0] : [],
    alpha,
  });

  let a = aIn;
  if (transA) {
    a = uniqueName(ctx.names, `${aIn}_transposed`);
    gs.out.push(
      mk('Transpose', [aIn], [a], uniqueName(ctx.names, `${base}_transA`), [intsAttr('perm', [1, 0])]),
    );
  }
  const [aq, as, az] = quantizeActivation(ctx, gs, a);
  const acc = uniqueName(ctx.names, `${y}_int32`);
  gs.out.push(
    mk('MatMulInteger', [aq, qw.q, az, qw.zeroPoint], [acc], uniqueName(ctx.names, `${base}_quant`)),
  );

  const hasBias = isGemm && !!cIn && beta !== 0;
  const product = hasBias ? uniqueName(ctx.names, `${y}_matmul`) : y;
  rescale(ctx, gs, acc, as, qw, product, base);
  if (!hasBias) return undefined;

  let c = cIn as string;
  if (beta !== 1) {
    const bias = constantBias(ctx, gs, c);
    if (bias) {
      const scaled = tensorToFloat32(bias.tensor).map((v) => Math.fround(v * beta));
      const name = uniqueName(ctx.names, `${c}_times_beta`);
      bias.scope.added.push(makeTensor(name, scaled, tensorDims(bias.tensor)));
      ctx.replaced.add(c);
      c = name;
    } else {
      const betaName = uniqueName(ctx.names, `${base}_beta`);
      gs.scope.added.push(makeTensor(betaName, new Float32Array([beta]), []));
      const scaled = uniqueName(ctx.names, `${c}_times_beta`);
      gs.out.push(mk('Mul', [c, betaName], [scaled], uniqueName(ctx.names, `${base}_beta_mul`)));
      c = scaled;
    }
  }
  gs.out.push(mk('Add', [product, c], [y], uniqueName(ctx.names, `${base}_bias_add`)));
  return undefined;
}

function quantizeConv(ctx: Ctx, gs: GraphState, node: NodeProto): string | undefined {
  const [xIn, wIn, bIn] = node.input ?? [];
  const y = node.output?.[0];
  if (!xIn || !y) return 'missing input or output';
  const w = weightOrReason(ctx, gs, wIn);
  if (typeof w === 'string') return w;
  const wDims = tensorDims(w.tensor);
  if (wDims.length < 3) return `weight ${wIn} has rank ${wDims.length}; Conv weights have rank ≥ 3`;
  const m = wDims[0] ?? 0;
  const ones = new Array<number>(wDims.length - 2).fill(1);
  const base = nodeLabel(node);
  const qw = quantizedWeight(ctx, w, wIn as string, {
    transpose: false,
    axis: ctx.perChannel ? 0 : undefined,
    scaleDims: ctx.perChannel ? [m, ...ones] : [],
    alpha: 1,
  });
  const [xq, xs, xz] = quantizeActivation(ctx, gs, xIn);
  const acc = uniqueName(ctx.names, `${y}_int32`);
  // ConvInteger takes exactly Conv's attributes (auto_pad, dilations, group, kernel_shape, pads, strides).
  gs.out.push(
    mk(
      'ConvInteger',
      [xq, qw.q, xz, qw.zeroPoint],
      [acc],
      uniqueName(ctx.names, `${base}_quant`),
      node.attribute,
    ),
  );
  const product = bIn ? uniqueName(ctx.names, `${y}_conv`) : y;
  rescale(ctx, gs, acc, xs, qw, product, base);
  if (!bIn) return undefined;

  // Bias [M] must broadcast over [N, M, spatial...]: shape it [M, 1, ...].
  let b: string;
  const bias = constantBias(ctx, gs, bIn);
  if (bias) {
    b = uniqueName(ctx.names, `${bIn}_reshaped`);
    bias.scope.added.push(makeTensor(b, tensorToFloat32(bias.tensor), [m, ...ones]));
    ctx.replaced.add(bIn);
  } else {
    const shape = uniqueName(ctx.names, `${base}_bias_shape`);
    gs.scope.added.push(
      makeTensor(shape, new BigInt64Array([-1n, ...ones.map(() => 1n)]), [ones.length + 1]),
    );
    b = uniqueName(ctx.names, `${bIn}_reshaped`);
    gs.out.push(mk('Reshape', [bIn, shape], [b], uniqueName(ctx.names, `${base}_bias_reshape`)));
  }
  gs.out.push(mk('Add', [product, b], [y], uniqueName(ctx.names, `${base}_bias_add`)));
  return undefined;
}

function rewriteGraph(
  ctx: Ctx,
  graph: GraphProto,
  parent: Scope | undefined,
  path: string | undefined,
): GraphProto {
  const gs: GraphState = { scope: makeScope(graph, parent), path, dql: new Map(), out: [] };
  for (const original of graph.node ?? []) {
    let node = original;
    const ref: NodeRef = { node: nodeLabel(node), op: node.op_type ?? '' };
    if (path !== undefined) ref.graph = path;
    if (subgraphsOf(node).length > 0) {
      node = {
        ...node,
        attribute: (node.attribute ?? []).map((a) => {
          const sub = (g: GraphProto) => rewriteGraph(ctx, g, gs.scope, `${ref.node}/${a.name ?? ''}`);
          if (a.g) return { ...a, g: sub(a.g) };
          if (a.graphs?.length) return { ...a, graphs: a.graphs.map(sub) };
          return a;
        }),
      };
    }
    ctx.onProgress?.(++ctx.done, ctx.total);
    const reason = quantizeNode(ctx, gs, node);
    if (reason === undefined) ctx.report.quantized.push(ref);
    else {
      gs.out.push(node);
      ctx.report.skipped.push({ ...ref, reason });
    }
  }
  const out: GraphProto = { ...graph, node: gs.out };
  if (gs.scope.added.length > 0) out.initializer = [...(graph.initializer ?? []), ...gs.scope.added];
  return out;
}

/** Rewrites one node into `gs.out` and returns undefined, or returns why it stays float. */
function quantizeNode(ctx: Ctx, gs: GraphState, node: NodeProto): string | undefined {
  const op = node.op_type ?? '';
  if (node.domain && node.domain !== 'ai.onnx') return `custom-domain op ${node.domain}.${op}`;
  if (!(QUANTIZABLE as readonly string[]).includes(op)) {
    return subgraphsOf(node).length > 0
      ? 'control flow; its subgraphs were processed'
      : `${op} has no dynamic int8 form here (stays float)`;
  }
  if (!ctx.ops.has(op)) return `${op} not in opTypes`;
  if (node.name && ctx.exclude.has(node.name)) return 'excluded by nodesToExclude';
  // Emit into a scratch list so that a node bailing out half-way leaves no stray nodes behind.
  const mark = gs.out.length;
  const reason = op === 'Conv' ? quantizeConv(ctx, gs, node) : quantizeMatMulLike(ctx, gs, node);
  if (reason !== undefined) gs.out.length = mark;
  return reason;
}

function defaultOpset(model: ModelProto): number {
  const entry = (model.opset_import ?? []).find((o) => !o.domain || o.domain === 'ai.onnx');
  return entry ? int64ToNumber(entry.version) : 0;
}

/**
 * Dynamic int8 quantization of a model's MatMul, Gemm and Conv nodes whose weights are constants
 * (initializers or Constant nodes, in subgraphs too). Everything else stays float and is listed in
 * `report.skipped` with the reason. The input model is not modified. When nothing can be quantized the
 * returned model is the input itself.
 *
 * @example
 * const { model, report } = quantizeDynamic(await readModelFile('mnist_cnn.onnx'));
 * await writeModelFile('mnist_cnn.int8.onnx', model);
 * console.log(report.sizeAfter / report.sizeBefore);
 */
export function quantizeDynamic(model: ModelProto, opts: QuantizeDynamicOptions = {}): QuantizeResult {
  const graph = model.graph;
  if (!graph) throw new OutpostError('ONNX_PARSE_FAILED', 'model has no graph');
  const weightType = opts.weightType ?? 'uint8';
  if (weightType !== 'uint8' && weightType !== 'int8') {
    throw new OutpostError(
      'VALIDATION_FAILED',
      `weightType must be int8 or uint8, got ${String(weightType)}`,
    );
  }
  const sizeBefore = encodeModel(model).length;
  const ctx: Ctx = {
    irVersion: int64ToNumber(model.ir_version),
    weightType,
    perChannel: opts.perChannel ?? false,
    reduceRange: opts.reduceRange ?? false,
    exclude: new Set(opts.nodesToExclude ?? []),
    ops: new Set(opts.opTypes ?? QUANTIZABLE),
    names: collectNames(graph, new Set()),
    weights: new Map(),
    replaced: new Set(),
    report: {
      quantized: [],
      skipped: [],
      sizeBefore,
      sizeAfter: sizeBefore,
      weightType,
      perChannel: opts.perChannel ?? false,
    },
    done: 0,
    total: countNodes(graph),
    onProgress: opts.onProgress,
  };
  const rewritten = rewriteGraph(ctx, graph, undefined, undefined);
  if (ctx.report.quantized.length === 0) return { model, report: ctx.report };

  const pruned = pruneUnused(rewritten, ctx.replaced, collectReferences(rewritten, new Set()));
  const out: ModelProto = { ...model, graph: pruned };
  const opset = defaultOpset(model);
  if (opset < MIN_OPSET) {
    const others = (model.opset_import ?? []).filter((o) => o.domain && o.domain !== 'ai.onnx');
    out.opset_import = [{ domain: '', version: toLong(MIN_OPSET) }, ...others];
    ctx.report.opsetBumped = { from: opset, to: MIN_OPSET };
  }
  ctx.report.sizeAfter = encodeModel(out).length;
  return { model: out, report: ctx.report };
}
