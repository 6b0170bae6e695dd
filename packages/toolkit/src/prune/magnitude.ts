import { OutpostError } from '@outpost/protocol';
import { subgraphsOf, tensorDims, tensorToFloat32 } from '../onnx/index.ts';
import type { GraphProto, ModelProto, TensorProto } from '../onnx/index.ts';
import {
  elementCount,
  indexGraph,
  nodeLabel,
  progressOf,
  replaceFloatData,
  requireGraph,
  withInitializers,
  writableFloatInitializer,
} from './graph.ts';
import type { PruneSkip, ProgressFn } from './types.ts';

/**
 * Unstructured magnitude pruning (Han et al. 2015; TF-MOT's `prune_low_magnitude` at its final sparsity,
 * in one shot): the smallest-|w| entries of the constant weights of Conv / Gemm / MatMul are set to zero,
 * either with one threshold over all selected layers together (`global`, which lets layers with many
 * redundant weights give up more) or one per layer. Biases are never touched.
 *
 * Honest note: the model keeps its dense layout and its size; ONNX Runtime's dense kernels multiply the
 * zeros like any other value, so latency does not improve. What improves is compressibility (a zero is a
 * run of identical bytes: gzip/zstd of the file or of an OTA delta shrinks) and, after fine-tuning, the
 * option of a sparse runtime. `bench/prune.ts` measures both sizes and the (unchanged) latency.
 */

export interface MagnitudePruneOptions {
  /** Fraction of weights to zero, 0–1: exactly round(sparsity × n) of the n weights in scope. */
  sparsity: number;
  /** One threshold across all layers (default) or one per layer. */
  scope?: 'global' | 'per-layer';
  /** Per-node sparsity; these layers are pruned on their own and leave the global pool. */
  perLayer?: Record<string, number>;
  /** Which ops' weights to prune (default Conv, Gemm, MatMul). */
  opTypes?: string[];
  /** Leave layers with fewer weights than this dense (small layers are often the most sensitive). */
  minParams?: number;
  onProgress?: ProgressFn;
}

export interface MagnitudeLayer {
  /** The node (first one, when several nodes share the weight). */
  node: string;
  op: string;
  /** The weight initializer that was pruned. */
  tensor: string;
  params: number;
  /** Weights that are zero after pruning (pre-existing zeros included). */
  zeroed: number;
  sparsity: number;
  /** Sparsity asked for this layer (per-layer), or the global target. */
  target: number;
}

export interface MagnitudeReport {
  scope: 'global' | 'per-layer';
  sparsity: number;
  layers: MagnitudeLayer[];
  /** Zeros / weights over all pruned layers. */
  globalSparsity: number;
  /** Weights in the pruned layers, and zeros among them. */
  params: number;
  zeroed: number;
  skipped: PruneSkip[];
}

export interface MagnitudePruneResult {
  model: ModelProto;
  report: MagnitudeReport;
}

const DEFAULT_OPS = ['Conv', 'Gemm', 'MatMul'];

function checkFraction(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 1) {
    throw new OutpostError('VALIDATION_FAILED', `${what} must be a number in [0, 1], got ${String(v)}`);
  }
  return v;
}

interface Candidate {
  node: string;
  op: string;
  tensor: TensorProto;
  values: Float32Array;
}

/**
 * Zeroes exactly `k` entries of `segments` (taken as one sequence): all those with |w| below the k-th
 * smallest magnitude, then ties at that magnitude in order, so the count is exact even with repeated values.
 *
 * @example
 * const w = new Float32Array([0.3, -0.1, 0.2]);
 * zeroSmallest([w], 2); // w = [0.3, 0, 0]
 */
export function zeroSmallest(segments: Float32Array[], k: number): void {
  const total = segments.reduce((a, s) => a + s.length, 0);
  if (k <= 0 || total === 0) return;
  if (k >= total) {
    for (const s of segments) s.fill(0);
    return;
  }
  const abs = new Float32Array(total);
  let o = 0;
  for (const s of segments) for (let i = 0; i < s.length; i++) abs[o++] = Math.abs(s[i] ?? 0);
  abs.sort();
  const t = abs[k - 1] ?? 0;
  // First index holding t: everything before it is strictly smaller and is zeroed; k − that many ties follow.
  let lo = 0;
  let hi = k - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((abs[mid] ?? 0) < t) lo = mid + 1;
    else hi = mid;
  }
  let ties = k - lo;
  for (const s of segments) {
    for (let i = 0; i < s.length; i++) {
      const a = Math.abs(s[i] ?? 0);
      if (a < t) s[i] = 0;
      else if (a === t && ties > 0) {
        s[i] = 0;
        ties--;
      }
    }
  }
}

function subgraphNodes(graph: GraphProto, ops: Set<string>, out: PruneSkip[], inSub: boolean): void {
  for (const n of graph.node ?? []) {
    if (inSub && ops.has(n.op_type ?? '') && !n.domain) {
      out.push({ node: nodeLabel(n), op: n.op_type ?? '', reason: 'inside a subgraph (If/Loop/Scan body)' });
    }
    for (const g of subgraphsOf(n)) subgraphNodes(g, ops, out, true);
  }
}

/**
 * Magnitude-prunes the constant weights of a model to the requested sparsity; the input model is not
 * modified. Layers it cannot prune (weight computed at run time, not float32, shared with another op,
 * smaller than `minParams`, inside a subgraph) are listed in `report.skipped` with the reason.
 *
 * @example
 * const { model: sparse, report } = pruneMagnitude(model, { sparsity: 0.8, scope: 'global' });
 * console.log(report.globalSparsity); // 0.8
 */
