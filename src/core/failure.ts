/**
 * One shape for "a request failed", whatever the edge: the Astro API transport, Azure blob HTTP,
 * the registry client and the Docker engine each map their own errors into a {@link Failure} and
 * attach it to the error they throw. The retry policy reads only this shape, so every edge is
 * retried by the same rules; protocol-specific errors and messages stay in their modules.
 */

/**
 * How a request failed.
 * - `status`: the server answered with a non-success status;
 * - `connect`: no connection was made (refused, DNS, unreachable, connect timeout);
 * - `reset`: the connection dropped before the whole answer arrived;
 * - `timeout`: no (complete) answer within a time limit;
 * - `abort`: the caller cancelled;
 * - `other`: anything else (a programming or protocol error; never retried).
 */
export type FailureKind = 'status' | 'connect' | 'reset' | 'timeout' | 'abort' | 'other';

/** What the retry policy needs to know about a failed request. */
export interface Failure {
  readonly kind: FailureKind;
  /** HTTP status, for `status` failures. */
  readonly status?: number;
  /** How long the server asked us to wait (`Retry-After` / `retry-after-ms`), in milliseconds. */
  readonly retryAfterMs?: number;
  /**
   * Whether the request may have reached the server. False only when it provably did not (no
   * connection was made, or a proxy refused to open the tunnel to it), which is what makes a
   * retry of a non-idempotent call safe.
   */
  readonly mayHaveReachedServer: boolean;
  /** The transport error code (`ECONNRESET`, `UND_ERR_SOCKET`, ...), when there was one. */
  readonly code?: string;
  /**
   * The status an HTTP proxy answered the tunnel request (`CONNECT`) with when it would not open
   * the tunnel: the request never reached the server. A transient status (408, 429, 5xx but 501
   * and 505) makes a `connect` failure, retried like a refused connection; any other (407: the
   * proxy wants credentials) a final `status` failure with that status.
   */
  readonly proxyStatus?: number;
}

const FAILURE = Symbol.for('astro-deploy-sdk.failure');

/** Attach `failure` to `error` (non-enumerable, so it does not show up in JSON or logs) and return `error`. */
export function withFailure<E extends object>(error: E, failure: Failure): E {
  Object.defineProperty(error, FAILURE, { value: failure, enumerable: false, configurable: true });
  return error;
}

/** The failure attached to `error` by an HTTP edge, if any. */
export function failureOf(error: unknown): Failure | undefined {
  if (!error || typeof error !== 'object') return undefined;
  return (error as Record<symbol, Failure | undefined>)[FAILURE];
}

/** Codes that show no connection was made: the server cannot have seen the request. */
const CONNECT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
  // A unix socket (the Docker engine) that is missing or not ours.
  'ENOENT',
  'EACCES',
  'EPERM',
]);
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT', 'ESOCKETTIMEDOUT']);
const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_REQ_RETRY']);

function stringProp(value: unknown, key: string): string | undefined {
  const v = (value as Record<string, unknown> | null | undefined)?.[key];
  return typeof v === 'string' ? v : undefined;
}

/** undici's (7 and 8) error when a proxy answers `CONNECT` with another status than 200. */
const TUNNEL_REFUSED = /^Proxy response \((\d{3})\) !== 200 when HTTP Tunneling/;

/** The status a proxy refused the tunnel with, from the error or its cause; undefined for other errors. */
function tunnelRefusalStatus(error: unknown): number | undefined {
  const message = stringProp(error, 'message') ?? '';
  const match = TUNNEL_REFUSED.exec(message) ?? TUNNEL_REFUSED.exec(stringProp((error as { cause?: unknown } | null)?.cause, 'message') ?? '');
  return match ? Number(match[1]) : undefined;
}

/**
 * Classify an error thrown by an HTTP client (undici, node:http, dockerode) before a complete
 * answer arrived. `timedOut` says the edge's own per-try timer fired; `aborted` that the caller
 * cancelled. Error causes are followed one level, where undici puts the socket error. A proxy
 * that would not open a tunnel is classed by its status (see {@link Failure.proxyStatus}).
 */
