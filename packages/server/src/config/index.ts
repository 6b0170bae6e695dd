import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { OutpostError, formatIssues } from '@outpost/protocol';
import { atomicWriteFileSync } from '@outpost/common';
import { normalizePublicKeyPem } from '../registry/index.ts';

/** Largest artifact the server accepts by default: 512 MiB. */
export const DEFAULT_ARTIFACT_BODY_LIMIT = 512 * 1024 * 1024;

const port = z.number().int().min(0).max(65_535);

/**
 * The control plane's configuration. Validated once at start-up, then frozen, so no component can see a
 * half-valid or later-mutated config.
 *
 * @example
 * serverConfigSchema.parse({ dataDir: '/var/lib/outpost', httpPort: 0 });
 */
export const serverConfigSchema = z.object({
  /** Directory holding the SQLite database, artifacts and the generated admin token. Created when missing. */
  dataDir: z.string().min(1),
  host: z.string().min(1).default('127.0.0.1'),
  /** 0 picks a random free port (tests). */
  httpPort: port.default(8080),
  /** 0 picks a random free port (tests). */
  mqttPort: port.default(1883),
  /** Admin bearer token; generated once and kept in `dataDir/admin-token` (mode 0600) when omitted. */
  adminToken: z.string().min(16).max(512).optional(),
  /** Ed25519 public keys (SPKI PEM) of trusted publishers; more can be added with `POST /api/v1/signing-keys`. */
  trustedKeys: z.array(z.string().min(1)).default([]),
  artifactBodyLimit: z.number().int().positive().default(DEFAULT_ARTIFACT_BODY_LIMIT),
  /**
   * MQTT URL handed to devices at enrolment. Defaults to `mqtt://<host>:<mqttPort>`; when the server binds a
   * wildcard address the host the device used to reach the HTTP API is used instead.
   */
  publicMqttUrl: z.url().optional(),
});

export type ServerConfigInput = z.input<typeof serverConfigSchema>;
export type ServerConfig = Readonly<z.output<typeof serverConfigSchema>>;

/**
 * Validates a config; throws CONFIG_INVALID (never echoing values, which may hold the admin token).
 *
 * @example
 * const cfg = parseServerConfig({ dataDir: '/var/lib/outpost' }); // httpPort 8080, mqttPort 1883
 */
export function parseServerConfig(input: ServerConfigInput): ServerConfig {
  const r = serverConfigSchema.safeParse(input);
  if (!r.success) throw new OutpostError('CONFIG_INVALID', `invalid server config: ${formatIssues(r.error)}`);
  const trustedKeys = r.data.trustedKeys.map((pem, i) => {
    try {
      return normalizePublicKeyPem(pem).publicKeyPem;
    } catch (err) {
      throw new OutpostError('CONFIG_INVALID', `trustedKeys[${i}]: ${(err as Error).message}`);
    }
  });
  const cfg = { ...r.data, dataDir: resolve(r.data.dataDir), trustedKeys: Object.freeze(trustedKeys) };
  return Object.freeze(cfg) as ServerConfig;
}

/**
 * Returns the admin token: the configured one, else the one persisted in `dataDir/admin-token`, else a fresh
 * random token written there with mode 0600 (so a restart keeps the token operators already use).
 *
 * @example
 * const token = resolveAdminToken(cfg); // same value on every start with this dataDir
 */
export function resolveAdminToken(cfg: ServerConfig): string {
  if (cfg.adminToken !== undefined) return cfg.adminToken;
  mkdirSync(cfg.dataDir, { recursive: true, mode: 0o700 });
  const file = join(cfg.dataDir, 'admin-token');
  let existing: string | null = null;
  try {
    existing = readFileSync(file, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new OutpostError('CONFIG_INVALID', `cannot read ${file}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
  if (existing !== null) {
    if (existing.length < 16) throw new OutpostError('CONFIG_INVALID', `${file} holds no usable token`);
    // Tighten permissions in case the file was copied around with a looser mode.
    chmodSync(file, 0o600);
    return existing;
  }
  const token = randomBytes(32).toString('base64url');
  atomicWriteFileSync(file, `${token}\n`, 0o600);
  return token;
}
