import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateSigningKeyPair } from '@outpost/protocol';
import { startAgent } from '../index.ts';
import {
  deployCmd,
  MNIST_FP32,
  mnistManifest,
  signRelease,
  startControlClient,
  startTestBroker,
  startTestControlPlane,
} from '../testing/index.ts';

test('the link survives a dropped connection (will published) and a broker restart', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'outpost-ch-'));
  const keys = generateSigningKeyPair();
  let broker = await startTestBroker();
  const cp = await startTestControlPlane(broker);
  const control = await startControlClient(broker);
  const agent = await startAgent({
    serverUrl: cp.url,
    dataDir,
    bootstrapToken: cp.bootstrapToken,
    deviceId: 'dev-ch',
    trustedKeys: [keys.publicKeyPem],
    apiPort: 0,
    mqttReconnectMs: 50,
  });
  t.after(async () => {
    await agent.close();
    await control.close();
    await cp.close();
    await broker.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  const online = () => control.statuses.filter((s) => s.deviceId === 'dev-ch' && s.online).length;
  await control.waitFor('online', () => online() >= 1);

  // 1. A network drop: the broker publishes the retained offline will, the agent reconnects by itself.
  const before = online();
  broker.dropClient('dev-ch');
  const will = await control.waitFor('the will', () =>
    control.statuses.find((s) => s.deviceId === 'dev-ch' && !s.online),
  );
  assert.deepEqual(will.models, []);
  await control.waitFor('back online', () => online() > before);

  // 2. A broker restart (sessions lost): the agent resubscribes and applies the next command.
  const port = broker.port;
  await broker.close();
  broker = await startTestBroker({ port, devices: broker.devices, controlPassword: broker.controlPassword });
  const afterRestart = online();
  await control.waitFor('online after the broker restart', () => online() > afterRestart, 10_000);
  const bytes = readFileSync(MNIST_FP32);
  cp.artifacts.set('mnist/1.0.0', bytes);
  const cmd = deployCmd(signRelease(mnistManifest(bytes, 'mnist', '1.0.0'), keys.privateKeyPem));
  await control.send('dev-ch', cmd);
  const ack = await control.waitForAck(cmd.commandId, 'succeeded');
  assert.equal(ack.deviceId, 'dev-ch');

  // 3. The will is refreshed before every reconnect: after one more reconnect it names the active model.
  const wills = () => control.statuses.filter((s) => s.deviceId === 'dev-ch' && !s.online);
  let n = wills().length;
  let up = online();
  broker.dropClient('dev-ch');
  await control.waitFor('a will', () => wills().length > n);
  await control.waitFor('online again', () => online() > up);
  n = wills().length;
  up = online();
  broker.dropClient('dev-ch');
  await control.waitFor('the next will', () => wills().length > n);
  assert.deepEqual(
    wills()
      .at(-1)
      ?.models.map((m) => `${m.name}@${m.version}`),
    ['mnist@1.0.0'],
  );
  await control.waitFor('online at the end', () => online() > up);
});
