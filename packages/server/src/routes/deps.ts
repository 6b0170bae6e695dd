import type { Logger } from '@outpost/common';
import type { DeploymentService } from '../deployments/index.ts';
import type { ModelRegistry } from '../registry/index.ts';
import type { ControlPlaneStore } from '../store/index.ts';

/** What the HTTP routes need from the rest of the control plane. */
export interface RouteDeps {
  store: ControlPlaneStore;
  registry: ModelRegistry;
  deployments: DeploymentService;
  adminToken: string;
  log: Logger;
  /** The MQTT URL to hand a device that reached the API under `hostname`. */
  mqttUrlFor(hostname: string): string;
}
