import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { OutpostError, type InferenceTensor, type TensorDtype } from '@outpost/protocol';
import { argmax, MNIST_FP32, mnistEval } from '../testing/index.ts';
import { floatToHalf, halfToFloat, ModelRuntime } from './index.ts';
import { checkTensor, type TensorMeta } from './tensors.ts';

function codeOf(err: unknown): string {
  assert.ok(err instanceof OutpostError, String(err));
  return err.code;
}

const spec = (name: string, dtype: TensorDtype, shape: (number | string)[]) => ({ name, dtype, shape });

describe('ModelRuntime on the reference MNIST model', () => {
  test('runs a batch and reports time inside run()', async () => {
    const rt = await ModelRuntime.load(MNIST_FP32, {
      intraOpThreads: 1,
      expect: {
        inputs: [spec('input', 'float32', ['batch', 1, 28, 28])],
        outputs: [spec('logits', 'float32', [])],
      },
    });
    const { x, y } = mnistEval(3);
    const { outputs, inferMs } = await rt.infer({
      input: { dtype: 'float32', shape: [3, 1, 28, 28], data: [...x] },
    });
    assert.ok(inferMs > 0);
    const logits = outputs.logits;
    assert.deepEqual(logits?.shape, [3, 10]);
    const preds = [0, 1, 2].map((i) => argmax((logits?.data as number[]).slice(i * 10, i * 10 + 10)));
    assert.deepEqual(preds, y);
    await rt.release();
    await assert.rejects(
      rt.infer({ input: { dtype: 'float32', shape: [1, 1, 28, 28], data: new Array(784).fill(0) } }),
      (e) => codeOf(e) === 'NO_ACTIVE_MODEL',
    );
  });

  test('release() waits for a running inference', async () => {
    const rt = await ModelRuntime.load(MNIST_FP32, { intraOpThreads: 1 });
    const { x } = mnistEval(64);
    const running = rt.infer({ input: { dtype: 'float32', shape: [64, 1, 28, 28], data: [...x] } });
    await rt.release();
    const { outputs } = await running;
    assert.equal(outputs.logits?.data.length, 640);
  });

  test('rejects bad inputs with TENSOR_SHAPE_MISMATCH before running', async () => {
    const rt = await ModelRuntime.load(MNIST_FP32, { intraOpThreads: 1 });
    const zeros = (n: number) => new Array<number>(n).fill(0);
    const cases: [Record<string, InferenceTensor>, RegExp][] = [
      [{}, /missing input 'input'/],
      [
        {
          input: { dtype: 'float32', shape: [1, 1, 28, 28], data: zeros(784) },
          extra: { dtype: 'float32', shape: [1], data: [0] },
        },
        /unknown input 'extra'/,
      ],
      [{ input: { dtype: 'float32', shape: [1, 28, 28], data: zeros(784) } }, /rank 3/],
      [
        { input: { dtype: 'float32', shape: [1, 3, 28, 28], data: zeros(2352) } },
        /dimension 1 is 3, the model expects 1/,
      ],
      [
        { input: { dtype: 'float32', shape: [0, 1, 28, 28], data: [] } },
        /dimension 0 \(batch\) must be at least 1/,
      ],
      [
        { input: { dtype: 'float32', shape: [2, 1, 28, 28], data: zeros(784) } },
        /784 values for shape \[2,1,28,28\], which needs 1568/,
      ],
      [
        { input: { dtype: 'float64', shape: [1, 1, 28, 28], data: zeros(784) } },
        /dtype float64, the model expects float32/,
      ],
      [{ input: { dtype: 'float32', shape: [1, 1, 28, 28], data: [...zeros(783), 'x'] } }, /value 783/],
      [{ input: { dtype: 'float32', shape: [1, 1, 28, 28], dataB64: 'AAAA' } }, /dataB64 holds 3 bytes/],
    ];
    for (const [inputs, message] of cases) {
      await assert.rejects(rt.infer(inputs), (e: Error) => {
        assert.equal(codeOf(e), 'TENSOR_SHAPE_MISMATCH');
        assert.match(e.message, message);
        return true;
      });
    }
    await rt.release();
  });

  test('a file that is not ONNX is ONNX_PARSE_FAILED; a manifest naming other tensors is VALIDATION_FAILED', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'outpost-rt-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const junk = join(dir, 'junk.onnx');
    writeFileSync(junk, 'not a model');
    await assert.rejects(
      ModelRuntime.load(junk, { intraOpThreads: 1 }),
      (e) => codeOf(e) === 'ONNX_PARSE_FAILED',
    );
    await assert.rejects(
      ModelRuntime.load(MNIST_FP32, {
        intraOpThreads: 1,
        expect: { inputs: [spec('image', 'float32', [])], outputs: [spec('logits', 'float32', [])] },
      }),
      (e: Error) => codeOf(e) === 'VALIDATION_FAILED' && /\[input\].*\[image\]/.test(e.message),
    );
    await assert.rejects(
      ModelRuntime.load(MNIST_FP32, {
        intraOpThreads: 1,
        expect: { inputs: [spec('input', 'uint8', [])], outputs: [spec('logits', 'float32', [])] },
      }),
      (e) => codeOf(e) === 'VALIDATION_FAILED',
    );
  });
});

