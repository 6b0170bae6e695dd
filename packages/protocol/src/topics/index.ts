import { OutpostError } from '../errors/index.ts';
import { isSafeName } from '../names/index.ts';

/**
 * MQTT topic builders. Every device topic lives under `outpost/v1/devices/{id}/`, so a broker ACL can allow a
 * device exactly its own subtree. Device ids come from the safe-name alphabet, so they never contain `+`, `#`
 * or `/`.
 *
 * @example
 * topics.commands('dev-1') // 'outpost/v1/devices/dev-1/commands'
 */
export const TOPIC_ROOT = 'outpost/v1';

export type DeviceChannel = 'commands' | 'acks' | 'status' | 'telemetry';
export const DEVICE_CHANNELS: readonly DeviceChannel[] = ['commands', 'acks', 'status', 'telemetry'];

function device(id: string, channel: DeviceChannel): string {
  if (!isSafeName(id)) throw new OutpostError('INVALID_NAME', `invalid device id ${JSON.stringify(id)}`);
  return `${TOPIC_ROOT}/devices/${id}/${channel}`;
}

export const topics = {
  /** server → device: deploy and other commands (QoS 1). */
  commands: (id: string) => device(id, 'commands'),
  /** device → server: command acknowledgements and outcomes (QoS 1). */
  acks: (id: string) => device(id, 'acks'),
  /** device → server: retained status, also the last-will (offline) message. */
  status: (id: string) => device(id, 'status'),
  /** device → server: batched telemetry. */
  telemetry: (id: string) => device(id, 'telemetry'),
  /** Subscription filter for the server: one channel of every device. */
  allDevices: (channel: DeviceChannel) => `${TOPIC_ROOT}/devices/+/${channel}`,
} as const;

/** Parses a device topic; returns null for anything that is not exactly `outpost/v1/devices/{id}/{channel}`. */
export function parseDeviceTopic(topic: string): { deviceId: string; channel: DeviceChannel } | null {
  const parts = topic.split('/');
  if (parts.length !== 5 || parts[0] !== 'outpost' || parts[1] !== 'v1' || parts[2] !== 'devices')
    return null;
  const id = parts[3] ?? '';
  const channel = parts[4] as DeviceChannel;
  if (!isSafeName(id) || !DEVICE_CHANNELS.includes(channel)) return null;
  return { deviceId: id, channel };
}
