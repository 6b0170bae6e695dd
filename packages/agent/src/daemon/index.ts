import { mkdirSync } from 'node:fs';
import { createLogger, type Logger } from '@outpost/common';
import { OutpostError, verifyDocument, type AgentStatusResponse } from '@outpost/protocol';
import { startApi, type RunningApi } from '../api/index.ts';
import { DeviceChannel } from '../channel/index.ts';
import { loadConfig, type AgentConfig, type AgentConfigInput } from '../config/index.ts';
import { Deployer } from '../deploy/index.ts';
import { loadOrCreateApiToken, loadOrEnrol } from '../identity/index.ts';
import { AgentLedger } from '../ledger/index.ts';
import { LiveModels, ModelRuntime } from '../runtime/index.ts';
import { ModelStore, type VersionEntry } from '../store/index.ts';
import { TelemetryCollector, TelemetryPublisher } from '../telemetry/index.ts';

/** A started agent. */
export interface RunningAgent {
  readonly deviceId: string;
  /** Base URL of the local API, e.g. `http://127.0.0.1:8081`. */
  readonly apiUrl: string;
  /** Bearer token of the local API. */
  readonly apiToken: string;
  /** Snapshot of what the local `/v1/status` returns. */
  status(): AgentStatusResponse;
  /** Stops telemetry, the deployment queue (an interrupted command resumes on the next start), the API and the
   * MQTT link (retained offline status first), then frees every session. Idempotent. */
  close(): Promise<void>;
}

/**
 * Starts the on-device agent: enrols on first start (identity kept in `dataDir`), reloads and re-verifies the
 * stored models, serves the local API, connects to the control plane and applies deploy commands.
 *
 * @example
 * const agent = await startAgent({
 *   serverUrl: 'http://localhost:8080', dataDir: '/var/lib/outpost', bootstrapToken, trustedKeys: [publisherPem],
 * });
 * process.on('SIGTERM', () => void agent.close());
 */
export async function startAgent(input: AgentConfigInput): Promise<RunningAgent> {
  const config = loadConfig(input);
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const log = createLogger('agent');
  const cleanups: (() => Promise<void> | void)[] = [];
  const undo = async () => {
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'clean-up step failed');
      }
    }
  };
  try {
    return await boot(config, log, cleanups, undo);
  } catch (err) {
    await undo();
    throw err;
  }
}

