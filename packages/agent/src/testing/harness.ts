/**
 * Test fixtures for the agent's tests (not exported from the package): a real aedes broker with a per-device ACL
 * like the control plane's, a tiny node:http control plane (enrolment + artifacts with Basic auth and Range),
 * a "control" MQTT client that watches acks/status/telemetry, and helpers to sign releases of the reference
 * MNIST models. Nothing here is imported by runtime code.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { Aedes, type Client } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import {
  commandAck,
  deviceStatus,
  parseDeviceTopic,
  sha256Of,
  signDocument,
  telemetryReport,
  topics,
  type CommandAck,
  type DeployCommand,
  type DeviceStatus,
  type ModelManifest,
  type SignedRelease,
  type TelemetryReport,
} from '@outpost/protocol';

export const MODELS_DIR = new URL('../../../../../shared/models/', import.meta.url).pathname;
export const MNIST_FP32 = `${MODELS_DIR}mnist_cnn.onnx`;
export const MNIST_QDQ = `${MODELS_DIR}mnist_cnn.ort_qdq_s8_perchannel.onnx`;
export const MNIST_DYN = `${MODELS_DIR}mnist_cnn.ort_dynamic_u8.onnx`;

/** The first `n` eval digits as float32 pixel/255 rows and their labels. */
export function mnistEval(n: number): { x: Float32Array; y: number[] } {
  const xs = readFileSync(`${MODELS_DIR}mnist-eval-x.u8`);
  const ys = readFileSync(`${MODELS_DIR}mnist-eval-y.u8`);
  const x = new Float32Array(n * 784);
  for (let i = 0; i < n * 784; i++) x[i] = (xs[i] ?? 0) / 255;
  return { x, y: [...ys.subarray(0, n)] };
}

export function argmax(row: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if ((row[i] ?? -Infinity) > (row[best] ?? -Infinity)) best = i;
  return best;
}

export function mnistManifest(bytes: Uint8Array, name: string, version: string): ModelManifest {
  return {
    schemaVersion: 1,
    name,
    version,
    format: 'onnx',
    sha256: sha256Of(bytes),
    size: bytes.byteLength,
    inputs: [{ name: 'input', dtype: 'float32', shape: ['batch', 1, 28, 28] }],
    outputs: [{ name: 'logits', dtype: 'float32', shape: ['batch', 10] }],
    targets: ['cpu'],
    optimization: { method: 'none', settings: {} },
    metrics: {},
    createdAt: new Date().toISOString(),
  };
}

export function signRelease(manifest: ModelManifest, privateKeyPem: string): SignedRelease {
  return signDocument(manifest, privateKeyPem);
}

export function deployCmd(release: SignedRelease, commandId: string = randomUUID()): DeployCommand {
  const m = release.signed;
  return {
    kind: 'deploy',
    commandId,
    deploymentId: randomUUID(),
    issuedAt: new Date().toISOString(),
    release,
    artifactPath: `/api/v1/artifacts/${m.name}/${m.version}`,
  };
}

// ---- broker -------------------------------------------------------------------------------------------------

export const CONTROL_USER = 'control';

export interface TestBroker {
  url: string;
  /** deviceId → secret; the enrolment endpoint fills it. */
  devices: Map<string, string>;
  controlPassword: string;
  /** Subscriptions and publishes the ACL refused, as `deviceId topic`. */
  denied: string[];
  port: number;
  /** Drops a client's connection without a DISCONNECT, as a network failure would (its will is published). */
  dropClient(clientId: string): void;
  close(): Promise<void>;
}

/**
 * A real aedes broker with the control plane's rules: a device touches only its own topics. Pass `port` and the
 * previous broker's `devices`/`controlPassword` to simulate a broker restart.
 */
