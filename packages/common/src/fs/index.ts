import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { OutpostError } from '@outpost/protocol';

/** Temp-file name next to `target` so that the final rename stays on one file system (and so is atomic). */
export function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
}

function fsyncDir(dir: string): void {
  // Makes the rename itself durable; directories cannot be fsync'd on every platform, hence the try.
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    /* best effort */
  }
}

/**
 * Writes `data` to `target` so that readers see either the old file or the whole new one, never a part:
 * write to a temp file beside it, fsync, rename over the target, fsync the directory. On failure the temp
 * file is removed and IO_FAILED thrown.
 *
 * @example
 * await atomicWriteFile('/var/lib/outpost/state.json', JSON.stringify(state));
 */
export async function atomicWriteFile(
  target: string,
  data: Uint8Array | string,
  mode = 0o644,
): Promise<void> {
  const tmp = tempPathFor(target);
  try {
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, target);
    fsyncDir(dirname(target));
  } catch (err) {
    await rm(tmp, { force: true });
    throw new OutpostError('IO_FAILED', `could not write ${target}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** Synchronous twin of {@link atomicWriteFile}, for start-up and shutdown paths. */
export function atomicWriteFileSync(target: string, data: Uint8Array | string, mode = 0o644): void {
  const tmp = tempPathFor(target);
  try {
    const fd = openSync(tmp, 'wx', mode);
    try {
      const buf = typeof data === 'string' ? Buffer.from(data) : data;
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, target);
    fsyncDir(dirname(target));
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new OutpostError('IO_FAILED', `could not write ${target}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** Moves an already-complete temp file into place (fsync'd rename). */
export async function commitFile(tmp: string, target: string): Promise<void> {
  await rename(tmp, target);
  fsyncDir(dirname(target));
}
