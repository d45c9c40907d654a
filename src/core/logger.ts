/**
 * Logging contract. The SDK never writes to the console itself: it calls the `logger` you give it,
 * and only for levels at or above `logLevel`. Every message is redacted before it is passed on.
 */
import { redact, redactDeep } from './redact.js';

/** Severity levels, most verbose last. */
export type LogLevel = 'off' | 'error' | 'warn' | 'info' | 'debug';

/** Anything with console-like methods (console, pino, winston, ...). */
export interface Logger {
  error(message: string, data?: Record<string, unknown>): void;
  warn(message: string, data?: Record<string, unknown>): void;
  info(message: string, data?: Record<string, unknown>): void;
  debug(message: string, data?: Record<string, unknown>): void;
}

const ORDER: Record<LogLevel, number> = { off: 0, error: 1, warn: 2, info: 3, debug: 4 };

const noop = () => {};

/** A logger that drops everything. The default: libraries should be silent unless asked. */
export const silentLogger: Logger = { error: noop, warn: noop, info: noop, debug: noop };

/**
 * Wrap `logger` so calls below `level` are no-ops and every message and data field is redacted.
 */
export function levelledLogger(logger: Logger | undefined, level: LogLevel): Logger {
  if (!logger || level === 'off') return silentLogger;
  const make = (name: Exclude<LogLevel, 'off'>) =>
    ORDER[name] <= ORDER[level]
      ? (message: string, data?: Record<string, unknown>) =>
          data === undefined ? logger[name](redact(message)) : logger[name](redact(message), redactDeep(data))
      : noop;
  return { error: make('error'), warn: make('warn'), info: make('info'), debug: make('debug') };
}
