import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import ort from 'onnxruntime-node';
import { generateSigningKeyPair } from '@outpost/protocol';
import type { RunningAgent } from './index.ts';
import {
  agentFixture,
  deployCmd,
  DIGITS,
  MNIST_DYN,
  MNIST_FP32,
  MNIST_QDQ,
  mnistManifest,
  signRelease,
  type AgentFixture,
} from '../testing/index.ts';

let fx: AgentFixture;
before(async () => {
  fx = await agentFixture();
});
after(() => fx.close());

const stranger = generateSigningKeyPair();
const fp32 = readFileSync(MNIST_FP32);
const qdq = readFileSync(MNIST_QDQ);
const dyn = readFileSync(MNIST_DYN);

describe('deployments', () => {
  let dataDir: string;
  let agent: RunningAgent;

  before(async () => {
    dataDir = fx.freshDir();
    agent = await fx.start(dataDir, { deviceId: 'dev-deploy' });
  });
  after(async () => {
    await agent.close();
  });

  test('a signed release is downloaded, verified, activated and served with correct MNIST predictions', async () => {
    const { cmd, ack } = await fx.deploy(agent, fp32, '1.0.0');
    assert.equal(ack.status, 'succeeded', JSON.stringify(ack.error));
    const acks = fx.control.acks.filter((a) => a.commandId === cmd.commandId).map((a) => a.status);
    assert.deepEqual(acks, ['received', 'succeeded']);
    assert.deepEqual(fx.liveFiles(dataDir), ['1.0.0.onnx', 'state.json']);

    const { body, rows, predictions } = await fx.classify(agent);
    assert.deepEqual(body.model, { name: 'mnist', version: '1.0.0' });
    assert.ok(body.timings.inferMs > 0 && body.timings.totalMs >= body.timings.inferMs);
    const correct = predictions.filter((p, i) => p === fx.digits.y[i]).length;
    assert.ok(correct / DIGITS >= 0.95, `accuracy ${correct}/${DIGITS}`);

    // The served logits are the model's own: compare with a session opened here on the same file.
    const ref = await ort.InferenceSession.create(MNIST_FP32);
    const out = await ref.run({ input: new ort.Tensor('float32', fx.digits.x, [DIGITS, 1, 28, 28]) });
    const want = out.logits?.data as Float32Array;
    rows.flat().forEach((v, i) => assert.ok(Math.abs(v - (want[i] ?? NaN)) < 1e-4, `logit ${i}`));
    await ref.release();

    const status = await fx.control.waitFor('retained status with mnist', () =>
      fx.control.statuses.find(
        (s) => s.deviceId === agent.deviceId && s.online && s.models.some((m) => m.version === '1.0.0'),
      ),
    );
    assert.equal(status.models[0]?.sha256, mnistManifest(fp32, 'mnist', '1.0.0').sha256);
    const local = await fx.api(agent, '/v1/status');
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
    const v2 = await fx.deploy(agent, qdq, '2.0.0');
    assert.equal(v2.ack.status, 'succeeded', JSON.stringify(v2.ack.error));
    assert.deepEqual(fx.liveFiles(dataDir), ['1.0.0.onnx', '2.0.0.onnx', 'state.json']);
    const state = JSON.parse(readFileSync(join(dataDir, 'models/mnist/state.json'), 'utf8')) as {
      active: { version: string };
      previous: { version: string };
    };
    assert.equal(state.active.version, '2.0.0');
    assert.equal(state.previous.version, '1.0.0');
    const r2 = await fx.classify(agent);
    assert.equal(r2.body.model.version, '2.0.0');
    const correct = r2.predictions.filter((p, i) => p === fx.digits.y[i]).length;
    assert.ok(correct / DIGITS >= 0.95, `int8 accuracy ${correct}/${DIGITS}`);

    const v3 = await fx.deploy(agent, dyn, '3.0.0');
    assert.equal(v3.ack.status, 'succeeded');
    assert.deepEqual(fx.liveFiles(dataDir), ['2.0.0.onnx', '3.0.0.onnx', 'state.json']);
    assert.equal((await fx.classify(agent, 4)).body.model.version, '3.0.0');
  });

  test('a tampered artifact fails with HASH_MISMATCH and the previous model keeps serving', async () => {
    const filesBefore = fx.liveFiles(dataDir);
    const tampered = Buffer.from(fp32);
    tampered[tampered.length >> 1] = (tampered[tampered.length >> 1] ?? 0) ^ 0x01;
    const { ack } = await fx.deploy(agent, fp32, '4.0.0', { served: tampered });
    assert.equal(ack.status, 'failed');
    assert.equal(ack.error?.code, 'HASH_MISMATCH');
    assert.deepEqual(fx.liveFiles(dataDir), filesBefore);
    assert.deepEqual(readdirSync(join(dataDir, 'models', '.incoming')), []);
    assert.equal((await fx.classify(agent, 4)).body.model.version, '3.0.0');
  });

  test('an oversized artifact is cut off at the manifest size (SIZE_MISMATCH)', async () => {
    const filesBefore = fx.liveFiles(dataDir);
    const { ack } = await fx.deploy(agent, fp32, '4.0.1', {
      served: Buffer.concat([fp32, Buffer.alloc(4096)]),
    });
    assert.equal(ack.error?.code, 'SIZE_MISMATCH');
    assert.deepEqual(fx.liveFiles(dataDir), filesBefore);
    assert.deepEqual(readdirSync(join(dataDir, 'models', '.incoming')), []);
  });

  test('a release signed by an unknown key fails with UNKNOWN_KEY before any download', async () => {
    const filesBefore = fx.liveFiles(dataDir);
    const gets = fx.cp.artifactGets.length;
    const { ack } = await fx.deploy(agent, fp32, '5.0.0', { key: stranger.privateKeyPem });
    assert.equal(ack.status, 'failed');
    assert.equal(ack.error?.code, 'UNKNOWN_KEY');
    assert.equal(fx.cp.artifactGets.length, gets, 'nothing was downloaded');
    assert.deepEqual(fx.liveFiles(dataDir), filesBefore);
    assert.equal((await fx.classify(agent, 4)).body.model.version, '3.0.0');
  });

  test('a release whose signature does not cover its manifest fails with SIGNATURE_INVALID', async () => {
    const release = signRelease(mnistManifest(fp32, 'mnist', '5.0.1'), fx.publisher.privateKeyPem);
    release.signed = { ...release.signed, size: release.signed.size + 1 };
    fx.cp.artifacts.set('mnist/5.0.1', fp32);
    const cmd = deployCmd(release);
    await fx.control.send(agent.deviceId, cmd);
    const ack = await fx.control.waitForAck(cmd.commandId, 'failed');
    assert.equal(ack.error?.code, 'SIGNATURE_INVALID');
  });

  test('a file that is not ONNX fails with ONNX_PARSE_FAILED and is not kept', async () => {
    const junk = Buffer.from('definitely not a protobuf model '.repeat(64));
    const { ack } = await fx.deploy(agent, junk, '6.0.0');
    assert.equal(ack.error?.code, 'ONNX_PARSE_FAILED');
    assert.ok(!fx.liveFiles(dataDir).includes('6.0.0.onnx'));
    assert.deepEqual(readdirSync(join(dataDir, 'models', '.incoming')), []);
  });

  test('a duplicate commandId is applied once and re-acked with its recorded outcome', async () => {
    const release = signRelease(mnistManifest(fp32, 'mnist', '7.0.0'), fx.publisher.privateKeyPem);
    fx.cp.artifacts.set('mnist/7.0.0', fp32);
    const cmd = deployCmd(release);
    const gets = fx.cp.artifactGets.length;
    await Promise.all([fx.control.send(agent.deviceId, cmd), fx.control.send(agent.deviceId, cmd)]);
    await fx.control.waitForAck(cmd.commandId, 'succeeded');
    // A redelivery after completion (e.g. on reconnect) is answered from the ledger.
    await fx.control.send(agent.deviceId, cmd);
    await fx.control.waitFor('second succeeded ack', () =>
      fx.control.acks.filter((a) => a.commandId === cmd.commandId && a.status === 'succeeded').length === 2
        ? true
        : null,
    );
    assert.equal(fx.cp.artifactGets.length - gets, 1, 'downloaded once');
    assert.equal(
      fx.control.acks.filter((a) => a.commandId === cmd.commandId && a.status === 'received').length,
      1,
    );
    assert.deepEqual(fx.liveFiles(dataDir), ['3.0.0.onnx', '7.0.0.onnx', 'state.json']);
  });

  test('rolling back to the kept previous version reuses its file without downloading', async () => {
    const gets = fx.cp.artifactGets.length;
    const release = signRelease(mnistManifest(dyn, 'mnist', '3.0.0'), fx.publisher.privateKeyPem);
    const cmd = deployCmd(release);
    await fx.control.send(agent.deviceId, cmd);
    const ack = await fx.control.waitFor('final ack', () =>
      fx.control.acks.find((a) => a.commandId === cmd.commandId && a.status !== 'received'),
    );
    assert.equal(ack.status, 'succeeded', JSON.stringify(ack.error));
    assert.equal(fx.cp.artifactGets.length, gets);
    assert.equal((await fx.classify(agent, 2)).body.model.version, '3.0.0');
    assert.deepEqual(fx.liveFiles(dataDir), ['3.0.0.onnx', '7.0.0.onnx', 'state.json']);
  });

  test('malformed MQTT commands are ignored or refused and the agent keeps working', async () => {
    const badId = randomUUID();
    await fx.control.send(agent.deviceId, 'this is not json {');
    await fx.control.send(agent.deviceId, { hello: 'world' });
    await fx.control.send(agent.deviceId, { kind: 'deploy', commandId: badId, release: 42 });
    await fx.control.send(agent.deviceId, { kind: 'reboot', commandId: randomUUID() });
    const ack = await fx.control.waitForAck(badId, 'failed');
    assert.equal(ack.error?.code, 'MALFORMED_MESSAGE');
    const { ack: ok } = await fx.deploy(agent, qdq, '8.0.0');
    assert.equal(ok.status, 'succeeded');
    assert.equal((await fx.classify(agent, 2)).body.model.version, '8.0.0');
    assert.deepEqual(
      fx.control.invalid,
      [],
      'everything the agent published parses with the protocol schemas',
    );
    assert.deepEqual(fx.broker.denied, [], 'the agent stays inside its ACL');
  });

  test('the local API checks tokens, shapes and names', async () => {
    assert.equal((await fetch(`${agent.apiUrl}/healthz`)).status, 200);
    const noToken = await fx.api(agent, '/v1/status', {}, '');
    assert.equal(noToken.status, 401);
    assert.equal(noToken.body.code, 'UNAUTHENTICATED');
    const wrong = await fx.api(agent, '/v1/status', {}, `${agent.apiToken}x`);
    assert.equal(wrong.status, 401);
    const wrongInfer = await fx.api(
      agent,
      '/v1/models/mnist/infer',
      { method: 'POST', body: '{}' },
      'nope-nope-nope',
    );
    assert.equal(wrongInfer.status, 401);

    const infer = (inputs: unknown) =>
      fx.api(agent, '/v1/models/mnist/infer', { method: 'POST', body: JSON.stringify({ inputs }) });
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
      input: {
        shape: [1, 1, 28, 28],
        dataB64: Buffer.from(fx.digits.x.buffer, 0, 784 * 4).toString('base64'),
      },
    });
    assert.equal(b64.status, 200);

    const malformed = await fx.api(agent, '/v1/models/mnist/infer', { method: 'POST', body: '{"inputs": ' });
    assert.equal(malformed.status, 400);
    assert.equal(malformed.body.code, 'MALFORMED_MESSAGE');
    const unknown = await fx.api(agent, '/v1/models/nope/infer', { method: 'POST', body: '{"inputs":{}}' });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.code, 'MODEL_UNKNOWN');
    const bad = await fx.api(agent, '/v1/models/..%2F..%2Fetc/infer', {
      method: 'POST',
      body: '{"inputs":{}}',
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, 'INVALID_NAME');
    assert.equal((await fx.api(agent, '/v1/status')).status, 200, 'still alive');
  });

  test('telemetry reports traffic with a persisted, increasing seq', async () => {
    const from = fx.control.telemetry.length;
    await fx.classify(agent, 2);
    await fx.classify(agent, 2);
    const report = await fx.control.waitFor('telemetry with traffic', () =>
      fx.control.telemetry
        .slice(from)
        .find((r) => r.deviceId === agent.deviceId && r.models.some((m) => m.requests > 0)),
    );
    const mnist = report.models.find((m) => m.name === 'mnist');
    assert.ok(mnist && mnist.requests >= 2 && mnist.latencyMs.count >= 2 && mnist.latencyMs.p50 > 0);
    assert.ok(report.rssBytes > 0);
    const seqs = fx.control.telemetry.filter((r) => r.deviceId === agent.deviceId).map((r) => r.seq);
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => a - b),
    );
    assert.equal(new Set(seqs).size, seqs.length);
  });
});
