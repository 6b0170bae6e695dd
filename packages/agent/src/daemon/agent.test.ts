import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import ort from 'onnxruntime-node';
import { generateSigningKeyPair, OutpostError, type InferenceResponse } from '@outpost/protocol';
import {
  argmax,
  deployCmd,
  MNIST_DYN,
  MNIST_FP32,
  MNIST_QDQ,
  mnistEval,
  mnistManifest,
  signRelease,
  startControlClient,
  startTestBroker,
  startTestControlPlane,
  type ControlClient,
  type TestBroker,
  type TestControlPlane,
} from '../testing/index.ts';
import { startAgent, type RunningAgent } from './index.ts';

const publisher = generateSigningKeyPair();
const stranger = generateSigningKeyPair();
const fp32 = readFileSync(MNIST_FP32);
const qdq = readFileSync(MNIST_QDQ);
const dyn = readFileSync(MNIST_DYN);
const N = 64;
const digits = mnistEval(N);

let broker: TestBroker;
let cp: TestControlPlane;
let control: ControlClient;
const dirs: string[] = [];

function freshDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'outpost-agent-'));
  dirs.push(d);
  return d;
}

/** Starts an agent and waits until it is online (subscribed), as the control plane would before sending. */
async function start(
  dataDir: string,
  extra: Partial<Parameters<typeof startAgent>[0]> = {},
): Promise<RunningAgent> {
  const since = new Date().toISOString();
  const agent = await startAgent({
    serverUrl: cp.url,
    dataDir,
    bootstrapToken: cp.bootstrapToken,
    trustedKeys: [publisher.publicKeyPem],
    apiPort: 0,
    mqttReconnectMs: 50,
    telemetryIntervalMs: 100,
    ...extra,
  });
  await control.waitFor('the agent online', () =>
    control.statuses.some((s) => s.deviceId === agent.deviceId && s.online && s.ts >= since),
  );
  return agent;
}

