/**
 * One HTTP call to the Astro API: headers, per-try timeout, retries, error mapping and response
 * validation. Everything the resource methods share lives here so each of them is a few lines.
 */
import type { z } from 'zod';
import type { DispatcherLike } from '../core/dispatcher.js';
import { safeCall } from '../core/emitter.js';
import {
  AstroApiError,
  AstroSchemaError,
  ErrorCodes,
  isAstroError,
  type AstroErrorCode,
} from '../core/errors.js';
import { isTransientStatus, statusFailure, withFailure } from '../core/failure.js';
import { requestTextOnce } from '../core/http-try.js';
import type { Logger } from '../core/logger.js';
import { redact } from '../core/redact.js';
import { retryPolicy, withRetries, type RetryInfo, type RetryOptions } from '../core/retry.js';
import { validateRetryOptions } from './options.js';
import { apiErrorBodySchema } from './schemas.js';
import { SDK_VERSION } from '../version.js';

/** Per-call options accepted by every client method. */
export interface RequestOptions {
  /** Cancels the call, including any backoff wait. */
  signal?: AbortSignal;
  /** Per-try time limit in milliseconds (overrides the client's `timeoutMs`). */
  timeoutMs?: number;
  /** How this call is retried: each field set here overrides the client's `retry` setting. */
  retry?: RetryOptions;
  /**
   * Called before each retry with the attempt number, the delay and the (redacted) error. An
   * exception thrown here is ignored.
   */
  onRetry?: (info: RetryInfo & { method: string; path: string }) => void;
}

/**
 * How safe a call is to repeat.
 * - `idempotent`: GETs and full-body updates; retried on 408, 429, 5xx, timeouts and connection errors.
 * - `once`: calls with side effects (create deploy); retried only when the request provably never
 *   reached the server (connection refused, DNS failure) or was rejected by rate limiting.
 */
export type RetryMode = 'idempotent' | 'once';

/**
 * Everything the transport needs from the client.
 * @internal Exported for the resource classes' signatures; not a stable API.
 */
export interface TransportConfig {
  baseUrl: string;
  token: string;
  dispatcher: DispatcherLike | undefined;
  timeoutMs: number;
  /** The client's retry settings; a call's `retry` is merged over them. */
  retry: RetryOptions;
  logger: Logger;
  userAgent: string | undefined;
}

/**
 * A single API call description.
 * @internal Exported for the resource classes' signatures; not a stable API.
 */
export interface ApiCall<S extends z.ZodType> {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  query?: Record<string, string | number | boolean | string[] | undefined>;
  body?: unknown;
  schema: S;
  retry: RetryMode;
}

const GO_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', ia32: '386', arm: 'arm' };

/** Hints appended to API error messages: what the caller should do next. */
const STATUS_HINTS: Partial<Record<AstroErrorCode, string>> = {
  [ErrorCodes.API_UNAUTHORIZED]: 'Check that ASTRO_API_TOKEN is a valid, unrevoked Astro API token.',
  [ErrorCodes.API_FORBIDDEN]:
    'The token lacks permission here: use a token of the deployment’s organization or workspace with deploy rights.',
  [ErrorCodes.API_NOT_FOUND]: 'Check the deployment ID and that the token belongs to the right organization.',
  [ErrorCodes.API_RATE_LIMITED]: 'Astro is rate limiting this token; retry later.',
  [ErrorCodes.API_SERVER_ERROR]: 'Astro had a server-side problem; retry later.',
  [ErrorCodes.API_REQUEST_TIMEOUT]: 'A proxy or Astro timed the request out; retry, ideally on a faster link.',
  [ErrorCodes.API_BAD_REQUEST]: 'The request was rejected as invalid; see fieldErrors.',
  [ErrorCodes.API_CONFLICT]: 'The resource changed concurrently; re-read it and retry.',
};
/** HTTP 431 keeps the generic code (ASTRO_API_ERROR) but its likely cause is known. */
const HEADERS_TOO_LARGE_HINT = 'The request headers were too large for the server, most likely the API token: check that ASTRO_API_TOKEN holds exactly one token, not several concatenated or with extra text.';

/** The SDK's error code for an HTTP status of the Astro API (also used for the deployment's Airflow API). */
export function codeForStatus(status: number): AstroErrorCode {
  if (status === 400 || status === 422) return ErrorCodes.API_BAD_REQUEST;
  if (status === 401) return ErrorCodes.API_UNAUTHORIZED;
  if (status === 403) return ErrorCodes.API_FORBIDDEN;
  if (status === 404) return ErrorCodes.API_NOT_FOUND;
  if (status === 408) return ErrorCodes.API_REQUEST_TIMEOUT;
  if (status === 409) return ErrorCodes.API_CONFLICT;
  if (status === 429) return ErrorCodes.API_RATE_LIMITED;
  if (status >= 500) return ErrorCodes.API_SERVER_ERROR;
  return ErrorCodes.API_ERROR;
}

function buildUrl(baseUrl: string, path: string, query: ApiCall<z.ZodType>['query']): string {
  const url = new URL(baseUrl.replace(/\/+$/, '') + path);
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value === undefined) continue;
    // Repeated keys ("form, explode" style), as the generated Go client sends them.
    if (Array.isArray(value)) for (const v of value) url.searchParams.append(key, v);
    else url.searchParams.set(key, String(value));
  }
  return url.toString();
}

function describeSchemaIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => (issue.path.length ? issue.path.join('.') : '(root)'));
}

/**
 * Sends API calls for one client configuration.
 * @internal Exported for the resource classes' signatures; use {@link AstroClient}.
 */
