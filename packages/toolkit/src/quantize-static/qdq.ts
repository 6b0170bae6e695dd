import {
  DataType,
  attrFloat,
  attrInt,
  intAttr,
  makeTensor,
  subgraphsOf,
  tensorDims,
  tensorToFloat32,
} from '../onnx/index.ts';
import type { GraphProto, NodeProto, TensorProto } from '../onnx/index.ts';
import { computeQuantParams, quantRange, quantizeWeight, roundHalfEven } from '../quantize/index.ts';
import type { QuantParams } from '../quantize/index.ts';
import { lookupConstant, makeScope, uniqueName } from '../quantize/graph.ts';
import type { Scope } from '../quantize/graph.ts';
import type { QuantType, QuantizeStaticReport, StaticNodeRef } from './types.ts';

/**
 * The QDQ rewrite of ONNX Runtime's `QDQQuantizer`, in two passes over the main graph.
 *
 * Plan: decide per node, in topological order, which tensors get a QuantizeLinear → DequantizeLinear
 * pair and with which parameters. Op classes follow ORT's QDQ registry:
 * - weighted (Conv, Gemm, MatMul): activation inputs get Q/DQ; constant weights become int8/uint8
 *   initializers behind a DequantizeLinear (per channel on the output-channel axis when asked); a
 *   constant Conv/Gemm bias becomes int32 with scale = input scale × weight scale (× Gemm beta), zero 0;
 *   the output gets its own Q/DQ.
 * - removable (Relu, Clip): with asymmetric activations, when the input is quantized and used by nothing
 *   else, the node is dropped and its producer writes its output directly: the output's zero point is
 *   then the integer minimum, so QuantizeLinear's saturation *is* the ReLU (ORT's QDQRemovableActivation).
 * - direct (MaxPool, AveragePool, Flatten, Reshape, Transpose, Squeeze, Unsqueeze): the output reuses
 *   the input's scale and zero point, so the int8 kernel can pass values through unchanged.
 * - generic (Add, Mul, Concat, GlobalAveragePool): every float input and the output get their own Q/DQ;
 *   constant inputs are quantized like weights (per tensor).
 *
 * Emit: copy the nodes, point quantized consumers at the DequantizeLinear outputs and add the new
 * initializers. One deliberate difference from ORT: graph outputs are never replaced by their
 * quantize-dequantize round trip (the model's last layer keeps full-precision outputs; QGemm and
 * MatMulIntegerToFloat fuse with a float output, so nothing is lost in speed).
 */

export type OpClass = 'weighted' | 'removable' | 'direct' | 'generic';

/**
 * How each op type is quantized (see the module comment); ops not listed stay float.
 *
 * @example
 * OP_CLASSES.MaxPool // 'direct': the output reuses the input's scale and zero point
 */
export const OP_CLASSES: Readonly<Record<string, OpClass>> = {
  Conv: 'weighted',
  Gemm: 'weighted',
  MatMul: 'weighted',
  Relu: 'removable',
  Clip: 'removable',
  MaxPool: 'direct',
  AveragePool: 'direct',
  Flatten: 'direct',
  Reshape: 'direct',
  Transpose: 'direct',
  Squeeze: 'direct',
  Unsqueeze: 'direct',
  Add: 'generic',
  Mul: 'generic',
  Concat: 'generic',
  GlobalAveragePool: 'generic',
};

export interface QdqSettings {
  activationType: QuantType;
  weightType: QuantType;
  perChannel: boolean;
  symmetricActivations: boolean;
  symmetricWeights: boolean;
  /** 7-bit weights (see QuantizeStaticOptions.reduceRange). */
  reduceRange: boolean;
  irVersion: number;
  exclude: Set<string>;
}

/** Where an activation's quantization parameters come from. */
type ActParams = { kind: 'own'; range: [number, number] } | { kind: 'same'; as: string };

interface WeightUse {
  input: number;
  /** Per-channel axis, or undefined for one scale per tensor. */
  axis: number | undefined;
}

