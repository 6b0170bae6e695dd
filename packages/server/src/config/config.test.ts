import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { generateSigningKeyPair } from '@outpost/protocol';
import { makeTempDir } from '../testkit/index.ts';
import { DEFAULT_ARTIFACT_BODY_LIMIT, parseServerConfig, resolveAdminToken } from './index.ts';

const isCode = (code: string) => (e: Error & { code?: string }) => e.code === code;

test('defaults are applied and the config is frozen', () => {
  const cfg = parseServerConfig({ dataDir: 'rel/dir' });
  assert.equal(cfg.host, '127.0.0.1');
  assert.equal(cfg.httpPort, 8080);
  assert.equal(cfg.mqttPort, 1883);
  assert.equal(cfg.artifactBodyLimit, DEFAULT_ARTIFACT_BODY_LIMIT);
  assert.deepEqual(cfg.trustedKeys, []);
  assert.ok(cfg.dataDir.startsWith('/'), 'dataDir is made absolute');
  assert.ok(Object.isFrozen(cfg) && Object.isFrozen(cfg.trustedKeys));
  assert.throws(() => {
    (cfg as { httpPort: number }).httpPort = 1;
  }, TypeError);
});

test('invalid configs are CONFIG_INVALID without echoing secrets', () => {
  assert.throws(() => parseServerConfig({} as never), isCode('CONFIG_INVALID'));
  assert.throws(() => parseServerConfig({ dataDir: '/x', httpPort: 70000 }), isCode('CONFIG_INVALID'));
  assert.throws(() => parseServerConfig({ dataDir: '/x', trustedKeys: ['nope'] }), isCode('CONFIG_INVALID'));
  const secret = 'short-secret';
  assert.throws(
    () => parseServerConfig({ dataDir: '/x', adminToken: secret }),
    (e: Error & { code?: string }) => e.code === 'CONFIG_INVALID' && !e.message.includes(secret),
  );
  const keys = generateSigningKeyPair();
  assert.equal(parseServerConfig({ dataDir: '/x', trustedKeys: [keys.publicKeyPem] }).trustedKeys.length, 1);
  // A private key is not a trusted publisher key.
  assert.throws(
    () => parseServerConfig({ dataDir: '/x', trustedKeys: [keys.privateKeyPem] }),
    isCode('CONFIG_INVALID'),
  );
});

test('the admin token is generated once, stored with mode 0600 and reused', async () => {
  const dir = await makeTempDir();
  try {
    const dataDir = join(dir, 'data');
    const first = resolveAdminToken(parseServerConfig({ dataDir }));
    assert.ok(first.length >= 32);
    const file = join(dataDir, 'admin-token');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(readFileSync(file, 'utf8').trim(), first);
    assert.equal(resolveAdminToken(parseServerConfig({ dataDir })), first);
    // A configured token wins and is not written anywhere.
    const configured = 'c'.repeat(40);
    assert.equal(resolveAdminToken(parseServerConfig({ dataDir, adminToken: configured })), configured);
    assert.equal(readFileSync(file, 'utf8').trim(), first);
    writeFileSync(file, 'tiny');
    assert.throws(() => resolveAdminToken(parseServerConfig({ dataDir })), isCode('CONFIG_INVALID'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
