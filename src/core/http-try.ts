/**
 * One try of a small HTTP request whose whole answer is read as text (JSON APIs): the per-try
 * time limit, the caller's signal, and the mapping of a missing answer to a typed error carrying
 * the kernel's {@link Failure}, so that the retry loop (retry.ts) can decide. The status is the
 * caller's to judge: each API words its own errors.
 */
import { linkSignals, throwIfAborted, toAbortError } from './abort.js';
import { httpRequest, type DispatcherLike, type HttpRequestOptions } from './dispatcher.js';
import { AstroConnectionError, AstroTimeoutError } from './errors.js';
import { finalProxyRefusalHint, transportFailure, withFailure } from './failure.js';

/** A whole answer: status, headers and the body as text. */
export interface TextAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** What {@link requestTextOnce} sends, and how its errors are worded. */
export interface TextTry {
  method: NonNullable<HttpRequestOptions['method']>;
  headers: Record<string, string>;
  body?: string | undefined;
  /** Cancels the try: it then rejects with `ASTRO_ABORTED`. */
  signal?: AbortSignal | undefined;
  /** The try's time limit, in milliseconds, from sending to the last byte of the answer. */
  timeoutMs: number;
  /** The dispatcher (see {@link httpRequest}). @default the environment's proxy, else undici's global */
  dispatcher?: DispatcherLike | undefined;
  /** The request in messages, e.g. `GET /deployments/x` or `GET /importErrors on the deployment's Airflow`. */
  what: string;
  /**
   * The sentence after "Could not reach …" and after a time-out: what to check. @default none
   */
  hint?: string;
  /** What could not be reached, e.g. `the Astro API`. */
  peer: string;
}

/**
 * Send one request and read its answer as text, within `timeoutMs`.
 *
 * @throws AstroTimeoutError `ASTRO_TIMEOUT` when the limit passed or undici timed out;
 *   AstroConnectionError `ASTRO_CONNECTION` when no answer came for another reason (treated as a
 *   dropped connection, which idempotent calls retry); AstroAbortError when `signal` fired. Each
 *   carries its {@link Failure}.
 */
export async function requestTextOnce(url: string, t: TextTry): Promise<TextAnswer> {
  throwIfAborted(t.signal);
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(new Error('timeout')), t.timeoutMs);
  const linked = linkSignals(t.signal, timeout.signal);
  const hint = t.hint ? ` ${t.hint}` : '';
  try {
    const res = await httpRequest(url, { method: t.method, headers: t.headers, body: t.body, signal: linked.signal }, t.dispatcher);
    return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
  } catch (error) {
    if (t.signal?.aborted) throw toAbortError(t.signal);
    const failure = transportFailure(error, { timedOut: timeout.signal.aborted });
    if (timeout.signal.aborted) {
      throw withFailure(new AstroTimeoutError(`${t.what} did not answer within ${t.timeoutMs} ms.${hint}`, t.timeoutMs), failure);
    }
    if (failure.kind === 'timeout') {
      throw withFailure(new AstroTimeoutError(`${t.what} timed out (${failure.code ?? 'timeout'}).${hint}`, t.timeoutMs, { cause: error }), failure);
    }
    const proxyHint = finalProxyRefusalHint(failure);
    if (proxyHint !== undefined) {
      // The proxy answered for good (407: it wants credentials): no retry or timeout helps.
      throw withFailure(
        new AstroConnectionError(`Could not reach ${t.peer} for ${t.what}: ${(error as Error).message}. ${proxyHint}`, { cause: error, retryable: false }),
        failure,
      );
    }
    throw withFailure(
      new AstroConnectionError(`Could not reach ${t.peer} for ${t.what}: ${(error as Error).message}.${hint}`, { cause: error }),
      failure.kind === 'other' ? { ...failure, kind: 'reset' } : failure,
    );
  } finally {
    clearTimeout(timer);
    linked.dispose();
  }
}
