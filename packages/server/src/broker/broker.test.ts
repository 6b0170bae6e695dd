import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import {
  MAX_MQTT_PAYLOAD,
  deployCommand,
  deploymentView,
  deviceView,
  topics,
  verifyDocument,
  type CommandAck,
  type DeploymentView,
  type TelemetryReport,
} from '@outpost/protocol';
import {
  collect,
  connectDevice,
  connectMqtt,
  endClient,
  enrol,
  publishReady,
  sleep,
  startTestServer,
  waitFor,
  type TestServer,
} from '../testkit/index.ts';

function ack(
  deviceId: string,
  commandId: string,
  status: CommandAck['status'],
  error?: CommandAck['error'],
): string {
  return JSON.stringify({
    commandId,
    deviceId,
    status,
    ts: new Date().toISOString(),
    ...(error ? { error } : {}),
  });
}

function telemetry(deviceId: string, seq: number, rssBytes = 1234): string {
  const r: TelemetryReport = {
    deviceId,
    seq,
    windowStart: new Date().toISOString(),
    windowEnd: new Date().toISOString(),
    rssBytes,
    models: [],
  };
  return JSON.stringify(r);
}

/** Resolves when the broker drops the client; fails the test instead of hanging if it never does. */
function closed(c: MqttClient, timeoutMs = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!c.connected) return resolve();
    const timer = setTimeout(() => reject(new Error('the broker did not close the connection')), timeoutMs);
    c.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

