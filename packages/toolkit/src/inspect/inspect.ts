import type { TensorDtype, TensorSpec } from '@outpost/protocol';
import { OutpostError } from '@outpost/protocol';
import {
  dataTypeToDtype,
  dataTypeName,
  decodeModel,
  encodeModel,
  int64ToNumber,
  subgraphsOf,
  tensorByteSize,
} from '../onnx/index.ts';
import type { GraphProto, ModelProto, ValueInfoProto } from '../onnx/index.ts';
import { tensorElementCount } from '../onnx/index.ts';

export interface OpsetInfo {
  /** `ai.onnx` for the default domain (stored as the empty string). */
  domain: string;
  version: number;
}

export interface ModelInspection {
  irVersion: number;
  producer: string;
  opsets: OpsetInfo[];
  /** Nodes of the main graph plus those of every subgraph (If/Loop/Scan bodies). */
  nodeCount: number;
  /** opType (prefixed by its domain when not the default one) → count, subgraphs included. */
  ops: Record<string, number>;
  /** Total elements of all initializers (subgraph initializers included). */
  parameters: number;
  /** Bytes the initializers' payloads occupy. */
  parameterBytes: number;
  /** Size of the encoded model file (encoded on the fly when given a decoded model). */
  sizeBytes: number;
  /** Real graph inputs: initializers that old exporters also list as inputs are left out. */
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /** Number of initializers of the main graph. */
  initializers: number;
}

/**
 * Converts a graph input/output to the protocol's TensorSpec. Symbolic dims keep their name
 * (`batch`); dims with neither a value nor a name become `?`. Non-tensor values (sequences, maps) and
 * element types the protocol cannot express throw ONNX_UNSUPPORTED.
 *
 * @example
 * valueInfoToSpec(model.graph.input[0]) // { name: 'input', dtype: 'float32', shape: ['batch', 1, 28, 28] }
 */
export function valueInfoToSpec(vi: ValueInfoProto): TensorSpec {
  const name = vi.name ?? '';
  const tt = vi.type?.tensor_type;
  if (!tt) throw new OutpostError('ONNX_UNSUPPORTED', `value ${name} is not a tensor`);
  const elem = tt.elem_type ?? 0;
  const dtype: TensorDtype | undefined = dataTypeToDtype(elem);
  if (!dtype)
    throw new OutpostError('ONNX_UNSUPPORTED', `value ${name} has element type ${dataTypeName(elem)}`);
  const shape = (tt.shape?.dim ?? []).map((d): number | string => {
    if (d.dim_param) return d.dim_param;
    if (
      d.dim_value !== null &&
      d.dim_value !== undefined &&
      Object.prototype.hasOwnProperty.call(d, 'dim_value')
    ) {
      return int64ToNumber(d.dim_value);
    }
    return '?';
  });
  return { name, dtype, shape };
}

function countOps(graph: GraphProto, ops: Record<string, number>): number {
  let n = 0;
  for (const node of graph.node ?? []) {
    const key = node.domain ? `${node.domain}.${node.op_type ?? ''}` : (node.op_type ?? '');
    ops[key] = (ops[key] ?? 0) + 1;
    n++;
    for (const g of subgraphsOf(node)) n += countOps(g, ops);
  }
  return n;
}

function sumParameters(graph: GraphProto, acc: { count: number; bytes: number }): void {
  for (const t of graph.initializer ?? []) {
    acc.count += tensorElementCount(t);
    acc.bytes += tensorByteSize(t);
  }
  for (const node of graph.node ?? []) for (const g of subgraphsOf(node)) sumParameters(g, acc);
}

/**
 * Summarises a model: versions, opsets, op histogram, parameter count and I/O specs.
 * Accepts encoded bytes (anything else is ONNX_PARSE_FAILED) or an already decoded model.
 *
 * @example
 * const info = inspectModel(await readFile('mnist_cnn.onnx'));
 * console.log(info.parameters, info.inputs[0].shape); // 108618 ['batch', 1, 28, 28]
 */
export function inspectModel(model: Uint8Array | ModelProto, sizeBytes?: number): ModelInspection {
  const decoded = model instanceof Uint8Array ? decodeModel(model) : model;
  const graph = decoded.graph;
  if (!graph) throw new OutpostError('ONNX_PARSE_FAILED', 'model has no graph');
  const ops: Record<string, number> = {};
  const nodeCount = countOps(graph, ops);
  const params = { count: 0, bytes: 0 };
  sumParameters(graph, params);
  const initNames = new Set((graph.initializer ?? []).map((t) => t.name));
  return {
    irVersion: int64ToNumber(decoded.ir_version),
    producer: [decoded.producer_name, decoded.producer_version].filter(Boolean).join(' '),
    opsets: (decoded.opset_import ?? []).map((o) => ({
      domain: o.domain || 'ai.onnx',
      version: int64ToNumber(o.version),
    })),
    nodeCount,
    ops,
    parameters: params.count,
    parameterBytes: params.bytes,
    sizeBytes: sizeBytes ?? (model instanceof Uint8Array ? model.length : encodeModel(decoded).length),
    inputs: (graph.input ?? []).filter((vi) => !initNames.has(vi.name)).map(valueInfoToSpec),
    outputs: (graph.output ?? []).map(valueInfoToSpec),
    initializers: graph.initializer?.length ?? 0,
  };
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

function formatSpec(s: TensorSpec): string {
  return `${s.name}  ${s.dtype}[${s.shape.join(', ')}]`;
}

/**
 * Renders an inspection as an aligned plain-text table for the CLI.
 *
 * @example
 * console.log(formatInspection(inspectModel(bytes)));
 */
export function formatInspection(r: ModelInspection): string {
  const rows: [string, string][] = [
    ['IR version', String(r.irVersion)],
    ['producer', r.producer || '-'],
    ['opsets', r.opsets.map((o) => `${o.domain} ${o.version}`).join(', ') || '-'],
    ['size', `${formatBytes(r.sizeBytes)} (${r.sizeBytes} bytes)`],
    [
      'parameters',
      `${r.parameters.toLocaleString('en-US')} in ${r.initializers} initializers (${formatBytes(r.parameterBytes)})`,
    ],
    ['nodes', String(r.nodeCount)],
  ];
  for (const [i, s] of r.inputs.entries()) rows.push([i === 0 ? 'inputs' : '', formatSpec(s)]);
  for (const [i, s] of r.outputs.entries()) rows.push([i === 0 ? 'outputs' : '', formatSpec(s)]);
  const width = Math.max(...rows.map(([k]) => k.length));
  const lines = rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`);
  const ops = Object.entries(r.ops).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  if (ops.length > 0) {
    const opWidth = Math.max(...ops.map(([k]) => k.length));
    lines.push('', `${'op'.padEnd(opWidth)}  count`);
    for (const [op, n] of ops) lines.push(`${op.padEnd(opWidth)}  ${String(n).padStart(5)}`);
  }
  return lines.join('\n');
}
