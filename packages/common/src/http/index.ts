import { OutpostError, toOutpostError, type ErrorBody } from '@outpost/protocol';

/** The parts of a fastify error that matter for mapping, without importing fastify here. */
interface HttpishError {
  statusCode?: number;
  code?: string;
  message: string;
  validation?: unknown;
}

/**
 * Maps anything thrown in a request handler to `[status, body]` with a registry code, so both HTTP servers
 * (control plane and agent) answer errors the same way. Unknown errors become INTERNAL with a generic
 * message: internals are logged, not returned.
 */
export function httpErrorReply(err: unknown): { status: number; body: ErrorBody; internal: boolean } {
  if (err instanceof OutpostError) return { status: err.status, body: err.toBody(), internal: false };
  const e = err as HttpishError;
  if (e && typeof e === 'object') {
    if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || e.statusCode === 413) {
      return mapped(new OutpostError('PAYLOAD_TOO_LARGE', e.message));
    }
    if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || e.statusCode === 415) {
      return mapped(new OutpostError('VALIDATION_FAILED', e.message));
    }
    if (
      e.validation !== undefined ||
      e.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ||
      e.code === 'FST_ERR_CTP_INVALID_JSON_BODY'
    ) {
      return mapped(new OutpostError('MALFORMED_MESSAGE', e.message));
    }
    if (e instanceof SyntaxError || (typeof e.statusCode === 'number' && e.statusCode === 400)) {
      return mapped(new OutpostError('MALFORMED_MESSAGE', e.message));
    }
  }
  const internal = toOutpostError(err);
  return {
    status: 500,
    body: { code: 'INTERNAL', message: 'internal error', retryable: internal.retryable },
    internal: true,
  };
}

function mapped(e: OutpostError) {
  return { status: e.status, body: e.toBody(), internal: false };
}
