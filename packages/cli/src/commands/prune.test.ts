import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OutpostError } from '@outpost/protocol';
import { decodeModel, loadModel } from '@outpost/toolkit';
import { pruneCommand } from './prune.ts';
import type { PruneCommandOptions } from './prune.ts';

const shared =
  process.env.OUTPOST_SHARED_MODELS ?? new URL('../../../../../shared/models/', import.meta.url).pathname;
const MNIST_CNN = join(shared, 'mnist_cnn.onnx');
const code = (c: string) => (e: unknown) => e instanceof OutpostError && e.code === c;

/**
 * Runs the command in a child process and returns its stdout. (Capturing process.stdout in this process
 * would also swallow the test runner's own reports, which travel over the same stream.)
 */
function capture(input: string, opts: PruneCommandOptions): string {
  const src = new URL('./prune.ts', import.meta.url).href;
  const script = `const { pruneCommand } = await import(${JSON.stringify(src)});
await pruneCommand(${JSON.stringify(input)}, ${JSON.stringify(opts)});`;
  return execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, OUTPOST_LOG_LEVEL: 'silent' },
  });
}

describe('outpost prune', () => {
  test('magnitude --json writes the pruned model and a machine-readable report', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outpost-prune-'));
    const output = join(dir, 'sparse.onnx');
    const out = capture(MNIST_CNN, {
      output,
      mode: 'magnitude',
      sparsity: '0.8',
      scope: 'global',
      json: true,
    });
    const json = JSON.parse(out) as {
      report: { globalSparsity: number };
      sizes: { before: { bytes: number; gzipBytes: number }; after: { bytes: number; gzipBytes: number } };
    };
    assert.equal(json.report.globalSparsity, Math.round(0.8 * 108432) / 108432);
    assert.equal(json.sizes.after.bytes, json.sizes.before.bytes);
    assert.ok(json.sizes.after.gzipBytes < json.sizes.before.gzipBytes / 2);
    const m = await loadModel(output);
    await m.release();
  });

  test('filters + fine-tune prints the per-layer table and writes a model ORT loads', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outpost-prune-'));
    // A small training set in the MNIST .u8 format: the first 192 digits of the shared train split.
    const train = join(dir, 'x.u8');
    const labels = join(dir, 'y.u8');
    writeFileSync(train, readFileSync(join(shared, 'mnist-train-x.u8')).subarray(0, 192 * 784));
    writeFileSync(labels, readFileSync(join(shared, 'mnist-train-y.u8')).subarray(0, 192));
    const output = join(dir, 'slim.onnx');
    const text = capture(MNIST_CNN, {
      output,
      mode: 'filters',
      ratio: 0.5,
      finetune: true,
      train,
      trainLabels: labels,
      epochs: 1,
    });
    assert.match(text, /\/f1\/Gemm\s+Gemm\s+800 → 400/);
    assert.match(text, /parameters 108618 → 53866/);
    assert.match(text, /fine-tuned 1 epoch/);
    const m = await loadModel(output);
    assert.deepEqual(m.inputs[0]!.shape, ['batch', 1, 28, 28]);
    await m.release();
  });

  test('bad input fails with a stable code and writes nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outpost-prune-'));
    const corrupt = join(dir, 'corrupt.onnx');
    writeFileSync(corrupt, Buffer.from('this is not a protobuf model, just text'));
    const output = join(dir, 'out.onnx');
    await assert.rejects(
      pruneCommand(corrupt, { output, mode: 'filters', ratio: 0.5 }),
      code('ONNX_PARSE_FAILED'),
    );
    await assert.rejects(
      pruneCommand(MNIST_CNN, { output, mode: 'filters', ratio: 1.5 }),
      code('VALIDATION_FAILED'),
    );
    await assert.rejects(pruneCommand(MNIST_CNN, { output, mode: 'filters' }), code('VALIDATION_FAILED'));
    await assert.rejects(
      pruneCommand(MNIST_CNN, {
        output,
        mode: 'magnitude',
        sparsity: 0.5,
        finetune: true,
        train: 'x',
        trainLabels: 'y',
      }),
      code('VALIDATION_FAILED'),
    );
    await assert.rejects(
      pruneCommand(MNIST_CNN, { output, mode: 'filters', ratio: 0.5, finetune: true }),
      code('VALIDATION_FAILED'),
    );
    await assert.rejects(
      pruneCommand(join(dir, 'missing.onnx'), { output, mode: 'filters', ratio: 0.5 }),
      code('NOT_FOUND'),
    );
    assert.equal(existsSync(output), false);
    assert.deepEqual(readdirSync(dir), ['corrupt.onnx']);
    assert.ok(decodeModel(readFileSync(MNIST_CNN)).graph.node!.length > 0);
  });
});