export function pruneMagnitude(model: ModelProto, opts: MagnitudePruneOptions): MagnitudePruneResult {
  const m = requireGraph(model);
  if (!opts || typeof opts !== 'object') throw new OutpostError('VALIDATION_FAILED', 'options are required');
  const sparsity = checkFraction(opts.sparsity, 'sparsity');
  const scope = opts.scope ?? 'global';
  if (scope !== 'global' && scope !== 'per-layer') {
    throw new OutpostError(
      'VALIDATION_FAILED',
      `scope must be 'global' or 'per-layer', got ${String(scope)}`,
    );
  }
  const opTypes = opts.opTypes ?? DEFAULT_OPS;
  if (!Array.isArray(opTypes) || opTypes.length === 0 || opTypes.some((o) => typeof o !== 'string' || !o)) {
    throw new OutpostError('VALIDATION_FAILED', 'opTypes must be a non-empty list of op names');
  }
  const minParams = opts.minParams ?? 0;
  if (!Number.isInteger(minParams) || minParams < 0) {
    throw new OutpostError('VALIDATION_FAILED', `minParams must be a non-negative integer, got ${minParams}`);
  }
  const perLayer = new Map<string, number>();
  for (const [name, v] of Object.entries(opts.perLayer ?? {})) {
    perLayer.set(name, checkFraction(v, `perLayer[${name}]`));
  }
  const onProgress = progressOf(opts.onProgress);
  const ops = new Set(opTypes);
  const ix = indexGraph(m);

  const skipped: PruneSkip[] = [];
  const byTensor = new Map<string, Candidate>();
  const seenNodes = new Set<string>();
  for (const n of m.graph.node ?? []) {
    const op = n.op_type ?? '';
    if (!ops.has(op) || n.domain) continue;
    const label = nodeLabel(n);
    seenNodes.add(label);
    // The weight is input 1 (Conv, Gemm, MatMul B); a MatMul may hold its constant on the left instead.
    let name = n.input?.[1];
    if (op === 'MatMul' && !ix.initializers.has(name ?? '') && ix.initializers.has(n.input?.[0] ?? '')) {
      name = n.input?.[0];
    }
    const t = writableFloatInitializer(ix, name, true);
    if (typeof t === 'string') {
      skipped.push({ node: label, op, reason: t });
      continue;
    }
    const tname = t.name ?? '';
    const prior = byTensor.get(tname);
    if (prior) continue; // shared weight: pruned once, reported under its first node
    const foreign = (ix.consumers.get(tname) ?? []).find(
      (c) => !ops.has(c.node.op_type ?? '') || !!c.node.domain,
    );
    if (foreign || ix.subgraphReads.has(tname) || ix.graphOutputs.has(tname)) {
      const who = foreign
        ? `${nodeLabel(foreign.node)} (${foreign.node.op_type})`
        : 'a subgraph or graph output';
      skipped.push({ node: label, op, reason: `${tname} is also read by ${who}` });
      continue;
    }
    const params = elementCount(tensorDims(t));
    if (params < minParams) {
      skipped.push({ node: label, op, reason: `${params} weights < minParams ${minParams}` });
      continue;
    }
    const values = tensorToFloat32(t); // a private copy: readTensor always copies
    if (values.some((v) => Number.isNaN(v))) {
      skipped.push({ node: label, op, reason: `${tname} contains NaN` });
      continue;
    }
    byTensor.set(tname, { node: label, op, tensor: t, values });
  }
  subgraphNodes(m.graph, ops, skipped, false);
  for (const name of perLayer.keys()) {
    if (!seenNodes.has(name)) {
      throw new OutpostError(
        'VALIDATION_FAILED',
        `perLayer names ${name}, which is not a ${opTypes.join('/')} node`,
      );
    }
  }

  const candidates = [...byTensor.values()];
  const targetOf = (c: Candidate) => perLayer.get(c.node) ?? sparsity;
  const own = candidates.filter((c) => scope === 'per-layer' || perLayer.has(c.node));
  const pooled = candidates.filter((c) => !own.includes(c));
  const total = own.length + (pooled.length > 0 ? 1 : 0);
  let done = 0;
  for (const c of own) {
    zeroSmallest([c.values], Math.round(targetOf(c) * c.values.length));
    onProgress?.(++done, total, c.node);
  }
  if (pooled.length > 0) {
    const n = pooled.reduce((a, c) => a + c.values.length, 0);
    zeroSmallest(
      pooled.map((c) => c.values),
      Math.round(sparsity * n),
    );
    onProgress?.(++done, total, 'global threshold');
  }

  const replaced = new Map<string, TensorProto>();
  const layers: MagnitudeLayer[] = [];
  for (const c of candidates) {
    const name = c.tensor.name ?? '';
    replaced.set(name, replaceFloatData(c.tensor, c.values, tensorDims(c.tensor)));
    let zeroed = 0;
    for (const v of c.values) if (v === 0) zeroed++;
    layers.push({
      node: c.node,
      op: c.op,
      tensor: name,
      params: c.values.length,
      zeroed,
      sparsity: c.values.length ? zeroed / c.values.length : 0,
      target: targetOf(c),
    });
  }
  const params = layers.reduce((a, l) => a + l.params, 0);
  const zeroed = layers.reduce((a, l) => a + l.zeroed, 0);
  return {
    model: withInitializers(m, replaced),
    report: {
      scope,
      sparsity,
      layers,
      globalSparsity: params ? zeroed / params : 0,
      params,
      zeroed,
      skipped,
    },
  };
}