async function api(agent: RunningAgent, path: string, init: RequestInit = {}, token = agent.apiToken) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${agent.apiUrl}${path}`, {
    ...init,
    headers: { ...headers, ...(init.headers ?? {}) },
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function classify(agent: RunningAgent, n = N) {
  const res = await api(agent, '/v1/models/mnist/infer', {
    method: 'POST',
    body: JSON.stringify({
      inputs: { input: { shape: [n, 1, 28, 28], data: Array.from(digits.x.subarray(0, n * 784)) } },
    }),
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const body = res.body as unknown as InferenceResponse;
  const logits = body.outputs.logits;
  assert.ok(logits);
  assert.deepEqual(logits.shape, [n, 10]);
  const rows = Array.from({ length: n }, (_, i) => (logits.data as number[]).slice(i * 10, i * 10 + 10));
  return { body, rows, predictions: rows.map(argmax) };
}

/** Publishes a signed deploy of `bytes` (served as the artifact) and waits for its final ack. */
async function deploy(
  agent: RunningAgent,
  bytes: Uint8Array,
  version: string,
  opts: { served?: Uint8Array; key?: string } = {},
) {
  const release = signRelease(mnistManifest(bytes, 'mnist', version), opts.key ?? publisher.privateKeyPem);
  cp.artifacts.set(`mnist/${version}`, opts.served ?? bytes);
  const cmd = deployCmd(release);
  await control.send(agent.deviceId, cmd);
  const ack = await control.waitFor(`final ack of ${cmd.commandId}`, () =>
    control.acks.find((a) => a.commandId === cmd.commandId && a.status !== 'received'),
  );
  return { cmd, ack };
}

function liveFiles(dataDir: string): string[] {
  const dir = join(dataDir, 'models', 'mnist');
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

before(async () => {
  broker = await startTestBroker();
  cp = await startTestControlPlane(broker);
  control = await startControlClient(broker);
});

after(async () => {
  await control.close();
  await cp.close();
  await broker.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('enrolment', () => {
  test('enrols once, persists the identity with mode 0600 and reuses it on restart', async () => {
    const dataDir = freshDir();
    const before = cp.enrolCalls;
    const a = await start(dataDir, { deviceId: 'enrol-1' });
    assert.equal(a.deviceId, 'enrol-1');
    const token = a.apiToken;
    await a.close();
    const idPath = join(dataDir, 'identity.json');
    assert.equal(statSync(idPath).mode & 0o777, 0o600);
    assert.equal(statSync(join(dataDir, 'api-token')).mode & 0o777, 0o600);
    const id = JSON.parse(readFileSync(idPath, 'utf8')) as { deviceId: string; deviceSecret: string };
    assert.equal(id.deviceId, 'enrol-1');
    assert.equal(id.deviceSecret, broker.devices.get('enrol-1'));

    // No bootstrap token needed any more; the same identity and API token come back.
    const b = await start(dataDir, { bootstrapToken: undefined });
    assert.equal(b.deviceId, 'enrol-1');
    assert.equal(b.apiToken, token);
    await b.close();
    assert.equal(cp.enrolCalls - before, 1);
  });

  test("a refused enrolment surfaces the server's error code and writes nothing", async () => {
    const dataDir = freshDir();
    await assert.rejects(start(dataDir, { bootstrapToken: 'x'.repeat(32) }), (err: unknown) => {
      assert.ok(err instanceof OutpostError);
      assert.equal(err.code, 'ENROLMENT_TOKEN_INVALID');
      return true;
    });
    assert.equal(existsSync(join(dataDir, 'identity.json')), false);
  });
});

describe('deployments', () => {
  let dataDir: string;
  let agent: RunningAgent;

  before(async () => {
    dataDir = freshDir();
    agent = await start(dataDir, { deviceId: 'dev-deploy' });
  });
  after(async () => {
    await agent.close();
  });

  test('a signed release is downloaded, verified, activated and served with correct MNIST predictions', async () => {
    const { cmd, ack } = await deploy(agent, fp32, '1.0.0');
    assert.equal(ack.status, 'succeeded', JSON.stringify(ack.error));
    const acks = control.acks.filter((a) => a.commandId === cmd.commandId).map((a) => a.status);
    assert.deepEqual(acks, ['received', 'succeeded']);
    assert.deepEqual(liveFiles(dataDir), ['1.0.0.onnx', 'state.json']);

    const { body, rows, predictions } = await classify(agent);
    assert.deepEqual(body.model, { name: 'mnist', version: '1.0.0' });
    assert.ok(body.timings.inferMs > 0 && body.timings.totalMs >= body.timings.inferMs);
    const correct = predictions.filter((p, i) => p === digits.y[i]).length;
    assert.ok(correct / N >= 0.95, `accuracy ${correct}/${N}`);

    // The served logits are the model's own: compare with a session opened here on the same file.
    const ref = await ort.InferenceSession.create(MNIST_FP32);
    const out = await ref.run({ input: new ort.Tensor('float32', digits.x, [N, 1, 28, 28]) });
    const want = out.logits?.data as Float32Array;
    rows.flat().forEach((v, i) => assert.ok(Math.abs(v - (want[i] ?? NaN)) < 1e-4, `logit ${i}`));
    await ref.release();

    const status = await control.waitFor('retained status with mnist', () =>
      control.statuses.find(
        (s) => s.deviceId === agent.deviceId && s.online && s.models.some((m) => m.version === '1.0.0'),
      ),
    );
    assert.equal(status.models[0]?.sha256, mnistManifest(fp32, 'mnist', '1.0.0').sha256);
    const local = await api(agent, '/v1/status');
    assert.equal(local.status, 200);
    assert.deepEqual(
      (local.body.models as { name: string; version: string; previousVersion: string | null }[]).map((m) => [
        m.name,
        m.version,
        m.previousVersion,
      ]),
      [['mnist', '1.0.0', null]],
    );
    assert.equal(local.body.connected, true);
  });

  test('deploying v2 keeps v1 as previous; v3 keeps v2 and deletes v1', async () => {
    const v2 = await deploy(agent, qdq, '2.0.0');
    assert.equal(v2.ack.status, 'succeeded', JSON.stringify(v2.ack.error));
    assert.deepEqual(liveFiles(dataDir), ['1.0.0.onnx', '2.0.0.onnx', 'state.json']);
    const state = JSON.parse(readFileSync(join(dataDir, 'models/mnist/state.json'), 'utf8')) as {
      active: { version: string };
      previous: { version: string };
    };
    assert.equal(state.active.version, '2.0.0');
    assert.equal(state.previous.version, '1.0.0');
    const r2 = await classify(agent);
    assert.equal(r2.body.model.version, '2.0.0');
    const correct = r2.predictions.filter((p, i) => p === digits.y[i]).length;
    assert.ok(correct / N >= 0.95, `int8 accuracy ${correct}/${N}`);

    const v3 = await deploy(agent, dyn, '3.0.0');
    assert.equal(v3.ack.status, 'succeeded');
    assert.deepEqual(liveFiles(dataDir), ['2.0.0.onnx', '3.0.0.onnx', 'state.json']);
    assert.equal((await classify(agent, 4)).body.model.version, '3.0.0');
  });

  test('a tampered artifact fails with HASH_MISMATCH and the previous model keeps serving', async () => {
    const filesBefore = liveFiles(dataDir);
    const tampered = Buffer.from(fp32);
    tampered[tampered.length >> 1] = (tampered[tampered.length >> 1] ?? 0) ^ 0x01;
    const { ack } = await deploy(agent, fp32, '4.0.0', { served: tampered });
    assert.equal(ack.status, 'failed');
    assert.equal(ack.error?.code, 'HASH_MISMATCH');
    assert.deepEqual(liveFiles(dataDir), filesBefore);
    assert.deepEqual(readdirSync(join(dataDir, 'models', '.incoming')), []);
    assert.equal((await classify(agent, 4)).body.model.version, '3.0.0');
  });

  test('an oversized artifact is cut off at the manifest size (SIZE_MISMATCH)', async () => {
    const filesBefore = liveFiles(dataDir);
    const { ack } = await deploy(agent, fp32, '4.0.1', { served: Buffer.concat([fp32, Buffer.alloc(4096)]) });
    assert.equal(ack.error?.code, 'SIZE_MISMATCH');
    assert.deepEqual(liveFiles(dataDir), filesBefore);
    assert.deepEqual(readdirSync(join(dataDir, 'models', '.incoming')), []);
  });

  test('a release signed by an unknown key fails with UNKNOWN_KEY before any download', async () => {
    const filesBefore = liveFiles(dataDir);
    const gets = cp.artifactGets.length;
    const { ack } = await deploy(agent, fp32, '5.0.0', { key: stranger.privateKeyPem });
    assert.equal(ack.status, 'failed');
    assert.equal(ack.error?.code, 'UNKNOWN_KEY');
    assert.equal(cp.artifactGets.length, gets, 'nothing was downloaded');
    assert.deepEqual(liveFiles(dataDir), filesBefore);
    assert.equal((await classify(agent, 4)).body.model.version, '3.0.0');
  });

  test('a release whose signature does not cover its manifest fails with SIGNATURE_INVALID', async () => {
    const release = signRelease(mnistManifest(fp32, 'mnist', '5.0.1'), publisher.privateKeyPem);
    release.signed = { ...release.signed, size: release.signed.size + 1 };
    cp.artifacts.set('mnist/5.0.1', fp32);
    const cmd = deployCmd(release);
    await control.send(agent.deviceId, cmd);
    const ack = await control.waitForAck(cmd.commandId, 'failed');
    assert.equal(ack.error?.code, 'SIGNATURE_INVALID');
  });

  test('a file that is not ONNX fails with ONNX_PARSE_FAILED and is not kept', async () => {
    const junk = Buffer.from('definitely not a protobuf model '.repeat(64));
    const { ack } = await deploy(agent, junk, '6.0.0');
    assert.equal(ack.error?.code, 'ONNX_PARSE_FAILED');
    assert.ok(!liveFiles(dataDir).includes('6.0.0.onnx'));
    assert.deepEqual(readdirSync(join(dataDir, 'models', '.incoming')), []);
  });

  test('a duplicate commandId is applied once and re-acked with its recorded outcome', async () => {
    const release = signRelease(mnistManifest(fp32, 'mnist', '7.0.0'), publisher.privateKeyPem);
    cp.artifacts.set('mnist/7.0.0', fp32);
    const cmd = deployCmd(release);
    const gets = cp.artifactGets.length;
    await Promise.all([control.send(agent.deviceId, cmd), control.send(agent.deviceId, cmd)]);
    await control.waitForAck(cmd.commandId, 'succeeded');
    // A redelivery after completion (e.g. on reconnect) is answered from the ledger.
    await control.send(agent.deviceId, cmd);
    await control.waitFor('second succeeded ack', () =>
      control.acks.filter((a) => a.commandId === cmd.commandId && a.status === 'succeeded').length === 2
        ? true
        : null,
    );
    assert.equal(cp.artifactGets.length - gets, 1, 'downloaded once');
    assert.equal(
      control.acks.filter((a) => a.commandId === cmd.commandId && a.status === 'received').length,
      1,
    );
    assert.deepEqual(liveFiles(dataDir), ['3.0.0.onnx', '7.0.0.onnx', 'state.json']);
  });

  test('rolling back to the kept previous version reuses its file without downloading', async () => {
    const gets = cp.artifactGets.length;
    const release = signRelease(mnistManifest(dyn, 'mnist', '3.0.0'), publisher.privateKeyPem);
    const cmd = deployCmd(release);
    await control.send(agent.deviceId, cmd);
    const ack = await control.waitFor('final ack', () =>
      control.acks.find((a) => a.commandId === cmd.commandId && a.status !== 'received'),
    );
    assert.equal(ack.status, 'succeeded', JSON.stringify(ack.error));
    assert.equal(cp.artifactGets.length, gets);
    assert.equal((await classify(agent, 2)).body.model.version, '3.0.0');
    assert.deepEqual(liveFiles(dataDir), ['3.0.0.onnx', '7.0.0.onnx', 'state.json']);
  });

  test('malformed MQTT commands are ignored or refused and the agent keeps working', async () => {
    const badId = randomUUID();
    await control.send(agent.deviceId, 'this is not json {');
    await control.send(agent.deviceId, { hello: 'world' });
    await control.send(agent.deviceId, { kind: 'deploy', commandId: badId, release: 42 });
    await control.send(agent.deviceId, { kind: 'reboot', commandId: randomUUID() });
    const ack = await control.waitForAck(badId, 'failed');
    assert.equal(ack.error?.code, 'MALFORMED_MESSAGE');
    const { ack: ok } = await deploy(agent, qdq, '8.0.0');
    assert.equal(ok.status, 'succeeded');
    assert.equal((await classify(agent, 2)).body.model.version, '8.0.0');
    assert.deepEqual(control.invalid, [], 'everything the agent published parses with the protocol schemas');
    assert.deepEqual(broker.denied, [], 'the agent stays inside its ACL');
  });

  test('the local API checks tokens, shapes and names', async () => {
    assert.equal((await fetch(`${agent.apiUrl}/healthz`)).status, 200);
    const noToken = await api(agent, '/v1/status', {}, '');
    assert.equal(noToken.status, 401);
    assert.equal(noToken.body.code, 'UNAUTHENTICATED');
    const wrong = await api(agent, '/v1/status', {}, `${agent.apiToken}x`);
    assert.equal(wrong.status, 401);
    const wrongInfer = await api(
      agent,
      '/v1/models/mnist/infer',
      { method: 'POST', body: '{}' },
      'nope-nope-nope',
    );
    assert.equal(wrongInfer.status, 401);

    const infer = (inputs: unknown) =>
      api(agent, '/v1/models/mnist/infer', { method: 'POST', body: JSON.stringify({ inputs }) });
    const shape = await infer({ input: { shape: [1, 28, 28], data: new Array(784).fill(0) } });
    assert.equal(shape.status, 400);
    assert.equal(shape.body.code, 'TENSOR_SHAPE_MISMATCH');
    assert.match(String(shape.body.message), /rank 3/);
    const dim = await infer({ input: { shape: [1, 1, 28, 27], data: new Array(756).fill(0) } });
    assert.equal(dim.body.code, 'TENSOR_SHAPE_MISMATCH');
    assert.match(String(dim.body.message), /dimension 3 is 27, the model expects 28/);
    const count = await infer({ input: { shape: [1, 1, 28, 28], data: [1, 2, 3] } });
    assert.equal(count.body.code, 'TENSOR_SHAPE_MISMATCH');
    const dtype = await infer({
      input: { dtype: 'int32', shape: [1, 1, 28, 28], data: new Array(784).fill(0) },
    });
    assert.equal(dtype.body.code, 'TENSOR_SHAPE_MISMATCH');
    const b64 = await infer({
      input: { shape: [1, 1, 28, 28], dataB64: Buffer.from(digits.x.buffer, 0, 784 * 4).toString('base64') },
    });
    assert.equal(b64.status, 200);

    const malformed = await api(agent, '/v1/models/mnist/infer', { method: 'POST', body: '{"inputs": ' });
    assert.equal(malformed.status, 400);
    assert.equal(malformed.body.code, 'MALFORMED_MESSAGE');
    const unknown = await api(agent, '/v1/models/nope/infer', { method: 'POST', body: '{"inputs":{}}' });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.code, 'MODEL_UNKNOWN');
    const bad = await api(agent, '/v1/models/..%2F..%2Fetc/infer', { method: 'POST', body: '{"inputs":{}}' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, 'INVALID_NAME');
    assert.equal((await api(agent, '/v1/status')).status, 200, 'still alive');
  });

  test('telemetry reports traffic with a persisted, increasing seq', async () => {
    const from = control.telemetry.length;
    await classify(agent, 2);
    await classify(agent, 2);
    const report = await control.waitFor('telemetry with traffic', () =>
      control.telemetry
        .slice(from)
        .find((r) => r.deviceId === agent.deviceId && r.models.some((m) => m.requests > 0)),
    );
    const mnist = report.models.find((m) => m.name === 'mnist');
    assert.ok(mnist && mnist.requests >= 2 && mnist.latencyMs.count >= 2 && mnist.latencyMs.p50 > 0);
    assert.ok(report.rssBytes > 0);
    const seqs = control.telemetry.filter((r) => r.deviceId === agent.deviceId).map((r) => r.seq);
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => a - b),
    );
    assert.equal(new Set(seqs).size, seqs.length);
  });
});

describe('restarts', () => {
  test('the active model is reloaded; a corrupted file is refused (fallback to previous, else none)', async () => {
    const dataDir = freshDir();
    let agent = await start(dataDir, { deviceId: 'dev-restart' });
    assert.equal((await deploy(agent, fp32, '1.0.0')).ack.status, 'succeeded');
    await classify(agent, 2);
    const seqBefore = await control.waitFor('a telemetry report', () =>
      control.telemetry.filter((r) => r.deviceId === 'dev-restart').at(-1),
    );
    await agent.close();
    const offline = control.statuses.filter((s) => s.deviceId === 'dev-restart').at(-1);
    assert.equal(offline?.online, false);

    agent = await start(dataDir, { bootstrapToken: undefined });
    assert.deepEqual(
      agent.status().models.map((m) => m.version),
      ['1.0.0'],
    );
    assert.equal((await classify(agent, 2)).body.model.version, '1.0.0');
    const seqAfter = await control.waitFor('telemetry after restart', () =>
      control.telemetry.filter((r) => r.deviceId === 'dev-restart' && r.seq > seqBefore.seq).at(-1),
    );
    assert.ok(seqAfter.seq > seqBefore.seq);
    assert.equal((await deploy(agent, qdq, '2.0.0')).ack.status, 'succeeded');
    await agent.close();

    // Flip one byte of the active file on disk: the agent must notice and serve the previous version.
    const active = join(dataDir, 'models/mnist/2.0.0.onnx');
    const bytes = readFileSync(active);
    bytes[100] = (bytes[100] ?? 0) ^ 0xff;
    writeFileSync(active, bytes);
    agent = await start(dataDir, { bootstrapToken: undefined });
    assert.deepEqual(
      agent.status().models.map((m) => m.version),
      ['1.0.0'],
    );
    assert.equal((await classify(agent, 2)).body.model.version, '1.0.0');
    await agent.close();

    // Now corrupt the only remaining version: nothing verifies, so nothing is served.
    const only = join(dataDir, 'models/mnist/1.0.0.onnx');
    const b1 = readFileSync(only);
    b1[200] = (b1[200] ?? 0) ^ 0xff;
    writeFileSync(only, b1);
    agent = await start(dataDir, { bootstrapToken: undefined });
    assert.deepEqual(agent.status().models, []);
    const res = await api(agent, '/v1/models/mnist/infer', {
      method: 'POST',
      body: JSON.stringify({ inputs: { input: { shape: [1, 1, 28, 28], data: new Array(784).fill(0) } } }),
    });
    assert.equal(res.status, 503);
    assert.equal(res.body.code, 'NO_ACTIVE_MODEL');
    // A fresh deployment still works after that.
    assert.equal((await deploy(agent, fp32, '3.0.0')).ack.status, 'succeeded');
    assert.equal((await classify(agent, 2)).body.model.version, '3.0.0');
    await agent.close();
  });
});
