/**
 * @outpost/agent — the on-device daemon: enrolment, verified model deployment over MQTT, an atomic on-disk
 * model store, onnxruntime inference behind a local HTTP API, and telemetry.
 *
 * @example
 * import { startAgent } from '@outpost/agent';
 * const agent = await startAgent({ serverUrl, dataDir, bootstrapToken, trustedKeys: [pem] });
 */
export { startAgent, type RunningAgent } from './daemon/index.ts';
export { agentConfigSchema, loadConfig, type AgentConfig, type AgentConfigInput } from './config/index.ts';
export { readIdentity, type DeviceIdentity } from './identity/index.ts';
