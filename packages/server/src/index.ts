/**
 * @outpost/server — the Outpost control plane: device enrolment, the signed model registry, deployments over
 * an embedded MQTT broker, and device status/telemetry ingestion.
 */
export { startServer, type RunningServer } from './app/index.ts';
export {
  DEFAULT_ARTIFACT_BODY_LIMIT,
  parseServerConfig,
  serverConfigSchema,
  type ServerConfig,
  type ServerConfigInput,
} from './config/index.ts';
export { SqliteStore, canAdvance, type ControlPlaneStore } from './store/index.ts';
export type {
  AckOutcome,
  DeploymentRecord,
  DeviceRecord,
  EnrolOutcome,
  ModelVersionRecord,
  PendingCommand,
  SigningKeyRecord,
  TargetState,
} from './store/index.ts';
