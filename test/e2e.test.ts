/**
 * The vertical slice, end to end on real parts: an in-process control plane (fastify + aedes + SQLite), agents
 * as real child processes of the `outpost` binary, real onnxruntime sessions, real signatures.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { startServer } from '@outpost/server';
import { decodeModel, encodeModel, quantizeDynamic } from '@outpost/toolkit';
import type { OutpostError } from '@outpost/protocol';
import { generateSigningKeyPair, topics } from '@outpost/protocol';
import {
  AgentClient,
  ControlPlaneClient,
  buildManifest,
  pollUntil,
  publishArtifact,
  signRelease,
  spawnAgentProcess,
  stopAgentProcess,
  writeKeyPair,
  type AgentProcess,
} from '@outpost/cli';
import { FP32_MODEL, argmax, digit, evalDigits, tempDir } from './support.ts';

type Server = Awaited<ReturnType<typeof startServer>>;

describe('optimize → sign → deploy → run → observe', () => {
  const root = tempDir('e2e');
  const keys = writeKeyPair(join(root, 'keys'), 'publisher');
  const privateKey = readFileSync(keys.keyPath, 'utf8');
  const fp32 = new Uint8Array(readFileSync(FP32_MODEL));
  const int8 = encodeModel(quantizeDynamic(decodeModel(fp32), { weightType: 'uint8' }).model);
  const digits = evalDigits(20);
  let server: Server;
  let cp: ControlPlaneClient;
  const agents: AgentProcess[] = [];

  async function publish(version: string, bytes: Uint8Array, key = privateKey) {
    const manifest = buildManifest(bytes, { name: 'mnist', version });
    return publishArtifact(cp, signRelease(manifest, key), bytes);
  }

  async function deployAndWait(version: string, devices: string[]) {
    const d = await cp.createDeployment({ model: 'mnist', version, devices });
    return pollUntil(
      () => cp.getDeployment(d.id),
      (v) => v.targets.every((t) => t.state === 'succeeded' || t.state === 'failed'),
      { timeoutMs: 30_000, what: `deployment of ${version}` },
    );
  }

  async function servedVersion(a: AgentProcess): Promise<{ version: string; correct: number }> {
    const client = new AgentClient(a.apiUrl, a.apiToken);
    let correct = 0;
    let version = '';
    for (let k = 0; k < digits.y.length; k++) {
      const r = await client.infer('mnist', {
        inputs: { input: { shape: [1, 1, 28, 28], data: digit(digits.x, k) } },
      });
      version = r.model.version;
      if (argmax(r.outputs.logits!.data as number[]) === digits.y[k]) correct++;
    }
    return { version, correct };
  }

  before(async () => {
    server = await startServer({
      dataDir: join(root, 'server'),
      httpPort: 0,
      mqttPort: 0,
      trustedKeys: [readFileSync(keys.pubPath, 'utf8')],
    });
    cp = new ControlPlaneClient(server.httpUrl, server.adminToken);
    const { token } = await cp.createBootstrapToken(2, 600);
    for (const i of [1, 2]) {
      agents.push(
        await spawnAgentProcess({
          serverUrl: server.httpUrl,
          dataDir: join(root, `agent-${i}`),
          trustKeyPaths: [keys.pubPath],
          bootstrapToken: token,
          deviceId: `e2e-${i}`,
          telemetryIntervalMs: 300,
        }),
      );
    }
  });

  after(async () => {
    await Promise.all(agents.map((a) => stopAgentProcess(a)));
    await server?.close();
  });

  test('agents enrolled with their own credentials and are online', async () => {
    const devices = await pollUntil(
      () => cp.listDevices(),
      (ds) => ds.filter((d) => d.online).length === 2,
      { timeoutMs: 15_000, what: 'both devices online' },
    );
    assert.deepEqual(devices.map((d) => d.id).sort(), ['e2e-1', 'e2e-2']);
    const ids = agents.map(
      (a) => JSON.parse(readFileSync(join(a.dataDir, 'identity.json'), 'utf8')) as { deviceSecret: string },
    );
    assert.notEqual(ids[0]!.deviceSecret, ids[1]!.deviceSecret);
  });

  test('fp32 v1.0.0 is deployed and serves correct MNIST predictions', async () => {
    await publish('1.0.0', fp32);
    const d = await deployAndWait('1.0.0', ['e2e-1', 'e2e-2']);
    assert.deepEqual(
      d.targets.map((t) => t.state),
      ['succeeded', 'succeeded'],
    );
    for (const a of agents) {
      const r = await servedVersion(a);
      assert.equal(r.version, '1.0.0');
      assert.ok(r.correct >= 19, `accuracy ${r.correct}/20`);
    }
  });

  test('int8 v1.1.0 replaces it atomically and keeps v1.0.0 as previous', async () => {
    await publish('1.1.0', int8);
    const d = await deployAndWait('1.1.0', ['e2e-1', 'e2e-2']);
    assert.deepEqual(
      d.targets.map((t) => t.state),
      ['succeeded', 'succeeded'],
    );
    for (const a of agents) {
      assert.equal((await servedVersion(a)).version, '1.1.0');
      const files = readdirSync(join(a.dataDir, 'models', 'mnist'));
      assert.ok(files.includes('1.0.0.onnx') && files.includes('1.1.0.onnx'), files.join(','));
    }
  });

  test('a tampered artifact (one flipped byte) is refused; the previous model keeps serving', async () => {
    await publish('1.2.0', int8.slice());
    // Corrupt the stored artifact after the server accepted it: storage or transit tampering.
    const path = join(server.dataDir, 'artifacts', 'mnist', '1.2.0.onnx');
    const bytes = readFileSync(path);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
    writeFileSync(path, bytes);
    const d = await deployAndWait('1.2.0', ['e2e-1']);
    assert.equal(d.targets[0]!.state, 'failed');
    assert.match(d.targets[0]!.error ?? '', /HASH_MISMATCH/);
    const r = await servedVersion(agents[0]!);
    assert.equal(r.version, '1.1.0');
    assert.ok(!readdirSync(join(agents[0]!.dataDir, 'models', 'mnist')).includes('1.2.0.onnx'));
  });

  test('an artifact signed by a key the agent does not trust is refused', async () => {
    // The control plane is told to trust a rogue key (a compromised server); the agent's pinned key still rules.
    const rogue = generateSigningKeyPair();
    const res = await fetch(`${server.httpUrl}/api/v1/signing-keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ publicKeyPem: rogue.publicKeyPem }),
    });
    assert.equal(res.status < 300, true);
    await publish('1.3.0', int8, rogue.privateKeyPem);
    const d = await deployAndWait('1.3.0', ['e2e-2']);
    assert.equal(d.targets[0]!.state, 'failed');
    assert.match(d.targets[0]!.error ?? '', /UNKNOWN_KEY/);
    assert.equal((await servedVersion(agents[1]!)).version, '1.1.0');
  });

  test('bad input gets a coded error and every process keeps running', async () => {
    const client = new AgentClient(agents[0]!.apiUrl, agents[0]!.apiToken);
    await assert.rejects(
      client.infer('mnist', { inputs: { input: { shape: [1, 1, 28, 27], data: new Array(756).fill(0) } } }),
      (e: OutpostError) => e.code === 'TENSOR_SHAPE_MISMATCH',
    );
    await assert.rejects(
      cp.createDeployment({ model: 'mnist', version: '1.1.0', devices: ['no-such-device'] }),
      (e: OutpostError) => e.code === 'DEVICE_UNKNOWN',
    );
    // Malformed MQTT payloads from an authenticated device: server must drop them and stay up.
    const id = JSON.parse(readFileSync(join(agents[0]!.dataDir, 'identity.json'), 'utf8')) as {
      deviceId: string;
      deviceSecret: string;
    };
    const c = await mqtt.connectAsync(server.mqttUrl, {
      username: id.deviceId,
      password: id.deviceSecret,
      clientId: `${id.deviceId}`,
      reconnectPeriod: 0,
    });
    await c.publishAsync(topics.telemetry(id.deviceId), '{not json', { qos: 1 });
    await c.publishAsync(topics.acks(id.deviceId), JSON.stringify({ commandId: 42 }), { qos: 1 });
    await c.endAsync();
    const health = await fetch(`${server.httpUrl}/healthz`);
    assert.equal(health.status, 200);
    // The agent that was kicked off by the duplicate client id reconnects and keeps serving.
    assert.equal((await servedVersion(agents[0]!)).correct >= 19, true);
  });

  test('telemetry and status reach the control plane', async () => {
    const reports = await pollUntil(
      () => cp.telemetry('e2e-1'),
      (rs) => rs.some((r) => r.models.some((m) => m.requests > 0)),
      { timeoutMs: 15_000, what: 'telemetry' },
    );
    const m = reports.flatMap((r) => r.models).find((x) => x.requests > 0)!;
    assert.ok(m.latencyMs.p50 > 0 && m.latencyMs.p99 >= m.latencyMs.p50);
    // Status is retained and re-published on every (re)connect, so it converges even after the session takeover above.
    const dev = await pollUntil(
      () => cp.getDevice('e2e-1'),
      (d) => d.online && d.status?.models.length === 1,
      { timeoutMs: 10_000, what: 'status of e2e-1' },
    ).catch(async () => cp.getDevice('e2e-1'));
    assert.deepEqual(
      dev.status?.models.map((x) => `${x.name}@${x.version}`),
      ['mnist@1.1.0'],
      JSON.stringify(dev),
    );
  });

  test('after kill -9 the agent restarts from disk, without re-enrolling, serving the active model', async () => {
    const a = agents[1]!;
    a.child.kill('SIGKILL');
    await new Promise((r) => a.child.once('exit', r));
    const restarted = await spawnAgentProcess({
      serverUrl: server.httpUrl,
      dataDir: a.dataDir,
      trustKeyPaths: [keys.pubPath],
      telemetryIntervalMs: 300,
    });
    agents[1] = restarted;
    assert.equal(restarted.deviceId, 'e2e-2');
    const r = await servedVersion(restarted);
    assert.equal(r.version, '1.1.0');
    assert.ok(r.correct >= 19);
  });
});
