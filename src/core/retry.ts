/**
 * The one retry policy of the SDK and the one loop that applies it.
 *
 * Every HTTP edge (API transport, blob HTTP, registry client, Docker engine) attaches a
 * {@link Failure} to the errors it throws; the policy decides from that failure, the number of
 * failures in a row and whether progress was made in between whether and when to try again.
 * Modules pass parameters (their defaults, the statuses they can resume after, whether the call
 * is idempotent), never loops of their own. Schedulers that retry parts of a larger operation
 * (the uploader's blocks, the registry's chunks) ask {@link nextRetryDelay} and wait with the
 * shared abortable `sleep`.
 *
 * Why not p-retry: its budget only ever shrinks (`retriesConsumed` is never restored after
 * progress, which the resumable uploads need, as tus-js-client does), and its delay cannot come
 * from the server's `Retry-After`. The loop below is a dozen lines.
 */
import { sleep, throwIfAborted, toAbortError } from './abort.js';
import { safeCall } from './emitter.js';
import { failureOf, isTransientStatus, type Failure } from './failure.js';
import type { Logger } from './logger.js';

export { parseRetryAfter } from './failure.js';

/**
 * How failed requests are retried. The same names on the client, uploads and pushes; each module
 * documents its own defaults. Durations in milliseconds.
 */
export interface RetryOptions {
  /**
   * Failures in a row that are retried; a try that made progress (bytes acknowledged) starts the
   * count again, so long transfers on flaky links are not cut short by earlier, recovered failures.
   * `0` disables retries.
   */
  maxRetries?: number;
  /** First backoff delay before jitter. @default 500 */
  initialDelayMs?: number;
  /** Upper bound of the exponential delay. @default 8000 */
  maxDelayMs?: number;
  /** Longest `Retry-After` the SDK honours; longer requests are capped. @default 60000 */
  maxRetryAfterMs?: number;
}

/** A resolved policy: the caller's {@link RetryOptions} plus what the module knows about the call. */
export interface RetryPolicy extends Required<RetryOptions> {
  /**
   * The call may be repeated after the server may have seen it (GETs, full-body updates, block
   * uploads). A non-idempotent call is retried only when it provably never reached the server
   * (no connection was made) or was refused by rate limiting (429).
   */
  idempotent: boolean;
  /** Statuses worth another try. @default 408, 429 and 5xx except 501 and 505 */
  retryStatus: (status: number) => boolean;
  /**
   * Send the first retry after a connection reset at once (within 100 ms of jitter): a dropped
   * connection says the link is flaky, not that the server is busy (measured to pay off on
   * uploads over resetting links). Later retries back off. @default true
   */
  immediateRetryAfterReset: boolean;
  /** Retries of the whole operation, progress or not. @default Infinity */
  maxTotalRetries: number;
}

/** The SDK-wide backoff defaults; a module may start from its own. */
export const DEFAULT_RETRY: Required<RetryOptions> = {
  maxRetries: 2,
  initialDelayMs: 500,
  maxDelayMs: 8000,
  maxRetryAfterMs: 60_000,
};

/** Jitter of the immediate retry after a reset and of honoured `Retry-After` waits, in ms. */
const SMALL_JITTER_MS = 100;

/**
 * Build a policy: the caller's options over the module's defaults over {@link DEFAULT_RETRY}.
 * Throws `RangeError` for negative or non-numeric values (modules validate user input first and
 * turn it into a typed error).
 */