describe('MQTT broker', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
    await publishReady(t, randomBytes(2048), { name: 'mnist', version: '1.0.0' });
  });
  after(async () => {
    await t.dispose();
  });

  const deploy = async (devices: string[]): Promise<DeploymentView> => {
    const r = await t.api('POST', '/api/v1/deployments', {
      body: { model: 'mnist', version: '1.0.0', devices },
    });
    assert.equal(r.status, 201, JSON.stringify(r.json));
    return deploymentView.parse(r.json);
  };
  const getDeployment = async (id: string) =>
    deploymentView.parse((await t.api('GET', `/api/v1/deployments/${id}`)).json);
  const stateOf = async (id: string, deviceId: string) =>
    (await getDeployment(id)).targets.find((x) => x.deviceId === deviceId)?.state;
  const telemetryOf = async (deviceId: string) =>
    (await t.api('GET', `/api/v1/devices/${deviceId}/telemetry`)).json as TelemetryReport[];

  test('login needs the device id as client id and username and the right secret', async () => {
    const dev = await enrol(t);
    const url = t.server.mqttUrl;
    await assert.rejects(connectMqtt(url, { clientId: dev.deviceId }), /Not authorized|Bad username/i);
    await assert.rejects(
      connectMqtt(url, { clientId: dev.deviceId, username: dev.deviceId, password: 'x'.repeat(43) }),
      /Bad username or password/i,
    );
    await assert.rejects(
      connectMqtt(url, { clientId: 'someone-else', username: dev.deviceId, password: dev.deviceSecret }),
      /Identifier rejected/i,
    );
    await assert.rejects(
      connectMqtt(url, { clientId: 'ghost', username: 'ghost', password: dev.deviceSecret }),
      /Bad username or password/i,
    );
    const ok = await connectDevice(t, dev.deviceId, dev.deviceSecret);
    await endClient(ok);
  });

  test('a connected device receives its deploy command and its acks move the target forward only', async () => {
    const dev = await enrol(t);
    const c = await connectDevice(t, dev.deviceId, dev.deviceSecret);
    const got = collect(c);
    await c.subscribeAsync(topics.commands(dev.deviceId), { qos: 1 });
    await waitFor(
      async () => deviceView.parse((await t.api('GET', `/api/v1/devices/${dev.deviceId}`)).json).online,
    );

    const view = await deploy([dev.deviceId]);
    const target = view.targets[0];
    assert.ok(target);
    assert.equal(target.state, 'pending');
    await waitFor(() => got.length === 1, 5000, 'deploy command');
    const cmd = deployCommand.parse(JSON.parse(got[0]?.payload.toString() ?? ''));
    assert.equal(got[0]?.topic, topics.commands(dev.deviceId));
    assert.equal(cmd.commandId, target.commandId);
    assert.equal(cmd.deploymentId, view.id);
    assert.equal(cmd.artifactPath, '/api/v1/artifacts/mnist/1.0.0');
    assert.deepEqual(verifyDocument(cmd.release, [t.keys.publicKeyPem]), [t.keys.keyid]);

    await c.publishAsync(topics.acks(dev.deviceId), ack(dev.deviceId, cmd.commandId, 'received'), { qos: 1 });
    await waitFor(async () => (await stateOf(view.id, dev.deviceId)) === 'received', 5000, 'received');
    await c.publishAsync(topics.acks(dev.deviceId), ack(dev.deviceId, cmd.commandId, 'succeeded'), {
      qos: 1,
    });
    await waitFor(async () => (await stateOf(view.id, dev.deviceId)) === 'succeeded', 5000, 'succeeded');
    // Redelivered / late acks change nothing.
    await c.publishAsync(topics.acks(dev.deviceId), ack(dev.deviceId, cmd.commandId, 'received'), { qos: 1 });
    await c.publishAsync(
      topics.acks(dev.deviceId),
      ack(dev.deviceId, cmd.commandId, 'failed', { code: 'HASH_MISMATCH', message: 'x', retryable: false }),
      { qos: 1 },
    );
    await c.publishAsync(topics.telemetry(dev.deviceId), telemetry(dev.deviceId, 99), { qos: 1 });
    await waitFor(async () => (await telemetryOf(dev.deviceId)).length === 1, 5000, 'sync point');
    const final = (await getDeployment(view.id)).targets[0];
    assert.equal(final?.state, 'succeeded');
    assert.equal(final?.error, null);
    await endClient(c);
  });

  test('a failed ack records the error', async () => {
    const dev = await enrol(t);
    const view = await deploy([dev.deviceId]);
    const commandId = view.targets[0]?.commandId ?? '';
    const c = await connectDevice(t, dev.deviceId, dev.deviceSecret);
    await c.publishAsync(
      topics.acks(dev.deviceId),
      ack(dev.deviceId, commandId, 'failed', {
        code: 'HASH_MISMATCH',
        message: 'sha differs',
        retryable: false,
      }),
      { qos: 1 },
    );
    await waitFor(async () => (await stateOf(view.id, dev.deviceId)) === 'failed', 5000, 'failed');
    assert.equal((await getDeployment(view.id)).targets[0]?.error, 'HASH_MISMATCH: sha differs');
    await endClient(c);
  });

  test('a device that connects later receives the pending command, until it acknowledges it', async () => {
    const dev = await enrol(t);
    const view = await deploy([dev.deviceId]);
    const commandId = view.targets[0]?.commandId;

    const c1 = await connectDevice(t, dev.deviceId, dev.deviceSecret);
    const got1 = collect(c1);
    await c1.subscribeAsync(topics.commands(dev.deviceId), { qos: 1 });
    await waitFor(() => got1.length >= 1, 5000, 'pending command on first connect');
    assert.equal(deployCommand.parse(JSON.parse(got1[0]?.payload.toString() ?? '')).commandId, commandId);
    await endClient(c1);

    // Not acknowledged: it comes again, with the same commandId so the agent can dedupe.
    const c2 = await connectDevice(t, dev.deviceId, dev.deviceSecret);
    const got2 = collect(c2);
    await c2.subscribeAsync(topics.commands(dev.deviceId), { qos: 1 });
    await waitFor(() => got2.length >= 1, 5000, 'pending command on reconnect');
    assert.equal(deployCommand.parse(JSON.parse(got2[0]?.payload.toString() ?? '')).commandId, commandId);
    await c2.publishAsync(topics.acks(dev.deviceId), ack(dev.deviceId, commandId ?? '', 'received'), {
      qos: 1,
    });
    await waitFor(async () => (await stateOf(view.id, dev.deviceId)) === 'received', 5000, 'received');
    await endClient(c2);

    const c3 = await connectDevice(t, dev.deviceId, dev.deviceSecret);
    const got3 = collect(c3);
    await c3.subscribeAsync(topics.commands(dev.deviceId), { qos: 1 });
    await sleep(300);
    assert.equal(got3.length, 0, 'an acknowledged command is not re-sent');
    await endClient(c3);
  });

  test('status updates the device; disconnect and the last will mark it offline', async () => {
    const dev = await enrol(t);
    const status = (online: boolean) =>
      JSON.stringify({
        deviceId: dev.deviceId,
        online,
        ts: new Date().toISOString(),
        agentVersion: '9.9.9',
        models: [],
      });
    const c = await connectDevice(t, dev.deviceId, dev.deviceSecret, {
      will: { topic: topics.status(dev.deviceId), payload: Buffer.from(status(false)), qos: 1, retain: true },
    });
    await c.publishAsync(topics.status(dev.deviceId), status(true), { qos: 1, retain: true });
    const view = await waitFor(async () => {
      const v = deviceView.parse((await t.api('GET', `/api/v1/devices/${dev.deviceId}`)).json);
      return v.status ? v : null;
    });
    assert.equal(view.online, true);
    assert.equal(view.agentVersion, '9.9.9');
    assert.equal(view.status?.agentVersion, '9.9.9');
    assert.ok(view.lastSeen);
    // Drop the TCP connection without DISCONNECT: the broker publishes the will.
    c.stream.destroy();
    await waitFor(
      async () => {
        const v = deviceView.parse((await t.api('GET', `/api/v1/devices/${dev.deviceId}`)).json);
        return !v.online && v.status?.online === false;
      },
      5000,
      'offline via will',
    );
    c.end(true);
  });

  test('a session taken over by a new connection leaves the device online', async () => {
    const dev = await enrol(t);
    const offline = JSON.stringify({
      deviceId: dev.deviceId,
      online: false,
      ts: new Date().toISOString(),
      models: [],
    });
    const will = {
      topic: topics.status(dev.deviceId),
      payload: Buffer.from(offline),
      qos: 1 as const,
      retain: true,
    };
    const c1 = await connectDevice(t, dev.deviceId, dev.deviceSecret, { will });
    const c1Closed = closed(c1);
    const c2 = await connectDevice(t, dev.deviceId, dev.deviceSecret, { will });
    await c1Closed;
    c1.end(true);
    await sleep(200);
    const v = deviceView.parse((await t.api('GET', `/api/v1/devices/${dev.deviceId}`)).json);
    assert.equal(v.online, true, "the old session's will and disconnect must not mark the device offline");
    await endClient(c2);
    await waitFor(
      async () => !deviceView.parse((await t.api('GET', `/api/v1/devices/${dev.deviceId}`)).json).online,
    );
  });

  test('telemetry with a repeated seq is stored once, newest first', async () => {
    const dev = await enrol(t);
    const c = await connectDevice(t, dev.deviceId, dev.deviceSecret);
    for (const [seq, rss] of [
      [1, 100],
      [2, 200],
      [1, 999],
      [3, 300],
      [2, 999],
    ] as const) {
      await c.publishAsync(topics.telemetry(dev.deviceId), telemetry(dev.deviceId, seq, rss), { qos: 1 });
    }
    const list = await waitFor(async () => {
      const l = await telemetryOf(dev.deviceId);
      return l.length >= 3 ? l : null;
    });
    await sleep(100);
    assert.deepEqual(
      (await telemetryOf(dev.deviceId)).map((r) => [r.seq, r.rssBytes]),
      [
        [3, 300],
        [2, 200],
        [1, 100],
      ],
    );
    assert.equal(list.length, 3);
    await endClient(c);
  });

  test('malformed and wrong-typed payloads are dropped and the server keeps working', async () => {
    const dev = await enrol(t);
    const other = await enrol(t);
    const view = await deploy([dev.deviceId]);
    const commandId = view.targets[0]?.commandId ?? '';
    const c = await connectDevice(t, dev.deviceId, dev.deviceSecret);
    const bad: [string, string | Buffer][] = [
      [topics.telemetry(dev.deviceId), 'not json {'],
      [topics.telemetry(dev.deviceId), Buffer.from([0xff, 0xfe, 0x00])],
      [topics.telemetry(dev.deviceId), JSON.stringify({ deviceId: dev.deviceId, seq: 'one' })],
      [topics.telemetry(dev.deviceId), telemetry(other.deviceId, 1)],
      [topics.telemetry(dev.deviceId), '[]'],
      [topics.telemetry(dev.deviceId), 'null'],
      [topics.acks(dev.deviceId), JSON.stringify({ commandId, deviceId: dev.deviceId, status: 'exploded' })],
      [topics.acks(dev.deviceId), ack(other.deviceId, commandId, 'succeeded')],
      [topics.acks(dev.deviceId), ack(dev.deviceId, '00000000-0000-4000-8000-000000000000', 'succeeded')],
      [topics.status(dev.deviceId), JSON.stringify({ deviceId: dev.deviceId, online: 'yes' })],
      [topics.status(dev.deviceId), ''],
    ];
    for (const [topic, payload] of bad) await c.publishAsync(topic, payload, { qos: 1 });
    // The connection survives, and good messages after the bad ones are processed.
    await c.publishAsync(topics.telemetry(dev.deviceId), telemetry(dev.deviceId, 7), { qos: 1 });
    const list = await waitFor(async () => {
      const l = await telemetryOf(dev.deviceId);
      return l.length > 0 ? l : null;
    });
    assert.deepEqual(
      list.map((r) => r.seq),
      [7],
    );
    assert.equal(c.connected, true);
    assert.equal((await getDeployment(view.id)).targets[0]?.state, 'pending');
    assert.equal((await telemetryOf(other.deviceId)).length, 0);
    assert.equal(deviceView.parse((await t.api('GET', `/api/v1/devices/${dev.deviceId}`)).json).status, null);
    assert.equal((await t.api('GET', '/healthz', { auth: 'none' })).status, 200);
    await endClient(c);
  });

  test('ACL: a device cannot subscribe outside its commands topic', async () => {
    const a = await enrol(t);
    const b = await enrol(t);
    const c = await connectDevice(t, a.deviceId, a.deviceSecret);
    for (const topic of [
      '#',
      '$SYS/#',
      'outpost/#',
      'outpost/v1/devices/+/commands',
      '+/v1/devices/' + a.deviceId + '/commands',
      topics.commands(b.deviceId),
      topics.telemetry(a.deviceId),
      topics.status(b.deviceId),
    ]) {
      // mqtt.js turns SUBACK 0x80 into a rejection carrying the packet.
      await assert.rejects(
        c.subscribeAsync(topic, { qos: 1 }),
        (e: Error & { packet?: { granted?: number[] } }) => e.packet?.granted?.[0] === 128,
        `subscription to ${topic} must be refused`,
      );
    }
    const own = await c.subscribeAsync(topics.commands(a.deviceId), { qos: 1 });
    assert.equal(own[0]?.qos, 1);
    assert.equal(c.connected, true);
    await endClient(c);
  });

  test("ACL: a device cannot publish to another device's topics or to commands", async () => {
    const a = await enrol(t);
    const b = await enrol(t);
    const bClient = await connectDevice(t, b.deviceId, b.deviceSecret);
    const bGot = collect(bClient);
    await bClient.subscribeAsync(topics.commands(b.deviceId), { qos: 1 });
    const forged = JSON.stringify({ kind: 'deploy', hello: 'forged' });
    for (const topic of [
      topics.commands(b.deviceId),
      topics.telemetry(b.deviceId),
      topics.commands(a.deviceId),
      'anything/else',
      '$SYS/x',
    ]) {
      const c = await connectDevice(t, a.deviceId, a.deviceSecret);
      const payload = topic === topics.telemetry(b.deviceId) ? telemetry(b.deviceId, 1) : forged;
      c.publish(topic, payload, { qos: 0 });
      await closed(c);
      c.end(true);
    }
    await sleep(200);
    assert.equal(bGot.length, 0, 'the other device receives nothing');
    assert.equal((await telemetryOf(b.deviceId)).length, 0);
    await endClient(bClient);
  });

  test('oversized payloads are refused and the connection closed', async () => {
    const dev = await enrol(t);
    const c = await connectDevice(t, dev.deviceId, dev.deviceSecret);
    const big = telemetry(dev.deviceId, 1).replace(
      '"models":[]',
      `"models":[],"pad":"${'x'.repeat(MAX_MQTT_PAYLOAD)}"`,
    );
    c.publish(topics.telemetry(dev.deviceId), big, { qos: 0 });
    await closed(c);
    c.end(true);
    assert.equal((await telemetryOf(dev.deviceId)).length, 0);
    // Far over the cap: cut off at the frame header by the frame guard.
    const c2 = await connectDevice(t, dev.deviceId, dev.deviceSecret);
    c2.publish(topics.telemetry(dev.deviceId), Buffer.alloc(2 * MAX_MQTT_PAYLOAD), { qos: 0 });
    await closed(c2);
    c2.end(true);
    const c3 = await connectDevice(t, dev.deviceId, dev.deviceSecret);
    await c3.publishAsync(topics.telemetry(dev.deviceId), telemetry(dev.deviceId, 2), { qos: 1 });
    await waitFor(async () => (await telemetryOf(dev.deviceId)).length === 1);
    await endClient(c3);
  });
});
