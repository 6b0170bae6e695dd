import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { OutpostError, isSafeName } from '@outpost/protocol';
import type { ControlPlaneStore } from '../store/index.ts';

/**
 * Credentials. Device secrets and bootstrap tokens are 32 random bytes, so a plain SHA-256 is a sufficient
 * one-way hash (there is nothing to brute-force that a salt or scrypt would slow down); only hashes are
 * stored. Comparisons go through {@link safeEqual} so response timing does not leak matching prefixes.
 */

/**
 * A fresh 256-bit secret, base64url (43 chars).
 *
 * @example
 * const deviceSecret = newSecret(); // store hashSecret(deviceSecret), hand out deviceSecret once
 */
export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * SHA-256 hex of a secret, as stored.
 *
 * @example
 * await store.createBootstrapToken({ tokenHash: hashSecret(token), uses: 1, expiresAt, createdAt });
 */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/**
 * Constant-time string equality. Both sides are hashed first so inputs of different lengths compare in
 * the same time as equal-length ones (timingSafeEqual itself throws on a length mismatch).
 *
 * @example
 * safeEqual(presented, adminToken); // true | false, timing independent of where they differ
 */
export function safeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a, 'utf8').digest();
  const hb = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(ha, hb);
}

export type Credentials =
  | { kind: 'bearer'; token: string }
  | { kind: 'basic'; username: string; password: string }
  | { kind: 'none' };

/**
 * Splits an `Authorization` header; anything unparseable is `none` (and so unauthenticated).
 *
 * @example
 * parseAuthorization('Basic ZGV2LTE6czNjcmV0'); // { kind: 'basic', username: 'dev-1', password: 's3cret' }
 */
export function parseAuthorization(header: string | undefined): Credentials {
  if (!header) return { kind: 'none' };
  const m = /^(\w+)\s+(\S+)\s*$/.exec(header);
  if (!m) return { kind: 'none' };
  const scheme = (m[1] ?? '').toLowerCase();
  const value = m[2] ?? '';
  if (scheme === 'bearer') return { kind: 'bearer', token: value };
  if (scheme === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i <= 0) return { kind: 'none' };
    return { kind: 'basic', username: decoded.slice(0, i), password: decoded.slice(i + 1) };
  }
  return { kind: 'none' };
}

export type Principal = { kind: 'admin' } | { kind: 'device'; deviceId: string };

// Compared against when the device does not exist, so unknown and known ids take the same time.
const DUMMY_HASH = hashSecret('outpost-no-such-device');

/**
 * Checks a device id + secret against the store.
 *
 * @example
 * if (!(await verifyDeviceSecret(store, 'dev-1', secret))) throw new OutpostError('UNAUTHENTICATED', '...');
 */
export async function verifyDeviceSecret(
  store: ControlPlaneStore,
  deviceId: string,
  secret: string,
): Promise<boolean> {
  const dev = isSafeName(deviceId) ? await store.getDevice(deviceId) : null;
  const ok = safeEqual(hashSecret(secret), dev?.secretHash ?? DUMMY_HASH);
  return ok && dev !== null;
}

/**
 * Resolves the caller of an HTTP request. Admin: `Bearer <adminToken>`. Device: `Basic base64(id:secret)`,
 * or `Bearer <deviceSecret>` (the secret alone identifies the device, as its hash is unique).
 * Returns null when the credentials are missing or wrong.
 *
 * @example
 * const who = await authenticate(store, adminToken, req.headers.authorization);
 */
export async function authenticate(
  store: ControlPlaneStore,
  adminToken: string,
  header: string | undefined,
): Promise<Principal | null> {
  const c = parseAuthorization(header);
  if (c.kind === 'bearer') {
    if (safeEqual(c.token, adminToken)) return { kind: 'admin' };
    // Looked up by hash: an attacker cannot steer a SHA-256 prefix, so the index lookup leaks nothing useful.
    const hash = hashSecret(c.token);
    const dev = await store.findDeviceBySecretHash(hash);
    return dev ? { kind: 'device', deviceId: dev.id } : null;
  }
  if (c.kind === 'basic') {
    return (await verifyDeviceSecret(store, c.username, c.password))
      ? { kind: 'device', deviceId: c.username }
      : null;
  }
  return null;
}

/**
 * Throws UNAUTHENTICATED / FORBIDDEN unless `p` is one of the allowed kinds.
 *
 * @example
 * requirePrincipal(who, ['admin', 'device']);
 */
export function requirePrincipal(p: Principal | null, allowed: readonly Principal['kind'][]): Principal {
  if (!p) throw new OutpostError('UNAUTHENTICATED', 'missing or invalid credentials');
  if (!allowed.includes(p.kind)) throw new OutpostError('FORBIDDEN', `${p.kind} credentials cannot do this`);
  return p;
}
