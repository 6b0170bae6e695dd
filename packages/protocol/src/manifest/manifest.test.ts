import { test } from 'node:test';
import assert from 'node:assert/strict';
import { modelManifest } from './index.ts';
import { parseJsonWith, parseWith } from '../validate/index.ts';
import { deployCommand } from '../messages/index.ts';
import { OutpostError } from '../errors/index.ts';

const base = {
  schemaVersion: 1,
  name: 'mnist',
  version: '1.0.0',
  format: 'onnx',
  sha256: 'a'.repeat(64),
  size: 1234,
  inputs: [{ name: 'input', dtype: 'float32', shape: ['batch', 1, 28, 28] }],
  outputs: [{ name: 'logits', dtype: 'float32', shape: ['batch', 10] }],
  createdAt: '2026-11-24T00:00:00.000Z',
};

test('a minimal manifest gets defaults', () => {
  const m = parseWith(modelManifest, base);
  assert.deepEqual(m.targets, ['cpu']);
  assert.equal(m.optimization.method, 'none');
  assert.deepEqual(m.metrics, {});
});

test('bad manifests are VALIDATION_FAILED with the failing path', () => {
  for (const [patch, path] of [
    [{ name: '../../x' }, 'name'],
    [{ sha256: 'XYZ' }, 'sha256'],
    [{ size: -1 }, 'size'],
    [{ inputs: [] }, 'inputs'],
  ] as const) {
    assert.throws(
      () => parseWith(modelManifest, { ...base, ...patch }, 'manifest'),
      (e) => e instanceof OutpostError && e.code === 'VALIDATION_FAILED' && e.message.includes(path),
    );
  }
});

test('non-JSON payloads are MALFORMED_MESSAGE, wrong-typed JSON is VALIDATION_FAILED', () => {
  assert.throws(
    () => parseJsonWith(deployCommand, '{oops'),
    (e) => (e as OutpostError).code === 'MALFORMED_MESSAGE',
  );
  assert.throws(
    () => parseJsonWith(deployCommand, '{"kind":"deploy","commandId":5}'),
    (e) => (e as OutpostError).code === 'VALIDATION_FAILED',
  );
});