export function transportFailure(error: unknown, context: { timedOut?: boolean; aborted?: boolean } = {}): Failure {
  const code = stringProp(error, 'code') ?? stringProp((error as { cause?: unknown } | null)?.cause, 'code');
  const base = code === undefined ? {} : { code };
  if (context.aborted) return { kind: 'abort', mayHaveReachedServer: true, ...base };
  const proxyStatus = tunnelRefusalStatus(error);
  if (proxyStatus !== undefined) {
    // The proxy answered instead of the server, which never saw the request.
    return isTransientStatus(proxyStatus)
      ? { kind: 'connect', mayHaveReachedServer: false, proxyStatus, ...base }
      : { kind: 'status', status: proxyStatus, mayHaveReachedServer: false, proxyStatus, ...base };
  }
  if (code !== undefined && CONNECT_CODES.has(code)) return { kind: 'connect', mayHaveReachedServer: false, ...base };
  if (context.timedOut) return { kind: 'timeout', mayHaveReachedServer: true, ...base };
  const name = stringProp(error, 'name') ?? '';
  if ((code !== undefined && (TIMEOUT_CODES.has(code) || /TIMEOUT/.test(code))) || name === 'TimeoutError') {
    return { kind: 'timeout', mayHaveReachedServer: true, ...base };
  }
  const message = stringProp(error, 'message') ?? '';
  if ((code !== undefined && (RESET_CODES.has(code) || /^E[A-Z]+$/.test(code))) || /other side closed|socket hang up/i.test(message)) {
    return { kind: 'reset', mayHaveReachedServer: true, ...base };
  }
  return { kind: 'other', mayHaveReachedServer: true, ...base };
}

/**
 * What to do about a proxy that would not open a tunnel with `status` (a final
 * {@link Failure.proxyStatus}): one sentence for the error message of any edge.
 */
export function proxyRefusalHint(status: number): string {
  if (status === 407) {
    // No `scheme://user:password@` example: the redaction of error messages would mask it.
    return 'The HTTP proxy wants credentials (407 Proxy Authentication Required): put them in the proxy URL (HTTPS_PROXY, HTTP_PROXY) as user:password@ before its host, or give them to the proxy agent passed as dispatcher.';
  }
  return `The HTTP proxy refused to open a connection (HTTP ${status}), so the request never reached the server: check that the proxy allows CONNECT to that host, or list the host in NO_PROXY.`;
}

/**
 * The {@link proxyRefusalHint} when `failure` is a proxy's final refusal to open a tunnel (407 and
 * the other non-transient statuses), else undefined: the sentence every edge appends instead of
 * its own "check the network" advice, which would send the user the wrong way.
 */
export function finalProxyRefusalHint(failure: Failure | undefined): string | undefined {
  return failure?.proxyStatus !== undefined && failure.kind === 'status' ? proxyRefusalHint(failure.proxyStatus) : undefined;
}

/**
 * Whether another try of the same request later could succeed: no connection, a reset, a time-out
 * or a transient status. What an error's `retryable` says; the retry loop itself uses the policy.
 */
export function isTransientFailure(failure: Failure | undefined): boolean {
  if (!failure) return false;
  if (failure.kind === 'status') return failure.status !== undefined && isTransientStatus(failure.status);
  return failure.kind === 'connect' || failure.kind === 'reset' || failure.kind === 'timeout';
}

type Headers = Record<string, string | string[] | undefined>;

function headerValue(headers: Headers | undefined, name: string): string | undefined {
  const v = headers?.[name];
  return Array.isArray(v) ? v[0] : v;
}

/** A whole number of seconds or milliseconds: decimal digits only (RFC 9110 `delay-seconds`). */
const DIGITS = /^\d+$/;
/**
 * The start of an HTTP-date: a day name, in all three of its forms (IMF-fixdate, RFC 850,
 * asctime). `Date.parse` also takes `1.5` or `-1` as dates (in 2001), which would mean "now".
 */
const HTTP_DATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun)/i;

/**
 * Parse a `Retry-After` value (decimal seconds or an HTTP-date, RFC 9110) into milliseconds;
 * undefined when missing or anything else (`0x10`, `1e3`, `1.5`, `-1`), which `Number` would take.
 */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const raw = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!raw) return undefined;
  if (DIGITS.test(raw)) return Number(raw) * 1000;
  if (!HTTP_DATE.test(raw)) return undefined;
  const date = Date.parse(raw);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/** The wait a response asks for: `retry-after-ms` (used by some gateways) wins over `Retry-After`. */
export function retryAfterFromHeaders(headers: Headers | undefined): number | undefined {
  const ms = headerValue(headers, 'retry-after-ms')?.trim();
  if (ms !== undefined && DIGITS.test(ms)) return Number(ms);
  return parseRetryAfter(headerValue(headers, 'retry-after'));
}

/** The failure of a request answered with a non-success `status`. */
export function statusFailure(status: number, headers?: Headers): Failure {
  const retryAfterMs = retryAfterFromHeaders(headers);
  return { kind: 'status', status, mayHaveReachedServer: true, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) };
}

/**
 * Statuses worth another try by default: proxy and gateway timeouts, throttling and transient
 * server faults. 501 and 505 say the server will never do it, so they are final.
 */
export function isTransientStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status <= 599 && status !== 501 && status !== 505);
}
