/**
 * The uploader against a real Azurite (block-blob semantics, MD5 checks, SAS permissions), through
 * the fault proxy. Azurite has no blob versioning, so the proxy adds `x-ms-version-id` to commit
 * answers the way a versioned account would (and stops doing so for the "no version" case).
 */
import { randomFillSync } from 'node:crypto';
import { open, readFile, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isAstroError } from '../../src/core/errors.js';
import { blobRouteOf, createFaultProxy, type FaultProxy } from '../../src/testing/fault-proxy.js';
import { uploadBlockBlob, type UploadBlockBlobOptions } from '../../src/upload/index.js';
import { startAzurite, type AzuriteHandle } from '../helpers/azurite.js';
import { EventLog, FAST, KIB, MIB, payload, payloadBytesUp, sameBytes, tempDir } from './helpers.js';

const CONTAINER = 'dags';
let azurite: AzuriteHandle;
let proxy: FaultProxy;
let injectVersion = true;
const injected: string[] = [];
let journal: { dir: string; cleanup: () => Promise<void> };
let counter = 0;

/** Stand in for blob versioning: a fresh timestamp-like id on every successful commit. */
function versionHeaders(req: IncomingMessage, upRes: IncomingMessage): Record<string, string> {
  const route = blobRouteOf(req.method ?? 'GET', new URL(req.url ?? '/', 'http://x'));
  if (!injectVersion || upRes.statusCode !== 201 || (route !== 'blob.putBlob' && route !== 'blob.putBlockList')) return {};
  const id = `${new Date().toISOString().slice(0, 19)}.${String(injected.length).padStart(7, '0')}Z`;
  injected.push(id);
  return { 'x-ms-version-id': id };
}

beforeAll(async () => {
  azurite = await startAzurite();
  await azurite.createContainer(CONTAINER);
  proxy = await createFaultProxy({ target: azurite.origin, injectHeaders: versionHeaders });
});
afterAll(async () => {
  await proxy?.close();
  await azurite?.stop();
});
beforeEach(async () => {
  injectVersion = true;
  proxy.faults.clear();
  proxy.resetStats();
  journal = await tempDir('upload-journal-');
});
afterEach(async () => {
  await journal.cleanup();
});

function newBlob(permissions = 'cw', via?: string) {
  const name = `deploy-${++counter}.tar.gz`;
  return { name, url: azurite.sasUrl(CONTAINER, name, permissions, via ?? proxy.url) };
}

function opts(log?: EventLog, extra: UploadBlockBlobOptions = {}): UploadBlockBlobOptions {
  return { ...FAST, journalDir: journal.dir, ...(log ? { onEvent: log.onEvent } : {}), ...extra, retry: { ...FAST.retry, ...extra.retry } };
}

/** A temp file of `size` random bytes standing in for a bundle, and those bytes. */
async function randomBundle(size: number): Promise<{ file: string; data: Buffer; cleanup: () => Promise<void> }> {
  const { dir, cleanup } = await tempDir('bundle-');
  const data = randomFillSync(Buffer.allocUnsafe(size));
  const file = join(dir, 'bundle.tar.gz');
  await writeFile(file, data);
  return { file, data, cleanup };
}

async function expectCommitted(name: string, data: Buffer) {
  expect(sameBytes(await azurite.download(CONTAINER, name), data)).toBe(true);
}

