/**
 * Reading back after a call with side effects whose answer was lost (finalize, a rollback, a
 * deployment update): what the failure says of the outcome ({@link outcomeOf}), and what Astro did
 * learned from its records, never by blindly sending the call again. One loop for all of them:
 * the kernel's backoff, every transient failure read again, until a read shows what the caller
 * looks for or a bound passes. A call whose answer was lost can still be acted on late (after our
 * per-try timeout), so a read that does not show it yet is no proof that it never will.
 */
import { AstroConfigError, ErrorCodes, isAstroError } from '../core/errors.js';
import { failureOf, type Failure } from '../core/failure.js';
import type { Logger } from '../core/logger.js';
import { isRetryable, retryPolicy, withRetries, type RetryOptions } from '../core/retry.js';

/** How long a flow reads back after a call of unknown outcome, by default, in milliseconds. */
export const DEFAULT_CHECK_TIMEOUT_MS = 60_000;

/** The bound on reading back given as option `name`, checked; the default when not given. */
export function checkTimeoutOf(name: string, value: number | undefined): number {
  if (value !== undefined && (typeof value !== 'number' || !(value >= 0) || !Number.isFinite(value))) {
    throw new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, `Option ${name} must be a non-negative number of milliseconds; got ${String(value)}.`);
  }
  return value ?? DEFAULT_CHECK_TIMEOUT_MS;
}

/** Options of {@link readBack}. */
export interface ReadBackOptions<T> {
  /** Bound on the reads, in milliseconds. */
  checkTimeoutMs: number;
  /** The flow's `request.retry` (validated): the backoff between reads, over `defaults`. */
  retry: RetryOptions | undefined;
  /** The client's retry settings. */
  defaults: RetryOptions;
  signal: AbortSignal | undefined;
  logger: Logger | undefined;
  /** What the reads look for; a read without it is read again until the bound. @default any answer */
  until?: (value: T) => boolean;
}

/**
 * What a failed call with side effects (create aside) says of its outcome:
 * - `refused`: Astro answered 4xx other than 408 and 429; the answer stands;
 * - `not-acted`: it never reached Astro (no connection was made) or Astro turned it away (429);
 * - `answered`: Astro answered 5xx or 408, which, per the SDK's policy, it did not act on: one read
 *   of its records tells whether the call is still to be made;
 * - `unknown`: a reset, a timeout, a lost or unreadable answer, or a gateway's 502 or 504: Astro may
 *   have acted, or may still. A gateway answers those when the service behind it failed or was
 *   slow to answer, which says nothing of whether the service acted.
 */
export type CallOutcome = 'refused' | 'not-acted' | 'answered' | 'unknown';

/** The kernel's rule for calls with side effects, used only to ask whether a call was never acted on. */
const ONCE = retryPolicy(undefined, { idempotent: false });

/** Bad Gateway and Gateway Timeout: a gateway's word on a service it could not hear from. */
const GATEWAY_STATUSES = new Set([502, 504]);

/** See {@link CallOutcome}. */
export function outcomeOf(error: unknown): CallOutcome {
  const failure = failureOf(error);
  if (isRetryable(failure, ONCE)) return 'not-acted';
  if (failure?.kind !== 'status' || failure.status === undefined || GATEWAY_STATUSES.has(failure.status)) return 'unknown';
  return failure.status >= 500 || failure.status === 408 ? 'answered' : 'refused';
}

/** A read answered without what the caller looks for: read again after the backoff. */
const NOT_YET: Failure = { kind: 'timeout', mayHaveReachedServer: true };

/**
 * Read until `until` accepts a value (the first answer, without `until`) and resolve with it.
 * When the bound passes first, or a read fails for good (a 401), resolve with the last value read
 * if any read answered, else reject with the last read's error; `AstroAbortError` when `signal`
 * fires.
 */
export async function readBack<T>(read: () => Promise<T>, options: ReadBackOptions<T>): Promise<T> {
  const deadline = performance.now() + options.checkTimeoutMs;
  const policy = retryPolicy({ ...options.retry, maxRetries: Number.POSITIVE_INFINITY }, { defaults: options.defaults, idempotent: true });
  const notYet = new WeakSet<object>();
  let last: { value: T } | undefined;
  try {
    return await withRetries(
      async () => {
        const value = await read();
        if (!options.until || options.until(value)) return value;
        last = { value };
        const error = new Error('not there yet');
        notYet.add(error);
        throw error;
      },
      {
        policy,
        signal: options.signal,
        logger: options.logger,
        classify: (error) => {
          if (performance.now() >= deadline) return undefined;
          return error && typeof error === 'object' && notYet.has(error) ? NOT_YET : failureOf(error);
        },
      },
    );
  } catch (error) {
    if (last && !isAstroError(error, ErrorCodes.ABORTED)) return last.value;
    throw error;
  }
}
