import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '@outpost/toolkit';
import { fp16Command, quantizeStaticCommand } from './quantize-modes.ts';
import type { Fp16CommandOptions, QuantizeStaticCommandOptions } from './quantize-modes.ts';

const shared =
  process.env.OUTPOST_SHARED_MODELS ?? new URL('../../../../../shared/models/', import.meta.url).pathname;
const MNIST_CNN = join(shared, 'mnist_cnn.onnx');
const TRAIN_X = join(shared, 'mnist-train-x.u8');

/** Runs a command in a child process and returns its stdout (the test runner reports on this one's). */
function capture(fn: 'quantizeStaticCommand' | 'fp16Command', input: string, opts: object): string {
  const src = new URL('./quantize-modes.ts', import.meta.url).href;
  const script = `const m = await import(${JSON.stringify(src)});
await m.${fn}(${JSON.stringify(input)}, ${JSON.stringify(opts)});`;
  return execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, OUTPOST_LOG_LEVEL: 'silent' },
  });
}

/** A float32 .npy of `n` MNIST digits shaped [n, 1, 28, 28]. */
function writeNpy(path: string, n: number, perSample = 784): void {
  const pixels = readFileSync(TRAIN_X).subarray(0, n * perSample);
  const data = Float32Array.from(pixels, (v) => v / 255);
  const dims = perSample === 784 ? `(${n}, 1, 28, 28)` : `(${n}, ${perSample})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${dims}, }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const head = Buffer.alloc(10);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(head);
  head.writeUInt16LE(header.length, 8);
  writeFileSync(path, Buffer.concat([head, Buffer.from(header, 'latin1'), Buffer.from(data.buffer)]));
}

describe('outpost quantize-static / fp16', () => {
  test('quantize-static --json from MNIST .u8 images writes a model ORT loads', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outpost-qs-'));
    const output = join(dir, 'cnn.int8.onnx');
    const opts: QuantizeStaticCommandOptions = { output, calib: TRAIN_X, calibCount: '200', json: true };
    const json = JSON.parse(capture('quantizeStaticCommand', MNIST_CNN, opts)) as {
      output: string;
      sizeBefore: number;
      sizeAfter: number;
      settings: Record<string, unknown>;
      skipped: unknown[];
    };
    assert.equal(json.output, output);
    assert.equal(json.settings.calibrationSamples, 200);
    assert.equal(json.settings.calibrationMethod, 'minmax');
    assert.equal(readFileSync(output).length, json.sizeAfter);
    assert.ok(json.sizeAfter <= 0.26 * json.sizeBefore);
    const m = await loadModel(output);
    await m.release();
    assert.deepEqual(readdirSync(dir), ['cnn.int8.onnx']);
  });

  test('quantize-static from a .npy file prints sizes, settings and the node list', () => {
    const dir = mkdtempSync(join(tmpdir(), 'outpost-qs-'));
    const calib = join(dir, 'calib.npy');
    writeNpy(calib, 40);
    const output = join(dir, 'out.onnx');
    const text = capture('quantizeStaticCommand', MNIST_CNN, {
      output,
      calib,
      method: 'entropy',
      perChannel: true,
      activationType: 'uint8',
    });
    assert.match(text, /size ratio\s+0\.26\d/);
    assert.match(text, /calibrationMethod=entropy/);
    assert.match(text, /perChannel=true/);
    assert.match(text, /calibrationSamples=40/);
    assert.match(text, /quantized 10 node\(s\): \/c1\/Conv \(Conv\)/);
    assert.ok(existsSync(output));
  });

  test('fp16 prints the float32 nodes with reasons; --json reports sizes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outpost-fp16-'));
    const output = join(dir, 'cnn.fp16.onnx');
    const text = capture('fp16Command', MNIST_CNN, { output } satisfies Fp16CommandOptions);
    assert.match(text, /size ratio\s+0\.50\d/);
    assert.match(text, /float16 initializers: 8, Casts added: 8/);
    assert.match(text, /kept in float32 \(10\):/);
    assert.match(text, /\/c1\/Conv\s+Conv\s+ONNX Runtime's CPU provider has no float16 Conv kernel/);
    const json = JSON.parse(
      capture('fp16Command', MNIST_CNN, { output, keepIoTypes: false, json: true }),
    ) as {
      sizeAfter: number;
      sizeBefore: number;
    };
    assert.ok(json.sizeAfter <= 0.51 * json.sizeBefore);
    const m = await loadModel(output);
    assert.equal(m.inputs[0]?.dtype, 'float16');
    await m.release();
  });

  test('bad input fails with a stable code and leaves no file behind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outpost-qs-'));
    const corrupt = join(dir, 'corrupt.onnx');
    writeFileSync(corrupt, Buffer.from('definitely not protobuf'));
    const empty = join(dir, 'empty.u8');
    writeFileSync(empty, '');
    const odd = join(dir, 'odd.u8');
    writeFileSync(odd, Buffer.alloc(1000));
    const wrongNpy = join(dir, 'wrong.npy');
    writeNpy(wrongNpy, 3, 700);
    const output = join(dir, 'out.onnx');
    const cases: [string, () => Promise<void>, string][] = [
      [
        'corrupt model',
        () => quantizeStaticCommand(corrupt, { output, calib: TRAIN_X }),
        'ONNX_PARSE_FAILED',
      ],
      ['corrupt model fp16', () => fp16Command(corrupt, { output }), 'ONNX_PARSE_FAILED'],
      ['missing model', () => fp16Command(join(dir, 'nope.onnx'), { output }), 'NOT_FOUND'],
      [
        'empty calibration',
        () => quantizeStaticCommand(MNIST_CNN, { output, calib: empty }),
        'VALIDATION_FAILED',
      ],
      [
        'missing calibration',
        () => quantizeStaticCommand(MNIST_CNN, { output, calib: join(dir, 'x.u8') }),
        'NOT_FOUND',
      ],
      ['ragged .u8', () => quantizeStaticCommand(MNIST_CNN, { output, calib: odd }), 'TENSOR_SHAPE_MISMATCH'],
      [
        'wrong .npy',
        () => quantizeStaticCommand(MNIST_CNN, { output, calib: wrongNpy }),
        'TENSOR_SHAPE_MISMATCH',
      ],
      [
        'bad method',
        () => quantizeStaticCommand(MNIST_CNN, { output, calib: TRAIN_X, method: 'mse' as 'minmax' }),
        'VALIDATION_FAILED',
      ],
      [
        'bad count',
        () => quantizeStaticCommand(MNIST_CNN, { output, calib: TRAIN_X, calibCount: '0' }),
        'VALIDATION_FAILED',
      ],
    ];
    for (const [what, run, code] of cases) await assert.rejects(run(), { code }, what);
    assert.deepEqual(readdirSync(dir).sort(), ['corrupt.onnx', 'empty.u8', 'odd.u8', 'wrong.npy']);
  });
});
