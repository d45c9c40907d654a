/**
 * The resilience kernel on its own: the retry policy's decisions, the one loop, the operation
 * scope's exit rule, the emitter and the dispatcher chosen from the environment.
 */
import { EnvHttpProxyAgent, ProxyAgent } from 'undici';
import { describe, expect, it, vi } from 'vitest';
import { AstroAbortError, AstroError, ErrorCodes, isAstroError } from '../../src/core/errors.js';
import { emitterFor, safeCall } from '../../src/core/emitter.js';
import { failureOf, finalProxyRefusalHint, isTransientFailure, isTransientStatus, proxyRefusalHint, statusFailure, transportFailure, withFailure, type Failure } from '../../src/core/failure.js';
import { httpRequest } from '../../src/core/dispatcher.js';
import { proxyDispatcherFromEnv, resolveDispatcher } from '../../src/core/dispatcher.js';
import { backoffDelay, isRetryable, nextRetryDelay, parseRetryAfter, retryDelay, retryPolicy, withRetries } from '../../src/core/retry.js';
import { OperationScope, abortAware, runInScope } from '../../src/core/scope.js';
import { registerSecret } from '../../src/core/redact.js';
import { startForwardProxy } from '../helpers/forward-proxy.js';

const fast = { initialDelayMs: 1, maxDelayMs: 2 };
const reset: Failure = { kind: 'reset', mayHaveReachedServer: true, code: 'ECONNRESET' };
const refused: Failure = { kind: 'connect', mayHaveReachedServer: false, code: 'ECONNREFUSED' };
const failing = (failure: Failure) => withFailure(new Error(`failed: ${failure.kind}`), failure);

