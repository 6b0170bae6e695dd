import { createHash, createPublicKey } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, rm, stat } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  MAX_MQTT_PAYLOAD,
  OutpostError,
  SEMVER_RE,
  canonicalJson,
  isSafeName,
  keyIdOf,
  parseWith,
  publishModelRequest,
  verifyDocument,
  type ModelVersionSummary,
  type SignedRelease,
} from '@outpost/protocol';
import { commitFile, tempPathFor, type Logger } from '@outpost/common';
import type { ControlPlaneStore, ModelVersionRecord, SigningKeyRecord } from '../store/index.ts';

/**
 * Throws INVALID_NAME unless `name` is a protocol safe name (no `/`, `..`, `%`, ...).
 *
 * @example
 * assertSafeName('../../x', 'model name'); // throws INVALID_NAME
 */
export function assertSafeName(name: string, what: string): void {
  if (!isSafeName(name)) throw new OutpostError('INVALID_NAME', `invalid ${what} ${JSON.stringify(name)}`);
}

/**
 * Throws INVALID_NAME unless `version` is a semantic version (its alphabet is path-safe too).
 *
 * @example
 * assertVersion('1.2.3-rc.1'); // ok
 */
export function assertVersion(version: string): void {
  if (version.length > 64 || !SEMVER_RE.test(version)) {
    throw new OutpostError('INVALID_NAME', `invalid version ${JSON.stringify(version)}`);
  }
}

/**
 * Validates a trusted publisher key and returns it as SPKI PEM with its key id. A private key is refused
 * (node would happily derive the public half from it): private key material must never be stored here.
 *
 * @example
 * const { keyid, publicKeyPem } = normalizePublicKeyPem(pemFromOperator);
 */
export function normalizePublicKeyPem(pem: string): { keyid: string; publicKeyPem: string } {
  if (/PRIVATE KEY/.test(pem)) {
    throw new OutpostError('VALIDATION_FAILED', 'expected an Ed25519 public key, got a private key');
  }
  const keyid = keyIdOf(pem);
  const publicKeyPem = createPublicKey(pem).export({ type: 'spki', format: 'pem' }).toString();
  return { keyid, publicKeyPem };
}

/**
 * The API summary of a stored model version.
 *
 * @example
 * reply.send(toSummary(record));
 */
export function toSummary(m: ModelVersionRecord): ModelVersionSummary {
  return {
    name: m.name,
    version: m.version,
    sha256: m.sha256,
    size: m.size,
    state: m.state,
    createdAt: m.createdAt,
    keyid: m.keyid,
  };
}

// Leave room in an MQTT deploy command for everything around the release.
const MAX_RELEASE_JSON = MAX_MQTT_PAYLOAD - 4096;

/** Counts and hashes bytes as they stream by; fails as soon as the count passes `max`. */
class HashingCounter extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  constructor(
    private readonly max: number,
    private readonly overflow: () => OutpostError,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.max) return cb(this.overflow());
    this.hash.update(chunk);
    cb(null, chunk);
  }
}

/**
 * The model registry: trusted publisher keys, signed releases and their artifacts on disk under
 * `artifactsDir/<name>/<version>.onnx`. A release is stored only after its signature verifies against a
 * trusted key; an artifact becomes `ready` only after its size and SHA-256 match the signed manifest.
 *
 * @example
 * const registry = new ModelRegistry(store, '/var/lib/outpost/artifacts', 512 * 1024 * 1024, log);
 * await registry.publish({ release });
 * await registry.uploadArtifact('mnist', '1.0.0', requestStream, contentLength);
 */
export class ModelRegistry {
  readonly #store: ControlPlaneStore;
  readonly #dir: string;
  readonly #bodyLimit: number;
  readonly #log: Logger;

  constructor(store: ControlPlaneStore, artifactsDir: string, bodyLimit: number, log: Logger) {
    this.#store = store;
    this.#dir = resolve(artifactsDir);
    this.#bodyLimit = bodyLimit;
    this.#log = log;
  }

