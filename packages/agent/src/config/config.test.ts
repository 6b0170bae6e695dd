import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateSigningKeyPair, OutpostError } from '@outpost/protocol';
import { loadConfig } from './index.ts';

const key = generateSigningKeyPair().publicKeyPem;
const base = { serverUrl: 'http://localhost:8080/', dataDir: '/tmp/x', trustedKeys: [key] };

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof OutpostError);
    return err.code;
  }
  return 'none';
}

describe('loadConfig', () => {
  test('fills defaults, trims the URL and freezes the result', () => {
    const c = loadConfig(base);
    assert.equal(c.serverUrl, 'http://localhost:8080');
    assert.equal(c.profile, 'cpu');
    assert.deepEqual(c.tags, []);
    assert.equal(c.apiHost, '127.0.0.1');
    assert.equal(c.apiPort, 8081);
    assert.equal(c.telemetryIntervalMs, 10_000);
    assert.equal(c.intraOpThreads, 1);
    assert.equal(c.maxArtifactBytes, 1024 ** 3);
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.trustedKeys));
    assert.throws(() => {
      (c as { apiPort: number }).apiPort = 1;
    }, TypeError);
  });

  test('rejects bad values with CONFIG_INVALID', () => {
    assert.equal(
      code(() => loadConfig({ ...base, serverUrl: 'ftp://x' })),
      'CONFIG_INVALID',
    );
    assert.equal(
      code(() => loadConfig({ ...base, serverUrl: 'not a url' })),
      'CONFIG_INVALID',
    );
    assert.equal(
      code(() => loadConfig({ ...base, trustedKeys: [] })),
      'CONFIG_INVALID',
    );
    assert.equal(
      code(() => loadConfig({ ...base, trustedKeys: ['-----BEGIN PUBLIC KEY-----\nxx'] })),
      'CONFIG_INVALID',
    );
    assert.equal(
      code(() => loadConfig({ ...base, deviceId: '../etc' })),
      'CONFIG_INVALID',
    );
    assert.equal(
      code(() => loadConfig({ ...base, apiPort: 70_000 })),
      'CONFIG_INVALID',
    );
    assert.equal(
      code(() => loadConfig({ ...base, intraOpThreads: 0 })),
      'CONFIG_INVALID',
    );
  });

  test('never echoes a secret in its error message', () => {
    const secret = 'short-secret';
    try {
      loadConfig({ ...base, apiToken: secret });
      assert.fail('expected CONFIG_INVALID');
    } catch (err) {
      assert.ok(err instanceof OutpostError);
      assert.equal(err.code, 'CONFIG_INVALID');
      assert.ok(!err.message.includes(secret));
      assert.match(err.message, /apiToken/);
    }
  });
});
