/**
 * Native push over a faulty link: the fault proxy sits between the pusher and a real registry
 * (distribution 2.8) and injects 408s, resets, stalls, lost responses, 5xx and 401s. Every push
 * either completes with the digest a clean push gives (checked with skopeo) or fails with a typed
 * error; re-sent bytes are bounded.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isAstroError } from '../../src/core/errors.js';
import { pushImage, RUNTIME_VERSION_LABEL, type ImageEvent, type PushImageOptions } from '../../src/image/index.js';
import { createFaultProxy, type FaultProxy } from '../../src/testing/fault-proxy.js';
import { uniqueName } from '../helpers/docker.js';
import { registryRouteOf, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeImage, noise, writeLegacyArchive } from './fixtures.js';
import { skopeoInfo } from './verify.js';

const LAYER_BYTES = 2 * 1024 * 1024;
const CHUNK = 512 * 1024;

let dir: string;
let archive: string;
let registry: TestRegistry;
let bearerRegistry: TestRegistry;
let proxy: FaultProxy;
let bearerProxy: FaultProxy;
/** Digest of a clean push of the same archive: every faulty push must end with it. */
let cleanDigest: string;
/** Size of the gzipped big layer. */
let bigLayerSize: number;

const fast: PushImageOptions = {
  layerCache: false,
  chunkSizeBytes: CHUNK,
  minChunkSizeBytes: 64 * 1024,
  retry: { initialDelayMs: 20, maxDelayMs: 100 },
  concurrency: 1,
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'astro-fault-test-'));
  archive = join(dir, 'img.tar');
  await writeLegacyArchive(archive, makeImage({ labels: { [RUNTIME_VERSION_LABEL]: '3.1-5' }, layers: [{ 'big.bin': noise(LAYER_BYTES) }, { 'small.txt': 'small' }] }), 'x/f:1');
  [registry, bearerRegistry] = await Promise.all([startRegistry('none'), startRegistry('bearer')]);
  proxy = await createFaultProxy({ target: registry.url, route: registryRouteOf });
  bearerProxy = await createFaultProxy({ target: bearerRegistry.url, route: registryRouteOf });
  const clean = await pushImage(archive, { repository: `${registry.host}/team/clean`, tag: 'v1' }, fast);
  cleanDigest = clean.digest;
  bigLayerSize = Math.max(...clean.layers.map((l) => l.size));
});

afterEach(() => {
  proxy.faults.clear();
  bearerProxy.faults.clear();
  proxy.setThrottle(undefined);
  proxy.resetStats();
});

afterAll(async () => {
  await proxy?.close();
  await bearerProxy?.close();
  await Promise.all([registry?.stop(), bearerRegistry?.stop()]);
  await rm(dir, { recursive: true, force: true });
});

const viaProxy = (p: FaultProxy = proxy) => `${new URL(p.url).host}/team/${uniqueName('f')}`;

async function pushThrough(options: PushImageOptions = {}, p: FaultProxy = proxy) {
  const events: ImageEvent[] = [];
  const repository = viaProxy(p);
  const result = await pushImage(archive, { repository, tag: 'v1' }, { ...fast, ...options, onEvent: (e) => events.push(e) });
  return { result, events, repository };
}

const retries = (events: ImageEvent[]) => events.filter((e): e is Extract<ImageEvent, { type: 'image:layer-retry' }> => e.type === 'image:layer-retry');
const patchBytes = () => proxy.stats.byRoute['registry.patch']?.bytesUp ?? 0;

