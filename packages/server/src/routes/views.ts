import type { DeviceView } from '@outpost/protocol';
import type { DeviceRecord } from '../store/index.ts';

/**
 * The API view of a device: everything but the secret hash.
 *
 * @example
 * (await store.listDevices()).map(toDeviceView);
 */
export function toDeviceView(d: DeviceRecord): DeviceView {
  return {
    id: d.id,
    profile: d.profile,
    tags: d.tags,
    agentVersion: d.agentVersion,
    enrolledAt: d.enrolledAt,
    lastSeen: d.lastSeen,
    online: d.online,
    status: d.status,
  };
}
