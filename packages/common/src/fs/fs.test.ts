import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { atomicWriteFile, atomicWriteFileSync } from './index.ts';
import { OutpostError } from '@outpost/protocol';

test('atomic writes replace the whole file and leave no temp files', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'outpost-fs-'));
  const target = join(dir, 'state.json');
  writeFileSync(target, 'old');
  await atomicWriteFile(target, 'new contents');
  assert.equal(readFileSync(target, 'utf8'), 'new contents');
  atomicWriteFileSync(target, new Uint8Array([1, 2, 3]), 0o600);
  assert.deepEqual([...readFileSync(target)], [1, 2, 3]);
  assert.equal(statSync(target).mode & 0o777, 0o600);
  assert.deepEqual(readdirSync(dir), ['state.json']);
});

test('a failed write is IO_FAILED, keeps the old file and removes the temp file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'outpost-fs-'));
  const target = join(dir, 'sub'); // a directory cannot be replaced by rename
  const { mkdirSync } = await import('node:fs');
  mkdirSync(target);
  writeFileSync(join(target, 'keep'), 'x');
  await assert.rejects(
    atomicWriteFile(target, 'data'),
    (e) => e instanceof OutpostError && e.code === 'IO_FAILED',
  );
  assert.throws(
    () => atomicWriteFileSync(target, 'data'),
    (e) => e instanceof OutpostError && e.code === 'IO_FAILED',
  );
  assert.deepEqual(readdirSync(dir), ['sub']);
  assert.equal(readFileSync(join(target, 'keep'), 'utf8'), 'x');
  await assert.rejects(
    atomicWriteFile(join(dir, 'missing-dir', 'f'), 'x'),
    (e) => (e as OutpostError).code === 'IO_FAILED',
  );
});
