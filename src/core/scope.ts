/**
 * One operation scope for cancellation: the caller's signal linked with the operation's own, and
 * one rule for the error an operation ends with. Parts that run side by side (blocks, layers)
 * share the scope; the first real failure cancels the rest, and at the exit:
 * - once the caller aborted, the result is `AstroAbortError`, whatever the abort caused on the
 *   way out (a destroyed stream, Node's AbortError, a reset, an SDK error);
 * - otherwise the first real failure wins over the cancellations it caused in the other parts.
 */
import { linkSignals, toAbortError } from './abort.js';
import { ErrorCodes, isAstroError } from './errors.js';

/**
 * The error to end with for `error` caught while `signal` may have fired: the exit rule above,
 * without the "first failure" part (for code that runs one thing at a time).
 */
export function abortAware(error: unknown, signal: AbortSignal | undefined): unknown {
  if (!signal?.aborted) return error;
  return isAstroError(error, ErrorCodes.ABORTED) ? error : toAbortError(signal);
}

/** See the module comment. Create with {@link runInScope}, or construct and {@link OperationScope.close}. */
export class OperationScope {
  /** Fires when the caller aborts or a part of the operation failed. Pass it to every request. */
  readonly signal: AbortSignal;
  private readonly own = new AbortController();
  private readonly linked: { signal: AbortSignal; dispose(): void };
  private failure: { error: unknown } | undefined;

  constructor(private readonly callerSignal: AbortSignal | undefined) {
    this.linked = linkSignals(callerSignal, this.own.signal);
    this.signal = this.linked.signal;
  }

  /** True once the caller's signal fired. */
  get callerAborted(): boolean {
    return this.callerSignal?.aborted === true;
  }

  /**
   * Record `error` as the operation's failure (the first one wins; nothing is recorded after the
   * caller aborted) and cancel every other part of the operation.
   */
  fail(error: unknown): void {
    if (!this.failure && !this.callerAborted) this.failure = { error };
    if (!this.own.signal.aborted) this.own.abort(error);
  }

  /** The error the operation ends with, given the error that reached its exit. */
  exitError(error: unknown): unknown {
    if (this.callerAborted) return abortAware(error, this.callerSignal);
    return this.failure ? this.failure.error : error;
  }

  /** Remove the listener from the caller's signal. */
  close(): void {
    this.linked.dispose();
  }
}

/** Run `fn` in a new scope and end it with the scope's exit rule. */
export async function runInScope<T>(signal: AbortSignal | undefined, fn: (scope: OperationScope) => Promise<T>): Promise<T> {
  const scope = new OperationScope(signal);
  try {
    return await fn(scope);
  } catch (error) {
    throw scope.exitError(error);
  } finally {
    scope.close();
  }
}