export function retryPolicy(
  options: RetryOptions | undefined,
  params: Partial<Omit<RetryPolicy, keyof RetryOptions>> & { defaults?: RetryOptions } = {},
): RetryPolicy {
  const merged = { ...DEFAULT_RETRY, ...params.defaults, ...stripUndefined(options ?? {}) };
  for (const [key, value] of Object.entries(merged)) {
    if (typeof value !== 'number' || Number.isNaN(value) || value < 0) throw new RangeError(`retry.${key} must be a non-negative number; got ${String(value)}`);
  }
  return {
    ...merged,
    maxRetries: Math.floor(merged.maxRetries),
    idempotent: params.idempotent ?? true,
    retryStatus: params.retryStatus ?? isTransientStatus,
    immediateRetryAfterReset: params.immediateRetryAfterReset ?? true,
    maxTotalRetries: params.maxTotalRetries ?? Number.POSITIVE_INFINITY,
  };
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * Exponential delay before retry number `retry` (1-based), capped, with "equal jitter" (half
 * fixed, half random) so that many clients failing together do not retry in lock-step.
 */
export function backoffDelay(retry: number, options: Pick<RetryOptions, 'initialDelayMs' | 'maxDelayMs'> = {}, random: () => number = Math.random): number {
  const initial = options.initialDelayMs ?? DEFAULT_RETRY.initialDelayMs;
  const max = options.maxDelayMs ?? DEFAULT_RETRY.maxDelayMs;
  const exp = Math.min(max, initial * 2 ** Math.max(0, retry - 1));
  return Math.round(exp / 2 + (exp / 2) * random());
}

/** Whether `failure` may be retried under `policy`, budget aside. */
export function isRetryable(failure: Failure | undefined, policy: RetryPolicy): boolean {
  if (!failure) return false;
  switch (failure.kind) {
    case 'connect':
      return true;
    case 'status':
      return failure.status !== undefined && policy.retryStatus(failure.status) && (policy.idempotent || failure.status === 429);
    case 'reset':
    case 'timeout':
      return policy.idempotent || !failure.mayHaveReachedServer;
    default:
      return false;
  }
}

/**
 * The wait before retry number `inRow` (1-based, failures in a row since the last progress): the
 * server's `Retry-After` when it sent one (capped), at once after a first reset, else backoff.
 */
export function retryDelay(failure: Failure, inRow: number, policy: RetryPolicy, random: () => number = Math.random): number {
  if (failure.retryAfterMs !== undefined) return Math.min(failure.retryAfterMs, policy.maxRetryAfterMs) + Math.round(random() * SMALL_JITTER_MS);
  if (failure.kind === 'reset' && inRow === 1 && policy.immediateRetryAfterReset) return Math.round(random() * SMALL_JITTER_MS);
  return backoffDelay(inRow, policy, random);
}

/**
 * The policy's whole decision: the delay before the next try, or undefined when the failure is
 * final (not retryable, or the budget of `inRow` failures in a row / `total` retries is spent).
 */
export function nextRetryDelay(failure: Failure | undefined, inRow: number, total: number, policy: RetryPolicy): number | undefined {
  if (!failure || !isRetryable(failure, policy)) return undefined;
  if (inRow > policy.maxRetries || total > policy.maxTotalRetries) return undefined;
  return retryDelay(failure, inRow, policy);
}

/** What a retry looked like, for `retry` events. */
export interface RetryInfo {
  /** 1-based number of the retry about to happen. */
  attempt: number;
  /** How long the SDK waits before it, in milliseconds. */
  delayMs: number;
  /** The error that caused it. */
  error: unknown;
}

/** One try of {@link withRetries}. */
export interface Attempt {
  /** 1-based number of this try. */
  number: number;
  /** Report progress (bytes confirmed): the count of failures in a row starts again. */
  progress(): void;
}

/** Options of {@link withRetries}. */
export interface WithRetriesOptions {
  policy: RetryPolicy;
  signal?: AbortSignal | undefined;
  /** How to read a failure from a thrown error. @default the failure the HTTP edge attached */
  classify?: (error: unknown) => Failure | undefined;
  /** Called before each backoff wait; a throwing callback is ignored. */
  onRetry?: ((info: RetryInfo) => void) | undefined;
  /** Where an ignored callback error is noted (debug). */
  logger?: Logger | undefined;
}

/**
 * Run `fn` until it succeeds or the policy says stop. The error thrown at the end is the last
 * try's error, unchanged; an abort of `signal` ends it with `AstroAbortError`.
 */
export async function withRetries<T>(fn: (attempt: Attempt) => Promise<T>, options: WithRetriesOptions): Promise<T> {
  const { policy, signal } = options;
  const classify = options.classify ?? failureOf;
  let inRow = 0;
  let total = 0;
  for (let number = 1; ; number++) {
    throwIfAborted(signal);
    let progressed = false;
    try {
      return await fn({ number, progress: () => void (progressed = true) });
    } catch (error) {
      if (signal?.aborted) throw toAbortError(signal);
      if (progressed) inRow = 0;
      const delayMs = nextRetryDelay(classify(error), inRow + 1, total + 1, policy);
      if (delayMs === undefined) throw error;
      inRow += 1;
      total += 1;
      safeCall(options.onRetry, options.logger, { attempt: total, delayMs, error });
      await sleep(delayMs, signal);
    }
  }
}
