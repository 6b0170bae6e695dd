import { percentile } from '@outpost/common';
import { mkdirSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeModel, encodeModel, evaluate, loadMnistPackage, quantizeDynamic } from '@outpost/toolkit';
import { startServer } from '@outpost/server';
import { OutpostError, type DeploymentView } from '@outpost/protocol';
import { AgentClient, ControlPlaneClient, pollUntil } from '../client/index.ts';
import { writeKeyPair } from '../keys/index.ts';
import { buildManifest, publishArtifact, signRelease } from '../release/index.ts';
import { deploymentDone } from '../commands/fleet.ts';
import { fmtBytes, fmtMs, progress, table } from '../output/index.ts';
import { spawnAgentProcess, stopAgentProcess, type AgentProcess } from '../supervise/index.ts';

export const DEMO_MODEL = fileURLToPath(new URL('../../assets/mnist_cnn.onnx', import.meta.url));

export interface DemoOptions {
  devices: number;
  samples: number;
  dataDir?: string;
  model: string;
  keepRunning: boolean;
}

const say = (s: string) => process.stdout.write(`${s}\n`);

/**
 * `outpost demo`: the whole life of a model on one machine — quantize, sign, publish, enrol real agent
 * processes, deploy, send real MNIST digits through each agent, and read the fleet's telemetry back.
 */
