/** Test-only builders for small ONNX models (runtime code does not import this file). */
import { DataType, makeTensor, toLong } from '../onnx/index.ts';
import type { AttributeProto, ModelProto, NodeProto, TensorProto, ValueInfoProto } from '../onnx/index.ts';
import { mulberry32 } from '../bench/index.ts';

export function floatInput(
  name: string,
  dims: (number | string)[],
  elem: number = DataType.FLOAT,
): ValueInfoProto {
  return {
    name,
    type: {
      tensor_type: {
        elem_type: elem,
        shape: {
          dim: dims.map((d) => (typeof d === 'string' ? { dim_param: d } : { dim_value: toLong(d) })),
        },
      },
    },
  };
}

export function node(
  op: string,
  input: string[],
  output: string[],
  name?: string,
  attribute?: AttributeProto[],
): NodeProto {
  const n: NodeProto = { op_type: op, input, output, name: name ?? `${op}_${output[0]}` };
  if (attribute) n.attribute = attribute;
  return n;
}

/** Deterministic float tensor with values in [-1, 1). */
export function randomTensor(name: string, dims: number[], seed: number): TensorProto {
  const rand = mulberry32(seed);
  const count = dims.reduce((a, b) => a * b, 1);
  const v = new Float32Array(count);
  for (let i = 0; i < count; i++) v[i] = rand() * 2 - 1;
  return makeTensor(name, v, dims);
}

export function buildModel(opts: {
  nodes: NodeProto[];
  inputs: ValueInfoProto[];
  outputs: ValueInfoProto[];
  initializers?: TensorProto[];
  opset?: number;
  irVersion?: number;
}): ModelProto {
  return {
    ir_version: toLong(opts.irVersion ?? 8),
    producer_name: 'outpost-test',
    opset_import: [{ domain: '', version: toLong(opts.opset ?? 17) }],
    graph: {
      name: 'test',
      node: opts.nodes,
      initializer: opts.initializers ?? [],
      input: opts.inputs,
      output: opts.outputs,
    },
  };
}
