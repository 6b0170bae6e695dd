import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { deployCommand, deploymentView, deviceView, modelVersionSummary, topics } from '@outpost/protocol';
import {
  basicAuth,
  callApi,
  collect,
  connectDevice,
  endClient,
  enrol,
  publishReady,
  startTestServer,
  waitFor,
} from '../testkit/index.ts';
import { startServer } from './index.ts';

test('state survives a restart with the same dataDir, and pending commands are delivered after it', async () => {
  const first = await startTestServer();
  const { dataDir, keys } = first;
  try {
    const bytes = randomBytes(4096);
    await publishReady(first, bytes, { name: 'persist', version: '3.1.4' });
    const dev = await enrol(first, 'restart-dev');
    const c = await connectDevice(first, dev.deviceId, dev.deviceSecret);
    await waitFor(
      async () => deviceView.parse((await first.api('GET', '/api/v1/devices/restart-dev')).json).online,
    );
    await endClient(c);
    const dep = deploymentView.parse(
      (
        await first.api('POST', '/api/v1/deployments', {
          body: { model: 'persist', version: '3.1.4', devices: [dev.deviceId] },
        })
      ).json,
    );
    const adminToken = first.server.adminToken;
    await first.server.close();
    await first.server.close(); // idempotent

    // Same dataDir, no trustedKeys passed: the key added at first start is persisted too.
    const second = await startTestServer({ trustedKeys: [] }, { dataDir, keys });
    try {
      assert.equal(second.server.adminToken, adminToken, 'the generated admin token is reused');
      const v = deviceView.parse((await second.api('GET', '/api/v1/devices/restart-dev')).json);
      assert.equal(v.online, false, 'devices start offline after a restart');
      assert.equal(v.id, 'restart-dev');
      const m = modelVersionSummary.parse(
        (await second.api('GET', '/api/v1/models/persist/versions/3.1.4')).json,
      );
      assert.equal(m.state, 'ready');
      const dl = await second.api('GET', '/api/v1/artifacts/persist/3.1.4', {
        auth: basicAuth(dev.deviceId, dev.deviceSecret),
      });
      assert.ok(dl.bytes.equals(bytes), 'device credentials and artifact survive');
      const again = deploymentView.parse((await second.api('GET', `/api/v1/deployments/${dep.id}`)).json);
      assert.deepEqual(again, dep);
      const keysList = (await second.api('GET', '/api/v1/signing-keys')).json as { keyid: string }[];
      assert.deepEqual(
        keysList.map((k) => k.keyid),
        [keys.keyid],
      );

      const c2 = await connectDevice(second, dev.deviceId, dev.deviceSecret);
      const got = collect(c2);
      await c2.subscribeAsync(topics.commands(dev.deviceId), { qos: 1 });
      await waitFor(() => got.length > 0, 5000, 'pending command after restart');
      assert.equal(deployCommand.parse(JSON.parse(got[0]?.payload.toString() ?? '')).deploymentId, dep.id);
      await endClient(c2);
    } finally {
      await second.server.close();
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('a port that is already taken fails start-up cleanly', async () => {
  const first = await startTestServer();
  try {
    const port = Number(new URL(first.server.httpUrl).port);
    await assert.rejects(
      startServer({ dataDir: first.dataDir + '-2', httpPort: port, mqttPort: 0 }),
      /EADDRINUSE/,
    );
    // The failed attempt released its broker and database: a retry on free ports works.
    const retry = await startServer({ dataDir: first.dataDir + '-2', httpPort: 0, mqttPort: 0 });
    await retry.close();
  } finally {
    await first.dispose();
    await rm(first.dataDir + '-2', { recursive: true, force: true });
  }
});

test('the MQTT URL handed out at enrolment: wildcard bind uses the host the device used; publicMqttUrl wins', async () => {
  const wild = await startTestServer({ host: '0.0.0.0' });
  try {
    const port = new URL(wild.server.mqttUrl).port;
    const dev = await enrol(wild);
    assert.equal(dev.mqttUrl, `mqtt://127.0.0.1:${port}`);
    const viaLocalhost = await callApi(
      { ...wild.server, httpUrl: wild.server.httpUrl.replace('127.0.0.1', 'localhost') },
      'POST',
      '/api/v1/bootstrap-tokens',
      { body: {} },
    );
    const { token } = viaLocalhost.json as { token: string };
    const res = await callApi(
      { ...wild.server, httpUrl: wild.server.httpUrl.replace('127.0.0.1', 'localhost') },
      'POST',
      '/api/v1/enrol',
      { auth: 'none', body: { bootstrapToken: token } },
    );
    assert.equal((res.json as { mqttUrl: string }).mqttUrl, `mqtt://localhost:${port}`);
  } finally {
    await wild.dispose();
  }
  const pub = await startTestServer({ publicMqttUrl: 'mqtts://broker.example.com:8883' });
  try {
    assert.equal((await enrol(pub)).mqttUrl, 'mqtts://broker.example.com:8883');
  } finally {
    await pub.dispose();
  }
});
