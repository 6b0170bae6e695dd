import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { MNIST_CNN, MNIST_EVAL_X, MNIST_EVAL_Y } from '../testing/fixtures.ts';
import { buildModel, floatInput, node, randomTensor } from '../testing/build.ts';
import {
  DataType,
  decodeModel,
  encodeModel,
  float16ToNumber,
  intAttr,
  intsAttr,
  makeTensor,
  readTensor,
  tensorAttr,
  toLong,
} from '../onnx/index.ts';
import type { ModelProto } from '../onnx/index.ts';
import { loadMnistU8 } from '../datasets/index.ts';
import { compareOutputs, evaluate } from '../evaluate/index.ts';
import { loadModel, ort, runSession } from '../runtime/index.ts';
import { ORT_CPU_FLOAT16_OPS, convertFp16, float32ToFloat16Bits, toFloat16Array } from './index.ts';

const ops = (m: ModelProto) => (m.graph?.node ?? []).map((n) => n.op_type);

describe('float32 → float16 bits', () => {
  test('known values, rounding to nearest even, specials', () => {
    const cases: [number, number][] = [
      [1, 0x3c00],
      [-2, 0xc000],
      [65504, 0x7bff],
      [65519, 0x7bff],
      [65520, 0x7c00],
      [2 ** -14, 0x0400],
      [2 ** -24, 0x0001],
      [2 ** -25, 0x0000], // tie between 0 and the smallest subnormal: even wins
      [3 * 2 ** -26, 0x0001],
      [1 + 2 ** -11, 0x3c00], // tie: even mantissa
      [1 + 3 * 2 ** -11, 0x3c02], // tie: rounds up to even
      [-0, 0x8000],
      [Infinity, 0x7c00],
    ];
    for (const [v, bits] of cases) assert.equal(float32ToFloat16Bits(v), bits, `${v}`);
    assert.ok(Number.isNaN(float16ToNumber(float32ToFloat16Bits(NaN))));
  });

  test('property: the result is the nearest float16 (no neighbour is closer)', () => {
    fc.assert(
      fc.property(fc.float({ min: -65000, max: 65000, noNaN: true }), (v) => {
        const bits = float32ToFloat16Bits(v);
        const err = Math.abs(float16ToNumber(bits) - v);
        for (const n of [bits - 1, bits + 1]) {
          if ((n & 0x7fff) >= 0x7c00 || n < 0 || n > 0xffff) continue;
          assert.ok(Math.abs(float16ToNumber(n) - v) >= err, `${v}: ${bits} vs ${n}`);
        }
      }),
      { numRuns: 2000, seed: 4 },
    );
  });

  test('clamping counts what float16 cannot hold', () => {
    const c = toFloat16Array(new Float32Array([1e6, -7e4, 1e-9, -2e-8, 0, 0.5, Infinity]));
    assert.equal(c.overflow, 2);
    assert.equal(c.underflow, 2);
    assert.deepEqual([...c.bits].map(float16ToNumber), [
      65504,
      -65504,
      2 ** -24,
      -(2 ** -24),
      0,
      0.5,
      Infinity,
    ]);
  });
});

describe('convertFp16 on the reference CNN', async () => {
  const fp32 = readFileSync(MNIST_CNN);
  const evalSet = await loadMnistU8(MNIST_EVAL_X, MNIST_EVAL_Y);
  const ref = await evaluate(fp32, evalSet, { batchSize: 100 });

  test('default (CPU kernels): half-size weights, float32 compute, outputs match fp32', async () => {
    const source = decodeModel(fp32);
    const { model, report } = await convertFp16(source);
    const bytes = encodeModel(model);
    assert.equal(report.sizeAfter, bytes.length);
    assert.ok(bytes.length <= 0.51 * fp32.length, `ratio ${bytes.length / fp32.length}`);
    assert.equal(report.initializersConverted, 8);
    assert.ok((model.graph?.initializer ?? []).every((t) => t.data_type === DataType.FLOAT16));
    assert.deepEqual(report.converted, []);
    const why = new Map(report.skipped.map((s) => [s.op, s.reason]));
    assert.match(why.get('Conv')!, /CPU provider has no float16 Conv kernel/);
    assert.match(why.get('Flatten')!, /float inputs are float32/);
    assert.equal(report.skipped.length, 10);
    // One Cast per weight (folded by ORT at load); the float32 input feeds Conv directly.
    assert.equal(report.castsAdded, 8);
    assert.equal(model.graph?.input?.[0]?.type?.tensor_type?.elem_type, DataType.FLOAT);
    assert.ok(Buffer.from(encodeModel(source)).equals(fp32));

    const q = await evaluate(bytes, evalSet, { batchSize: 100 });
    const cmp = compareOutputs(ref, q);
    assert.ok(cmp.top1Agreement >= 0.999 && cmp.meanCosine > 0.99999, JSON.stringify(cmp));
    assert.ok(Math.abs(q.accuracy - ref.accuracy) <= 0.001);
  });

  test('cpuKernelsOnly: false runs every op in float16; Casts only at the kept float32 input/output', async () => {
    const { model, report } = await convertFp16(decodeModel(fp32), { cpuKernelsOnly: false });
    assert.equal(report.converted.length, 10);
    assert.deepEqual(report.skipped, []);
    assert.equal(report.castsAdded, 2);
    assert.equal(ops(model)[0], 'Cast');
    assert.deepEqual(model.graph?.node?.at(-1)?.output, ['logits']);
    const q = await evaluate(encodeModel(model), evalSet, { batchSize: 100 });
    const cmp = compareOutputs(ref, q);
    assert.ok(cmp.top1Agreement >= 0.998 && cmp.meanCosine > 0.9999, JSON.stringify(cmp));
  });

  test('keepIoTypes: false makes the graph inputs/outputs float16', async () => {
    const { model } = await convertFp16(decodeModel(fp32), { keepIoTypes: false, cpuKernelsOnly: false });
    assert.equal(model.graph?.input?.[0]?.type?.tensor_type?.elem_type, DataType.FLOAT16);
    assert.equal(model.graph?.output?.[0]?.type?.tensor_type?.elem_type, DataType.FLOAT16);
    assert.ok(!ops(model).includes('Cast'));
    const m = await loadModel(encodeModel(model));
    const x = toFloat16Array(evalSet.x.subarray(0, 784)).bits;
    const out = await runSession(m.session, { input: new ort.Tensor('float16', x, [1, 1, 28, 28]) });
    await m.release();
    const logits = [...(out.logits?.data as Uint16Array)].map(float16ToNumber);
    const best = logits.indexOf(Math.max(...logits));
    assert.equal(best, ref.predictions[0]);
  });
});

