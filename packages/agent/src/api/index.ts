import { createHash, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import Fastify, { type FastifyInstance } from 'fastify';
import { httpErrorReply, type Logger } from '@outpost/common';
import {
  inferenceRequest,
  isSafeName,
  OutpostError,
  parseWith,
  type AgentStatusResponse,
  type InferenceResponse,
} from '@outpost/protocol';
import type { LiveModels } from '../runtime/index.ts';
import type { TelemetryCollector } from '../telemetry/index.ts';

export interface ApiOptions {
  host: string;
  port: number;
  /** Bearer token every route but /healthz requires; never logged. */
  token: string;
  bodyLimit: number;
  live: LiveModels;
  telemetry: TelemetryCollector;
  status: () => AgentStatusResponse;
  log: Logger;
}

export interface RunningApi {
  url: string;
  close(): Promise<void>;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/**
 * The agent's local HTTP API (fastify): `GET /healthz` (open), `GET /v1/status` and
 * `POST /v1/models/:name/infer` (bearer token). Errors are registry bodies via httpErrorReply; a bad request
 * never takes the process down.
 *
 * @example
 * const api = await startApi({ host: '127.0.0.1', port: 0, token, bodyLimit: 1 << 25, live, telemetry, status, log });
 * await fetch(`${api.url}/v1/status`, { headers: { authorization: `Bearer ${token}` } });
 */
export async function startApi(opts: ApiOptions): Promise<RunningApi> {
  const app = buildApi(opts);
  await app.listen({ host: opts.host, port: opts.port });
  const addr = app.server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return { url: `http://${host}:${addr.port}`, close: () => app.close() };
}

/**
 * The fastify instance behind {@link startApi}, not yet listening (for `inject()`-style use).
 *
 * @example
 * const app = buildApi(opts);
 * await app.listen({ port: 0 });
 */
export function buildApi(opts: ApiOptions): FastifyInstance {
  const { live, telemetry, log } = opts;
  const app = Fastify({ logger: false, bodyLimit: opts.bodyLimit });
  const want = digest(opts.token);

  app.addHook('onRequest', async (req, reply) => {
    if (req.url === '/healthz' || req.url.startsWith('/healthz?')) return;
    const header = req.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    // Compare digests in constant time so the token cannot be guessed byte by byte from response timing.
    if (!m || !timingSafeEqual(digest(m[1] ?? ''), want)) {
      reply.header('www-authenticate', 'Bearer');
      throw new OutpostError('UNAUTHENTICATED', header ? 'invalid API token' : 'missing bearer token');
    }
  });

  app.setErrorHandler((err, req, reply) => {
    const { status, body, internal } = httpErrorReply(err);
    if (internal) log.error({ err: (err as Error).message, url: req.url }, 'request failed');
    else log.debug({ code: body.code, url: req.url }, 'request refused');
    void reply.code(status).send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send(new OutpostError('NOT_FOUND', `no route ${req.method} ${req.url}`).toBody());
  });

  app.get('/healthz', async () => ({ ok: true }));

  app.get('/v1/status', async () => opts.status());

  app.post<{ Params: { name: string } }>(
    '/v1/models/:name/infer',
    async (req): Promise<InferenceResponse> => {
      const t0 = performance.now();
      const { name } = req.params;
      if (!isSafeName(name))
        throw new OutpostError('INVALID_NAME', `invalid model name ${JSON.stringify(name)}`);
      const model = live.get(name);
      if (!model) {
        if (live.isUnavailable(name)) {
          throw new OutpostError(
            'NO_ACTIVE_MODEL',
            `model ${name} is installed but no verified version can be served`,
          );
        }
        throw new OutpostError('MODEL_UNKNOWN', `no model named ${name} on this device`);
      }
      try {
        const body = parseWith(inferenceRequest, req.body, 'inference request');
        const { outputs, inferMs } = await model.runtime.infer(body.inputs);
        telemetry.record(model.name, model.version, inferMs);
        return {
          model: { name: model.name, version: model.version },
          outputs,
          timings: { inferMs, totalMs: performance.now() - t0 },
        };
      } catch (err) {
        telemetry.recordError(model.name, model.version);
        throw err;
      }
    },
  );

  return app;
}
