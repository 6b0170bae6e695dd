/** @outpost/cli — programmatic access to what the `outpost` command does. */
export { ControlPlaneClient, AgentClient, pollUntil } from './client/index.ts';
export { buildManifest, signRelease, publishArtifact, type ReleaseOptions } from './release/index.ts';
export { writeKeyPair, readPrivateKey, readPublicKeys } from './keys/index.ts';
export { runDemo, type DemoOptions } from './demo/index.ts';
export {
  spawnAgentProcess,
  stopAgentProcess,
  OUTPOST_BIN,
  type AgentProcess,
  type SpawnAgentOptions,
} from './supervise/index.ts';