  /** Adds a trusted publisher key (idempotent); VALIDATION_FAILED unless it is an Ed25519 public key. */
  async addKey(pem: string): Promise<{ keyid: string; created: boolean }> {
    const { keyid, publicKeyPem } = normalizePublicKeyPem(pem);
    const created = await this.#store.addSigningKey({
      keyid,
      publicKeyPem,
      createdAt: new Date().toISOString(),
    });
    if (created) this.#log.info({ keyid }, 'trusted signing key added');
    return { keyid, created };
  }

  listKeys(): Promise<SigningKeyRecord[]> {
    return this.#store.listSigningKeys();
  }

  /**
   * Verifies and stores a signed release as `awaiting-artifact`. Re-publishing the same manifest is
   * idempotent (`created: false`); a different manifest under the same name and version is CONFLICT.
   */
  async publish(body: unknown): Promise<{ created: boolean; record: ModelVersionRecord }> {
    const parsed = parseWith(publishModelRequest, body, 'publish request');
    // The signature covers the bytes the publisher signed, so verify the document as received, not zod's
    // output (which fills defaults and drops unknown keys).
    const rawSigned = (body as { release: { signed: unknown } }).release.signed;
    const keys = await this.#store.listSigningKeys();
    if (keys.length === 0) throw new OutpostError('UNKNOWN_KEY', 'no trusted signing keys are configured');
    const keyids = verifyDocument(
      { signed: rawSigned, signatures: parsed.release.signatures },
      keys.map((k) => k.publicKeyPem),
    );
    // Devices validate the manifest with the same schema; if that changed the signed document, some
    // verifier would see a different document than the one signed. Only normalized manifests are accepted.
    if (canonicalJson(rawSigned) !== canonicalJson(parsed.release.signed)) {
      throw new OutpostError(
        'VALIDATION_FAILED',
        'the signed manifest is not in normalized form (defaults missing or unknown fields); sign the manifest as returned by the protocol schema',
      );
    }
    const envelope: SignedRelease = { signed: parsed.release.signed, signatures: parsed.release.signatures };
    if (Buffer.byteLength(JSON.stringify(envelope)) > MAX_RELEASE_JSON) {
      throw new OutpostError(
        'PAYLOAD_TOO_LARGE',
        'the signed release is too large to send in a deploy command',
      );
    }
    const m = envelope.signed;
    const { created, record } = await this.#store.insertModelVersion({
      name: m.name,
      version: m.version,
      envelope,
      sha256: m.sha256,
      size: m.size,
      state: 'awaiting-artifact',
      keyid: keyids[0] ?? '',
      createdAt: new Date().toISOString(),
    });
    if (!created && canonicalJson(record.envelope.signed) !== canonicalJson(m)) {
      throw new OutpostError(
        'CONFLICT',
        `${m.name}@${m.version} is already published with a different manifest`,
      );
    }
    if (created)
      this.#log.info({ model: m.name, version: m.version, keyid: record.keyid }, 'release published');
    return { created, record };
  }

  /** MODEL_UNKNOWN when the version was never published. */
  async get(name: string, version: string): Promise<ModelVersionRecord> {
    assertSafeName(name, 'model name');
    assertVersion(version);
    const m = await this.#store.getModelVersion(name, version);
    if (!m) throw new OutpostError('MODEL_UNKNOWN', `no model version ${name}@${version}`);
    return m;
  }

  list(): Promise<ModelVersionRecord[]> {
    return this.#store.listModelVersions();
  }

  /** Where the artifact of a validated name/version lives; never outside the artifacts directory. */
  artifactPath(name: string, version: string): string {
    assertSafeName(name, 'model name');
    assertVersion(version);
    const p = resolve(this.#dir, name, `${version}.onnx`);
    if (!p.startsWith(this.#dir + sep))
      throw new OutpostError('INVALID_NAME', 'artifact path escapes the store');
    return p;
  }

  /**
   * Streams an upload to a temp file beside its final place while hashing it, then checks size and SHA-256
   * against the signed manifest: on a mismatch the temp file is deleted (SIZE_MISMATCH / HASH_MISMATCH), else
   * it is fsync'd and renamed into place and the version becomes `ready`. `declaredLength` (Content-Length)
   * lets a wrong-sized upload be refused before a byte is read.
   */
  async uploadArtifact(
    name: string,
    version: string,
    body: Readable,
    declaredLength: number | undefined,
  ): Promise<ModelVersionRecord> {
    const target = this.artifactPath(name, version);
    const m = await this.get(name, version);
    if (m.size > this.#bodyLimit) {
      throw new OutpostError(
        'PAYLOAD_TOO_LARGE',
        `artifact of ${m.size} bytes exceeds the ${this.#bodyLimit}-byte limit`,
      );
    }
    if (declaredLength !== undefined && declaredLength !== m.size) {
      throw new OutpostError(
        'SIZE_MISMATCH',
        `upload is ${declaredLength} bytes, the manifest says ${m.size}`,
      );
    }
    await mkdir(join(this.#dir, name), { recursive: true });
    const tmp = tempPathFor(target);
    const counter = new HashingCounter(
      m.size,
      () => new OutpostError('SIZE_MISMATCH', `upload exceeds the manifest size of ${m.size} bytes`),
    );
    try {
      try {
        await pipeline(body, counter, createWriteStream(tmp, { flags: 'wx', mode: 0o644 }));
      } catch (err) {
        if (err instanceof OutpostError) throw err;
        throw new OutpostError('IO_FAILED', `upload interrupted: ${(err as Error).message}`, { cause: err });
      }
      if (counter.bytes !== m.size) {
        throw new OutpostError(
          'SIZE_MISMATCH',
          `received ${counter.bytes} bytes, the manifest says ${m.size}`,
        );
      }
      const got = counter.hash.digest('hex');
      if (got !== m.sha256) {
        throw new OutpostError('HASH_MISMATCH', `artifact SHA-256 is ${got}, the manifest says ${m.sha256}`);
      }
      const fh = await open(tmp, 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await commitFile(tmp, target);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    await this.#store.markModelVersionReady(name, version);
    this.#log.info({ model: name, version, size: m.size }, 'artifact stored');
    return { ...m, state: 'ready' };
  }

  /** A ready artifact's file and metadata; MODEL_UNKNOWN when not published or not uploaded yet. */
  async openArtifact(name: string, version: string): Promise<{ path: string; size: number; sha256: string }> {
    const path = this.artifactPath(name, version);
    const m = await this.#store.getModelVersion(name, version);
    if (!m || m.state !== 'ready')
      throw new OutpostError('MODEL_UNKNOWN', `no ready artifact for ${name}@${version}`);
    try {
      const st = await stat(path);
      return { path, size: st.size, sha256: m.sha256 };
    } catch (err) {
      throw new OutpostError('IO_FAILED', `artifact of ${name}@${version} is missing on disk`, {
        cause: err,
      });
    }
  }
}
