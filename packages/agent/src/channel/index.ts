import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from '@outpost/common';
import { topics, type CommandAck, type DeviceStatus, type TelemetryReport } from '@outpost/protocol';

export interface ChannelOptions {
  mqttUrl: string;
  deviceId: string;
  /** MQTT password; never logged. */
  deviceSecret: string;
  protocolVersion: 4 | 5;
  reconnectMs: number;
  log: Logger;
  /** The current status (models etc.); `online` is set by the channel. */
  status: () => Omit<DeviceStatus, 'online' | 'ts'>;
  /** Receives each command payload. Must be synchronous: the PUBACK is sent when it returns. */
  onCommand: (payload: Uint8Array) => void;
}

/** How long a persistent (clean:false) MQTT 5 session outlives a disconnect: a week offline keeps commands. */
const SESSION_EXPIRY_S = 7 * 24 * 3600;

/** CONNACK codes for "unsupported protocol version" in MQTT 3.1.1 (1) and MQTT 5 (0x84). */
const PROTOCOL_REFUSED = new Set([1, 0x84]);

/**
 * The device's MQTT link to the control plane (mqtt.js, which also does the reconnecting): a persistent session
 * (clean:false) with a QoS 1 subscription to the device's command topic, a retained online status published on
 * every connect, and a retained offline status as the last will. MQTT 5 is tried first; a broker that refuses it
 * (the embedded aedes speaks 3.1.1) gets 3.1.1, which offers everything the agent uses.
 *
 * @example
 * const ch = new DeviceChannel({ mqttUrl, deviceId, deviceSecret, protocolVersion: 5, reconnectMs: 1000, log,
 *   status: () => ({ deviceId, models: live.active() }), onCommand: (p) => deployer.accept(p) });
 * ch.start();
 */
export class DeviceChannel {
  private readonly opts: ChannelOptions;
  private client: MqttClient | null = null;
  private closing = false;
  /** The last error logged, so a broker refusing every retry does not flood the log. */
  private lastError = '';

  constructor(opts: ChannelOptions) {
    this.opts = opts;
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  start(): void {
    const { deviceId, log } = this.opts;
    const options: IClientOptions = {
      clientId: deviceId,
      username: deviceId,
      password: this.opts.deviceSecret,
      clean: false,
      protocolVersion: this.opts.protocolVersion,
      keepalive: 30,
      reconnectPeriod: this.opts.reconnectMs,
      // A refused CONNECT (broker restarting, protocol level) must not end the daemon's attempts for good.
      reconnectOnConnackError: true,
      connectTimeout: 30_000,
      resubscribe: true,
      will: this.will(),
    };
    if (this.opts.protocolVersion === 5) options.properties = { sessionExpiryInterval: SESSION_EXPIRY_S };
    const client = mqtt.connect(this.opts.mqttUrl, options);
    this.client = client;

    // Handled here instead of on 'message' so the PUBACK goes out only after the command is in the ledger.
    client.handleMessage = (packet, done) => {
      if (packet.topic !== topics.commands(deviceId)) {
        log.warn({ topic: packet.topic }, 'message on an unexpected topic ignored');
        done();
        return;
      }
      const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
      try {
        this.opts.onCommand(payload);
        done();
      } catch (err) {
        // Not acked: the broker redelivers it on the next session.
        log.error({ err: (err as Error).message }, 'could not record a command');
        done(err as Error);
      }
    };

    client.on('connect', (connack) => {
      this.lastError = '';
      log.info(
        { sessionPresent: connack.sessionPresent, protocolVersion: client.options.protocolVersion },
        'connected',
      );
      client.subscribe(topics.commands(deviceId), { qos: 1 }, (err, granted) => {
        if (err) log.error({ err: err.message }, 'subscribe failed');
        else if (granted?.some((g) => g.qos > 2))
          log.error({ granted }, 'subscription refused by the broker');
      });
      this.publishStatus();
    });
    client.on('reconnect', () => {
      // The will is sent with CONNECT; refresh it so an unexpected drop reports the current models.
      client.options.will = this.will();
      log.debug('reconnecting');
    });
    client.on('close', () => {
      if (!this.closing) log.debug('connection closed');
    });
    client.on('offline', () => log.warn('offline'));
    client.on('error', (err: Error & { code?: number | string }) => {
      if (
        client.options.protocolVersion === 5 &&
        typeof err.code === 'number' &&
        PROTOCOL_REFUSED.has(err.code)
      ) {
        log.info('the broker refused MQTT 5; using MQTT 3.1.1');
        client.options.protocolVersion = 4;
        delete client.options.properties;
        return;
      }
      const level = err.message === this.lastError ? 'debug' : 'error';
      this.lastError = err.message;
      log[level]({ err: err.message, code: err.code }, 'mqtt error');
    });
  }

  publishAck(ack: CommandAck): void {
    this.publish(topics.acks(this.opts.deviceId), JSON.stringify(ack), false);
  }

  /** Publishes the retained online status (on connect and after every activation). */
  publishStatus(): void {
    if (!this.client?.connected) return; // sent on the next connect anyway
    this.publish(topics.status(this.opts.deviceId), JSON.stringify(this.statusMessage(true)), true);
  }

  publishTelemetry(report: TelemetryReport): void {
    this.publish(topics.telemetry(this.opts.deviceId), JSON.stringify(report), false);
  }

  /** Publishes the retained offline status (a clean shutdown sends no will), then disconnects. */
  async close(): Promise<void> {
    const client = this.client;
    if (!client || this.closing) return;
    this.closing = true;
    if (client.connected) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 2000);
        client.publish(
          topics.status(this.opts.deviceId),
          JSON.stringify(this.statusMessage(false)),
          { qos: 1, retain: true },
          () => {
            clearTimeout(timer);
            resolve();
          },
        );
      });
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        client.end(true);
        resolve();
      }, 3000);
      client.end(!client.connected, () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private publish(topic: string, payload: string, retain: boolean): void {
    // QoS 1 publishes made while offline wait in mqtt.js's queue and go out after the reconnect.
    this.client?.publish(topic, payload, { qos: 1, retain }, (err) => {
      if (err && !this.closing) this.opts.log.warn({ topic, err: err.message }, 'publish failed');
    });
  }

  private statusMessage(online: boolean): DeviceStatus {
    return { ...this.opts.status(), online, ts: new Date().toISOString() };
  }

  private will(): NonNullable<IClientOptions['will']> {
    return {
      topic: topics.status(this.opts.deviceId),
      payload: Buffer.from(JSON.stringify(this.statusMessage(false))),
      qos: 1,
      retain: true,
    };
  }
}
