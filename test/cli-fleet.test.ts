/**
 * `outpost server`, `keys generate`, `publish`, `agent` and `deploy` as a user types them: every verb is a real
 * child process of the `outpost` binary talking to the others over HTTP and MQTT.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  AgentClient,
  OUTPOST_BIN,
  spawnAgentProcess,
  stopAgentProcess,
  type AgentProcess,
} from '@outpost/cli';
import { FP32_MODEL, SHARED_MODELS, argmax, digit, evalDigits, tempDir } from './support.ts';

const root = tempDir('cli-fleet');
const children: ChildProcess[] = [];
const agents: AgentProcess[] = [];

function outpost(args: string[]) {
  const r = spawnSync(process.execPath, [OUTPOST_BIN, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function startServerProcess(): Promise<{ httpUrl: string; adminTokenFile: string }> {
  const child = spawn(
    process.execPath,
    [
      OUTPOST_BIN,
      'server',
      '--data-dir',
      join(root, 'server'),
      '--port',
      '0',
      '--mqtt-port',
      '0',
      '--trust-key',
      join(root, 'keys', 'publisher.pub'),
    ],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, OUTPOST_LOG_FILE: join(root, 'server.log') },
    },
  );
  children.push(child);
  return await new Promise((resolve, reject) => {
    child.once('exit', (c) => reject(new Error(`server exited ${c}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const ev = JSON.parse(line) as { event: string; httpUrl: string; adminTokenFile: string };
      if (ev.event === 'ready') resolve(ev);
    });
  });
}

after(async () => {
  await Promise.all(agents.map((a) => stopAgentProcess(a)));
  for (const c of children) c.kill('SIGTERM');
});

test('server, keys, publish, agent and deploy from the command line', async () => {
  assert.equal(outpost(['keys', 'generate', '--out', join(root, 'keys')]).code, 0);
  const server = await startServerProcess();
  const auth = ['--server', server.httpUrl, '--token-file', server.adminTokenFile];

  const published = outpost([
    'publish',
    FP32_MODEL,
    '--name',
    'mnist',
    '--version',
    '2.0.0',
    '--key',
    join(root, 'keys', 'publisher.key'),
    '--metric',
    'accuracy=0.984',
    '--json',
    ...auth,
  ]);
  assert.equal(published.code, 0, published.stderr);
  assert.equal((JSON.parse(published.stdout) as { state: string }).state, 'ready');

  // optimize → publish --report: the chosen variant ships with its provenance in the signed manifest.
  const S = SHARED_MODELS;
  const opt = outpost([
    'optimize',
    FP32_MODEL,
    '--calib',
    `mnist-u8:${S}/mnist-train-x.u8:${S}/mnist-train-y.u8:100`,
    '--eval',
    `mnist-u8:${S}/mnist-eval-x.u8:${S}/mnist-eval-y.u8:300`,
    '--candidates',
    'dynamic-u8',
    '--objective',
    'size',
    '--iterations',
    '20',
    '--no-memory',
    '--out',
    join(root, 'opt'),
  ]);
  assert.equal(opt.code, 0, opt.stderr);
  const report = JSON.parse(readFileSync(join(root, 'opt', 'report.json'), 'utf8')) as {
    choice: { fileName: string };
  };
  assert.equal(report.choice.fileName, 'mnist_cnn.dynamic-u8.onnx');
  const withReport = outpost([
    'publish',
    join(root, 'opt', report.choice.fileName),
    '--name',
    'mnist',
    '--version',
    '3.0.0',
    '--key',
    join(root, 'keys', 'publisher.key'),
    '--report',
    join(root, 'opt', 'report.json'),
    ...auth,
  ]);
  assert.equal(withReport.code, 0, withReport.stderr);
  const stored = (await (
    await fetch(`${server.httpUrl}/api/v1/models/mnist/versions/3.0.0`, {
      headers: { authorization: `Bearer ${readFileSync(server.adminTokenFile, 'utf8').trim()}` },
    })
  ).json()) as {
    release: {
      signed: {
        optimization: { method: string; settings: Record<string, unknown> };
        targets: string[];
        metrics: Record<string, number>;
      };
    };
  };
  const m = stored.release.signed;
  assert.equal(m.optimization.method, 'dynamic-int8');
  assert.match(String(m.optimization.settings.reportSha256), /^[0-9a-f]{64}$/);
  assert.deepEqual(m.targets, ['cpu-x86-1t']);
  assert.ok(m.metrics.accuracy! > 0.9);
  const mismatch = outpost([
    'publish',
    FP32_MODEL,
    '--name',
    'mnist',
    '--version',
    '3.0.1',
    '--key',
    join(root, 'keys', 'publisher.key'),
    '--report',
    join(root, 'opt', 'report.json'),
    ...auth,
  ]);
  assert.equal(mismatch.code, 2);
  assert.match(mismatch.stderr, /VALIDATION_FAILED: report .* not this file/);

  // Wrong key file, bad metric, missing token: coded errors, nothing published.
  const bad = outpost([
    'publish',
    FP32_MODEL,
    '--name',
    'mnist',
    '--version',
    '2.0.1',
    '--key',
    FP32_MODEL,
    ...auth,
  ]);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /VALIDATION_FAILED/);
  const badMetric = outpost([
    'publish',
    FP32_MODEL,
    '--name',
    'mnist',
    '--version',
    '2.0.1',
    '--key',
    join(root, 'keys', 'publisher.key'),
    '--metric',
    'accuracy',
    ...auth,
  ]);
  assert.equal(badMetric.code, 2);
  const noToken = outpost([
    'deploy',
    '--model',
    'mnist',
    '--version',
    '2.0.0',
    '--devices',
    'x',
    '--server',
    server.httpUrl,
  ]);
  assert.match(noToken.stderr, /UNAUTHENTICATED/);

  const token = (await (
    await fetch(`${server.httpUrl}/api/v1/bootstrap-tokens`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${readFileSync(server.adminTokenFile, 'utf8').trim()}`,
        'content-type': 'application/json',
      },
      body: '{"uses":1}',
    })
  ).json()) as { token: string };
  agents.push(
    await spawnAgentProcess({
      serverUrl: server.httpUrl,
      dataDir: join(root, 'agent'),
      trustKeyPaths: [join(root, 'keys', 'publisher.pub')],
      bootstrapToken: token.token,
      deviceId: 'pi-01',
    }),
  );

  const deployed = outpost([
    'deploy',
    '--model',
    'mnist',
    '--version',
    '2.0.0',
    '--devices',
    'pi-01',
    '--wait',
    '--json',
    ...auth,
  ]);
  assert.equal(deployed.code, 0, deployed.stderr);
  assert.equal(
    (JSON.parse(deployed.stdout) as { targets: { state: string }[] }).targets[0]!.state,
    'succeeded',
  );

  const { x, y } = evalDigits(10);
  const client = new AgentClient(agents[0]!.apiUrl, agents[0]!.apiToken);
  let correct = 0;
  for (let k = 0; k < 10; k++) {
    const r = await client.infer('mnist', {
      inputs: { input: { shape: [1, 1, 28, 28], data: digit(x, k) } },
    });
    if (argmax(r.outputs.logits!.data as number[]) === y[k]) correct++;
  }
  assert.ok(correct >= 9, `${correct}/10`);
});
