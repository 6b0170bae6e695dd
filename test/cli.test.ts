/** The `outpost` binary as a user runs it: real child processes, real exit codes, real output. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OUTPOST_BIN } from '@outpost/cli';
import { FP32_MODEL, tempDir } from './support.ts';

function outpost(args: string[], timeout = 120_000) {
  const r = spawnSync(process.execPath, [OUTPOST_BIN, ...args], {
    encoding: 'utf8',
    timeout,
    env: { ...process.env, CI: 'true' },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('inspect prints the graph of the reference CNN', () => {
  const r = outpost(['inspect', FP32_MODEL, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout) as {
    parameters: number;
    ops: Record<string, number>;
    inputs: { name: string }[];
  };
  assert.equal(info.parameters, 108_618);
  assert.equal(info.ops.Conv, 2);
  assert.equal(info.inputs[0]!.name, 'input');
});

test('a corrupt ONNX file is a coded error with exit status 2, and no output file is left', () => {
  const dir = tempDir('cli');
  const bad = join(dir, 'bad.onnx');
  writeFileSync(bad, readFileSync(FP32_MODEL).subarray(0, 1000));
  const r = outpost(['inspect', bad]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /ONNX_PARSE_FAILED/);
  const q = outpost(['quantize', bad, '-o', join(dir, 'out.onnx')]);
  assert.equal(q.code, 2);
  assert.equal(existsSync(join(dir, 'out.onnx')), false);
  assert.equal(outpost(['inspect', join(dir, 'missing.onnx')]).code, 2);
});

test('quantize writes a smaller model and keys generate writes a private key only its owner can read', () => {
  const dir = tempDir('cli');
  const out = join(dir, 'q.onnx');
  const r = outpost(['quantize', FP32_MODEL, '-o', out, '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(statSync(out).size < 0.3 * statSync(FP32_MODEL).size);
  const k = outpost(['keys', 'generate', '--out', dir]);
  assert.equal(k.code, 0, k.stderr);
  assert.equal(statSync(join(dir, 'publisher.key')).mode & 0o077, 0);
  assert.equal(outpost(['keys', 'generate', '--out', dir]).code, 1, 'refuses to overwrite a key');
});

test('bad arguments are refused before anything runs', () => {
  assert.notEqual(outpost(['bench', FP32_MODEL, '--iterations', '-5']).code, 0);
  const r = outpost(['deploy', '--model', '../../x', '--version', '1.0.0', '--devices', 'a', '--token', 't']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /VALIDATION_FAILED|INVALID_NAME/);
});

test('outpost demo runs the whole loop with 3 agent processes', () => {
  const r = outpost(['demo', '--devices', '3', '--samples', '40', '--no-keep-running'], 240_000);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  for (const id of ['demo-1', 'demo-2', 'demo-3']) {
    const row = r.stdout.split('\n').find((l) => l.startsWith(id) && l.includes('%'));
    assert.ok(row, `no accuracy row for ${id}:\n${r.stdout}`);
    const acc = Number(/([\d.]+) %/.exec(row)![1]);
    assert.ok(acc >= 90, row);
  }
  assert.match(r.stdout, /online\s+mnist-cnn@1\.0\.0/);
});
