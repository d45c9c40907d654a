/**
 * The one way the SDK calls code it does not own: event listeners, `onRetry` callbacks and
 * output callbacks. Payloads are redacted before they leave, and a listener that throws (or
 * returns a rejected promise) is ignored, noted at debug level, and can never break, delay or
 * change a flow: listeners are observers.
 */
import { adaptLogger, type Logger } from './logger.js';
import { redactDeep } from './redact.js';

/** A listener of events of type `E`. */
export type Listener<E> = (event: E) => void;

/** Emits events of type `E` to a listener through {@link emitterFor}. */
export type Emit<E> = (event: E) => void;

const noop = () => {};

function noteIgnored(logger: Logger | undefined, error: unknown): void {
  try {
    if (logger) adaptLogger(logger).debug('a listener threw; ignored', { error: error instanceof Error ? error.message : String(error) });
  } catch {
    // A logger that throws is ignored too.
  }
}

/**
 * Call `fn(...args)` if it is set, ignoring whatever it throws or rejects with. The only place
 * in the SDK where caller callbacks are invoked.
 */
export function safeCall<A extends unknown[]>(fn: ((...args: A) => unknown) | undefined, logger: Logger | undefined, ...args: A): void {
  if (!fn) return;
  try {
    const result = fn(...args);
    if (result && typeof (result as PromiseLike<unknown>).then === 'function') {
      (result as PromiseLike<unknown>).then(undefined, (error: unknown) => noteIgnored(logger, error));
    }
  } catch (error) {
    noteIgnored(logger, error);
  }
}

/**
 * An emitter for `listener`: each event is deep-copied with every string redacted, then handed
 * over through {@link safeCall}. Without a listener it is a no-op that allocates nothing.
 */
export function emitterFor<E>(listener: Listener<E> | undefined, logger?: Logger): Emit<E> {
  if (!listener) return noop;
  return (event) => safeCall(listener, logger, redactDeep(event));
}

/** An emitter that hands each event to every given emitter, in order. */
export function fanOut<E>(...emitters: Array<Emit<E> | undefined>): Emit<E> {
  const present = emitters.filter((e): e is Emit<E> => e !== undefined);
  return (event) => {
    for (const emit of present) emit(event);
  };
}
