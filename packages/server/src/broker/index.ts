import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Duplex, pipeline } from 'node:stream';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import { MAX_MQTT_PAYLOAD, parseDeviceTopic, topics } from '@outpost/protocol';
import type { Logger } from '@outpost/common';
import { verifyDeviceSecret } from '../auth/index.ts';
import type { ControlPlaneStore } from '../store/index.ts';
import { MqttFrameGuard } from './frame-guard.ts';
import { ingestDeviceMessage, type BrokerEvents } from './ingest.ts';

export type { BrokerEvents } from './ingest.ts';
export { MqttFrameGuard } from './frame-guard.ts';

export interface BrokerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  store: ControlPlaneStore;
  events: BrokerEvents;
  log: Logger;
}

export interface RunningBroker {
  /** `mqtt://host:port` as bound. */
  url: string;
  port: number;
  /** Publishes on behalf of the server (QoS 1, not retained). */
  publish(topic: string, payload: string): Promise<void>;
  /** Ids of the devices with a live MQTT session. */
  connectedDevices(): string[];
  close(): Promise<void>;
}

// Room for the topic (≤ 64 KiB) and MQTT headers on top of the payload cap.
const MAX_PACKET = MAX_MQTT_PAYLOAD + 70 * 1024;

function authError(message: string, returnCode: 2 | 4 | 5): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

/**
 * Starts the embedded MQTT broker (aedes on a plain TCP port). Devices log in with username = device id,
 * password = device secret and client id = device id; each may subscribe only to its own commands topic and
 * publish only to its own acks, status and telemetry topics. Device messages are consumed in-process.
 *
 * @example
 * const broker = await startBroker({ host: '127.0.0.1', port: 0, store, events, log });
 * await broker.publish(topics.commands('dev-1'), JSON.stringify(cmd));
 * await broker.close();
 */
export async function startBroker(opts: BrokerOptions): Promise<RunningBroker> {
  const { store, events, log } = opts;
  // The live connection per device; used to tell a superseded session's events from the current one's.
  const sessions = new Map<string, Client>();

  const aedes = new Aedes({ heartbeatInterval: 60_000, drainTimeout: 30_000, connectTimeout: 10_000 });

  aedes.authenticate = (client, username, password, done) => {
    if (!username || !password) return done(authError('credentials required', 4), false);
    if (client.id !== username) return done(authError('client id must equal the device id', 2), false);
    verifyDeviceSecret(store, username, password.toString('utf8')).then(
      (ok) => {
        if (!ok) log.warn({ deviceId: username }, 'MQTT login refused: unknown device or wrong secret');
        done(ok ? null : authError('bad device id or secret', 4), ok);
      },
      (err: unknown) => {
        log.error({ err }, 'MQTT authentication failed');
        done(authError('authentication unavailable', 5), false);
      },
    );
  };

  aedes.authorizeSubscribe = (client, sub, done) => {
    if (sub.topic === topics.commands(client.id)) return done(null, sub);
    log.warn({ deviceId: client.id, topic: sub.topic }, 'subscription refused');
    // A negated subscription answers SUBACK 0x80 and keeps the connection, unlike an error.
    done(null, null);
  };

  aedes.authorizePublish = (client, packet, done) => {
    const t = parseDeviceTopic(packet.topic);
    let reason: string | null = null;
    if (!client) reason = 'publish without a client session';
    else if (!t || t.deviceId !== client.id || t.channel === 'commands') reason = 'topic not allowed';
    else if (packet.payload.length > MAX_MQTT_PAYLOAD) reason = `payload over ${MAX_MQTT_PAYLOAD} bytes`;
    if (reason === null) return done(null);
    log.warn({ deviceId: client?.id, topic: packet.topic, reason }, 'publish refused, closing connection');
    done(new Error(reason));
  };

  aedes.published = (packet, client, done) => {
    // Server-originated packets (commands, $SYS) have no client; devices were authorized above.
    const t = client ? parseDeviceTopic(packet.topic) : null;
    if (!client || !t || t.channel === 'commands' || t.deviceId !== client.id) return done();
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    ingestDeviceMessage(
      {
        store,
        events,
        log,
        // The publisher's own session may already be gone (a will is published while it closes).
        isCurrentSession: () => (sessions.get(client.id) ?? client) === client,
      },
      client.id,
      t.channel,
      payload,
    ).finally(() => done());
  };

  aedes.on('clientReady', (client) => {
    sessions.set(client.id, client);
    log.info({ deviceId: client.id }, 'device connected');
    void store.setDeviceOnline(client.id, true, new Date().toISOString()).catch((err: unknown) => {
      log.error({ err, deviceId: client.id }, 'could not record device online');
    });
    // A persistent session keeps its subscription, so the device may never SUBSCRIBE again.
    if (!client.clean) void resend(client.id);
  });

  aedes.on('subscribe', (subs, client) => {
    const own = topics.commands(client.id);
    if (subs.some((s) => s.topic === own && (s.qos as number) !== 128)) void resend(client.id);
  });

  aedes.on('clientDisconnect', (client) => {
    if (sessions.get(client.id) !== client) return;
    sessions.delete(client.id);
    log.info({ deviceId: client.id }, 'device disconnected');
    void store.setDeviceOnline(client.id, false, new Date().toISOString()).catch((err: unknown) => {
      log.error({ err, deviceId: client.id }, 'could not record device offline');
    });
  });

  aedes.on('clientError', (client, err) =>
    log.debug({ deviceId: client.id, reason: err.message }, 'client error'),
  );
  aedes.on('connectionError', (_client, err) => log.debug({ reason: err.message }, 'connection error'));

  async function resend(deviceId: string): Promise<void> {
    try {
      await events.commandsReady(deviceId);
    } catch (err) {
      log.error({ err, deviceId }, 'could not re-send pending commands');
    }
  }

  await aedes.listen();

  const server: Server = createServer((socket: Socket) => {
    const guard = new MqttFrameGuard(MAX_PACKET);
    pipeline(socket, guard, (err) => {
      if (err) log.debug({ reason: err.message }, 'MQTT connection dropped');
    });
    aedes.handle(Duplex.from({ readable: guard, writable: socket }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const url = `mqtt://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}`;
  log.info({ url }, 'MQTT broker listening');

  return {
    url,
    port,
    publish: (topic, payload) =>
      new Promise<void>((resolve, reject) => {
        aedes.publish(
          { cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, retain: false, dup: false },
          (err) => (err ? reject(err) : resolve()),
        );
      }),
    connectedDevices: () => [...sessions.keys()],
    close: async () => {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
