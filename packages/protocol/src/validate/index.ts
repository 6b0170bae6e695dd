import type { z } from 'zod';
import { OutpostError } from '../errors/index.ts';

/** Formats zod issues as `path: message; ...` for error messages. */
export function formatIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 8)
    .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
}

/**
 * Validates `value` against `schema`; throws VALIDATION_FAILED (with the issues as details) when it does not fit.
 *
 * @example
 * const body = parseWith(enrolRequest, req.body, 'enrol request');
 */
export function parseWith<S extends z.ZodType>(schema: S, value: unknown, what = 'input'): z.infer<S> {
  const r = schema.safeParse(value);
  if (!r.success) {
    throw new OutpostError('VALIDATION_FAILED', `invalid ${what}: ${formatIssues(r.error)}`, {
      details: r.error.issues.slice(0, 20).map((i) => ({ path: i.path.map(String), message: i.message })),
    });
  }
  return r.data;
}

/** Parses a JSON byte/string payload then validates it; bad JSON is MALFORMED_MESSAGE. */
export function parseJsonWith<S extends z.ZodType>(
  schema: S,
  payload: string | Uint8Array,
  what = 'message',
): z.infer<S> {
  let value: unknown;
  try {
    value = JSON.parse(typeof payload === 'string' ? payload : Buffer.from(payload).toString('utf8'));
  } catch (err) {
    throw new OutpostError('MALFORMED_MESSAGE', `${what} is not valid JSON: ${(err as Error).message}`);
  }
  return parseWith(schema, value, what);
}
