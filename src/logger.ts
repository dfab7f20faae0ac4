import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogLevel } from './config.js';

/**
 * Belt and braces: request logs never include bodies, query strings or headers in the first
 * place, and these paths are censored wherever such a field does end up in a log object.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  '*.password',
  '*.client_secret',
  '*.clientSecret',
  '*.secret',
  '*.code_verifier',
  '*.access_token',
  '*.refresh_token',
  '*.id_token',
  '*.token',
  '*.private_jwk',
  'password',
  'client_secret',
  'secret',
  'token',
  'access_token',
  'refresh_token',
  'id_token',
];

/** How long a log line may wait in the buffer before it is written (logs are batched, below). */
export const LOG_FLUSH_INTERVAL_MS = 1_000;

/**
 * Standard output, buffered: lines are written 8 KiB at a time, and at least every second, instead
 * of one system call per line (one per request, the access log's, was a tenth of a token's cost;
 * bench/README.md). pino flushes the buffer when the process exits, whatever ends it; only a
 * SIGKILL loses up to a second of lines.
 */
function bufferedStdout(): DestinationStream {
  const destination = pino.destination({ dest: 1, sync: false, minLength: 8 * 1024 });
  setInterval(() => destination.flush(), LOG_FLUSH_INTERVAL_MS).unref();
  return destination;
}

export function createLogger(level: LogLevel, destination: DestinationStream = bufferedStdout()): Logger {
  return pino(
    {
      level,
      base: { service: 'gatehouse' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