describe('convertFp16 rewrites', () => {
  // x → Transpose → Max(·, Constant) → Relu → Reshape → y, plus Cast(to FLOAT) of the Max output → z.
  const chain = (w: Float32Array) =>
    buildModel({
      nodes: [
        node('Constant', [], ['k'], 'const', [tensorAttr('value', makeTensor('k', w, [4]))]),
        node('Transpose', ['x'], ['t'], 'transpose', [intsAttr('perm', [1, 0])]),
        node('Max', ['t', 'k'], ['m'], 'max'),
        node('Relu', ['m'], ['r'], 'relu'),
        node('Reshape', ['r', 'shape'], ['y'], 'reshape'),
        node('Cast', ['m'], ['z'], 'cast', [intAttr('to', DataType.FLOAT)]),
      ],
      inputs: [floatInput('x', [4, 3])],
      outputs: [floatInput('y', [12]), floatInput('z', [3, 4])],
      initializers: [makeTensor('shape', new BigInt64Array([-1n]), [1])],
    });
  const x = Float32Array.from({ length: 12 }, (_, i) => (i - 6) * 0.37);

  async function run(model: ModelProto, input: ort.Tensor): Promise<Record<string, ort.Tensor>> {
    const m = await loadModel(encodeModel(model));
    try {
      return await runSession(m.session, { x: input });
    } finally {
      await m.release();
    }
  }

  test('native float16 ops run in float16 where their inputs are; Constant values and Cast targets follow', async () => {
    const m = chain(new Float32Array([0.1, -0.2, 1e6, 2e-9]));
    const { model, report } = await convertFp16(m, { keepIoTypes: false });
    const kinds = Object.fromEntries(report.converted.map((c) => [c.node, 'fp16']));
    for (const s of report.skipped) kinds[s.node] = s.reason;
    assert.equal(kinds.const, 'fp16');
    assert.equal(kinds.transpose, 'fp16');
    assert.equal(kinds.max, 'fp16');
    assert.equal(kinds.cast, 'fp16');
    assert.match(kinds.relu!, /no float16 Relu kernel/);
    assert.match(kinds.reshape!, /float inputs are float32/);
    assert.deepEqual(report.clamped, { overflow: 1, underflow: 1, tensors: ['k'] });
    const constant = model.graph?.node?.find((n) => n.name === 'const');
    assert.equal(constant?.attribute?.[0]?.t?.data_type, DataType.FLOAT16);
    const cast = model.graph?.node?.find((n) => n.name === 'cast');
    assert.equal(Number(cast?.attribute?.[0]?.i?.toString()), DataType.FLOAT16);
    // y comes from float32 nodes and stays float32; z is now float16.
    assert.equal(model.graph?.output?.[0]?.type?.tensor_type?.elem_type, DataType.FLOAT);
    assert.equal(model.graph?.output?.[1]?.type?.tensor_type?.elem_type, DataType.FLOAT16);
    assert.equal(report.castsAdded, 1, 'one Cast to float32 in front of the Relu');

    const out = await run(model, new ort.Tensor('float16', toFloat16Array(x).bits, [4, 3]));
    const ref = await run(m, new ort.Tensor('float32', x, [4, 3]));
    const y = out.y?.data as Float32Array;
    const yRef = ref.y?.data as Float32Array;
    assert.equal(y[2], 65504, 'the clamped constant wins the Max');
    for (let i = 0; i < 12; i++) if (yRef[i]! < 1000) assert.ok(Math.abs(y[i]! - yRef[i]!) < 2e-3, `${i}`);
    const z = [...(out.z?.data as Uint16Array)].map(float16ToNumber);
    assert.ok(z.every(Number.isFinite));
  });

  test('with float32 I/O (default) the chain stays float32 on CPU and the Constant is cast once', async () => {
    const { model, report } = await convertFp16(chain(new Float32Array([0.1, -0.2, 0.3, 0.4])));
    assert.deepEqual(
      report.converted.map((c) => c.node),
      ['const'],
    );
    assert.ok(
      report.skipped.some((s) => s.node === 'transpose' && /float inputs are float32/.test(s.reason)),
    );
    assert.equal(report.castsAdded, 1);
    const out = await run(model, new ort.Tensor('float32', x, [4, 3]));
    assert.equal(out.z?.type, 'float32');
    assert.equal(out.y?.type, 'float32');
  });

  test('blockList and nodeBlockList keep nodes in float32, with Casts around them', async () => {
    const m = buildModel({
      nodes: [node('MatMul', ['x', 'W'], ['h'], 'mm1'), node('MatMul', ['h', 'W'], ['y'], 'mm2')],
      inputs: [floatInput('x', [2, 4])],
      outputs: [floatInput('y', [2, 4])],
      initializers: [randomTensor('W', [4, 4], 1)],
    });
    const { model, report } = await convertFp16(m, { cpuKernelsOnly: false, nodeBlockList: ['mm2'] });
    assert.deepEqual(report.skipped, [{ node: 'mm2', op: 'MatMul', reason: 'in nodeBlockList' }]);
    // x → fp16, W → fp32 for mm2, h → fp32 for mm2.
    assert.equal(report.castsAdded, 3);
    const byList = await convertFp16(m, { cpuKernelsOnly: false, blockList: ['MatMul'] });
    assert.equal(byList.report.converted.length, 0);
    assert.ok(byList.report.skipped.every((s) => s.reason === 'in blockList'));
    const input = new ort.Tensor(
      'float32',
      Float32Array.from({ length: 8 }, (_, i) => i / 8),
      [2, 4],
    );
    const a = (await run(m, input)).y?.data as Float32Array;
    const b = (await run(model, input)).y?.data as Float32Array;
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) < 1e-2 * (1 + Math.abs(a[i]!)));
  });

  test('errors: no graph → ONNX_PARSE_FAILED, a model ORT cannot load → ONNX_UNSUPPORTED', async () => {
    await assert.rejects(convertFp16({ ir_version: toLong(8) }), { code: 'ONNX_PARSE_FAILED' });
    const bad = buildModel({
      nodes: [node('NoSuchOp', ['x'], ['y'])],
      inputs: [floatInput('x', [1])],
      outputs: [floatInput('y', [1])],
    });
    await assert.rejects(convertFp16(bad), { code: 'ONNX_UNSUPPORTED' });
  });
});

