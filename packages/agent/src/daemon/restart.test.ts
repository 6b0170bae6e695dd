import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  agentFixture,
  deployCmd,
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

const fp32 = readFileSync(MNIST_FP32);
const qdq = readFileSync(MNIST_QDQ);

describe('restarts', () => {
  test('a deployment interrupted by shutdown resumes on the next start without a redelivery', async () => {
    const dataDir = fx.freshDir();
    let agent = await fx.start(dataDir, { deviceId: 'dev-resume' });
    fx.cp.artifacts.set('mnist/1.0.0', fp32);
    fx.cp.stallArtifacts = true;
    const cmd = deployCmd(signRelease(mnistManifest(fp32, 'mnist', '1.0.0'), fx.publisher.privateKeyPem));
    await fx.control.send(agent.deviceId, cmd);
    await fx.control.waitForAck(cmd.commandId, 'received');
    await fx.control.waitFor(
      'the download to start',
      () => readdirSync(join(dataDir, 'models', '.incoming')).length > 0,
    );
    await agent.close();
    assert.deepEqual(
      readdirSync(join(dataDir, 'models', '.incoming')),
      [],
      'the partial download is removed',
    );
    assert.equal(existsSync(join(dataDir, 'models', 'mnist')), false, 'nothing reached the live slot');
    assert.equal(
      fx.control.acks.filter((a) => a.commandId === cmd.commandId && a.status !== 'received').length,
      0,
    );

    fx.cp.stallArtifacts = false;
    agent = await fx.start(dataDir, { bootstrapToken: undefined });
    const ack = await fx.control.waitForAck(cmd.commandId, 'succeeded');
    assert.equal(ack.deviceId, 'dev-resume');
    assert.equal((await fx.classify(agent, 2)).body.model.version, '1.0.0');
    await agent.close();
  });

  test('the active model is reloaded; a corrupted file is refused (fallback to previous, else none)', async () => {
    const dataDir = fx.freshDir();
    let agent = await fx.start(dataDir, { deviceId: 'dev-restart' });
    assert.equal((await fx.deploy(agent, fp32, '1.0.0')).ack.status, 'succeeded');
    await fx.classify(agent, 2);
    const seqBefore = await fx.control.waitFor('a telemetry report', () =>
      fx.control.telemetry.filter((r) => r.deviceId === 'dev-restart').at(-1),
    );
    await agent.close();
    const offline = fx.control.statuses.filter((s) => s.deviceId === 'dev-restart').at(-1);
    assert.equal(offline?.online, false);

    agent = await fx.start(dataDir, { bootstrapToken: undefined });
    assert.deepEqual(
      agent.status().models.map((m) => m.version),
      ['1.0.0'],
    );
    assert.equal((await fx.classify(agent, 2)).body.model.version, '1.0.0');
    const seqAfter = await fx.control.waitFor('telemetry after restart', () =>
      fx.control.telemetry.filter((r) => r.deviceId === 'dev-restart' && r.seq > seqBefore.seq).at(-1),
    );
    assert.ok(seqAfter.seq > seqBefore.seq);
    assert.equal((await fx.deploy(agent, qdq, '2.0.0')).ack.status, 'succeeded');
    await agent.close();

    // Flip one byte of the active file on disk: the agent must notice and serve the previous version.
    const active = join(dataDir, 'models/mnist/2.0.0.onnx');
    const bytes = readFileSync(active);
    bytes[100] = (bytes[100] ?? 0) ^ 0xff;
    writeFileSync(active, bytes);
    agent = await fx.start(dataDir, { bootstrapToken: undefined });
    assert.deepEqual(
      agent.status().models.map((m) => m.version),
      ['1.0.0'],
    );
    assert.equal((await fx.classify(agent, 2)).body.model.version, '1.0.0');
    await agent.close();

    // Now corrupt the only remaining version: nothing verifies, so nothing is served.
    const only = join(dataDir, 'models/mnist/1.0.0.onnx');
    const b1 = readFileSync(only);
    b1[200] = (b1[200] ?? 0) ^ 0xff;
    writeFileSync(only, b1);
    agent = await fx.start(dataDir, { bootstrapToken: undefined });
    assert.deepEqual(agent.status().models, []);
    const res = await fx.api(agent, '/v1/models/mnist/infer', {
      method: 'POST',
      body: JSON.stringify({ inputs: { input: { shape: [1, 1, 28, 28], data: new Array(784).fill(0) } } }),
    });
    assert.equal(res.status, 503);
    assert.equal(res.body.code, 'NO_ACTIVE_MODEL');
    // A fresh deployment still works after that.
    assert.equal((await fx.deploy(agent, fp32, '3.0.0')).ack.status, 'succeeded');
    assert.equal((await fx.classify(agent, 2)).body.model.version, '3.0.0');
    await agent.close();
  });
});
