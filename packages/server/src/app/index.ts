import { isIP } from 'node:net';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { keyIdOf } from '@outpost/protocol';
import { createLogger } from '@outpost/common';
import { startBroker, type RunningBroker } from '../broker/index.ts';
import { parseServerConfig, resolveAdminToken, type ServerConfigInput } from '../config/index.ts';
import { DeploymentService } from '../deployments/index.ts';
import { ModelRegistry } from '../registry/index.ts';
import { buildHttpApp } from '../routes/index.ts';
import { SqliteStore } from '../store/index.ts';

export interface RunningServer {
  /** Base URL of the REST API, e.g. `http://127.0.0.1:8080`. */
  httpUrl: string;
  /** URL of the embedded MQTT broker, e.g. `mqtt://127.0.0.1:1883`. */
  mqttUrl: string;
  /** The admin bearer token (configured, or generated and persisted in `dataDir/admin-token`). */
  adminToken: string;
  /** Absolute data directory. */
  dataDir: string;
  /** Stops HTTP, then MQTT, then closes the database. Idempotent. */
  close(): Promise<void>;
}

const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '[::]']);
const HOSTNAME_RE = /^[A-Za-z0-9.-]{1,253}$/;

function urlHost(host: string): string {
  return isIP(host) === 6 ? `[${host}]` : host;
}

/**
 * Starts the Outpost control plane: the SQLite store in `dataDir/outpost.db`, artifacts in
 * `dataDir/artifacts`, the REST API (fastify) and the embedded MQTT broker (aedes) that devices connect to.
 * The config is validated once (CONFIG_INVALID otherwise) and frozen. Keys in `trustedKeys` are added to
 * the persisted set of trusted publisher keys. Devices marked online by a previous run are reset to offline,
 * since no connection survives a restart.
 *
 * @example
 * import { startServer } from '@outpost/server';
 *
 * const server = await startServer({
 *   dataDir: '/var/lib/outpost',
 *   host: '0.0.0.0',
 *   trustedKeys: [readFileSync('publisher.pub.pem', 'utf8')],
 * });
 * console.log(`API ${server.httpUrl}, broker ${server.mqttUrl}`);
 * // admin calls: Authorization: Bearer ${server.adminToken}
 * process.on('SIGTERM', () => void server.close());
 */
export async function startServer(input: ServerConfigInput): Promise<RunningServer> {
  const cfg = parseServerConfig(input);
  const log = createLogger('server');
  const adminToken = resolveAdminToken(cfg);
  const store = SqliteStore.open(join(cfg.dataDir, 'outpost.db'));
  let broker: RunningBroker | undefined;
  let app: FastifyInstance | undefined;
  try {
    const now = new Date().toISOString();
    await store.markAllDevicesOffline(now);
    for (const publicKeyPem of cfg.trustedKeys) {
      await store.addSigningKey({ keyid: keyIdOf(publicKeyPem), publicKeyPem, createdAt: now });
    }
    const registry = new ModelRegistry(store, join(cfg.dataDir, 'artifacts'), cfg.artifactBodyLimit, log);
    const deployments = new DeploymentService(
      store,
      (topic, payload) => {
        if (!broker) throw new Error('broker not started');
        return broker.publish(topic, payload);
      },
      log,
    );
    broker = await startBroker({
      host: cfg.host,
      port: cfg.mqttPort,
      store,
      log: log.child({ component: 'mqtt' }),
      events: {
        commandsReady: async (deviceId) => void (await deployments.resendPending(deviceId)),
        ack: (ack) => deployments.applyAck(ack),
      },
    });
    const mqttPort = broker.port;
    const wildcard = WILDCARD_HOSTS.has(cfg.host);
    const mqttUrl = wildcard ? `mqtt://127.0.0.1:${mqttPort}` : broker.url;
    app = buildHttpApp({
      store,
      registry,
      deployments,
      adminToken,
      log,
      mqttUrlFor: (hostname) => {
        if (cfg.publicMqttUrl) return cfg.publicMqttUrl;
        if (!wildcard) return mqttUrl;
        // Bound to every interface: the address the device used for HTTP is the one that reaches us.
        const h = hostname.startsWith('[') ? hostname.slice(1, -1) : hostname;
        return HOSTNAME_RE.test(h) || isIP(h) ? `mqtt://${urlHost(h)}:${mqttPort}` : mqttUrl;
      },
    });
    await app.listen({ host: cfg.host, port: cfg.httpPort });
    const httpPort = (app.server.address() as AddressInfo).port;
    const httpUrl = `http://${wildcard ? '127.0.0.1' : urlHost(cfg.host)}:${httpPort}`;
    log.info({ httpUrl, mqttUrl, dataDir: cfg.dataDir }, 'control plane started');

    let closing: Promise<void> | undefined;
    const [startedApp, startedBroker] = [app, broker];
    return {
      httpUrl,
      mqttUrl,
      adminToken,
      dataDir: cfg.dataDir,
      close: () => {
        closing ??= (async () => {
          await startedApp.close();
          await startedBroker.close();
          await store.close();
          log.info('control plane stopped');
        })();
        return closing;
      },
    };
  } catch (err) {
    await app?.close().catch(() => undefined);
    await broker?.close().catch(() => undefined);
    await store.close();
    throw err;
  }
}
