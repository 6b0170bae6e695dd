import {
  OutpostError,
  commandAck,
  deviceStatus,
  parseJsonWith,
  telemetryReport,
  toOutpostError,
  type CommandAck,
  type DeviceChannel,
} from '@outpost/protocol';
import type { Logger } from '@outpost/common';
import type { ControlPlaneStore } from '../store/index.ts';

/** What the rest of the control plane does with device traffic the broker cannot handle alone. */
export interface BrokerEvents {
  /** The device can now receive commands (subscribed to, or restored a session on, its commands topic). */
  commandsReady(deviceId: string): Promise<void>;
  /** A validated ack from the device it names. */
  ack(ack: CommandAck): Promise<void>;
}

export interface IngestContext {
  store: ControlPlaneStore;
  events: BrokerEvents;
  log: Logger;
  /** False when another connection of the same device has taken over (the old one's will arrives late). */
  isCurrentSession: () => boolean;
}

function assertSameDevice(topicDevice: string, payloadDevice: string): void {
  if (topicDevice !== payloadDevice) {
    throw new OutpostError(
      'VALIDATION_FAILED',
      `payload deviceId ${JSON.stringify(payloadDevice)} does not match the topic's device`,
    );
  }
}

/**
 * Handles one message a device published on its own topic. Every payload is parsed with the protocol schema
 * first; a malformed or mis-addressed one is logged with its reason and dropped, never thrown, so one bad
 * device cannot disturb the broker.
 *
 * @example
 * await ingestDeviceMessage(ctx, 'dev-1', 'telemetry', packet.payload);
 */
export async function ingestDeviceMessage(
  ctx: IngestContext,
  deviceId: string,
  channel: Exclude<DeviceChannel, 'commands'>,
  payload: Buffer,
): Promise<void> {
  const now = new Date().toISOString();
  try {
    switch (channel) {
      case 'acks': {
        const ack = parseJsonWith(commandAck, payload, 'command ack');
        assertSameDevice(deviceId, ack.deviceId);
        await ctx.events.ack(ack);
        return;
      }
      case 'status': {
        const status = parseJsonWith(deviceStatus, payload, 'device status');
        assertSameDevice(deviceId, status.deviceId);
        // After a session takeover the old connection's will ("offline") arrives late; it describes a
        // connection that no longer exists, so it must not mark the live device offline.
        if (!status.online && !ctx.isCurrentSession()) {
          ctx.log.debug({ deviceId }, 'ignoring offline status of a superseded session');
          return;
        }
        await ctx.store.recordDeviceStatus(deviceId, status, now);
        return;
      }
      case 'telemetry': {
        const report = parseJsonWith(telemetryReport, payload, 'telemetry report');
        assertSameDevice(deviceId, report.deviceId);
        const stored = await ctx.store.insertTelemetry(report, now);
        if (!stored) ctx.log.debug({ deviceId, seq: report.seq }, 'duplicate telemetry report ignored');
        return;
      }
    }
  } catch (err) {
    const e = toOutpostError(err);
    const level = e.code === 'INTERNAL' ? 'error' : 'warn';
    ctx.log[level]({ deviceId, channel, code: e.code, reason: e.message }, 'dropped device message');
  }
}
