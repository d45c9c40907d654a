/**
 * The native push on the SDK's resilience kernel, against real registries (distribution 2.8)
 * through the fault proxy: listeners cannot break a push, an abort that races a failure ends as
 * ASTRO_ABORTED while without an abort the first real failure wins, and registry requests (token
 * service included) go through the caller's dispatcher, or through HTTP_PROXY when none is given.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AbortOnStatusAgent, CountingAgent } from '../helpers/dispatchers.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isAstroError } from '../../src/core/errors.js';
import type { Logger } from '../../src/core/logger.js';
import { pushImage, RUNTIME_VERSION_LABEL, type ImageEvent, type PushImageOptions } from '../../src/image/index.js';
import { createFaultProxy, type FaultProxy } from '../../src/testing/fault-proxy.js';
import { uniqueName } from '../helpers/docker.js';
import { startForwardProxy, withProxyEnv, type ForwardProxy } from '../helpers/forward-proxy.js';
import { registryRouteOf, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeImage, noise, writeLegacyArchive } from './fixtures.js';

const CHUNK = 256 * 1024;

let dir: string;
let archive: string;
let registry: TestRegistry;
let bearer: TestRegistry;
let proxy: FaultProxy;
let bearerProxy: FaultProxy;
let forward: ForwardProxy;
let cleanDigest: string;

const fast: PushImageOptions = {
  layerCache: false,
  chunkSizeBytes: CHUNK,
  minChunkSizeBytes: 64 * 1024,
  retry: { initialDelayMs: 20, maxDelayMs: 100 },
  concurrency: 2,
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'astro-push-kernel-'));
  archive = join(dir, 'img.tar');
  // Two layers big enough for several chunks each, so one can fail while the other is in flight.
  const image = makeImage({ labels: { [RUNTIME_VERSION_LABEL]: '3.1-5' }, layers: [{ 'a.bin': noise(1_500_000) }, { 'b.bin': noise(1_200_000) }] });
  await writeLegacyArchive(archive, image, 'x/k:1');
  [registry, bearer] = await Promise.all([startRegistry('none'), startRegistry('bearer')]);
  proxy = await createFaultProxy({ target: registry.url, route: registryRouteOf });
  bearerProxy = await createFaultProxy({ target: bearer.url, route: registryRouteOf });
  forward = await startForwardProxy();
  cleanDigest = (await pushImage(archive, { repository: `${registry.host}/team/clean`, tag: 'v1' }, fast)).digest;
});

afterEach(() => {
  proxy.faults.clear();
  proxy.resetStats();
  bearerProxy.faults.clear();
  bearerProxy.resetStats();
  forward.resetStats();
});

afterAll(async () => {
  await forward?.close();
  await proxy?.close();
  await bearerProxy?.close();
  await Promise.all([registry?.stop(), bearer?.stop()]);
  await rm(dir, { recursive: true, force: true });
});

const viaProxy = (p: FaultProxy = proxy) => `${new URL(p.url).host}/team/${uniqueName('k')}`;

describe('native push on the resilience kernel', () => {
  it('ignores a listener that throws (or rejects) on every event, and completes', async () => {
    // A fault, so that retry events fire too.
    proxy.faults.add({ route: 'registry.patch', nth: 2, action: { kind: 'status', status: 503 } });
    const seen: string[] = [];
    const debug: string[] = [];
    const logger: Logger = { error: () => {}, warn: () => {}, info: () => {}, debug: (m) => debug.push(m) };
    const result = await pushImage(archive, { repository: viaProxy(), tag: 'v1' }, {
      ...fast,
      logger,
      onEvent: (e) => {
        seen.push(e.type);
        throw new Error(`listener bug on ${e.type}`);
      },
    });
    expect(result.digest).toBe(cleanDigest);
    expect(seen).toContain('image:layer-retry');
    expect(seen.at(-1)).toBe('image:push-complete');
    expect(debug.length).toBe(seen.length);

    const rejecting = await pushImage(archive, { repository: viaProxy(), tag: 'v1' }, { ...fast, onEvent: async () => Promise.reject(new Error('async listener bug')) });
    expect(rejecting.digest).toBe(cleanDigest);
  });

  for (const fault of [
    { name: 'a 503', action: { kind: 'status', status: 503 } as const },
    { name: 'a reset', action: { kind: 'reset', afterBodyBytes: 64 * 1024 } as const },
  ]) {
    it(`rejects with ASTRO_ABORTED when the caller aborts as a layer PATCH fails with ${fault.name}, leaving no temp files`, async () => {
      proxy.faults.add({ route: 'registry.patch', nth: 1, times: Infinity, action: fault.action });
      const tempDir = await mkdtemp(join(dir, 'temp-'));
      const controller = new AbortController();
      const started = Date.now();
      const error = await pushImage(archive, { repository: viaProxy(), tag: 'v1' }, {
        ...fast,
        tempDir,
        signal: controller.signal,
        // The abort fires while the failure is being handled, before its retry waits.
        onEvent: (e) => e.type === 'image:layer-retry' && controller.abort(new Error('user cancelled')),
        retry: { initialDelayMs: 5000, maxDelayMs: 5000 },
      }).catch((e: unknown) => e);
      expect(isAstroError(error, 'ASTRO_ABORTED'), String(error)).toBe(true);
      expect(Date.now() - started).toBeLessThan(4000);
      expect(await readdir(tempDir)).toEqual([]);
    });
  }

  it('rejects with ASTRO_ABORTED, not the failure, when the abort arrives with a final 503', async () => {
    const final = { ...fast, retry: { ...fast.retry, maxRetries: 0 } };
    proxy.faults.add({ route: 'registry.patch', nth: 1, times: Infinity, action: { kind: 'status', status: 503 } });
    // Without the abort the 503 is what the push ends with.
    const plain = await pushImage(archive, { repository: viaProxy(), tag: 'v1' }, final).catch((e: unknown) => e);
    expect(isAstroError(plain, 'ASTRO_IMAGE_PUSH_FAILED'), String(plain)).toBe(true);
    const controller = new AbortController();
    const dispatcher = new AbortOnStatusAgent(503, controller);
    try {
      const error = await pushImage(archive, { repository: viaProxy(), tag: 'v1' }, { ...final, signal: controller.signal, dispatcher }).catch((e: unknown) => e);
      expect(controller.signal.aborted).toBe(true);
      expect(isAstroError(error, 'ASTRO_ABORTED'), String(error)).toBe(true);
    } finally {
      await dispatcher.close();
    }
  });

  it('without an abort, ends with the first real failure, not the cancellation it caused in the other layer', async () => {
    proxy.faults.add({ route: 'registry.patch', nth: 3, action: { kind: 'status', status: 500, body: { errors: [{ code: 'UNKNOWN', message: 'disk on fire' }] } } });
    const error = await pushImage(archive, { repository: viaProxy(), tag: 'v1' }, { ...fast, retry: { ...fast.retry, maxRetries: 0 } }).catch((e: unknown) => e);
    expect(isAstroError(error, 'ASTRO_IMAGE_PUSH_FAILED'), String(error)).toBe(true);
    expect((error as Error).message).toMatch(/disk on fire/);
  });

  it('sends every registry request through the dispatcher it is given, token requests included', async () => {
    const dispatcher = new CountingAgent();
    try {
      proxy.faults.add({ route: 'registry.patch', nth: 2, action: { kind: 'status', status: 500 } });
      // A proxy in the environment does not override the caller's dispatcher.
      const result = await withProxyEnv({ HTTP_PROXY: forward.url }, () => pushImage(archive, { repository: viaProxy(), tag: 'v1' }, { ...fast, dispatcher }));
      expect(result.digest).toBe(cleanDigest);
      expect(proxy.stats.requests).toBeGreaterThan(10);
      expect(dispatcher.dispatched).toBe(proxy.stats.requests);
      expect(forward.used).toBe(0);

      // Bearer auth: the token service is asked through the same dispatcher.
      const counting = new CountingAgent();
      try {
        const tokensBefore = bearer.tokenRequests.length;
        const auth = { username: bearer.username, password: bearer.password };
        await pushImage(archive, { repository: viaProxy(bearerProxy), tag: 'v1' }, { ...fast, auth, dispatcher: counting });
        const tokens = bearer.tokenRequests.length - tokensBefore;
        expect(tokens).toBeGreaterThan(0);
        expect(counting.dispatched).toBe(bearerProxy.stats.requests + tokens);
      } finally {
        await counting.close();
      }
    } finally {
      await dispatcher.close();
    }
  });

  it('goes through HTTP_PROXY when no dispatcher is given (registry and token service), and not with NO_PROXY', async () => {
    const before = process.env.HTTP_PROXY;
    const auth = { username: bearer.username, password: bearer.password };
    const events: ImageEvent[] = [];
    const result = await withProxyEnv({ HTTP_PROXY: forward.url }, () =>
      pushImage(archive, { repository: `${bearer.host}/team/${uniqueName('p')}`, tag: 'v1' }, { ...fast, auth, onEvent: (e) => events.push(e) }),
    );
    expect(result.digest).toBe(cleanDigest);
    // undici's proxy agent tunnels with CONNECT, also to http targets.
    expect(forward.stats.tunnels).toBeGreaterThan(0);
    const targets = new Set(forward.stats.targets);
    expect(targets.has(bearer.host)).toBe(true);
    // The token service (another port on 127.0.0.1) was reached through the proxy too.
    expect(targets.size).toBe(2);
    // Every layer byte crossed the forward proxy on its way to the registry.
    const layerBytes = result.layers.reduce((n, l) => n + l.size, 0);
    expect(forward.stats.bytesUp).toBeGreaterThanOrEqual(layerBytes);

    // NO_PROXY names the registry host: direct.
    forward.resetStats();
    await withProxyEnv({ HTTP_PROXY: forward.url, NO_PROXY: '127.0.0.1' }, () => pushImage(archive, { repository: viaProxy(), tag: 'v1' }, fast));
    expect(forward.used).toBe(0);
    expect(process.env.HTTP_PROXY).toBe(before);
  });

  it('a proxy that wants credentials (407) ends the push at once, not retryable, saying so, for the registry and for its token service', async () => {
    const auth = { username: bearer.username, password: bearer.password };
    for (const host of [bearer.host, bearer.tokenHost!]) {
      forward.resetStats();
      forward.refuseTunnels(407, 100, host);
      const error = await withProxyEnv({ HTTP_PROXY: forward.url }, () =>
        pushImage(archive, { repository: `${bearer.host}/team/${uniqueName('p')}`, tag: 'v1' }, { ...fast, auth, retry: { ...fast.retry, maxRetries: 4 } }),
      ).catch((e: unknown) => e);
      forward.refuseTunnels(0, 0);
      expect(error, host).toMatchObject({ code: 'ASTRO_IMAGE_REGISTRY_UNAVAILABLE', retryable: false });
      expect((error as Error).message, host).toMatch(/407 Proxy Authentication Required\): put them in the proxy URL/);
      expect((error as Error).message, host).not.toMatch(/Check that the registry is reachable/);
      // Not retried: one refusal.
      expect(forward.stats.refused, host).toBe(1);
    }
  });
});
