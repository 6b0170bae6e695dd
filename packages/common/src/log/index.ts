import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

/**
 * The one logger factory. Level from `OUTPOST_LOG_LEVEL` (default `info`); credentials are redacted by path so
 * a secret never reaches a log line even when a whole request or config object is logged.
 *
 * @example
 * const log = createLogger('agent', { deviceId });
 */
export function createLogger(
  name: string,
  bindings: Record<string, unknown> = {},
  opts: LoggerOptions = {},
): Logger {
  return pino({
    name,
    level: process.env.OUTPOST_LOG_LEVEL ?? 'info',
    redact: {
      paths: [
        '*.password',
        '*.deviceSecret',
        '*.secret',
        '*.token',
        '*.adminToken',
        '*.apiToken',
        '*.bootstrapToken',
        '*.privateKeyPem',
        'req.headers.authorization',
        'headers.authorization',
      ],
      censor: '[redacted]',
    },
    ...opts,
  }).child(bindings);
}