describe('ORT_CPU_FLOAT16_OPS matches the installed ONNX Runtime', () => {
  /** Does ORT insert Casts around a float16 node of this op (i.e. it has no float16 CPU kernel)? */
  async function insertsCasts(op: string, extra: Partial<Parameters<typeof buildModel>[0]> = {}) {
    const dir = mkdtempSync(join(tmpdir(), 'outpost-fp16-'));
    try {
      const model = buildModel({
        nodes: [node(op, ['x', ...(extra.initializers ?? []).map((t) => t.name ?? '')], ['y'], op)],
        inputs: [floatInput('x', [2, 4], DataType.FLOAT16)],
        outputs: [{ name: 'y' }],
        ...extra,
      });
      const path = join(dir, 'optimized.onnx');
      const s = await ort.InferenceSession.create(encodeModel(model), {
        graphOptimizationLevel: 'disabled',
        optimizedModelFilePath: path,
        logSeverityLevel: 3,
      });
      await s.release();
      return ops(decodeModel(readFileSync(path))).filter((o) => o === 'Cast').length > 0;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const half = (name: string, dims: number[]) =>
    makeTensor(name, new Uint16Array(dims.reduce((a, b) => a * b, 1)).fill(0x3c00), dims, DataType.FLOAT16);

  test('listed ops run natively, others get Casts', async () => {
    assert.ok(ORT_CPU_FLOAT16_OPS.has('Transpose') && !ORT_CPU_FLOAT16_OPS.has('Relu'));
    for (const op of ['Transpose', 'Identity', 'Flatten', 'Round'])
      assert.equal(await insertsCasts(op), false, op);
    assert.equal(await insertsCasts('Max', { initializers: [half('b', [2, 4])] }), false, 'Max');
    assert.equal(
      await insertsCasts('LayerNormalization', { initializers: [half('s', [4]), half('b', [4])] }),
      false,
      'LayerNormalization',
    );
    for (const op of ['Relu', 'Sigmoid', 'Softmax']) assert.equal(await insertsCasts(op), true, op);
    assert.equal(await insertsCasts('MatMul', { initializers: [half('w', [4, 3])] }), true, 'MatMul');
    assert.equal(await insertsCasts('Add', { initializers: [half('b', [2, 4])] }), true, 'Add');
    assert.ok(readTensor(half('t', [1])) instanceof Uint16Array);
  });
});
