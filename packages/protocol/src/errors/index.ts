/**
 * The one error registry of Outpost. Every error that crosses a process boundary (HTTP body, MQTT ack,
 * CLI exit) carries one of these stable codes; the HTTP status and the retry hints live here, next to
 * the code, so that server, agent and CLI never disagree on what an error means (the fastify
 * `lib/errors.js` pattern).
 *
 * @example
 * throw new OutpostError('HASH_MISMATCH', `expected ${want}, got ${got}`);
 */

interface ErrorSpec {
  /** HTTP status the server answers with. */
  readonly status: number;
  /** A retry of the same request may succeed (network, busy). */
  readonly retryable: boolean;
  /** The process cannot continue (corrupt state, bad config). */
  readonly fatal: boolean;
  /** One-line meaning, shown by `outpost errors` and in docs. */
  readonly description: string;
}

const spec = (status: number, description: string, retryable = false, fatal = false): ErrorSpec => ({
  status,
  description,
  retryable,
  fatal,
});

export const ERROR_REGISTRY = {
  VALIDATION_FAILED: spec(400, 'input did not match its schema'),
  MALFORMED_MESSAGE: spec(400, 'a message could not be parsed (JSON, protobuf or MQTT payload)'),
  INVALID_NAME: spec(400, 'a model, device or file name is not allowed (path traversal, bad characters)'),
  TENSOR_SHAPE_MISMATCH: spec(400, 'an inference input has the wrong shape, type or size'),
  UNAUTHENTICATED: spec(401, 'missing or invalid credentials'),
  FORBIDDEN: spec(403, 'credentials valid but not allowed to do this'),
  ENROLMENT_TOKEN_INVALID: spec(401, 'bootstrap token unknown, used up or expired'),
  NOT_FOUND: spec(404, 'the resource does not exist'),
  DEVICE_UNKNOWN: spec(404, 'no device with this id'),
  MODEL_UNKNOWN: spec(404, 'no model or model version with this name'),
  NO_ACTIVE_MODEL: spec(503, 'the agent has no active model to serve', true),
  CONFLICT: spec(409, 'the resource already exists or changed concurrently'),
  PAYLOAD_TOO_LARGE: spec(413, 'the body or file exceeds the size cap'),
  ONNX_PARSE_FAILED: spec(422, 'the file is not a valid ONNX model'),
  ONNX_UNSUPPORTED: spec(422, 'the model uses something this operation does not support'),
  SIGNATURE_INVALID: spec(422, 'a signature does not verify'),
  UNKNOWN_KEY: spec(422, 'signed by a key that is not trusted'),
  HASH_MISMATCH: spec(422, 'content hash differs from the manifest'),
  SIZE_MISMATCH: spec(422, 'content length differs from the manifest'),
  DOWNLOAD_FAILED: spec(502, 'an artifact download failed', true),
  UNAVAILABLE: spec(503, 'a service (control plane, agent, broker) could not be reached', true),
  INFERENCE_FAILED: spec(500, 'the runtime failed to run the model'),
  IO_FAILED: spec(500, 'a file-system operation failed', true),
  INTERNAL: spec(500, 'an unexpected error; see the logs'),
  CONFIG_INVALID: spec(500, 'configuration is invalid', false, true),
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_REGISTRY;

export const ERROR_CODES = Object.keys(ERROR_REGISTRY) as ErrorCode[];

/** The JSON shape of an error on the wire (HTTP bodies, MQTT acks). */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
  retryable: boolean;
  details?: unknown;
}

export class OutpostError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly fatal: boolean;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    const s = ERROR_REGISTRY[code];
    this.name = 'OutpostError';
    this.code = code;
    this.status = s.status;
    this.retryable = s.retryable;
    this.fatal = s.fatal;
    this.details = options?.details;
  }

  toBody(): ErrorBody {
    const body: ErrorBody = { code: this.code, message: this.message, retryable: this.retryable };
    if (this.details !== undefined) body.details = this.details;
    return body;
  }
}

export function isErrorCode(x: unknown): x is ErrorCode {
  return typeof x === 'string' && Object.prototype.hasOwnProperty.call(ERROR_REGISTRY, x);
}

/** Wraps anything thrown into an OutpostError, keeping OutpostErrors as they are. */
export function toOutpostError(err: unknown, fallback: ErrorCode = 'INTERNAL'): OutpostError {
  if (err instanceof OutpostError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new OutpostError(fallback, message, { cause: err });
}
