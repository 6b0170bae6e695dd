import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import fc from 'fast-check';
import { OutpostError } from '@outpost/protocol';
import { MNIST_CNN, MNIST_CNN_ORT_DYNAMIC_U8, referenceModels, sileroModels } from '../testing/fixtures.ts';
import {
  DataType,
  attrFloat,
  attrInt,
  attrInts,
  attrString,
  decodeModel,
  encodeModel,
  findUnknownFields,
  float16ToNumber,
  intAttr,
  intsAttr,
  floatAttr,
  stringAttr,
  makeTensor,
  readModelFile,
  readTensor,
  tensorToFloat32,
  tensorToNumbers,
  toLong,
  writeModelFile,
  int64ToNumber,
} from './index.ts';
import type { ModelProto, NodeProto } from './index.ts';

function isParseFailure(err: unknown): boolean {
  return err instanceof OutpostError && err.code === 'ONNX_PARSE_FAILED';
}

describe('onnx codec', () => {
  const models = referenceModels();

  test('finds the reference models (3 shared + 3 Silero VAD)', () => {
    assert.ok(models.length >= 6, `only ${models.length} reference models`);
    assert.equal(sileroModels().length, 3);
  });

  for (const path of models) {
    test(`byte-stable round trip: ${basename(path)}`, () => {
      const bytes = readFileSync(path);
      const model = decodeModel(bytes);
      // No field may be unknown to the schema: otherwise it would only survive as an opaque blob.
      assert.deepEqual(findUnknownFields(model), []);
      const again = encodeModel(model);
      assert.equal(again.length, bytes.length);
      assert.ok(Buffer.from(again).equals(bytes), 'encode(decode(b)) differs from b');
    });
  }

  test('decodes the reference CNN structure', () => {
    const m = decodeModel(readFileSync(MNIST_CNN));
    assert.equal(int64ToNumber(m.ir_version), 8);
    assert.equal(m.graph.input?.[0]?.name, 'input');
    assert.deepEqual(
      m.graph.node?.map((n) => n.op_type),
      ['Conv', 'Relu', 'MaxPool', 'Conv', 'Relu', 'MaxPool', 'Flatten', 'Gemm', 'Relu', 'Gemm'],
    );
    const w = m.graph.initializer?.find((t) => t.name === 'f1.weight');
    assert.ok(w);
    const values = readTensor(w);
    assert.ok(values instanceof Float32Array);
    assert.equal(values.length, 128 * 800);
    assert.ok(values.some((v) => v !== 0));
    const gemm = m.graph.node?.find((n) => n.op_type === 'Gemm');
    assert.ok(gemm);
    assert.equal(attrInt(gemm, 'transB', 0), 1);
    assert.equal(attrInt(gemm, 'transA', 0), 0);
    assert.equal(attrFloat(gemm, 'alpha', 2), 1);
  });

  test('non-ONNX bytes, empty input and a model without graph are ONNX_PARSE_FAILED', () => {
    assert.throws(() => decodeModel(new Uint8Array()), isParseFailure);
    assert.throws(() => decodeModel(Buffer.from('{"hello": "json"}')), isParseFailure);
    assert.throws(() => decodeModel(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff])), isParseFailure);
    const noGraph = encodeModel({ ir_version: toLong(8), producer_name: 'x' });
    assert.throws(() => decodeModel(noGraph), /no graph/);
  });

  test('truncated model is ONNX_PARSE_FAILED', () => {
    const bytes = readFileSync(MNIST_CNN_ORT_DYNAMIC_U8);
    assert.throws(() => decodeModel(bytes.subarray(0, bytes.length - 100)), isParseFailure);
  });

  test('property: corrupted or truncated bytes decode or fail with ONNX_PARSE_FAILED only', () => {
    const bytes = new Uint8Array(readFileSync(MNIST_CNN_ORT_DYNAMIC_U8));
    // Structure (nodes, value infos) sits in the first few KB; weights after. Bias edits toward it.
    const structural = Math.min(bytes.length, 6000);
    const edit = fc.oneof(
      fc.record({ kind: fc.constant('set' as const), at: fc.nat(structural - 1), value: fc.nat(255) }),
      fc.record({ kind: fc.constant('set' as const), at: fc.nat(bytes.length - 1), value: fc.nat(255) }),
      fc.record({
        kind: fc.constant('truncate' as const),
        at: fc.nat(bytes.length - 1),
        value: fc.constant(0),
      }),
    );
    let decodedOk = 0;
    let failed = 0;
    fc.assert(
      fc.property(fc.array(edit, { minLength: 1, maxLength: 3 }), (edits) => {
        let b: Uint8Array = bytes.slice();
        for (const e of edits) {
          if (e.kind === 'truncate') b = b.slice(0, Math.min(e.at, b.length));
          else if (e.at < b.length) b[e.at] = e.value;
        }
        try {
          const m = decodeModel(b);
          assert.ok(m.graph);
          decodedOk++;
        } catch (err) {
          if (!isParseFailure(err)) throw err;
          failed++;
        }
      }),
      { numRuns: 300, seed: 20240601 },
    );
    assert.ok(failed > 0, 'no corruption was detected at all');
    assert.ok(decodedOk + failed === 300);
  });

  test('read/write model files atomically, with typed errors', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'outpost-onnx-'));
    try {
      const model = await readModelFile(MNIST_CNN);
      const out = join(dir, 'copy.onnx');
      const written = await writeModelFile(out, model);
      const bytes = await readFile(out);
      assert.equal(written, bytes.length);
      assert.ok(bytes.equals(readFileSync(MNIST_CNN)));
      assert.deepEqual(
        (await readdir(dir)).filter((f) => f.endsWith('.tmp')),
        [],
      );
      await assert.rejects(readModelFile(join(dir, 'missing.onnx')), { code: 'NOT_FOUND' });
      await writeFile(join(dir, 'junk.onnx'), 'not a model at all');
      await assert.rejects(readModelFile(join(dir, 'junk.onnx')), { code: 'ONNX_PARSE_FAILED' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('encodeModel rejects objects of the wrong shape', () => {
    const bad = { ir_version: 'eight', graph: {} } as unknown as ModelProto;
    assert.throws(() => encodeModel(bad), { code: 'VALIDATION_FAILED' });
  });
});

describe('tensor helpers', () => {
  test('makeTensor/readTensor round trip through a model for every typed array', () => {
    const cases = [
      makeTensor('f', new Float32Array([1.5, -2, 3.25]), [3]),
      makeTensor('d', new Float64Array([1e300, -1]), [2, 1]),
      makeTensor('i8', new Int8Array([-128, 0, 127]), [3]),
      makeTensor('u8', new Uint8Array([0, 255]), [2]),
      makeTensor('i32', new Int32Array([-5, 7]), [1, 2]),
      makeTensor('i64', new BigInt64Array([-(2n ** 62n), 9007199254740993n]), [2]),
      makeTensor('s', new Float32Array([42]), []),
    ];
    const model: ModelProto = { ir_version: toLong(8), graph: { name: 'g', initializer: cases } };
    const back = decodeModel(encodeModel(model));
    for (const [i, t] of (back.graph.initializer ?? []).entries()) {
      const orig = cases[i];
      assert.ok(orig);
      assert.equal(t.data_type, orig.data_type);
      assert.deepEqual(readTensor(t), readTensor(orig));
    }
    assert.equal(readTensor(back.graph.initializer![5]!)[1], 9007199254740993n);
    assert.throws(() => makeTensor('x', new Float32Array(3), [2, 2]), { code: 'VALIDATION_FAILED' });
  });

  test('reads typed-field storage (float_data, int64_data, int32_data) and rejects bad sizes', () => {
    assert.deepEqual(
      readTensor({ data_type: DataType.FLOAT, dims: [toLong(2)], float_data: [1, 2] }),
      new Float32Array([1, 2]),
    );
    assert.deepEqual(
      tensorToNumbers({ data_type: DataType.INT64, dims: [toLong(2)], int64_data: [toLong(-1), 5] }),
      [-1, 5],
    );
    assert.deepEqual(
      tensorToFloat32({ data_type: DataType.UINT8, dims: [toLong(2)], int32_data: [3, 250] }),
      new Float32Array([3, 250]),
    );
    assert.throws(
      () => readTensor({ data_type: DataType.FLOAT, dims: [toLong(3)], float_data: [1] }),
      isParseFailure,
    );
    assert.throws(
      () => readTensor({ data_type: DataType.FLOAT, dims: [toLong(3)], raw_data: new Uint8Array(5) }),
      isParseFailure,
    );
    assert.throws(() => readTensor({ data_type: DataType.STRING, dims: [] }), { code: 'ONNX_UNSUPPORTED' });
  });

  test('float16 decoding', () => {
    assert.equal(float16ToNumber(0x3c00), 1);
    assert.equal(float16ToNumber(0xc000), -2);
    assert.equal(float16ToNumber(0x0001), 2 ** -24);
    assert.equal(float16ToNumber(0x7c00), Infinity);
    assert.ok(Number.isNaN(float16ToNumber(0x7e00)));
    const t = { data_type: DataType.FLOAT16, dims: [toLong(2)], int32_data: [0x3c00, 0x3800] };
    assert.deepEqual(tensorToFloat32(t), new Float32Array([1, 0.5]));
  });
});

describe('attribute helpers', () => {
  const node: NodeProto = {
    op_type: 'Conv',
    attribute: [
      intAttr('group', 2),
      intsAttr('pads', [1, 1, 1, 1]),
      floatAttr('alpha', 0.5),
      stringAttr('auto_pad', 'SAME_UPPER'),
    ],
  };
  test('read back what the builders wrote, with defaults for absent attributes', () => {
    const back = decodeModel(encodeModel({ ir_version: toLong(8), graph: { node: [node] } })).graph.node?.[0];
    assert.ok(back);
    assert.equal(attrInt(back, 'group', 1), 2);
    assert.deepEqual(attrInts(back, 'pads', []), [1, 1, 1, 1]);
    assert.equal(attrFloat(back, 'alpha', 1), 0.5);
    assert.equal(attrString(back, 'auto_pad', 'NOTSET'), 'SAME_UPPER');
    assert.equal(attrInt(back, 'missing', 7), 7);
  });
  test('an attribute of the wrong type is ONNX_PARSE_FAILED, not a silent default', () => {
    assert.throws(() => attrInt(node, 'alpha', 1), isParseFailure);
    assert.throws(() => attrInts(node, 'group', []), isParseFailure);
  });
});
