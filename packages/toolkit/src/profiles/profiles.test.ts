import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { OutpostError } from '@outpost/protocol';
import { MNIST_CNN } from '../testing/fixtures.ts';
import {
  builtinProfile,
  builtinProfileNames,
  energyPerInferenceMj,
  loadProfileFile,
  openProfileSession,
  parseProfile,
  probeProfile,
  resolveProfile,
} from './index.ts';
import type { HardwareProfileInput } from './index.ts';

const good: HardwareProfileInput = {
  name: 'my-board',
  description: 'Cortex-A53 board',
  runtime: 'onnxruntime-node',
  executionProviders: ['cpu'],
  threads: 4,
  memoryBudgetBytes: 128 * 1024 * 1024,
  powerWatts: 3,
  idlePowerWatts: 1,
};

/** Runs fn, expects an OutpostError with `code`, returns it. */
function expectError(fn: () => unknown, code: string): OutpostError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof OutpostError, String(err));
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}`);
}

function issuePaths(err: OutpostError): string[] {
  return (err.details as { path: string[] }[]).map((d) => d.path.join('.'));
}

describe('hardware profiles', () => {
  test('built-ins are valid and include the documented targets', () => {
    const names = builtinProfileNames();
    for (const n of ['cpu-x86-1t', 'cpu-x86-2t', 'rpi4-cpu', 'jetson-nano-gpu', 'browser-wasm']) {
      assert.ok(names.includes(n), n);
      const p = builtinProfile(n);
      assert.deepEqual(parseProfile(p), p);
    }
    assert.equal(builtinProfile('rpi4-cpu').threads, 4);
    assert.equal(builtinProfile('rpi4-cpu').powerWatts, 6.4);
    assert.match(builtinProfile('rpi4-cpu').notes, /estimate/);
    assert.equal(builtinProfile('browser-wasm').runtime, 'onnxruntime-web');
    // A copy: callers cannot corrupt the registry.
    builtinProfile('cpu-x86-1t').threads = 99;
    assert.equal(builtinProfile('cpu-x86-1t').threads, 1);
  });

  test('defaults are filled in', () => {
    const p = parseProfile(good);
    assert.equal(p.graphOptimizationLevel, 'all');
    assert.equal(p.notes, '');
  });

  test('bad profiles are VALIDATION_FAILED with the path of each problem', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ ...good, threads: 0 }, 'threads'],
      [{ ...good, threads: 1.5 }, 'threads'],
      [{ ...good, name: '../etc' }, 'name'],
      [{ ...good, runtime: 'tensorrt' }, 'runtime'],
      [{ ...good, executionProviders: ['wasm'] }, 'executionProviders.0'],
      [{ ...good, runtime: 'onnxruntime-node-gpu', executionProviders: ['cpu'] }, 'executionProviders'],
      [{ ...good, idlePowerWatts: 5 }, 'idlePowerWatts'],
      [{ ...good, memoryBudgetBytes: -1 }, 'memoryBudgetBytes'],
      [{ ...good, graphOptimizationLevel: 'max' }, 'graphOptimizationLevel'],
      [{ ...good, powerWatt: 3 }, ''], // unknown key (typo): strict
    ];
    for (const [value, path] of cases) {
      const err = expectError(() => parseProfile(value), 'VALIDATION_FAILED');
      assert.ok(issuePaths(err).includes(path), `${path} not in ${issuePaths(err).join(' | ')}`);
    }
  });

  test('any mutation of a field to a wrong type is rejected, never accepted or crashing', () => {
    const keys = Object.keys(good) as (keyof HardwareProfileInput)[];
    fc.assert(
      fc.property(fc.constantFrom(...keys), fc.oneof(fc.string(), fc.object(), fc.constant(null)), (k, v) => {
        if (typeof v === 'string' && (k === 'name' || k === 'description')) return; // may be valid
        const err = expectError(() => parseProfile({ ...good, [k]: v }), 'VALIDATION_FAILED');
        assert.ok(issuePaths(err).some((p) => p.startsWith(k)));
      }),
      { numRuns: 100 },
    );
  });

  test('profiles load from JSON files; bad files fail with their own codes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outpost-profile-'));
    try {
      writeFileSync(join(dir, 'ok.json'), JSON.stringify(good));
      writeFileSync(join(dir, 'bad.json'), JSON.stringify({ ...good, threads: -2 }));
      writeFileSync(join(dir, 'broken.json'), '{"name": ');
      assert.equal((await loadProfileFile(join(dir, 'ok.json'))).name, 'my-board');
      assert.equal((await resolveProfile(join(dir, 'ok.json'))).threads, 4);
      await assert.rejects(loadProfileFile(join(dir, 'bad.json')), { code: 'VALIDATION_FAILED' });
      await assert.rejects(loadProfileFile(join(dir, 'broken.json')), { code: 'MALFORMED_MESSAGE' });
      await assert.rejects(loadProfileFile(join(dir, 'missing.json')), { code: 'NOT_FOUND' });
      assert.equal((await resolveProfile('browser-wasm')).name, 'browser-wasm');
      await assert.rejects(resolveProfile('cpu-arm'), { code: 'NOT_FOUND', message: /cpu-x86-1t/ });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('energy estimate = latency × (active − idle) in mJ', () => {
    assert.equal(energyPerInferenceMj(2, { powerWatts: 6.4, idlePowerWatts: 2.7 }), 2 * 3.7);
    assert.equal(energyPerInferenceMj(0.5, { powerWatts: 4 }), 2);
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1e4, noNaN: true }),
        fc.double({ min: 0, max: 1e4, noNaN: true }),
        (a, b) => {
          const p = { powerWatts: 5, idlePowerWatts: 1 };
          // Monotone in latency.
          assert.equal(
            energyPerInferenceMj(Math.min(a, b), p) <= energyPerInferenceMj(Math.max(a, b), p),
            true,
          );
        },
      ),
    );
  });

  test('node and web runtimes give the same predictions for the reference CNN', async () => {
    const bytes = new Uint8Array(readFileSync(MNIST_CNN));
    const input = {
      data: new Float32Array(2 * 784).map((_, i) => ((i * 37) % 255) / 255),
      dims: [2, 1, 28, 28],
    };
    const outs: Float32Array[] = [];
    for (const name of ['cpu-x86-1t', 'browser-wasm']) {
      const s = await openProfileSession(bytes, builtinProfile(name));
      try {
        assert.deepEqual([...s.inputNames], ['input']);
        const o = (await s.run({ input }))[s.outputNames[0] as string];
        assert.deepEqual([...(o?.dims ?? [])], [2, 10]);
        outs.push(o?.data as Float32Array);
      } finally {
        await s.release();
      }
    }
    const [a, b] = outs as [Float32Array, Float32Array];
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs((a[i] ?? 0) - (b[i] ?? 0)) < 1e-3, `logit ${i}`);
  });

  test('a model the runtime refuses is ONNX_UNSUPPORTED', async () => {
    await assert.rejects(openProfileSession(new Uint8Array([8, 7, 18, 0]), builtinProfile('cpu-x86-1t')), {
      code: 'ONNX_UNSUPPORTED',
    });
  });

  test('the GPU profile is reported as not measurable on a machine without CUDA', async (t) => {
    if (existsSync('/dev/nvidiactl')) return t.skip('this machine has an NVIDIA driver');
    const probe = await probeProfile(
      builtinProfile('jetson-nano-gpu'),
      new Uint8Array(readFileSync(MNIST_CNN)),
    );
    assert.equal(probe.measurable, false);
    assert.match(probe.measurable ? '' : probe.reason, /nvidiactl|CUDA/);
    await assert.rejects(
      openProfileSession(new Uint8Array(readFileSync(MNIST_CNN)), builtinProfile('jetson-nano-gpu')),
      {
        code: 'ONNX_UNSUPPORTED',
        message: /CUDA/,
      },
    );
  });

  test('threads beyond this machine are capped and said so', async () => {
    const probe = await probeProfile(parseProfile({ ...good, threads: 256 }));
    assert.equal(probe.measurable, true);
    if (probe.measurable) {
      assert.ok(probe.threads < 256);
      assert.match(probe.notes.join(' '), /256 threads/);
    }
  });
});