export class ApiTransport {
  /** Held in a private field so `util.inspect` / `JSON.stringify` of a client never show it. */
  readonly #token: string;
  private readonly config: Omit<TransportConfig, 'token'>;

  constructor({ token, ...config }: TransportConfig) {
    this.#token = token;
    this.config = config;
  }

  private headers(hasBody: boolean): Record<string, string> {
    const ua = `astro-deploy-sdk/${SDK_VERSION} node/${process.version}`;
    return {
      authorization: `Bearer ${this.#token}`,
      accept: 'application/json',
      'user-agent': this.config.userAgent ? `${ua} ${this.config.userAgent}` : ua,
      'x-astro-client-identifier': 'astro-deploy-sdk',
      'x-astro-client-version': SDK_VERSION,
      'x-client-os-identifier': `${process.platform}-${GO_ARCH[process.arch] ?? process.arch}`,
      ...(hasBody ? { 'content-type': 'application/json' } : {}),
    };
  }

  /**
   * Perform `call` with retries; resolves with the validated response body. The kernel's policy
   * decides (core/retry.ts): the call's `retry` options over the client's, and whether the call
   * may be repeated once it may have reached Astro (`call.retry`).
   */
  async send<S extends z.ZodType>(call: ApiCall<S>, options: RequestOptions = {}): Promise<z.output<S>> {
    const policy = retryPolicy(validateRetryOptions('request.retry', options.retry), {
      defaults: this.config.retry,
      idempotent: call.retry === 'idempotent',
    });
    const { logger } = this.config;
    return withRetries((attempt) => this.tryOnce(call, options, attempt.number), {
      policy,
      signal: options.signal,
      logger,
      onRetry: (info) => {
        logger.warn(`retrying ${call.method} ${call.path} in ${info.delayMs} ms`, {
          attempt: info.attempt,
          error: isAstroError(info.error) ? info.error.code : String(info.error),
        });
        safeCall(options.onRetry, logger, { ...info, method: call.method, path: call.path });
      },
    });
  }

  private async tryOnce<S extends z.ZodType>(call: ApiCall<S>, options: RequestOptions, attempt: number): Promise<z.output<S>> {
    const body = call.body === undefined ? undefined : JSON.stringify(call.body);
    const started = performance.now();
    // The client's dispatcher, else a proxy agent when HTTP(S)_PROXY is set, else the global one.
    const { status, headers, text } = await requestTextOnce(buildUrl(this.config.baseUrl, call.path, call.query), {
      method: call.method,
      headers: this.headers(body !== undefined),
      body,
      signal: options.signal,
      timeoutMs: options.timeoutMs ?? this.config.timeoutMs,
      dispatcher: this.config.dispatcher,
      what: `${call.method} ${call.path}`,
      peer: 'the Astro API',
      hint: 'Check the network and baseUrl, or raise timeoutMs.',
    });
    const durationMs = Math.round(performance.now() - started);
    this.config.logger.info(`${call.method} ${call.path} -> ${status} (${durationMs} ms)`, { attempt });

    if (status < 200 || status > 299) throw this.apiError(call, status, text, headers);

    let json: unknown;
    try {
      json = text.length ? JSON.parse(text) : {};
    } catch (cause) {
      throw new AstroSchemaError(
        `${call.method} ${call.path} answered ${status} with a body that is not JSON. A proxy may be intercepting the call.`,
        call.path,
        ['(root)'],
        { cause },
      );
    }
    const parsed = call.schema.safeParse(json);
    if (!parsed.success) {
      const fields = describeSchemaIssues(parsed.error);
      throw new AstroSchemaError(
        `The Astro API response to ${call.method} ${call.path} does not match what this SDK expects (fields: ${fields.join(', ')}). Upgrade astro-deploy-sdk or report it.`,
        call.path,
        fields,
      );
    }
    return parsed.data;
  }

  private apiError(
    call: ApiCall<z.ZodType>,
    status: number,
    text: string,
    headers: Record<string, string | string[] | undefined>,
  ): AstroApiError {
    let apiMessage: string | undefined;
    let requestId: string | undefined;
    let fieldErrors: AstroApiError['fieldErrors'] | undefined;
    try {
      const parsed = apiErrorBodySchema.safeParse(JSON.parse(text));
      if (parsed.success) {
        apiMessage = parsed.data.message;
        requestId = parsed.data.requestId;
        fieldErrors = parsed.data.fieldErrors?.map((f) => ({
          ...(f.code ? { code: f.code } : {}),
          ...(f.field ? { field: f.field } : {}),
          ...(f.message ? { message: f.message } : {}),
        }));
      }
    } catch {
      // Not JSON: a proxy or load balancer answered. The status alone has to do.
    }
    const code = codeForStatus(status);
    // `retry-after-ms` (milliseconds, used by some gateways) wins over the standard header.
    const failure = statusFailure(status, headers);
    const { retryAfterMs } = failure;
    const reason = apiMessage ? `: ${apiMessage}` : '';
    const hint = status === 431 ? ` ${HEADERS_TOO_LARGE_HINT}` : STATUS_HINTS[code] ? ` ${STATUS_HINTS[code]}` : '';
    const rid = requestId ? ` (requestId ${requestId})` : '';
    const error = new AstroApiError(
      code,
      `${call.method} ${call.path} failed with HTTP ${status}${reason}${rid}.${hint}`,
      {
        status,
        method: call.method,
        path: call.path,
        ...(requestId ? { requestId } : {}),
        ...(apiMessage ? { apiMessage: redact(apiMessage) } : {}),
        ...(fieldErrors ? { fieldErrors } : {}),
        ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
      },
      { retryable: isTransientStatus(status) },
    );
    return withFailure(error, failure);
  }
}
