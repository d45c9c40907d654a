/**
 * The base of the error family ({@link AstroError}, {@link isAstroError}, the redaction of causes)
 * and the errors of any HTTP edge: configuration, API answers, schemas, connections, time-outs and
 * cancellation. The barrel is errors.ts.
 */
import { ErrorCodes, type AstroErrorCode } from './error-codes.js';
import type { AstroErrorFor } from './errors.js';
import { redact } from './redact.js';

const BRAND = Symbol.for('astro-deploy-sdk.error');
const KINDS = Symbol.for('astro-deploy-sdk.error.kinds');

/** Options accepted by every error constructor. */
export interface AstroErrorOptions {
  /** The underlying error; redacted before it is attached. */
  cause?: unknown;
  /** Whether retrying the same operation may succeed. @default false */
  retryable?: boolean;
}

/**
 * Base class of every error thrown by the SDK.
 *
 * @example
 * ```ts
 * try { await client.deployDags({ deploymentId, dagsDir }) }
 * catch (err) { if (isAstroError(err, 'ASTRO_DAG_DEPLOY_DISABLED')) { ... } }
 * ```
 */
export class AstroError extends Error {
  /** Class name used for cross-copy `instanceof`. */
  static readonly kind: string = 'AstroError';
  /** Stable machine-readable code. */
  readonly code: AstroErrorCode;
  /** Whether the operation may succeed if tried again. */
  readonly retryable: boolean;
  /**
   * The deploy record the failed flow had created, on every error a deploy flow raises after
   * creating it: look it up (or finalize it yourself) instead of guessing. Unset otherwise.
   */
  declare readonly deployId?: string;
  /**
   * Set with `deployId`: whether that deploy was finalized before the failure. `false`: it stays
   * `INITIALIZED` and changes nothing, so deploying again is safe; `true`: it is live or rolling
   * out (the failure came while waiting for its rollout or checking its DAGs). Unset when the
   * outcome is unknown (`ASTRO_FINALIZE_UNKNOWN`).
   */
  declare readonly deployFinalized?: boolean;

  constructor(code: AstroErrorCode, message: string, options: AstroErrorOptions = {}) {
    const cause = options.cause === undefined ? undefined : sanitizeCause(options.cause);
    super(redact(message), cause === undefined ? undefined : { cause });
    this.code = code;
    this.retryable = options.retryable ?? false;
    Object.defineProperty(this, BRAND, { value: true });
    const kinds: string[] = [];
    for (let ctor = new.target as unknown; ctor && typeof ctor === 'function'; ctor = Object.getPrototypeOf(ctor)) {
      const kind = (ctor as { kind?: string }).kind;
      if (kind && Object.prototype.hasOwnProperty.call(ctor, 'kind')) kinds.push(kind);
    }
    Object.defineProperty(this, KINDS, { value: Object.freeze(kinds) });
    this.name = (new.target as { kind?: string }).kind ?? 'AstroError';
  }

  /** `instanceof` that also recognises errors created by the other (ESM/CJS) copy of the package. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (!value || typeof value !== 'object') return false;
    const kinds = (value as Record<symbol, unknown>)[KINDS];
    return Array.isArray(kinds) && kinds.includes((this as unknown as { kind: string }).kind);
  }

  /** Plain JSON form (no cause chain), safe to log. */
  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = { name: this.name, code: this.code, message: this.message };
    for (const [k, v] of Object.entries(this)) if (!(k in out)) out[k] = v;
    return out;
  }
}

/**
 * True when `err` is an error from this SDK (from either build), optionally with the given code.
 * With a code it narrows to the class that carries that code (see {@link AstroErrorClassMap}), so
 * its fields type-check: `isAstroError(err, 'ASTRO_ROLLOUT_TIMEOUT') && err.lastState.polls`.
 *
 * @example
 * ```ts
 * try { await client.waitForRollout({ deploymentId, deployId }) }
 * catch (err) { if (isAstroError(err, 'ASTRO_ROLLOUT_TIMEOUT')) console.log(err.lastState.deploymentStatus) }
 * ```
 */
export function isAstroError(err: unknown): err is AstroError;
export function isAstroError<C extends AstroErrorCode>(err: unknown, code: C): err is AstroErrorFor<C>;
export function isAstroError(err: unknown, code?: AstroErrorCode): boolean {
  if (!err || typeof err !== 'object' || (err as Record<symbol, unknown>)[BRAND] !== true) return false;
  return code === undefined || (err as AstroError).code === code;
}

/** Bad options or credentials given to the SDK. Never retryable: fix the input. */
export class AstroConfigError extends AstroError {
  static override readonly kind = 'AstroConfigError';
}

