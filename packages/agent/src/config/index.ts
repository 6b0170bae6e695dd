import { z } from 'zod';
import { formatIssues, keyIdOf, OutpostError, safeName } from '@outpost/protocol';

/**
 * The agent's configuration: validated once at start-up with zod, then deep-frozen, so no module can change a
 * setting behind another's back and a bad value fails at start instead of in the middle of a deployment.
 */

const GIB = 1024 * 1024 * 1024;

const httpUrl = z
  .url()
  // Guarded: zod runs refinements even after z.url() failed, and `new URL` throws on garbage.
  .refine(
    (s) => URL.canParse(s) && ['http:', 'https:'].includes(new URL(s).protocol),
    'must be an http:// or https:// URL',
  )
  // A trailing slash would double up when joined with `/api/v1/...` paths.
  .transform((s) => s.replace(/\/+$/, ''));

const ed25519PublicKeyPem = z.string().refine((pem) => {
  try {
    keyIdOf(pem);
    return true;
  } catch {
    return false;
  }
}, 'must be an Ed25519 public key in PEM (SPKI) form');

/**
 * The configuration schema (zod). Prefer {@link loadConfig}, which also freezes the result.
 *
 * @example
 * agentConfigSchema.shape.apiPort.parse(undefined); // 8081
 */
export const agentConfigSchema = z.object({
  /** Control-plane base URL, e.g. `https://outpost.example.com`. */
  serverUrl: httpUrl,
  /** Where identity, models and the command ledger live. Created with mode 0700 when missing. */
  dataDir: z.string().min(1),
  /** One-time enrolment token; needed only while `dataDir` holds no identity yet. */
  bootstrapToken: z.string().min(16).max(256).optional(),
  /** Requested device id (the server may assign one when omitted). */
  deviceId: safeName.optional(),
  profile: safeName.default('cpu'),
  tags: z.array(safeName).max(32).default([]),
  /** Publisher public keys pinned out of band; a release must be signed by one of them. */
  trustedKeys: z.array(ed25519PublicKeyPem).min(1).max(32),
  apiHost: z.string().min(1).default('127.0.0.1'),
  /** Local API port; 0 picks a free one (see `RunningAgent.apiUrl`). */
  apiPort: z.number().int().min(0).max(65535).default(8081),
  /** Bearer token of the local API; generated once and kept in `dataDir/api-token` when omitted. */
  apiToken: z.string().min(16).max(512).optional(),
  telemetryIntervalMs: z.number().int().min(50).max(3_600_000).default(10_000),
  intraOpThreads: z.number().int().min(1).max(256).default(1),
  maxArtifactBytes: z
    .number()
    .int()
    .positive()
    .default(1 * GIB),
  /** Whole-download deadline: a stalled or trickling transfer fails instead of blocking the queue forever. */
  downloadTimeoutMs: z
    .number()
    .int()
    .min(100)
    .default(10 * 60_000),
  /**
   * MQTT protocol level to try first; with 5 the agent falls back to 3.1.1 when a broker refuses it. The default is
   * 4 (3.1.1) because the control plane's embedded broker (aedes) speaks 3.1.1 only, and trying 5 first would cost a
   * reconnect delay on every start; set 5 for an external MQTT 5 broker (Mosquitto 2, EMQX).
   */
  mqttProtocolVersion: z.union([z.literal(5), z.literal(4)]).default(4),
  mqttReconnectMs: z.number().int().min(10).max(600_000).default(1000),
  /** Largest local-API request body (inference inputs). */
  apiBodyLimitBytes: z
    .number()
    .int()
    .positive()
    .default(32 * 1024 * 1024),
  agentVersion: z.string().max(64).default('0.1.0'),
});

/** What callers pass to `startAgent` (defaults filled in). */
export type AgentConfigInput = z.input<typeof agentConfigSchema>;
/** The validated, frozen configuration. */
export type AgentConfig = DeepReadonly<z.output<typeof agentConfigSchema>>;

type DeepReadonly<T> = T extends (infer U)[]
  ? readonly DeepReadonly<U>[]
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/**
 * Validates and freezes the agent configuration; throws CONFIG_INVALID naming every bad field.
 * Secrets (bootstrap token, API token) are never echoed in the message, only their field names.
 *
 * @example
 * const cfg = loadConfig({ serverUrl: 'http://localhost:8080', dataDir: '/var/lib/outpost', trustedKeys: [pem] });
 * cfg.apiPort; // 8081
 */
export function loadConfig(input: AgentConfigInput): AgentConfig {
  const r = agentConfigSchema.safeParse(input);
  if (!r.success)
    throw new OutpostError('CONFIG_INVALID', `invalid agent configuration: ${formatIssues(r.error)}`);
  return deepFreeze(r.data);
}