describe('tensor checks', () => {
  const dimArb = fc.oneof(fc.integer({ min: 1, max: 4 }), fc.constantFrom('batch', 'n'));
  test('a request passes exactly when rank, fixed dims, symbolic dims (>= 1) and length agree', () => {
    fc.assert(
      fc.property(
        fc.array(dimArb, { minLength: 1, maxLength: 4 }),
        fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 4 }),
        fc.integer({ min: -1, max: 1 }),
        (metaShape, reqShape, lengthDelta) => {
          const meta: TensorMeta = { name: 'x', dtype: 'float32', shape: metaShape };
          const count = reqShape.reduce((a, b) => a * b, 1);
          const length = Math.max(0, count + lengthDelta);
          const t: InferenceTensor = {
            dtype: 'float32',
            shape: reqShape,
            data: new Array<number>(length).fill(0.5),
          };
          const shapeOk =
            metaShape.length === reqShape.length &&
            metaShape.every((d, i) => (typeof d === 'number' ? d === reqShape[i] : (reqShape[i] ?? 0) >= 1));
          const ok = shapeOk && length === count;
          let passed = true;
          try {
            checkTensor('x', t, meta);
          } catch (err) {
            assert.equal(codeOf(err), 'TENSOR_SHAPE_MISMATCH');
            passed = false;
          }
          assert.equal(passed, ok);
        },
      ),
    );
  });

  test('integer dtypes check range and integrality', () => {
    const meta: TensorMeta = { name: 'x', dtype: 'int8', shape: [2] };
    assert.equal(checkTensor('x', { dtype: 'int8', shape: [2], data: [-128, 127] }, meta), 2);
    assert.throws(
      () => checkTensor('x', { dtype: 'int8', shape: [2], data: [0, 128] }, meta),
      /not a valid int8/,
    );
    assert.throws(
      () => checkTensor('x', { dtype: 'int8', shape: [2], data: [0, 1.5] }, meta),
      /not a valid int8/,
    );
  });

  test('float16 conversion is exact for every half value', () => {
    for (let h = 0; h < 0x10000; h++) {
      const f = halfToFloat(h);
      if (Number.isNaN(f)) continue;
      assert.equal(floatToHalf(f), h, `half 0x${h.toString(16)}`);
    }
    fc.assert(
      fc.property(fc.double({ min: -65000, max: 65000, noNaN: true }), (x) => {
        const back = halfToFloat(floatToHalf(x));
        assert.ok(Math.abs(back - x) <= Math.max(Math.abs(x) * 2 ** -11, 2 ** -25), `${x} -> ${back}`);
      }),
    );
  });
});