interface BiasUse {
  input: number;
  /** The activation whose scale multiplies the weight scale. */
  activation: string;
  weight: string;
  weightAxis: number | undefined;
  beta: number;
}

export interface Plan {
  act: Map<string, ActParams>;
  quantized: Set<NodeProto>;
  removed: Set<NodeProto>;
  /** Producer → [old output, new output] for producers that absorbed a removed activation. */
  renamed: Map<NodeProto, [string, string]>;
  weights: Map<NodeProto, WeightUse[]>;
  biases: Map<NodeProto, BiasUse>;
  report: Pick<QuantizeStaticReport, 'quantized' | 'skipped'>;
}

function label(n: NodeProto): string {
  return n.name || n.output?.[0] || n.op_type || '(node)';
}

interface PlanInput {
  graph: GraphProto;
  settings: QdqSettings;
  /** Calibrated range of every float32 tensor (after the calibration method). */
  ranges: Map<string, [number, number]>;
  onNode?: () => void;
}

/** Decides what to quantize (see the module comment). */
export function planQdq({ graph, settings, ranges, onNode }: PlanInput): Plan {
  const scope = makeScope(graph, undefined);
  const consumers = new Map<string, NodeProto[]>();
  const producer = new Map<string, NodeProto>();
  for (const n of graph.node ?? []) {
    for (const i of n.input ?? []) if (i) consumers.set(i, [...(consumers.get(i) ?? []), n]);
    for (const o of n.output ?? []) if (o) producer.set(o, n);
  }
  const graphOutputs = new Set((graph.output ?? []).map((o) => o.name ?? ''));
  const plan: Plan = {
    act: new Map(),
    quantized: new Set(),
    removed: new Set(),
    renamed: new Map(),
    weights: new Map(),
    biases: new Map(),
    report: { quantized: [], skipped: [] },
  };
  const floatConstant = (name: string | undefined): TensorProto | undefined => {
    if (!name) return undefined;
    const ref = lookupConstant(scope, name, settings.irVersion);
    if (typeof ref === 'string' || ref.tensor.data_type !== DataType.FLOAT) return undefined;
    if (ref.tensor.data_location === 1 || (ref.tensor.external_data?.length ?? 0) > 0) return undefined;
    return ref.tensor;
  };
  const markOwn = (t: string) => {
    const r = ranges.get(t);
    if (r && !plan.act.has(t)) plan.act.set(t, { kind: 'own', range: r });
  };
  const skip = (n: NodeProto, reason: string) =>
    plan.report.skipped.push({ node: label(n), op: n.op_type ?? '', reason });

  for (const node of graph.node ?? []) {
    onNode?.();
    const op = node.op_type ?? '';
    const ins = node.input ?? [];
    const out = node.output?.[0];
    if (subgraphsOf(node).length > 0) {
      skip(node, 'control flow: its subgraphs stay float (static quantization covers the main graph)');
      continue;
    }
    if (node.domain && node.domain !== 'ai.onnx') {
      skip(node, `custom-domain op ${node.domain}.${op}`);
      continue;
    }
    const cls = OP_CLASSES[op];
    if (!cls) {
      skip(node, `${op} has no int8 QDQ form here (stays float)`);
      continue;
    }
    if (node.name && settings.exclude.has(node.name)) {
      skip(node, 'excluded by nodesToExclude');
      continue;
    }
    if (!out || !ranges.has(out)) {
      skip(node, `output ${out ?? '(none)'} is not a calibrated float32 tensor`);
      continue;
    }
    const ref: StaticNodeRef = { node: label(node), op };

    if (cls === 'weighted') {
      const x = ins[0];
      if (!x || !ranges.has(x)) {
        skip(node, `input ${x ?? '(none)'} is not a calibrated float32 tensor`);
        continue;
      }
      const wName = ins[1];
      const w = floatConstant(wName);
      if (!w && !(wName && ranges.has(wName))) {
        skip(node, `weight ${wName ?? '(none)'} is neither a float constant nor a calibrated tensor`);
        continue;
      }
      let axis: number | undefined;
      if (w && settings.perChannel) {
        const rank = tensorDims(w).length;
        if (op === 'Conv') axis = 0;
        else if (op === 'Gemm') axis = attrInt(node, 'transB', 0) === 1 ? 0 : 1;
        else if (rank >= 2) axis = rank - 1;
      }
      markOwn(x);
      if (w) plan.weights.set(node, [{ input: 1, axis }]);
      else markOwn(wName as string);
      const bName = op === 'MatMul' ? undefined : ins[2];
      const b = floatConstant(bName);
      if (w && b && biasFits(b, w, op, axis)) {
        plan.biases.set(node, {
          input: 2,
          activation: x,
          weight: wName as string,
          weightAxis: axis,
          beta: op === 'Gemm' ? attrFloat(node, 'beta', 1) : 1,
        });
      } else if (bName) {
        ref.note = `bias ${bName} stays float`;
      }
      markOwn(out);
    } else if (cls === 'removable') {
      const x = ins[0];
      const src = x ? plan.act.get(x) : undefined;
      if (!x || !src) {
        skip(node, `input ${x ?? '(none)'} is not quantized (its producer stays float)`);
        continue;
      }
      const p = producer.get(x);
      const foldable =
        !settings.symmetricActivations &&
        src.kind === 'own' &&
        p !== undefined &&
        plan.quantized.has(p) &&
        !plan.renamed.has(p) &&
        (OP_CLASSES[p.op_type ?? ''] === 'weighted' || OP_CLASSES[p.op_type ?? ''] === 'generic') &&
        (consumers.get(x) ?? []).length === 1 &&
        !graphOutputs.has(x) &&
        // A graph output keeps its float value (only quantized readers see the round trip), so it
        // would lose the clamp that only QuantizeLinear performs.
        !graphOutputs.has(out);
      if (foldable) {
        plan.removed.add(node);
        plan.renamed.set(p, [x, out]);
        plan.act.delete(x);
        markOwn(out);
        ref.note = `folded into ${label(p)}: the output's zero point is the integer minimum, so QuantizeLinear clamps`;
      } else {
        markOwn(out);
      }
    } else if (cls === 'direct') {
      const x = ins[0];
      if (!x || !ranges.has(x)) {
        skip(node, `input ${x ?? '(none)'} is not a calibrated float32 tensor`);
        continue;
      }
      markOwn(x);
      if (!plan.act.has(out)) plan.act.set(out, { kind: 'same', as: x });
    } else {
      const uses: WeightUse[] = [];
      let bad: string | undefined;
      ins.forEach((name, i) => {
        if (!name) return;
        if (ranges.has(name)) return;
        if (floatConstant(name)) uses.push({ input: i, axis: undefined });
        else bad ??= name;
      });
      if (bad !== undefined) {
        skip(node, `input ${bad} is neither a calibrated float32 tensor nor a float constant`);
        continue;
      }
      for (const name of ins) if (name && ranges.has(name)) markOwn(name);
      if (uses.length) plan.weights.set(node, uses);
      markOwn(out);
    }
    plan.quantized.add(node);
    plan.report.quantized.push(ref);
  }
  return plan;
}

