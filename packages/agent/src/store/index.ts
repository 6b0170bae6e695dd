import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { atomicWriteFile, commitFile, type Logger } from '@outpost/common';
import {
  isSafeName,
  OutpostError,
  parseJsonWith,
  safeName,
  semver,
  sha256Hex,
  signedRelease,
  type SignedRelease,
} from '@outpost/protocol';

/**
 * The on-disk model store:
 *
 *   models/<name>/<version>.onnx   verified artifacts (at most the active and the previous one)
 *   models/<name>/state.json       { active, previous }: the live slot, switched atomically (temp+fsync+rename)
 *   models/.incoming/              downloads in progress; wiped at start-up
 *
 * A file only enters `models/<name>/` after its size, hash and ONNX parse were checked, and only becomes
 * active through the state.json rename, so a crash at any point leaves exactly the old or the new model active.
 */

export const versionEntry = z.object({
  version: semver,
  sha256: sha256Hex,
  size: z.number().int().positive(),
  activatedAt: z.iso.datetime(),
  /** The signed release it came from, re-verified at every start-up. */
  release: signedRelease,
});
export type VersionEntry = z.infer<typeof versionEntry>;

export const modelState = z.object({
  schemaVersion: z.literal(1),
  active: versionEntry,
  previous: versionEntry.nullable(),
});
export type ModelState = z.infer<typeof modelState>;

export interface Servable {
  entry: VersionEntry;
  path: string;
  /** True when the active version failed its check and the previous one is served instead. */
  fellBack: boolean;
}

export class ModelStore {
  readonly root: string;
  private readonly incoming: string;
  private readonly log: Logger;

  private constructor(root: string, log: Logger) {
    this.root = root;
    this.incoming = join(root, '.incoming');
    this.log = log;
  }

  /**
   * Opens the store under `dataDir/models`, removing downloads and temp files a crash may have left behind.
   *
   * @example
   * const store = await ModelStore.open('/var/lib/outpost', log);
   * for (const name of await store.listModels()) await store.resolveServable(name, check);
   */
  static async open(dataDir: string, log: Logger): Promise<ModelStore> {
    const store = new ModelStore(join(dataDir, 'models'), log);
    await mkdir(store.root, { recursive: true, mode: 0o700 });
    await rm(store.incoming, { recursive: true, force: true });
    await mkdir(store.incoming, { mode: 0o700 });
    for (const name of await store.listModels()) {
      for (const f of await readdir(store.modelDir(name))) {
        if (f.startsWith('.') && f.endsWith('.tmp')) await rm(join(store.modelDir(name), f), { force: true });
      }
    }
    return store;
  }

  /** A fresh temp path for a download, inside the store so the final rename stays on one file system. */
  incomingPath(): string {
    return join(this.incoming, `${randomUUID()}.part`);
  }

  modelDir(name: string): string {
    if (!isSafeName(name))
      throw new OutpostError('INVALID_NAME', `invalid model name ${JSON.stringify(name)}`);
    return join(this.root, name);
  }

  artifactPath(name: string, version: string): string {
    if (!semver.safeParse(version).success) {
      throw new OutpostError('INVALID_NAME', `invalid model version ${JSON.stringify(version)}`);
    }
    return join(this.modelDir(name), `${version}.onnx`);
  }

  /** Names of the models that have a state.json. */
  async listModels(): Promise<string[]> {
    const names = await readdir(this.root).catch(() => [] as string[]);
    return names
      .filter((n) => safeName.safeParse(n).success && existsSync(join(this.root, n, 'state.json')))
      .sort();
  }

