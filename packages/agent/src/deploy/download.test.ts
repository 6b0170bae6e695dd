import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { OutpostError } from '@outpost/protocol';
import { downloadArtifact } from './index.ts';

const body = Buffer.from(Array.from({ length: 100_000 }, (_, i) => i % 251));
let url = '';
let endlessClosed = false;
let lastAuth = '';
let dir = '';
let server: ReturnType<typeof createServer>;

function route(req: IncomingMessage, res: ServerResponse): void {
  lastAuth = req.headers.authorization ?? '';
  switch (req.url) {
    case '/ok':
      res.writeHead(200, { 'content-length': String(body.length) });
      res.end(body);
      return;
    case '/endless': {
      // Chunked, no length: only the agent's own byte cap can stop it.
      res.writeHead(200);
      const chunk = Buffer.alloc(64 * 1024, 7);
      const timer = setInterval(() => res.write(chunk), 1);
      res.on('close', () => {
        endlessClosed = true;
        clearInterval(timer);
      });
      return;
    }
    case '/trickle': {
      res.writeHead(200, { 'content-length': String(body.length) });
      const timer = setInterval(() => res.write(body.subarray(0, 1)), 50);
      res.on('close', () => clearInterval(timer));
      return;
    }
    case '/cut':
      res.writeHead(200, { 'content-length': String(body.length) });
      res.write(body.subarray(0, body.length / 2), () => res.destroy());
      return;
    default:
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ code: 'MODEL_UNKNOWN', message: 'no such artifact', retryable: false }));
  }
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'outpost-dl-'));
  server = createServer(route);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

const get = (path: string, expectedSize: number, signal = AbortSignal.timeout(10_000)) => {
  const dest = join(dir, `${path.slice(1)}-${Math.random()}.part`);
  return {
    dest,
    run: downloadArtifact({ url: `${url}${path}`, authorization: 'Basic abc', dest, expectedSize, signal }),
  };
};

async function failsWith(p: Promise<unknown>, code: string, dest: string): Promise<OutpostError> {
  let caught: unknown;
  await p.catch((e: unknown) => (caught = e));
  assert.ok(caught instanceof OutpostError, `expected ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.equal(existsSync(dest), false, 'the temp file is removed');
  return caught;
}

describe('downloadArtifact', () => {
  test('streams to disk with the right hash and sends the credentials', async () => {
    const { dest, run } = get('/ok', body.length);
    const r = await run;
    assert.equal(r.size, body.length);
    assert.equal(r.sha256, createHash('sha256').update(body).digest('hex'));
    assert.deepEqual(readFileSync(dest), body);
    assert.equal(lastAuth, 'Basic abc');
  });

  test('an endless body is cut off at the manifest size', async () => {
    const { dest, run } = get('/endless', 300_000);
    await failsWith(run, 'SIZE_MISMATCH', dest);
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(endlessClosed, 'the connection was dropped');
  });

  test('a declared length other than the manifest size is refused up front', async () => {
    const { dest, run } = get('/ok', body.length - 1);
    await failsWith(run, 'SIZE_MISMATCH', dest);
  });

  test('a trickling transfer fails at the deadline', async () => {
    const { dest, run } = get('/trickle', body.length, AbortSignal.timeout(300));
    await failsWith(run, 'DOWNLOAD_FAILED', dest);
  });

  test('a connection cut half-way is DOWNLOAD_FAILED', async () => {
    const { dest, run } = get('/cut', body.length);
    await failsWith(run, 'DOWNLOAD_FAILED', dest);
  });

  test("an HTTP error carries the server's code", async () => {
    const { dest, run } = get('/missing', 10);
    const e = await failsWith(run, 'DOWNLOAD_FAILED', dest);
    assert.match(e.message, /HTTP 404 MODEL_UNKNOWN/);
  });
});