async function boot(
  config: AgentConfig,
  baseLog: Logger,
  cleanups: (() => Promise<void> | void)[],
  undo: () => Promise<void>,
): Promise<RunningAgent> {
  const identity = await loadOrEnrol({
    serverUrl: config.serverUrl,
    dataDir: config.dataDir,
    bootstrapToken: config.bootstrapToken,
    deviceId: config.deviceId,
    profile: config.profile,
    tags: config.tags,
    agentVersion: config.agentVersion,
    log: baseLog,
  });
  if (config.deviceId && config.deviceId !== identity.deviceId) {
    baseLog.warn(
      { requested: config.deviceId, enrolled: identity.deviceId },
      'configured deviceId differs from the enrolled one; using the enrolled one',
    );
  }
  const deviceId = identity.deviceId;
  const log = baseLog.child({ deviceId });
  const apiToken = loadOrCreateApiToken(config.dataDir, config.apiToken);

  const ledger = AgentLedger.open(config.dataDir);
  cleanups.push(() => ledger.close());
  const store = await ModelStore.open(config.dataDir, log);
  const live = new LiveModels();
  cleanups.push(() => live.releaseAll());
  await loadStoredModels(config, store, live, log);

  const telemetry = new TelemetryCollector();
  let channel: DeviceChannel | null = null;
  const status = (): AgentStatusResponse => ({
    deviceId,
    connected: channel?.connected ?? false,
    models: live.list().map((m) => ({
      name: m.name,
      version: m.version,
      sha256: m.sha256,
      previousVersion: m.previousVersion,
      latencyMs: telemetry.latency(m.name),
    })),
  });

  const api: RunningApi = await startApi({
    host: config.apiHost,
    port: config.apiPort,
    token: apiToken,
    bodyLimit: config.apiBodyLimitBytes,
    live,
    telemetry,
    status,
    log: log.child({ part: 'api' }),
  });
  cleanups.push(() => api.close());

  let deployer: Deployer | null = null;
  const ch = new DeviceChannel({
    mqttUrl: identity.mqttUrl,
    deviceId,
    deviceSecret: identity.deviceSecret,
    protocolVersion: config.mqttProtocolVersion,
    reconnectMs: config.mqttReconnectMs,
    log: log.child({ part: 'mqtt' }),
    status: () => ({
      deviceId,
      agentVersion: config.agentVersion,
      profile: config.profile,
      models: live.active(),
    }),
    onCommand: (payload) => deployer?.accept(payload),
  });
  channel = ch;
  deployer = new Deployer({
    deviceId,
    serverUrl: config.serverUrl,
    deviceSecret: identity.deviceSecret,
    trustedKeys: config.trustedKeys,
    maxArtifactBytes: config.maxArtifactBytes,
    downloadTimeoutMs: config.downloadTimeoutMs,
    intraOpThreads: config.intraOpThreads,
    store,
    ledger,
    live,
    publishAck: (ack) => ch.publishAck(ack),
    onActivated: () => ch.publishStatus(),
    log: log.child({ part: 'deploy' }),
  });
  const dep = deployer;
  // Registered so that the queue stops before the channel and sessions go away.
  cleanups.push(() => ch.close());
  cleanups.push(() => dep.close());
  ch.start();
  dep.resumeUnfinished();

  const publisher = new TelemetryPublisher({
    deviceId,
    intervalMs: config.telemetryIntervalMs,
    collector: telemetry,
    nextSeq: () => ledger.nextSeq('telemetry'),
    isConnected: () => ch.connected,
    publish: (report) => ch.publishTelemetry(report),
    log,
  });
  publisher.start();
  cleanups.push(() => publisher.stop());

  log.info({ apiUrl: api.url, models: live.list().map((m) => `${m.name}@${m.version}`) }, 'agent started');
  let closed: Promise<void> | null = null;
  return {
    deviceId,
    apiUrl: api.url,
    apiToken,
    status,
    close: () => {
      closed ??= undo().then(() => log.info('agent stopped'));
      return closed;
    },
  };
}

/** Loads every stored model's active version (re-hashed and re-verified), falling back to its previous one. */
async function loadStoredModels(
  config: AgentConfig,
  store: ModelStore,
  live: LiveModels,
  log: Logger,
): Promise<void> {
  const check = (entry: VersionEntry) => {
    verifyDocument(entry.release, config.trustedKeys);
    const m = entry.release.signed;
    if (m.sha256 !== entry.sha256 || m.version !== entry.version || m.size !== entry.size) {
      throw new OutpostError('SIGNATURE_INVALID', 'state.json does not match its signed release');
    }
  };
  for (const name of await store.listModels()) {
    try {
      const found = await store.resolveServable(name, check);
      if (!found) {
        live.markUnavailable(name);
        log.error({ model: name }, 'no verified version of the model on disk; not serving it');
        continue;
      }
      const m = found.entry.release.signed;
      const runtime = await ModelRuntime.load(found.path, {
        intraOpThreads: config.intraOpThreads,
        expect: { inputs: m.inputs, outputs: m.outputs },
      });
      const state = store.readState(name);
      await live.swap({
        name,
        version: m.version,
        sha256: m.sha256,
        activatedAt: found.entry.activatedAt,
        previousVersion: state?.previous?.version ?? null,
        manifest: m,
        runtime,
      });
      if (found.fellBack) log.warn({ model: name, version: m.version }, 'serving the previous version');
      else log.info({ model: name, version: m.version }, 'model loaded');
    } catch (err) {
      live.markUnavailable(name);
      log.error({ model: name, err: (err as Error).message }, 'could not load a stored model');
    }
  }
}