/** One field error from the Astro API error body. */
export interface ApiFieldError {
  code?: string;
  field?: string;
  message?: string;
}

/** Details of a failed HTTP call to the Astro API. */
export interface AstroApiErrorDetails {
  status: number;
  method: string;
  /** Path of the call, without query string. */
  path: string;
  requestId?: string;
  apiMessage?: string;
  fieldErrors?: ApiFieldError[];
  /** Milliseconds the server asked us to wait (from `Retry-After`). */
  retryAfterMs?: number;
}

/** The Astro API answered with a non-success status. */
export class AstroApiError extends AstroError {
  static override readonly kind = 'AstroApiError';
  /** HTTP status code. */
  readonly status: number;
  /** HTTP method of the failed call. */
  readonly method: string;
  /** API path of the failed call (no query string). */
  readonly path: string;
  /** `requestId` from the API error body; quote it to Astronomer support. */
  readonly requestId: string | undefined;
  /** `message` from the API error body. */
  readonly apiMessage: string | undefined;
  /** `fieldErrors` from the API error body, redacted as the message is. */
  readonly fieldErrors: ApiFieldError[];
  /** Server-requested delay before a retry, in milliseconds. */
  readonly retryAfterMs: number | undefined;

  constructor(code: AstroErrorCode, message: string, details: AstroApiErrorDetails, options: AstroErrorOptions = {}) {
    super(code, message, options);
    this.status = details.status;
    this.method = details.method;
    this.path = redact(details.path);
    this.requestId = details.requestId;
    this.apiMessage = details.apiMessage === undefined ? undefined : redact(details.apiMessage);
    // A server may echo what it rejected (a header, a URL) in any field, as in its message.
    this.fieldErrors = (details.fieldErrors ?? []).map(redactFieldError);
    this.retryAfterMs = details.retryAfterMs;
  }
}

function redactFieldError(f: ApiFieldError): ApiFieldError {
  return {
    ...(f.code === undefined ? {} : { code: redact(f.code) }),
    ...(f.field === undefined ? {} : { field: redact(f.field) }),
    ...(f.message === undefined ? {} : { message: redact(f.message) }),
  };
}

/** A response did not match the schema the SDK relies on (the API changed, or a proxy answered). */
export class AstroSchemaError extends AstroError {
  static override readonly kind = 'AstroSchemaError';
  /** Dotted paths of the fields that failed validation. */
  readonly fields: string[];
  /** API path whose response failed validation. */
  readonly path: string;
  constructor(message: string, path: string, fields: string[], options: AstroErrorOptions = {}) {
    super(ErrorCodes.API_SCHEMA, message, options);
    this.fields = fields;
    this.path = path;
  }
}

/** The connection failed (DNS, refused, reset, TLS) before a response arrived. */
export class AstroConnectionError extends AstroError {
  static override readonly kind = 'AstroConnectionError';
  constructor(message: string, options: AstroErrorOptions = {}) {
    super(ErrorCodes.CONNECTION, message, { retryable: true, ...options });
  }
}

/** A single request (or operation) ran past its time limit. */
export class AstroTimeoutError extends AstroError {
  static override readonly kind = 'AstroTimeoutError';
  /** The limit that was exceeded, in milliseconds. */
  readonly timeoutMs: number;
  constructor(message: string, timeoutMs: number, options: AstroErrorOptions = {}) {
    super(ErrorCodes.TIMEOUT, message, { retryable: true, ...options });
    this.timeoutMs = timeoutMs;
  }
}

/** The caller's `AbortSignal` fired. `cause` is the signal's reason. */
export class AstroAbortError extends AstroError {
  static override readonly kind = 'AstroAbortError';
  constructor(message = 'The operation was aborted by the caller.', options: AstroErrorOptions = {}) {
    super(ErrorCodes.ABORTED, message, options);
  }
}

/** Turn anything thrown into something safe to attach as `cause`: redacted message, no secrets. */
export function sanitizeCause(cause: unknown, depth = 0): unknown {
  if (depth > 5) return undefined;
  if (isAstroError(cause)) return cause;
  if (cause instanceof Error) {
    const message = redact(cause.message);
    const inner = (cause as { cause?: unknown }).cause;
    const copy = new Error(message, inner === undefined ? undefined : { cause: sanitizeCause(inner, depth + 1) });
    copy.name = cause.name;
    const code = (cause as { code?: unknown }).code;
    if (typeof code === 'string') (copy as Error & { code?: string }).code = code;
    if (cause.stack) copy.stack = redact(cause.stack);
    return copy;
  }
  if (typeof cause === 'string') return redact(cause);
  if (cause === null || typeof cause !== 'object') return cause;
  try {
    return redact(JSON.stringify(cause));
  } catch {
    return '[unserialisable cause]';
  }
}
