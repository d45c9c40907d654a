/**
 * Integrity and large blocks, on Azurite and on the fake blob service: a byte corrupted in flight
 * (after its Content-MD5 went out) is refused by the service and the block is sent again, or the
 * upload fails with a typed error that says so; blocks grow past the old 4 MiB on a clean link
 * while the bytes in flight stay bounded; a resetting link still re-sends under 5 %; the shared
 * pieces file blocks are read into are never lent to two requests at once.
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAstroError } from '../../src/core/errors.js';
import { startFakeBlobServer, type FakeBlobServer } from '../../src/testing/fake-blob.js';
import { createFaultProxy } from '../../src/testing/fault-proxy.js';
import { uploadBlockBlob } from '../../src/upload/index.js';
import { startAzurite, type AzuriteHandle } from '../helpers/azurite.js';
import { startCorruptingProxy } from './corrupting-proxy.js';
import { EventLog, FAST, KIB, MIB, payloadBytesUp, sameBytes, tempDir } from './helpers.js';

let azurite: AzuriteHandle;
let fake: FakeBlobServer;
let counter = 0;

beforeAll(async () => {
  [azurite, fake] = await Promise.all([startAzurite(), startFakeBlobServer()]);
  await azurite.createContainer('dags');
});
afterAll(async () => {
  await azurite?.stop();
  await fake?.close();
});

/** One service under test: where to upload (through `via`) and how to read the blob back. */
interface Service {
  name: string;
  origin: () => string;
  url: (via: string) => { url: string; read: () => Promise<Buffer | undefined> };
}

const services: Service[] = [
  {
    name: 'Azurite',
    origin: () => azurite.origin,
    url: (via) => {
      const name = `integrity-${++counter}.bin`;
      return { url: azurite.sasUrl('dags', name, 'cw', via), read: () => azurite.download('dags', name) };
    },
  },
  {
    name: 'the fake',
    origin: () => fake.url,
    url: (via) => {
      const name = `integrity-${++counter}.bin`;
      return { url: fake.service.sasUrl(via, 'dags', name), read: async () => fake.service.read('dags', name) };
    },
  },
];

const base = { ...FAST, journalDir: false, requireVersionId: false } as const;

for (const service of services) {
  describe(`integrity on ${service.name}`, () => {
    it('sends a block corrupted in flight again: the service refused it by its MD5', async () => {
      const proxy = await startCorruptingProxy(service.origin(), (route, n) => route === 'blob.putBlock' && n === 2);
      try {
        const blob = service.url(proxy.url);
        const data = randomBytes(3 * MIB);
        const log = new EventLog();
        const result = await uploadBlockBlob(blob.url, data, { ...base, onEvent: log.onEvent });
        expect(proxy.corrupted).toBe(1);
        expect(result.retries).toBe(1);
        expect(log.of('upload:retry')).toMatchObject([{ phase: 'put-block', status: 400 }]);
        expect(sameBytes(await blob.read(), data)).toBe(true);
      } finally {
        await proxy.close();
      }
    });

    it('sends a corrupted single Put Blob again as blocks', async () => {
      const proxy = await startCorruptingProxy(service.origin(), (route) => route === 'blob.putBlob');
      try {
        const blob = service.url(proxy.url);
        const data = randomBytes(200 * KIB);
        const result = await uploadBlockBlob(blob.url, data, base);
        expect(proxy.corrupted).toBe(1);
        expect(result.mode).toBe('blocks');
        expect(sameBytes(await blob.read(), data)).toBe(true);
      } finally {
        await proxy.close();
      }
    });

    it('fails with ASTRO_UPLOAD_FAILED naming the corruption when every try is corrupted', async () => {
      const proxy = await startCorruptingProxy(service.origin(), (route) => route === 'blob.putBlock');
      try {
        const blob = service.url(proxy.url);
        const error = await uploadBlockBlob(blob.url, randomBytes(2 * MIB), { ...base, retry: { ...FAST.retry, maxRetries: 2 } }).catch((e: unknown) => e);
        expect(isAstroError(error, 'ASTRO_UPLOAD_FAILED')).toBe(true);
        expect((error as Error).message).toMatch(/corrupted/);
        expect(error).toMatchObject({ status: 400, attempts: 3, retryable: true });
        expect(await blob.read().catch(() => undefined)).toBeUndefined();
      } finally {
        await proxy.close();
      }
    });
  });
}

