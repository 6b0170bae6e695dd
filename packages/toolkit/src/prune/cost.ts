import { attrInt, tensorDims } from '../onnx/index.ts';
import type { GraphProto } from '../onnx/index.ts';
import { elementCount, nodeLabel } from './graph.ts';

/**
 * Parameters and multiply-accumulates of the compute ops (Conv, ConvTranspose, Gemm, MatMul), per sample,
 * from the weights' dims and the batch-1 shapes measured by {@link probeShapes}.
 */

export interface OpCost {
  node: string;
  op: string;
  /** Input channels (Conv: C; Gemm/MatMul: the reduced dim K). */
  inChannels: number;
  /** Output channels (Conv: M; Gemm/MatMul: N). */
  outChannels: number;
  /** Elements of the op's constant inputs (weight and bias). */
  params: number;
  /** Multiply-accumulates for one sample. */
  macs: number;
}

const COMPUTE = new Set(['Conv', 'ConvTranspose', 'Gemm', 'MatMul']);

/**
 * Cost of every compute node of the main graph, in graph order.
 *
 * @example
 * const costs = computeCosts(model.graph, await probeShapes(model));
 * const macs = costs.reduce((a, c) => a + c.macs, 0);
 */
export function computeCosts(graph: GraphProto, shapes: Map<string, number[]>): OpCost[] {
  const inits = new Map((graph.initializer ?? []).map((t) => [t.name ?? '', t]));
  const out: OpCost[] = [];
  for (const n of graph.node ?? []) {
    const op = n.op_type ?? '';
    if (!COMPUTE.has(op) || n.domain) continue;
    const params = (n.input ?? []).reduce((a, i) => {
      const t = inits.get(i);
      return t ? a + elementCount(tensorDims(t)) : a;
    }, 0);
    const y = shapes.get(n.output?.[0] ?? '') ?? [];
    const a = shapes.get(n.input?.[0] ?? '') ?? [];
    const b = shapes.get(n.input?.[1] ?? '') ?? dimsOf(inits.get(n.input?.[1] ?? ''));
    const outElems = elementCount(y);
    let inChannels = 0;
    let outChannels = 0;
    let macs = 0;
    if (op === 'Conv') {
      // Every output element is a dot product over C/group input channels × the kernel window.
      inChannels = a[1] ?? 0;
      outChannels = y[1] ?? 0;
      macs = outElems * elementCount(b.slice(1));
    } else if (op === 'ConvTranspose') {
      // Every input element is scattered over M/group output channels × the kernel window.
      inChannels = a[1] ?? 0;
      outChannels = y[1] ?? 0;
      macs = elementCount(a) * elementCount(b.slice(1));
    } else if (op === 'Gemm') {
      inChannels = (attrInt(n, 'transA', 0) ? a[0] : a[1]) ?? 0;
      outChannels = y[1] ?? 0;
      macs = outElems * inChannels;
    } else {
      inChannels = a[a.length - 1] ?? 0;
      outChannels = y[y.length - 1] ?? 0;
      macs = outElems * inChannels;
    }
    out.push({ node: nodeLabel(n), op, inChannels, outChannels, params, macs });
  }
  return out;
}

function dimsOf(t: Parameters<typeof tensorDims>[0] | undefined): number[] {
  return t ? tensorDims(t) : [];
}
