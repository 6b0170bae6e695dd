import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import {
  generateSigningKeyPair,
  type CommandAck,
  type DeployCommand,
  type InferenceResponse,
  type SigningKeyPair,
} from '@outpost/protocol';
import { startAgent, type RunningAgent } from '../daemon/index.ts';
import type { AgentConfigInput } from '../config/index.ts';
import {
  argmax,
  deployCmd,
  mnistEval,
  mnistManifest,
  signRelease,
  startControlClient,
  startTestBroker,
  startTestControlPlane,
  type ControlClient,
  type TestBroker,
  type TestControlPlane,
} from './harness.ts';

/** Digits every fixture classifies. */
export const DIGITS = 64;

/** One broker, control plane and control client for a test file, with helpers to drive agents against them. */
export interface AgentFixture {
  broker: TestBroker;
  cp: TestControlPlane;
  control: ControlClient;
  /** The pinned publisher key (in every agent's trustedKeys). */
  publisher: SigningKeyPair;
  digits: { x: Float32Array; y: number[] };
  freshDir(): string;
  /** Starts an agent and waits until it is online (subscribed), as the control plane would before sending. */
  start(dataDir: string, extra?: Partial<AgentConfigInput>): Promise<RunningAgent>;
  api(
    agent: RunningAgent,
    path: string,
    init?: RequestInit,
    token?: string,
  ): Promise<{ status: number; body: Record<string, unknown> }>;
  /** Runs the first `n` eval digits through the agent's mnist model. */
  classify(
    agent: RunningAgent,
    n?: number,
  ): Promise<{ body: InferenceResponse; rows: number[][]; predictions: number[] }>;
  /** Publishes a signed deploy of `bytes` (served as the artifact, or `served`) and waits for its final ack. */
  deploy(
    agent: RunningAgent,
    bytes: Uint8Array,
    version: string,
    opts?: { served?: Uint8Array; key?: string },
  ): Promise<{ cmd: DeployCommand; ack: CommandAck }>;
  /** Files in the agent's models/mnist directory. */
  liveFiles(dataDir: string): string[];
  close(): Promise<void>;
}

export async function agentFixture(): Promise<AgentFixture> {
  const broker = await startTestBroker();
  const cp = await startTestControlPlane(broker);
  const control = await startControlClient(broker);
  const publisher = generateSigningKeyPair();
  const digits = mnistEval(DIGITS);
  const dirs: string[] = [];

  const fx: AgentFixture = {
    broker,
    cp,
    control,
    publisher,
    digits,
    freshDir: () => {
      const d = mkdtempSync(join(tmpdir(), 'outpost-agent-'));
      dirs.push(d);
      return d;
    },
    start: async (dataDir, extra = {}) => {
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
    },
    api: async (agent, path, init = {}, token = agent.apiToken) => {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (token) headers.authorization = `Bearer ${token}`;
      const res = await fetch(`${agent.apiUrl}${path}`, {
        ...init,
        headers: { ...headers, ...((init.headers as Record<string, string> | undefined) ?? {}) },
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    },
    classify: async (agent, n = DIGITS) => {
      const res = await fx.api(agent, '/v1/models/mnist/infer', {
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
    },
    deploy: async (agent, bytes, version, opts = {}) => {
      const release = signRelease(
        mnistManifest(bytes, 'mnist', version),
        opts.key ?? publisher.privateKeyPem,
      );
      cp.artifacts.set(`mnist/${version}`, opts.served ?? bytes);
      const cmd = deployCmd(release);
      await control.send(agent.deviceId, cmd);
      const ack = await control.waitFor(`final ack of ${cmd.commandId}`, () =>
        control.acks.find((a) => a.commandId === cmd.commandId && a.status !== 'received'),
      );
      return { cmd, ack };
    },
    liveFiles: (dataDir) => {
      const dir = join(dataDir, 'models', 'mnist');
      return existsSync(dir) ? readdirSync(dir).sort() : [];
    },
    close: async () => {
      await control.close();
      await cp.close();
      await broker.close();
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    },
  };
  return fx;
}
