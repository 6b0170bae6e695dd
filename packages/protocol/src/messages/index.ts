import { z } from 'zod';
import { ERROR_CODES, type ErrorCode } from '../errors/index.ts';
import { modelManifest, sha256Hex } from '../manifest/index.ts';
import { safeName, semver } from '../names/index.ts';
import { signedEnvelope } from '../signing/index.ts';

/** MQTT message schemas. Every payload is JSON; every receiver parses with these before acting. */

export const MAX_MQTT_PAYLOAD = 256 * 1024;

export const signedRelease = signedEnvelope(modelManifest);
export type SignedRelease = z.infer<typeof signedRelease>;

export const errorBody = z.object({
  code: z.enum(ERROR_CODES as [ErrorCode, ...ErrorCode[]]),
  message: z.string().max(4096),
  retryable: z.boolean(),
  details: z.unknown().optional(),
});

export const deployCommand = z.object({
  kind: z.literal('deploy'),
  commandId: z.uuid(),
  deploymentId: z.uuid(),
  issuedAt: z.iso.datetime(),
  release: signedRelease,
  /** Path of the artifact on the control plane's HTTP API, e.g. `/api/v1/artifacts/mnist/1.0.0`. */
  artifactPath: z.string().regex(/^\/api\/v1\/artifacts\/[A-Za-z0-9._-]+\/[A-Za-z0-9.+_-]+$/),
});
export type DeployCommand = z.infer<typeof deployCommand>;

export const deviceCommand = z.discriminatedUnion('kind', [deployCommand]);
export type DeviceCommand = z.infer<typeof deviceCommand>;

export const ackStatus = z.enum(['received', 'succeeded', 'failed']);
export type AckStatus = z.infer<typeof ackStatus>;

export const commandAck = z.object({
  commandId: z.uuid(),
  deviceId: safeName,
  status: ackStatus,
  ts: z.iso.datetime(),
  error: errorBody.optional(),
});
export type CommandAck = z.infer<typeof commandAck>;

export const activeModel = z.object({
  name: safeName,
  version: semver,
  sha256: sha256Hex,
  activatedAt: z.iso.datetime(),
});
export type ActiveModel = z.infer<typeof activeModel>;

export const deviceStatus = z.object({
  deviceId: safeName,
  online: z.boolean(),
  ts: z.iso.datetime(),
  agentVersion: z.string().max(64).optional(),
  profile: safeName.optional(),
  models: z.array(activeModel).max(256).default([]),
});
export type DeviceStatus = z.infer<typeof deviceStatus>;

export const latencySummary = z.object({
  count: z.number().int().nonnegative(),
  mean: z.number().nonnegative(),
  p50: z.number().nonnegative(),
  p95: z.number().nonnegative(),
  p99: z.number().nonnegative(),
  max: z.number().nonnegative(),
});
export type LatencySummary = z.infer<typeof latencySummary>;

export const modelTelemetry = z.object({
  name: safeName,
  version: semver,
  requests: z.number().int().nonnegative(),
  errors: z.number().int().nonnegative(),
  /** Milliseconds spent inside the runtime's `run()` per request. */
  latencyMs: latencySummary,
});
export type ModelTelemetry = z.infer<typeof modelTelemetry>;

export const telemetryReport = z.object({
  deviceId: safeName,
  /** Sequence number per device; the server stores a (deviceId, seq) pair once. */
  seq: z.number().int().nonnegative(),
  windowStart: z.iso.datetime(),
  windowEnd: z.iso.datetime(),
  rssBytes: z.number().int().nonnegative(),
  models: z.array(modelTelemetry).max(256),
});
export type TelemetryReport = z.infer<typeof telemetryReport>;
