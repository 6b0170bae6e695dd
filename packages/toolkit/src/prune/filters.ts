import { OutpostError } from '@outpost/protocol';
import {
  encodeModel,
  makeTensor,
  tensorDims,
  tensorToFloat32,
  toLong,
  tensorToNumbers,
  attrInt,
} from '../onnx/index.ts';
import type { DecodedModel, ModelProto, NodeProto, TensorProto, ValueInfoProto } from '../onnx/index.ts';
import type { FeedOptions } from '../bench/index.ts';
import {
  countParameters,
  elementCount,
  indexGraph,
  nodeLabel,
  progressOf,
  replaceFloatData,
  requireGraph,
  writableFloatInitializer,
} from './graph.ts';
import { planFilterRemoval } from './plan.ts';
import type { FilterPlan, SliceEdit } from './plan.ts';
import { probeShapes } from './probe.ts';
import { computeCosts } from './cost.ts';
import type { ProgressFn, PruneSkip } from './types.ts';

/**
 * Structured filter pruning after Li et al., "Pruning Filters for Efficient ConvNets" (ICLR 2017): the
 * output channels (filters) of each Conv with the smallest L1 (or L2) norm are removed — really removed,
 * the tensors get smaller — and the graph is rewritten so that every shape stays consistent: the conv's
 * weight [M,C,k…] and bias [M], a following BatchNormalization's four vectors, the next Conv's input
 * channels (weight [N,M,k…] → [N,M',k…]) and a Flatten → Gemm/MatMul's column/row blocks (channel c
 * owns features c·H·W … (c+1)·H·W − 1). Convs are processed in graph order with the weights as they
 * are at that point (Li et al.'s "greedy" variant: a filter's norm no longer counts kernels that read
 * channels already removed upstream). Topologies it cannot follow (see plan.ts) skip that conv with the
 * reason; the result is loaded and run in ONNX Runtime before it is returned, so a broken graph can never
 * come out. Unlike zeros from magnitude pruning, fewer channels make dense kernels do less work.
 */

export interface FilterPruneOptions {
  /** Fraction of each Conv's output channels to remove, 0 ≤ ratio < 1 (round(ratio·M), at least one kept). */
  ratio: number;
  /** Filter importance: sum of |w| (default, as in Li et al.) or the Euclidean norm. */
  criterion?: 'l1' | 'l2';
  /** Only these Conv nodes (default: every Conv of the main graph). */
  nodes?: string[];
  /** Input sizes/values for the shape-measuring run, for models whose inputs need them. */
  feeds?: FeedOptions;
  onProgress?: ProgressFn;
}

export interface FilterPruneLayer {
  node: string;
  op: string;
  inChannelsBefore: number;
  inChannelsAfter: number;
  outChannelsBefore: number;
  outChannelsAfter: number;
  paramsBefore: number;
  paramsAfter: number;
  /** Multiply-accumulates per sample. */
  macsBefore: number;
  macsAfter: number;
  /** For a pruned conv: the original indices of the removed output channels. */
  removedChannels?: number[];
  /** For a pruned conv: the downstream nodes rewritten to match. */
  followed?: string[];
}

export interface FilterPruneReport {
  ratio: number;
  criterion: 'l1' | 'l2';
  /** Every Conv/ConvTranspose/Gemm/MatMul of the main graph, in graph order. */
  layers: FilterPruneLayer[];
  /** Convs whose filters were removed. */
  pruned: string[];
  skipped: PruneSkip[];
  paramsBefore: number;
  paramsAfter: number;
  macsBefore: number;
  macsAfter: number;
  sizeBefore: number;
  sizeAfter: number;
}

export interface FilterPruneResult {
  model: ModelProto;
  report: FilterPruneReport;
}

/**
 * Keeps `data[dims]` channels `keep` along `axis`, each channel being `block` consecutive indices there.
 *
 * @example
 * sliceChannels(w, [4, 2, 3, 3], 0, 1, [0, 3]) // → values of filters 0 and 3, dims [2, 2, 3, 3]
 */
export function sliceChannels(
  data: Float32Array,
  dims: number[],
  axis: number,
  block: number,
  keep: number[],
): { values: Float32Array; dims: number[] } {
  const outer = elementCount(dims.slice(0, axis));
  const len = dims[axis] ?? 0;
  const inner = elementCount(dims.slice(axis + 1));
  const newLen = keep.length * block;
  const values = new Float32Array(outer * newLen * inner);
  const chunk = block * inner;
  for (let o = 0; o < outer; o++) {
    keep.forEach((c, j) => {
      const from = (o * len + c * block) * inner;
      values.set(data.subarray(from, from + chunk), (o * newLen + j * block) * inner);
    });
  }
  const nd = [...dims];
  nd[axis] = newLen;
  return { values, dims: nd };
}

/**
 * Norm of each of the `m` filters of a weight [M, …].
 *
 * @example
 * filterNorms(new Float32Array([3, 0, 1, 1]), 2, 'l1'); // [3, 2]
 */