describe('file blocks read into shared pieces (Azurite)', () => {
  it('never reuses a piece a request may still send: concurrent file uploads, one over a resetting link, arrive whole with no MD5 refusal', async () => {
    const clean = await createFaultProxy({ target: azurite.origin });
    const flaky = await createFaultProxy({ target: azurite.origin, randomResets: { meanBytesBetween: 3 * MIB, seed: 5, routes: /^blob\.putBlock$/ } });
    const { dir, cleanup } = await tempDir('upload-pieces-');
    try {
      const uploads = [clean, clean, flaky].map(async (proxy, i) => {
        const data = randomBytes(12 * MIB + i * 333);
        const file = join(dir, `bundle-${i}.bin`);
        await writeFile(file, data);
        const blob = services[0]!.url(proxy.url);
        const log = new EventLog();
        await uploadBlockBlob(blob.url, file, { ...base, blockSizeBytes: MIB + 7 * KIB, concurrency: 4, onEvent: log.onEvent });
        return { data, blob, log };
      });
      for (const { data, blob, log } of await Promise.all(uploads)) {
        // A piece lent to two blocks at once would send one block's bytes under the other's MD5.
        expect(log.of('upload:retry').filter((r) => r.status === 400)).toEqual([]);
        expect(sameBytes(await blob.read(), data)).toBe(true);
      }
      expect(flaky.stats.randomResets).toBeGreaterThan(0);
    } finally {
      await cleanup();
      await clean.close();
      await flaky.close();
    }
  }, 60_000);
});

describe('large blocks on a proven link (Azurite)', () => {
  it('grows blocks past 4 MiB on a clean link, from memory and from a file, with bounded bytes in flight', async () => {
    const proxy = await createFaultProxy({ target: azurite.origin });
    const { dir, cleanup } = await tempDir('upload-large-');
    try {
      const data = randomBytes(160 * MIB);
      const file = join(dir, 'bundle.bin');
      await writeFile(file, data);
      for (const source of [data, file]) {
        proxy.resetStats();
        const log = new EventLog();
        const blob = services[0]!.url(proxy.url);
        const result = await uploadBlockBlob(blob.url, source, { journalDir: false, requireVersionId: false, maxBytesInFlight: 48 * MIB, onEvent: log.onEvent });
        const sizes = log.of('upload:block-size').map((e) => e.toBytes);
        expect(Math.max(...sizes)).toBeGreaterThan(4 * MIB);
        expect(Math.max(...sizes)).toBeLessThanOrEqual(32 * MIB);
        // Blocks only grow as clean bytes prove the link (5 % of them plus a prior): about as many
        // requests as fixed 4 MiB blocks at this size, and ever fewer beyond it.
        expect(result.blocks).toBeLessThan(160 / 3);
        // Nothing is sent twice unless a request was retried (on a loaded CI machine Azurite can
        // answer a block late enough for a per-try timeout); a retry re-sends at most its block.
        const retries = log.of('upload:retry');
        const extra = payloadBytesUp(proxy) - data.length;
        const causes = JSON.stringify(retries.map((r) => [r.cause, r.blockIndex]));
        if (retries.length === 0) expect(extra, 'bytes sent twice without a retry').toBe(0);
        else expect(extra, `re-sent after ${causes}`).toBeLessThanOrEqual(retries.length * 32 * MIB);
        expect(sameBytes(await blob.read(), data)).toBe(true);
      }
    } finally {
      await cleanup();
      await proxy.close();
    }
  }, 60_000);

  it('re-sends at most 5 % (mean of three seeds) of a 64 MiB payload over a link that resets every 32 MiB on average', async () => {
    const data = randomBytes(64 * MIB);
    const ratios: number[] = [];
    for (const seed of [7, 11, 13]) {
      const proxy = await createFaultProxy({ target: azurite.origin, randomResets: { meanBytesBetween: 32 * MIB, seed, routes: /^blob\.put(Block|Blob)$/ } });
      try {
        const blob = services[0]!.url(proxy.url);
        await uploadBlockBlob(blob.url, data, { journalDir: false, requireVersionId: false, retry: { initialDelayMs: 20, maxDelayMs: 200 } });
        ratios.push(payloadBytesUp(proxy) / data.length);
        expect(sameBytes(await blob.read(), data)).toBe(true);
      } finally {
        await proxy.close();
      }
    }
    // Where the resets fall is random, and how large the blocks in flight are then depends on
    // timing (blocks grow once the link has proven itself): one seed may land above 1.05, the mean
    // may not. Seeds 1-13 on a quiet machine: mean 1.035, max 1.070; loaded CI runs saw 1.087 and
    // 1.103 (mean 1.038). The per-seed bound only catches a pathological seed.
    expect(ratios.reduce((a, b) => a + b, 0) / ratios.length, `ratios ${ratios.join(', ')}`).toBeLessThanOrEqual(1.05);
    expect(Math.max(...ratios), `ratios ${ratios.join(', ')}`).toBeLessThanOrEqual(1.15);
  }, 120_000);
});
