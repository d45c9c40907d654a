/**
 * Client options and how their defaults are resolved (explicit option, then environment, then
 * built-in default).
 */
import type { DispatcherLike } from '../core/dispatcher.js';
import { AstroConfigError, ErrorCodes } from '../core/errors.js';
import { levelledLogger, type Logger, type LogLevel } from '../core/logger.js';
import { registerSecret } from '../core/redact.js';
import type { RetryOptions } from '../core/retry.js';
import { assertSecureUrl } from '../core/url-safety.js';
import { readTokenClaims, type AstroTokenClaims } from './token.js';

/** The public Astro API v1 base URL. */
export const DEFAULT_BASE_URL = 'https://api.astronomer.io/v1';

/** Options of `new AstroClient(options)`. Every field is optional. */
export interface ClientOptions {
  /**
   * Astro API token (Organization, Workspace or Deployment token).
   * @default process.env.ASTRO_API_TOKEN
   */
  token?: string;
  /**
   * Organization the deployments belong to.
   * @default the `organizationId:<id>` entry of the token's `permissions` claim
   */
  organizationId?: string;
  /**
   * API base URL including the version path.
   * @default process.env.ASTRO_API_URL, else `https://api.astronomer.io/v1`
   */
  baseUrl?: string;
  /**
   * undici dispatcher (of undici 7 or 8) for every request of the client: API calls, and the
   * uploads and registry pushes of the deploy flows it starts (proxies, custom TLS, MockAgent).
   * @default with `HTTPS_PROXY`/`HTTP_PROXY` set, an `EnvHttpProxyAgent` that honours them and
   * `NO_PROXY`; else undici's global dispatcher, so `setGlobalDispatcher` and test interceptors apply
   */
  dispatcher?: DispatcherLike;
  /** Per-try time limit of an API call, in milliseconds. @default 30000 */
  timeoutMs?: number;
  /**
   * How failed API calls are retried (the SDK's one retry vocabulary; uploads and pushes take the
   * same names with their own defaults). Retried: 408, 429, 5xx except 501/505, timeouts and
   * connection errors, for calls that are safe to repeat; a call with side effects (create,
   * finalize) only when it provably never reached Astro, or was refused with 429.
   * - `maxRetries`: retries after the first try. @default 2
   * - `initialDelayMs`: backoff before the first retry (doubling, with equal jitter). @default 500
   * - `maxDelayMs`: cap of the backoff. @default 8000
   * - `maxRetryAfterMs`: longest `Retry-After` honoured. @default 60000
   *
   * The first retry after a connection reset goes at once (within 100 ms).
   */
  retry?: RetryOptions;
  /** Where log lines go. The SDK never writes to the console itself. @default no logging */
  logger?: Logger;
  /** Least severe level passed to `logger`. @default process.env.ASTRO_SDK_LOG, else 'warn' */
  logLevel?: LogLevel;
  /** Appended to the SDK's `User-Agent`, e.g. `my-ci-tool/1.2`. */
  userAgent?: string;
  /**
   * Accept a plain `http://` baseUrl to a host that is not loopback. Every API call carries the
   * token as `Authorization: Bearer`, so without TLS anyone on the path can read it: set this only
   * for an internal gateway on a network you trust. Loopback hosts (127.0.0.0/8, `::1`,
   * `localhost`) are always accepted over http. Without it, such a baseUrl is refused at
   * construction with `ASTRO_CONFIG_INVALID_OPTION`, before any request.
   * @default false
   */
  allowInsecureHttp?: boolean;
}

/** Options after defaults are applied. */
export interface ResolvedClientOptions {
  token: string;
  claims: AstroTokenClaims;
  organizationId: string;
  baseUrl: string;
  dispatcher: DispatcherLike | undefined;
  timeoutMs: number;
  /** The client's API retry settings, every field set. */
  retry: Required<RetryOptions>;
  logger: Logger;
  userAgent: string | undefined;
}

const LEVELS: readonly LogLevel[] = ['off', 'error', 'warn', 'info', 'debug'];

function positiveNumber(name: string, value: number | undefined, fallback: number, allowZero = false): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, `Option ${name} must be a ${allowZero ? 'non-negative' : 'positive'} number; got ${value}.`);
  }
  return value;
}