export function filterNorms(w: Float32Array, m: number, criterion: 'l1' | 'l2'): Float64Array {
  const per = m ? w.length / m : 0;
  const norms = new Float64Array(m);
  for (let f = 0; f < m; f++) {
    let s = 0;
    for (let i = f * per; i < (f + 1) * per; i++) {
      const v = w[i] ?? 0;
      s += criterion === 'l1' ? Math.abs(v) : v * v;
    }
    norms[f] = criterion === 'l1' ? s : Math.sqrt(s);
  }
  return norms;
}

/**
 * Indices of the `count` largest norms, ascending (ties keep the lower index).
 *
 * @example
 * keepLargest(new Float64Array([0.5, 2, 0, 1]), 2); // [1, 3]
 */
export function keepLargest(norms: Float64Array, count: number): number[] {
  return [...norms.keys()]
    .sort((a, b) => (norms[b] ?? 0) - (norms[a] ?? 0) || a - b)
    .slice(0, count)
    .sort((a, b) => a - b);
}

function validate(model: ModelProto, opts: FilterPruneOptions): DecodedModel {
  const m = requireGraph(model);
  if (!opts || typeof opts !== 'object') throw new OutpostError('VALIDATION_FAILED', 'options are required');
  const r = opts.ratio;
  if (typeof r !== 'number' || !Number.isFinite(r) || r < 0 || r >= 1) {
    throw new OutpostError('VALIDATION_FAILED', `ratio must be a number in [0, 1), got ${String(r)}`);
  }
  if (opts.criterion !== undefined && opts.criterion !== 'l1' && opts.criterion !== 'l2') {
    throw new OutpostError(
      'VALIDATION_FAILED',
      `criterion must be 'l1' or 'l2', got ${String(opts.criterion)}`,
    );
  }
  if (opts.nodes !== undefined) {
    if (!Array.isArray(opts.nodes))
      throw new OutpostError('VALIDATION_FAILED', 'nodes must be a list of names');
    const convs = new Set((m.graph.node ?? []).filter((n) => n.op_type === 'Conv').map(nodeLabel));
    const bad = opts.nodes.filter((n) => !convs.has(n));
    if (bad.length)
      throw new OutpostError('VALIDATION_FAILED', `not Conv nodes of the main graph: ${bad.join(', ')}`);
  }
  return m;
}

/**
 * Removes the lowest-norm filters of the model's Conv layers and rewrites the graph around them. The
 * input model is not modified. Runs the model twice in onnxruntime-node (before, to measure shapes; after,
 * to prove the result loads and runs and to measure the new MACs).
 *
 * @example
 * const { model: slim, report } = await pruneFilters(model, { ratio: 0.5 });
 * console.log(report.paramsBefore, '→', report.paramsAfter, report.skipped);
 */