/** An int32 bias needs one scale per output channel that lines up with the weight's channels. */
function biasFits(bias: TensorProto, weight: TensorProto, op: string, axis: number | undefined): boolean {
  const bd = tensorDims(bias);
  if (axis === undefined) return true; // one scale fits any shape
  const channels = tensorDims(weight)[axis];
  return bd.length === 1 && bd[0] === channels && (op === 'Conv' || op === 'Gemm');
}

export interface EmitInput {
  graph: GraphProto;
  plan: Plan;
  settings: QdqSettings;
  names: Set<string>;
}

export interface EmitResult {
  graph: GraphProto;
  /** Scale and zero point actually used for each activation with a Q/DQ pair. */
  params: Map<string, QuantParams & { root: string }>;
  /** Float initializers replaced by quantized copies (pruned when nothing else reads them). */
  replaced: Set<string>;
}

/**
 * A Q/DQ node. Inserted nodes carry no name (ONNX makes it optional and ORT names nodes itself): the
 * names would cost ~30 bytes each, a noticeable share of a small quantized model.
 */
function mk(op: string, input: string[], output: string[], axis?: number): NodeProto {
  const n: NodeProto = { input, output, op_type: op };
  if (axis !== undefined) n.attribute = [intAttr('axis', axis)];
  return n;
}

