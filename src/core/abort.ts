/**
 * Cancellation helpers: every wait in the SDK goes through {@link sleep} so that an abort cuts a
 * backoff short instead of leaving the caller waiting out the delay.
 */
import { AstroAbortError } from './errors.js';

/** Throw {@link AstroAbortError} (with the signal's reason as `cause`) if `signal` has fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw toAbortError(signal);
}

/** The error the SDK throws for an aborted signal. */
export function toAbortError(signal: AbortSignal): AstroAbortError {
  return new AstroAbortError(undefined, { cause: signal.reason });
}

/** Wait `ms` milliseconds; rejects with {@link AstroAbortError} as soon as `signal` fires. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(toAbortError(signal));
    const onAbort = () => {
      clearTimeout(timer);
      reject(toAbortError(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * A signal that fires when any of `signals` fires. Listeners are removed by `dispose()`, so a
 * long-lived caller signal does not accumulate one listener per request.
 */
export function linkSignals(...signals: Array<AbortSignal | undefined>): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const cleanups: Array<() => void> = [];
  for (const s of signals) {
    if (!s) continue;
    if (s.aborted) {
      controller.abort(s.reason);
      break;
    }
    const onAbort = () => controller.abort(s.reason);
    s.addEventListener('abort', onAbort, { once: true });
    cleanups.push(() => s.removeEventListener('abort', onAbort));
  }
  return {
    signal: controller.signal,
    dispose: () => {
      for (const c of cleanups) c();
    },
  };
}