export async function runDemo(opts: DemoOptions): Promise<void> {
  const root = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'outpost-demo-')));
  mkdirSync(root, { recursive: true });
  say(`Outpost demo — working directory ${root}\n`);

  // 1. Optimize.
  const fp32Bytes = new Uint8Array(readFileSync(opts.model));
  const { model: q, report } = quantizeDynamic(decodeModel(fp32Bytes), { weightType: 'uint8' });
  const int8Bytes = encodeModel(q);
  const data = await loadMnistPackage(opts.samples);
  const evalBar = progress('evaluating fp32 + int8', data.n * 2);
  const fp32 = await evaluate(fp32Bytes, data, { onProgress: (d: number) => evalBar.update(d) });
  const int8 = await evaluate(int8Bytes, data, { onProgress: (d: number) => evalBar.update(data.n + d) });
  evalBar.stop();
  say('1. optimize: dynamic int8 quantization');
  say(
    table(
      [
        ['fp32', fmtBytes(fp32Bytes.byteLength), '1.000', `${(fp32.accuracy * 100).toFixed(2)} %`],
        [
          'int8',
          fmtBytes(int8Bytes.byteLength),
          (int8Bytes.byteLength / fp32Bytes.byteLength).toFixed(3),
          `${(int8.accuracy * 100).toFixed(2)} %`,
        ],
      ],
      ['variant', 'size', 'ratio', `accuracy (${data.n} digits)`],
    ),
  );
  say(`   quantized ${report.quantized.length} node(s), left ${report.skipped.length} in float\n`);

  // 2. Control plane + signing key.
  const keys = writeKeyPair(join(root, 'keys'), 'publisher');
  // The report owns stdout; the control plane's log goes to a file beside the agents' logs.
  process.env.OUTPOST_LOG_FILE ??= join(root, 'server.log');
  const server = await startServer({
    dataDir: join(root, 'server'),
    httpPort: 0,
    mqttPort: 0,
    trustedKeys: [readFileSync(keys.pubPath, 'utf8')],
  });
  const agents: AgentProcess[] = [];
  try {
    const cp = new ControlPlaneClient(server.httpUrl, server.adminToken);
    const manifest = buildManifest(int8Bytes, {
      name: 'mnist-cnn',
      version: '1.0.0',
      optimization: { method: 'dynamic-int8', settings: { weightType: 'uint8' } },
      metrics: { accuracy: int8.accuracy, fp32Accuracy: fp32.accuracy },
      labels: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
    });
    await publishArtifact(cp, signRelease(manifest, readFileSync(keys.keyPath, 'utf8')), int8Bytes);
    say(
      `2. signed (Ed25519 ${keys.keyid.slice(0, 16)}…) and published mnist-cnn@1.0.0 to ${server.httpUrl}\n`,
    );

    // 3. Fleet: real agent processes enrolling with a bootstrap token.
    const { token } = await cp.createBootstrapToken(opts.devices, 3600);
    const startBar = progress('starting agents', opts.devices);
    for (let i = 1; i <= opts.devices; i++) {
      agents.push(
        await spawnAgentProcess({
          serverUrl: server.httpUrl,
          dataDir: join(root, `agent-${i}`),
          trustKeyPaths: [keys.pubPath],
          bootstrapToken: token,
          deviceId: `demo-${i}`,
        }),
      );
      startBar.update(i);
    }
    startBar.stop();
    say(
      `3. started ${agents.length} agent processes (pids ${agents.map((a) => a.child.pid).join(', ')}), each enrolled with its own credentials\n`,
    );

    // 4. Deploy.
    let d: DeploymentView = await cp.createDeployment({
      model: 'mnist-cnn',
      version: '1.0.0',
      devices: agents.map((a) => a.deviceId),
    });
    const depBar = progress('deploying over MQTT', agents.length);
    d = await pollUntil(
      () => cp.getDeployment(d.id),
      (v) => {
        depBar.update(v.targets.filter((t) => t.state === 'succeeded' || t.state === 'failed').length);
        return deploymentDone(v);
      },
      { timeoutMs: 60_000, what: 'the deployment' },
    );
    depBar.stop();
    say(`4. deployment ${d.id}`);
    say(
      table(
        d.targets.map((t) => [t.deviceId, t.state, t.error ?? '']),
        ['device', 'state', 'error'],
      ),
    );
    if (d.targets.some((t) => t.state !== 'succeeded'))
      throw new OutpostError('INTERNAL', 'a device failed to install the model');

    // 5. Real inferences through every agent's local API.
    say('');
    const rows: (string | number)[][] = [];
    const infBar = progress('inferences', agents.length * data.n);
    let done = 0;
    for (const a of agents) {
      const client = new AgentClient(a.apiUrl, a.apiToken);
      let correct = 0;
      const rtt: number[] = [];
      const inferMs: number[] = [];
      for (let k = 0; k < data.n; k++) {
        const t0 = performance.now();
        const r = await client.infer('mnist-cnn', {
          inputs: {
            input: {
              dtype: 'float32',
              shape: [1, 1, 28, 28],
              data: Array.from(data.x.subarray(k * 784, (k + 1) * 784)),
            },
          },
        });
        rtt.push(performance.now() - t0);
        inferMs.push(r.timings.inferMs);
        const logits = r.outputs.logits?.data as number[];
        if (logits.indexOf(Math.max(...logits)) === data.y[k]) correct++;
        infBar.update(++done);
      }
      rtt.sort((x, y) => x - y);
      inferMs.sort((x, y) => x - y);
      rows.push([
        a.deviceId,
        `${((correct / data.n) * 100).toFixed(2)} %`,
        fmtMs(percentile(inferMs, 0.5)),
        fmtMs(percentile(inferMs, 0.99)),
        fmtMs(percentile(rtt, 0.5)),
        fmtMs(percentile(rtt, 0.99)),
      ]);
    }
    infBar.stop();
    say(`5. ${data.n} MNIST digits through each agent's local HTTP API (batch 1)`);
    say(table(rows, ['device', 'accuracy', 'infer p50 ms', 'infer p99 ms', 'http p50 ms', 'http p99 ms']));

    // 6. Observe: telemetry as the control plane stored it.
    const tele: (string | number)[][] = [];
    for (const a of agents) {
      const reports = await pollUntil(
        () => cp.telemetry(a.deviceId),
        (rs) => rs.reduce((s, r) => s + r.models.reduce((m, x) => m + x.requests, 0), 0) >= data.n,
        { timeoutMs: 20_000, what: `telemetry of ${a.deviceId}` },
      );
      const requests = reports.reduce((s, r) => s + r.models.reduce((m, x) => m + x.requests, 0), 0);
      const last = reports.find((r) => r.models.length > 0);
      const dev = await cp.getDevice(a.deviceId);
      tele.push([
        a.deviceId,
        dev.online ? 'online' : 'offline',
        dev.status?.models.map((m) => `${m.name}@${m.version}`).join(',') ?? '',
        requests,
        reports.length,
        last ? fmtMs(last.models[0]!.latencyMs.p50) : '-',
        fmtBytes(last?.rssBytes ?? 0),
      ]);
    }
    say('\n6. fleet as the control plane sees it (from MQTT status + telemetry)');
    say(table(tele, ['device', 'state', 'model', 'requests', 'reports', 'p50 ms', 'agent rss']));

    say(`\nLook around:
  control plane     ${server.httpUrl}/api/v1/devices   (Authorization: Bearer $(cat ${join(server.dataDir, 'admin-token')}))
  MQTT broker       ${server.mqttUrl}
${agents.map((a) => `  agent ${a.deviceId.padEnd(10)} ${a.apiUrl}/v1/status   (Authorization: Bearer $(cat ${join(a.dataDir, 'api-token')}))`).join('\n')}
  logs              ${root}/server.log, ${root}/agent-*.log`);
    if (opts.keepRunning) {
      say('\nRunning; press Ctrl-C to stop.');
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
    }
  } finally {
    await Promise.all(agents.map((a) => stopAgentProcess(a)));
    await server.close();
  }
}
