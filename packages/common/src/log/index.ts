import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

/**
 * The one logger factory. Level from `OUTPOST_LOG_LEVEL` (default `info`); lines go to stdout, or appended to the
 * file named by `OUTPOST_LOG_FILE` (so a supervisor keeps a process's stdout for its own protocol). Credentials are
 * redacted by path so a secret never reaches a log line even when a whole request or config object is logged.
 *
 * @example
 * const log = createLogger('agent', { deviceId });
 */
export function createLogger(
  name: string,
  bindings: Record<string, unknown> = {},
  opts: LoggerOptions = {},
): Logger {
  const file = process.env.OUTPOST_LOG_FILE;
  const destination = file
    ? pino.destination({ dest: file, append: true, mkdir: true, sync: false })
    : undefined;
  const options: LoggerOptions = {
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
  };
  return (destination ? pino(options, destination) : pino(options)).child(bindings);
}