/** The API's retry defaults (see {@link ClientOptions.retry}). */
export const API_RETRY_DEFAULTS: Required<RetryOptions> = { maxRetries: 2, initialDelayMs: 500, maxDelayMs: 8000, maxRetryAfterMs: 60_000 };

const RETRY_KEYS = ['maxRetries', 'initialDelayMs', 'maxDelayMs', 'maxRetryAfterMs'] as const;

/**
 * Check a caller's {@link RetryOptions} (`name` says where it was given) and return it without
 * unset fields. Throws `ASTRO_CONFIG_INVALID_OPTION` for unknown keys and values that are not
 * non-negative numbers.
 */
export function validateRetryOptions(name: string, value: RetryOptions | undefined): RetryOptions {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, `Option ${name} must be an object like { maxRetries, initialDelayMs, maxDelayMs, maxRetryAfterMs }.`);
  }
  const out: RetryOptions = {};
  for (const [key, v] of Object.entries(value)) {
    if (!(RETRY_KEYS as readonly string[]).includes(key)) {
      throw new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, `Unknown option ${name}.${key}; expected one of ${RETRY_KEYS.join(', ')}.`);
    }
    if (v === undefined) continue;
    if (typeof v !== 'number' || Number.isNaN(v) || v < 0 || (key !== 'maxRetries' && !Number.isFinite(v))) {
      throw new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, `Option ${name}.${key} must be a non-negative number; got ${String(v)}.`);
    }
    out[key as (typeof RETRY_KEYS)[number]] = key === 'maxRetries' ? Math.floor(v) : v;
  }
  return out;
}

/** Apply defaults and validate. Throws {@link AstroConfigError} on bad input. */
export function resolveClientOptions(options: ClientOptions = {}, env: NodeJS.ProcessEnv = process.env): ResolvedClientOptions {
  const token = (options.token ?? env.ASTRO_API_TOKEN ?? '').trim();
  if (!token) {
    throw new AstroConfigError(
      ErrorCodes.CONFIG_MISSING_TOKEN,
      'No Astro API token: pass `token` to AstroClient or set ASTRO_API_TOKEN.',
    );
  }
  registerSecret(token);
  const claims = readTokenClaims(token, Date.now(), { allowNonApiToken: options.organizationId !== undefined });
  const organizationId = options.organizationId ?? claims.organizationId;
  if (!organizationId) {
    throw new AstroConfigError(
      ErrorCodes.CONFIG_MISSING_ORGANIZATION,
      'The token names no organization (no `organizationId:` permission). Pass `organizationId` to AstroClient.',
    );
  }
  const baseUrl = options.baseUrl ?? env.ASTRO_API_URL ?? DEFAULT_BASE_URL;
  try {
    const parsed = new URL(baseUrl);
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new Error('protocol');
  } catch {
    throw new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, `baseUrl must be an http(s) URL; got "${baseUrl}".`);
  }
  if (options.allowInsecureHttp !== undefined && typeof options.allowInsecureHttp !== 'boolean') {
    throw new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, `allowInsecureHttp must be a boolean; got ${typeof options.allowInsecureHttp}.`);
  }
  assertSecureUrl(
    baseUrl,
    'The Astro API baseUrl',
    options.allowInsecureHttp === true,
    (message) =>
      new AstroConfigError(
        ErrorCodes.CONFIG_INVALID_OPTION,
        `${message} Every call carries the API token. For an internal gateway you trust, pass allowInsecureHttp: true.`,
      ),
  );
  if ('maxRetries' in options) {
    throw new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, 'Option maxRetries is now retry: { maxRetries }.');
  }
  const envLevel = env.ASTRO_SDK_LOG as LogLevel | undefined;
  const logLevel = options.logLevel ?? (envLevel && LEVELS.includes(envLevel) ? envLevel : 'warn');
  if (!LEVELS.includes(logLevel)) {
    throw new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, `logLevel must be one of ${LEVELS.join(', ')}; got "${logLevel}".`);
  }
  return {
    token,
    claims,
    organizationId,
    baseUrl,
    dispatcher: options.dispatcher,
    timeoutMs: positiveNumber('timeoutMs', options.timeoutMs, 30_000),
    retry: { ...API_RETRY_DEFAULTS, ...validateRetryOptions('retry', options.retry) },
    logger: levelledLogger(options.logger, logLevel),
    userAgent: options.userAgent,
  };
}