/** Builds the rewritten graph from a plan. */
export function emitQdq({ graph, plan, settings, names }: EmitInput): EmitResult {
  const scope: Scope = makeScope(graph, undefined);
  const added: TensorProto[] = [];
  const nodes: NodeProto[] = [];
  const replaced = new Set<string>();
  const graphOutputs = new Set((graph.output ?? []).map((o) => o.name ?? ''));
  const actRange = quantRange(settings.activationType, settings.symmetricActivations);
  const actArray = (v: number) =>
    settings.activationType === 'int8' ? new Int8Array([v]) : new Uint8Array([v]);

  // Activation parameters, shared by name along `same` chains.
  const params = new Map<string, QuantParams & { root: string; scale_: string; zp_: string }>();
  const paramsOf = (t: string): QuantParams & { root: string; scale_: string; zp_: string } => {
    const hit = params.get(t);
    if (hit) return hit;
    const a = plan.act.get(t);
    let p: QuantParams & { root: string; scale_: string; zp_: string };
    if (a?.kind === 'same' && plan.act.has(a.as)) {
      p = paramsOf(a.as);
    } else {
      const [lo, hi] = a?.kind === 'own' ? a.range : [0, 0];
      const q = computeQuantParams(lo, hi, actRange, settings.symmetricActivations);
      const scale_ = uniqueName(names, `${t}_scale`);
      const zp_ = uniqueName(names, `${t}_zp`);
      added.push(
        makeTensor(scale_, new Float32Array([q.scale]), []),
        makeTensor(zp_, actArray(q.zeroPoint), []),
      );
      p = { ...q, root: t, scale_, zp_ };
    }
    params.set(t, p);
    return p;
  };

  // Which consumers read the DequantizeLinear output: every consumer, except for graph outputs, where
  // float consumers keep the exact value (only quantized ones see the round trip).
  const rewires = (t: string, consumer: NodeProto) => !graphOutputs.has(t) || plan.quantized.has(consumer);
  const consumers = new Map<string, NodeProto[]>();
  for (const n of graph.node ?? []) {
    if (plan.removed.has(n)) continue;
    for (const i of n.input ?? []) if (i) consumers.set(i, [...(consumers.get(i) ?? []), n]);
  }
  // Removed activations hand their output to the producer; its consumers read that name already.
  const dq = new Map<string, string>();
  const addQdq = (t: string) => {
    if (!plan.act.has(t) || dq.has(t)) return;
    if (!(consumers.get(t) ?? []).some((c) => rewires(t, c))) return;
    const p = paramsOf(t);
    const q = uniqueName(names, `${t}_q`);
    const d = uniqueName(names, `${t}_dq`);
    nodes.push(mk('QuantizeLinear', [t, p.scale_, p.zp_], [q]));
    nodes.push(mk('DequantizeLinear', [q, p.scale_, p.zp_], [d]));
    dq.set(t, d);
  };

  const weightDq = new Map<string, { out: string; scales: Float32Array }>();
  const quantizeConstant = (name: string, axis: number | undefined) => {
    const key = `${name}\u0000${axis ?? ''}`;
    const hit = weightDq.get(key);
    if (hit) return hit;
    const ref = lookupConstant(scope, name, settings.irVersion);
    if (typeof ref === 'string') throw new Error(`internal: ${name} is not a constant`);
    const dims = tensorDims(ref.tensor);
    const qw = quantizeWeight(tensorToFloat32(ref.tensor), dims, {
      type: settings.weightType,
      symmetric: settings.symmetricWeights,
      reduceRange: settings.reduceRange,
      axis,
    });
    const qName = uniqueName(names, `${name}_quantized`);
    const sName = uniqueName(names, `${name}_scale`);
    const zName = uniqueName(names, `${name}_zp`);
    const vec = axis === undefined ? [] : [qw.scales.length];
    added.push(
      makeTensor(qName, qw.data, dims),
      makeTensor(sName, qw.scales, vec),
      makeTensor(zName, qw.zeroPoints, vec),
    );
    const out = uniqueName(names, `${name}_dq`);
    nodes.push(mk('DequantizeLinear', [qName, sName, zName], [out], axis));
    replaced.add(name);
    const r = { out, scales: qw.scales };
    weightDq.set(key, r);
    return r;
  };
  const quantizeBias = (use: BiasUse, name: string) => {
    const ref = lookupConstant(scope, name, settings.irVersion);
    if (typeof ref === 'string') throw new Error(`internal: ${name} is not a constant`);
    const w = quantizeConstant(use.weight, use.weightAxis);
    const inScale = paramsOf(use.activation).scale;
    const values = tensorToFloat32(ref.tensor);
    const scales = w.scales.map((s) => Math.fround(inScale * s * use.beta));
    const data = new Int32Array(values.length);
    for (let i = 0; i < values.length; i++) {
      const s = (scales.length === 1 ? scales[0] : scales[i]) as number;
      const q = s > 0 ? roundHalfEven((values[i] as number) / s) : 0;
      data[i] = Math.max(-2147483648, Math.min(2147483647, q));
    }
    const qName = uniqueName(names, `${name}_quantized`);
    const sName = uniqueName(names, `${name}_scale`);
    const perChannel = use.weightAxis !== undefined;
    // The zero point of an int32 DequantizeLinear is optional and 0 when absent, so none is stored.
    added.push(
      makeTensor(qName, data, tensorDims(ref.tensor)),
      makeTensor(sName, scales, perChannel ? [scales.length] : []),
    );
    const out = uniqueName(names, `${name}_dq`);
    nodes.push(mk('DequantizeLinear', [qName, sName], [out], perChannel ? 0 : undefined));
    replaced.add(name);
    return out;
  };

  for (const vi of graph.input ?? []) if (vi.name) addQdq(vi.name);
  for (const original of graph.node ?? []) {
    if (plan.removed.has(original)) continue;
    const node: NodeProto = {
      ...original,
      input: [...(original.input ?? [])],
      output: [...(original.output ?? [])],
    };
    const rename = plan.renamed.get(original);
    if (rename) node.output = (node.output ?? []).map((o) => (o === rename[0] ? rename[1] : o));
    const ins = node.input as string[];
    const special = new Set<number>();
    for (const u of plan.weights.get(original) ?? []) {
      ins[u.input] = quantizeConstant(ins[u.input] as string, u.axis).out;
      special.add(u.input);
    }
    const bias = plan.biases.get(original);
    if (bias) {
      ins[bias.input] = quantizeBias(bias, ins[bias.input] as string);
      special.add(bias.input);
    }
    ins.forEach((name, i) => {
      if (special.has(i) || !name || !plan.act.has(name) || !rewires(name, original)) return;
      addQdq(name);
      const d = dq.get(name);
      if (d) ins[i] = d;
    });
    nodes.push(node);
    for (const o of node.output ?? []) if (o) addQdq(o);
  }

  const out: GraphProto = { ...graph, node: nodes, initializer: [...(graph.initializer ?? []), ...added] };
  const gone = new Set([...plan.renamed.values()].map(([old]) => old));
  if (graph.value_info) out.value_info = graph.value_info.filter((vi) => !gone.has(vi.name ?? ''));
  const used = new Map<string, QuantParams & { root: string }>();
  for (const t of dq.keys()) {
    const p = paramsOf(t);
    used.set(t, { scale: p.scale, zeroPoint: p.zeroPoint, root: p.root });
  }
  return { graph: out, params: used, replaced };
}
