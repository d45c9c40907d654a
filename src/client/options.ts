/**
 * Client options and how their defaults are resolved (explicit option, then environment, then
 * built-in default).
 */
import type { Dispatcher } from 'undici';
import { AstroConfigError, ErrorCodes } from '../core/errors.js';
import { levelledLogger, type Logger, type LogLevel } from '../core/logger.js';
import { registerSecret } from '../core/redact.js';
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
   * undici dispatcher for every API call (proxies, custom TLS, MockAgent).
   * @default undici's global dispatcher, so `setGlobalDispatcher` and test interceptors apply
   */
  dispatcher?: Dispatcher;
  /** Per-try time limit of an API call, in milliseconds. @default 30000 */
  timeoutMs?: number;
  /** Retries after the first try for retryable failures (408, 429, 5xx, connection errors). @default 2 */
  maxRetries?: number;
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
  dispatcher: Dispatcher | undefined;
  timeoutMs: number;
  maxRetries: number;
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
    maxRetries: Math.floor(positiveNumber('maxRetries', options.maxRetries, 2, true)),
    logger: levelledLogger(options.logger, logLevel),
    userAgent: options.userAgent,
  };
}