describe('failure shape', () => {
  it('classifies transport errors by code, following one level of cause', () => {
    expect(transportFailure(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }))).toMatchObject({ kind: 'connect', mayHaveReachedServer: false });
    expect(transportFailure(Object.assign(new Error('x'), { code: 'UND_ERR_CONNECT_TIMEOUT' }))).toMatchObject({ kind: 'connect' });
    expect(transportFailure(Object.assign(new Error('x'), { code: 'UND_ERR_SOCKET' }))).toMatchObject({ kind: 'reset', mayHaveReachedServer: true });
    expect(transportFailure(new Error('fetch failed', { cause: Object.assign(new Error('y'), { code: 'ECONNRESET' }) }))).toMatchObject({ kind: 'reset' });
    expect(transportFailure(new Error('other side closed'))).toMatchObject({ kind: 'reset' });
    expect(transportFailure(Object.assign(new Error('x'), { code: 'UND_ERR_HEADERS_TIMEOUT' }))).toMatchObject({ kind: 'timeout' });
    expect(transportFailure(new Error('x'), { timedOut: true })).toMatchObject({ kind: 'timeout' });
    expect(transportFailure(new Error('x'), { aborted: true })).toMatchObject({ kind: 'abort' });
    expect(transportFailure(new TypeError('bad header'))).toMatchObject({ kind: 'other' });
  });

  it("classes a proxy's refusal to open a tunnel by its status: transient ones as not reaching the server, 407 and the rest as final", async () => {
    // undici's own error, through a real CONNECT proxy on loopback.
    const proxy = await startForwardProxy();
    const agent = new ProxyAgent(proxy.url);
    try {
      const seen: Failure[] = [];
      for (const status of [503, 502, 429, 408, 407, 403, 501]) {
        proxy.refuseTunnels(status);
        const error = await httpRequest('http://127.0.0.1:9/x', { method: 'POST' }, agent).catch((e: unknown) => e);
        expect((error as Error).message).toBe(`Proxy response (${status}) !== 200 when HTTP Tunneling`);
        seen.push(transportFailure(error));
      }
      expect(proxy.stats.refused).toBe(7);
      const once = retryPolicy({}, { idempotent: false });
      for (const f of seen.slice(0, 4)) {
        expect(f).toMatchObject({ kind: 'connect', mayHaveReachedServer: false, code: 'UND_ERR_ABORTED' });
        expect(isRetryable(f, once)).toBe(true);
      }
      for (const f of seen.slice(4)) {
        expect(f).toMatchObject({ kind: 'status', status: f.proxyStatus, mayHaveReachedServer: false });
        expect(isRetryable(f, retryPolicy({}))).toBe(false);
      }
      expect(seen.map((f) => f.proxyStatus)).toEqual([503, 502, 429, 408, 407, 403, 501]);
    } finally {
      await agent.close();
      await proxy.close();
    }
    // As the cause of a wrapping error (fetch), too; an abort of the caller stays an abort.
    const refusal = Object.assign(new Error('Proxy response (407) !== 200 when HTTP Tunneling'), { code: 'UND_ERR_ABORTED' });
    expect(transportFailure(new TypeError('fetch failed', { cause: refusal }))).toMatchObject({ kind: 'status', status: 407, proxyStatus: 407 });
    expect(transportFailure(refusal, { aborted: true })).toMatchObject({ kind: 'abort' });
    expect(proxyRefusalHint(407)).toMatch(/credentials.*407 Proxy Authentication Required/);
    expect(proxyRefusalHint(403)).toMatch(/refused to open a connection \(HTTP 403\)/);
    // What an error's `retryable` and message say follow the same classes.
    expect(finalProxyRefusalHint(transportFailure(refusal))).toBe(proxyRefusalHint(407));
    expect(finalProxyRefusalHint({ kind: 'connect', proxyStatus: 503, mayHaveReachedServer: false })).toBeUndefined();
    expect(finalProxyRefusalHint(statusFailure(407))).toBeUndefined();
    expect(isTransientFailure(transportFailure(refusal))).toBe(false);
    expect(isTransientFailure({ kind: 'connect', proxyStatus: 503, mayHaveReachedServer: false })).toBe(true);
    expect([503, 429, 408, 501, 400].map((s) => isTransientFailure(statusFailure(s)))).toEqual([true, true, true, false, false]);
    expect(isTransientFailure({ kind: 'other', mayHaveReachedServer: true })).toBe(false);
  });

  it('reads retry-after-ms before Retry-After, in seconds or as a date', () => {
    expect(statusFailure(503, { 'retry-after': '2' }).retryAfterMs).toBe(2000);
    expect(statusFailure(503, { 'retry-after-ms': '150', 'retry-after': '2' }).retryAfterMs).toBe(150);
    const date = new Date(Date.now() + 5000).toUTCString();
    expect(statusFailure(429, { 'retry-after': date }).retryAfterMs).toBeGreaterThan(3000);
    expect(statusFailure(500, { 'retry-after': 'soon' }).retryAfterMs).toBeUndefined();
  });

  it('takes Retry-After only as decimal seconds or an HTTP-date (RFC 9110), and retry-after-ms only as decimal digits', () => {
    const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');
    expect(parseRetryAfter('16', now)).toBe(16_000);
    expect(parseRetryAfter(' 7 ', now)).toBe(7000);
    expect(parseRetryAfter('0', now)).toBe(0);
    // Number() takes these; Date.parse takes some as dates in 2001, which would mean "at once".
    for (const odd of ['0x10', '0b11', '1e3', '1.5', '-1', '+5', 'Infinity', '5s']) expect(parseRetryAfter(odd, now)).toBeUndefined();
    for (const date of ['Wed, 21 Oct 2015 07:28:30 GMT', 'Wednesday, 21-Oct-15 07:28:30 GMT']) expect(parseRetryAfter(date, now)).toBe(30_000);
    // asctime names no zone, so Date.parse reads it in local time: some wait, whatever the zone.
    expect(parseRetryAfter('Wed Oct 21 07:28:30 2015', now)).toBeTypeOf('number');
    expect(parseRetryAfter('Tue, 20 Oct 2015 07:28:00 GMT', now)).toBe(0);
    expect(statusFailure(503, { 'retry-after-ms': '0x10', 'retry-after': '2' }).retryAfterMs).toBe(2000);
    expect(statusFailure(503, { 'retry-after-ms': '1.5' }).retryAfterMs).toBeUndefined();
  });

  it('treats 408, 429 and 5xx as transient, except 501 and 505', () => {
    expect([408, 429, 500, 502, 503, 504, 599].every(isTransientStatus)).toBe(true);
    expect([400, 401, 403, 404, 409, 413, 501, 505].some(isTransientStatus)).toBe(false);
  });

  it('keeps the failure off JSON and enumeration', () => {
    const err = failing(reset);
    expect(failureOf(err)).toBe(reset);
    expect(Object.keys(err)).toEqual([]);
    expect(failureOf('nope')).toBeUndefined();
  });
});