export async function pruneFilters(model: ModelProto, opts: FilterPruneOptions): Promise<FilterPruneResult> {
  const m = validate(model, opts);
  const criterion = opts.criterion ?? 'l1';
  const onProgress = progressOf(opts.onProgress);
  const ix = indexGraph(m);
  const only = opts.nodes ? new Set(opts.nodes) : undefined;
  const convs = (m.graph.node ?? []).filter(
    (n) => n.op_type === 'Conv' && !n.domain && (!only || only.has(nodeLabel(n))),
  );
  const total = convs.length + 2;
  let step = 0;

  const shapes = await probeShapes(m, opts.feeds);
  onProgress?.(++step, total, 'measured shapes');
  const work = new Map<string, TensorProto>(ix.initializers);
  const ctx = { ix, shapes, tensor: (name: string) => work.get(name) as TensorProto };
  const skipped: PruneSkip[] = [];
  const pruned = new Map<string, { removed: number[]; followed: string[] }>();
  const shapeEdits = new Map<string, { from: number; to: number }>();

  for (const conv of convs) {
    const label = nodeLabel(conv);
    const why = tryPrune(ctx, conv, opts.ratio, criterion, work, shapeEdits);
    if (typeof why === 'string') skipped.push({ node: label, op: 'Conv', reason: why });
    else pruned.set(label, why);
    onProgress?.(++step, total, label);
  }

  const outModel: DecodedModel = {
    ...m,
    graph: {
      ...m.graph,
      initializer: (m.graph.initializer ?? []).map((t) => work.get(t.name ?? '') ?? t),
      value_info: updateValueInfo(m.graph.value_info ?? [], shapeEdits),
    },
  };
  if (!m.graph.value_info) delete outModel.graph.value_info;
  let shapesAfter: Map<string, number[]>;
  try {
    shapesAfter = await probeShapes(outModel, opts.feeds);
  } catch (err) {
    throw new OutpostError(
      'INTERNAL',
      `the pruned graph does not run in ONNX Runtime: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  onProgress?.(++step, total, 'verified in ONNX Runtime');

  const before = computeCosts(m.graph, shapes);
  const after = computeCosts(outModel.graph, shapesAfter);
  const layers: FilterPruneLayer[] = before.map((b, i) => {
    const a = after[i] ?? b;
    const layer: FilterPruneLayer = {
      node: b.node,
      op: b.op,
      inChannelsBefore: b.inChannels,
      inChannelsAfter: a.inChannels,
      outChannelsBefore: b.outChannels,
      outChannelsAfter: a.outChannels,
      paramsBefore: b.params,
      paramsAfter: a.params,
      macsBefore: b.macs,
      macsAfter: a.macs,
    };
    const p = pruned.get(b.node);
    if (p) {
      layer.removedChannels = p.removed;
      layer.followed = p.followed;
    }
    return layer;
  });
  return {
    model: outModel,
    report: {
      ratio: opts.ratio,
      criterion,
      layers,
      pruned: [...pruned.keys()],
      skipped,
      paramsBefore: countParameters(m.graph),
      paramsAfter: countParameters(outModel.graph),
      macsBefore: before.reduce((s, c) => s + c.macs, 0),
      macsAfter: after.reduce((s, c) => s + c.macs, 0),
      sizeBefore: encodeModel(m).length,
      sizeAfter: encodeModel(outModel).length,
    },
  };
}

/** Plans and applies one conv's removal on `work`; returns the removal or why it was skipped. */
function tryPrune(
  ctx: Parameters<typeof planFilterRemoval>[0],
  conv: NodeProto,
  ratio: number,
  criterion: 'l1' | 'l2',
  work: Map<string, TensorProto>,
  shapeEdits: Map<string, { from: number; to: number }>,
): { removed: number[]; followed: string[] } | string {
  const group = attrInt(conv, 'group', 1);
  if (group !== 1) return `grouped/depthwise conv (group=${group})`;
  const w = writableFloatInitializer(ctx.ix, conv.input?.[1]);
  if (typeof w === 'string') return `weight: ${w}`;
  const wt = work.get(w.name ?? '') as TensorProto;
  const dims = tensorDims(wt);
  const oldM = dims[0] ?? 0;
  if (dims.length < 3) return `weight has dims [${dims}]`;
  const removeCount = Math.min(Math.round(ratio * oldM), oldM - 1);
  if (removeCount <= 0) return `ratio ${ratio} removes no filter of ${oldM}`;
  const keep = keepLargest(filterNorms(tensorToFloat32(wt), oldM, criterion), oldM - removeCount);
  const plan = planFilterRemoval(ctx, conv, keep, oldM);
  if (typeof plan === 'string') return plan;
  apply(plan, work);
  for (const s of plan.shapes) {
    const prior = shapeEdits.get(s.value);
    shapeEdits.set(s.value, { from: prior?.from ?? s.from, to: s.to });
  }
  const kept = new Set(keep);
  return {
    removed: [...Array(oldM).keys()].filter((i) => !kept.has(i)),
    followed: plan.followed,
  };
}

function apply(plan: FilterPlan, work: Map<string, TensorProto>): void {
  const slice = (e: SliceEdit) => {
    const t = work.get(e.tensor) as TensorProto;
    const r = sliceChannels(tensorToFloat32(t), tensorDims(t), e.axis, e.block, e.keep);
    work.set(e.tensor, replaceFloatData(t, r.values, r.dims));
  };
  plan.slices.forEach(slice);
  for (const e of plan.reshapes) {
    const t = work.get(e.tensor) as TensorProto;
    const s = tensorToNumbers(t);
    s[e.index] = e.value;
    work.set(e.tensor, makeTensor(e.tensor, BigInt64Array.from(s.map(BigInt)), tensorDims(t)));
  }
}

/** value_info entries of changed values: dim 1 updated when it held the old count, else dropped (stale). */
function updateValueInfo(
  infos: ValueInfoProto[],
  edits: Map<string, { from: number; to: number }>,
): ValueInfoProto[] {
  const out: ValueInfoProto[] = [];
  for (const vi of infos) {
    const e = edits.get(vi.name ?? '');
    if (!e) {
      out.push(vi);
      continue;
    }
    const dims = vi.type?.tensor_type?.shape?.dim;
    const d1 = dims?.[1];
    if (!dims || !d1) {
      out.push(vi); // no shape recorded: nothing stale
      continue;
    }
    if (d1.dim_param && !d1.dim_value) {
      out.push(vi);
      continue;
    }
    const v = d1.dim_value;
    const n = typeof v === 'number' ? v : v ? v.toNumber() : NaN;
    if (n !== e.from) continue; // an unexpected recorded shape: drop rather than keep a lie
    const newDims = dims.map((d, i) => (i === 1 ? { ...d, dim_value: toLong(e.to) } : d));
    out.push({
      ...vi,
      type: { ...vi.type, tensor_type: { ...vi.type?.tensor_type, shape: { dim: newDims } } },
    });
  }
  return out;
}
