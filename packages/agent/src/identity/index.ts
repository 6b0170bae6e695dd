import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { atomicWriteFileSync, type Logger } from '@outpost/common';
import {
  enrolResponse,
  errorBody,
  isErrorCode,
  OutpostError,
  parseJsonWith,
  safeName,
  type EnrolRequest,
} from '@outpost/protocol';

/**
 * The device's identity: what enrolment returned, kept in `dataDir/identity.json` (mode 0600) so that a device
 * enrols exactly once and every later start reuses the same id and secret.
 */

export const IDENTITY_FILE = 'identity.json';
export const API_TOKEN_FILE = 'api-token';

const identityFile = z.object({
  deviceId: safeName,
  deviceSecret: z.string().min(32),
  mqttUrl: z.string().min(1),
  serverUrl: z.string().optional(),
  enrolledAt: z.string().optional(),
});
export type DeviceIdentity = z.infer<typeof identityFile>;

export interface EnrolOptions {
  serverUrl: string;
  dataDir: string;
  bootstrapToken?: string | undefined;
  deviceId?: string | undefined;
  profile: string;
  tags: readonly string[];
  agentVersion: string;
  log: Logger;
  /** Per-request deadline. */
  timeoutMs?: number;
}

/**
 * Reads `dataDir/identity.json`; null when the device has not enrolled yet. A corrupt file is CONFIG_INVALID.
 *
 * @example
 * readIdentity('/var/lib/outpost')?.deviceId; // 'dev-1', or undefined before enrolment
 */
export function readIdentity(dataDir: string): DeviceIdentity | null {
  const path = join(dataDir, IDENTITY_FILE);
  if (!existsSync(path)) return null;
  try {
    return parseJsonWith(identityFile, readFileSync(path), IDENTITY_FILE);
  } catch (err) {
    // Re-enrolling silently would mint a second device; an operator must look at this.
    throw new OutpostError('CONFIG_INVALID', `${path} is unreadable: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/**
 * Returns the persisted identity, or enrols with the bootstrap token and persists the answer atomically.
 * Server errors keep the server's code (e.g. ENROLMENT_TOKEN_INVALID); an unreachable server is UNAVAILABLE.
 *
 * @example
 * const id = await loadOrEnrol({ serverUrl, dataDir, bootstrapToken, profile: 'cpu', tags: [], agentVersion, log });
 * id.deviceId; // 'dev-1'
 */
export async function loadOrEnrol(opts: EnrolOptions): Promise<DeviceIdentity> {
  const existing = readIdentity(opts.dataDir);
  if (existing) {
    opts.log.info({ deviceId: existing.deviceId }, 'using the persisted identity');
    return existing;
  }
  if (!opts.bootstrapToken) {
    throw new OutpostError(
      'CONFIG_INVALID',
      'the device is not enrolled yet and no bootstrapToken was given',
    );
  }
  const body: EnrolRequest = {
    bootstrapToken: opts.bootstrapToken,
    profile: opts.profile,
    agentVersion: opts.agentVersion,
    tags: [...opts.tags],
  };
  if (opts.deviceId) body.deviceId = opts.deviceId;
  const url = `${opts.serverUrl}/api/v1/enrol`;
  opts.log.info({ url, requestedId: opts.deviceId ?? null }, 'enrolling');
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
    });
  } catch (err) {
    throw new OutpostError('UNAVAILABLE', `enrolment request to ${url} failed: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const text = await res.text();
  if (!res.ok) throw serverError(res.status, text, 'enrolment');
  const answer = parseJsonWith(enrolResponse, text, 'enrol response');
  const identity: DeviceIdentity = {
    ...answer,
    serverUrl: opts.serverUrl,
    enrolledAt: new Date().toISOString(),
  };
  atomicWriteFileSync(join(opts.dataDir, IDENTITY_FILE), JSON.stringify(identity, null, 2), 0o600);
  opts.log.info({ deviceId: identity.deviceId }, 'enrolled');
  return identity;
}

/**
 * Turns a control-plane error answer into an OutpostError with the server's code when it sent one.
 *
 * @example
 * serverError(401, '{"code":"ENROLMENT_TOKEN_INVALID","message":"expired","retryable":false}', 'enrolment').code;
 * // 'ENROLMENT_TOKEN_INVALID'
 */
export function serverError(status: number, text: string, what: string): OutpostError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const body = errorBody.safeParse(parsed);
  if (body.success && isErrorCode(body.data.code)) {
    return new OutpostError(body.data.code, `${what}: ${body.data.message}`);
  }
  const code = status >= 500 ? 'UNAVAILABLE' : status === 401 ? 'UNAUTHENTICATED' : 'VALIDATION_FAILED';
  return new OutpostError(code, `${what}: HTTP ${status}`);
}

/**
 * The local API's bearer token: the configured one, else the one generated on first start and kept in
 * `dataDir/api-token` (mode 0600), so local clients keep working across restarts.
 *
 * @example
 * const token = loadOrCreateApiToken('/var/lib/outpost'); // same value on every start
 */
export function loadOrCreateApiToken(dataDir: string, configured?: string): string {
  if (configured) return configured;
  const path = join(dataDir, API_TOKEN_FILE);
  if (existsSync(path)) {
    const token = readFileSync(path, 'utf8').trim();
    if (token.length >= 16) return token;
  }
  const token = randomBytes(32).toString('base64url');
  atomicWriteFileSync(path, `${token}\n`, 0o600);
  return token;
}
