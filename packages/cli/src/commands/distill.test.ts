import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OutpostError } from '@outpost/protocol';
import { inspectModel, loadModel } from '@outpost/toolkit';
import { distillCommand, parseHidden } from './distill.ts';
import type { DistillCommandOptions } from './distill.ts';

const shared =
  process.env.OUTPOST_SHARED_MODELS ?? new URL('../../../../../shared/models/', import.meta.url).pathname;
const MNIST_CNN = join(shared, 'mnist_cnn.onnx');
const code = (c: string) => (e: unknown) => e instanceof OutpostError && e.code === c;

/** Runs the command in a child process (its stdout would otherwise mix with the test runner's). */
function capture(teacher: string, opts: DistillCommandOptions): string {
  const src = new URL('./distill.ts', import.meta.url).href;
  const script = `const { distillCommand } = await import(${JSON.stringify(src)});
await distillCommand(${JSON.stringify(teacher)}, ${JSON.stringify(opts)});`;
  return execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, OUTPOST_LOG_LEVEL: 'silent' },
  });
}

/** The first `n` digits of a shared split, written as a small .u8 pair in `dir`. */
function subset(dir: string, split: 'train' | 'eval', n: number, patchLabel?: number): [string, string] {
  const x = join(dir, `${split}-x.u8`);
  const y = join(dir, `${split}-y.u8`);
  writeFileSync(x, readFileSync(join(shared, `mnist-${split}-x.u8`)).subarray(0, n * 784));
  const labels = Buffer.from(readFileSync(join(shared, `mnist-${split}-y.u8`)).subarray(0, n));
  if (patchLabel !== undefined) labels[3] = patchLabel;
  writeFileSync(y, labels);
  return [x, y];
}

describe('outpost distill', () => {
  test('--json: writes a student ORT loads and reports teacher, student and alone figures', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outpost-distill-'));
    const [train, trainLabels] = subset(dir, 'train', 400);
    const [evalImages, evalLabels] = subset(dir, 'eval', 200);
    const output = join(dir, 'student.onnx');
    const json = JSON.parse(
      capture(MNIST_CNN, {
        output,
        train,
        trainLabels,
        evalImages,
        evalLabels,
        hidden: '12,8',
        crop: '4',
        epochs: '3',
        learningRate: '0.005',
        temperature: '3',
        alpha: '0.8',
        seed: '4',
        compareAlone: true,
        json: true,
      }),
    ) as {
      models: { model: string; parameters: number; evalAccuracy: number }[];
      gapRecovered: number | null;
      report: { temperature: number; alpha: number; seed: number; transferSet: { total: number } };
    };
    assert.deepEqual(
      json.models.map((m) => m.model),
      ['teacher', 'student (distilled)', 'student alone'],
    );
    assert.equal(json.models[0]?.parameters, 108_618);
    assert.equal(json.models[1]?.parameters, 400 * 12 + 12 + 12 * 8 + 8 + 8 * 10 + 10);
    assert.ok((json.models[0]?.evalAccuracy ?? 0) > 0.95);
    assert.ok((json.models[1]?.evalAccuracy ?? 0) > 0.3, 'distilled beats chance');
    assert.equal(typeof json.gapRecovered, 'number');
    assert.deepEqual([json.report.temperature, json.report.alpha, json.report.seed], [3, 0.8, 4]);
    assert.equal(json.report.transferSet.total, 400);
    const info = inspectModel(readFileSync(output));
    assert.deepEqual(info.inputs[0]?.shape, ['batch', 1, 28, 28]);
    const m = await loadModel(output);
    await m.release();
    assert.deepEqual(readdirSync(dir).sort(), [
      'eval-x.u8',
      'eval-y.u8',
      'student.onnx',
      'train-x.u8',
      'train-y.u8',
    ]);
  });

  test('human output names the figures', () => {
    const dir = mkdtempSync(join(tmpdir(), 'outpost-distill-'));
    const [train, trainLabels] = subset(dir, 'train', 150);
    const out = capture(MNIST_CNN, {
      output: join(dir, 's.onnx'),
      train,
      trainLabels,
      hidden: '6',
      epochs: 1,
    });
    assert.match(out, /teacher\s+108,618/);
    assert.match(out, /student \(distilled\)\s+4,780/);
    assert.match(out, /size ratio teacher\/student \d+\.\d\d×/);
    assert.match(out, /wrote .*s\.onnx/);
  });

  test('bad input is a coded error and leaves no file behind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outpost-distill-'));
    const [train, trainLabels] = subset(dir, 'train', 60, 42); // label 42 at index 3
    const output = join(dir, 'student.onnx');
    const base: DistillCommandOptions = { output, train, trainLabels, hidden: '4', epochs: 1 };
    await assert.rejects(distillCommand(MNIST_CNN, base), code('VALIDATION_FAILED'));
    await assert.rejects(distillCommand(MNIST_CNN, { ...base, hidden: '32,x' }), code('VALIDATION_FAILED'));
    await assert.rejects(distillCommand(MNIST_CNN, { ...base, alpha: 'high' }), code('VALIDATION_FAILED'));
    await assert.rejects(
      distillCommand(MNIST_CNN, { ...base, activation: 'cube' }),
      code('VALIDATION_FAILED'),
    );
    await assert.rejects(
      distillCommand(MNIST_CNN, { ...base, evalImages: train }),
      code('VALIDATION_FAILED'),
    );
    await assert.rejects(distillCommand(join(dir, 'missing.onnx'), base), code('NOT_FOUND'));
    const garbage = join(dir, 'garbage.onnx');
    writeFileSync(garbage, 'not a model');
    await assert.rejects(
      distillCommand(garbage, { ...base, trainLabels: subset(dir, 'train', 60)[1] }),
      (e) => code('ONNX_PARSE_FAILED')(e),
    );
    assert.equal(existsSync(output), false);
    assert.deepEqual(readdirSync(dir).sort(), ['garbage.onnx', 'train-x.u8', 'train-y.u8']);
  });

  test('parseHidden', () => {
    assert.deepEqual(parseHidden('32'), [32]);
    assert.deepEqual(parseHidden('64, 32'), [64, 32]);
    for (const bad of ['', '0', '-3', '3.5', '32,,16']) {
      assert.throws(() => parseHidden(bad), code('VALIDATION_FAILED'), bad);
    }
  });
});