describe('uploadBlockBlob against Azurite', () => {
  it('uses one Put Blob for a small payload and captures the version id', async () => {
    const blob = newBlob();
    const data = payload(100 * KIB, 21);
    const result = await uploadBlockBlob(blob.url, data, opts());
    expect(result.mode).toBe('single');
    expect(proxy.stats.byRoute['blob.putBlob']?.requests).toBe(1);
    expect(result.versionId).toBe(injected.at(-1));
    await expectCommitted(blob.name, data);
  });

  it('sends files in one Put Blob from the reused 1 MiB pieces: each commit is its own file, byte for byte, retried or not', async () => {
    const { dir, cleanup } = await tempDir('single-file-');
    try {
      // Sizes that end mid-piece; the second file is sent from the pieces the first one released,
      // the third after a failed try (whose pieces are dropped), each Content-MD5 checked by Azurite.
      const files = [
        { size: MIB + MIB / 2 + 7, seed: 31, fail: false },
        { size: MIB + 5, seed: 32, fail: true },
        { size: 2 * MIB - 1, seed: 33, fail: false },
      ];
      for (const f of files) {
        const blob = newBlob();
        const data = payload(f.size, f.seed);
        const file = join(dir, `bundle-${f.seed}.tar.gz`);
        await writeFile(file, data);
        if (f.fail) proxy.faults.add({ route: 'blob.putBlob', nth: 1, action: { kind: 'status', status: 500 } });
        const before = proxy.stats.byRoute['blob.putBlob']?.requests ?? 0;
        const result = await uploadBlockBlob(blob.url, file, opts(undefined, { singleShotMaxBytes: 2 * MIB }));
        proxy.faults.clear();
        expect(result).toMatchObject({ mode: 'single', blocks: 1, retries: f.fail ? 1 : 0 });
        expect((proxy.stats.byRoute['blob.putBlob']?.requests ?? 0) - before).toBe(f.fail ? 2 : 1);
        await expectCommitted(blob.name, data);
      }
    } finally {
      await cleanup();
    }
  });

  it('streams a file above 8 MiB in its single Put Blob: a retry reads it again, and memory stays far below its size', async () => {
    const size = 192 * MIB + 5;
    const { file, data, cleanup } = await randomBundle(size);
    try {
      const blob = newBlob();
      // The first try is answered 500 once its whole body has arrived: the second reads the file again.
      proxy.faults.add({ route: 'blob.putBlob', nth: 1, action: { kind: 'status', status: 500, afterBodyBytes: size } });
      const before = process.memoryUsage().arrayBuffers;
      let peak = before;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().arrayBuffers)), 2);
      let result;
      try {
        result = await uploadBlockBlob(blob.url, file, opts(undefined, { singleShotMaxBytes: 256 * MIB }));
      } finally {
        clearInterval(sampler);
      }
      expect(result).toMatchObject({ mode: 'single', blocks: 1, retries: 1 });
      expect(proxy.stats.byRoute['blob.putBlob']?.requests).toBe(2);
      await expectCommitted(blob.name, data);
      // Read into pieces first, the file was held whole (192 MiB and more); streamed, only chunks
      // not yet collected are: 41-52 MiB measured here, bounded by when V8 collects (it starts
      // after 64 MiB of new external memory, and a fast machine allocates more while it marks),
      // not by the file's size. The bound sits between the two, far from either.
      expect(peak - before).toBeLessThan(150 * MIB);
    } finally {
      await cleanup();
    }
  });

  it('falls back to blocks when a streamed Put Blob is reset mid-body, and commits the file whole', async () => {
    const { file, data, cleanup } = await randomBundle(24 * MIB + 3);
    try {
      const blob = newBlob();
      proxy.faults.add({ route: 'blob.putBlob', nth: 1, action: { kind: 'reset', afterBodyBytes: 5 * MIB } });
      const result = await uploadBlockBlob(blob.url, file, opts(undefined, { singleShotMaxBytes: 32 * MIB }));
      expect(result.mode).toBe('blocks');
      expect(proxy.stats.byRoute['blob.putBlob']?.requests).toBe(1);
      await expectCommitted(blob.name, data);
    } finally {
      await cleanup();
    }
  });

  it('refuses a large file rewritten while its single Put Blob streams it: ASTRO_UPLOAD_SOURCE_CHANGED, nothing stored', async () => {
    const size = 32 * MIB;
    const { file, cleanup } = await randomBundle(size);
    try {
      const blob = newBlob();
      // A slow link: the file's tail is read from disk a while after the request reached the proxy
      // (what socket buffers hold ahead is a few MiB).
      proxy.setThrottle(32 * MIB);
      const upload = uploadBlockBlob(blob.url, file, opts(undefined, { singleShotMaxBytes: 64 * MIB }));
      upload.catch(() => undefined);
      for (let waited = 0; !proxy.stats.byRoute['blob.putBlob']?.requests; waited += 5) {
        if (waited > 10_000) throw new Error('the Put Blob never reached the proxy');
        await new Promise((r) => setTimeout(r, 5));
      }
      // Same size, new bytes at the end (and a new mtime).
      const handle = await open(file, 'r+');
      await handle.write(randomFillSync(Buffer.alloc(MIB)), 0, MIB, size - MIB);
      await handle.close();
      const error = await upload.catch((e: unknown) => e);
      proxy.setThrottle(undefined);
      expect(isAstroError(error, 'ASTRO_UPLOAD_SOURCE_CHANGED')).toBe(true);
      // Azurite refused the body against its Content-MD5: no blob of mixed bytes exists.
      expect(await azurite.download(CONTAINER, blob.name).catch(() => undefined)).toBeUndefined();
      // Without Content-MD5 nothing would refuse it, so such a file goes as blocks, committed after a check.
      const plain = newBlob();
      const r = await uploadBlockBlob(plain.url, file, opts(undefined, { singleShotMaxBytes: 64 * MIB, contentMd5: false }));
      expect(r.mode).toBe('blocks');
      await expectCommitted(plain.name, await readFile(file));
    } finally {
      proxy.setThrottle(undefined);
      await cleanup();
    }
  });

  it('stages blocks for a larger payload and commits them with <Latest>', async () => {
    const blob = newBlob();
    const data = payload(3 * MIB + 1, 22);
    const result = await uploadBlockBlob(blob.url, data, opts());
    expect(result.mode).toBe('blocks');
    expect(proxy.stats.byRoute['blob.putBlock']?.requests).toBe(result.blocks);
    expect(proxy.stats.byRoute['blob.putBlockList']?.requests).toBe(1);
    expect(result.versionId).toBe(injected.at(-1));
    const list = await azurite.blockList(CONTAINER, blob.name);
    expect(list.committed).toHaveLength(result.blocks);
    expect(list.uncommitted).toHaveLength(0);
    await expectCommitted(blob.name, data);
  });

  it('turns a commit without x-ms-version-id into ASTRO_UPLOAD_NO_VERSION_ID', async () => {
    injectVersion = false;
    for (const size of [10 * KIB, 2 * MIB]) {
      const blob = newBlob();
      const error = await uploadBlockBlob(blob.url, payload(size), opts()).catch((e: unknown) => e);
      expect(isAstroError(error, 'ASTRO_UPLOAD_NO_VERSION_ID')).toBe(true);
    }
  });

  const faults = [
    { name: '408 before the body', action: { kind: 'status', status: 408 } as const },
    { name: '408 after part of the body', action: { kind: 'status', status: 408, afterBodyBytes: 256 * KIB } as const },
    { name: 'a reset mid-body', action: { kind: 'reset', afterBodyBytes: 200 * KIB } as const },
    { name: '503', action: { kind: 'status', status: 503, headers: { 'x-ms-error-code': 'ServerBusy' } } as const },
  ];
  for (const f of faults) {
    it(`completes after ${f.name}, re-sending at most one block per fault`, async () => {
      const blob = newBlob();
      const data = payload(4 * MIB + 99, 23);
      proxy.faults.add({ route: 'blob.putBlock', nth: 2, action: f.action });
      proxy.faults.add({ route: 'blob.putBlock', nth: 6, action: f.action });
      const log = new EventLog();
      const result = await uploadBlockBlob(blob.url, data, opts(log));
      expect(result.retries).toBe(2);
      const resent = payloadBytesUp(proxy) - data.length;
      expect(resent).toBeGreaterThanOrEqual(0);
      expect(resent).toBeLessThanOrEqual(2 * FAST.maxBlockSizeBytes);
      await expectCommitted(blob.name, data);
    });
  }

  it('times out a stalled block', async () => {
    const blob = newBlob();
    const data = payload(2 * MIB, 24);
    proxy.faults.add({ route: 'blob.putBlock', nth: 1, action: { kind: 'stall' } });
    const log = new EventLog();
    await uploadBlockBlob(blob.url, data, opts(log, { tryTimeoutMs: 700 }));
    expect(log.of('upload:retry').map((r) => r.cause)).toEqual(['timeout']);
    await expectCommitted(blob.name, data);
  });

  it('shrinks blocks on a throttled link whose proxy answers 408 to slow requests, and completes', async () => {
    const slow = await createFaultProxy({
      target: azurite.origin,
      injectHeaders: versionHeaders,
      throttleBytesPerSecond: 4 * MIB,
      timeoutPolicy: { respond408AfterMs: 1500 },
    });
    try {
      const blob = newBlob('cw', slow.url);
      const data = payload(10 * MIB, 25);
      const log = new EventLog();
      const result = await uploadBlockBlob(blob.url, data, {
        journalDir: journal.dir,
        onEvent: log.onEvent,
        blockSizeBytes: 4 * MIB,
        maxBlockSizeBytes: 4 * MIB,
        retry: { initialDelayMs: 50 },
      });
      const shrinks = log.of('upload:block-size').filter((e) => e.reason === 'http-408');
      expect(shrinks.length).toBeGreaterThan(0);
      const retries408 = log.of('upload:retry').filter((r) => r.cause === 'http-408').length;
      expect(retries408).toBeGreaterThan(0);
      // Each 408 wastes at most the block it cut short.
      expect(payloadBytesUp(slow) - data.length).toBeLessThanOrEqual(retries408 * 4 * MIB);
      expect(result.versionId).toBe(injected.at(-1));
      await expectCommitted(blob.name, data);
    } finally {
      await slow.close();
    }
  });

  it('re-commits with <Latest> after a lost commit response', async () => {
    const blob = newBlob();
    const data = payload(2 * MIB, 26);
    proxy.faults.add({ route: 'blob.putBlockList', action: { kind: 'dropResponse' } });
    const log = new EventLog();
    const result = await uploadBlockBlob(blob.url, data, opts(log));
    expect(log.of('upload:retry')).toMatchObject([{ phase: 'commit', cause: 'reset' }]);
    expect(proxy.stats.byRoute['blob.putBlockList']?.requests).toBe(2);
    expect(result.versionId).toBe(injected.at(-1));
    await expectCommitted(blob.name, data);
  });

  it('resumes from the journal with a write-only SAS', async () => {
    const blob = newBlob('cw');
    const data = payload(4 * MIB, 27);
    proxy.faults.add({ route: 'blob.putBlock', nth: 4, times: Infinity, action: { kind: 'status', status: 500 } });
    const first = await uploadBlockBlob(blob.url, data, opts(undefined, { retry: { maxRetries: 1 }, concurrency: 1 })).catch((e: unknown) => e);
    expect(isAstroError(first, 'ASTRO_UPLOAD_FAILED')).toBe(true);
    proxy.faults.clear();
    proxy.resetStats();
    const log = new EventLog();
    await uploadBlockBlob(blob.url, data, opts(log));
    const resumed = log.of('upload:resumed')[0];
    expect(resumed).toMatchObject({ via: 'journal', blocksSkipped: 3 });
    expect(proxy.stats.byRoute['blob.putBlock']!.bytesUp).toBe(data.length - resumed!.bytesSkipped);
    await expectCommitted(blob.name, data);
  });

  it('resumes with Get Block List with an rcw SAS', async () => {
    const blob = newBlob('rcw');
    const data = payload(4 * MIB, 28);
    proxy.faults.add({ route: 'blob.putBlock', nth: 3, times: Infinity, action: { kind: 'reset', afterBodyBytes: 1000 } });
    const first = await uploadBlockBlob(blob.url, data, opts(undefined, { journalDir: false, retry: { maxRetries: 1 }, concurrency: 1 })).catch((e: unknown) => e);
    expect(isAstroError(first, 'ASTRO_UPLOAD_FAILED')).toBe(true);
    proxy.faults.clear();
    proxy.resetStats();
    const log = new EventLog();
    await uploadBlockBlob(blob.url, data, opts(log, { journalDir: false }));
    const resumed = log.of('upload:resumed')[0];
    expect(resumed).toMatchObject({ via: 'block-list', blocksSkipped: 2 });
    expect(proxy.stats.byRoute['blob.getBlockList']?.requests).toBe(1);
    expect(proxy.stats.byRoute['blob.putBlock']!.bytesUp).toBe(data.length - resumed!.bytesSkipped);
    await expectCommitted(blob.name, data);
  });

  it('runs two uploads of one blob at once to completion: one journal owner, the blob whole', async () => {
    const blob = newBlob('cw');
    const first = payload(3 * MIB, 29);
    const second = payload(3 * MIB, 30);
    const logs = [new EventLog(), new EventLog()];
    const [a, b] = await Promise.all([
      uploadBlockBlob(blob.url, first, opts(logs[0])),
      uploadBlockBlob(blob.url, second, opts(logs[1])),
    ]);
    // Same blob and size: the same journal, which only one of them may write.
    const busy = logs.map((l) => l.of('upload:warning').filter((w) => w.code === 'journal-busy').length);
    expect(busy.sort()).toEqual([0, 1]);
    // Whichever committed last is the blob, whole; the other commit's blocks were never mixed in.
    const last = a.versionId > b.versionId ? first : second;
    await expectCommitted(blob.name, last);
  });

});
