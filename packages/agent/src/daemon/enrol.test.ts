import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { OutpostError } from '@outpost/protocol';
import { agentFixture, type AgentFixture } from '../testing/index.ts';

let fx: AgentFixture;
before(async () => {
  fx = await agentFixture();
});
after(() => fx.close());

describe('enrolment', () => {
  test('enrols once, persists the identity with mode 0600 and reuses it on restart', async () => {
    const dataDir = fx.freshDir();
    const before = fx.cp.enrolCalls;
    const a = await fx.start(dataDir, { deviceId: 'enrol-1' });
    assert.equal(a.deviceId, 'enrol-1');
    const token = a.apiToken;
    await a.close();
    const idPath = join(dataDir, 'identity.json');
    assert.equal(statSync(idPath).mode & 0o777, 0o600);
    assert.equal(statSync(join(dataDir, 'api-token')).mode & 0o777, 0o600);
    const id = JSON.parse(readFileSync(idPath, 'utf8')) as { deviceId: string; deviceSecret: string };
    assert.equal(id.deviceId, 'enrol-1');
    assert.equal(id.deviceSecret, fx.broker.devices.get('enrol-1'));

    // No bootstrap token needed any more; the same identity and API token come back.
    const b = await fx.start(dataDir, { bootstrapToken: undefined });
    assert.equal(b.deviceId, 'enrol-1');
    assert.equal(b.apiToken, token);
    await b.close();
    assert.equal(fx.cp.enrolCalls - before, 1);
  });

  test("a refused enrolment surfaces the server's error code and writes nothing", async () => {
    const dataDir = fx.freshDir();
    await assert.rejects(fx.start(dataDir, { bootstrapToken: 'x'.repeat(32) }), (err: unknown) => {
      assert.ok(err instanceof OutpostError);
      assert.equal(err.code, 'ENROLMENT_TOKEN_INVALID');
      return true;
    });
    assert.equal(existsSync(join(dataDir, 'identity.json')), false);
  });

  test('an unreachable fx.control plane is UNAVAILABLE', async () => {
    const dataDir = fx.freshDir();
    await assert.rejects(fx.start(dataDir, { serverUrl: 'http://127.0.0.1:1' }), (err: unknown) => {
      assert.ok(err instanceof OutpostError);
      assert.equal(err.code, 'UNAVAILABLE');
      assert.equal(err.retryable, true);
      return true;
    });
  });
});