describe('retry policy', () => {
  it('never retries a non-idempotent call that may have reached the server, except on 429', () => {
    const once = retryPolicy({}, { idempotent: false });
    expect(isRetryable(reset, once)).toBe(false);
    expect(isRetryable({ kind: 'timeout', mayHaveReachedServer: true }, once)).toBe(false);
    expect(isRetryable(statusFailure(503), once)).toBe(false);
    expect(isRetryable(statusFailure(429), once)).toBe(true);
    expect(isRetryable(refused, once)).toBe(true);
    const idem = retryPolicy({});
    expect(isRetryable(reset, idem)).toBe(true);
    expect(isRetryable(statusFailure(404), idem)).toBe(false);
    expect(isRetryable({ kind: 'other', mayHaveReachedServer: true }, idem)).toBe(false);
    expect(isRetryable({ kind: 'abort', mayHaveReachedServer: true }, idem)).toBe(false);
  });

  it('lets a module widen the statuses (uploads retry 413 with smaller blocks)', () => {
    const upload = retryPolicy({}, { retryStatus: (s) => isTransientStatus(s) || s === 413 });
    expect(isRetryable(statusFailure(413), upload)).toBe(true);
    expect(isRetryable(statusFailure(413), retryPolicy({}))).toBe(false);
  });

  it('sends the first retry after a reset at once, backs off after that, and honours Retry-After with a cap', () => {
    const policy = retryPolicy({ initialDelayMs: 400, maxDelayMs: 10_000, maxRetryAfterMs: 1000 });
    const half = () => 0.5;
    expect(retryDelay(reset, 1, policy, half)).toBe(50);
    expect(retryDelay(reset, 2, policy, half)).toBe(600); // 800 exp: 400 fixed + 200 jitter
    expect(retryDelay(statusFailure(503), 1, policy, half)).toBe(300);
    expect(retryDelay(statusFailure(503, { 'retry-after': '30' }), 1, policy, half)).toBe(1050);
    expect(retryDelay(reset, 1, retryPolicy({ initialDelayMs: 400 }, { immediateRetryAfterReset: false }), half)).toBe(300);
  });

  it('caps the exponential delay', () => {
    expect(backoffDelay(20, { initialDelayMs: 100, maxDelayMs: 1000 }, () => 1)).toBe(1000);
  });

  it('stops when the failures in a row or the total run out', () => {
    const policy = retryPolicy({ maxRetries: 2 }, { maxTotalRetries: 3 });
    expect(nextRetryDelay(reset, 2, 2, policy)).toBeDefined();
    expect(nextRetryDelay(reset, 3, 3, policy)).toBeUndefined();
    expect(nextRetryDelay(reset, 1, 4, policy)).toBeUndefined();
    expect(nextRetryDelay(undefined, 1, 1, policy)).toBeUndefined();
  });

  it('refuses negative settings', () => {
    expect(() => retryPolicy({ maxRetries: -1 })).toThrow(RangeError);
    expect(() => retryPolicy({ initialDelayMs: Number.NaN })).toThrow(RangeError);
  });
});

