import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign as cryptoSign,
  verify as cryptoVerify,
  type KeyObject,
} from 'node:crypto';
import { z } from 'zod';
import { OutpostError } from '../errors/index.ts';

/**
 * Ed25519 signing of JSON documents (manifests, later TUF-style metadata) with node:crypto.
 *
 * A signed document is an envelope `{ signed, signatures: [{ keyid, sig }] }` as TUF uses: the signature covers
 * the canonical JSON of `signed` (keys sorted, no whitespace), so re-serialising the envelope never breaks it.
 * A key id is the SHA-256 of the raw 32-byte public key, hex.
 *
 * @example
 * const keys = generateSigningKeyPair();
 * const env = signDocument(manifest, keys.privateKeyPem);
 * verifyDocument(env, [keys.publicKeyPem]); // returns the keyid that verified
 */

export const signatureEntry = z.object({
  keyid: z.string().regex(/^[0-9a-f]{64}$/),
  sig: z
    .string()
    .regex(/^[A-Za-z0-9+/]+={0,2}$/)
    .max(200),
});
export type SignatureEntry = z.infer<typeof signatureEntry>;

export function signedEnvelope<T extends z.ZodType>(payload: T) {
  return z.object({ signed: payload, signatures: z.array(signatureEntry).min(1).max(16) });
}
export interface SignedEnvelope<T> {
  signed: T;
  signatures: SignatureEntry[];
}

/** Canonical JSON: object keys sorted, no insignificant whitespace; rejects non-finite numbers. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value))
      throw new OutpostError('VALIDATION_FAILED', 'non-finite number in signed JSON');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  throw new OutpostError('VALIDATION_FAILED', `cannot sign a value of type ${typeof value}`);
}

export interface SigningKeyPair {
  keyid: string;
  publicKeyPem: string;
  privateKeyPem: string;
}

export function generateSigningKeyPair(): SigningKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return {
    keyid: keyIdOf(publicKey),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

function loadPublic(pem: string | KeyObject): KeyObject {
  try {
    const k = typeof pem === 'string' ? createPublicKey(pem) : pem;
    if (k.asymmetricKeyType !== 'ed25519') throw new Error(`key type ${k.asymmetricKeyType}`);
    return k;
  } catch (err) {
    throw new OutpostError('VALIDATION_FAILED', `not an Ed25519 public key: ${(err as Error).message}`);
  }
}

function loadPrivate(pem: string | KeyObject): KeyObject {
  try {
    const k = typeof pem === 'string' ? createPrivateKey(pem) : pem;
    if (k.asymmetricKeyType !== 'ed25519') throw new Error(`key type ${k.asymmetricKeyType}`);
    return k;
  } catch (err) {
    // Never echo key material: only the parser's reason.
    throw new OutpostError('VALIDATION_FAILED', `not an Ed25519 private key: ${(err as Error).message}`);
  }
}

/** SHA-256 (hex) of the raw 32-byte Ed25519 public key. */
export function keyIdOf(publicKey: string | KeyObject): string {
  const jwk = loadPublic(publicKey).export({ format: 'jwk' });
  const raw = Buffer.from(jwk.x ?? '', 'base64url');
  return createHash('sha256').update(raw).digest('hex');
}

export function publicKeyFromPrivate(privateKeyPem: string): string {
  return createPublicKey(loadPrivate(privateKeyPem)).export({ type: 'spki', format: 'pem' }).toString();
}

export function signDocument<T>(signed: T, privateKeyPem: string | KeyObject): SignedEnvelope<T> {
  const priv = loadPrivate(privateKeyPem);
  const pub = createPublicKey(priv);
  const sig = cryptoSign(null, Buffer.from(canonicalJson(signed)), priv).toString('base64');
  return { signed, signatures: [{ keyid: keyIdOf(pub), sig }] };
}

/**
 * Verifies that at least `threshold` distinct trusted keys signed the envelope. Each trusted key counts once,
 * however many entries name it. Returns the key ids that verified.
 * Throws UNKNOWN_KEY when no signature comes from a trusted key, SIGNATURE_INVALID when a trusted key's
 * signature does not verify or the threshold is not met.
 */
export function verifyDocument<T>(
  envelope: SignedEnvelope<T>,
  trustedPublicKeys: readonly (string | KeyObject)[],
  threshold = 1,
): string[] {
  const trusted = new Map<string, KeyObject>();
  for (const k of trustedPublicKeys) {
    const key = loadPublic(k);
    trusted.set(keyIdOf(key), key);
  }
  const message = Buffer.from(canonicalJson(envelope.signed));
  const verified = new Set<string>();
  let sawTrusted = false;
  for (const s of envelope.signatures) {
    const key = trusted.get(s.keyid);
    if (!key) continue;
    sawTrusted = true;
    if (cryptoVerify(null, message, key, Buffer.from(s.sig, 'base64'))) verified.add(s.keyid);
  }
  if (!sawTrusted) {
    throw new OutpostError('UNKNOWN_KEY', 'no signature from a trusted key', {
      details: { keyids: envelope.signatures.map((s) => s.keyid) },
    });
  }
  if (verified.size < threshold) {
    throw new OutpostError(
      'SIGNATURE_INVALID',
      `${verified.size} valid signature(s) from trusted keys, ${threshold} required`,
    );
  }
  return [...verified];
}

/** SHA-256 hex of bytes. */
export function sha256Of(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}
