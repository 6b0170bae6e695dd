import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import {
  generateSigningKeyPair,
  modelManifest,
  sha256Of,
  signDocument,
  type ModelManifestInput,
  type SignedRelease,
  type SigningKeyPair,
} from '@outpost/protocol';
import { startServer, type RunningServer } from '../app/index.ts';
import type { ServerConfigInput } from '../config/index.ts';

/**
 * Test helpers shared by the server's own tests (not part of the public API): a server in a temp dir,
 * signed releases, enrolled devices and real MQTT clients.
 */

export interface TestServer {
  server: RunningServer;
  keys: SigningKeyPair;
  dataDir: string;
  /** Calls the API with admin auth unless `auth` says otherwise. */
  api(method: string, path: string, opts?: ApiOptions): Promise<ApiResult>;
  /** Stops the server and removes the data dir. */
  dispose(): Promise<void>;
}

export interface ApiOptions {
  body?: unknown;
  /** `admin` (default), `none`, or a raw Authorization header value. */
  auth?: 'admin' | 'none' | { header: string };
  raw?: Uint8Array;
  headers?: Record<string, string>;
}

export interface ApiResult {
  status: number;
  headers: Headers;
  /** Parsed JSON when the response is JSON, else undefined. */
  json: unknown;
  bytes: Buffer;
}

export async function makeTempDir(prefix = 'outpost-server-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function startTestServer(
  overrides: Partial<ServerConfigInput> = {},
  existing?: { dataDir: string; keys: SigningKeyPair },
): Promise<TestServer> {
  const dataDir = existing?.dataDir ?? (await makeTempDir());
  const keys = existing?.keys ?? generateSigningKeyPair();
  const server = await startServer({
    dataDir,
    httpPort: 0,
    mqttPort: 0,
    trustedKeys: [keys.publicKeyPem],
    ...overrides,
  });
  const api = (method: string, path: string, opts: ApiOptions = {}) => callApi(server, method, path, opts);
  return {
    server,
    keys,
    dataDir,
    api,
    dispose: async () => {
      await server.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export async function callApi(server: RunningServer, method: string, path: string, opts: ApiOptions = {}) {
  const headers: Record<string, string> = { ...opts.headers };
  const auth = opts.auth ?? 'admin';
  if (auth === 'admin') headers.authorization = `Bearer ${server.adminToken}`;
  else if (auth !== 'none') headers.authorization = auth.header;
  let body: Uint8Array | string | undefined;
  if (opts.raw !== undefined) {
    body = opts.raw;
    headers['content-type'] ??= 'application/octet-stream';
  } else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['content-type'] = 'application/json';
  }
  const res = await fetch(server.httpUrl + path, { method, headers, body });
  const bytes = Buffer.from(await res.arrayBuffer());
  const isJson = (res.headers.get('content-type') ?? '').includes('json');
  return {
    status: res.status,
    headers: res.headers,
    json: isJson ? (JSON.parse(bytes.toString()) as unknown) : undefined,
    bytes,
  };
}

export function basicAuth(deviceId: string, secret: string): { header: string } {
  return { header: `Basic ${Buffer.from(`${deviceId}:${secret}`).toString('base64')}` };
}

/** A signed release for `bytes`, with the manifest normalized by the protocol schema. */
export function makeRelease(
  keys: SigningKeyPair,
  bytes: Uint8Array,
  over: Partial<ModelManifestInput> = {},
): SignedRelease {
  const manifest = modelManifest.parse({
    schemaVersion: 1,
    name: 'mnist',
    version: '1.0.0',
    format: 'onnx',
    sha256: sha256Of(bytes),
    size: bytes.length,
    inputs: [{ name: 'input', dtype: 'float32', shape: ['batch', 1, 28, 28] }],
    outputs: [{ name: 'logits', dtype: 'float32', shape: ['batch', 10] }],
    createdAt: '2025-01-01T00:00:00.000Z',
    ...over,
  });
  return signDocument(manifest, keys.privateKeyPem);
}

/** Publishes a release and uploads its artifact; returns the release. */
export async function publishReady(t: TestServer, bytes: Uint8Array, over: Partial<ModelManifestInput> = {}) {
  const release = makeRelease(t.keys, bytes, over);
  const pub = await t.api('POST', '/api/v1/models', { body: { release } });
  if (pub.status !== 201 && pub.status !== 200)
    throw new Error(`publish failed: ${JSON.stringify(pub.json)}`);
  const m = release.signed;
  const up = await t.api('PUT', `/api/v1/models/${m.name}/versions/${m.version}/artifact`, { raw: bytes });
  if (up.status !== 200) throw new Error(`upload failed: ${JSON.stringify(up.json)}`);
  return release;
}

export async function enrol(
  t: TestServer,
  deviceId?: string,
): Promise<{ deviceId: string; deviceSecret: string; mqttUrl: string }> {
  const tok = await t.api('POST', '/api/v1/bootstrap-tokens', { body: { uses: 1 } });
  const { token } = tok.json as { token: string };
  const res = await t.api('POST', '/api/v1/enrol', {
    auth: 'none',
    body: { bootstrapToken: token, ...(deviceId ? { deviceId } : {}) },
  });
  if (res.status !== 201) throw new Error(`enrol failed: ${JSON.stringify(res.json)}`);
  return res.json as { deviceId: string; deviceSecret: string; mqttUrl: string };
}

/** Connects a real MQTT client; rejects with the broker's refusal. Reconnects are off so failures surface. */
export function connectMqtt(url: string, opts: IClientOptions): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
    client.once('connect', () => resolve(client));
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
    client.once('close', () => reject(new Error('connection closed before CONNACK')));
  });
}

export function connectDevice(t: TestServer, deviceId: string, secret: string, opts: IClientOptions = {}) {
  return connectMqtt(t.server.mqttUrl, { clientId: deviceId, username: deviceId, password: secret, ...opts });
}

/** Collects messages per topic. */
export function collect(client: MqttClient): { topic: string; payload: Buffer }[] {
  const got: { topic: string; payload: Buffer }[] = [];
  client.on('message', (topic, payload) => got.push({ topic, payload }));
  return got;
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(
  check: () => Promise<T> | T,
  timeoutMs = 5000,
  what = 'condition',
): Promise<Exclude<T, null | undefined | false>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as Exclude<T, null | undefined | false>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function endClient(c: MqttClient): Promise<void> {
  return new Promise((resolve) => c.end(false, {}, () => resolve()));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