describe('withRetries', () => {
  it('retries retryable failures and returns the first success', async () => {
    const onRetry = vi.fn();
    let calls = 0;
    const result = await withRetries(
      async () => {
        calls += 1;
        if (calls < 3) throw failing(statusFailure(503));
        return 'done';
      },
      { policy: retryPolicy({ ...fast, maxRetries: 5 }), onRetry },
    );
    expect(result).toBe('done');
    expect(calls).toBe(3);
    expect(onRetry.mock.calls.map(([info]) => info.attempt)).toEqual([1, 2]);
  });

  it('throws the last error unchanged when the budget is spent or the failure is final', async () => {
    const last = failing(statusFailure(503));
    await expect(withRetries(async () => { throw last; }, { policy: retryPolicy({ ...fast, maxRetries: 1 }) })).rejects.toBe(last);
    const final = failing(statusFailure(400));
    let calls = 0;
    await expect(withRetries(async () => { calls++; throw final; }, { policy: retryPolicy(fast) })).rejects.toBe(final);
    expect(calls).toBe(1);
  });

  it('restores the budget of failures in a row when a try made progress', async () => {
    // maxRetries 1: without progress the 2nd failure in a row is final; with progress before each
    // failure, eight failures in all are survived.
    let calls = 0;
    const result = await withRetries(
      async ({ progress }) => {
        calls += 1;
        if (calls <= 8) {
          progress();
          throw failing(statusFailure(503));
        }
        return calls;
      },
      { policy: retryPolicy({ ...fast, maxRetries: 1 }) },
    );
    expect(result).toBe(9);
    calls = 0;
    await expect(
      withRetries(async () => { calls++; throw failing(reset); }, { policy: retryPolicy({ ...fast, maxRetries: 1 }) }),
    ).rejects.toThrow('failed: reset');
    expect(calls).toBe(2);
  });

  it('ignores an onRetry callback that throws', async () => {
    let calls = 0;
    const result = await withRetries(
      async () => {
        if (++calls === 1) throw failing(reset);
        return 'ok';
      },
      { policy: retryPolicy(fast), onRetry: () => { throw new Error('listener bug'); } },
    );
    expect(result).toBe('ok');
  });

  it('ends with AstroAbortError when aborted during a backoff wait', async () => {
    const controller = new AbortController();
    const promise = withRetries(async () => { throw failing(statusFailure(503)); }, {
      policy: retryPolicy({ initialDelayMs: 60_000, maxDelayMs: 60_000 }),
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(), 20);
    const started = Date.now();
    const err = await promise.catch((e: unknown) => e);
    expect(isAstroError(err, ErrorCodes.ABORTED)).toBe(true);
    expect(Date.now() - started).toBeLessThan(2000);
  });
});

describe('operation scope', () => {
  it('once the caller aborted, ends with AstroAbortError whatever the abort caused', async () => {
    const controller = new AbortController();
    const err = await runInScope(controller.signal, async () => {
      controller.abort();
      throw new AstroError(ErrorCodes.UPLOAD_FAILED, 'a reset the abort caused');
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AstroAbortError);
  });

  it('without an abort, the first real failure wins over the cancellations it caused', async () => {
    const first = new AstroError(ErrorCodes.UPLOAD_REJECTED, 'the real failure');
    const err = await runInScope(undefined, async (scope) => {
      const parts = [
        (async () => {
          await new Promise((r) => setTimeout(r, 5));
          scope.fail(first);
          throw first;
        })(),
        new Promise((_, reject) => scope.signal.addEventListener('abort', () => reject(new AstroAbortError()))),
      ];
      const settled = await Promise.allSettled(parts);
      throw (settled[1] as PromiseRejectedResult).reason;
    }).catch((e: unknown) => e);
    expect(err).toBe(first);
  });

  it('a failure recorded after the caller aborted does not replace the abort', () => {
    const controller = new AbortController();
    const scope = new OperationScope(controller.signal);
    controller.abort();
    scope.fail(new Error('late'));
    expect(scope.exitError(new Error('late'))).toBeInstanceOf(AstroAbortError);
    scope.close();
  });

  it('abortAware keeps an SDK abort and leaves errors alone without an abort', () => {
    const e = new Error('x');
    expect(abortAware(e, undefined)).toBe(e);
    const c = new AbortController();
    c.abort();
    const own = new AstroAbortError();
    expect(abortAware(own, c.signal)).toBe(own);
    expect(abortAware(e, c.signal)).toBeInstanceOf(AstroAbortError);
  });
});

describe('emitter', () => {
  it('redacts payloads and ignores listeners that throw or reject', async () => {
    registerSecret('kernel-test-secret-value');
    const seen: unknown[] = [];
    const debug = vi.fn();
    const logger = { error: vi.fn(), warn: vi.fn(), info: vi.fn(), debug };
    const emit = emitterFor<{ type: string; message: string }>((event) => {
      seen.push(event);
      throw new Error('listener bug');
    }, logger);
    expect(() => emit({ type: 'x', message: 'token kernel-test-secret-value here' })).not.toThrow();
    expect(seen).toEqual([{ type: 'x', message: 'token [REDACTED] here' }]);
    expect(debug).toHaveBeenCalledTimes(1);
    safeCall(async () => { throw new Error('async bug'); }, logger);
    await new Promise((r) => setTimeout(r, 1));
    expect(debug).toHaveBeenCalledTimes(2);
  });

  it('is a no-op without a listener', () => {
    expect(() => emitterFor(undefined)({ type: 'x' })).not.toThrow();
  });
});

describe('dispatcher', () => {
  it('uses the given dispatcher, else a proxy agent when a proxy variable is set, else the global one', () => {
    const given = new EnvHttpProxyAgent();
    expect(resolveDispatcher(given)).toBe(given);
    expect(proxyDispatcherFromEnv({})).toBeUndefined();
    const env = { HTTP_PROXY: 'http://127.0.0.1:9' };
    const agent = proxyDispatcherFromEnv(env);
    expect(agent).toBeInstanceOf(EnvHttpProxyAgent);
    expect(proxyDispatcherFromEnv(env)).toBe(agent);
    expect(proxyDispatcherFromEnv({ HTTPS_PROXY: 'http://127.0.0.1:9' })).not.toBe(agent);
    void given.close();
  });
});
