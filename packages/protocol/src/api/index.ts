import { z } from 'zod';
import { sha256Hex, tensorDtype } from '../manifest/index.ts';
import { safeName, semver } from '../names/index.ts';
import { signedRelease, deviceStatus, latencySummary } from '../messages/index.ts';

/** REST bodies of the control plane (`/api/v1/...`) and of the agent's local API (`/v1/...`). */

// ---- control plane ----------------------------------------------------------------------------------------

export const createBootstrapTokenRequest = z.object({
  uses: z.number().int().min(1).max(100_000).default(1),
  ttlSeconds: z
    .number()
    .int()
    .min(60)
    .max(30 * 24 * 3600)
    .default(24 * 3600),
});
export const createBootstrapTokenResponse = z.object({ token: z.string(), expiresAt: z.iso.datetime() });

export const enrolRequest = z.object({
  bootstrapToken: z.string().min(16).max(256),
  /** Requested id; the server assigns one when omitted. */
  deviceId: safeName.optional(),
  profile: safeName.default('cpu'),
  agentVersion: z.string().max(64).default('unknown'),
  tags: z.array(safeName).max(32).default([]),
});
export type EnrolRequest = z.input<typeof enrolRequest>;

export const enrolResponse = z.object({
  deviceId: safeName,
  /** The device's own secret: MQTT password and HTTP bearer token. Shown once. */
  deviceSecret: z.string().min(32),
  mqttUrl: z.string(),
});
export type EnrolResponse = z.infer<typeof enrolResponse>;

export const publishModelRequest = z.object({ release: signedRelease });
export const modelVersionSummary = z.object({
  name: safeName,
  version: semver,
  sha256: sha256Hex,
  size: z.number().int(),
  state: z.enum(['awaiting-artifact', 'ready']),
  createdAt: z.string(),
  keyid: z.string(),
});
export type ModelVersionSummary = z.infer<typeof modelVersionSummary>;

export const createDeploymentRequest = z.object({
  model: safeName,
  version: semver,
  devices: z.array(safeName).min(1).max(10_000),
});
export type CreateDeploymentRequest = z.infer<typeof createDeploymentRequest>;

export const deploymentTargetState = z.enum(['pending', 'received', 'succeeded', 'failed']);
export const deploymentView = z.object({
  id: z.uuid(),
  model: safeName,
  version: semver,
  createdAt: z.string(),
  targets: z.array(
    z.object({
      deviceId: safeName,
      commandId: z.uuid(),
      state: deploymentTargetState,
      error: z.string().nullable(),
      updatedAt: z.string(),
    }),
  ),
});
export type DeploymentView = z.infer<typeof deploymentView>;

export const deviceView = z.object({
  id: safeName,
  profile: safeName,
  tags: z.array(z.string()),
  agentVersion: z.string(),
  enrolledAt: z.string(),
  lastSeen: z.string().nullable(),
  online: z.boolean(),
  status: deviceStatus.nullable(),
});
export type DeviceView = z.infer<typeof deviceView>;

// ---- agent local API -------------------------------------------------------------------------------------

export const inferenceTensor = z
  .object({
    dtype: tensorDtype.default('float32'),
    shape: z.array(z.number().int().nonnegative()).max(16),
    /** Values in row-major order, or `dataB64`: the little-endian raw bytes, base64. */
    data: z.array(z.union([z.number(), z.boolean(), z.string()])).optional(),
    dataB64: z.string().optional(),
  })
  .refine((t) => (t.data === undefined) !== (t.dataB64 === undefined), 'give exactly one of data or dataB64');
export type InferenceTensor = z.infer<typeof inferenceTensor>;

export const inferenceRequest = z.object({
  inputs: z.record(z.string(), inferenceTensor),
});
export type InferenceRequest = z.input<typeof inferenceRequest>;

export const inferenceResponse = z.object({
  model: z.object({ name: safeName, version: semver }),
  outputs: z.record(
    z.string(),
    z.object({
      dtype: z.string(),
      shape: z.array(z.number()),
      data: z.array(z.union([z.number(), z.string()])),
    }),
  ),
  timings: z.object({ inferMs: z.number(), totalMs: z.number() }),
});
export type InferenceResponse = z.infer<typeof inferenceResponse>;

export const agentStatusResponse = z.object({
  deviceId: z.string().nullable(),
  connected: z.boolean(),
  models: z.array(
    z.object({
      name: safeName,
      version: semver,
      sha256: sha256Hex,
      previousVersion: semver.nullable(),
      latencyMs: latencySummary.nullable(),
    }),
  ),
});
export type AgentStatusResponse = z.infer<typeof agentStatusResponse>;
