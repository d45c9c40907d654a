/**
 * Logging contract. The SDK never writes to the console itself: it calls the `logger` you give it,
 * and only for levels at or above `logLevel`. Every message is redacted before it is passed on.
 */
import { redact, redactDeep } from './redact.js';

/** Severity levels, most verbose last. */
export type LogLevel = 'off' | 'error' | 'warn' | 'info' | 'debug';

/**
 * Where the SDK's log lines go: `console`, winston, pino, bunyan or anything with these four
 * methods, as it is. The SDK calls `logger.warn(message, data)`; a pino or bunyan logger, which
 * takes the data object first, is recognised and called as `logger.warn(data, message)`, so the
 * data lands in its fields instead of being dropped.
 *
 * @example
 * ```ts
 * import pino from 'pino';
 * const client = new AstroClient({ logger: pino(), logLevel: 'info' });
 * ```
 */
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
 * True for loggers whose methods take the data object first, `(data, message)`: pino (its
 * `levels` is `{ values, labels }`) and bunyan (`fields`, and `levels` is a method). Both have
 * `child`. A console-style logger given `(message, data)` keeps both; pino given the same treats
 * `data` as a format argument of a message without placeholders and drops it.
 */
function takesDataFirst(logger: Logger): boolean {
  const l = logger as unknown as { child?: unknown; levels?: unknown; fields?: unknown };
  if (typeof l.child !== 'function') return false;
  const pinoLevels = typeof l.levels === 'object' && l.levels !== null && 'values' in l.levels;
  const bunyan = typeof l.fields === 'object' && l.fields !== null && typeof l.levels === 'function';
  return pinoLevels || bunyan;
}

/**
 * `logger` with each call in the argument order it takes (see {@link takesDataFirst}) and every
 * message and data field redacted. The one place the SDK calls a caller's logger.
 */
export function adaptLogger(logger: Logger): Logger {
  const dataFirst = takesDataFirst(logger);
  const make = (name: Exclude<LogLevel, 'off'>) => (message: string, data?: Record<string, unknown>) => {
    const text = redact(message);
    if (data === undefined) logger[name](text);
    else if (dataFirst) (logger[name] as unknown as (data: Record<string, unknown>, message: string) => void)(redactDeep(data), text);
    else logger[name](text, redactDeep(data));
  };
  return { error: make('error'), warn: make('warn'), info: make('info'), debug: make('debug') };
}

/**
 * Wrap `logger` so calls below `level` are no-ops and every message and data field is redacted.
 */
export function levelledLogger(logger: Logger | undefined, level: LogLevel): Logger {
  if (!logger || level === 'off') return silentLogger;
  const adapted = adaptLogger(logger);
  const make = (name: Exclude<LogLevel, 'off'>) => (ORDER[name] <= ORDER[level] ? adapted[name] : noop);
  return { error: make('error'), warn: make('warn'), info: make('info'), debug: make('debug') };
}
