import { createHash } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { OutpostError, toOutpostError } from '@outpost/protocol';

export interface DownloadOptions {
  url: string;
  /** Value of the Authorization header (device Basic credentials). */
  authorization: string;
  /** Temp file to write; removed again on any failure. */
  dest: string;
  /** The manifest's size: the byte cap of the transfer. */
  expectedSize: number;
  /** Aborts the transfer (deadline, shutdown). */
  signal: AbortSignal;
}

export interface DownloadResult {
  sha256: string;
  size: number;
}

/**
 * Streams an artifact into `dest` while hashing it, never holding more than one chunk in memory and never
 * writing more than `expectedSize` bytes: an endless or oversized body is cut off at the cap (SIZE_MISMATCH).
 * The file is fsync'd before returning so a later rename publishes complete bytes. HTTP errors are
 * DOWNLOAD_FAILED carrying the server's code and message.
 *
 * @example
 * const { sha256 } = await downloadArtifact({ url, authorization, dest, expectedSize: m.size, signal });
 */
export async function downloadArtifact(opts: DownloadOptions): Promise<DownloadResult> {
  const local = new AbortController();
  const signal = AbortSignal.any([opts.signal, local.signal]);
  const fh = await open(opts.dest, 'wx', 0o600);
  let ok = false;
  try {
    let res: Response;
    try {
      res = await fetch(opts.url, { headers: { authorization: opts.authorization }, signal });
    } catch (err) {
      throw new OutpostError('DOWNLOAD_FAILED', `GET ${opts.url} failed: ${reason(err, opts.signal)}`, {
        cause: err,
      });
    }
    if (!res.ok) {
      const text = await res.text().catch(() => '');
      throw new OutpostError('DOWNLOAD_FAILED', `GET ${opts.url}: HTTP ${res.status}${serverMessage(text)}`);
    }
    // With a content-encoding the header counts compressed bytes; the streamed count below still applies.
    const declared = res.headers.has('content-encoding')
      ? NaN
      : Number(res.headers.get('content-length') ?? NaN);
    if (Number.isFinite(declared) && declared !== opts.expectedSize) {
      local.abort();
      throw new OutpostError(
        'SIZE_MISMATCH',
        `the server announces ${declared} bytes, the manifest says ${opts.expectedSize}`,
      );
    }
    if (!res.body) throw new OutpostError('DOWNLOAD_FAILED', `GET ${opts.url}: empty body`);
    const hash = createHash('sha256');
    let size = 0;
    try {
      for await (const chunk of res.body) {
        size += chunk.byteLength;
        if (size > opts.expectedSize) {
          local.abort();
          throw new OutpostError(
            'SIZE_MISMATCH',
            `the artifact exceeds the manifest's ${opts.expectedSize} bytes; download aborted`,
          );
        }
        hash.update(chunk);
        await fh.write(chunk);
      }
    } catch (err) {
      if (err instanceof OutpostError) throw err;
      throw new OutpostError('DOWNLOAD_FAILED', `GET ${opts.url} broke off: ${reason(err, opts.signal)}`, {
        cause: err,
      });
    }
    await fh.sync();
    ok = true;
    return { sha256: hash.digest('hex'), size };
  } catch (err) {
    throw toOutpostError(err, 'DOWNLOAD_FAILED');
  } finally {
    await fh.close().catch(() => undefined);
    if (!ok) await rm(opts.dest, { force: true });
  }
}

function reason(err: unknown, signal: AbortSignal): string {
  if (signal.aborted) {
    const r: unknown = signal.reason;
    return r instanceof Error ? r.message : String(r);
  }
  const e = err as Error & { cause?: Error };
  return e.cause?.message ? `${e.message} (${e.cause.message})` : e.message;
}

function serverMessage(text: string): string {
  try {
    const body = JSON.parse(text) as { code?: unknown; message?: unknown };
    if (typeof body.code === 'string') return ` ${body.code}: ${String(body.message ?? '')}`;
  } catch {
    /* not JSON */
  }
  return '';
}
