import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '@outpost/common';
import { generateSigningKeyPair, OutpostError } from '@outpost/protocol';
import { mnistManifest, signRelease } from '../testing/index.ts';
import { ModelStore } from './index.ts';

const keys = generateSigningKeyPair();
const log = createLogger('test');

test('the store refuses unsafe names, switches state atomically and keeps only active + previous', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'outpost-store-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  let store = await ModelStore.open(dataDir, log);
  for (const [name, version] of [
    ['../etc', '1.0.0'],
    ['%2e%2e', '1.0.0'],
    ['a/b', '1.0.0'],
    ['ok', '../../1.0.0'],
  ] as const) {
    assert.throws(
      () => store.artifactPath(name, version),
      (e: unknown) => e instanceof OutpostError && e.code === 'INVALID_NAME',
    );
  }

  const releases = ['1.0.0', '2.0.0', '3.0.0'].map((v) => {
    const bytes = Buffer.from(`model ${v}`);
    return { v, bytes, release: signRelease(mnistManifest(bytes, 'm', v), keys.privateKeyPem) };
  });
  for (const r of releases) {
    const tmp = store.incomingPath();
    writeFileSync(tmp, r.bytes);
    await store.commit(tmp, 'm', r.v);
    const state = await store.activate('m', r.release);
    assert.equal(state.active.version, r.v);
  }
  assert.deepEqual(readdirSync(join(dataDir, 'models/m')).sort(), ['2.0.0.onnx', '3.0.0.onnx', 'state.json']);
  const state = store.readState('m');
  assert.equal(state?.previous?.version, '2.0.0');

  // Leftovers of a crash (a download, an atomic-write temp file) are removed when the store opens.
  writeFileSync(store.incomingPath(), 'partial');
  writeFileSync(join(dataDir, 'models/m/.state.json.abc.tmp'), '{');
  store = await ModelStore.open(dataDir, log);
  assert.deepEqual(readdirSync(join(dataDir, 'models/.incoming')), []);
  assert.ok(!existsSync(join(dataDir, 'models/m/.state.json.abc.tmp')));

  // Active entry refused by the check (e.g. its key is no longer trusted) → previous is served, durably.
  const servable = await store.resolveServable('m', (e) => {
    if (e.version === '3.0.0') throw new Error('not trusted any more');
  });
  assert.equal(servable?.entry.version, '2.0.0');
  assert.equal(servable?.fellBack, true);
  const fixed = JSON.parse(readFileSync(join(dataDir, 'models/m/state.json'), 'utf8')) as {
    active: { version: string };
    previous: unknown;
  };
  assert.equal(fixed.active.version, '2.0.0');
  assert.equal(fixed.previous, null);
  assert.ok(existsSync(join(dataDir, 'models/m/3.0.0.onnx.rejected')));
  assert.equal(await store.resolveServable('m', () => assert.fail('nothing acceptable')), null);
});
