import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { MNIST_CNN, MNIST_CNN_ORT_DYNAMIC_U8, sileroModels } from '../testing/fixtures.ts';
import { DataType, decodeModel, encodeModel, makeTensor, readTensor, toLong } from '../onnx/index.ts';
import type { ModelProto } from '../onnx/index.ts';
import { formatInspection, inspectModel } from './index.ts';

describe('inspectModel', () => {
  test('reference CNN: params, ops, I/O specs with symbolic batch', () => {
    const bytes = readFileSync(MNIST_CNN);
    const r = inspectModel(bytes);
    // README: 108,618 parameters; recompute from the initializers independently of the inspector.
    const m = decodeModel(bytes);
    const expected = (m.graph.initializer ?? []).reduce((a, t) => a + readTensor(t).length, 0);
    assert.equal(r.parameters, expected);
    assert.equal(r.parameters, 108_618);
    assert.equal(r.parameterBytes, 108_618 * 4);
    assert.equal(r.sizeBytes, bytes.length);
    assert.equal(r.irVersion, 8);
    assert.match(r.producer, /^pytorch/);
    assert.deepEqual(r.opsets, [{ domain: 'ai.onnx', version: 17 }]);
    assert.deepEqual(r.ops, { Conv: 2, Relu: 3, MaxPool: 2, Flatten: 1, Gemm: 2 });
    assert.equal(r.nodeCount, 10);
    assert.deepEqual(r.inputs, [{ name: 'input', dtype: 'float32', shape: ['batch', 1, 28, 28] }]);
    assert.equal(r.outputs[0]?.name, 'logits');
    assert.equal(r.outputs[0]?.shape[1], 10);
    assert.equal(r.initializers, 8);
  });

  test('quantized reference: uint8 weights counted at 1 byte', () => {
    const r = inspectModel(readFileSync(MNIST_CNN_ORT_DYNAMIC_U8));
    assert.ok(r.ops.DynamicQuantizeLinear! >= 1);
    assert.ok(r.parameterBytes < r.parameters * 2);
  });

  test('Silero VAD: subgraph nodes are counted', () => {
    const [legacy] = sileroModels();
    assert.ok(legacy);
    const bytes = readFileSync(legacy);
    const r = inspectModel(bytes);
    const top = decodeModel(bytes).graph.node?.length ?? 0;
    assert.ok(r.nodeCount > top, `${r.nodeCount} should include subgraph nodes beyond ${top}`);
    assert.ok((r.ops.If ?? 0) > 0);
    assert.ok(r.inputs.length >= 2);
  });

  test('initializers listed as inputs (IR<4 style) are not reported as inputs', () => {
    const w = makeTensor('w', new Float32Array([1, 2]), [2]);
    const tensorType = (elem: number, dims: (number | string)[]) => ({
      tensor_type: {
        elem_type: elem,
        shape: {
          dim: dims.map((d) => (typeof d === 'string' ? { dim_param: d } : { dim_value: toLong(d) })),
        },
      },
    });
    const model: ModelProto = {
      ir_version: toLong(3),
      graph: {
        node: [{ op_type: 'Add', input: ['x', 'w'], output: ['y'] }],
        initializer: [w],
        input: [
          { name: 'x', type: tensorType(DataType.FLOAT, ['n', 2]) },
          { name: 'w', type: tensorType(DataType.FLOAT, [2]) },
        ],
        output: [{ name: 'y', type: tensorType(DataType.FLOAT, ['n', 2]) }],
      },
    };
    const r = inspectModel(encodeModel(model));
    assert.deepEqual(
      r.inputs.map((s) => s.name),
      ['x'],
    );
    assert.deepEqual(r.inputs[0]?.shape, ['n', 2]);
    assert.equal(r.parameters, 2);
  });

  test('formatInspection renders every section', () => {
    const text = formatInspection(inspectModel(readFileSync(MNIST_CNN)));
    assert.match(text, /parameters\s+108,618/);
    assert.match(text, /input {2}float32\[batch, 1, 28, 28\]/);
    assert.match(text, /Conv\s+2/);
    assert.match(text, /opsets\s+ai\.onnx 17/);
  });

  test('garbage bytes are ONNX_PARSE_FAILED', () => {
    assert.throws(() => inspectModel(new Uint8Array([1, 2, 3])), { code: 'ONNX_PARSE_FAILED' });
  });
});