  /** The model's state, or null when it has none. An unreadable state.json is IO_FAILED. */
  readState(name: string): ModelState | null {
    const path = join(this.modelDir(name), 'state.json');
    if (!existsSync(path)) return null;
    try {
      return parseJsonWith(modelState, readFileSync(path), `${name}/state.json`);
    } catch (err) {
      throw new OutpostError('IO_FAILED', `${path} is unreadable: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Moves a verified, fsync'd temp file into `models/<name>/<version>.onnx`. */
  async commit(tmp: string, name: string, version: string): Promise<string> {
    const target = this.artifactPath(name, version);
    await mkdir(this.modelDir(name), { recursive: true, mode: 0o700 });
    await commitFile(tmp, target);
    return target;
  }

  /**
   * Makes `entry` the active version (the old active becomes previous unless it is the same version) and
   * deletes every other version's file. Returns the new state.
   */
  async activate(name: string, release: SignedRelease): Promise<ModelState> {
    const m = release.signed;
    const old = this.readState(name);
    const entry: VersionEntry = {
      version: m.version,
      sha256: m.sha256,
      size: m.size,
      activatedAt: new Date().toISOString(),
      release,
    };
    const previous = old ? (old.active.version === m.version ? old.previous : old.active) : null;
    const state: ModelState = { schemaVersion: 1, active: entry, previous };
    await atomicWriteFile(join(this.modelDir(name), 'state.json'), JSON.stringify(state, null, 2));
    // The switch above is what counts; a failed clean-up only leaves a stale file for the next activation.
    await this.prune(name, state).catch((err: Error) =>
      this.log.warn({ model: name, err: err.message }, 'could not prune old versions'),
    );
    return state;
  }

  /**
   * Picks the version to serve: the active one when its file still hashes to the recorded sha256 and `check`
   * accepts its entry, else the previous one under the same rules. A fallback is made durable (state.json
   * rewritten, the bad file renamed `*.rejected`) so the next deployment does not keep a bad file as previous.
   * Returns null when neither verifies.
   */
  async resolveServable(name: string, check: (entry: VersionEntry) => void): Promise<Servable | null> {
    const state = this.readState(name);
    if (!state) return null;
    const candidates: VersionEntry[] = [state.active, ...(state.previous ? [state.previous] : [])];
    for (const [i, entry] of candidates.entries()) {
      const path = this.artifactPath(name, entry.version);
      const reason = await this.verifyEntry(path, entry, check);
      if (reason === null) {
        if (i > 0) {
          const fixed: ModelState = { schemaVersion: 1, active: entry, previous: null };
          await atomicWriteFile(join(this.modelDir(name), 'state.json'), JSON.stringify(fixed, null, 2));
        }
        return { entry, path, fellBack: i > 0 };
      }
      this.log.error({ model: name, version: entry.version, reason }, 'stored model refused');
      if (existsSync(path)) await rename(path, `${path}.rejected`).catch(() => undefined);
    }
    return null;
  }

  private async verifyEntry(
    path: string,
    entry: VersionEntry,
    check: (e: VersionEntry) => void,
  ): Promise<string | null> {
    try {
      check(entry);
    } catch (err) {
      return (err as Error).message;
    }
    if (!existsSync(path)) return 'file missing';
    const { sha256, size } = await hashFile(path);
    if (size !== entry.size) return `size ${size}, expected ${entry.size}`;
    if (sha256 !== entry.sha256) return `sha256 ${sha256}, expected ${entry.sha256}`;
    return null;
  }

  /** Deletes every file of the model that is neither the active nor the previous version. */
  private async prune(name: string, state: ModelState): Promise<void> {
    const keep = new Set([`${state.active.version}.onnx`, 'state.json']);
    if (state.previous) keep.add(`${state.previous.version}.onnx`);
    const dir = this.modelDir(name);
    for (const f of await readdir(dir)) {
      if (keep.has(f)) continue;
      await rm(join(dir, f), { force: true }).catch((err: Error) =>
        this.log.warn({ file: f, err: err.message }, 'could not remove an old model file'),
      );
    }
  }
}

/**
 * Streams a file through SHA-256 (constant memory, whatever the model size).
 *
 * @example
 * const { sha256, size } = await hashFile('/var/lib/outpost/models/mnist/1.0.0.onnx');
 */
export async function hashFile(path: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), size };
}