// Fault timing depends on CPU scheduling (stall and per-request timeouts race with the proxy), so a
// loaded machine can take another path through the retry logic; each case gets two more tries.
describe('native push through faults', { retry: 2 }, () => {
  it('resumes after a 408 answered before the body was read, re-sending at most one chunk', async () => {
    proxy.faults.add({ route: 'registry.patch', nth: 2, action: { kind: 'status', status: 408 } });
    const { result, events, repository } = await pushThrough();
    expect(result.digest).toBe(cleanDigest);
    expect(retries(events).map((e) => e.action)).toEqual(['resume']);
    expect(patchBytes() - bigLayerSize - 100).toBeLessThanOrEqual(CHUNK);
    expect((await skopeoInfo(`${repository.replace(new URL(proxy.url).host, registry.host)}:v1`)).Digest).toBe(cleanDigest);
  });

  it('resumes after a 408 sent mid-body and after a reset mid-PATCH (the registry saw nothing of them)', async () => {
    proxy.faults.add({ route: 'registry.patch', nth: 2, action: { kind: 'status', status: 408, afterBodyBytes: 200_000 } });
    proxy.faults.add({ route: 'registry.patch', nth: 4, action: { kind: 'reset', afterBodyBytes: 100_000 } });
    const { result, events } = await pushThrough();
    expect(result.digest).toBe(cleanDigest);
    const r = retries(events);
    expect(r).toHaveLength(2);
    expect(r.every((e) => e.action === 'resume')).toBe(true);
    // Only the two broken chunks' worth was sent again.
    expect(patchBytes() - bigLayerSize - 100).toBeLessThanOrEqual(2 * CHUNK);
  });

  it('restarts the blob when the registry cannot resume (a proxy cut the PATCH after forwarding part of it), and shrinks chunks', async () => {
    // A slow uplink plus a proxy that answers 408 to requests running longer than 250 ms: a
    // 512 KiB chunk needs ~330 ms, so it is cut mid-body after the registry got part of it.
    proxy.setThrottle(1_600_000);
    const timed = await createFaultProxy({ target: registry.url, route: registryRouteOf, timeoutPolicy: { respond408AfterMs: 250 }, throttleBytesPerSecond: 1_600_000 });
    try {
      const events: ImageEvent[] = [];
      const result = await pushImage(archive, { repository: viaProxy(timed), tag: 'v1' }, { ...fast, retry: { ...fast.retry, maxRetries: 8 }, onEvent: (e) => events.push(e) });
      expect(result.digest).toBe(cleanDigest);
      const r = retries(events);
      expect(r.some((e) => e.action === 'restart')).toBe(true);
      expect(Math.min(...r.map((e) => e.chunkSizeBytes))).toBeLessThan(CHUNK);
    } finally {
      await timed.close();
    }
  });

  it('gives up on a stalled PATCH after stallTimeoutMs and resumes', async () => {
    proxy.faults.add({ route: 'registry.patch', nth: 2, action: { kind: 'stall' } });
    const started = Date.now();
    const { result, events } = await pushThrough({ stallTimeoutMs: 800 });
    expect(result.digest).toBe(cleanDigest);
    expect(retries(events)[0]?.reason).toMatch(/timeout/);
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('checks with HEAD when the commit answer is lost, and re-sends nothing', async () => {
    proxy.faults.add({ route: 'registry.commit', nth: 1, action: { kind: 'dropResponse' } });
    const { result, events } = await pushThrough();
    expect(result.digest).toBe(cleanDigest);
    expect(retries(events).map((e) => e.action)).toEqual(['verify']);
    expect(patchBytes()).toBeLessThan(bigLayerSize + 1000);
  });

  it('puts the manifest again when its answer is lost', async () => {
    proxy.faults.add({ route: 'registry.manifestPut', nth: 1, action: { kind: 'dropResponse' } });
    const { result, repository } = await pushThrough();
    expect(result.digest).toBe(cleanDigest);
    expect(proxy.stats.byRoute['registry.manifestPut']?.requests).toBe(2);
    expect((await skopeoInfo(`${repository.replace(new URL(proxy.url).host, registry.host)}:v1`)).Digest).toBe(cleanDigest);
  });

  it('honours 429 Retry-After on HEAD and retries 503 on the upload start', async () => {
    proxy.faults.add({ route: 'registry.blobHead', nth: 1, action: { kind: 'status', status: 429, headers: { 'retry-after': '1' } } });
    proxy.faults.add({ route: 'registry.uploadStart', nth: 1, action: { kind: 'status', status: 503 } });
    const started = Date.now();
    const { result } = await pushThrough();
    expect(result.digest).toBe(cleanDigest);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });

  it('fails with a typed, retryable error when the registry keeps failing', async () => {
    proxy.faults.add({ route: 'registry.patch', nth: 1, times: Infinity, action: { kind: 'status', status: 500, body: { errors: [{ code: 'UNKNOWN', message: 'disk on fire' }] } } });
    const err = await pushThrough({ retry: { ...fast.retry, maxRetries: 3 } }).catch((e: unknown) => e);
    expect(isAstroError(err, 'ASTRO_IMAGE_PUSH_FAILED')).toBe(true);
    expect(isAstroError(err) && err.retryable).toBe(true);
    expect((err as Error).message).toMatch(/disk on fire|500/);
  });

  it('fetches a new token when the registry answers 401 mid-upload (token expired)', async () => {
    const auth = { username: bearerRegistry.username, password: bearerRegistry.password };
    // First learn the realm the registry advertises, then replay it in an injected 401.
    const probe = await fetch(`${bearerRegistry.url}/v2/`);
    const wwwAuth = probe.headers.get('www-authenticate')!;
    // The 401 comes after the whole chunk was read, as a registry answers; an answer sent while the
    // client is still writing races with the closed connection and is seen as a reset instead.
    bearerProxy.faults.add({ route: 'registry.patch', nth: 2, action: { kind: 'status', status: 401, afterBodyBytes: CHUNK, headers: { 'www-authenticate': wwwAuth } } });
    const before = bearerRegistry.tokenRequests.length;
    const events: ImageEvent[] = [];
    const result = await pushImage(archive, { repository: viaProxy(bearerProxy), tag: 'v1' }, { ...fast, auth, onEvent: (e) => events.push(e) });
    expect(result.digest).toBe(cleanDigest);
    expect(bearerRegistry.tokenRequests.length - before).toBe(2); // initial + refresh
    expect(JSON.stringify(events)).not.toContain(bearerRegistry.issuedTokens.at(-1)!);
  });
});
