/**
 * The uploader on the SDK's resilience kernel, against the fake blob service through the fault
 * proxy: listeners cannot break an upload, an abort that races a failure ends as ASTRO_ABORTED,
 * and requests go through the caller's dispatcher, or through HTTP_PROXY when none is given, and
 * are sent again when that proxy refuses a tunnel for a while.
 */
import { ProxyAgent } from 'undici';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isAstroError } from '../../src/core/errors.js';
import type { Logger } from '../../src/core/logger.js';
import { startFakeBlobServer, type FakeBlobServer } from '../../src/testing/fake-blob.js';
import { createFaultProxy, type FaultProxy } from '../../src/testing/fault-proxy.js';
import { uploadBlockBlob, type UploadBlockBlobOptions } from '../../src/upload/index.js';
import { AbortOnStatusAgent, CountingAgent } from '../helpers/dispatchers.js';
import { startForwardProxy, withProxyEnv, type ForwardProxy } from '../helpers/forward-proxy.js';
import { EventLog, FAST, KIB, MIB, payload, sameBytes, tempDir } from './helpers.js';

let fake: FakeBlobServer;
let proxy: FaultProxy;
let forward: ForwardProxy;
let journal: { dir: string; cleanup: () => Promise<void> };
let counter = 0;

beforeAll(async () => {
  fake = await startFakeBlobServer();
  proxy = await createFaultProxy({ target: fake.url });
  forward = await startForwardProxy();
});
afterAll(async () => {
  await forward.close();
  await proxy.close();
  await fake.close();
});
beforeEach(async () => {
  proxy.faults.clear();
  proxy.resetStats();
  forward.resetStats();
  forward.refuseTunnels(0, 0);
  journal = await tempDir('upload-journal-');
});
afterEach(async () => {
  await journal.cleanup();
});

function newBlob() {
  const name = `kernel-${++counter}/bundle.tar.gz`;
  return { name, url: fake.service.sasUrl(proxy.url, 'dags', name, { permissions: 'cw' }) };
}

function opts(extra: UploadBlockBlobOptions = {}): UploadBlockBlobOptions {
  return { ...FAST, journalDir: journal.dir, ...extra, retry: { ...FAST.retry, ...extra.retry } };
}

