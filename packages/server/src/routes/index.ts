import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { OutpostError } from '@outpost/protocol';
import { httpErrorReply } from '@outpost/common';
import { authenticate, requirePrincipal, type Principal } from '../auth/index.ts';
import { registerAdminRoutes } from './admin.ts';
import type { RouteDeps } from './deps.ts';
import { registerDeviceRoutes } from './device.ts';

export type { RouteDeps } from './deps.ts';
export { parseRange, type ByteRange } from './range.ts';
export { toDeviceView } from './views.ts';

/** Who may call a route. Routes default to `admin`, so a route added without thought is never open. */
export type AuthLevel = 'none' | 'admin' | 'device-or-admin';

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: AuthLevel;
  }
  interface FastifyRequest {
    principal: Principal | null;
  }
}

/** JSON bodies are manifests and small requests; artifacts bypass this limit (streamed, own cap). */
const JSON_BODY_LIMIT = 4 * 1024 * 1024;

/**
 * Builds the control plane's fastify app: routes, the auth hook and the error mapping to
 * `{ code, message, retryable }`. Not listening yet.
 *
 * @example
 * const app = buildHttpApp(deps);
 * await app.listen({ host: '127.0.0.1', port: 0 });
 */
export function buildHttpApp(deps: RouteDeps): FastifyInstance {
  const log = deps.log.child({ component: 'http' });
  const app = Fastify({
    // pino's own Logger type is narrower than fastify's view of it; the instance is the same.
    loggerInstance: log as FastifyBaseLogger,
    // Per-request lines are logged at debug by the onResponse hook below instead of at info.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: JSON_BODY_LIMIT,
    // Names in paths are validated by the safe-name rules; never let the router normalise them first.
    routerOptions: { ignoreTrailingSlash: false },
  });

  app.decorateRequest('principal', null);

  app.addHook('onRequest', async (req) => {
    const level: AuthLevel = req.routeOptions.config.auth ?? 'admin';
    if (level === 'none') return;
    req.principal = await authenticate(deps.store, deps.adminToken, req.headers.authorization);
    requirePrincipal(req.principal, level === 'admin' ? ['admin'] : ['admin', 'device']);
  });

  app.addHook('onResponse', async (req, reply) => {
    log.debug(
      { method: req.method, url: req.url, status: reply.statusCode, ms: reply.elapsedTime },
      'request',
    );
  });

  app.setErrorHandler(async (err, req, reply) => {
    const r = httpErrorReply(err);
    if (r.internal) log.error({ err, method: req.method, url: req.url }, 'request failed');
    else log.debug({ code: r.body.code, reason: r.body.message, url: req.url }, 'request refused');
    // A refused upload leaves its body unread; closing the connection stops the client sending the rest.
    if (!req.raw.complete) void reply.header('connection', 'close');
    return reply.code(r.status).send(r.body);
  });

  app.setNotFoundHandler({}, async (req, reply) => {
    const e = new OutpostError('NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0] ?? ''}`);
    return reply.code(404).send(e.toBody());
  });

  app.get('/healthz', { config: { auth: 'none' } }, async () => ({ ok: true }));
  registerDeviceRoutes(app, deps);
  registerAdminRoutes(app, deps);
  return app;
}