export async function startTestBroker(
  opts: { port?: number; devices?: Map<string, string>; controlPassword?: string } = {},
): Promise<TestBroker> {
  const devices = opts.devices ?? new Map<string, string>();
  const users = new WeakMap<Client, string>();
  const controlPassword = opts.controlPassword ?? randomBytes(16).toString('hex');
  const denied: string[] = [];
  const broker = await Aedes.createBroker({
    authenticate: (client, username, password, done) => {
      const pw = password?.toString() ?? '';
      const ok =
        (username === CONTROL_USER && pw === controlPassword) ||
        (username !== undefined && devices.get(username) === pw && client.id === username);
      if (ok) users.set(client, username ?? '');
      done(null, ok);
    },
    authorizeSubscribe: (client, sub, done) => {
      const user = users.get(client);
      if (user === CONTROL_USER || sub.topic === topics.commands(user ?? '-')) return done(null, sub);
      denied.push(`${user} ${sub.topic}`);
      done(new Error('subscription denied'));
    },
    authorizePublish: (client, packet, done) => {
      const user = client ? users.get(client) : CONTROL_USER;
      if (user === CONTROL_USER) return done(null);
      const t = parseDeviceTopic(packet.topic);
      if (t && t.deviceId === user && t.channel !== 'commands') return done(null);
      denied.push(`${user} ${packet.topic}`);
      done(new Error('publish denied'));
    },
  });
  const server = createNetServer(broker.handle);
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const clients = (broker as unknown as { clients: Record<string, Client> }).clients;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    devices,
    controlPassword,
    denied,
    port,
    dropClient: (id) => {
      // Destroying the socket (not a clean close) is what makes the broker publish the will.
      (clients[id] as unknown as { conn: { destroy(): void } } | undefined)?.conn.destroy();
    },
    close: async () => {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// ---- control plane ------------------------------------------------------------------------------------------

export interface TestControlPlane {
  url: string;
  bootstrapToken: string;
  /** `name/version` → bytes served at /api/v1/artifacts/name/version. */
  artifacts: Map<string, Uint8Array>;
  enrolCalls: number;
  /** Artifact requests, as `name/version`. */
  artifactGets: string[];
  /** While set, artifact requests get their headers and then hang (a stalled transfer). */
  stallArtifacts: boolean;
  close(): Promise<void>;
}

/** Enrolment and artifact download as packages/server offers them, written from the protocol alone. */
export async function startTestControlPlane(broker: TestBroker): Promise<TestControlPlane> {
  const cp: TestControlPlane = {
    url: '',
    bootstrapToken: randomBytes(16).toString('hex'),
    artifacts: new Map(),
    enrolCalls: 0,
    artifactGets: [],
    stallArtifacts: false,
    close: async () => undefined,
  };
  const fail = (res: ServerResponse, status: number, code: string, message: string) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ code, message, retryable: false }));
  };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method === 'POST' && url.pathname === '/api/v1/enrol') {
      cp.enrolCalls++;
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const body = JSON.parse(Buffer.concat(chunks).toString()) as {
        bootstrapToken?: string;
        deviceId?: string;
      };
      if (body.bootstrapToken !== cp.bootstrapToken) {
        return fail(res, 401, 'ENROLMENT_TOKEN_INVALID', 'bootstrap token unknown, used up or expired');
      }
      const deviceId = body.deviceId ?? `dev-${randomBytes(4).toString('hex')}`;
      if (broker.devices.has(deviceId)) return fail(res, 409, 'CONFLICT', 'device id taken');
      const deviceSecret = randomBytes(32).toString('base64url');
      broker.devices.set(deviceId, deviceSecret);
      res.writeHead(201, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ deviceId, deviceSecret, mqttUrl: broker.url }));
    }
    const m = /^\/api\/v1\/artifacts\/([^/]+)\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'GET' && m) {
      const [user, pass] = Buffer.from((req.headers.authorization ?? '').replace(/^Basic /, ''), 'base64')
        .toString()
        .split(':');
      if (!user || broker.devices.get(user) !== pass)
        return fail(res, 401, 'UNAUTHENTICATED', 'bad credentials');
      const key = `${m[1]}/${m[2]}`;
      cp.artifactGets.push(key);
      const bytes = cp.artifacts.get(key);
      if (!bytes) return fail(res, 404, 'MODEL_UNKNOWN', `no artifact ${key}`);
      if (cp.stallArtifacts) {
        res.writeHead(200, { 'content-length': String(bytes.byteLength) });
        res.write(bytes.subarray(0, 1024));
        return;
      }
      const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      const start = range ? Number(range[1]) : 0;
      res.writeHead(range ? 206 : 200, {
        'content-type': 'application/octet-stream',
        'content-length': String(bytes.byteLength - start),
      });
      return res.end(bytes.subarray(start));
    }
    fail(res, 404, 'NOT_FOUND', 'no route');
  };
  const server = createHttpServer((req, res) => {
    handle(req, res).catch((err: Error) => fail(res, 500, 'INTERNAL', err.message));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cp.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  cp.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return cp;
}

// ---- control MQTT client ------------------------------------------------------------------------------------

export interface ControlClient {
  acks: CommandAck[];
  statuses: DeviceStatus[];
  telemetry: TelemetryReport[];
  /** Payloads on device topics that did not parse with the protocol schemas. */
  invalid: string[];
  send(deviceId: string, payload: string | object): Promise<void>;
  waitForAck(commandId: string, status: CommandAck['status'], timeoutMs?: number): Promise<CommandAck>;
  waitFor<T>(what: string, probe: () => T | undefined | null | false, timeoutMs?: number): Promise<T>;
  close(): Promise<void>;
}

/** The server's side of the MQTT conversation: publishes commands, records what devices report. */
export async function startControlClient(broker: TestBroker): Promise<ControlClient> {
  const client: MqttClient = mqtt.connect(broker.url, {
    clientId: `control-${randomBytes(3).toString('hex')}`,
    username: CONTROL_USER,
    password: broker.controlPassword,
    protocolVersion: 4,
    reconnectPeriod: 100,
  });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  await client.subscribeAsync(
    [topics.allDevices('acks'), topics.allDevices('status'), topics.allDevices('telemetry')],
    { qos: 1 },
  );
  const cc: ControlClient = {
    acks: [],
    statuses: [],
    telemetry: [],
    invalid: [],
    send: async (deviceId, payload) => {
      await client.publishAsync(
        topics.commands(deviceId),
        typeof payload === 'string' ? payload : JSON.stringify(payload),
        {
          qos: 1,
        },
      );
    },
    waitFor: (what, probe, timeoutMs = 15_000) =>
      new Promise((resolve, reject) => {
        const started = Date.now();
        const poll = () => {
          const v = probe();
          if (v !== undefined && v !== null && v !== false) return resolve(v);
          if (Date.now() - started > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
          setTimeout(poll, 10);
        };
        poll();
      }),
    waitForAck: (commandId, status, timeoutMs) =>
      cc.waitFor(
        `ack ${status} of ${commandId}`,
        () => cc.acks.find((a) => a.commandId === commandId && a.status === status),
        timeoutMs,
      ),
    close: () => client.endAsync(true),
  };
  client.on('message', (topic, payload) => {
    const t = parseDeviceTopic(topic);
    const text = payload.toString();
    const parse = <S extends { safeParse: (v: unknown) => { success: boolean; data?: unknown } }>(s: S) => {
      const r = s.safeParse(JSON.parse(text));
      if (!r.success) cc.invalid.push(`${topic} ${text}`);
      return r.success ? r.data : null;
    };
    if (t?.channel === 'acks') {
      const a = parse(commandAck) as CommandAck | null;
      if (a) cc.acks.push(a);
    } else if (t?.channel === 'status') {
      const s = parse(deviceStatus) as DeviceStatus | null;
      if (s) cc.statuses.push(s);
    } else if (t?.channel === 'telemetry') {
      const r = parse(telemetryReport) as TelemetryReport | null;
      if (r) cc.telemetry.push(r);
    }
  });
  return cc;
}