describe('uploadBlockBlob on the resilience kernel', () => {
  it('ignores a listener that throws (or rejects) on every event, and completes', async () => {
    const blob = newBlob();
    const data = payload(3 * MIB + 11, 41);
    // Faults so that retry and block-size events fire too.
    proxy.faults.add({ route: 'blob.putBlock', nth: 2, action: { kind: 'status', status: 503 } });
    proxy.faults.add({ route: 'blob.putBlock', nth: 4, action: { kind: 'reset', afterBodyBytes: 100 * KIB } });
    const seen: string[] = [];
    const debug: string[] = [];
    const logger: Logger = { error: () => {}, warn: () => {}, info: () => {}, debug: (m) => debug.push(m) };
    const result = await uploadBlockBlob(
      blob.url,
      data,
      opts({
        logger,
        onEvent: (e) => {
          seen.push(e.type);
          throw new Error(`listener bug on ${e.type}`);
        },
      }),
    );
    expect(result.retries).toBe(2);
    expect(seen).toContain('upload:retry');
    expect(seen.at(-1)).toBe('upload:committed');
    expect(debug.length).toBe(seen.length);
    expect(sameBytes(fake.service.read('dags', blob.name), data)).toBe(true);

    // A single Put Blob, with an async listener whose promise rejects.
    const small = newBlob();
    const rejecting = await uploadBlockBlob(small.url, payload(10 * KIB, 42), opts({ onEvent: async () => Promise.reject(new Error('async listener bug')) }));
    expect(rejecting.mode).toBe('single');
  });

  for (const fault of [
    { name: 'a 503', action: { kind: 'status', status: 503, headers: { 'x-ms-error-code': 'ServerBusy' } } as const },
    { name: 'a reset', action: { kind: 'reset', afterBodyBytes: 64 * KIB } as const },
  ]) {
    it(`rejects with ASTRO_ABORTED when the caller aborts as a block fails with ${fault.name}`, async () => {
      const blob = newBlob();
      proxy.faults.add({ route: 'blob.putBlock', nth: 1, times: Infinity, action: fault.action });
      const controller = new AbortController();
      const started = Date.now();
      const error = await uploadBlockBlob(
        blob.url,
        payload(2 * MIB, 43),
        opts({
          signal: controller.signal,
          // The abort fires while the failure is being handled, before its retry waits.
          onEvent: (e) => e.type === 'upload:retry' && controller.abort(new Error('user cancelled')),
          retry: { initialDelayMs: 5000, maxDelayMs: 5000 },
        }),
      ).catch((e: unknown) => e);
      expect(isAstroError(error, 'ASTRO_ABORTED')).toBe(true);
      expect(Date.now() - started).toBeLessThan(3000);
      expect(fake.service.read('dags', blob.name)).toBeUndefined();
    });
  }

  it('rejects with ASTRO_ABORTED, not the failure, when the abort arrives with a fatal 403', async () => {
    for (const size of [2 * MIB, 10 * KIB]) {
      const route = size > FAST.singleShotMaxBytes ? 'blob.putBlock' : 'blob.putBlob';
      // Without the abort the 403 is what the upload ends with.
      proxy.faults.clear();
      proxy.faults.add({ route, nth: 1, times: Infinity, action: { kind: 'status', status: 403, headers: { 'x-ms-error-code': 'AuthorizationFailure' } } });
      const plain = await uploadBlockBlob(newBlob().url, payload(size, 44), opts()).catch((e: unknown) => e);
      expect(isAstroError(plain, 'ASTRO_UPLOAD_REJECTED')).toBe(true);
      const controller = new AbortController();
      const dispatcher = new AbortOnStatusAgent(403, controller);
      try {
        const error = await uploadBlockBlob(newBlob().url, payload(size, 44), opts({ signal: controller.signal, dispatcher })).catch((e: unknown) => e);
        expect(controller.signal.aborted).toBe(true);
        expect(isAstroError(error, 'ASTRO_ABORTED')).toBe(true);
      } finally {
        await dispatcher.close();
      }
    }
  });

  it('sends every request through the dispatcher it is given', async () => {
    const dispatcher = new CountingAgent();
    try {
      const blob = newBlob();
      const data = payload(2 * MIB + 5, 45);
      proxy.faults.add({ route: 'blob.putBlock', nth: 2, action: { kind: 'status', status: 500 } });
      // A proxy in the environment does not override the caller's dispatcher.
      await withProxyEnv({ HTTP_PROXY: forward.url }, () => uploadBlockBlob(blob.url, data, opts({ dispatcher })));
      expect(proxy.stats.requests).toBeGreaterThan(3);
      expect(dispatcher.dispatched).toBe(proxy.stats.requests);
      expect(forward.used).toBe(0);
      expect(sameBytes(fake.service.read('dags', blob.name), data)).toBe(true);
    } finally {
      await dispatcher.close();
    }
  });

  it('goes through HTTP_PROXY when no dispatcher is given (and not once the variable is gone)', async () => {
    const before = process.env.HTTP_PROXY;
    const data = payload(2 * MIB + 7, 46);
    const blob = newBlob();
    const log = new EventLog();
    await withProxyEnv({ HTTP_PROXY: forward.url }, () => uploadBlockBlob(blob.url, data, opts({ onEvent: log.onEvent })));
    // undici's proxy agent tunnels with CONNECT, also to http targets.
    expect(forward.stats.tunnels).toBeGreaterThan(0);
    expect(forward.stats.targets.every((t) => t === new URL(proxy.url).host)).toBe(true);
    // Every payload byte crossed the forward proxy on its way to the service.
    expect(forward.stats.bytesUp).toBeGreaterThanOrEqual(data.length);
    expect(forward.stats.bytesUp).toBeGreaterThanOrEqual(proxy.stats.bytesUp);
    expect(sameBytes(fake.service.read('dags', blob.name), data)).toBe(true);

    // Lower-case spelling, single Put Blob.
    forward.resetStats();
    const small = newBlob();
    await withProxyEnv({ http_proxy: forward.url }, () => uploadBlockBlob(small.url, payload(10 * KIB, 47), opts()));
    expect(forward.used).toBeGreaterThan(0);

    // NO_PROXY names the service: direct.
    forward.resetStats();
    await withProxyEnv({ HTTP_PROXY: forward.url, NO_PROXY: '127.0.0.1' }, () => uploadBlockBlob(newBlob().url, payload(10 * KIB, 48), opts()));
    expect(forward.used).toBe(0);

    // The variables are restored after each use; with none set, requests go direct again.
    expect(process.env.HTTP_PROXY).toBe(before);
    forward.resetStats();
    await withProxyEnv({}, () => uploadBlockBlob(newBlob().url, payload(10 * KIB, 49), opts()));
    expect(forward.used).toBe(0);
  });

  it('sends a request again when the proxy refuses its tunnel with 503, 502, 429 or 408: it never reached the service', async () => {
    for (const [status, size] of [
      [503, 2 * MIB + 9],
      [502, 10 * KIB],
      [429, 10 * KIB],
      [408, 2 * MIB + 9],
    ] as const) {
      // An agent of its own: no tunnel of an earlier case is open.
      const dispatcher = new ProxyAgent(forward.url);
      try {
        forward.resetStats();
        forward.refuseTunnels(status, 2);
        const blob = newBlob();
        const data = payload(size, status);
        const log = new EventLog();
        const result = await uploadBlockBlob(blob.url, data, opts({ dispatcher, onEvent: log.onEvent }));
        expect(forward.stats.refused).toBe(2);
        expect(result.retries).toBe(2);
        expect(log.of('upload:retry').map((e) => e.cause)).toEqual(['connect', 'connect']);
        expect(sameBytes(fake.service.read('dags', blob.name), data)).toBe(true);
      } finally {
        await dispatcher.close();
      }
    }
    // The same through HTTPS_PROXY/HTTP_PROXY. NO_PROXY names another host only so that the
    // environment's proxy agent is a new one, with no tunnel left open by another test.
    forward.resetStats();
    forward.refuseTunnels(503);
    const blob = newBlob();
    const data = payload(10 * KIB, 50);
    const result = await withProxyEnv({ HTTP_PROXY: forward.url, NO_PROXY: 'refused-tunnel.invalid' }, () => uploadBlockBlob(blob.url, data, opts()));
    expect(forward.stats.refused).toBe(1);
    expect(result.retries).toBe(1);
    expect(sameBytes(fake.service.read('dags', blob.name), data)).toBe(true);
  });

  it('fails at once with ASTRO_UPLOAD_REJECTED when the proxy wants credentials (407) or refuses the tunnel for good', async () => {
    for (const [status, size, says] of [
      [407, 10 * KIB, /407 Proxy Authentication Required\): put them in the proxy URL \(HTTPS_PROXY, HTTP_PROXY\) as user:password@ before its host/],
      [407, 2 * MIB + 9, /407 Proxy Authentication Required\): put them in the proxy URL \(HTTPS_PROXY, HTTP_PROXY\) as user:password@ before its host/],
      [403, 10 * KIB, /The HTTP proxy refused to open a connection \(HTTP 403\)/],
    ] as const) {
      const dispatcher = new ProxyAgent(forward.url);
      try {
        forward.resetStats();
        forward.refuseTunnels(status, Infinity);
        const blob = newBlob();
        const log = new EventLog();
        const error = await uploadBlockBlob(blob.url, payload(size, 51), opts({ dispatcher, onEvent: log.onEvent })).catch((e: unknown) => e);
        expect(isAstroError(error, 'ASTRO_UPLOAD_REJECTED')).toBe(true);
        expect(error).toMatchObject({ status, retryable: false });
        expect((error as Error).message).toMatch(says);
        // Not the storage service's 403 (the SAS), and not "gave up" after tries it never made.
        expect((error as Error).message).not.toMatch(/SAS|Gave up/);
        expect(log.of('upload:retry')).toEqual([]);
        // At most the tunnels of the blocks sent together; none after the refusal.
        expect(forward.stats.refused).toBeGreaterThanOrEqual(1);
        expect(forward.stats.refused).toBeLessThanOrEqual(size > FAST.singleShotMaxBytes ? 2 : 1);
        expect(fake.service.read('dags', blob.name)).toBeUndefined();
      } finally {
        await dispatcher.close();
      }
    }
  });
});
