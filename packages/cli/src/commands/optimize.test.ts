import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  closeSync,
  createWriteStream,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256Of } from '@outpost/protocol';
import {
  MNIST_CNN,
  MNIST_EVAL_X,
  MNIST_EVAL_Y,
  MNIST_TRAIN_X,
  MNIST_TRAIN_Y,
} from '../../../toolkit/src/testing/fixtures.ts';
import { parseOptimizationReport } from '@outpost/toolkit';
import { optimizeCommand } from './optimize.ts';
import type { OptimizeOptions } from './optimize.ts';
import { reportCommand } from './report.ts';

/**
 * Runs a command with its stdout sent to a file instead (the test runner's own protocol shares this
 * process's stdout, so it is not patched), and returns what it printed.
 */
async function captured(fn: () => Promise<void>): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'outpost-stdout-'));
  const file = join(dir, 'stdout');
  const fd = openSync(file, 'w');
  const original = Object.getOwnPropertyDescriptor(process, 'stdout');
  const stream = createWriteStream('', { fd, autoClose: false });
  Object.defineProperty(process, 'stdout', { value: stream, configurable: true });
  try {
    await fn();
  } finally {
    if (original) Object.defineProperty(process, 'stdout', original);
    await new Promise<void>((resolve) => stream.end(resolve));
    closeSync(fd);
  }
  const text = readFileSync(file, 'utf8');
  rmSync(dir, { recursive: true, force: true });
  return text;
}

const calib = `mnist-u8:${MNIST_TRAIN_X}:${MNIST_TRAIN_Y}:50`;
const evalSpec = `mnist-u8:${MNIST_EVAL_X}:${MNIST_EVAL_Y}:200`;

function options(out: string, extra: Partial<OptimizeOptions> = {}): OptimizeOptions {
  return {
    calib,
    eval: evalSpec,
    target: 'cpu-x86-1t',
    out,
    candidates: ['dynamic-u8'],
    iterations: 30,
    ...extra,
  };
}

describe('outpost optimize / report', () => {
  test('writes the chosen model, report.json and report.html, and nothing else', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outpost-optimize-'));
    try {
      const out = join(dir, 'out');
      const text = await captured(() => optimizeCommand(MNIST_CNN, options(out)));
      assert.match(text, /fp32/);
      assert.match(text, /dynamic-u8/);
      assert.match(text, /chosen: /);
      const files = readdirSync(out).sort();
      const report = parseOptimizationReport(readFileSync(join(out, 'report.json'), 'utf8'));
      assert.ok(report.choice.id);
      const modelFile = `mnist_cnn.${report.choice.id}.onnx`;
      assert.deepEqual(files, [modelFile, 'report.html', 'report.json'].sort());
      assert.equal(sha256Of(readFileSync(join(out, modelFile))), report.choice.sha256);
      assert.equal(report.source.sha256, sha256Of(readFileSync(MNIST_CNN)));
      assert.match(readFileSync(join(out, 'report.html'), 'utf8'), /data-candidate="dynamic-u8"/);

      // `outpost report` re-renders the page from the JSON and prints the same table.
      const html2 = join(dir, 'again.html');
      const t2 = await captured(() => reportCommand(join(out, 'report.json'), { html: html2 }));
      assert.equal(readFileSync(html2, 'utf8'), readFileSync(join(out, 'report.html'), 'utf8'));
      assert.match(t2, /dynamic-u8/);
      const j = JSON.parse(await captured(() => reportCommand(join(out, 'report.json'), { json: true })));
      assert.equal(j.choice.id, report.choice.id);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('bad input fails with its code and leaves no output at all', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outpost-optimize-'));
    try {
      const bad = join(dir, 'bad.onnx');
      writeFileSync(bad, readFileSync(MNIST_CNN).subarray(0, 1000));
      const out = join(dir, 'out');
      await assert.rejects(optimizeCommand(bad, options(out)), { code: 'ONNX_PARSE_FAILED' });
      await assert.rejects(optimizeCommand(MNIST_CNN, options(out, { eval: 'mnist-u8:/nope/x:/nope/y' })), {
        code: 'NOT_FOUND',
      });
      await assert.rejects(optimizeCommand(MNIST_CNN, options(out, { eval: 'mnist-u8:x' })), {
        code: 'VALIDATION_FAILED',
      });
      await assert.rejects(optimizeCommand(MNIST_CNN, options(out, { target: 'no-such-board' })), {
        code: 'NOT_FOUND',
      });
      await assert.rejects(optimizeCommand(MNIST_CNN, options(out, { candidates: ['nope'] })), {
        code: 'VALIDATION_FAILED',
      });
      assert.equal(existsSync(out), false);
      await assert.rejects(reportCommand(bad, {}), { code: 'MALFORMED_MESSAGE' });
      await assert.rejects(reportCommand(join(dir, 'missing.json'), {}), { code: 'NOT_FOUND' });
      assert.deepEqual(readdirSync(dir), ['bad.onnx']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a GPU target on a machine without CUDA: reports written, no model, UNAVAILABLE', async (t) => {
    if (existsSync('/dev/nvidiactl')) return t.skip('this machine has an NVIDIA driver');
    const dir = mkdtempSync(join(tmpdir(), 'outpost-optimize-'));
    try {
      await assert.rejects(
        captured(() =>
          optimizeCommand(
            MNIST_CNN,
            options(dir, { target: 'jetson-nano-gpu', candidates: 'dynamic-u8, dynamic-s8' }),
          ),
        ),
        { code: 'UNAVAILABLE', message: /cannot be measured on this machine/ },
      );
      assert.deepEqual(readdirSync(dir).sort(), ['report.html', 'report.json']);
      const report = parseOptimizationReport(readFileSync(join(dir, 'report.json'), 'utf8'));
      assert.equal(report.measurable, false);
      assert.ok(report.candidates.every((c) => c.status === 'not-measurable'));
      assert.deepEqual(report.settings.candidates, ['fp32', 'dynamic-u8', 'dynamic-s8']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
